"""The database side of compliance: what the engine is told about an account, and the
decisions it gave.

``load_debtors`` reads everything the rules need for a batch of accounts in one query per
table (contact points, events, designated times, suppressions, recent attempts and
replies, the work mailboxes the debtor ever wrote from); ``situation`` turns one of them
and a proposed contact into the engine's input; ``decision_row`` stores the verdict with
that input as a replayable scenario and the rule set's version.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from sqlalchemy import (
    ColumnElement,
    Connection,
    Result,
    String,
    Table,
    func,
    literal,
    select,
    type_coerce,
)
from sqlalchemy.engine import Dialect

from outreach.bulk import BulkStatement, PreparedRows
from outreach.compliance.decision import Decision
from outreach.compliance.facts import Contact, Debtor, Email, Event, Phone, Situation
from outreach.compliance.frequency import CLOCK_SKEW, PastContact
from outreach.compliance.rules import RuleSet
from outreach.compliance.scenario import scenario_of
from outreach.compliance.windows import InconvenientTime
from outreach.compliance.zones import keeps_a_clock_of
from outreach.models import Attempt as AttemptModel
from outreach.models import (
    AttemptStatus,
    ContactStatus,
    DesignatedTime,
    InboxMessage,
    SuppressionReason,
)
from outreach.models import Decision as DecisionModel
from outreach.opt_outs import NOT_LIFTED_BY_OPT_IN, sqlite_spellings
from outreach.records import quick_init
from outreach.store import accounts as accounts_table
from outreach.store import (
    among,
    columns_of,
    compliance_events,
    contact_points,
    hold_writes,
    lock_accounts,
    named_rows,
    suppressions,
    table_of,
    unindexed,
)

attempts = table_of(AttemptModel)
decisions = table_of(DecisionModel)
designated_times = table_of(DesignatedTime)
inbox_messages = table_of(InboxMessage)

# Attempts that reached (or may have reached) the provider count as placed contacts.
PLACED = (
    AttemptStatus.SENDING,
    AttemptStatus.SENT,
    AttemptStatus.DELIVERED,
    AttemptStatus.UNDELIVERED,
    AttemptStatus.FAILED,
    AttemptStatus.UNKNOWN,
)
# Suppressions that are the debtor's own opt-out; bounces and invalid numbers are a
# contact point's status instead.
OPT_OUT_REASONS = (
    SuppressionReason.STOP,
    SuppressionReason.UNSUBSCRIBE,
    SuppressionReason.COMPLAINT,
    SuppressionReason.CARRIER_OPT_OUT,
    SuppressionReason.MANUAL,
)


# The columns each read needs: fewer columns, fewer values to convert (dates above all).
POINT_COLUMNS = ("account_id", "id", "channel", "address", "kind", "priority", "timezone",
                 "consent")  # fmt: skip
EVENT_COLUMNS = ("account_id", "occurred_at", "kind", "channel", "address")
DESIGNATED_COLUMNS = ("account_id", "start_local", "end_local", "days")
PLACED_COLUMNS = ("account_id", "sent_at", "placed_at", "created_at", "channel", "outcome",
                  "status", "to_address", "automated")  # fmt: skip
# When a placed message left: when the provider took it (``sent_at``, recorded by the
# dispatcher or a person settling it), else when it was marked sending, else (marked before
# that was kept) when it was planned. A message may wait hours or days between planning and
# sending; the caps count it from when it left. An account's attempts are read whole
# (through the accounts' index) and their time checked: a cadence makes few of them.
placed_time = func.coalesce(attempts.c.sent_at, attempts.c.placed_at, attempts.c.created_at)
# Read through the accounts' index, not the dispatch queue's (every placed attempt there is).
is_placed = unindexed(attempts.c.status).in_(PLACED)
REPLY_COLUMNS = ("account_id", "received_at", "channel", "from_address")


@quick_init
@dataclass(frozen=True)
class DebtorRecord:
    account_id: int
    reference: str
    # The particular debt, as contacts are counted per debt: the reference, or the student
    # loans serviced under one account number (``debt_of``).
    debt: str
    jurisdiction: str
    collector: str
    debtor: Debtor
    history: tuple[PastContact, ...]
    events: tuple[Event, ...]
    # Active contact points, best first on each channel: (channel, address, id).
    points: tuple[tuple[str, str, int], ...] = ()

    def addresses(self, channel: str) -> list[tuple[str, int]]:
        return [(address, ident) for ch, address, ident in self.points if ch == channel]


def load_debtors(
    connection: Connection,
    accounts: Sequence[Any],
    now: datetime,
    lookback_days: int,
    default_country: str,
    *,
    rules: RuleSet,
) -> dict[int, DebtorRecord]:
    """What the rules need for each account row (``id``, ``reference``, ``timezone``,
    ``jurisdiction``, ``collector_type``), keyed by account id. ``rules`` give the zones of
    the states where the debtor's other accounts are (``_person_zones``)."""
    ids = [row.id for row in accounts]
    if not ids:
        return {}
    points = _read(connection, contact_points, POINT_COLUMNS, ids,
                   contact_points.c.status == ContactStatus.ACTIVE)  # fmt: skip
    numbers = _servicer_numbers(connection, ids)
    person, holders = _same_person(connection, ids, points, numbers)
    events = _read(connection, compliance_events, EVENT_COLUMNS, ids)
    designated = _read(connection, designated_times, DESIGNATED_COLUMNS, ids,
                       designated_times.c.withdrawn_at.is_(None))  # fmt: skip
    since = now - timedelta(days=lookback_days + 1)
    # Nothing after ``now`` (asked about a past instant, `compliance explain --at`), but for
    # a stamp a moment ahead: another process's clock may run ahead (``CLOCK_SKEW``).
    until = now + CLOCK_SKEW
    placed = _read(connection, attempts, PLACED_COLUMNS, ids, is_placed,
                   placed_time >= since, placed_time <= until)  # fmt: skip
    replies = _read(connection, inbox_messages, REPLY_COLUMNS, ids,
                    inbox_messages.c.direction == "inbound",
                    inbox_messages.c.received_at >= since,
                    inbox_messages.c.received_at <= until)  # fmt: skip
    used = work_mailboxes_used(connection, points, now)
    # The ledger keeps email addresses lower-cased; an address spelled otherwise (stored
    # before, or by another writer) is still found for the account that spells it so.
    addresses = {p.address for rows in points.values() for p in rows}
    addresses |= {address.lower() for address in addresses if "@" in address}
    opted_out = suppression_events(_opt_out_rows(connection, addresses))
    debts, loans = _student_loans(numbers, holders)
    shared = _shared_history(connection, accounts, person, points, placed, since, until, debts)
    by_number = _revoked_for_numbers(connection, _phone_users(points), person, events, now)
    zones: dict[int, tuple[str, ...]] = {}
    if person:
        _share_facts(connection, person, set(ids), events, designated, now)
        zones = _person_zones(connection, _kin(holders, ids), accounts, rules, default_country)
    for account_id, revoked in by_number.items():
        events[account_id] = [*events.get(account_id, ()), *(_as_read(row) for _, row in revoked)]
    if loans:
        _share_conversations(connection, loans, set(ids), events)
    return debtor_records(
        accounts, points, events, designated, placed, replies, opted_out, default_country,
        shared=shared, debts=debts, used=used, zones=zones,
    )  # fmt: skip


