"""Parsers for one field each: a raw value in, a clean value out, or a FieldError saying why.

Pure functions with no I/O; the importers, the payment commands and the demo data all use
them, so a value accepted in one place is accepted everywhere.
"""

from __future__ import annotations

import re
import zoneinfo
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Context, Decimal, InvalidOperation
from functools import cache
from typing import Any

import phonenumbers
import pycountry
from babel import Locale, UnknownLocaleError
from email_validator import EmailNotValidError, validate_email
from phonenumbers import PhoneNumberType
from phonenumbers import timezone as phone_timezones


class FieldError(ValueError):
    """One value that cannot be accepted, with the column it came from."""

    def __init__(self, column: str, message: str) -> None:
        super().__init__(f"{column}: {message}")
        self.column = column
        self.message = message


def text_of(value: Any) -> str:
    """A raw cell as stripped text ("" for missing). JSON objects and lists have no text:
    rows are checked for them first (see ``structured_columns``)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value).strip()


def structured_columns(values: dict[str, Any]) -> list[str]:
    """Columns whose value is a JSON object or list, where a single value belongs."""
    return sorted(name for name, value in values.items() if isinstance(value, (dict, list)))


def unstorable(value: Any) -> str | None:
    """Why a text value cannot be stored, or None: PostgreSQL holds neither a NUL nor half
    of a surrogate pair (which a JSON string may spell, ``"\\ud800"``), and would refuse the
    whole batch for one of them."""
    if not isinstance(value, str):
        return None
    if "\x00" in value:
        return "contains a NUL character"
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return "contains half of a surrogate pair"
    return None


def required_text(column: str, value: Any, max_length: int) -> str:
    cleaned = text_of(value)
    if not cleaned:
        raise FieldError(column, "is required")
    if len(cleaned) > max_length:
        raise FieldError(column, f"is longer than {max_length} characters")
    return cleaned


_TRUE = frozenset({"true", "t", "yes", "y", "1"})
_FALSE = frozenset({"false", "f", "no", "n", "0", ""})


def parse_bool(column: str, value: Any) -> bool:
    """true/false, yes/no, 1/0 in any case; empty is false (no consent recorded)."""
    if isinstance(value, bool):
        return value
    cleaned = text_of(value).lower()
    if cleaned in _TRUE:
        return True
    if cleaned in _FALSE:
        return False
    raise FieldError(column, f"{text_of(value)!r} is not true or false")


def parse_date(column: str, value: Any) -> date:
    cleaned = text_of(value)
    if not cleaned:
        raise FieldError(column, "is required")
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", cleaned):
        raise FieldError(column, f"{cleaned!r} is not an ISO date (YYYY-MM-DD)")
    try:
        parsed = date.fromisoformat(cleaned)
    except ValueError as exc:
        raise FieldError(column, f"{cleaned!r} is not a calendar date ({exc})") from None
    _in_range(column, cleaned, parsed)
    return parsed


# Days are counted from dates (a cadence's steps up to 9,999 days around a due date) and
# instants moved between time zones: near year 1 or 9999 that overflows, far from any
# debt's dates. Such a date is a typo.
FIRST_YEAR, LAST_YEAR = 1900, 2199


def _in_range(column: str, cleaned: str, parsed: date) -> None:
    if not FIRST_YEAR <= parsed.year <= LAST_YEAR:
        raise FieldError(column, f"{cleaned!r} is out of range (years {FIRST_YEAR} to {LAST_YEAR})")


def parse_instant(column: str, value: Any) -> datetime:
    """An ISO 8601 timestamp with its offset; a bare date means midnight UTC."""
    cleaned = text_of(value)
    try:
        parsed = datetime.fromisoformat(cleaned)
    except ValueError:
        raise FieldError(
            column, f"{cleaned!r} is not an ISO timestamp (2025-06-03T10:30:00-04:00)"
        ) from None
    if parsed.tzinfo is None:
        if len(cleaned) == 10:
            parsed = parsed.replace(tzinfo=UTC)
        else:
            raise FieldError(column, f"{cleaned!r} has no UTC offset (add Z or -04:00)")
    # Checked before moving it to UTC, which overflows at year 1 with an offset east of it.
    _in_range(column, cleaned, parsed)
    return parsed.astimezone(UTC)


# ISO 4217 minor units. Every active currency not listed has 2. (CLDR's display digits,
# which Babel reports, differ for some: RSD, IQD, IRR, LBP... have minor units in ISO.)
_MINOR_UNITS_0 = frozenset(
    [
        "BIF",
        "CLP",
        "DJF",
        "GNF",
        "ISK",
        "JPY",
        "KMF",
        "KRW",
        "PYG",
        "RWF",
        "UGX",
        "UYI",
        "VND",
        "VUV",
        "XAF",
        "XOF",
        "XPF",
    ]
)
_MINOR_UNITS_3 = frozenset(["BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"])
_MINOR_UNITS_4 = frozenset(["CLF", "UYW"])
# X-codes that are money; the others are metals, funds and test codes.
_X_CURRENCIES = frozenset(["XAF", "XCD", "XCG", "XOF", "XPF"])


@cache
def known_currencies() -> frozenset[str]:
    """Active ISO 4217 currencies (historic ones such as DEM and non-money codes refused)."""
    codes = {currency.alpha_3 for currency in pycountry.currencies}
    return frozenset(c for c in codes if not c.startswith("X") or c in _X_CURRENCIES)


def parse_currency(column: str, value: Any, default: str) -> str:
    code = text_of(value).upper() or default.upper()
    if code not in known_currencies():
        raise FieldError(column, f"{code!r} is not an active ISO 4217 currency code")
    return code


def currency_exponent(currency: str) -> int:
    """Digits after the decimal point (ISO 4217 minor units): 2 for USD, 0 for JPY, 3 for KWD."""
    if currency in _MINOR_UNITS_0:
        return 0
    if currency in _MINOR_UNITS_3:
        return 3
    if currency in _MINOR_UNITS_4:
        return 4
    return 2


# ASCII digits only: Decimal would also read Arabic-Indic or full-width digits.
_AMOUNT = re.compile(r"[0-9]{1,3}(,[0-9]{3})+(\.[0-9]+)?|[0-9]+(\.[0-9]+)?|\.[0-9]+")
# A dot followed by exactly three digits: a decimal point, or a thousands separator. Not
# after a lone 0 (0.500): no amount's thousands group starts with nothing before it.
_DOT_THOUSANDS = re.compile(r"-?[1-9][0-9]*\.[0-9]{3}")


def parse_amount(column: str, value: Any, currency: str, *, grouping: bool = True) -> int:
    """A non-negative amount in the currency's minor units, computed in decimal, never float.

    Accepts ``1234.5``, ``1,234.50`` and JSON numbers; refuses more decimals than the
    currency has (``10.001`` USD), signs, symbols and exponents, rather than guessing.
    """
    amount = parse_decimal_amount(column, value, grouping=grouping)
    return minor_units(column, amount, currency, grouping=grouping)


def parse_decimal_amount(column: str, value: Any, *, grouping: bool = True) -> Decimal:
    """A non-negative amount as written, exact (``parse_amount`` without the currency, whose
    ``minor_units`` tells whether a dot may group thousands)."""
    if isinstance(value, float):  # JSON Lines are parsed with Decimal; a float is a bug
        raise FieldError(column, "must be given as text or an exact decimal, not a float")
    cleaned = text_of(value)
    if not cleaned:
        raise FieldError(column, "is required")
    if cleaned.startswith("-"):
        raise FieldError(column, f"{cleaned!r} is negative; record credits as payments")
    if not _AMOUNT.fullmatch(cleaned):
        raise FieldError(column, f"{cleaned!r} is not an amount such as 1234.56 or 1,234.56")
    if "," in cleaned and not grouping:
        # In a semicolon-separated file a comma is as likely a decimal mark (12,50) as a
        # thousands separator (12,500): refuse rather than risk a thousandfold error.
        raise FieldError(
            column, f"{cleaned!r} is ambiguous in a ';'-separated file: write 12500 or 12.50"
        )
    try:
        return Decimal(cleaned.replace(",", ""))
    except InvalidOperation:  # pragma: no cover - the pattern admits only valid decimals
        raise FieldError(column, f"{cleaned!r} is not a number") from None


def _readings(written: str, exponent: int) -> str:
    """The ways to write ``written`` (``1.500``) that cannot be misread: as a whole number,
    and as a decimal where the currency has room for it (never ``written`` itself)."""
    thousands = written.replace(".", "").lstrip("0") or "0"
    decimal = format(Decimal(written).normalize(), "f")
    places = len(decimal.partition(".")[2])
    if decimal == written or places > exponent:
        return thousands
    return f"{thousands} or {decimal}"


def minor_units(column: str, amount: Decimal, currency: str, *, grouping: bool = True) -> int:
    """``amount`` (from ``parse_decimal_amount``) in ``currency``'s minor units; refused when
    it has more decimals than the currency has, or is too large, and without ``grouping`` (a
    ';' file) when a dot in it may group thousands."""
    exponent = currency_exponent(currency)
    written = str(amount)
    if not grouping and exponent != 3 and _DOT_THOUSANDS.fullmatch(written):
        # The spreadsheets that save with ';' group thousands with a dot (German Excel's
        # 1.500 is fifteen hundred): the same thousandfold error the other way round. Not
        # in a currency with three decimals, where 12.345 KWD is how the amount is written.
        raise FieldError(
            column,
            f"{written!r} is ambiguous in a ';'-separated file (a dot may group thousands "
            f"there): write {_readings(written, exponent)}",
        )
    if exponent == 0 and _DOT_THOUSANDS.fullmatch(written):
        # A currency without decimals has no use for a decimal point: 12.000 yen is twelve
        # thousand in most of the world's spreadsheets, not twelve.
        raise FieldError(
            column,
            f"{written!r} is ambiguous for {currency}, which has no decimals (a dot may group "
            f"thousands): write {_readings(written, exponent)}",
        )
    # Enough precision for every digit given: the default 28 would round extra decimals away.
    minor = amount.scaleb(exponent, context=Context(prec=len(written) + exponent + 2))
    if minor != minor.to_integral_value():
        raise FieldError(
            column, f"{written!r} has more than {exponent} decimal places for {currency}"
        )
    if minor >= 10**15:
        raise FieldError(column, f"{written!r} is too large")
    return int(minor)


def format_minor(amount_minor: int, currency: str) -> str:
    """Minor units back to a plain decimal string (for files and logs, not for debtors)."""
    exponent = currency_exponent(currency)
    return str(Decimal(amount_minor).scaleb(-exponent).quantize(Decimal(1).scaleb(-exponent)))


@dataclass(frozen=True)
class Phone:
    e164: str
    kind: str  # mobile, landline, work or unknown
    timezones: tuple[str, ...]  # the IANA zones the number may be in


_PHONE_KINDS = {
    PhoneNumberType.MOBILE: "mobile",
    PhoneNumberType.FIXED_LINE: "landline",
}
_DECLARED_KINDS = {
    "mobile": "mobile",
    "cell": "mobile",
    "landline": "landline",
    "home": "landline",
    "fixed": "landline",
    "work": "work",
}


def parse_phone(column: str, value: Any, region: str, declared_kind: Any = None) -> Phone:
    """A phone number in E.164, its kind and its possible time zones.

    National numbers are read in ``region``. The kind is the one declared in the file
    when given, else what the numbering plan says (North American numbers are often
    ambiguous: then ``unknown``, which compliance treats as possibly mobile).
    """
    cleaned = text_of(value)
    try:
        number = phonenumbers.parse(cleaned, region)
    except phonenumbers.NumberParseException as exc:
        raise FieldError(column, f"{cleaned!r} is not a phone number ({exc._msg})") from None
    if not phonenumbers.is_valid_number(number):
        raise FieldError(column, f"{cleaned!r} is not a valid phone number (region {region})")
    kind_text = text_of(declared_kind).lower()
    if kind_text:
        if kind_text not in _DECLARED_KINDS:
            raise FieldError(
                f"{column}_type", f"{kind_text!r} is not one of mobile, landline, work"
            )
        kind = _DECLARED_KINDS[kind_text]
    else:
        kind = _PHONE_KINDS.get(phonenumbers.number_type(number), "unknown")
    zones = tuple(
        zone
        for zone in phone_timezones.time_zones_for_number(number)
        if zone in available_timezones()
    )
    return Phone(
        phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164), kind, zones
    )


def parse_email(column: str, value: Any) -> str:
    """A syntactically valid address, normalized (domain lower-cased); no DNS look-up."""
    cleaned = text_of(value)
    try:
        return email_address(cleaned)
    except ValueError as exc:
        raise FieldError(column, str(exc)) from None


def email_address(text: str) -> str:
    """``text`` normalized if it is one syntactically valid address (no display name, no
    DNS look-up), else a ValueError saying why."""
    try:
        return validate_email(text, check_deliverability=False).normalized
    except EmailNotValidError as exc:
        raise ValueError(f"{text!r} is not a valid email address ({exc})") from None


@cache
def available_timezones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def parse_timezone(column: str, value: Any) -> str:
    cleaned = text_of(value)
    if cleaned not in available_timezones():
        raise FieldError(column, f"{cleaned!r} is not an IANA time zone such as America/Chicago")
    return cleaned


@cache
def _subdivision_codes() -> frozenset[str]:
    return frozenset(sub.code for sub in pycountry.subdivisions)


@cache
def _country_codes() -> frozenset[str]:
    return frozenset(country.alpha_2 for country in pycountry.countries)


def parse_jurisdiction(column: str, value: Any) -> str:
    """ISO 3166-2 (``US-MA``), or a bare ISO 3166-1 country (``US``) for national rules only."""
    cleaned = text_of(value).upper().replace("_", "-")
    if cleaned in _subdivision_codes() or cleaned in _country_codes():
        return cleaned
    raise FieldError(column, f"{cleaned!r} is not an ISO 3166-2 code such as US-MA")


@cache
def _parse_locale(raw: str) -> str | None:
    try:
        return str(Locale.parse(raw.replace("-", "_")))
    except (ValueError, UnknownLocaleError):
        return None


def parse_locale(column: str, value: Any, default: str) -> str:
    raw = text_of(value) or default
    parsed = _parse_locale(raw)
    if parsed is None:
        raise FieldError(column, f"{raw!r} is not a known locale such as en_US or es_US")
    return parsed


def parse_choice(column: str, value: Any, choices: frozenset[str], default: str) -> str:
    cleaned = text_of(value).lower() or default
    if cleaned not in choices:
        raise FieldError(column, f"{cleaned!r} is not one of {', '.join(sorted(choices))}")
    return cleaned
