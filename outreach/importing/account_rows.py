"""One account row in, one validated AccountRecord out, or every reason it is refused."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import date, datetime
from decimal import Decimal
from functools import cache
from typing import Any, TypeVar

from outreach import store
from outreach.compliance.rules import load_ruleset
from outreach.importing.fields import (
    FieldError,
    Phone,
    minor_units,
    parse_amount,
    parse_bool,
    parse_choice,
    parse_currency,
    parse_date,
    parse_decimal_amount,
    parse_email,
    parse_instant,
    parse_jurisdiction,
    parse_locale,
    parse_phone,
    parse_timezone,
    required_text,
    structured_columns,
    text_of,
    unstorable,
)
from outreach.models import Channel, CollectorType

REQUIRED_COLUMNS = frozenset({"reference", "name", "balance", "due_date"})
OPTIONAL_COLUMNS = frozenset(
    {
        "currency",
        "phone",
        "phone_type",
        "phone2",
        "phone2_type",
        "phone2_sms_consent",
        "phone2_voice_consent",
        "email",
        "email_type",
        "timezone",
        "jurisdiction",
        "locale",
        "sms_consent",
        "voice_consent",
        "email_consent",
        "consent_source",
        "consent_at",
        "cadence",
        "collector_type",
        "servicer_account_no",
        "time_barred_on",
        # Written by --rejects next to the original columns; ignored on the way back in.
        "row",
        "errors",
    }
)
KNOWN_COLUMNS = REQUIRED_COLUMNS | OPTIONAL_COLUMNS
IGNORED_COLUMNS = frozenset({"row", "errors"})
_COLLECTOR_TYPES = frozenset(member.value for member in CollectorType)
_EMAIL_KINDS = frozenset({"personal", "work", "unknown"})
# Each consent column and the column of the contact point it is given for.
_CONSENT_ADDRESS = {
    "sms_consent": "phone",
    "voice_consent": "phone",
    "phone2_sms_consent": "phone2",
    "phone2_voice_consent": "phone2",
    "email_consent": "email",
}
T = TypeVar("T")


@dataclass(frozen=True)
class ImportDefaults:
    """What a row gets where it leaves a column empty (from Settings)."""

    region: str
    locale: str
    currency: str
    cadence: str
    collector_type: str
    consent_source: str
    consent_at: datetime
    known_cadences: frozenset[str]
    # False in ';'-separated files, where "12,500" could be 12.50 or 12500.
    amount_grouping: bool = True
    # A state's time zones ("US-CA" -> ("America/Los_Angeles",)), from the compliance rule
    # set in use; the shipped rule set's when not given.
    region_zones: Callable[[str], tuple[str, ...]] | None = None


@dataclass(frozen=True)
class ContactRecord:
    channel: str
    address: str
    kind: str
    priority: int
    consent: bool
    timezone: str | None
    # Whether the row has this consent's column: without it, an existing consent stays.
    consent_given: bool = True
    # Whether the row has this contact point's type column (phone_type, phone2_type or
    # email_type): without it, an existing contact point keeps the kind it has.
    kind_given: bool = True


@dataclass(frozen=True)
class AccountRecord:
    row: int
    reference: str
    name: str
    balance_minor: int
    currency: str
    due_date: date
    timezone: str | None
    jurisdiction: str | None
    locale: str
    cadence: str
    collector_type: str
    contacts: tuple[ContactRecord, ...]
    consent_source: str
    consent_at: datetime
    servicer_account_no: str | None = None
    # The day from which the debt is time-barred, as the operator says (None: it is not).
    time_barred_on: date | None = None
    # The columns the row has: a column missing from the file leaves its value alone on
    # an existing account (a file of balances only must not wipe phones or time zones).
    present: frozenset[str] = frozenset()
    # A row without a currency column: its balance as written, to be read in the account's
    # own currency (``in_currency``); until then ``balance_minor`` means nothing.
    balance_written: Decimal | None = None
    # Whether a comma or dot may group thousands in ``balance_written`` (not in a ';' file).
    balance_grouping: bool = True
    # The primary phone's zone, where the row gives no timezone and the phone has one zone
    # only: ``timezone`` where the state allows it (``zone_in_state``).
    inferred_zone: str | None = None
    # Consent columns false (or empty) in a file without their address column: the consent
    # is withdrawn from the account's contact points they stand for, whatever the address.
    revoked: frozenset[str] = frozenset()

    def account_values(self) -> dict[str, Any]:
        """Every column an import owns on the account row (for a new account)."""
        return {
            "name": self.name,
            "balance_minor": self.balance_minor,
            "currency": self.currency,
            "due_date": self.due_date,
            "timezone": self.timezone,
            "jurisdiction": self.jurisdiction,
            "locale": self.locale,
            "cadence": self.cadence,
            "collector_type": self.collector_type,
            "servicer_account_no": self.servicer_account_no,
            "time_barred_on": self.time_barred_on,
        }

    def given_values(self) -> dict[str, Any]:
        """The columns this row sets on an existing account."""
        return {
            name: value
            for name, value in self.account_values().items()
            if _SOURCE_COLUMN.get(name, name) in self.present or name in _ALWAYS_GIVEN
        }

    def manages(self, channel: str, priority: int) -> bool:
        """Whether the row speaks for the contact points of this channel and priority: a
        phone of priority 0 belongs to the ``phone`` column, another to ``phone2``."""
        if channel in (Channel.SMS, Channel.VOICE):
            return ("phone" if priority == 0 else "phone2") in self.present
        return "email" in self.present

    def revokes(self, channel: str, priority: int) -> bool:
        """Whether the row withdraws the consent of a contact point it does not name: its
        consent column is false in a file without the point's address column."""
        if channel in (Channel.SMS, Channel.VOICE):
            prefix = "" if priority == 0 else "phone2_"
            return f"{prefix}{channel}_consent" in self.revoked
        return "email_consent" in self.revoked

    def in_currency(self, currency: str) -> AccountRecord:
        """The record with its balance read in ``currency`` (the account's own, for a row
        without a currency column); raises FieldError when the figure does not fit it."""
        if self.balance_written is None:
            return self
        balance = minor_units(
            "balance", self.balance_written, currency, grouping=self.balance_grouping
        )
        return replace(self, balance_minor=balance, currency=currency, balance_written=None)

    def in_state(
        self, jurisdiction: str | None, region_zones: Callable[[str], tuple[str, ...]] | None
    ) -> AccountRecord:
        """The record with a time zone inferred from its phone checked against the state
        stored on the account (``zone_in_state``), for a row without a jurisdiction column."""
        if self.inferred_zone is None or "jurisdiction" in self.present:
            return self
        zone = zone_in_state(self.inferred_zone, jurisdiction, region_zones)
        return replace(self, timezone=zone)


