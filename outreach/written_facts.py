"""What a cadence message was written from, as a digest checked again before it leaves.

A message is rendered when it is planned, and may wait before it leaves: a rate limit's
queue, a deferral to the next morning, a provider's outage. Meanwhile a payment can lower
the balance, or the debtor's day can turn, and "$120.50" or "due tomorrow" would no longer
be true. The plan stage stores a digest of the account's facts the text was written from
(reference, name, balance, currency, due date, locale, collector type, whether the debt is
time-barred) and of the debtor's local date; the dispatcher works it out again from the
account as it is then, and a message whose facts have changed is not sent: its step goes
back to the planner, which writes it afresh.

The digest also says whether the message was written as a later one: a debt collector's
first communication carries the whole disclosure (Reg F 1006.18(e)(1)), a later SMS may
carry the short form. A message written as a later one is not sent while nothing about the
debt has reached the debtor (the one before it failed, say): it is written afresh as the
first. One written as the first stays true after a contact: it says all a later one must.
A debt the creditor placed with a debt collector (an import turned it from ``first_party``
to ``third_party``, ``collector_since``) counts only the collector's messages: the
creditor's came before, and the collector's first carries the whole disclosure. The
collector type is among the digest's facts: a message written before the switch is
written afresh, as the collector's first.

A message written before the debt became time-barred (its day came, or an import set it)
is written afresh too: a debt collector must not threaten suit on a time-barred debt (Reg F
1006.26(b)), and its text is checked again for that as it is rendered. A message without a
digest (an agent's answer, or one queued before digests were kept) cannot be written again:
once its debt is time-barred, its words are read as the debtor would get them
(``suit_threat``), and one that threatens suit is cancelled.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date, datetime
from hashlib import blake2b
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, and_, exists, or_, select

from outreach.compliance.rules import RuleSet
from outreach.compliance_store import attempts
from outreach.models import AttemptStatus, CollectorType, ContactStatus, ProviderEvent
from outreach.providers.base import IDENTITY_CHECK, PLAY_MESSAGE
from outreach.rendering.suit_threat import CODE as SUIT_THREAT
from outreach.rendering.suit_threat import message_parts, threatens_suit
from outreach.store import accounts, among, contact_points, table_of, unindexed

provider_events = table_of(ProviderEvent)

# The account columns the digest reads.
FACT_COLUMNS = ("reference", "name", "balance_minor", "currency", "due_date", "locale",
                "collector_type", "timezone", "time_barred_on")  # fmt: skip
OUT_OF_DATE = "out of date: the account changed since the message was written"
NOT_CONTACTED = "out of date: written as a later message, but none has reached the debtor"

# An earlier message counts as a communication about the debt once it surely reached the
# debtor: taken by the provider (and not failed since) or delivered. One still in flight or
# ``unknown`` may not have: the next is written as the first, with the whole disclosure,
# the side on which no debtor goes without it. A call counts only when the person who took
# it said they were the debtor and heard the message (its identity check's answer): a
# voicemail left is a limited-content message, no communication (Reg F 1006.2(j)), and
# whoever answers and does not press 1 hears nothing about the debt. Nor does a message to
# an address since found to be someone else's (``wrong_number``): a stranger read it.
COMMUNICATED = (AttemptStatus.SENT, AttemptStatus.DELIVERED)
CALL_TAKEN = "conversation"


def contacted(connection: Connection, account_ids: Sequence[int]) -> set[int]:
    """The accounts among ``account_ids`` whose debtor has had a message about the debt
    (the account), on any channel, from its current collector: one query, through the
    attempts' account index, each attempt joined to its account by its key. A debt
    collector that took the debt over from the creditor (``collector_since``) counts only
    the messages written since: the creditor's are not its communications."""
    if not account_ids:
        return set()
    heard = exists().where(
        provider_events.c.attempt_id == attempts.c.id,
        provider_events.c.kind == IDENTITY_CHECK,
        provider_events.c.raw_status.like(f"%: {PLAY_MESSAGE}"),
    )
    someone_else = exists().where(
        contact_points.c.account_id == attempts.c.account_id,
        contact_points.c.channel == attempts.c.channel,
        contact_points.c.address == attempts.c.to_address,
        contact_points.c.status == ContactStatus.WRONG_NUMBER,
    )
    the_collectors = or_(
        accounts.c.collector_since.is_(None),
        accounts.c.collector_type != CollectorType.THIRD_PARTY,
        attempts.c.created_at >= accounts.c.collector_since,
    )
    return set(
        connection.execute(
            select(attempts.c.account_id)
            .join(accounts, accounts.c.id == attempts.c.account_id)
            .where(
                among(connection, attempts.c.account_id, account_ids),
                the_collectors,
                unindexed(attempts.c.status).in_(COMMUNICATED),
                or_(
                    attempts.c.channel != "voice",
                    and_(attempts.c.outcome == CALL_TAKEN, heard),
                ),
                ~someone_else,
            )
            .distinct()
        ).scalars()
    )


