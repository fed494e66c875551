"""Apply normalized provider events, each exactly once: status, opt-outs, replies.

Webhooks (and the outbox's simulated deliveries) arrive as ``ProviderEvent`` values after
verification and parsing. A batch of them is applied in one transaction:

1. each is stored once: its dedupe key is unique, and so is the provider's token for a
   retried request (Twilio's ``I-Twilio-Idempotency-Token``); a second copy counts as a
   duplicate and changes nothing. An event for a message we do not know is stored too;
2. its attempt is found by our id (callback URL or custom argument) or the provider's
   message id, and moves only forward (``attempt_status``): the same events in any order
   end in the same status and outcome; call outcomes feed the compliance history;
3. what it says about the address is acted on at once (``opt_outs``), and what the debtor
   wrote reaches the inbox (``replies``).

Each event's result says whether it was stored and what to answer the provider with: a
text back for a keyword (``answer``), or what a call says once answered (``call``).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from functools import cache
from typing import Any

from sqlalchemy import (
    Connection,
    Engine,
    Insert,
    Select,
    Update,
    bindparam,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite

from outreach.attempt_status import RANK, Progress, advance, progress_of
from outreach.channels import SmsReplies, load_email, load_sms
from outreach.compliance_store import attempts
from outreach.config import Settings
from outreach.models import ContactStatus
from outreach.models import ProviderEvent as ProviderEventRow
from outreach.opt_outs import (
    accounts_using,
    act_on_address,
    channel_of,
    debtor_address,
    hold_addresses,
    known_spelling,
    phone_or_email,
)
from outreach.providers.base import IDENTITY_CHECK, EventType, ProviderEvent
from outreach.providers.twilio_voice import unknown_call_identity
from outreach.replies import Received, receive, wrong_party
from outreach.store import accounts, lock_accounts, table_of

log = logging.getLogger("outreach.events")
provider_events = table_of(ProviderEventRow)

# Events that say nothing about the address, only about the message (no lookup needed).
_STATUS_ONLY = frozenset(
    {EventType.QUEUED, EventType.SENT, EventType.DELIVERED, EventType.DEFERRED,
     EventType.OPENED, EventType.CLICKED, EventType.ANSWERED_HUMAN, EventType.ANSWERED_MACHINE,
     EventType.COMPLETED, EventType.NO_ANSWER, EventType.BUSY}
)  # fmt: skip
# Providers that answer the standard keywords (STOP, START, HELP) themselves.
KEYWORD_ANSWERING_PROVIDERS = frozenset({"twilio_sms"})
_ATTEMPT_COLUMNS = (
    attempts.c.id, attempts.c.account_id, attempts.c.channel, attempts.c.status,
    attempts.c.outcome, attempts.c.error_code, attempts.c.provider_message_id,
    attempts.c.to_address, attempts.c.body, attempts.c.voicemail,
    # An email reply's subject is read unless it is this cadence email's (``replies``).
    attempts.c.subject, attempts.c.automated,
    # Whom a call asks for before it says more (``CallScript``): read, not locked.
    select(accounts.c.name).where(accounts.c.id == attempts.c.account_id)
    .scalar_subquery().label("debtor_name"),
)  # fmt: skip


@dataclass(frozen=True)
class EventPolicy:
    """What applying events needs from the configuration."""

    reply_pause: timedelta = timedelta(days=14)
    replies: SmsReplies = field(default_factory=SmsReplies)
    # Providers whose own keyword answers (STOP, START, HELP) reach the debtor: outreach
    # does not answer those a second time.
    keyword_answering_providers: frozenset[str] = KEYWORD_ANSWERING_PROVIDERS
    # The List-Unsubscribe mailto addresses: mail to them is a request to stop email.
    unsubscribe_mailboxes: frozenset[str] = frozenset()

    @classmethod
    def from_settings(cls, settings: Settings) -> EventPolicy:
        replies = load_sms(settings.channels_dir).replies
        mailto = load_email(settings.channels_dir).unsubscribe_mailto
        return cls(
            unsubscribe_mailboxes=frozenset({mailto} if mailto else ()),
            reply_pause=timedelta(days=settings.reply_pause_days),
            replies=replies,
            keyword_answering_providers=(
                KEYWORD_ANSWERING_PROVIDERS if replies.provider_answers_keywords else frozenset()
            ),
        )


@dataclass(frozen=True)
class Incoming:
    """An event as a webhook request brought it, with the provider's token for the request
    when it sends one (the same token on every retry of that request)."""

    event: ProviderEvent
    request_token: str | None = None


@dataclass(frozen=True)
class CallScript:
    """What a call attempt says: all of it to the debtor once they say who they are (asked
    for by ``name``), the voicemail to a machine or anyone else."""

    human: str
    voicemail: str
    name: str = ""  # the debtor's, as the account has it now


@dataclass(frozen=True)
class EventResult:
    stored: bool  # False: a duplicate, stored before
    answer: str | None = None  # a text to send back in the provider's reply (TwiML)
    call: CallScript | None = None  # the event's call attempt, for the TwiML fetch


@dataclass
class Applied:
    results: list[EventResult]

    @property
    def stored(self) -> int:
        return sum(result.stored for result in self.results)

    @property
    def duplicates(self) -> int:
        return len(self.results) - self.stored


def apply_events(
    engine: Engine,
    events: Sequence[ProviderEvent],
    now: datetime,
    policy: EventPolicy | None = None,
) -> Applied:
    """Store and apply each event once, all in one transaction."""
    with engine.begin() as connection:
        results = apply_batch(connection, [Incoming(e) for e in events], now, policy)
    return Applied(results)


def apply_batch(
    connection: Connection,
    items: Sequence[Incoming],
    now: datetime,
    policy: EventPolicy | None = None,
) -> list[EventResult]:
    """Apply ``items`` inside the caller's transaction; one result per item, in order."""
    policy = policy or EventPolicy()
    items = [_stored_item(item) for item in items]
    found = find_attempts(connection, [item.event for item in items])
    items = [_as_answered(item, attempt) for item, attempt in zip(items, found, strict=True)]
    events = [item.event for item in items]
    _hold_addresses(connection, events, found)
    writers = _lock_writers(connection, events, found)
    stored = _store(connection, items, found, now)
    _advance_attempts(connection, [(events[i], found[i]) for i in stored], now)
    answers: dict[int, str | None] = {}
    # In the order things happened: an opt-out and an opt-in in one batch end as they should.
    for index in sorted(stored, key=lambda i: (events[i].occurred_at, i)):
        answers[index] = _act(
            connection, events[index], found[index], stored[index], now, policy, writers.get(index)
        )
    _keep_answers(connection, {stored[i]: text for i, text in answers.items() if text})
    answers |= _earlier_answers(connection, items, stored, answers)
    return [
        EventResult(index in stored, answers.get(index), _script(found[index]))
        for index in range(len(items))
    ]