_SOURCE_COLUMN = {"balance_minor": "balance"}
_ALWAYS_GIVEN = frozenset({"name", "balance_minor", "due_date"})


class RowRejected(Exception):
    def __init__(self, errors: list[str]) -> None:
        super().__init__("; ".join(errors))
        self.errors = errors


class _Collector:
    """Runs each field's parser and keeps every error, so a row reports all its problems."""

    def __init__(self) -> None:
        self.errors: list[str] = []

    def take(self, parse: Callable[..., T], *args: Any) -> T | None:
        try:
            result: T = parse(*args)
        except FieldError as exc:
            self.errors.append(str(exc))
            return None
        return result


def parse_account_row(
    number: int, values: dict[str, Any], defaults: ImportDefaults
) -> AccountRecord:
    """Validate one row; raise RowRejected listing every problem found in it."""
    get = values.get
    check = _Collector()
    structured = [name for name in structured_columns(values) if name not in IGNORED_COLUMNS]
    if structured:
        raise RowRejected(
            [f"{name}: expected a single value, not a JSON object or list" for name in structured]
        )
    unstored = sorted((name, why) for name, value in values.items() if (why := unstorable(value)))
    if unstored:
        raise RowRejected([f"{name}: {why}" for name, why in unstored])
    reference = check.take(required_text, "reference", get("reference"), 64)
    name = check.take(required_text, "name", get("name"), 200)
    currency = check.take(parse_currency, "currency", get("currency"), defaults.currency)
    balance: int | None = None
    balance_written: Decimal | None = None
    if "currency" in values:
        if currency:
            balance = check.take(
                lambda c, v, cur: parse_amount(c, v, cur, grouping=defaults.amount_grouping),
                "balance", get("balance"), currency,
            )  # fmt: skip
    else:
        # Without a currency column the figure is in the account's own currency, known
        # when the batch lands (the default currency's for a new account).
        balance_written = check.take(
            lambda c, v: parse_decimal_amount(c, v, grouping=defaults.amount_grouping),
            "balance", get("balance"),
        )  # fmt: skip
        balance = 0
    due_date = check.take(parse_date, "due_date", get("due_date"))
    locale = check.take(parse_locale, "locale", get("locale"), defaults.locale)
    cadence = check.take(_parse_cadence, get("cadence"), defaults)
    collector_type = check.take(
        parse_choice, "collector_type", get("collector_type"), _COLLECTOR_TYPES,
        defaults.collector_type,
    )  # fmt: skip
    jurisdiction = (
        check.take(parse_jurisdiction, "jurisdiction", get("jurisdiction"))
        if text_of(get("jurisdiction"))
        else None
    )
    explicit_zone = (
        check.take(parse_timezone, "timezone", get("timezone"))
        if text_of(get("timezone"))
        else None
    )
    consent_source = text_of(get("consent_source")) or defaults.consent_source[:200]
    consent_at = (
        check.take(parse_instant, "consent_at", get("consent_at"))
        if text_of(get("consent_at"))
        else defaults.consent_at
    )
    servicer_account_no = check.take(_parse_servicer_account_no, get("servicer_account_no"))
    # An empty cell: not time-barred (a present column that is empty means "none").
    time_barred_on = (
        check.take(parse_date, "time_barred_on", get("time_barred_on"))
        if text_of(get("time_barred_on"))
        else None
    )
    contacts, primary_phone, revoked = _contacts(values, defaults, check)
    if check.errors:
        raise RowRejected(check.errors)
    # Every parser above succeeded, so none of these is None.
    assert reference is not None and name is not None and currency is not None
    assert balance is not None and due_date is not None and locale is not None
    assert cadence is not None and collector_type is not None and consent_at is not None
    inferred_zone = None if explicit_zone else _single_zone(primary_phone)
    record = AccountRecord(
        row=number,
        reference=reference,
        name=name,
        balance_minor=balance,
        currency=currency,
        due_date=due_date,
        timezone=explicit_zone or zone_in_state(inferred_zone, jurisdiction, defaults.region_zones),
        jurisdiction=jurisdiction,
        locale=locale,
        cadence=cadence,
        collector_type=collector_type,
        contacts=tuple(contacts),
        consent_source=consent_source,
        consent_at=consent_at,
        servicer_account_no=servicer_account_no,
        time_barred_on=time_barred_on,
        present=frozenset(values),
        balance_written=balance_written,
        balance_grouping=defaults.amount_grouping,
        inferred_zone=inferred_zone,
        revoked=revoked,
    )
    too_long = _too_long(record)
    if too_long:
        raise RowRejected(too_long)
    return record