def hold_debtors_of(connection: Connection, ids: Sequence[int]) -> None:
    """Hold the debtors of the accounts ``ids`` (``hold_debtors``): these accounts and the
    others of the same people, found as ``load_debtors`` finds them. Read the accounts and
    call ``load_debtors`` after this: what changed while this waited is then seen."""
    if connection.dialect.name != "postgresql":
        # SQLite: its one writer's lock holds every debtor; who they are is not worked out.
        hold_debtors(connection, ids)
        return
    if not ids:
        return
    points = _read(connection, contact_points, POINT_COLUMNS, ids,
                   contact_points.c.status == ContactStatus.ACTIVE)  # fmt: skip
    person, _ = _same_person(connection, ids, points, _servicer_numbers(connection, ids))
    hold_debtors(connection, {*ids, *(other for linked in person.values() for other in linked)})


def hold_debtors(connection: Connection, ids: Iterable[int]) -> None:
    """Take, until the transaction ends, the accounts ``ids`` as a debtor's: whoever
    decides on a debtor's history and marks what it sends (the send-time check) holds the
    debtor's accounts from before it reads the history until the mark is committed, so that
    a second such writer for the same person reads the first's mark. Each holds every
    account of its debtors: two writers for one person hold an account in common, however
    their batches split the person's accounts.

    PostgreSQL: the accounts' locks, in the order of their ids (``store.lock_accounts``),
    taken after the attempts the writer holds, as a webhook batch and a dispatcher recording
    outcomes take them. SQLite: its one writer's lock."""
    hold_writes(connection)
    lock_accounts(connection, ids)


def work_mailboxes_used(
    connection: Connection, points: dict[int, list[Any]], now: datetime
) -> dict[int, set[str]]:
    """The work mailboxes among ``points`` (active contact points, by account id) that the
    debtor has emailed the collector from, on that account, at any time until ``now``: a
    work address so used may be emailed (Reg F 1006.22(f)(3)) however long ago that was,
    and the history read reaches back only as far as the caps do. One query for the batch's
    accounts that have a work mailbox (none for a batch without one), through the accounts'
    index. Only the account's own mail counts: what allows contact is not shared with the
    debtor's other accounts (a mailbox several accounts have is not always one person's)."""
    # Each work mailbox by every letter folded (as ``store.folded`` and ``same_address``
    # match a sender: a final sigma, a dotted capital I), to the address as the debtor's
    # email is keyed.
    work: dict[int, dict[str, str]] = {}
    for account_id, rows in points.items():
        for point in rows:
            if point.channel == "email" and point.kind == "work":
                address = _address("email", point.address)
                work.setdefault(account_id, {})[address.casefold()] = address
    if not work:
        return {}
    found: dict[int, set[str]] = defaultdict(set)
    # The time is compared here, not in the statement: a condition on it would let
    # PostgreSQL weigh the index on the inbox's status and time against the accounts'.
    for row in connection.execute(
        select(inbox_messages.c.account_id, inbox_messages.c.from_address,
               inbox_messages.c.received_at).where(
            among(connection, inbox_messages.c.account_id, sorted(work)),
            inbox_messages.c.direction == "inbound",
            inbox_messages.c.channel == "email",
        )
    ):  # fmt: skip
        if row.received_at > now:
            continue
        mailbox = work[row.account_id].get(row.from_address.casefold())
        if mailbox is not None:
            found[row.account_id].add(mailbox)
    return found


def accounts_read_with(connection: Connection, ids: Sequence[int]) -> set[int]:
    """The accounts besides ``ids`` whose rows ``load_debtors`` may read for them: the
    debtors' other accounts (``_same_person``), and those where consent was revoked for a
    number one of these uses (``_revoked_for_numbers``)."""
    active = contact_points.c.status == ContactStatus.ACTIVE
    points = _read(connection, contact_points, POINT_COLUMNS, ids, active)
    person, _ = _same_person(connection, ids, points, _servicer_numbers(connection, ids))
    linked = {other for others in person.values() for other in others} - set(ids)
    if linked:
        points.update(_read(connection, contact_points, POINT_COLUMNS, sorted(linked), active))
    numbers = sorted(_phone_users(points))
    revoked = (
        connection.execute(
            select(compliance_events.c.account_id).where(
                among(connection, compliance_events.c.address, numbers),
                compliance_events.c.kind == "consent_revoked",
            )
        ).scalars()
        if numbers
        else ()
    )
    return (linked | set(revoked)) - set(ids)


def debt_of(servicer_account_no: str) -> str:
    """The particular debt of a student loan: "all student loan debts that a consumer owes
    ... that were serviced under a single account number at the time the debts were
    obtained by a debt collector" (Reg F 1006.14(b)(4))."""
    return f"student loans serviced under {servicer_account_no}"


def _servicer_numbers(connection: Connection, ids: Sequence[int]) -> dict[int, str]:
    """The servicer account numbers of those of ``ids`` that are student loans."""
    number = accounts_table.c.servicer_account_no
    found = connection.execute(
        select(accounts_table.c.id, number).where(
            among(connection, accounts_table.c.id, ids), number.is_not(None)
        )
    )
    return {row.id: row.servicer_account_no for row in found}


def _student_loans(
    mine: dict[int, str], holders: dict[str, set[int]]
) -> tuple[dict[int, str], dict[int, set[int]]]:
    """For the student loans ``mine`` (account id to servicer account number): the debt of
    each and of every account serviced under the same number, and each one's other such
    accounts (the same debtor, and the same particular debt). ``holders``: what
    ``_same_person`` found holding each key, every loan of a searched number among them."""
    under = {number: holders[_LOAN + number] for number in set(mine.values())}
    debts = {
        account_id: debt_of(servicer_account_no)
        for servicer_account_no, loans in under.items()
        for account_id in loans
    }
    others = {
        account_id: under[servicer_account_no] - {account_id}
        for account_id, servicer_account_no in mine.items()
        if len(under[servicer_account_no]) > 1
    }
    return debts, others


