"""Form bodies are the bytes urllib writes, whatever the text."""

from __future__ import annotations

from urllib.parse import urlencode

from hypothesis import given, settings
from hypothesis import strategies as st

from outreach.providers.form_encoding import encode_form, quote_form

TEXT = st.text(max_size=40) | st.sampled_from(
    ["Your balance is due. Reply STOP to opt out.", "José Núñez: 1’000 €", "a+b=c&d%e/f?g#h~", ""]
)
FORMS = st.dictionaries(
    st.text(max_size=12), TEXT | st.lists(TEXT, max_size=3) | st.tuples(TEXT, TEXT), max_size=6
)


@settings(max_examples=500)
@given(form=FORMS)
def test_a_form_is_encoded_as_urlencode_does(form: dict[str, str | list[str]]) -> None:
    assert encode_form(form) == urlencode(form, doseq=True)


@given(text=st.characters(max_codepoint=127).map(str) | st.text())
def test_one_value_is_quoted_as_quote_plus_does(text: str) -> None:
    assert f"k={quote_form(text)}" == urlencode({"k": text})


def test_what_is_not_text_goes_to_urlencode() -> None:
    form = {"Timeout": 30, "Flags": [1, "two"]}
    assert encode_form(form) == urlencode(form, doseq=True) == "Timeout=30&Flags=1&Flags=two"  # type: ignore[arg-type]