def _as_answered(item: Incoming, attempt: Any | None) -> Incoming:
    """An identity check's answer in a call with no script to play is answered with a
    hang-up (the webhook's ``answer_identity``): recorded as that, not as what a known
    call would have played."""
    if item.event.kind != IDENTITY_CHECK or _script(attempt) is not None:
        return item
    return replace(item, event=unknown_call_identity(item.event))


def _hold_addresses(
    connection: Connection, events: Sequence[ProviderEvent], found: Sequence[Any | None]
) -> None:
    """Lock every address the batch may suppress or lift (``opt_outs.hold_addresses``), all
    at once and before the accounts: a batch taking them one by one, as it acts, could wait
    in a circle with another batch, or with one holding an account it records on.
    PostgreSQL only: SQLite has one writer at a time."""
    if connection.dialect.name != "postgresql":
        return
    wanted: list[tuple[str, str]] = []
    for event, attempt in zip(events, found, strict=True):
        if event.event_type in _STATUS_ONLY:
            continue
        channel = channel_of(event, attempt)
        if address := debtor_address(event, attempt):
            wanted.append((channel, address))
        if attempt is not None and attempt.channel == channel:  # the address we wrote to
            wanted.append((channel, str(attempt.to_address)))
    if wanted:
        hold_addresses(connection, wanted)


def _lock_writers(
    connection: Connection, events: Sequence[ProviderEvent], found: Sequence[Any | None]
) -> dict[int, _Writer]:
    """Lock, in the order of their ids, the accounts of everyone who wrote in the batch:
    each reply pauses or flags its accounts, and a batch locking them reply by reply, in
    the order things happened, could wait in a circle with another batch, or with a planner
    (every writer of several accounts locks them in id order: ``store.lock_accounts``).
    PostgreSQL only: SQLite has one writer at a time. Each writer found, by index, so
    that a reply acts on the accounts locked for it without looking them up again."""
    if connection.dialect.name != "postgresql":
        return {}
    writers: dict[int, _Writer] = {}
    ids: set[int] = set()
    for index, (event, attempt) in enumerate(zip(events, found, strict=True)):
        address = debtor_address(event, attempt)
        if event.body is None and event.contact_status and address:
            # A number that cannot receive is marked on every account using it: their
            # accounts first, as every writer of accounts and their contact points locks them.
            channel = channel_of(event, attempt)
            ids.update(accounts_using(connection, phone_or_email(channel), address))
            if attempt is not None:  # a wrong party flags the account called
                ids.add(int(attempt.account_id))
            continue
        if event.body is None or not address:
            continue
        channel = channel_of(event, attempt)
        if event.event_type not in _STATUS_ONLY:  # as ``_act`` spells it
            address = known_spelling(connection, channel, address)
        users = accounts_using(connection, phone_or_email(channel), address)
        writers[index] = _Writer(address, users)
        ids.update(users)
        if attempt is not None:
            ids.add(int(attempt.account_id))
    lock_accounts(connection, ids)
    return writers