def _share_conversations(
    connection: Connection,
    loans: dict[int, set[int]],
    batch: set[int],
    events: dict[int, list[Any]],
) -> None:
    """A conversation recorded about one student loan is about every loan serviced under
    its number (one debt, whose 7-day bar it starts): each gets the others'."""
    outside = sorted({other for others in loans.values() for other in others} - batch)
    theirs = {
        account_id: [row for row in events.get(account_id, ()) if row.kind == "conversation"]
        for account_id in batch
    }
    if outside:
        theirs.update(_read(connection, compliance_events, EVENT_COLUMNS, outside,
                            compliance_events.c.kind == "conversation"))  # fmt: skip
    for account_id, others in loans.items():
        shared = [row for other in sorted(others) for row in theirs.get(other, ())]
        if shared:
            events[account_id] = [*events.get(account_id, ()), *shared]


# The debts of one person are found however their contact points overlap: accounts that
# share a number, a mailbox or a student loans' servicer number are linked, and the links
# are followed from account to account. An address many accounts share (a switchboard, an
# office's mailbox) links a planned account that has it to every account that has it, and
# no further: chains run only through addresses at most PERSON_SHARERS accounts share, so
# that a switchboard does not pull strangers in. A servicer number is the same debt
# however many loans it has: chains always run through it. The search ends after
# PERSON_ROUNDS links from the planned accounts.
PERSON_SHARERS = 10
PERSON_ROUNDS = 6
_LOAN = "\x00loan "  # a servicer number's key: no address holds a NUL


def _same_person(
    connection: Connection,
    ids: Sequence[int],
    points: dict[int, list[Any]],
    numbers: dict[int, str],
) -> tuple[dict[int, set[int]], dict[str, set[int]]]:
    """The debtor's other accounts, for each of ``ids`` that has any (``points``: their
    active contact points; ``numbers``: their servicer account numbers); and the accounts
    found holding each address or servicer number (every holder, for those of ``ids``)."""
    # Keyed by the address as it reaches its owner: a number (sms and voice alike), a
    # mailbox lower-cased; a number never holds an "@".
    users: dict[str, set[int]] = defaultdict(set)
    own: dict[int, set[str]] = defaultdict(set)
    # How each key's mailbox is written, for ``_holders``' search beyond ASCII.
    spelled: dict[str, set[str]] = defaultdict(set)
    for account_id, rows in points.items():
        for point in rows:
            key = _owner_key(point.channel, point.address)
            own[account_id].add(key)
            spelled[key].add(point.address)
    for account_id, number in numbers.items():
        own[account_id].add(_LOAN + number)
    for account_id, keys in own.items():
        for key in keys:
            users[key].add(account_id)
    # Every key in ``users`` is searched before the loop ends, and every account already
    # known has its keys in ``users``: each key's holders are all there, and a count of
    # them tells a switchboard.
    known = set(ids)
    wanted = set(users)
    for links in range(1, PERSON_ROUNDS + 1):
        for account_id, key in _holders(connection, wanted, known, spelled):
            users[key].add(account_id)
        new = {
            account_id
            for key in wanted
            if _chains_through(key, users[key])
            for account_id in users[key]
        } - known
        if not new or links == PERSON_ROUNDS:
            break
        known |= new
        wanted = set()
        for account_id, key, address in _keys_of(connection, sorted(new)):
            spelled[key].add(address)
            if key not in users:
                wanted.add(key)
            users[key].add(account_id)
    person = _kin(users, ids)
    for account_id in ids:
        direct = {other for key in own.get(account_id, ()) for other in users[key]}
        linked = (person.get(account_id, set()) | direct) - {account_id}
        if linked:
            person[account_id] = linked
    return person, users


def _kin(users: dict[str, set[int]], ids: Sequence[int]) -> dict[int, set[int]]:
    """The accounts each of ``ids`` is linked to through addresses that chain (held by a
    few accounts, or a student loan's number), not through a switchboard's."""
    chains = {key: holders for key, holders in users.items()
              if len(holders) > 1 and _chains_through(key, holders)}  # fmt: skip
    return _linked(chains, ids)


def _chains_through(key: str, holders: set[int]) -> bool:
    return len(holders) <= PERSON_SHARERS or key.startswith(_LOAN)


def _owner_key(channel: str, address: str) -> str:
    return address.lower() if channel == "email" else address


def _holders(
    connection: Connection, wanted: set[str], known: set[int], spelled: dict[str, set[str]]
) -> list[tuple[int, str]]:
    """The accounts not ``known`` with an active contact point at one of ``wanted``, or
    serviced under one of its servicer numbers; with the key each holds (a mailbox's, the one
    it matched: the database's lower() and Python's disagree on a few letters, and SQLite's
    folds ASCII only). ``spelled``: how each key's mailbox was written."""
    loans = sorted(key.removeprefix(_LOAN) for key in wanted if key.startswith(_LOAN))
    phones = sorted(key for key in wanted if "@" not in key and not key.startswith(_LOAN))
    mailboxes = sorted(key for key in wanted if "@" in key and not key.startswith(_LOAN))
    lowered = type_coerce(func.lower(contact_points.c.address), String)
    outside = sorted(known)
    searches: list[tuple[tuple[str, ...], ColumnElement[bool]]] = []
    if phones:
        searches.append((("sms", "voice"), among(connection, contact_points.c.address, phones)))
    mailbox_of = _mailbox_keys(connection, mailboxes, spelled)
    if mailboxes:
        searches.append((("email",), among(connection, lowered, sorted(mailbox_of.indexed))))
    found: list[tuple[int, str]] = []
    for channels, condition in searches:
        for other in connection.execute(
            select(contact_points.c.account_id, contact_points.c.channel,
                   contact_points.c.address, lowered.label("lowered")).where(
                contact_points.c.channel.in_(channels),
                condition,
                ~among(connection, contact_points.c.account_id, outside),
                # Only points in use join accounts: one marked a wrong number is evidence
                # that its account is someone else's.
                contact_points.c.status == ContactStatus.ACTIVE,
            )
        ):  # fmt: skip
            if other.channel != "email":
                found.append((other.account_id, other.address))
            elif (key := mailbox_of.key(other.address, other.lowered)) is not None:
                found.append((other.account_id, key))
    if loans:
        number = accounts_table.c.servicer_account_no
        for loan in connection.execute(
            select(accounts_table.c.id, number).where(
                among(connection, number, loans), ~among(connection, accounts_table.c.id, outside)
            )
        ):
            found.append((loan.id, _LOAN + loan.servicer_account_no))
    return found


