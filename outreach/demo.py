"""Realistic demo accounts: spread over US time zones and states, due dates from 30 days
ahead to 120 days past, some without consent, some opted out, a few paid.

Phone numbers are in the 555-0100..0199 range North American numbering reserves for
fiction, and emails use the example.* domains reserved for documentation, so demo data can
never reach a real person even with a real provider configured.
"""

from __future__ import annotations

import random
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from faker import Faker
from sqlalchemy import Connection, Engine, insert, select

from outreach import store
from outreach.clock import Clock
from outreach.errors import NotFoundError
from outreach.importing.account_rows import ImportDefaults
from outreach.importing.accounts import ImportSummary, import_account_rows
from outreach.importing.fields import parse_phone
from outreach.importing.reader import RawRow
from outreach.models import Channel, ComplianceEventKind, Role, SuppressionReason
from outreach.opt_outs import hold_addresses
from outreach.users import create_user, user_by_name


@dataclass(frozen=True)
class Region:
    jurisdiction: str
    timezone: str
    area_codes: tuple[str, ...]


# Area codes chosen so each maps to one zone, except Alaska's 907 (two zones) and a few
# rows left without a time zone, which exercise inference and the all-zones fallback.
REGIONS = (
    Region("US-MA", "America/New_York", ("617", "508", "413")),
    Region("US-NY", "America/New_York", ("212", "718", "518")),
    Region("US-FL", "America/New_York", ("305", "407", "813")),
    Region("US-GA", "America/New_York", ("404", "678")),
    Region("US-NC", "America/New_York", ("704", "919")),
    Region("US-IL", "America/Chicago", ("312", "773", "217")),
    Region("US-TX", "America/Chicago", ("214", "713", "512")),
    Region("US-MN", "America/Chicago", ("612", "651")),
    Region("US-TN", "America/Chicago", ("615", "901")),
    Region("US-CO", "America/Denver", ("303", "719")),
    Region("US-AZ", "America/Phoenix", ("602", "520")),
    Region("US-UT", "America/Denver", ("801",)),
    Region("US-CA", "America/Los_Angeles", ("213", "415", "619", "916")),
    Region("US-WA", "America/Los_Angeles", ("206", "509")),
    Region("US-OR", "America/Los_Angeles", ("503",)),
    Region("US-NV", "America/Los_Angeles", ("702",)),
    Region("US-HI", "Pacific/Honolulu", ("808",)),
    Region("US-AK", "America/Anchorage", ("907",)),
)
DEMO_CADENCES = ("standard", "pre-due")
_EMAIL_DOMAINS = ("example.com", "example.net", "example.org")


@dataclass(frozen=True)
class DemoAccount:
    """One generated row plus what the demo records about it after import."""

    values: dict[str, Any]
    opted_out_sms: bool


def demo_accounts(count: int, today: date, seed: int = 7) -> Iterator[DemoAccount]:
    """``count`` deterministic accounts (the same seed and day give the same rows)."""
    rng = random.Random(seed)
    names = {"en_US": Faker("en_US"), "es_US": Faker("es_MX")}
    for fake in names.values():
        fake.seed_instance(seed)
    used_phones: set[str] = set()
    for index in range(count):
        region = rng.choice(REGIONS)
        locale = "es_US" if rng.random() < 0.12 else "en_US"
        fake = names[locale]
        name = f"{fake.first_name()} {fake.last_name()}"
        phone = _fictional_phone(rng, region, used_phones)
        has_phone = phone is not None and rng.random() > 0.05
        has_email = rng.random() > 0.1
        paid = rng.random() < 0.03
        balance = Decimal(0) if paid else _balance(rng)
        no_consent = rng.random() < 0.15
        values: dict[str, Any] = {
            "reference": f"DEMO-{index + 1:05d}",
            "name": name,
            "balance": str(balance),
            "currency": "USD",
            "due_date": (today + timedelta(days=rng.randint(-120, 30))).isoformat(),
            "phone": phone if has_phone else "",
            "phone_type": rng.choice(("mobile", "mobile", "mobile", "landline", "")),
            "email": _email(rng, name, index) if has_email else "",
            # A few rows leave the zone to be inferred from the phone, or unknown.
            "timezone": region.timezone if rng.random() > 0.2 else "",
            "jurisdiction": region.jurisdiction,
            "locale": locale,
            "sms_consent": "false" if no_consent else "true",
            "voice_consent": "false" if no_consent else "true",
            "email_consent": "true",
            "consent_source": "demo data: signup form",
            "cadence": "pre-due" if rng.random() < 0.1 else "standard",
            "collector_type": "third_party" if rng.random() < 0.2 else "first_party",
            # One debt in forty is time-barred (its messages may not threaten suit).
            "time_barred_on": (today - timedelta(days=30)).isoformat() if index % 40 == 39 else "",
        }
        yield DemoAccount(values, opted_out_sms=has_phone and rng.random() < 0.05)


