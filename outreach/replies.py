"""What the debtor wrote: keywords, requests to stop, and replies for the agents' inbox.

- A request to stop on the channel it came on (STOP, "please stop texting me") suppresses
  that address at once and is confirmed by one text that says nothing else; a request
  that names a medium in words ("stop calling me", "stop texting me", whichever channel it
  came on) makes that medium prohibited for the account, every address on it (Reg F
  1006.14(h)). START/UNSTOP lift the debtor's own opt-out; HELP gets the help text.
  Where the provider answers its own keywords, outreach does not answer twice.
- Mail to the unsubscribe mailbox (the List-Unsubscribe mailto), or with the subject
  "unsubscribe", is a request to stop email. An email's subject is read with its text,
  for a request to stop and for what it is about ("Please stop emailing me" with no
  body), unless it is the subject of the cadence email it replies to. A request to stop that
  names our message also suppresses the address that message went to, when the debtor
  wrote from another one.
- Anything that is not only a keyword lands in the inbox, matched to its account by the
  message it answers or by the sender's address (no match: an unknown sender), classified
  (``outreach.intents``). It pauses the account's cadence until an agent handles it; an
  attorney, cease or dispute statement records that compliance event (which blocks
  outreach) and flags the account; "wrong number" marks the contact point. A message that
  names our message (the ``+N`` of the reply-to) from an address that account does not have
  is kept for an agent as from an unverified sender: anyone can write to that address, so
  it neither pauses nor puts a hold on the account it names. An email names only an email
  of ours: one naming a text or a call is an email from its sender (``events``).
Every answer outreach gives is kept in the inbox thread as an outbound, handled message.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, and_, func, or_, select, update

from outreach.channels import SmsReplies
from outreach.compliance_store import inbox_messages
from outreach.intents import (
    HOLDS,
    Classification,
    Intent,
    Keyword,
    StopRequest,
    classify,
    keyword,
    reply_text,
    stop_request,
    subject_words,
)
from outreach.models import ComplianceEventKind, ContactStatus, InboxStatus, SuppressionReason
from outreach.opt_outs import (
    accounts_using,
    ledger_address,
    mark_contact_points,
    opt_in,
    opted_out,
    phone_or_email,
    record,
    same_address,
    suppress,
)
from outreach.providers.base import EventType, ProviderEvent
from outreach.providers.keywords import normalize
from outreach.rendering.context import spoken_name
from outreach.store import accounts as account_table
from outreach.store import compliance_events, contact_points, hold_writes, lock_accounts, unindexed

log = logging.getLogger("outreach.replies")

REPLY_PAUSE_REASON = "a reply waits in the inbox"
# Flags an agent must see, most serious first: a later reply never hides a worse one.
FLAGS = (Intent.ATTORNEY, Intent.CEASE, Intent.DISPUTE, Intent.WRONG_NUMBER)
_HOLD_KINDS = {
    Intent.ATTORNEY: ComplianceEventKind.ATTORNEY,
    Intent.CEASE: ComplianceEventKind.CEASE,
    Intent.DISPUTE: ComplianceEventKind.DISPUTE,
    Intent.NOT_AT_WORK: ComplianceEventKind.WORKPLACE_INCONVENIENT,
}
_KEYWORD_EVENTS = (EventType.OPTED_OUT, EventType.OPTED_IN, EventType.HELP_REQUESTED)


@dataclass(frozen=True)
class Received:
    """A message from the debtor, stored as provider event ``event_id``."""

    event: ProviderEvent
    attempt: Any | None
    event_id: int
    channel: str
    address: str  # the sender's
    # The accounts using the sender's address, when the caller has looked them up (and
    # locked them): the same accounts are then acted on.
    users: list[int] | None = None


@dataclass(frozen=True)
class _Senders:
    """Whose message it is: the accounts with the sender's address, and the account of the
    message it names, if the sender is not one of its addresses (unverified)."""

    owners: list[int]
    unverified: int | None  # the named attempt's account


def receive(
    connection: Connection,
    message: Received,
    now: datetime,
    pause: timedelta,
    replies: SmsReplies,
    *,
    answered_by_provider: bool,
    unsubscribe_mailboxes: Collection[str] = (),
) -> str | None:
    """Act on a message from the debtor; the text to answer it with, if any (at most one)."""
    event, channel = message.event, message.channel
    text = reply_text(event.body or "") if channel == "email" else (event.body or "")
    said = keyword(text)
    senders = _senders(connection, message)
    owners = senders.owners
    # An email's subject is read with its text ("Please stop emailing me" and no body, "I
    # dispute this debt" over "See the attached letter"), but not our cadence email's
    # subject replied to.
    read = _with_subject(message, text) if channel == "email" else text
    # The provider recognized a keyword itself (and, where it answers them, answered).
    silent = answered_by_provider and event.event_type in _KEYWORD_EVENTS
    answer: tuple[Keyword, str] | None = None
    stop = None if said in (Keyword.OPT_IN, Keyword.HELP) else stop_request(read, channel)
    unsubscribing = channel == "email" and _unsubscribe_mail(event, unsubscribe_mailboxes)
    if (event.event_type == EventType.OPTED_OUT or unsubscribing) and stop is None:
        stop = StopRequest(frozenset({channel}))
    elif (event.event_type == EventType.OPTED_OUT or unsubscribing) and stop is not None:
        # The provider's word that this address opted out (9 pressed, "stop" said in a
        # call), or mail to the unsubscribe mailbox, holds whatever else the words name
        # ("stop texting me" said in a call, "also stop calling me" in the mail).
        stop = StopRequest(stop.media | {channel}, stop.named)
    if unsubscribing and said is None and _only_an_instruction(read, channel):
        said = Keyword.OPT_OUT  # what a mail client sends for List-Unsubscribe: no reply
    if stop is not None:
        if _stop(connection, message, stop, owners, now):
            answer = (Keyword.OPT_OUT, replies.opt_out_confirmation)
    elif event.event_type == EventType.OPTED_IN or said is Keyword.OPT_IN:
        if normalize(text) == "YES" and not opted_out(connection, channel, message.address):
            said = None  # a bare "yes" with nothing to undo answers something else
        else:
            opt_in(connection, event, channel, message.address, now, owners)
            _allow_medium_again(connection, owners, event, channel, now)
            answer = (Keyword.OPT_IN, replies.opt_in_confirmation)
    elif event.event_type == EventType.HELP_REQUESTED or said is Keyword.HELP:
        answer = (Keyword.HELP, replies.help)
    if said is None and not (event.event_type in _KEYWORD_EVENTS and not text.strip()):
        _to_inbox(connection, message, read, senders, now, pause)
    # Texts go back on SMS only, and only where the provider did not answer already.
    if answer is None or silent or channel != "sms":
        return None
    for owner in _or_unknown(owners):
        _inbox_row(connection, message, owner, answer[0], "outbound", answer[1], now)
    return answer[1]


def _with_subject(message: Received, text: str) -> str:
    """An email's words to read: its subject, without Re:/Fwd: prefixes and [tags], then its
    text. The subject of the cadence email it replies to (the attempt its ``+N`` names) is
    left out: those are our words, not the debtor's. Any other subject is read: an agent's
    answer's (it repeats the debtor's own subject), one of an email not tied to ours, one
    like a subject we once sent. When in doubt a subject is the debtor's: reading our own
    words may hold an account an agent then releases; missing a stop breaks the law."""
    subject = subject_words(message.event.subject or "")
    if not subject:
        return text
    attempt = message.attempt
    if (
        attempt is not None
        and attempt.channel == "email"
        and attempt.automated
        and attempt.subject
        and _folded(subject_words(str(attempt.subject))) == _folded(subject)
    ):
        return text
    return f"{subject}.\n{text}" if text else subject


def _folded(subject: str) -> str:
    return " ".join(subject.casefold().split())


def _allow_medium_again(
    connection: Connection,
    owners: Sequence[int],
    event: ProviderEvent,
    channel: str,
    now: datetime,
) -> None:
    """A START on a medium the debtor asked us not to use at all ("stop texting me")
    allows it again: they ask for it, and are told they will get messages again."""
    if not owners:
        return
    prohibited = connection.execute(
        select(compliance_events.c.id)
        .where(
            compliance_events.c.account_id.in_(owners),
            compliance_events.c.kind == ComplianceEventKind.PROHIBITED_MEDIUM,
            compliance_events.c.channel == channel,
        )
        .limit(1)
    ).first()
    if prohibited is not None:
        record(connection, owners, ComplianceEventKind.OPT_IN, min(event.occurred_at, now),
               event, channel, None)  # fmt: skip


def _senders(connection: Connection, message: Received) -> _Senders:
    """The accounts a message concerns: every account with the sender's address, and the
    one whose message it answers when the sender is one of that account's addresses."""
    found = message.users
    if found is None:
        found = accounts_using(connection, phone_or_email(message.channel), message.address)
    attempt = message.attempt
    if attempt is None or attempt.account_id in found:
        return _Senders(found, None)
    if _has_address(connection, attempt, message.channel, message.address):
        return _Senders([attempt.account_id, *found], None)
    return _Senders(found, int(attempt.account_id))