class _MailboxKeys(NamedTuple):
    """How ``_holders`` searches mailboxes through the index on their lower case, and keys
    each contact point found by the mailbox it names without case."""

    indexed: set[str]  # what the index is searched for
    by_lowered: dict[str, str]  # the database's lower() of a mailbox: its key
    by_folded: dict[str, str]  # SQLite: every letter folded: its key

    def key(self, address: str, lowered: str) -> str | None:
        if lowered in self.by_lowered:
            return self.by_lowered[lowered]
        return self.by_folded.get(address.casefold())  # the casefold() SQLite has


def _mailbox_keys(
    connection: Connection, mailboxes: Sequence[str], spelled: dict[str, set[str]]
) -> _MailboxKeys:
    """Mailboxes in ASCII, as most are, are their lower case. The others as they were
    written (``spelled``), for all at once as replies find one sender (``same_address``):
    PostgreSQL's lower() of each, which Python's may not be (a final sigma, a dotted
    capital I); on SQLite, whose lower() folds ASCII letters only, each spelling the index
    may hold, the match confirmed with every letter folded."""
    plain = [mailbox for mailbox in mailboxes if mailbox.isascii()]
    keys = _MailboxKeys(set(plain), {mailbox: mailbox for mailbox in plain}, {})
    written = {address: mailbox for mailbox in mailboxes if not mailbox.isascii()
               for address in spelled.get(mailbox) or {mailbox}}  # fmt: skip
    if not written:
        return keys
    if connection.dialect.name == "sqlite":
        for address, mailbox in written.items():
            keys.indexed.update(sqlite_spellings(connection, contact_points.c.address, address))
            keys.by_folded[address.casefold()] = mailbox
        return keys
    listed = sorted(written)
    for start in range(0, len(listed), _LOWERED_AT_ONCE):
        part = listed[start : start + _LOWERED_AT_ONCE]
        lowered = connection.execute(
            select(*(func.lower(literal(address, String)) for address in part))
        ).one()
        for address, lower in zip(part, lowered, strict=True):
            keys.indexed.add(lower)
            keys.by_lowered[lower] = written[address]
    return keys


# Mailboxes lower-cased by one query (a SELECT has at most 1,664 columns).
_LOWERED_AT_ONCE = 1000


def _keys_of(connection: Connection, account_ids: Sequence[int]) -> list[tuple[int, str, str]]:
    """What may link each of ``account_ids`` to others: its active contact points and its
    servicer account number; each key with how it is written."""
    rows = _read(connection, contact_points, ("account_id", "channel", "address"),
                 account_ids, contact_points.c.status == ContactStatus.ACTIVE)  # fmt: skip
    keys = [(account_id, _owner_key(point.channel, point.address), point.address)
            for account_id, points in rows.items() for point in points]  # fmt: skip
    numbers = _servicer_numbers(connection, account_ids)
    loans = [(account_id, _LOAN + number, number) for account_id, number in numbers.items()]
    return keys + loans


def _linked(users: dict[str, set[int]], ids: Sequence[int]) -> dict[int, set[int]]:
    """Each of ``ids`` with the other accounts its addresses link it to, directly or through
    other accounts (for the accounts that have any)."""
    parent: dict[int, int] = {}

    def root(account_id: int) -> int:
        parent.setdefault(account_id, account_id)
        while parent[account_id] != account_id:
            parent[account_id] = account_id = parent[parent[account_id]]
        return account_id

    for sharing in users.values():
        if len(sharing) > 1:
            first, *rest = sharing
            for account_id in rest:
                parent[root(account_id)] = root(first)
    members: dict[int, set[int]] = defaultdict(set)
    for account_id in parent:
        members[root(account_id)].add(account_id)
    return {
        account_id: members[root(account_id)] - {account_id}
        for account_id in ids
        if account_id in parent and len(members[root(account_id)]) > 1
    }


# What a debtor said or what happened to them, as opposed to one debt (a cease, an
# attorney, a dispute and a conversation are each about a debt): a bankruptcy's stay, a
# medium not to be used (1006.14(h)), an employer's prohibition of contact at work, the
# debtor's word that contact at work is inconvenient, and consent to automated calls and
# texts revoked (a revocation covers every robocall and robotext from the caller, on
# whatever matter: 47 CFR 64.1200(a)(10), the FCC's "revoke-all"). Recorded on one account
# and still in force there, each holds for the person's other accounts too. Only
# restrictions are shared: what lifts one lifts it on its own account, and so stops it
# being shared; a lift shared could free another account's own restriction, or another
# person's (accounts sharing a switchboard number are not always one person). An address's
# opt-out needs no sharing: the suppression ledger holds it for every account with the
# address, and the replies that record one record it on each.
PERSON_RESTRICTIONS = (
    "bankruptcy", "prohibited_medium", "workplace_prohibited", "workplace_inconvenient",
    "consent_revoked",
)  # fmt: skip
PERSON_EVENT_KINDS = (
    *PERSON_RESTRICTIONS, "bankruptcy_closed", "workplace_allowed", "workplace_convenient",
    "opt_in", "consent",
)  # fmt: skip


def _share_facts(
    connection: Connection,
    person: dict[int, set[int]],
    batch: set[int],
    events: dict[int, list[Any]],
    designated: dict[int, list[Any]],
    now: datetime,
) -> None:
    """Add to each account's events and designated inconvenient times (read for the
    ``batch``) the restrictions about the person in force on their other accounts, and
    the times designated there."""
    outside = sorted({other for others in person.values() for other in others} - batch)
    their_events = dict(events)
    their_times = dict(designated)
    if outside:
        their_events.update(
            _read(
                connection,
                compliance_events,
                EVENT_COLUMNS,
                outside,
                compliance_events.c.kind.in_(PERSON_EVENT_KINDS),
            )
        )
        their_times.update(
            _read(
                connection,
                designated_times,
                DESIGNATED_COLUMNS,
                outside,
                designated_times.c.withdrawn_at.is_(None),
            )
        )
    in_force: dict[int, list[Any]] = {}
    for account_id, others in person.items():
        shared_events = []
        for other in sorted(others):
            found = in_force.get(other)
            if found is None:
                found = in_force[other] = _restrictions_in_force(their_events.get(other, ()), now)
            shared_events += found
        if shared_events:
            # The account's own later lifts of what is shared would end it too (the latest
            # event about a thing wins): what is in force for the person stays in force.
            # A consent is weighed contact by contact instead, as its reach is (a revoked
            # consent shared is marked ``elsewhere``, and the engine holds to it).
            own = [row for row in events.get(account_id, ()) if row.kind in PERSON_RESTRICTIONS
                   or row.kind == "consent"
                   or not any(_lifts(row, held) and _occurred(row) >= _occurred(held)
                              for held in shared_events)]  # fmt: skip
            events[account_id] = [*own, *map(_shared, shared_events)]
        shared_times = [time for other in sorted(others) for time in their_times.get(other, ())]
        if shared_times:
            designated[account_id] = [*designated.get(account_id, ()), *shared_times]