def _too_long(record: AccountRecord) -> list[str]:
    """Every value longer than its column in the database (PostgreSQL would refuse the
    whole batch for one of them)."""
    checks = [("accounts", name, value) for name, value in record.account_values().items()]
    checks.append(("contact_points", "consent_source", record.consent_source))
    for contact in record.contacts:
        checks += [
            ("contact_points", "address", contact.address),
            ("contact_points", "kind", contact.kind),
        ]
    errors: list[str] = []
    for table, column, value in checks:
        limit = _column_length(table, column)
        if isinstance(value, str) and limit is not None and len(value) > limit:
            shown = repr(value) if len(value) <= 40 else f"{value[:40]!r}..."
            message = f"{column}: {shown} is longer than {limit} characters"
            if message not in errors:
                errors.append(message)
    return errors


@cache
def _column_length(table: str, column: str) -> int | None:
    length = getattr(getattr(store, table).c[column].type, "length", None)
    return length if isinstance(length, int) else None


def reference_of(values: dict[str, Any]) -> str | None:
    """The reference a row names, as a valid row would have it (None if it has none)."""
    value = values.get("reference")
    if isinstance(value, (dict, list)):
        return None
    reference = text_of(value)
    if not reference or len(reference) > 64 or unstorable(reference):
        return None
    return reference


def _parse_servicer_account_no(value: Any) -> str | None:
    """A student loan's servicer account number when obtained (empty: not a student loan,
    or not known), in one spelling: ``servicer_number``."""
    number = text_of(value)
    if any(not character.isprintable() for character in number):
        raise FieldError("servicer_account_no", "contains a control character")
    number = servicer_number(number)
    if len(number) > 64:  # counted as stored: a capital may be longer ("ß" is "SS")
        raise FieldError("servicer_account_no", "longer than 64 characters")
    return number or None


# What separates the groups of an account number as people write it: not part of it.
_SEPARATORS = str.maketrans("", "", " -.\u00a0")


def servicer_number(number: str) -> str:
    """``number`` as it is stored and compared: in capitals, without spaces, hyphens or
    dots, so that "ln-77 0" and "LN 770" are one loan's number, as the servicer means."""
    return number.translate(_SEPARATORS).upper()