def _has_address(connection: Connection, attempt: Any, channel: str, sender: str) -> bool:
    """Whether ``sender`` is the attempt's address or one of its account's (in any status:
    a debtor may write from an address marked invalid)."""
    spelled = ledger_address(channel, sender)
    if ledger_address(channel, str(attempt.to_address)) == spelled:
        return True
    found = connection.execute(
        select(contact_points.c.id)
        .where(
            contact_points.c.account_id == attempt.account_id,
            contact_points.c.channel.in_(phone_or_email(channel)),
            same_address(connection, contact_points.c.address, (channel,), sender),
        )
        .limit(1)
    ).first()
    return found is not None


def _unsubscribe_mail(event: ProviderEvent, mailboxes: Collection[str]) -> bool:
    """An email that asks to unsubscribe by where it went or what its subject says: the
    List-Unsubscribe mailto gives both, and a mail client may add a body of its own."""
    if keyword(subject_words(event.subject or "")) is Keyword.OPT_OUT:
        return True
    wanted = {_mailbox(address) for address in mailboxes}
    return bool(wanted) and any(_mailbox(to) in wanted for to in _recipients(event))


def _recipients(event: ProviderEvent) -> list[str]:
    """Where an inbound email went: its To header and the envelope's recipients."""
    found = [event.to_address] if event.to_address else []
    envelope = event.payload.get("envelope") if isinstance(event.payload, dict) else None
    try:
        loaded = json.loads(envelope) if isinstance(envelope, str) else None
    except ValueError:
        loaded = None
    if isinstance(loaded, dict) and isinstance(loaded.get("to"), list):
        found += [str(address) for address in loaded["to"] if isinstance(address, str)]
    return found