# Where the person may be is where any of their accounts says they live: a debtor with a
# Boston account and a Los Angeles one is called only at hours convenient in both (comment
# 6(b)(1)(i)-1), on either account. Each other account gives the zones its own address
# gives the engine (``_address_zones``); zones this account's address already gives are
# left out, so that a person whose accounts agree is decided on as before. Only accounts
# linked through addresses that chain count (``_kin``): a switchboard's many holders are
# not one person, and their zones together could leave no hour open at all.
ZONE_COLUMNS = ("id", "timezone", "jurisdiction")


def _person_zones(
    connection: Connection,
    person: dict[int, set[int]],
    accounts: Sequence[Any],
    rules: RuleSet,
    default_country: str,
) -> dict[int, tuple[str, ...]]:
    """The zones the other accounts of the same person (``person``) name, for each of
    ``accounts`` that has any not its own: one query for the batch, for the other accounts
    outside it."""
    rows = {row.id: row for row in accounts}
    outside = sorted({other for others in person.values() for other in others} - set(rows))
    if outside:
        for row in connection.execute(
            select(*columns_of(accounts_table, ZONE_COLUMNS)).where(
                among(connection, accounts_table.c.id, outside)
            )
        ):
            rows[row.id] = row
    found: dict[int, tuple[str, ...]] = {}
    for account_id, others in person.items():
        own = set(_address_zones(rows[account_id], rules, default_country))
        zones = [zone for other in sorted(others) if other in rows
                 for zone in _address_zones(rows[other], rules, default_country)
                 if zone not in own]  # fmt: skip
        if zones:
            found[account_id] = tuple(dict.fromkeys(zones))
    return found


def _address_zones(account: Any, rules: RuleSet, default_country: str) -> tuple[str, ...]:
    """The zones an account's own address gives the engine (``zones.candidate_zones``): its
    time zone, and its state's every zone where it has none or one outside the state (none
    for a country alone: that says nothing)."""
    state = rules.region_zones(account.jurisdiction or default_country)
    if not account.timezone:
        return state
    if keeps_a_clock_of(account.timezone, state):
        return (account.timezone,)
    return tuple(dict.fromkeys([account.timezone, *state]))


# A revoked consent that names a number also holds wherever the number is in use, as an
# opt-out does through the suppression ledger: the word is the number's, and the account it
# was recorded on may since have stopped using it (a new file, a number marked wrong),
# which ends the link through the person, not the revocation. It still ends only when
# lifted where it was recorded.
def _phone_users(points: dict[int, list[Any]]) -> dict[str, set[int]]:
    """The accounts using each phone number among ``points`` (active contact points)."""
    users: dict[str, set[int]] = defaultdict(set)
    for account_id, rows in points.items():
        for point in rows:
            if point.channel != "email":
                users[point.address].add(account_id)
    return users


def _revoked_for_numbers(
    connection: Connection,
    users: dict[str, set[int]],
    person: dict[int, set[int]],
    events: dict[int, list[Any]],
    now: datetime,
) -> dict[int, list[tuple[int, Any]]]:
    """The revocations of consent naming one of the numbers ``users`` use, in force on an
    account that is neither the user nor linked to it (``person``: those are shared
    already), by the user's account id, each with the account it was recorded on.
    ``events``: the events already read, by account."""
    if not users:
        return {}
    recorded = connection.execute(
        select(compliance_events.c.account_id, compliance_events.c.address).where(
            among(connection, compliance_events.c.address, sorted(users)),
            compliance_events.c.kind == "consent_revoked",
        )
    ).all()
    pairs = sorted(
        {
            (user, origin, number)
            for origin, number in recorded
            for user in users[number]
            if user != origin and origin not in person.get(user, ())
        }
    )
    if not pairs:
        return {}
    origins = sorted({origin for _, origin, _ in pairs})
    theirs = {origin: events[origin] for origin in origins if origin in events}
    unread = [origin for origin in origins if origin not in theirs]
    if unread:
        theirs.update(_read(connection, compliance_events, EVENT_COLUMNS, unread,
                            compliance_events.c.kind.in_(_NUMBER_KINDS)))  # fmt: skip
    held = {origin: _restrictions_in_force(theirs.get(origin, ()), now) for origin in origins}
    found: dict[int, list[tuple[int, Any]]] = defaultdict(list)
    for user, origin, number in pairs:
        revoked = [(origin, row) for row in held[origin] if _revokes_number(row, number)]
        if revoked:
            # The number's own START, recorded where the revocation is, counts here too
            # (CTIA C-7): the engine weighs it as this account's own word for texts.
            found[user] += revoked + [
                (origin, _Start.of(row)) for row in theirs.get(origin, ()) if _starts(row, number)
            ]
    return {user: rows for user, rows in found.items() if rows}


_NUMBER_KINDS = ("consent_revoked", "consent", "opt_in")


def _revokes_number(row: Any, number: str) -> bool:
    return bool(row.kind == "consent_revoked" and row.address == number)


def _names(row: Any, addresses: set[str]) -> bool:
    """Whether a revocation is about one of ``addresses`` (one naming none is about all)."""
    return not row.address or _address(row.channel, row.address) in addresses


def _starts(row: Any, number: str) -> bool:
    return bool(row.kind == "opt_in" and row.channel == "sms" and row.address == number)


class _Start(NamedTuple):
    """A number's START recorded on another account using it, as read for this one: the
    number's own word, not a restriction shared (``_event`` does not mark it elsewhere)."""

    occurred_at: datetime
    kind: str
    channel: str | None
    address: str | None

    @classmethod
    def of(cls, row: Any) -> _Start:
        return cls(row.occurred_at, row.kind, row.channel, row.address)


class _SharedEvent(NamedTuple):
    """A person's restriction recorded on another of their accounts, as read for this one."""

    occurred_at: datetime
    kind: str
    channel: str | None
    address: str | None


def _shared(row: Any) -> _SharedEvent:
    return _SharedEvent(row.occurred_at, row.kind, row.channel, row.address)


def _as_read(row: Any) -> Any:
    """A row found by a number, for the account using it: a restriction as shared."""
    return row if isinstance(row, _Start) else _shared(row)