def as_rows(accounts: list[DemoAccount]) -> Iterator[RawRow]:
    for number, account in enumerate(accounts, start=2):
        yield RawRow(number, account.values)


def _fictional_phone(rng: random.Random, region: Region, used: set[str]) -> str | None:
    for _ in range(20):
        number = f"+1{rng.choice(region.area_codes)}55501{rng.randint(0, 99):02d}"
        if number not in used:
            used.add(number)
            return number
    return None  # this region's fictional numbers are used up


def _balance(rng: random.Random) -> Decimal:
    # Most consumer balances are small with a long tail.
    amount = min(rng.lognormvariate(5.5, 0.9), 25_000)
    return Decimal(f"{max(amount, 15):.2f}")


def _email(rng: random.Random, name: str, index: int) -> str:
    words = ("".join(ch for ch in word if ch.isascii() and ch.isalnum()) for word in name.split())
    local = ".".join(word for word in words if word) or "debtor"
    return f"{local.lower()}.{index}@{rng.choice(_EMAIL_DOMAINS)}"


@dataclass(frozen=True)
class DemoLoad:
    summary: ImportSummary
    opt_outs_added: int


def load_demo(
    engine: Engine, defaults: ImportDefaults, clock: Clock, *, count: int = 300, seed: int = 7
) -> DemoLoad:
    """Import the demo accounts and record the opt-outs some of them made; safe to repeat."""
    accounts = list(demo_accounts(count, clock.now().date(), seed))
    summary = import_account_rows(engine, as_rows(accounts), "demo data", defaults, clock)
    opted_out = [a.values for a in accounts if a.opted_out_sms]
    added = 0
    with engine.begin() as connection:
        # Every number's lock at once, before it is read, as any writer of suppressions
        # takes them (``opt_outs.hold_addresses``): a STOP written meanwhile is not doubled.
        hold_addresses(connection, [(Channel.SMS.value, _phone(v)) for v in opted_out])
        for values in opted_out:
            added += _record_opt_out(connection, values, clock)
    return DemoLoad(summary, added)


def _phone(values: dict[str, Any]) -> str:
    return parse_phone("phone", values["phone"], "US").e164


def _record_opt_out(connection: Connection, values: dict[str, Any], clock: Clock) -> int:
    address = _phone(values)
    already = connection.execute(
        select(store.suppressions.c.id).where(
            store.suppressions.c.address == address,
            store.suppressions.c.channel == Channel.SMS,
            store.suppressions.c.lifted_at.is_(None),
        )
    ).first()
    if already is not None:
        return 0
    account_id = connection.execute(
        select(store.accounts.c.id).where(store.accounts.c.reference == values["reference"])
    ).scalar()
    if account_id is None:
        return 0
    source = f"demo data: {values['name']} replied STOP"
    connection.execute(
        insert(store.suppressions).values(
            channel=Channel.SMS, address=address, reason=SuppressionReason.STOP,
            source=source, created_at=clock.now(),
        )
    )  # fmt: skip
    connection.execute(
        insert(store.compliance_events).values(
            account_id=account_id, kind=ComplianceEventKind.OPT_OUT, channel=Channel.SMS,
            address=address, occurred_at=clock.now(), source=source,
        )
    )  # fmt: skip
    return 1


DEMO_USERS = (("admin", Role.ADMIN), ("marketer", Role.MARKETER), ("agent", Role.AGENT))


@dataclass(frozen=True)
class DemoUsers:
    """What ``demo_users`` did: the users it created, under ``password``, and those it
    found and left as they were."""

    password: str
    created: tuple[str, ...]
    existing: tuple[str, ...]


def demo_users(engine: Engine, clock: Clock) -> DemoUsers:
    """The demo's users of the web UI, one per role, created under a new random password
    (returned, for the terminal; no fixed password exists). A user of one of their names
    that exists already is left as it is: its password, role and whether it may sign in
    are its owner's, never the demo's."""
    password = secrets.token_urlsafe(12)
    created: list[str] = []
    existing: list[str] = []
    with engine.begin() as connection:
        for username, role in DEMO_USERS:
            try:
                user_by_name(connection, username)
            except NotFoundError:
                create_user(connection, username, password, role, clock.now(), username.title())
                created.append(username)
            else:
                existing.append(username)
    return DemoUsers(password, tuple(created), tuple(existing))