def _mailbox(address: str) -> str:
    """An address without case and without a ``+tag`` on its local part."""
    local, at, domain = address.strip().lower().rpartition("@")
    return f"{local.split('+', 1)[0]}{at}{domain}" if at else address.strip().lower()


def _only_an_instruction(text: str, channel: str) -> bool:
    """Nothing in the message an agent must read: empty, a keyword, or words that show no
    intent but stopping (a mail client's "This message was automatically generated")."""
    return classify(text, channel).intent in (Intent.OTHER, Intent.OPT_OUT) or not text.strip()


def _stop(
    connection: Connection,
    message: Received,
    stop: StopRequest,
    owners: Sequence[int],
    now: datetime,
) -> bool:
    """Act on a request to stop; True when it newly opts the sender's address out (one
    confirmation per opt-out: a second STOP from an opted-out number gets none)."""
    event, channel = message.event, message.channel
    at = min(event.occurred_at, now)
    # A medium named in words is not to be used at all, the one the request came on too:
    # "stop emailing me" is about every email address (1006.14(h)).
    for medium in sorted(stop.named):
        record(connection, owners, ComplianceEventKind.PROHIBITED_MEDIUM, at, event, medium,
               None, _source(message))  # fmt: skip
    if stop.named & {"sms", "voice"}:
        # Asking to stop calls or texts also revokes consent to every robocall and robotext
        # (47 CFR 64.1200(a)(10), revoke-all): to the number it came from (both of its
        # channels), which holds it on every account using the number; written from a
        # mailbox, to every number (a phone channel's revocation covers the other one), and
        # never to email, which the debtor said nothing about.
        phone = channel in ("sms", "voice")
        record(connection, owners, ComplianceEventKind.CONSENT_REVOKED, at, event,
               None if phone else "voice", message.address if phone else None,
               _source(message))  # fmt: skip
    if channel not in stop.media:
        return False
    reason = event.suppression or (
        SuppressionReason.UNSUBSCRIBE if channel == "email" else SuppressionReason.STOP
    )
    # The message we sent went to another address of the debtor's (an alias, a relay, an
    # old mailbox): the opt-out is about that address too (1006.6(e)). Suppressing it is
    # the safe side even when the sender is not verified.
    attempt = message.attempt
    if (
        attempt is not None
        and attempt.channel == channel
        and ledger_address(channel, str(attempt.to_address))
        != ledger_address(channel, message.address)
    ):
        suppress(connection, event, message.event_id, channel, str(attempt.to_address), reason,
                 now)  # fmt: skip
    return suppress(
        connection, event, message.event_id, channel, message.address, reason, now, owners
    )