def _family(row: Any) -> tuple[Any, ...] | None:
    """What a person's restriction, or what lifts it, is about, as the engine reads them
    (None: neither): a bankruptcy and its closing; an employer's prohibition and its
    lifting; the workplace said to be inconvenient and the debtor's leave again; a medium
    not to be used and an opt-in without an address on that channel; consent revoked and
    consent given (which of them a consent lifts is ``_lifts``'s to say)."""
    kind = row.kind
    if kind in ("bankruptcy", "bankruptcy_closed"):
        return ("bankruptcy",)
    if kind in ("workplace_prohibited", "workplace_allowed"):
        return ("workplace",)
    if kind in ("workplace_inconvenient", "workplace_convenient"):
        return ("workplace inconvenient",)
    if kind == "prohibited_medium" or (kind == "opt_in" and not row.address):
        return ("medium", row.channel)
    if kind in ("consent_revoked", "consent"):
        return ("consent",)
    return None


def _lifts(lift: Any, restriction: Any) -> bool:
    """Whether the event ``lift`` ends the person's ``restriction`` where both are recorded.
    A consent ends the revocations within its reach: one without a channel or address
    reaches every channel or address, as the engine reads it. A narrower consent leaves a
    wider revocation in force for the person, the protective reading."""
    if lift.kind in PERSON_RESTRICTIONS or _family(lift) != _family(restriction):
        return False
    if restriction.kind != "consent_revoked":
        return True
    return lift.channel in (None, restriction.channel) and (
        not lift.address
        or (
            restriction.address is not None
            and _address(lift.channel, lift.address)
            == _address(restriction.channel, restriction.address)
        )
    )


def _concerns(lift: Any, restriction: Any) -> bool:
    """Whether ``lift`` is about some of what ``restriction`` restricts (a consent to calls
    and a revocation of all consent are; only a consent as wide as it lifts it)."""
    if _family(lift) != _family(restriction) or lift.kind in PERSON_RESTRICTIONS:
        return False
    if restriction.kind != "consent_revoked":
        return True
    # A number's revoked consent on one phone channel revokes it on the other too.
    channels_meet = None in (lift.channel, restriction.channel) or (
        lift.channel == restriction.channel
        or {lift.channel, restriction.channel} <= {"sms", "voice"}
    )
    addresses_meet = (
        not lift.address
        or not restriction.address
        or _address(lift.channel, lift.address)
        == _address(restriction.channel, restriction.address)
    )
    return channels_meet and addresses_meet


def _restrictions_in_force(rows: Sequence[Any], now: datetime) -> list[Any]:
    """The person's restrictions among one account's events that no later event of that
    account lifts (a lift counts from its time on, a restriction at once, as the engine
    reads them)."""
    in_force: list[Any] = []
    for row in sorted(rows, key=_occurred):
        if _family(row) is None:
            continue
        if row.kind in PERSON_RESTRICTIONS:
            # A revocation of consent within a wider one's reach is kept: a consent may
            # later lift the narrower and leave the wider.
            if row.kind != "consent_revoked":
                in_force = [held for held in in_force if _family(held) != _family(row)]
            in_force.append(row)
        elif row.occurred_at <= now:  # a lift stamped ahead of now does not count yet
            in_force = [held for held in in_force if not _lifts(row, held)]
    return in_force


class Lift(NamedTuple):
    """An event that lifts a person's restriction, as ``held_elsewhere`` is asked about it."""

    kind: str
    channel: str | None = None
    address: str | None = None


def held_elsewhere(connection: Connection, account_id: int, lift: Lift, now: datetime) -> list[str]:
    """The references of the person's other accounts (``_same_person``) on which a
    restriction about what ``lift`` lifts is in force: a lift recorded on one account does
    not end it there, and it still holds for the person."""
    held = still_held(connection, account_id, lift, now, own=False)
    return sorted({reference for reference, _ in held})


def still_held(
    connection: Connection, account_id: int, lift: Lift, now: datetime, *, own: bool = True
) -> list[tuple[str, Any]]:
    """The person's restrictions in force that ``lift`` is about (``_concerns``), on their
    other accounts and, with ``own``, on this one (a consent narrower than a revocation
    leaves it in force): (the account's reference, the restriction's row), by reference."""
    if _family(lift) is None or lift.kind in PERSON_RESTRICTIONS:
        return []  # it lifts nothing shared: no need to look for the person's accounts
    return _held(
        connection, account_id, now, lambda row: _concerns(lift, row),
        own=own, by_number=_family(lift) == ("consent",),
    )  # fmt: skip


def held_from_elsewhere(
    connection: Connection, account_id: int, now: datetime
) -> list[tuple[str, Any]]:
    """The restrictions the account's decisions hold to from other accounts, as the planner
    reads them: the person's, in force on their other accounts, and the revoked consents of
    its numbers recorded on any other account. (the account's reference, the row), by
    reference: each ends only where it was recorded."""
    return _held(connection, account_id, now, lambda row: True, own=False, by_number=True)


def _held(
    connection: Connection,
    account_id: int,
    now: datetime,
    concerned: Callable[[Any], bool],
    *,
    own: bool,
    by_number: bool,
) -> list[tuple[str, Any]]:
    points = _active_points(connection, account_id)
    others = _person_of(connection, account_id, points)
    ids = others + ([account_id] if own else [])
    numbered: list[tuple[int, Any]] = []
    if by_number:
        # Revocations naming one of its numbers, recorded on accounts not linked to it.
        numbered = _revoked_for_numbers(
            connection, _phone_users(points), {account_id: set(others)}, {}, now
        ).get(account_id, [])
    events = _read(connection, compliance_events, EVENT_COLUMNS, ids,
                   compliance_events.c.kind.in_(PERSON_EVENT_KINDS))  # fmt: skip
    addresses = {_address(p.channel, p.address) for rows in points.values() for p in rows}
    held = [
        (other, row)
        for other, row in [
            *((other, row) for other in ids for row in _restrictions_in_force(events[other], now)),
            *numbered,
        ]
        # Another's revocation naming an address this account does not use does not bear on it.
        if row.kind in PERSON_RESTRICTIONS
        and concerned(row)
        and (other == account_id or row.kind != "consent_revoked" or _names(row, addresses))
    ]
    if not held:
        return []
    names = dict(
        connection.execute(
            select(accounts_table.c.id, accounts_table.c.reference).where(
                accounts_table.c.id.in_(sorted({other for other, _ in held}))
            )
        ).all()
    )
    return sorted(((names[other], row) for other, row in held), key=lambda pair: pair[0])