@dataclass(frozen=True)
class _Writer:
    """Someone who wrote: their address as the contact points spell it, and the accounts
    using it."""

    address: str
    users: list[int]


def _keep_answers(connection: Connection, answers: Mapping[int, str]) -> None:
    """Store what each event was answered with, by its row id."""
    if answers:
        connection.execute(
            update(provider_events)
            .where(provider_events.c.id == bindparam("event_id"))
            .values(answer=bindparam("text")),
            [{"event_id": event_id, "text": text} for event_id, text in answers.items()],
        )


def _earlier_answers(
    connection: Connection,
    items: Sequence[Incoming],
    stored: Mapping[int, int],
    answers: Mapping[int, str | None],
) -> dict[int, str]:
    """What each duplicate's first copy was answered with, by index in ``items``.

    A provider retries a request when it did not get the answer (Twilio, for one, after a
    timeout), so the text it never received must go out with the retry: an opt-out's one
    confirmation would be lost otherwise. A first copy in this same batch answers for its
    duplicates; one stored before answers from its row.
    """
    # Only what the debtor wrote is ever answered: a repeated delivery receipt looks
    # nothing up.
    repeated = [i for i in range(len(items)) if i not in stored and items[i].event.body is not None]
    if not repeated:
        return {}
    by_key: dict[str, str] = {}
    by_token: dict[tuple[str, str], str] = {}
    for index, text in answers.items():
        if text:
            by_key[items[index].event.dedupe_key] = text
            if (token := _token(items[index])) is not None:
                by_token[token] = text
    keys = {items[i].event.dedupe_key for i in repeated} - by_key.keys()
    tokens = {token for i in repeated if (token := _token(items[i])) is not None} - by_token.keys()
    table = provider_events.c
    found_rows: list[Any] = []
    if keys:  # each by its unique key
        found_rows += connection.execute(_ANSWERS.where(table.dedupe_key.in_(keys))).all()
    for provider in {provider for provider, _ in tokens}:  # by the unique (provider, token)
        wanted = [token for named, token in tokens if named == provider]
        found_rows += connection.execute(
            _ANSWERS.where(table.provider == provider, table.request_token.in_(wanted))
        ).all()
    for row in found_rows:
        if row.answer is not None:
            by_key.setdefault(row.dedupe_key, row.answer)
            if row.request_token:
                by_token.setdefault((row.provider, row.request_token), row.answer)
    found: dict[int, str] = {}
    for index in repeated:
        token = _token(items[index])
        text = by_key.get(items[index].event.dedupe_key) or (by_token.get(token) if token else None)
        if text:
            found[index] = text
    return found


def _token(item: Incoming) -> tuple[str, str] | None:
    """The provider's token for the request that carried ``item``, if it sent one, as
    stored."""
    token = item.request_token
    return (item.event.provider, token[:_TOKEN_LENGTH]) if token else None


_TOKEN_LENGTH = 128  # the column's
_ANSWERS = select(
    provider_events.c.dedupe_key,
    provider_events.c.provider,
    provider_events.c.request_token,
    provider_events.c.answer,
)


def find_attempts(connection: Connection, events: Sequence[ProviderEvent]) -> list[Any | None]:
    """Each event's attempt: by our id, else by the provider's message id; None if unknown,
    or if it is on another channel than the event says it is about (an email naming a
    text message by the ``+N`` of its address is not about that text).

    On PostgreSQL the rows are locked in id order until the transaction ends, so that two
    writers never interleave their updates of one attempt.
    """
    ids = {e.attempt_id for e in events if e.attempt_id is not None}
    message_ids = {e.provider_message_id for e in events if e.provider_message_id}
    if not ids and not message_ids:
        return [None] * len(events)
    query = _attempts_query(connection.dialect.name == "postgresql")
    rows = connection.execute(query, {"ids": list(ids), "message_ids": list(message_ids)}).all()
    by_id = {row.id: row for row in rows}
    by_message = {row.provider_message_id: row for row in rows if row.provider_message_id}
    found = [
        by_id.get(e.attempt_id) if e.attempt_id in by_id else by_message.get(e.provider_message_id)
        for e in events
    ]
    return [
        row if row is None or e.channel in (None, row.channel) else None
        for e, row in zip(events, found, strict=True)
    ]