def _to_inbox(
    connection: Connection,
    message: Received,
    text: str,
    senders: _Senders,
    now: datetime,
    pause: timedelta,
) -> None:
    event = message.event
    owners = senders.owners
    # The accounts locked before the reply is stored: an agent resuming one, or handling
    # its last reply, either sees this reply or has ended the pause that ``_pause`` sets.
    hold_writes(connection)
    lock_accounts(connection, owners)
    found = classify(text, message.channel)
    inbox_ids = {
        owner: _inbox_row(
            connection, message, owner, found.intent, "inbound", event.body or "", now
        )
        for owner in _or_unknown(owners)
    }
    if senders.unverified is not None and owners:
        # Kept under no account, naming the message it claims to answer, for an agent.
        _inbox_row(connection, message, None, found.intent, "inbound", event.body or "", now)
    if senders.unverified is not None:
        log.info(
            "events: a %s reply names account %s's message from an address it does not have; "
            "it is in the inbox as from an unverified sender",
            message.channel,
            senders.unverified,
        )
    if not owners:
        if senders.unverified is None:
            log.info("events: a %s reply from an unknown sender is in the inbox", message.channel)
        return
    _pause(connection, owners, now, pause)
    _holds(connection, message, found, inbox_ids, now)
    if Intent.WRONG_NUMBER in found.intents:
        mark_contact_points(
            connection, phone_or_email(message.channel), message.address,
            ContactStatus.WRONG_NUMBER, now,
        )  # fmt: skip
    flag = next((intent for intent in FLAGS if intent in found.intents), None)
    if flag is not None:
        _flag(connection, owners, flag, now)


def _inbox_row(
    connection: Connection,
    message: Received,
    account_id: int | None,
    intent: str,
    direction: str,
    body: str,
    now: datetime,
) -> int:
    event = message.event
    inbound = direction == "inbound"
    # Ours is where the debtor wrote to; in a call we placed, the number we called from.
    ours = (event.to_address if event.from_debtor else event.from_address) or ""
    attempt = message.attempt
    # The message it answers, on its own account's row; on a row under no account, the
    # message it names (an unknown or unverified sender); on another account's, none.
    answered = (
        attempt.id if attempt is not None and account_id in (None, attempt.account_id) else None
    )
    values = {
        "account_id": account_id,
        "provider_event_id": message.event_id,
        "attempt_id": answered,
        "direction": direction,
        "channel": message.channel,
        "from_address": (message.address if inbound else ours)[:320],
        "to_address": (ours if inbound else message.address)[:320],
        "subject": (event.subject or "")[:300] or None,
        "body": body,
        "intent": intent,
        "status": InboxStatus.OPEN if inbound else InboxStatus.HANDLED,
        "received_at": now,
        "handled_at": None if inbound else now,
    }
    inserted = connection.execute(inbox_messages.insert().values(**values)).inserted_primary_key
    assert inserted is not None
    return int(inserted[0])


def _or_unknown(owners: Sequence[int]) -> list[int | None]:
    """The accounts, or None once: a message from an unknown sender is kept all the same."""
    return list(owners) if owners else [None]


def _pause(connection: Connection, owners: Sequence[int], now: datetime, pause: timedelta) -> None:
    """The reply pause: for an account not paused, or under a shorter reply pause. A pause
    of another kind (an agent's) is left as it is, reason and end: housekeeping hands over
    to the reply pause when it ends with the reply still open (``reply_holds``)."""
    if pause <= timedelta(0):
        return
    until = now + pause
    paused_until = account_table.c.paused_until
    connection.execute(
        update(account_table)
        .where(
            account_table.c.id.in_(owners),
            or_(
                paused_until.is_(None),
                paused_until <= now,
                and_(account_table.c.pause_reason == REPLY_PAUSE_REASON, paused_until < until),
            ),
        )
        .values(paused_until=until, pause_reason=REPLY_PAUSE_REASON, updated_at=now)
    )