def in_force(
    connection: Connection, account_id: int, kind: str, at: datetime, now: datetime
) -> bool:
    """Whether the account's ``kind`` (one of ``PERSON_RESTRICTIONS``) recorded ``at`` is in
    force: not lifted by a later event of the account."""
    rows = _read(connection, compliance_events, EVENT_COLUMNS, [account_id],
                 compliance_events.c.kind.in_(PERSON_EVENT_KINDS))[account_id]  # fmt: skip
    return any(
        row.kind == kind and row.occurred_at == at for row in _restrictions_in_force(rows, now)
    )


def person_accounts(
    connection: Connection, account_id: int, number: str | None = None
) -> list[str]:
    """The references of the person's other accounts (``_same_person``): where what is
    recorded about the person on this one holds too; with ``number`` (a revoked consent's),
    also of every other account using the number (``_revoked_for_numbers``)."""
    others = set(_person_of(connection, account_id, _active_points(connection, account_id)))
    if number and "@" not in number:
        others |= set(
            connection.execute(
                select(contact_points.c.account_id).where(
                    contact_points.c.address == number,
                    contact_points.c.channel.in_(("sms", "voice")),
                    contact_points.c.status == ContactStatus.ACTIVE,
                    contact_points.c.account_id != account_id,
                )
            ).scalars()
        )
    return _references(connection, sorted(others))


def _active_points(connection: Connection, account_id: int) -> dict[int, list[Any]]:
    return _read(connection, contact_points, POINT_COLUMNS, [account_id],
                 contact_points.c.status == ContactStatus.ACTIVE)  # fmt: skip


def _person_of(connection: Connection, account_id: int, points: dict[int, list[Any]]) -> list[int]:
    """The person's other accounts, from the account's active ``points``."""
    numbers = _servicer_numbers(connection, [account_id])
    return sorted(_same_person(connection, [account_id], points, numbers)[0].get(account_id, ()))


def _references(connection: Connection, ids: Sequence[int]) -> list[str]:
    if not ids:
        return []
    return list(
        connection.execute(
            select(accounts_table.c.reference)
            .where(accounts_table.c.id.in_(ids))
            .order_by(accounts_table.c.reference)
        ).scalars()
    )


def _occurred(row: Any) -> datetime:
    at: datetime = row.occurred_at
    return at


def _shared_history(
    connection: Connection,
    accounts: Sequence[Any],
    shared_with: dict[int, set[int]],
    points: dict[int, list[Any]],
    placed: dict[int, list[Any]],
    since: datetime,
    until: datetime,
    debts: dict[int, str],
) -> dict[int, list[PastContact]]:
    """Contacts placed through the debtor's other accounts (``_same_person``). Each
    contact keeps its own debt, so caps per debtor and per address count it and caps per
    debt do not, unless the two are one particular debt (student loans, ``debts``)."""
    if not shared_with:
        return {}
    reference = {row.id: row.reference for row in accounts}
    outside = {other for others in shared_with.values() for other in others} - reference.keys()
    placed_elsewhere: dict[int, list[Any]] = {}
    if outside:
        their = connection.execute(
            select(accounts_table.c.reference, *columns_of(attempts, PLACED_COLUMNS))
            .join(accounts_table, accounts_table.c.id == attempts.c.account_id)
            .where(
                among(connection, attempts.c.account_id, sorted(outside)),
                is_placed,
                placed_time >= since,
                placed_time <= until,
            )
        )
        for row in named_rows(their):
            reference[row.account_id] = row.reference
            placed_elsewhere.setdefault(row.account_id, []).append(row)
    return {
        account_id: [
            _placed(debts.get(other) or reference[other], attempt)
            for other in sorted(others)
            for attempt in placed.get(other) or placed_elsewhere.get(other) or ()
        ]
        for account_id, others in shared_with.items()
        if account_id in points
    }


def debtor_records(
    accounts: Sequence[Any],
    points: dict[int, list[Any]],
    events: dict[int, list[Any]],
    designated: dict[int, list[Any]],
    placed: dict[int, list[Any]],
    replies: dict[int, list[Any]],
    opted_out: dict[tuple[str, str], list[Event]],
    default_country: str,
    *,
    shared: dict[int, list[PastContact]] | None = None,
    debts: dict[int, str] | None = None,
    used: dict[int, set[str]] | None = None,
    zones: dict[int, tuple[str, ...]] | None = None,
) -> dict[int, DebtorRecord]:
    """The records from rows already read, grouped by account id (rows or ORM objects:
    only their attributes are read). Sorts each account's contact points in place.
    ``shared``: contacts placed through the debtor's other accounts, by account id;
    ``debts``: the particular debt of the accounts that are not each their own; ``used``:
    the work mailboxes the debtor has emailed from (``work_mailboxes_used``); ``zones``:
    where the debtor's other accounts say they live (``_person_zones``)."""
    records = {}
    for row in accounts:
        debt = (debts.get(row.id) if debts else None) or row.reference
        # Best first on each channel; sorted once here for the record and the debtor.
        own_points = points.get(row.id) or []
        if len(own_points) > 1:
            own_points.sort(key=_point_order)
        found = events.get(row.id)
        own_events = [_event(e) for e in found] if found else []
        if opted_out:
            for p in own_points:
                own_events += opted_out.get((p.channel, _address(p.channel, p.address)), ())
        if len(own_events) > 1:
            own_events.sort(key=_event_at)
        past, answered = placed.get(row.id), replies.get(row.id)
        elsewhere = shared.get(row.id) if shared else None
        records[row.id] = DebtorRecord(
            account_id=row.id,
            reference=row.reference,
            debt=debt,
            jurisdiction=row.jurisdiction or default_country,
            collector=row.collector_type,
            debtor=_debtor(
                row,
                own_points,
                designated.get(row.id) or (),
                used.get(row.id) if used else None,
                zones.get(row.id, ()) if zones else (),
            ),
            history=tuple(
                [_placed(debt, a) for a in past or ()]
                + [_reply(debt, m) for m in answered or ()]
                + (elsewhere or [])
            )
            if past or answered or elsewhere
            else (),
            events=tuple(own_events),
            points=tuple([(p.channel, _address(p.channel, p.address), p.id) for p in own_points]),
        )
    return records


def situation(
    record: DebtorRecord,
    channel: str,
    address: str,
    now: datetime,
    *,
    automated: bool = True,
    responding_to: datetime | None = None,
) -> Situation:
    return Situation(
        now=now,
        jurisdiction=record.jurisdiction,
        collector=record.collector,
        debtor=record.debtor,
        contact=Contact(channel, address, (record.debt,), automated, responding_to),
        history=record.history,
        events=record.events,
    )


