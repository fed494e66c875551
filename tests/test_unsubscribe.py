"""Signed unsubscribe links: what a link names comes back only with the key that signed it."""

from __future__ import annotations

import base64
import hmac
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from outreach.unsubscribe import (
    PATH,
    BadUnsubscribeToken,
    make_token,
    read_token,
    unsubscribe_url,
)

KEY = "a-secret-key-for-tests-only-0123456789"


@given(address=st.text(min_size=1, max_size=60), reference=st.text(min_size=1, max_size=30))
def test_a_token_names_its_address_and_reference(address: str, reference: str) -> None:
    request = read_token(KEY, make_token(KEY, address, reference))
    assert (request.address, request.reference) == (address, reference)


def test_a_link_is_the_base_url_the_path_and_the_token() -> None:
    url = unsubscribe_url("https://pay.example.com/", KEY, "pat@example.net", "R-1")
    assert url.startswith(f"https://pay.example.com{PATH}")
    assert read_token(KEY, url.rsplit("/", 1)[1]).address == "pat@example.net"


def test_another_key_or_an_altered_token_is_refused() -> None:
    token = make_token(KEY, "pat@example.net", "R-1")
    with pytest.raises(BadUnsubscribeToken):
        read_token("another-key", token)
    body, _, signature = token.partition(".")
    other = make_token(KEY, "sam@example.net", "R-1").partition(".")[0]
    with pytest.raises(BadUnsubscribeToken):
        read_token(KEY, f"{other}.{signature}")
    with pytest.raises(BadUnsubscribeToken):
        read_token(KEY, body)
    for forged in (f"{body}.é", f"{body}\ud800.{signature}", f"{body}.{signature}\ud800"):
        with pytest.raises(BadUnsubscribeToken):
            read_token(KEY, forged)


def test_a_link_signed_with_a_previous_key_still_reads() -> None:
    """An email sent before SECRET_KEY was rotated keeps a working opt-out."""
    sent = make_token("the-key-before", "pat@example.net", "R-1")
    request = read_token(KEY, sent, ("an-older-key", "the-key-before"))
    assert (request.address, request.reference) == ("pat@example.net", "R-1")
    with pytest.raises(BadUnsubscribeToken):
        read_token(KEY, sent, ("an-older-key",))  # a key no longer listed
    with pytest.raises(BadUnsubscribeToken):
        read_token(KEY, sent)


def test_an_address_json_cannot_encode_as_utf8_still_gets_a_link() -> None:
    request = read_token(KEY, make_token(KEY, "pat\ud800@example.net", "R-1"))
    assert request.address == "pat\ud800@example.net"


def test_links_already_sent_still_read() -> None:
    """Links in emails already sent were made with json.dumps's ASCII escapes; they are
    signed as they are and still unsubscribe."""
    payload = json.dumps(["josé@exämple.com", "R-ü"], separators=(",", ":")).encode()
    body = base64.urlsafe_b64encode(payload).rstrip(b"=").decode()
    digest = hmac.digest(KEY.encode(), f"unsubscribe-link:{body}".encode(), "sha256")
    signature = base64.urlsafe_b64encode(digest[:18]).decode()
    request = read_token(KEY, f"{body}.{signature}")
    assert (request.address, request.reference) == ("josé@exämple.com", "R-ü")