def hand_over_to_reply_pause(
    connection: Connection, account_ids: Sequence[int], now: datetime, pause: timedelta
) -> dict[int, datetime]:
    """Put each of ``account_ids`` whose pause is ending with a reply still open under the
    reply pause (``reply_holds``); returns those accounts with the reply pause's end."""
    held = reply_holds(connection, account_ids, now, pause)
    for account_id, until in held.items():
        connection.execute(
            update(account_table)
            .where(account_table.c.id == account_id)
            .values(paused_until=until, pause_reason=REPLY_PAUSE_REASON, updated_at=now)
        )
    return held


def reply_holds(
    connection: Connection, account_ids: Sequence[int], now: datetime, pause: timedelta
) -> dict[int, datetime]:
    """When the reply pause of each of ``account_ids`` that has an open reply would end
    (from its latest open reply), if that is after ``now``."""
    if pause <= timedelta(0) or not account_ids:
        return {}
    latest = func.max(inbox_messages.c.received_at)
    rows = connection.execute(
        select(inbox_messages.c.account_id, latest)
        .where(
            inbox_messages.c.account_id.in_(account_ids),
            inbox_messages.c.direction == "inbound",
            unindexed(inbox_messages.c.status) == InboxStatus.OPEN,
        )
        .group_by(inbox_messages.c.account_id)
    )
    return {
        account_id: received + pause
        for account_id, received in rows
        if received is not None and received + pause > now
    }


def _holds(
    connection: Connection,
    message: Received,
    found: Classification,
    inbox_ids: dict[int | None, int],
    now: datetime,
) -> None:
    """Attorney, cease and dispute statements, and a request not to be contacted at work,
    become compliance events, which block."""
    at = min(message.event.occurred_at, now)
    for intent in found.intents:
        if intent not in HOLDS:
            continue
        for owner, inbox_id in inbox_ids.items():
            if owner is not None:
                record(connection, [owner], _HOLD_KINDS[intent], at, message.event, None, None,
                       f"{message.channel} reply, inbox message {inbox_id}")  # fmt: skip


def wrong_party(
    connection: Connection, message: Received, now: datetime, pause: timedelta
) -> list[int]:
    """Someone who said, in a call (``message.attempt``) to ``message.address``, that they
    are not the debtor it asked for. The number is a wrong number (texts and calls: either
    would reach them again) for the account called and every other account there whose
    debtor has that name as the call says it: each is flagged for an agent, paused, and
    given an inbox message saying why, as a "wrong number" reply is. Accounts at the number
    for other names keep it: whoever answered may be their debtor. Returns the accounts
    marked."""
    if message.attempt is None:  # no call, no debtor it asked for
        return []
    called = int(message.attempt.account_id)
    channels = phone_or_email(message.channel)
    found = accounts_using(connection, channels, message.address)
    hold_writes(connection)
    lock_accounts(connection, [called, *found])
    names = dict(
        connection.execute(
            select(account_table.c.id, account_table.c.name).where(
                account_table.c.id.in_([called, *found])
            )
        ).all()
    )
    asked = spoken_name(names.get(called) or "")
    owners = sorted(
        {called} | {owner for owner in found if asked and _same_name(names.get(owner) or "", asked)}
    )
    connection.execute(
        update(contact_points)
        .where(
            contact_points.c.account_id.in_(owners),
            contact_points.c.channel.in_(channels),
            same_address(connection, contact_points.c.address, channels, message.address),
            contact_points.c.status == ContactStatus.ACTIVE,
        )
        .values(status=ContactStatus.WRONG_NUMBER, updated_at=now)
    )
    said = f"Pressed 2 in a call to {message.address} asking for {asked}: not {asked}."
    for owner in owners:
        _inbox_row(connection, message, owner, Intent.WRONG_NUMBER, "inbound", said, now)
    _pause(connection, owners, now, pause)
    _flag(connection, owners, Intent.WRONG_NUMBER, now)
    return owners


def _same_name(name: str, asked: str) -> bool:
    """Whether the identity check for ``name`` sounds as the one for ``asked`` did: spaces
    and case are not heard."""
    return spoken_name(name).casefold() == asked.casefold()


def _flag(connection: Connection, owners: Sequence[int], flag: Intent, now: datetime) -> None:
    worse = [str(f) for f in FLAGS[: FLAGS.index(flag)]]
    connection.execute(
        update(account_table)
        .where(
            account_table.c.id.in_(owners),
            or_(account_table.c.flag.is_(None), account_table.c.flag.not_in(worse)),
        )
        .values(flag=str(flag), flagged_at=now, updated_at=now)
    )


def _source(message: Received) -> str:
    return f"{message.channel} reply, provider event {message.event_id}"