def decision_row(
    account_id: int,
    decision: Decision,
    asked: Situation,
    *,
    stage: str,
    decided_at: datetime,
    step_key: str | None = None,
    attempt_id: int | None = None,
) -> dict[str, Any]:
    """A ``decision`` table row: the verdict, its reasons, and the input as a scenario that
    ``outreach compliance check`` can replay."""
    return {
        "account_id": account_id,
        "attempt_id": attempt_id,
        "stage": stage,
        "step_key": step_key,
        "channel": asked.contact.channel,
        "address": asked.contact.to,
        "verdict": decision.verdict,
        "not_before": decision.not_before,
        "reasons": [reason.as_json() for reason in decision.reasons],
        "rules_evaluated": [f"{c.code}:{c.outcome}" for c in decision.checks],
        "input_snapshot": scenario_of(asked),
        "ruleset_version": decision.ruleset_version,
        "decided_at": decided_at,
    }


_NEW_DECISIONS = BulkStatement(lambda _: decisions.insert())


def store_decisions(connection: Connection, rows: Sequence[dict[str, Any]]) -> None:
    _NEW_DECISIONS.execute(connection, rows)


def decisions_to_store(dialect: Dialect, rows: Sequence[dict[str, Any]]) -> PreparedRows:
    """``store_decisions`` made ready ahead of its transaction."""
    return _NEW_DECISIONS.prepare(dialect, rows)


def _address(channel: str | None, address: str) -> str:
    """Email addresses compare without case (an unsubscribe from Pat@Example.net covers
    pat@example.net), also in an event recorded without a channel; phone numbers are E.164
    already (and never hold an "@")."""
    return (
        address.lower() if channel == "email" or (channel is None and "@" in address) else address
    )


def _read(
    connection: Connection,
    table: Table,
    names: Sequence[str],
    ids: Sequence[int],
    *where: ColumnElement[bool],
) -> dict[int, list[Any]]:
    """The ``names`` columns of ``table``'s rows for the accounts ``ids`` (and ``where``),
    grouped by account id."""
    return _by_account(
        connection.execute(
            select(*columns_of(table, names)).where(
                among(connection, table.c.account_id, ids), *where
            )
        )
    )


def _by_account(result: Result[Any]) -> dict[int, list[Any]]:
    grouped: dict[int, list[Any]] = defaultdict(list)
    for row in named_rows(result):
        grouped[row.account_id].append(row)
    return grouped


def _point_order(point: Any) -> tuple[str, int, int]:
    return (point.channel, point.priority, point.id)


def _event(row: Any) -> Event:
    address = row.address and _address(row.channel, row.address)
    return Event(row.occurred_at, row.kind, row.channel, address, (), type(row) is _SharedEvent)


def _event_at(event: Event) -> datetime:
    return event.at


def _debtor(
    account: Any,
    points: Sequence[Any],
    designated: Sequence[Any],
    used: set[str] | None = None,
    elsewhere: tuple[str, ...] = (),
) -> Debtor:
    """``points`` in ``_point_order``; ``used``: the mailboxes the debtor has emailed from;
    ``elsewhere``: the zones the debtor's other accounts name."""
    numbers: dict[str, Any] = {}  # each number's last point
    consented: set[tuple[str, str]] = set()
    emails: list[Email] = []
    for point in points:
        if point.channel == "email":
            address = _address("email", point.address)
            emails.append(
                Email(address, point.kind, point.consent, used is not None and address in used)
            )
            continue
        numbers[point.address] = point
        if point.consent:
            consented.add((point.channel, point.address))
    # A phone gives an sms and a voice point, each with its own consent: consent to texts
    # is no consent to prerecorded calls. Consent on both is the number's.
    phones = []
    for number, point in numbers.items():
        sms, voice = ("sms", number) in consented, ("voice", number) in consented
        phones.append(Phone(number, point.kind, point.timezone, sms and voice,
                            sms and not voice, voice and not sms))  # fmt: skip
    return Debtor(
        timezone=account.timezone,
        other_timezones=elsewhere,
        phones=tuple(phones),
        emails=tuple(emails),
        inconvenient_times=tuple(
            InconvenientTime(d.start_local, d.end_local, tuple(d.days.split(",")))
            for d in designated
        ),
    )


def _placed(debt: str, attempt: Any) -> PastContact:
    return PastContact(
        at=attempt.sent_at or attempt.placed_at or attempt.created_at,
        channel=attempt.channel,
        direction="outbound",
        debts=(debt,),
        outcome=attempt.outcome or _outcome_of(attempt.status),
        to=_address(attempt.channel, attempt.to_address),
        automated=attempt.automated,
    )


def _outcome_of(status: str) -> str:
    if status == AttemptStatus.DELIVERED:
        return "delivered"
    if status in (AttemptStatus.FAILED, AttemptStatus.UNDELIVERED):
        return "failed"
    return "no_answer"  # placed; what came of it is not known yet


def _reply(debt: str, message: Any) -> PastContact:
    return PastContact(
        at=message.received_at,
        channel=message.channel,
        direction="inbound",
        debts=(debt,),
        outcome="delivered",
        to=_address(message.channel, message.from_address),
    )


def _opt_out_rows(connection: Connection, addresses: set[str]) -> Iterable[Any]:
    if not addresses:
        return ()
    return connection.execute(
        select(
            *columns_of(suppressions, ("channel", "address", "reason", "created_at", "lifted_at"))
        ).where(
            among(connection, suppressions.c.address, addresses),
            suppressions.c.reason.in_(OPT_OUT_REASONS),
        )
    )


def suppression_events(rows: Iterable[Any]) -> dict[tuple[str, str], list[Event]]:
    """Opt-out suppressions (rows or ORM objects) as each address's opt-out and opt-in
    events. While a complaint or an operator's suppression of an address is in force, the
    debtor's opt-outs of it lifted since are no opt-in: the engine reads an address's latest
    word, and a START must not outrank what it may not lift."""
    found: dict[tuple[str, str], list[Event]] = defaultdict(list)
    lifts: dict[tuple[str, str], list[Event]] = defaultdict(list)
    held: set[tuple[str, str]] = set()
    for row in rows:
        address = _address(row.channel, row.address)
        key = (row.channel, address)
        found[key].append(Event(row.created_at, "opt_out", row.channel, address))
        if row.lifted_at is not None:
            lifts[key].append(Event(row.lifted_at, "opt_in", row.channel, address))
        elif row.reason in NOT_LIFTED_BY_OPT_IN:
            held.add(key)
    for key, lifted in lifts.items():
        if key not in held:
            found[key] += lifted
    return found
