"""What an event says about an address: suppress it, lift the debtor's own opt-out, or
mark it unreachable.

A suppression is per channel and address (a STOP binds every account that uses the
number) and keeps the event that caused it. The debtor's own opt-outs (stop,
unsubscribe, complaint) are also recorded as ``opt_out`` compliance events on every
account using the address, so each account's history can cite them; an opt-in (START,
UNSTOP, an email reply that is only an opt-in keyword) lifts only the debtor's own
opt-outs, never a bounce or a complaint. SendGrid's group resubscribe is no opt-in here
(``providers.sendgrid_email.EVENTS``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from datetime import datetime
from itertools import product
from typing import Any

from sqlalchemy import Connection, Integer, String, and_, func, literal, select, union, update

from outreach.models import ComplianceEventKind, ContactStatus, SuppressionReason
from outreach.providers.base import EventType, ProviderEvent
from outreach.store import compliance_events, contact_points, folded, hold_writes, suppressions

# Event types that are the debtor's own word about an address, with the reason they give.
OPT_OUT_REASONS = {
    EventType.OPTED_OUT: SuppressionReason.STOP,
    EventType.UNSUBSCRIBED: SuppressionReason.UNSUBSCRIBE,
    EventType.COMPLAINED: SuppressionReason.COMPLAINT,
}
# Suppressions that are the debtor's own choice, and so recorded as an opt-out on each
# account; and those an opt-in may lift.
_DEBTORS_WORD = (SuppressionReason.STOP, SuppressionReason.UNSUBSCRIBE,
                 SuppressionReason.COMPLAINT)  # fmt: skip
_LIFTED_BY_OPT_IN = (SuppressionReason.STOP, SuppressionReason.UNSUBSCRIBE,
                     SuppressionReason.CARRIER_OPT_OUT)  # fmt: skip
# Opt-outs the debtor's opt-in never lifts: a spam complaint, an operator's suppression.
NOT_LIFTED_BY_OPT_IN = (SuppressionReason.COMPLAINT, SuppressionReason.MANUAL)


def channel_of(event: ProviderEvent, attempt: Any | None) -> str:
    if event.channel is not None:
        return event.channel
    if attempt is not None:
        return str(attempt.channel)
    if "@" in (event.from_address or event.to_address or ""):
        return "email"
    return "voice" if event.provider == "twilio_voice" else "sms"


def debtor_address(event: ProviderEvent, attempt: Any | None) -> str | None:
    """The debtor's own address: who wrote a message to us, else whom ours went to.

    Email addresses come lower-cased from providers; the attempt's own spelling is the one
    the contact point has, so it is preferred when they agree.
    """
    given = event.from_address if event.from_debtor else event.to_address
    if attempt is not None:
        sent_to = str(attempt.to_address)
        if not given or given.lower() == sent_to.lower():
            return sent_to
    return given or None


def known_spelling(connection: Connection, channel: str, address: str) -> str:
    """``address`` as the contact points spell it. Providers lower-case email addresses,
    while imports keep the local part's case: compared without case (an exact match,
    which the index serves, is tried first), so that a suppression names the address the
    compliance checks look up."""
    if channel != "email":
        return address
    exact = select(contact_points.c.id).where(
        contact_points.c.channel == channel, contact_points.c.address == address
    )
    if connection.execute(exact.limit(1)).first() is not None:
        return address
    spelled = connection.execute(
        # The account too: with the address alone, SQLite would rather read every email
        # address through the index that holds them than look a few spellings up.
        select(contact_points.c.address, contact_points.c.account_id)
        .where(
            contact_points.c.channel == channel,
            same_address(connection, contact_points.c.address, (channel,), address),
        )
        .order_by(contact_points.c.id)
        .limit(1)
    ).first()
    return str(spelled.address) if spelled is not None else address


def ledger_address(channel: str, address: str) -> str:
    """How the suppression ledger spells an address: email addresses lower-cased (one
    mailbox, whatever case an import or a provider gave it), phone numbers as they are."""
    return address.lower() if channel == "email" else address


def same_address(connection: Connection, column: Any, channels: Sequence[str], address: str) -> Any:
    """``column`` (a contact point's) names ``address``: email addresses compared without
    case, every letter's (``store.folded``: "Élodie" is "élodie"), through the index on the
    lower-cased address.

    PostgreSQL's ``lower`` folds every letter, and is what the index holds. SQLite's folds
    ASCII letters only, so the index holds "Élodie.durand@..." for "Élodie.Durand@...":
    it is searched for what SQLite's ``lower`` makes of each spelling of ``address`` that
    differs from it in the case of its other letters (``_sqlite_spellings``), and the
    match confirmed on every letter. Past ``_MOST_SPELLINGS`` (a Cyrillic or Greek name),
    the spellings stored are looked up first (``_stored_spellings``)."""
    if "email" not in channels:
        return column == address
    same = folded(connection, column) == folded(connection, literal(address, String))
    if connection.dialect.name != "sqlite":
        return same
    whole = sqlite_spellings(connection, column, address)
    if len(whole) == 1:  # ASCII only, as most are
        return and_(func.lower(column) == whole[0], same)
    return and_(func.lower(column).in_(whole), same)


def sqlite_spellings(connection: Connection, column: Any, address: str) -> list[str]:
    """SQLite: what its ``lower`` makes of each spelling of ``address`` that the index on
    ``lower(column)`` may hold for a contact point naming it without case (a superset: the
    match is to be confirmed on every letter folded)."""
    whole, beginnings = _sqlite_spellings(address)
    if beginnings:
        same = folded(connection, column) == folded(connection, literal(address, String))
        whole = sorted({*whole, *_stored_spellings(connection, column, beginnings, same)})
    return whole


def _stored_spellings(
    connection: Connection, column: Any, beginnings: Sequence[str], same: Any
) -> list[str]:
    """What SQLite's ``lower`` makes of each email address stored in ``column`` that is
    ``same``, found by the range of the index on it that each of ``beginnings`` starts.
    A query of its own: SQLite would rather read every email address than search the
    index for each range of an OR."""
    table, lowered = column.table, func.lower(column)
    found = union(
        *(
            select(lowered).where(table.c.channel == "email", *_beginning_with(lowered, b), same)
            for b in beginnings
        )
    )
    return list(connection.execute(found).scalars())


# A bound on the spellings looked up for one address (each letter beyond ASCII doubles
# them); past it, those of the address's beginning, each a range of the index.
_MOST_SPELLINGS = 64


def _sqlite_spellings(address: str) -> tuple[list[str], list[str]]:
    """What SQLite's ``lower`` (ASCII letters only) makes of ``address`` spelled with each
    of its other letters in any case: one of them is how the index holds any contact point
    that names ``address`` without case. Past ``_MOST_SPELLINGS``, the whole address only
    as given, lower-cased, upper-cased and case-folded, and then the spellings of its
    longest beginning that has at most that many, each the beginning of a range of the
    index: (whole addresses, beginnings)."""
    choices = [
        sorted({_ascii_lower(v) for v in (c, c.lower(), c.upper(), c.title()) if len(v) == 1})
        for c in address
    ]
    # Whole-address forms too: a letter may fold into two ("ß" is "ss").
    whole = {_ascii_lower(address.casefold()), _ascii_lower(address.upper())}
    count, cut = 1, 0
    for choice in choices:
        if count * len(choice) > _MOST_SPELLINGS:
            break
        count, cut = count * len(choice), cut + 1
    spellings = {"".join(spelling) for spelling in product(*choices[:cut])}
    if cut == len(choices):
        return sorted(whole | spellings), []
    whole |= {_ascii_lower(address), _ascii_lower(address.lower())}
    return sorted(whole), sorted(spellings)


def _beginning_with(lowered: Any, beginning: str) -> list[Any]:
    """``lowered`` begins with ``beginning``: a range of the index (a GLOB would need the
    address's own "*", "?" and "[" escaped)."""
    after = _after(beginning)
    return [lowered >= beginning] + ([lowered < after] if after is not None else [])


def _after(text: str) -> str | None:
    """The least text past every text that begins with ``text`` (in code point order, which
    is SQLite's for UTF-8); None when no text is."""
    while text:
        code = ord(text[-1]) + 1
        if 0xD800 <= code <= 0xDFFF:  # surrogates are no text
            code = 0xE000
        if code <= 0x10FFFF:
            return text[:-1] + chr(code)
        text = text[:-1]
    return None


def _ascii_lower(text: str) -> str:
    """``text`` as SQLite's ``lower`` makes it: ASCII letters lower-cased, no other."""
    return "".join(c.lower() if c.isascii() else c for c in text)


def phone_or_email(channel: str) -> tuple[str, ...]:
    """The channels that share an address: a phone number texts and calls."""
    return ("email",) if channel == "email" else ("sms", "voice")


def accounts_using(connection: Connection, channels: Sequence[str], address: str) -> list[int]:
    return list(
        connection.execute(
            select(contact_points.c.account_id)
            .where(
                contact_points.c.channel.in_(channels),
                same_address(connection, contact_points.c.address, channels, address),
            )
            .distinct()
            .order_by(contact_points.c.account_id)
        ).scalars()
    )


def act_on_address(
    connection: Connection,
    event: ProviderEvent,
    event_id: int,
    channel: str,
    address: str,
    now: datetime,
) -> None:
    """A status event's word about the address (bounce, complaint, unsubscribe, 21610...)."""
    reason = event.suppression or OPT_OUT_REASONS.get(event.event_type)
    if reason is not None:
        suppress(connection, event, event_id, channel, address, reason, now)
    if event.event_type == EventType.OPTED_IN:
        opt_in(connection, event, channel, address, now)
    if event.contact_status:
        mark_contact_points(connection, (channel,), address, event.contact_status, now)


def suppress(
    connection: Connection,
    event: ProviderEvent,
    event_id: int,
    channel: str,
    address: str,
    reason: str,
    now: datetime,
    accounts: Iterable[int] | None = None,
) -> bool:
    """Suppress ``address`` on ``channel``; True when that is new (none was in force)."""
    return suppress_address(
        connection, channel, address, reason, min(event.occurred_at, now),
        f"{event.provider} {event.kind} {event.raw_status or ''}".strip(),
        _cited(event), event_id, accounts,
    )  # fmt: skip


def suppress_address(
    connection: Connection,
    channel: str,
    address: str,
    reason: str,
    at: datetime,
    source: str,
    cited: str,
    event_id: int | None = None,
    accounts: Iterable[int] | None = None,
    note: str | None = None,
) -> bool:
    """Suppress ``address`` on ``channel`` from ``at``, as ``source`` says; the debtor's own
    opt-out is also recorded (citing ``cited``, with ``note``) on ``accounts``, by default
    every account using the address. True when the suppression is new (none was in force):
    one writer at a time decides it (``hold_addresses``), so that two STOPs written at once
    by two web processes are not both new, and both confirmed."""
    new = suppress_in_ledger(connection, channel, address, reason, at, source, event_id)
    if reason in _DEBTORS_WORD:
        owners = (
            accounts if accounts is not None else accounts_using(connection, (channel,), address)
        )
        record_events(connection, owners, ComplianceEventKind.OPT_OUT, at, channel, address, cited,
                      note)  # fmt: skip
    return new


def suppress_in_ledger(
    connection: Connection,
    channel: str,
    address: str,
    reason: str,
    at: datetime,
    source: str,
    event_id: int | None = None,
) -> bool:
    """Suppress ``address`` on ``channel`` for ``reason`` in the ledger alone, unless it is
    already; True when that is new. Decided holding the address's lock (``hold_addresses``)."""
    hold_addresses(connection, [(channel, address)])
    address = ledger_address(channel, address)
    active = connection.execute(
        select(suppressions.c.id).where(
            suppressions.c.channel == channel,
            suppressions.c.address == address,
            suppressions.c.reason == reason,
            suppressions.c.lifted_at.is_(None),
        )
    ).first()
    if active is None:
        connection.execute(
            suppressions.insert().values(
                channel=channel,
                address=address,
                reason=reason,
                source=source[:500],
                provider_event_id=event_id,
                created_at=at,
            )
        )
    return active is None


def opt_in(
    connection: Connection,
    event: ProviderEvent,
    channel: str,
    address: str,
    now: datetime,
    accounts: Iterable[int] | None = None,
) -> bool:
    """Lift the debtor's own opt-outs of ``address``; True when one was in force."""
    return lift_opt_outs(
        connection, channel, address, min(event.occurred_at, now),
        f"opt-in by {event.provider} {event.kind}", _cited(event), accounts,
    )  # fmt: skip


def lift_opt_outs(
    connection: Connection,
    channel: str,
    address: str,
    at: datetime,
    why: str,
    cited: str,
    accounts: Iterable[int] | None = None,
    note: str | None = None,
) -> bool:
    """Lift the debtor's own opt-outs of ``address`` on ``channel`` from ``at`` (``why``),
    and record the opt-in (citing ``cited``, with ``note``) on ``accounts``, by default
    every account using the address. True when an opt-out was in force and is lifted: not
    when the debtor opted out again after ``at`` (an opt-in that reached us late, as
    a delayed or retried post may, after a later one-click unsubscribe), whose opt-out
    stands; the opt-in is recorded all the same, at its time, before that opt-out."""
    hold_addresses(connection, [(channel, address)])
    spelled, address = address, ledger_address(channel, address)
    owners = (
        list(accounts) if accounts is not None else accounts_using(connection, (channel,), spelled)
    )
    lifted = 0
    if not _opted_out_after(connection, channel, address, at, owners):
        lifted = connection.execute(
            update(suppressions)
            .where(
                suppressions.c.channel == channel,
                suppressions.c.address == address,
                suppressions.c.lifted_at.is_(None),
                suppressions.c.reason.in_(_LIFTED_BY_OPT_IN),
            )
            .values(lifted_at=at, lifted_reason=why[:200])
        ).rowcount
    # The engine reads the latest opt-out or opt-in of an address: an opt-in recorded over
    # a complaint (or a manual suppression) would lift what the opt-in may not.
    if not _in_force(connection, channel, address, NOT_LIFTED_BY_OPT_IN):
        record_events(connection, owners, ComplianceEventKind.OPT_IN, at, channel, spelled, cited,
                      note)  # fmt: skip
    return bool(lifted)


def _opted_out_after(
    connection: Connection, channel: str, address: str, at: datetime, owners: Sequence[int]
) -> bool:
    """Whether the debtor's own opt-out of ``address`` (as the ledger spells it) later than
    ``at`` is known: a suppression made since, or, while one made before is in force, the
    opt-out recorded on the accounts using the address (a second press of an unsubscribe
    finds it suppressed, and is only recorded there)."""
    since = connection.execute(
        select(suppressions.c.id).where(
            suppressions.c.channel == channel,
            suppressions.c.address == address,
            suppressions.c.lifted_at.is_(None),
            suppressions.c.reason.in_(_LIFTED_BY_OPT_IN),
            suppressions.c.created_at > at,
        )
    ).first()
    if since is not None or not owners:
        return since is not None
    recorded = connection.execute(
        select(compliance_events.c.address).where(
            compliance_events.c.account_id.in_(sorted(set(owners))),
            compliance_events.c.kind == ComplianceEventKind.OPT_OUT,
            compliance_events.c.channel == channel,
            compliance_events.c.occurred_at > at,
        )
    ).scalars()
    return any(ledger_address(channel, named) == address for named in recorded if named)


# The first key of the advisory locks on addresses: a space of their own.
_LOCK_SPACE = 0x6F707473  # "opts"


def hold_addresses(connection: Connection, addresses: Iterable[tuple[str, str]]) -> None:
    """Take, until the transaction ends, the lock on each ``(channel, address)``: whoever
    suppresses an address or lifts its suppressions holds it while deciding, so that a
    second writer reads what the first wrote. PostgreSQL: an advisory lock per address, in
    the order of their keys (a writer of several addresses takes them all at once, before
    the accounts it locks: ``events.apply_batch``), so that two writers never wait for
    each other in a circle. SQLite: its one writer's lock."""
    if connection.dialect.name != "postgresql":
        hold_writes(connection)
        return
    keys = {_lock_key(channel, ledger_address(channel, address)) for channel, address in addresses}
    for key in sorted(keys):
        connection.execute(
            select(func.pg_advisory_xact_lock(literal(_LOCK_SPACE, Integer), literal(key, Integer)))
        )


def _lock_key(channel: str, address: str) -> int:
    """A 32-bit key for the address (addresses that share one only wait for each other)."""
    digest = hashlib.sha256(f"{channel}:{address}".encode()).digest()
    return int.from_bytes(digest[:4], "big", signed=True)


def held_without_opt_in(connection: Connection, channel: str, address: str) -> bool:
    """Whether ``address`` is suppressed on ``channel`` for a reason the debtor's opt-in
    does not lift (a complaint, an operator's suppression)."""
    return _in_force(connection, channel, ledger_address(channel, address), NOT_LIFTED_BY_OPT_IN)


def opted_out(connection: Connection, channel: str, address: str) -> bool:
    """Whether the debtor's own opt-out of ``address`` is in force."""
    return _in_force(connection, channel, ledger_address(channel, address), _LIFTED_BY_OPT_IN)


def _in_force(connection: Connection, channel: str, address: str, reasons: Sequence[str]) -> bool:
    """Whether a suppression of ``address`` for one of ``reasons`` is not lifted."""
    return (
        connection.execute(
            select(suppressions.c.id).where(
                suppressions.c.channel == channel,
                suppressions.c.address == address,
                suppressions.c.lifted_at.is_(None),
                suppressions.c.reason.in_(reasons),
            )
        ).first()
        is not None
    )


def mark_contact_points(
    connection: Connection, channels: Sequence[str], address: str, status: str, now: datetime
) -> None:
    """Every active contact point at ``address`` on ``channels`` gets ``status``."""
    connection.execute(
        update(contact_points)
        .where(
            contact_points.c.channel.in_(channels),
            same_address(connection, contact_points.c.address, channels, address),
            contact_points.c.status == ContactStatus.ACTIVE,
        )
        .values(status=status, updated_at=now)
    )


def record(
    connection: Connection,
    accounts: Iterable[int],
    kind: str,
    at: datetime,
    event: ProviderEvent,
    channel: str | None,
    address: str | None,
    source: str | None = None,
) -> None:
    """A compliance event of ``kind`` on each account, citing the event that caused it."""
    record_events(connection, accounts, kind, at, channel, address, source or _cited(event))


def record_events(
    connection: Connection,
    accounts: Iterable[int],
    kind: str,
    at: datetime,
    channel: str | None,
    address: str | None,
    source: str,
    note: str | None = None,
) -> None:
    """A compliance event of ``kind`` on each account, citing ``source`` (and ``note``)."""
    rows = [
        {
            "account_id": account_id,
            "kind": kind,
            "channel": channel,
            "address": address,
            "occurred_at": at,
            "source": source[:200],
            "note": note[:500] if note else None,
        }
        for account_id in accounts
    ]
    if rows:
        connection.execute(compliance_events.insert(), rows)


def _cited(event: ProviderEvent) -> str:
    return f"{event.provider} {event.kind} {event.dedupe_key}"
