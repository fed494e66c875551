"""An agent's answer to a debtor's reply.

The answer goes back on the channel the debtor wrote on, to the address they wrote from,
and only if that address is one of the account's active contact points: a reply from an
unknown or unverified sender is never answered with the account's details.

It is checked by the compliance engine now (the decision is stored whatever it says): a
block refuses it, with the reasons; a deferral queues it for the first instant the rules
allow (the debtor's contact window opening, say). The agent's words are rendered through
the answer template of the channel (``templates/{sms,email}/answer.agent.j2``), which adds
what every message must carry: the greeting, the debt collector's disclosure, how to opt
out. The words are data, never template source: markup and template syntax in them stay
plain text.

The answer is then an attempt like any other (``automated`` false), which the dispatcher
sends and checks again at the moment of sending, with the same retries and at-most-once
guarantees; an account's pause, which holds back the cadence, does not hold back an
agent's answer. The conversation shows it as an outbound message.

A message from an address several accounts have is stored once per account
(``inbox.copies``); it is one message to answer: an answer to any copy answers it, for the
one answer Reg F allows at a time the debtor designated inconvenient and for the agents
who opened another copy's form before it, and it marks every open copy handled.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from jinja2 import TemplateNotFound
from sqlalchemy import ColumnElement, Connection, Select, or_, select

from outreach.agent_actions import AccountRef, ActionRefused
from outreach.compliance.decision import Decision
from outreach.compliance.engine import evaluate
from outreach.compliance.rules import RuleSet
from outreach.compliance_store import (
    attempts,
    decision_row,
    inbox_messages,
    load_debtors,
    situation,
    store_decisions,
)
from outreach.errors import NotFoundError, TemplateError
from outreach.inbox import copies, copies_elsewhere, handle
from outreach.models import AccountStatus, AttemptStatus, InboxStatus
from outreach.rendering.answer_text import check_answer_shown
from outreach.rendering.context import (
    ANSWER_TEMPLATE,
    ANSWER_TONE,
    Company,
    MessageFacts,
    answer_variables,
    build_context,
    check_first_disclosure,
    written_in,
)
from outreach.rendering.environment import TemplateKey
from outreach.rendering.render import Rendered, Renderer
from outreach.rendering.suit_threat import CODE as SUIT_THREAT
from outreach.rendering.suit_threat import (
    SuitThreatOnTimeBarredDebt,
    said_names,
    threatens_suit,
)
from outreach.store import accounts, ignoring_duplicates
from outreach.unsubscribe import unsubscribe_url
from outreach.users import users
from outreach.written_facts import contacted, local_day, time_barred

ANSWERED_CHANNELS = ("sms", "email")
MAX_ANSWER_CHARS = 2000
# A random key the answer form carries: the same form sent twice queues one answer.
_FORM_KEY = re.compile(r"[A-Za-z0-9_-]{16,64}")
_ACCOUNT_COLUMNS = ("id", "reference", "name", "balance_minor", "currency", "due_date",
                    "status", "locale", "timezone", "jurisdiction", "collector_type",
                    "time_barred_on")  # fmt: skip


@dataclass(frozen=True)
class AnswerKit:
    """What answering needs besides the database: the rules, the company, the published
    templates and the settings that make unsubscribe links."""

    rules: RuleSet
    company: Company
    renderer: Renderer
    version_ids: dict[str, int]
    public_base_url: str
    secret_key: str
    default_region: str
    max_sms_segments: int


@dataclass(frozen=True)
class Answered:
    """What became of an answer: queued (to leave at ``send_at``), already queued by the
    same form, or refused by compliance (``decision`` says why; nothing was queued)."""

    outcome: str  # queued, deferred, duplicate, blocked
    channel: str
    address: str
    decision: Decision | None = None
    send_at: datetime | None = None

    def describe(self) -> str:
        if self.outcome == "duplicate":
            return "That answer was already queued."
        if self.outcome == "blocked":
            assert self.decision is not None
            why = "; ".join(
                f"{r.code}: {r.detail}" for r in self.decision.reasons if r.effect == "block"
            )
            return f"Compliance does not allow an answer by {self.channel} now: {why}"
        if self.outcome == "deferred":
            assert self.send_at is not None
            return (
                f"Answer queued; compliance holds it until {self.send_at:%Y-%m-%d %H:%M} UTC "
                f"({self._held_by()})."
            )
        return f"Answer queued to {self.address} by {self.channel}."

    def _held_by(self) -> str:
        assert self.decision is not None
        return "; ".join(f"{r.code}: {r.detail}" for r in self.decision.reasons
                         if r.effect == "defer")  # fmt: skip


def answer_reply(
    connection: Connection,
    account: AccountRef,
    message_id: int,
    words: str,
    form_key: str,
    user_id: int,
    kit: AnswerKit,
    now: datetime,
    *,
    mark_handled: bool = True,
    seen: int | None = None,
) -> Answered:
    """Queue the agent's ``words`` as an answer to the account's reply ``message_id``.

    Input that cannot be sent as given (empty, too long, an SMS over the segment limit, a
    message that is not the debtor's) raises ``ActionRefused`` and writes nothing. A
    compliance block is not an error: its decision is stored and the answer is not queued.
    ``seen``: the newest answer to this reply when the agent opened the form
    (``SeenAnswers.newest``); an answer to the same reply queued since (another agent's,
    on this account or to the reply's copy on another account) raises
    ``AnsweredMeanwhile``. Answers to other replies of the account do not. With
    ``mark_handled``, the reply and its open copies on other accounts are marked handled
    (``inbox.handle``).

    Call it inside the transaction that is to hold the answer: it locks the reply and its
    copies (FOR UPDATE on PostgreSQL; on SQLite the database's one writer's lock), so that
    answers to one message are checked and written one after the other, each seeing those
    before it.
    The answer is rendered and checked (answer_text.py, which takes a while on a large
    email) before that, from the rows as read then, so that no lock is held meanwhile (on
    SQLite, if the transaction has written nothing yet); once the reply is locked, that
    rendering is used if what it was made from is still the same, and made again if not.
    Refusals come in the same order as if it were made there.
    """
    text = _cleaned(words)
    if not _FORM_KEY.fullmatch(form_key):
        raise ActionRefused("the answer form is out of date: open the account again")
    early = _rendered_early(connection, account, message_id, text, kit, now)
    message, copies = _locked_reply(connection, message_id)
    refused = _not_answerable(message, account, message_id)
    if refused is not None:
        raise refused
    key = _key_prefix(account.id, message_id) + form_key
    if connection.execute(select(attempts.c.id).where(attempts.c.idempotency_key == key)).first():
        return Answered("duplicate", message.channel, message.from_address)
    if seen is not None:
        _not_answered_since(connection, account.id, copies, seen)
    row = connection.execute(_account_row(account.id)).one()
    if row.status == AccountStatus.CLOSED:
        raise ActionRefused("the account is closed: the business no longer contacts this debtor")
    record = load_debtors(
        connection, [row], now, kit.rules.lookback_days, kit.default_region, rules=kit.rules
    )[account.id]
    address, point_id = _debtors_address(record.addresses(message.channel), message)
    # Reg F lets a debtor who writes at a time they designated inconvenient get one answer
    # at that time, through the same medium: the first answer to a message is that one,
    # whichever account's copy of it was answered.
    first = not _answered(connection, copies)
    responding_to = message.received_at if first else None
    asked = situation(
        record, message.channel, address, now, automated=False, responding_to=responding_to
    )
    decision = evaluate(asked, kit.rules)
    stored = decision_row(
        account.id, decision, asked, stage="answer", decided_at=now, step_key=ANSWER_TEMPLATE
    )
    if decision.verdict == "block":
        store_decisions(connection, [stored])
        return Answered("blocked", message.channel, address, decision)
    send_at = decision.not_before if decision.verdict == "defer" else now
    assert send_at is not None
    day = _day(row, record, kit, now, send_at)
    first_contact = not contacted(connection, [account.id])
    rendering = _render(row, message, address, text, kit, day, first_contact, early)
    values = _attempt(row, address, point_id, key, kit, now, send_at, rendering)
    values["responding_to"] = responding_to
    attempt_id = connection.execute(
        ignoring_duplicates(attempts, connection.dialect.name)
        .values(**values)
        .returning(attempts.c.id)
    ).scalar_one_or_none()
    if attempt_id is None:  # the same form, sent twice at the same moment
        return Answered("duplicate", message.channel, address)
    stored["attempt_id"] = attempt_id
    store_decisions(connection, [stored])
    connection.execute(
        inbox_messages.insert().values(
            account_id=account.id,
            attempt_id=attempt_id,
            direction="outbound",
            channel=message.channel,
            from_address=message.to_address,
            to_address=address,
            subject=values["subject"],
            body=text,
            status=InboxStatus.HANDLED,
            received_at=now,
            handled_by=user_id,
            handled_at=now,
        )
    )
    if mark_handled and any(copy.status == InboxStatus.OPEN for copy in copies):
        handle(connection, message_id, now, user_id)
    outcome = "deferred" if decision.verdict == "defer" else "queued"
    return Answered(outcome, message.channel, address, decision, send_at)


class AnsweredMeanwhile(ActionRefused):
    """Someone answered the same reply (or its copy on another account) after the agent
    opened the form."""


@dataclass(frozen=True)
class AnswerElsewhere:
    """An answer to the copy of one of the account's replies on another account."""

    message_id: int  # the account's reply
    attempt_id: int
    reference: str  # the account it was answered from
    by: str | None  # the agent
    at: datetime
    words: str
    delivery: str


@dataclass(frozen=True)
class SeenAnswers:
    """The answers to an account's replies as its page shows them. Each reply's answer form
    carries what it saw of that reply's answers (``form_value``): its newest answer, to
    the reply or to one of its copies on other accounts (``elsewhere``)."""

    account_id: int
    answers: tuple[tuple[int, str], ...]  # (attempt id, idempotency key), the account's
    copies: tuple[Any, ...] = ()  # ``inbox.copies_elsewhere``
    elsewhere: tuple[AnswerElsewhere, ...] = ()

    def newest(self, message_id: int) -> int:
        """The attempt id of the reply's newest answer, 0 for none."""
        prefix = _key_prefix(self.account_id, message_id)
        own = (id_ for id_, key in self.answers if key.startswith(prefix))
        there = (a.attempt_id for a in self.answered_elsewhere(message_id))
        return max((*own, *there), default=0)

    def copies_of(self, message_id: int) -> list[Any]:
        """The reply's copies on other accounts (``reference``, ``status``)."""
        return [copy for copy in self.copies if copy.message_id == message_id]

    def answered_elsewhere(self, message_id: int) -> list[AnswerElsewhere]:
        """The answers to the reply's copies on other accounts, oldest first."""
        return [answer for answer in self.elsewhere if answer.message_id == message_id]

    def form_value(self, message_id: int) -> str:
        """The ``seen`` field of the reply's answer form: the reply, then its newest answer."""
        return f"{message_id}:{self.newest(message_id)}"


def seen_answers(connection: Connection, account_id: int) -> SeenAnswers:
    """What the answer forms of the account's page have seen: the answers to each reply,
    and to its copies on other accounts.

    Answers to one message are written one after the other (``answer_reply`` locks the
    reply and its copies first), so ids grow in the order they were committed: an answer
    missing from the page, still being committed when it was read, is always newer than
    the reply's newest here. They are all read by one statement, which sees them as they
    were at one instant."""
    copies = copies_elsewhere(connection, account_id)
    to_copy = {_key_prefix(c.account_id, c.copy_id): c for c in copies}
    # The agent's words are the answer's own row's (``thread``).
    words = (
        (inbox_messages.c.attempt_id == attempts.c.id)
        & (inbox_messages.c.account_id == attempts.c.account_id)
        & inbox_messages.c.provider_event_id.is_(None)
    )
    found = connection.execute(
        select(
            attempts.c.id, attempts.c.account_id, attempts.c.idempotency_key,
            attempts.c.created_at, attempts.c.status, inbox_messages.c.body, users.c.username,
        )
        .select_from(
            attempts.outerjoin(inbox_messages, words).outerjoin(
                users, users.c.id == inbox_messages.c.handled_by
            )
        )
        .where(
            attempts.c.account_id.in_({account_id, *(c.account_id for c in copies)}),
            attempts.c.step_key == ANSWER_TEMPLATE,
        )
        .order_by(attempts.c.id)
    ).all()  # fmt: skip
    own = tuple((row.id, row.idempotency_key) for row in found if row.account_id == account_id)
    elsewhere = []
    for row in found:
        copy = to_copy.get(row.idempotency_key[: row.idempotency_key.rfind(":") + 1])
        if copy is not None:
            elsewhere.append(
                AnswerElsewhere(
                    copy.message_id, row.id, copy.reference, row.username, row.created_at,
                    row.body or "", row.status,
                )
            )  # fmt: skip
    return SeenAnswers(account_id, own, tuple(copies), tuple(elsewhere))


def seen_in_form(value: str, message_id: int) -> int | None:
    """The ``seen`` an answer form sent for reply ``message_id``: what to check answers
    queued since against (``answer_reply``'s ``seen``).

    ``MESSAGE:ANSWER`` as ``SeenAnswers.form_value`` writes it. A bare number comes from a
    page opened before forms named their reply (the account's newest attempt then): it is
    checked as it was. No value (an older page still): not checked. A damaged value, or
    one seen for another reply, raises ``ActionRefused``."""
    if not value:
        return None
    reply, colon, newest = value.partition(":")
    if not colon:
        reply, newest = str(message_id), value
    if not (_whole(reply) and _whole(newest)) or int(reply) != message_id:
        raise ActionRefused("the answer form is out of date: open the account again")
    return int(newest)


def _whole(text: str) -> bool:
    return text.isascii() and text.isdigit() and len(text) <= 18


def _locked_reply(connection: Connection, message_id: int) -> tuple[Any, list[Any]]:
    """The reply (None if there is none) and its copies on other accounts, the reply
    among them (``account_id``, ``id``, ``status``), all locked until the transaction ends
    (``inbox.copies``): a second answer to the message, on any account, waits here for the
    first to be committed, then reads it."""
    found = copies(connection, message_id, *inbox_messages.c)
    message = next((row for row in found if row.id == message_id), None)
    return message, found


def _account_row(account_id: int) -> Select[Any]:
    return select(*(accounts.c[name] for name in _ACCOUNT_COLUMNS)).where(
        accounts.c.id == account_id
    )


def _rendered_early(
    connection: Connection,
    account: AccountRef,
    message_id: int,
    text: str,
    kit: AnswerKit,
    now: datetime,
) -> _Rendering | None:
    """The answer rendered and checked before the reply is locked, from the rows as they
    are now (nothing locked, nothing written: on SQLite a read takes no lock until the
    transaction's first write). None where ``answer_reply`` is to refuse the answer
    anyway, or to find the account closed; it then renders after the lock if it gets
    that far."""
    message = connection.execute(
        select(inbox_messages).where(inbox_messages.c.id == message_id)
    ).first()
    if message is None or _not_answerable(message, account, message_id) is not None:
        return None
    row = connection.execute(_account_row(account.id)).first()
    if row is None or row.status == AccountStatus.CLOSED:
        return None
    record = load_debtors(
        connection, [row], now, kit.rules.lookback_days, kit.default_region, rules=kit.rules
    )[account.id]
    try:
        address, _ = _debtors_address(record.addresses(message.channel), message)
    except ActionRefused:
        return None
    first = not contacted(connection, [account.id])
    return _render(row, message, address, text, kit, _day(row, record, kit, now, now), first, None)


def _not_answerable(message: Any, account: AccountRef, message_id: int) -> Exception | None:
    """Why ``message`` (None: not found) cannot be answered for ``account``; None if it can."""
    if message is None or message.account_id != account.id:
        return NotFoundError(f"no message {message_id} in the inbox of {account.reference}")
    if message.direction != "inbound":
        return ActionRefused(f"message {message_id} is one of ours, not the debtor's")
    if message.channel not in ANSWERED_CHANNELS:
        return ActionRefused(f"a {message.channel} message cannot be answered in writing here")
    return None


def _day(
    account: Any, record: Any, kit: AnswerKit, now: datetime, leaves: datetime
) -> tuple[date, bool]:
    """The account's day, in its zone or its home's: the date its answer bears; and
    whether the debt is time-barred when the answer ``leaves`` (a deferred answer may leave
    after the day it became so)."""
    day = local_day(account, kit.rules, record.jurisdiction, now)
    return day, time_barred(account, kit.rules, record.jurisdiction, max(now, leaves))


def _answers_to(copies: Sequence[Any]) -> ColumnElement[bool]:
    """The answers to one message: the attempts whose key names one of its copies
    (``account_id``, ``id``), each its account's. LIKE means the same under every
    collation (a range would not under PostgreSQL's language locales)."""
    return (attempts.c.step_key == ANSWER_TEMPLATE) & or_(
        *(
            (attempts.c.account_id == copy.account_id)
            & attempts.c.idempotency_key.startswith(_key_prefix(copy.account_id, copy.id))
            for copy in copies
        )
    )


def _key_prefix(account_id: int, message_id: int) -> str:
    """What the keys of the answers to one reply begin with (the form's key follows)."""
    return f"{account_id}:{ANSWER_TEMPLATE}:{message_id}:"


def _answered(connection: Connection, copies: Sequence[Any]) -> bool:
    """Whether the message (``copies``: the reply and its copies on other accounts) has an
    answer that was sent or may still be (not cancelled, not failed)."""
    return (
        connection.execute(
            select(attempts.c.id)
            .where(
                _answers_to(copies),
                attempts.c.status.not_in((AttemptStatus.CANCELLED, AttemptStatus.FAILED)),
            )
            .limit(1)
        ).first()
        is not None
    )


def _not_answered_since(
    connection: Connection, account_id: int, copies: Sequence[Any], seen: int
) -> None:
    """Two agents reading one message must not both answer it unaware of each other, on
    one account or on two with the sender's address (``copies``)."""
    answered = connection.execute(
        select(attempts.c.created_at, attempts.c.account_id, users.c.username, accounts.c.reference)
        .select_from(
            attempts.outerjoin(
                inbox_messages,
                (inbox_messages.c.attempt_id == attempts.c.id)
                # An answer's row is its attempt's account's: both are read through their
                # accounts' index (none serves attempt_id).
                & (inbox_messages.c.account_id == attempts.c.account_id)
                & inbox_messages.c.provider_event_id.is_(None),
            )
            .outerjoin(users, users.c.id == inbox_messages.c.handled_by)
            .join(accounts, accounts.c.id == attempts.c.account_id)
        )
        .where(_answers_to(copies), attempts.c.id > seen)
        .order_by(attempts.c.id.desc())
        .limit(1)
    ).first()
    if answered is not None:
        who = answered.username or "someone"
        where = "" if answered.account_id == account_id else f" from {answered.reference}"
        raise AnsweredMeanwhile(
            f"{who} answered this reply{where} at {answered.created_at:%Y-%m-%d %H:%M} UTC, "
            "after you opened the page: read their answer below, then send yours if it is "
            "still needed"
        )


def _cleaned(words: str) -> str:
    lines = [line.rstrip() for line in words.replace("\r\n", "\n").replace("\r", "\n").split("\n")]
    text = re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()
    if not text:
        raise ActionRefused("write the answer first")
    if "\x00" in text:  # nothing can send it, and PostgreSQL refuses to store it
        raise ActionRefused("the answer holds a NUL character: remove it")
    if len(text) > MAX_ANSWER_CHARS:
        raise ActionRefused(
            f"an answer is at most {MAX_ANSWER_CHARS} characters; this one has {len(text)}"
        )
    return text


def _debtors_address(points: list[tuple[str, int]], message: Any) -> tuple[str, int]:
    """The account's active contact point the reply came from."""
    wrote_from = message.from_address.strip().lower()
    for address, point_id in points:
        if address.lower() == wrote_from:
            return address, point_id
    raise ActionRefused(
        f"{message.from_address} is not one of the account's active {message.channel} "
        "addresses: an answer goes only to the debtor's own"
    )


@dataclass(frozen=True)
class _Rendering:
    """An answer rendered through its template and checked, or why it cannot be sent (the
    error to raise when ``answer_reply`` comes to it); ``made_from``: what it depends on."""

    made_from: tuple[Any, ...]
    template: TemplateKey | None = None
    rendered: Rendered | None = None
    refused: Exception | None = None


def _render(
    account: Any,
    message: Any,
    address: str,
    text: str,
    kit: AnswerKit,
    day: tuple[date, bool],
    first_contact: bool,
    early: _Rendering | None,
) -> _Rendering:
    """The answer rendered and checked; ``early`` if it was made from the same.
    ``first_contact``: nothing about the debt has reached the debtor from us yet (their
    own message is not ours), so a debt collector's answer carries the whole disclosure.
    ``day``: the debtor's day, and whether the debt is time-barred (``_day``)."""
    channel = message.channel
    link = (
        unsubscribe_url(kit.public_base_url, kit.secret_key, address, account.reference)
        if channel == "email"
        else ""
    )
    subject = ""
    if channel == "email" and message.subject:
        subject = (
            message.subject
            if message.subject.lower().startswith("re:")
            else (f"Re: {message.subject}")
        )
        subject = subject[:300]  # as the template gets it, and as it is checked
        if day[1] and threatens_suit(subject, said_names(account.name, kit.company)) is not None:
            # The debtor's own words ("Are you going to sue me?"), which the agent cannot
            # edit: a time-barred debt's answer takes the template's own subject instead.
            subject = ""
    facts = MessageFacts(
        account.reference, account.name, account.balance_minor, account.currency,
        account.due_date, account.locale, account.collector_type, link,
        answer_variables(text, subject), first_contact=first_contact, time_barred=day[1],
    )  # fmt: skip
    today = day[0]
    made_from = (channel, facts, today)
    if early is not None and early.made_from == made_from:
        return early
    try:
        template, rendered = _rendered(channel, facts, text, kit, today)
    except Exception as exc:  # raised where answer_reply comes to it, as it would have been
        return _Rendering(made_from, refused=exc)
    return _Rendering(made_from, template, rendered)


def _rendered(
    channel: str, facts: MessageFacts, text: str, kit: AnswerKit, today: date
) -> tuple[TemplateKey, Rendered]:
    try:
        template = kit.renderer.resolve(channel, ANSWER_TEMPLATE, ANSWER_TONE, facts.locale)
    except TemplateError as exc:
        raise ActionRefused(
            f"{exc}: a marketer publishes the {channel} answer template in the editor"
        ) from exc
    try:
        context = build_context(facts, kit.company, today, template.language, template.channel)
        rendered = kit.renderer.render_key(template, context)
        check_first_disclosure(channel, context, rendered.text, template.path)
    except SuitThreatOnTimeBarredDebt as exc:
        # Lint keeps the threat out of the template: these are the agent's own words.
        raise ActionRefused(
            f"the debt is time-barred, and the answer threatens legal action ('{exc.phrase}' "
            f"in its {exc.part}), which Reg F 1006.26(b) forbids ({SUIT_THREAT}): write "
            "it without that threat"
        ) from exc
    except (TemplateError, TemplateNotFound) as exc:
        raise ActionRefused(f"the {channel} answer template fails: {exc}") from exc
    missing, unchecked = check_answer_shown(rendered, text)
    if missing:
        raise ActionRefused(
            f"the {channel} answer template does not show the whole answer in its "
            f"{' and '.join(missing)} body: a marketer mends it in the editor"
        )
    if unchecked:
        raise ActionRefused(
            f"the {channel} answer template's html body cannot be checked, {unchecked}: "
            "a marketer mends it in the editor"
        )
    length = rendered.sms
    if length is not None and length.segments > kit.max_sms_segments:
        raise ActionRefused(
            f"with its footer the text would be {length.describe()}; the limit is "
            f"{kit.max_sms_segments} segments: shorten it"
        )
    return template, rendered


def _attempt(
    account: Any,
    address: str,
    point_id: int,
    key: str,
    kit: AnswerKit,
    now: datetime,
    send_at: datetime,
    rendering: _Rendering,
) -> dict[str, Any]:
    if rendering.refused is not None:
        raise rendering.refused
    template, rendered = rendering.template, rendering.rendered
    assert template is not None and rendered is not None
    channel = rendering.made_from[0]
    return {
        "account_id": account.id,
        "contact_point_id": point_id,
        "template_version_id": kit.version_ids.get(template.path),
        "idempotency_key": key,
        "step_key": ANSWER_TEMPLATE,
        "channel": channel,
        "to_address": address,
        "template_name": ANSWER_TEMPLATE,
        "tone": ANSWER_TONE,
        "locale": written_in(template.language),
        "subject": rendered.subject,
        "body": rendered.text,
        "body_html": rendered.html,
        "voicemail": None,
        "status": AttemptStatus.QUEUED,
        "automated": False,
        "tries": 0,
        "next_try_at": send_at,
        "created_at": now,
        "updated_at": now,
    }