def _store(
    connection: Connection, items: Sequence[Incoming], found: Sequence[Any | None], now: datetime
) -> dict[int, int]:
    """Insert each new event; index in ``items`` -> provider_event id, for those stored."""
    seen_keys: set[str] = set()
    seen_tokens: set[tuple[str, str]] = set()
    rows: dict[str, tuple[int, dict[str, Any]]] = {}
    for index, item in enumerate(items):
        event, attempt = item.event, found[index]
        token = _token(item)
        if event.dedupe_key in seen_keys or (token is not None and token in seen_tokens):
            continue
        seen_keys.add(event.dedupe_key)
        if token is not None:
            seen_tokens.add(token)
        rows[event.dedupe_key] = (index, _row(item, attempt, now))
    if not rows:
        return {}
    statement = _insert_events(connection.dialect.name)
    inserted = connection.execute(statement, [row for _, row in rows.values()]).all()
    return {rows[key][0]: event_id for event_id, key in inserted}


def _row(item: Incoming, attempt: Any | None, now: datetime) -> dict[str, Any]:
    event = item.event
    return {
        "provider": event.provider,
        "kind": event.kind[:32],
        "event_type": event.event_type.value,
        "raw_status": (event.raw_status or "")[:64] or None,
        "provider_message_id": (event.provider_message_id or "")[:100] or None,
        "attempt_id": attempt.id if attempt is not None else None,
        "account_id": attempt.account_id if attempt is not None else None,
        "dedupe_key": event.dedupe_key,
        "request_token": (item.request_token or "")[:_TOKEN_LENGTH] or None,
        "occurred_at": event.occurred_at,
        "received_at": now,
        "payload": _storable(event.payload),
    }


# The longest address a contact point, suppression or message row holds. A longer one is
# no one's: cut short it could name someone else, so the event keeps no address at all.
MAX_ADDRESS = 320
_TEXT_FIELDS = ("kind", "dedupe_key", "provider_message_id", "from_address", "to_address",
                "subject", "body", "raw_status", "error_code", "outcome", "suppression",
                "contact_status")  # fmt: skip


def _stored_item(item: Incoming) -> Incoming:
    """The event with its text as the database can store it (``stored_text``): a message
    that cannot be stored would be refused on every retry, its opt-out lost."""
    event = item.event
    dirty: dict[str, Any] = {
        name: stored_text(value)
        for name in _TEXT_FIELDS
        if isinstance(value := getattr(event, name), str) and _unstorable(value)
    }
    dirty |= {
        name: None
        for name in ("from_address", "to_address")
        if len(getattr(event, name) or "") > MAX_ADDRESS
    }
    token = item.request_token
    if not dirty and (token is None or not _unstorable(token)):
        return item
    return Incoming(replace(event, **dirty), token and stored_text(token))


def _storable(value: Any) -> Any:
    """The payload as JSON can hold it everywhere: its keys and texts as ``stored_text``
    makes them (PostgreSQL's JSONB refuses NUL and half of a surrogate pair)."""
    if isinstance(value, str):
        return stored_text(value)
    if isinstance(value, Mapping):
        return {stored_text(str(key)): _storable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_storable(item) for item in value]
    return value


# Half of a surrogate pair: JSON may spell one ("\ud83d", an emoji cut in a subject), and
# json.loads reads it as it is, as UTF-7 does ("+2D0-"); no UTF-8 can encode it.
_SURROGATE = re.compile("[\ud800-\udfff]")


def _unstorable(text: str) -> bool:
    return "\x00" in text or (not text.isascii() and _SURROGATE.search(text) is not None)


def stored_text(text: str) -> str:
    """``text`` without NUL characters, which PostgreSQL's text and JSONB refuse, and with
    each half of a surrogate pair replaced by U+FFFD, which psycopg cannot send (and JSONB
    refuses, as ``\\ud83d``): as a decoder replaces what is not UTF-8."""
    if "\x00" in text:
        text = text.replace("\x00", "")
    if text.isascii():
        return text
    return _SURROGATE.sub("\ufffd", text)