def _parse_cadence(value: Any, defaults: ImportDefaults) -> str:
    name = text_of(value) or defaults.cadence
    if name not in defaults.known_cadences:
        known = ", ".join(sorted(defaults.known_cadences)) or "none found"
        raise FieldError("cadence", f"{name!r} is not a cadence in schedules/ ({known})")
    return name


def _contacts(
    values: dict[str, Any], defaults: ImportDefaults, check: _Collector
) -> tuple[list[ContactRecord], Phone | None, frozenset[str]]:
    get = values.get
    # Every consent cell is checked, whether or not the row has a number or address for it.
    consents = {
        column: check.take(parse_bool, column, get(column))
        for column in _CONSENT_ADDRESS
        if column in values
    }
    revoked = frozenset(_revoked(consents, values))
    contacts: list[ContactRecord] = []
    primary: Phone | None = None
    phones = (
        # Consent columns name the primary phone; a second phone has its own consent
        # columns and, without them, no consent: consent given for one number is not
        # consent for another.
        ("phone", 0, "sms_consent", "voice_consent"),
        ("phone2", 1, "phone2_sms_consent", "phone2_voice_consent"),
    )
    seen: set[str] = set()
    for column, priority, sms_column, voice_column in phones:
        if not text_of(get(column)):
            continue
        kind_column = f"{column}_type"
        phone: Phone | None = check.take(
            parse_phone, column, get(column), defaults.region, get(kind_column)
        )
        sms_consent = consents.get(sms_column)
        voice_consent = consents.get(voice_column)
        if phone is None or phone.e164 in seen:
            continue
        seen.add(phone.e164)
        primary = primary or phone
        zone = _single_zone(phone)
        for channel, consent, consent_column in (
            (Channel.SMS, sms_consent, sms_column),
            (Channel.VOICE, voice_consent, voice_column),
        ):
            contacts.append(
                ContactRecord(channel, phone.e164, phone.kind, priority, bool(consent), zone,
                              consent_given=consent_column in values,
                              kind_given=kind_column in values)
            )  # fmt: skip
    if text_of(get("email")):
        email = check.take(parse_email, "email", get("email"))
        email_consent = consents.get("email_consent")
        kind = check.take(parse_choice, "email_type", get("email_type"), _EMAIL_KINDS, "unknown")
        if email is not None and kind is not None:
            contacts.append(
                ContactRecord(Channel.EMAIL, email, kind, 0, bool(email_consent), None,
                              consent_given="email_consent" in values,
                              kind_given="email_type" in values)
            )  # fmt: skip
    return contacts, primary, revoked


def _revoked(consents: dict[str, bool | None], values: dict[str, Any]) -> list[str]:
    """The consent columns that withdraw consent in a row naming no address for them (no
    such column in the file, or its cell empty).

    A revocation must never be dropped: it applies to the points on file, whatever their
    address. Consent given is another matter: it is for the number the debtor gave, which
    the row does not name (the source system's may have changed since): it changes
    nothing, and the consent on file stands as it is."""
    return [
        column
        for column, consent in consents.items()
        if consent is False and not text_of(values.get(_CONSENT_ADDRESS[column]))
    ]


def zone_in_state(
    zone: str | None,
    jurisdiction: str | None,
    region_zones: Callable[[str], tuple[str, ...]] | None,
) -> str | None:
    """The account's zone inferred from its primary phone (``zone``, the number's only
    one): kept where the account's state (or one the rule set gives no zones) has that one
    zone and no other. Compliance reads the account's zone as where the debtor lives, and
    the state's zones only when it has none (or one outside the state): a Californian with
    a New York mobile must not be texted at 05:30 Pacific, nor a Texan with a Dallas number
    called at 07:30 in El Paso (Mountain time). Without a state none is kept: a later file
    naming the state without a timezone column would leave it standing for the state's
    zones. The phone's zone is lost to nothing: compliance weighs each phone's zone as a
    candidate anyway."""
    if zone is None or jurisdiction is None or "-" not in jurisdiction:
        return None
    zones = (region_zones or _shipped_region_zones())(jurisdiction)
    return zone if not zones or tuple(zones) == (zone,) else None


@cache
def _shipped_region_zones() -> Callable[[str], tuple[str, ...]]:
    return load_ruleset().region_zones


def _single_zone(phone: Phone | None) -> str | None:
    if phone is not None and len(phone.timezones) == 1:
        return phone.timezones[0]
    return None