def facts_digest(account: Any, day: date, *, first_contact: bool, time_barred: bool = False) -> str:
    """A digest of what a message to ``account``, written on the debtor's ``day`` as the
    first communication about the debt or a later one, for a debt ``time_barred`` or
    not, states."""
    fields = (
        account.reference,
        account.name,
        str(account.balance_minor),
        account.currency,
        account.due_date.isoformat(),
        account.locale,
        account.collector_type,
        day.isoformat(),
    )
    # A later message's digest is the one kept before first contacts were told apart (a
    # message queued then is taken for a later one: written again unless a contact was had).
    # A debt not time-barred adds nothing: messages queued before the fact was kept stay
    # as they were written.
    marks = ("first",) * first_contact + ("time-barred",) * time_barred
    text = "\x1f".join((*fields, *marks))
    return blake2b(text.encode(), digest_size=8).hexdigest()


def home_zones(rules: RuleSet, jurisdiction: str) -> tuple[str, ...]:
    """The zones of an account's home: its state's, else its country's (UTC if none)."""
    zones = rules.region_zones(jurisdiction) or rules.all_zones(jurisdiction.split("-")[0])
    return tuple(zones) or ("UTC",)


def home_zone(rules: RuleSet, jurisdiction: str) -> str:
    """The zone an account without one of its own counts its days in: its home's first."""
    return home_zones(rules, jurisdiction)[0]


def account_zone(account: Any, rules: RuleSet, jurisdiction: str) -> str:
    """The zone the account's days are counted in."""
    return str(account.timezone or home_zone(rules, jurisdiction))


def local_day(account: Any, rules: RuleSet, jurisdiction: str, now: datetime) -> date:
    """The account's date at ``now``, in its zone or its home's."""
    return now.astimezone(ZoneInfo(account_zone(account, rules, jurisdiction))).date()


def time_barred(account: Any, rules: RuleSet, jurisdiction: str, now: datetime) -> bool:
    """Whether the debt is time-barred at ``now``: the day the operator gave
    (``time_barred_on``) has come for the debtor. Without a zone of its own, the debtor may
    be in any of its home's zones: it has come once it has in one of them (the safe side,
    where a threat of suit is refused)."""
    barred_on: date | None = account.time_barred_on
    if barred_on is None:
        return False
    zones = (str(account.timezone),) if account.timezone else home_zones(rules, jurisdiction)
    return barred_on <= max(now.astimezone(ZoneInfo(zone)).date() for zone in zones)


def written_day(
    account: Any, rules: RuleSet, jurisdiction: str, now: datetime
) -> tuple[date, bool]:
    """What of the debtor's time a message's digest reads at ``now``: their day, and
    whether the debt is time-barred."""
    day = local_day(account, rules, jurisdiction, now)
    return day, time_barred(account, rules, jurisdiction, now)


def written_as(
    account: Any, written: str, rules: RuleSet, jurisdiction: str, now: datetime
) -> bool | None:
    """Whether a message whose digest is ``written`` states what ``account`` is as the
    first communication (True) or a later one (False); None: its facts have changed."""
    day, barred = written_day(account, rules, jurisdiction, now)
    if written == facts_digest(account, day, first_contact=True, time_barred=barred):
        return True
    if written == facts_digest(account, day, first_contact=False, time_barred=barred):
        return False
    return None


def suit_threat(row: Any, names: Iterable[str] = (), notices: Iterable[str] = ()) -> str | None:
    """Why a queued message may not go to the debtor of a time-barred debt: a part of it
    threatens legal action (Reg F 1006.26(b)); None if none does. ``names``: the debtor's
    and the company's, which are not threats; ``notices``: the company's approved notices
    on time-barred debts, not read where they occur verbatim (``threatens_suit``)."""
    names, notices = list(names), tuple(notices)
    # Part by part, as the render check read it.
    for part, said in message_parts(row.body, row.subject, row.body_html, row.voicemail):
        phrase = threatens_suit(said, names, notices)
        if phrase is not None:
            return (
                f"{SUIT_THREAT}: the debt is time-barred, and the {part} threatens legal "
                f"action ('{phrase}'), which Reg F 1006.26(b) forbids"
            )
    return None
