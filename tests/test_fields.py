"""Field parsers: one raw value in, one clean value out, or a FieldError naming the column."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from outreach.importing.fields import (
    FieldError,
    format_minor,
    parse_amount,
    parse_bool,
    parse_date,
    parse_email,
    parse_instant,
    parse_jurisdiction,
    parse_locale,
    parse_phone,
    parse_timezone,
)

CURRENCIES = ("USD", "JPY", "KWD")

# --- parse_amount ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "currency", "expected"),
    [
        ("0", "USD", 0),
        ("12", "USD", 1200),
        ("12.3", "USD", 1230),
        ("12.34", "USD", 1234),
        ("19.99", "USD", 1999),
        (".5", "USD", 50),
        ("10.000", "USD", 1000),  # trailing zeros are not extra precision
        ("1,234.56", "USD", 123456),
        ("1,234,567", "USD", 123456700),
        ("  42.10  ", "USD", 4210),
        ("1234", "JPY", 1234),
        ("1,234", "JPY", 1234),
        ("1234.0", "JPY", 1234),
        ("1.234", "KWD", 1234),
        ("1,000.5", "KWD", 1000500),
        ("0.001", "KWD", 1),
        (Decimal("19.99"), "USD", 1999),  # JSON Lines numbers arrive as Decimal
        (7, "USD", 700),
    ],
)
def test_parse_amount_gives_exact_minor_units(raw: Any, currency: str, expected: int) -> None:
    result = parse_amount("amount", raw, currency)
    assert result == expected
    assert type(result) is int


@pytest.mark.parametrize(
    ("raw", "currency", "grouping", "readings"),
    [
        ("1.500", "EUR", False, "1500 or 1.5"),
        ("12.000", "EUR", False, "12000 or 12"),
        ("12.345", "EUR", False, "12345"),  # never the refused text itself
        ("12.345", "JPY", False, "12345"),
        ("12.000", "JPY", True, "12000 or 12"),
        ("1,500.000", "JPY", True, "1500000 or 1500"),
        (Decimal("12.000"), "KRW", True, "12000 or 12"),
    ],
)
def test_a_dot_that_may_group_thousands_is_refused_as_ambiguous(
    raw: Any, currency: str, grouping: bool, readings: str
) -> None:
    """German Excel writes fifteen hundred 1.500, with ';' between cells; a currency without
    decimals has no use for a decimal point. Read as one, the amount is a thousandth."""
    with pytest.raises(FieldError, match="is ambiguous") as refused:
        parse_amount("balance", raw, currency, grouping=grouping)
    assert refused.value.column == "balance"
    assert str(refused.value).endswith(f"write {readings}")


@pytest.mark.parametrize(
    ("raw", "currency", "grouping", "expected"),
    [
        ("1.50", "EUR", False, 150),
        ("1.5000", "EUR", False, 150),
        ("1500", "EUR", False, 150000),
        ("1.500", "EUR", True, 150),  # a ',' file: a dot is a decimal point there
        ("1.500", "KWD", True, 1500),
        ("12.345", "KWD", False, 12345),  # three decimals is how a dinar is written
        ("1.500", "BHD", False, 1500),
        ("0.500", "EUR", False, 50),  # no thousands group starts with a lone 0
        ("0.500", "JOD", False, 500),
        ("12.00", "JPY", True, 12),
        ("12", "JPY", False, 12),
    ],
)
def test_a_dot_that_cannot_group_thousands_is_a_decimal_point(
    raw: str, currency: str, grouping: bool, expected: int
) -> None:
    """Guards against refusing more than the ambiguous amounts."""
    assert parse_amount("amount", raw, currency, grouping=grouping) == expected


@pytest.mark.parametrize(
    ("raw", "currency"),
    [
        ("-5", "USD"),
        ("-0.01", "USD"),
        ("10.001", "USD"),
        ("1.5", "JPY"),
        ("1.0001", "KWD"),
        ("1e5", "USD"),
        ("1E5", "USD"),
        ("$10", "USD"),
        ("10 USD", "USD"),
        ("+10", "USD"),
        ("1,23.4", "USD"),
        ("12,34", "USD"),
        ("1,2345", "USD"),
        ("1.2.3", "USD"),
        ("", "USD"),
        ("   ", "USD"),
        (None, "USD"),
        (10.5, "USD"),  # a float is refused even when it looks exact
        (10.0, "JPY"),
        (Decimal("1E+5"), "USD"),
        ("1000000000000000", "JPY"),  # 10**15 minor units: too large
    ],
)
def test_parse_amount_refuses_with_the_column(raw: Any, currency: str) -> None:
    with pytest.raises(FieldError) as caught:
        parse_amount("balance_due", raw, currency)
    assert caught.value.column == "balance_due"
    assert str(caught.value).startswith("balance_due: ")


@pytest.mark.parametrize(
    ("raw", "currency"),
    [
        pytest.param("1.00000000000000000000000000001", "USD", id="usd-29-significant-digits"),
        pytest.param("5.0000000000000000000000000001", "JPY", id="jpy-29-significant-digits"),
        pytest.param("1.0000000000000000000000000001", "KWD", id="kwd-29-significant-digits"),
    ],
)
def test_parse_amount_refuses_extra_decimals_beyond_the_decimal_context(
    raw: str, currency: str
) -> None:
    # The default Decimal context keeps 28 significant digits; an amount with more decimals
    # than the currency allows must be refused, not silently rounded to whole minor units.
    with pytest.raises(FieldError, match="decimal places"):
        parse_amount("amount", raw, currency)


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param("\u0661\u0662\u0663", id="arabic-indic-digits"),
        pytest.param("\uff11\uff12\uff13", id="fullwidth-digits"),
        pytest.param("\u0967\u0968.\u0969\u096a", id="devanagari-digits"),
    ],
)
def test_parse_amount_refuses_non_ascii_digits(raw: str) -> None:
    # "an amount such as 1234.56": re's \d also matches other scripts' digits, which
    # Decimal then reads; an importer should refuse them rather than guess.
    with pytest.raises(FieldError):
        parse_amount("amount", raw, "USD")


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        ("-5", "negative"),
        ("10.001", "more than 2 decimal places for USD"),
        ("", "is required"),
        (1.5, "float"),
    ],
)
def test_parse_amount_says_why(raw: Any, fragment: str) -> None:
    with pytest.raises(FieldError, match=fragment):
        parse_amount("amount", raw, "USD")


@pytest.mark.parametrize(
    ("minor", "currency", "expected"),
    [
        (0, "USD", "0.00"),
        (5, "USD", "0.05"),
        (123456, "USD", "1234.56"),
        (1234, "JPY", "1234"),
        (5, "KWD", "0.005"),
        (1000500, "KWD", "1000.500"),
    ],
)
def test_format_minor(minor: int, currency: str, expected: str) -> None:
    assert format_minor(minor, currency) == expected


def _thousands(plain: str) -> str:
    whole, point, fraction = plain.partition(".")
    return f"{int(whole):,}{point}{fraction}"


@given(minor=st.integers(min_value=0, max_value=10**12 - 1), currency=st.sampled_from(CURRENCIES))
def test_amount_round_trips_through_format_minor(minor: int, currency: str) -> None:
    plain = format_minor(minor, currency)
    assert parse_amount("amount", plain, currency) == minor
    assert parse_amount("amount", _thousands(plain), currency) == minor


@given(raw=st.text(), currency=st.sampled_from(CURRENCIES))
def test_parse_amount_never_raises_anything_but_field_error(raw: str, currency: str) -> None:
    try:
        result = parse_amount("amount", raw, currency)
    except FieldError as exc:
        refused = exc
    else:
        assert isinstance(result, int) and 0 <= result < 10**15
        return
    assert refused.column == "amount"


# --- parse_phone -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        "(617) 555-0199",
        "617.555.0199",
        "617-555-0199",
        "+1 617 555 0199",
        "+1-617-555-0199",
        "1 (617) 555-0199",
        "6175550199",
        " +16175550199 ",
    ],
)
def test_parse_phone_spellings_give_one_e164(raw: str) -> None:
    phone = parse_phone("phone", raw, "US")
    assert phone.e164 == "+16175550199"
    assert phone.timezones == ("America/New_York",)


def test_parse_phone_international_number_ignores_region() -> None:
    assert parse_phone("phone", "+1 617 555 0199", "GB").e164 == "+16175550199"


@pytest.mark.parametrize(
    ("declared", "kind"),
    [
        ("mobile", "mobile"),
        ("cell", "mobile"),
        ("Cell", "mobile"),
        (" MOBILE ", "mobile"),
        ("landline", "landline"),
        ("home", "landline"),
        ("fixed", "landline"),
        ("work", "work"),
        # Not declared: what the numbering plan says. US numbers are ambiguous -> unknown.
        (None, "unknown"),
        ("", "unknown"),
    ],
)
def test_parse_phone_declared_kind(declared: str | None, kind: str) -> None:
    assert parse_phone("phone", "(617) 555-0199", "US", declared).kind == kind


def test_parse_phone_kind_from_numbering_plan_outside_north_america() -> None:
    assert parse_phone("phone", "07400 123456", "GB").kind == "mobile"
    assert parse_phone("phone", "020 7946 0018", "GB").kind == "landline"


@pytest.mark.parametrize("declared", ["pager", "fax", "mobile phone"])
def test_parse_phone_unknown_declared_kind_is_refused_on_the_type_column(declared: str) -> None:
    with pytest.raises(FieldError) as caught:
        parse_phone("phone", "(617) 555-0199", "US", declared)
    assert caught.value.column == "phone_type"


@pytest.mark.parametrize("raw", ["555", "+1 000 000 0000", "hello", "", "617 555 019"])
def test_parse_phone_refuses_invalid_numbers(raw: str) -> None:
    with pytest.raises(FieldError) as caught:
        parse_phone("phone", raw, "US")
    assert caught.value.column == "phone"


def test_parse_phone_alaska_number_may_be_in_two_zones() -> None:
    zones = parse_phone("phone", "(907) 555-0123", "US").timezones
    assert len(zones) == 2
    assert set(zones) == {"America/Anchorage", "America/Adak"}


AREA_CODES = ["212", "305", "312", "415", "503", "602", "617", "702", "808", "206"]
SPELLINGS: list[Callable[[str, str], str]] = [
    lambda area, line: f"({area}) 555-{line}",
    lambda area, line: f"{area}.555.{line}",
    lambda area, line: f"{area}-555-{line}",
    lambda area, line: f"{area} 555 {line}",
    lambda area, line: f"{area}555{line}",
    lambda area, line: f"1{area}555{line}",
    lambda area, line: f"1 ({area}) 555-{line}",
    lambda area, line: f"1-{area}-555-{line}",
    lambda area, line: f"+1 {area} 555 {line}",
    lambda area, line: f"+1-{area}-555-{line}",
    lambda area, line: f"+1 ({area}) 555-{line}",
    lambda area, line: f"+1{area}555{line}",
]


@given(
    area=st.sampled_from(AREA_CODES),
    line=st.integers(min_value=100, max_value=199).map(lambda n: f"{n:04d}"),
)
def test_every_spelling_parses_to_the_same_e164(area: str, line: str) -> None:
    expected = f"+1{area}555{line}"
    for spell in SPELLINGS:
        assert parse_phone("phone", spell(area, line), "US").e164 == expected


@given(raw=st.text())
def test_parse_phone_never_raises_anything_but_field_error(raw: str) -> None:
    try:
        phone = parse_phone("phone", raw, "US")
    except FieldError as exc:
        refused = exc
    else:
        assert phone.e164.startswith("+")
        return
    assert refused.column == "phone"


# --- parse_email -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("ana@example.com", "ana@example.com"),
        ("Ana.Lopez@EXAMPLE.COM", "Ana.Lopez@example.com"),
        ("  ana@Example.Org ", "ana@example.org"),
    ],
)
def test_parse_email_normalizes_the_domain(raw: str, expected: str) -> None:
    assert parse_email("email", raw) == expected


@pytest.mark.parametrize("raw", ["bad@", "a..b@example.com", "no-at-sign", "", "@example.com"])
def test_parse_email_refuses(raw: str) -> None:
    with pytest.raises(FieldError) as caught:
        parse_email("email", raw)
    assert caught.value.column == "email"


# --- parse_timezone --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("America/Chicago", "America/Chicago"),
        (" Europe/Madrid ", "Europe/Madrid"),
        ("UTC", "UTC"),
    ],
)
def test_parse_timezone_accepts_iana_names(raw: str, expected: str) -> None:
    assert parse_timezone("timezone", raw) == expected


@pytest.mark.parametrize("raw", ["Mars/Olympus_Mons", "", "Eastern", None])
def test_parse_timezone_refuses(raw: str | None) -> None:
    with pytest.raises(FieldError) as caught:
        parse_timezone("timezone", raw)
    assert caught.value.column == "timezone"


# --- parse_jurisdiction ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("us-ma", "US-MA"),
        ("US-MA", "US-MA"),
        ("us_ca", "US-CA"),
        (" US-NY ", "US-NY"),
        ("US", "US"),
        ("ca", "CA"),
    ],
)
def test_parse_jurisdiction_accepts(raw: str, expected: str) -> None:
    assert parse_jurisdiction("jurisdiction", raw) == expected


@pytest.mark.parametrize("raw", ["US-XX", "XX", "", "Massachusetts", "US-MASS"])
def test_parse_jurisdiction_refuses(raw: str) -> None:
    with pytest.raises(FieldError) as caught:
        parse_jurisdiction("jurisdiction", raw)
    assert caught.value.column == "jurisdiction"


# --- parse_locale ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "default", "expected"),
    [
        ("es-US", "en_US", "es_US"),
        ("es_US", "en_US", "es_US"),
        ("en_US", "es_US", "en_US"),
        ("fr", "en_US", "fr"),
        ("", "en_US", "en_US"),
        (None, "es_US", "es_US"),
    ],
)
def test_parse_locale(raw: str | None, default: str, expected: str) -> None:
    assert parse_locale("locale", raw, default) == expected


@pytest.mark.parametrize("raw", ["xx_YY_bad", "klingon", "es-"])
def test_parse_locale_refuses(raw: str) -> None:
    with pytest.raises(FieldError) as caught:
        parse_locale("locale", raw, "en_US")
    assert caught.value.column == "locale"


def test_parse_locale_refuses_a_bad_default_when_empty() -> None:
    with pytest.raises(FieldError):
        parse_locale("locale", "", "xx_YY_bad")


# --- parse_bool ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("true", True),
        ("TRUE", True),
        ("yes", True),
        ("Y", True),
        ("1", True),
        (True, True),
        (1, True),
        ("false", False),
        ("No", False),
        ("0", False),
        ("", False),
        ("  ", False),
        (None, False),
        (False, False),
    ],
)
def test_parse_bool(raw: Any, expected: bool) -> None:
    assert parse_bool("sms_consent", raw) is expected


@pytest.mark.parametrize("raw", ["maybe", "2", "on", "yes please"])
def test_parse_bool_refuses(raw: str) -> None:
    with pytest.raises(FieldError) as caught:
        parse_bool("sms_consent", raw)
    assert caught.value.column == "sms_consent"


# --- parse_date ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("2026-02-28", date(2026, 2, 28)),
        ("2024-02-29", date(2024, 2, 29)),
        (" 2026-12-31 ", date(2026, 12, 31)),
    ],
)
def test_parse_date(raw: str, expected: date) -> None:
    assert parse_date("due_date", raw) == expected


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        ("2026-02-30", "is not a calendar date"),
        ("2025-02-29", "is not a calendar date"),
        ("2026-13-01", "is not a calendar date"),
        ("02/01/2026", "is not an ISO date"),
        ("2026-2-1", "is not an ISO date"),
        ("2026-02-01T00:00:00", "is not an ISO date"),
        ("", "is required"),
    ],
)
def test_parse_date_refuses_with_a_message(raw: str, fragment: str) -> None:
    with pytest.raises(FieldError, match=fragment) as caught:
        parse_date("due_date", raw)
    assert caught.value.column == "due_date"


# --- parse_instant ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("2026-01-02T10:00:00-05:00", datetime(2026, 1, 2, 15, 0, tzinfo=UTC)),
        ("2026-01-02T10:00:00Z", datetime(2026, 1, 2, 10, 0, tzinfo=UTC)),
        ("2026-01-02T10:00:00+00:00", datetime(2026, 1, 2, 10, 0, tzinfo=UTC)),
        ("2026-06-03T10:30:00+02:00", datetime(2026, 6, 3, 8, 30, tzinfo=UTC)),
        ("2026-01-02", datetime(2026, 1, 2, 0, 0, tzinfo=UTC)),
    ],
)
def test_parse_instant_gives_utc(raw: str, expected: datetime) -> None:
    parsed = parse_instant("paid_at", raw)
    assert parsed == expected
    assert parsed.utcoffset() == timedelta(0)


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        ("2026-01-02T10:00:00", "has no UTC offset"),
        ("2026-01-02 10:00", "has no UTC offset"),
        ("yesterday", "is not an ISO timestamp"),
        ("", "is not an ISO timestamp"),
    ],
)
def test_parse_instant_requires_an_offset(raw: str, fragment: str) -> None:
    with pytest.raises(FieldError, match=fragment) as caught:
        parse_instant("paid_at", raw)
    assert caught.value.column == "paid_at"