def _advance_attempts(
    connection: Connection, pairs: Sequence[tuple[ProviderEvent, Any | None]], now: datetime
) -> None:
    """Move each attempt to the greatest of its status and its new events' (one UPDATE)."""
    progress: dict[int, Progress] = {}
    rows: dict[int, Any] = {}
    message_ids: dict[int, str] = {}
    for event, attempt in pairs:
        if attempt is None:
            continue
        rows[attempt.id] = attempt
        current = progress.get(
            attempt.id, Progress(attempt.status, attempt.outcome, attempt.error_code)
        )
        progress[attempt.id] = advance(
            current, progress_of(event.event_type, event.outcome, event.error_code)
        )
        if attempt.provider_message_id is None and event.provider_message_id:
            message_ids.setdefault(attempt.id, event.provider_message_id[:100])
    changes = []
    for attempt_id, new in progress.items():
        row = rows[attempt_id]
        if new == Progress(row.status, row.outcome, row.error_code) and (
            attempt_id not in message_ids
        ):
            continue
        changes.append(
            {
                "attempt_id": attempt_id,
                "new_status": new.status,
                "new_outcome": new.outcome,
                "new_error_code": new.error_code,
                "new_message_id": message_ids.get(attempt_id, row.provider_message_id),
            }
        )
    by_status: dict[str, list[dict[str, Any]]] = {}
    for change in changes:
        by_status.setdefault(change["new_status"], []).append({**change, "now": now})
    for status, group in by_status.items():
        connection.execute(_update_attempts(status), group)


# Statements built once: a batch runs the same few, and building them costs more than
# running them for small batches.
@cache
def _attempts_query(lock: bool) -> Select[Any]:
    query = (
        select(*_ATTEMPT_COLUMNS)
        .where(
            or_(
                attempts.c.id.in_(bindparam("ids", expanding=True)),
                attempts.c.provider_message_id.in_(bindparam("message_ids", expanding=True)),
            )
        )
        .order_by(attempts.c.id)
    )
    return query.with_for_update() if lock else query


@cache
def _insert_events(dialect: str) -> Insert:
    """INSERT ... ON CONFLICT DO NOTHING RETURNING: the rows that were new."""
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    return (
        insert(provider_events)
        .on_conflict_do_nothing()
        .returning(provider_events.c.id, provider_events.c.dedupe_key)
    )


@cache
def _update_attempts(status: str) -> Update:
    """Move an attempt to ``status`` unless it is beyond it already, even over a row read
    before another writer moved it (SQLite cannot lock the rows it read)."""
    not_above = [name for name, rank in RANK.items() if rank <= RANK[status]]
    return (
        update(attempts)
        .where(
            attempts.c.id == bindparam("attempt_id"),
            # Not IN: executemany takes no expanding list.
            or_(*(attempts.c.status == name for name in not_above)),
        )
        .values(
            status=bindparam("new_status"),
            outcome=bindparam("new_outcome"),
            error_code=bindparam("new_error_code"),
            provider_message_id=bindparam("new_message_id"),
            updated_at=bindparam("now"),
        )
    )


def _act(
    connection: Connection,
    event: ProviderEvent,
    attempt: Any | None,
    event_id: int,
    now: datetime,
    policy: EventPolicy,
    writer: _Writer | None = None,
) -> str | None:
    channel = channel_of(event, attempt)
    address = debtor_address(event, attempt)
    if writer is not None:
        address = writer.address
    elif address and event.event_type not in _STATUS_ONLY:
        address = known_spelling(connection, channel, address)
    if event.body is not None and address:
        # Something the debtor wrote: a keyword, a request to stop, a reply for an agent.
        users = writer.users if writer is not None else None
        return receive(
            connection,
            Received(event, attempt, event_id, channel, address, users),
            now,
            policy.reply_pause,
            policy.replies,
            answered_by_provider=event.provider in policy.keyword_answering_providers,
            unsubscribe_mailboxes=policy.unsubscribe_mailboxes,
        )
    if event.kind == IDENTITY_CHECK and event.contact_status == ContactStatus.WRONG_NUMBER:
        # "Not me" at a call's identity check: about the debtor asked for (``wrong_party``).
        if attempt is not None and address:
            called = Received(event, attempt, event_id, channel, address)
            wrong_party(connection, called, now, policy.reply_pause)
        return None
    if address:
        act_on_address(connection, event, event_id, channel, address, now)
    elif event.suppression:
        log.warning(
            "events: a %s %s event calls for a suppression but names no address",
            event.provider,
            event.kind,
        )
    return None


def _script(attempt: Any | None) -> CallScript | None:
    if attempt is None or attempt.channel != "voice":
        return None
    return CallScript(
        human=attempt.body, voicemail=attempt.voicemail or "", name=attempt.debtor_name or ""
    )
