"""What an agent records for an account: handled replies, pauses, promises to pay,
disputes and what the debtor said about contact at work.

Each writes what the rest of outreach already reads, nothing of its own:
- a handled reply leaves the inbox (``outreach.inbox.handle``), which ends the reply pause
  with the account's last open reply;
- a pause sets ``paused_until``: the planner claims no paused account, and housekeeping
  makes it due again when the pause ends (or hands it over to the reply pause, when a
  reply that came during it is still open); resuming ends it the same way, early; a pause
  is changed or ended only from a page that showed it (``ChangedMeanwhile`` otherwise);
- a promise to pay is a pending ``promise_to_pay``: the planner sends no collection step
  while one is pending, and housekeeping marks it broken, and the account due, once its
  date has passed unpaid; the form's key records it once, however often the form is sent;
- a dispute is a compliance event: the compliance engine blocks collection contact until a
  ``dispute_resolved`` event follows;
- contact at work is a compliance event too: the debtor finds it inconvenient, or their
  employer prohibits it (no contact at a work number or mailbox), or either is over;
  as with a promise, the form's key records each of these once, however often it is sent;
- a flag cleared is the flag the agent's page showed, and no other (``inbox.clear_flag``).

Input an agent typed is checked here, so that a refused action writes nothing and says why.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, select, update

from outreach import promise_days
from outreach.compliance.facts import LIFTED_BY
from outreach.compliance_store import Lift, held_elsewhere, inbox_messages
from outreach.errors import NotFoundError, OutreachError
from outreach.importing.fields import FieldError
from outreach.importing.fields import parse_amount as parse_imported_amount
from outreach.inbox import clear_flag as clear_account_flag
from outreach.inbox import copies, handle
from outreach.models import ComplianceEventKind, InboxStatus, PromiseStatus
from outreach.rendering.context import format_money
from outreach.replies import REPLY_PAUSE_REASON, hand_over_to_reply_pause
from outreach.store import (
    accounts,
    compliance_events,
    hold_writes,
    ignoring_duplicates,
    lock_accounts,
    promises_to_pay,
)

MAX_PAUSE_DAYS = 90
# The columns' lengths: a longer text is refused, not cut.
PAUSE_REASON_CHARS = 200
NOTE_CHARS = 500
MAX_PROMISE_DAYS = 90
# A random key the promise, dispute and contact-at-work forms carry, as the answer form
# does: the same form sent twice records once.
_FORM_KEY = re.compile(r"[A-Za-z0-9_-]{16,64}")


class ActionRefused(OutreachError):
    """The agent's input cannot be recorded as given (the message says why)."""


class ChangedMeanwhile(ActionRefused):
    """What the agent's page showed has changed since it was opened: the action, taken on
    what the agent saw, is refused rather than applied to what they did not see."""


@dataclass(frozen=True)
class ShownPause:
    """A pause as an agent's page showed it: until when (None: outreach was running), why."""

    until: datetime | None
    reason: str | None = None

    def at(self, now: datetime) -> ShownPause:
        """The pause as it stands at ``now``: one that has run out is no pause."""
        return self if self.until is not None and self.until > now else ShownPause(None)


@dataclass(frozen=True)
class AccountRef:
    id: int
    reference: str
    balance_minor: int
    currency: str
    locale: str
    timezone: str | None


def refuse_nul(text: str, what: str) -> None:
    """Refuse a text holding a NUL character: PostgreSQL cannot store one (nor compare a
    text with one), and no page or message shows one."""
    if "\x00" in text:
        raise ActionRefused(f"the {what} holds a NUL character: remove it")


def refuse_long_note(text: str) -> None:
    """Refuse a note longer than the record keeps, rather than keep part of it."""
    if len(text) > NOTE_CHARS:
        raise ActionRefused(
            f"the note is {len(text)} characters: at most {NOTE_CHARS} are kept: shorten it"
        )


def account_by_reference(connection: Connection, reference: str) -> AccountRef:
    if "\x00" in reference:  # no reference holds one (PostgreSQL cannot compare it)
        raise NotFoundError(f"no account {reference!r}")
    row = connection.execute(
        select(accounts.c.id, accounts.c.reference, accounts.c.balance_minor,
               accounts.c.currency, accounts.c.locale, accounts.c.timezone)
        .where(accounts.c.reference == reference)
    ).first()  # fmt: skip
    if row is None:
        raise NotFoundError(f"no account {reference!r}")
    return account_ref(row)


def account_ref(row: Any) -> AccountRef:
    """What the actions need of an account row."""
    return AccountRef(
        row.id, row.reference, row.balance_minor, row.currency, row.locale, row.timezone
    )


def handle_reply(
    connection: Connection, account: AccountRef, message_id: int, user_id: int, now: datetime
) -> None:
    """Mark one of the account's open replies handled, by ``user_id``. A message of another
    account is refused as unknown here: a form names the account it was shown under."""
    _open_reply(connection, message_id, account)
    handle(connection, message_id, now, user_id)


def handle_unmatched_reply(
    connection: Connection, message_id: int, user_id: int, now: datetime
) -> None:
    """Mark handled a reply kept under no account (an unknown or unverified sender): it
    has no account page, and would otherwise wait in the inbox for ever. Nothing happens
    to the account an unverified reply names."""
    message = _open_reply(connection, message_id, None)
    if message.account_id is not None:
        raise ActionRefused(f"message {message_id} is an account's: handle it on its page")
    handle(connection, message_id, now, user_id)


def _open_reply(connection: Connection, message_id: int, account: AccountRef | None) -> Any:
    """The inbox message, refused unless it is an open reply (of ``account``, if given)."""
    # Two agents on one reply at once, or on two accounts' copies of it: the second waits
    # here and then sees it handled (on PostgreSQL for the rows' locks, the copies' taken
    # with the reply's, in one order; on SQLite, which ignores FOR UPDATE, for the writer's).
    found = copies(
        connection, message_id, inbox_messages.c.id, inbox_messages.c.account_id,
        inbox_messages.c.direction, inbox_messages.c.status,
    )  # fmt: skip
    message = next((row for row in found if row.id == message_id), None)
    if message is None:
        raise NotFoundError(f"no message {message_id} in the inbox")
    if account is not None and message.account_id != account.id:
        raise NotFoundError(f"no message {message_id} in the inbox of {account.reference}")
    if message.direction != "inbound":
        raise ActionRefused(f"message {message_id} is one of ours, not a reply")
    if message.status != InboxStatus.OPEN:
        # Two agents on one reply: the first one's name stays on it. It may have been
        # handled as a copy on another account the sender's address is on: those are named.
        others = sorted({row.account_id for row in found if row.account_id is not None}
                        - {message.account_id})  # fmt: skip
        where = ""
        if others:
            names = connection.execute(
                select(accounts.c.reference).where(accounts.c.id.in_(others))
                .order_by(accounts.c.reference)
            ).scalars()  # fmt: skip
            where = f" (it is also on account {', '.join(names)}, from the same sender)"
        raise ActionRefused(f"message {message_id} was already handled{where}")
    return message


def pause(
    connection: Connection,
    account: AccountRef,
    days: int,
    reason: str,
    now: datetime,
    *,
    by: str | None = None,
    shown: ShownPause | None = None,
) -> datetime:
    """No outreach for ``days``; returns when it resumes on its own (housekeeping).

    ``by``: who pauses, kept with the reason (the account has no other column for it).
    ``shown``: the pause the agent's page showed; if another is on now, ``ChangedMeanwhile``
    (None: no page, as for the tests' and tools' own pauses)."""
    if not 1 <= days <= MAX_PAUSE_DAYS:
        raise ActionRefused(f"a pause lasts 1 to {MAX_PAUSE_DAYS} days, not {days}")
    why = " ".join(reason.split())
    if not why:
        raise ActionRefused("say why outreach pauses (the reason is kept with the account)")
    refuse_nul(why, "reason")
    room = reason_chars(by)
    if len(why) > room:
        raise ActionRefused(
            f"the reason is {len(why)} characters: at most {room} are kept with the account "
            "(with the agent's name): shorten it"
        )
    if by is not None:
        why = f"{why} ({by})"
    if shown is not None:
        _refuse_unseen_pause(connection, account, shown, now, "Not paused")
    until = now + timedelta(days=days)
    # Another reason than the reply pause's: handling the replies leaves this pause on.
    connection.execute(
        update(accounts)
        .where(accounts.c.id == account.id)
        .values(paused_until=until, pause_reason=why[:PAUSE_REASON_CHARS], updated_at=now)
    )
    return until


def reason_chars(by: str | None) -> int:
    """How long a pause's reason may be, with `` (by)`` added to it."""
    return PAUSE_REASON_CHARS - (len(by) + 3 if by is not None else 0)


def resume(
    connection: Connection,
    account: AccountRef,
    now: datetime,
    *,
    reply_pause: timedelta,
    shown: ShownPause,
) -> datetime | None:
    """End the account's pause: the account is due at once, and compliance decides what
    follows. An agent's pause ends as it would have on its own: a reply still open that
    came within ``reply_pause`` keeps the account paused, under the reply pause, whose end
    is returned (None: outreach runs). A reply pause ends whatever waits: the agent
    resuming it has chosen to, on the page that shows the replies.

    ``shown``: the pause the agent's page showed. Another pause on now (another agent's,
    or the reply pause the agent's first click handed over to) is not ended:
    ``ChangedMeanwhile``."""
    # The account locked before the replies are read: a reply arriving meanwhile waits, and
    # then finds the pause ended and pauses it again (``replies``), or is read here.
    stored = _refuse_unseen_pause(connection, account, shown, now, "Not resumed")
    # The stored pause, even one that has run out (housekeeping not yet run): it hands over
    # to the reply pause as housekeeping would have.
    if stored.until is not None and stored.reason != REPLY_PAUSE_REASON:
        held = hand_over_to_reply_pause(connection, [account.id], now, reply_pause)
        if account.id in held:
            return held[account.id]
    connection.execute(
        update(accounts)
        .where(accounts.c.id == account.id)
        .values(paused_until=None, pause_reason=None, next_contact_at=now, updated_at=now)
    )
    return None


def _refuse_unseen_pause(
    connection: Connection, account: AccountRef, shown: ShownPause, now: datetime, refused: str
) -> ShownPause:
    """The account's pause as stored (one that has run out included), locked, and refused
    (``ChangedMeanwhile``, its message starting with ``refused``) unless it is the one the
    page showed. Pauses that have run out are alike to the page: outreach runs under
    either (housekeeping has not yet cleared one, or has)."""
    hold_writes(connection)
    lock_accounts(connection, [account.id])
    row = connection.execute(
        select(accounts.c.paused_until, accounts.c.pause_reason).where(accounts.c.id == account.id)
    ).one()
    stored = ShownPause(row.paused_until, row.pause_reason)
    current = stored.at(now)
    if current != shown.at(now):
        now_on = (
            f"outreach is paused until {current.until:%Y-%m-%d %H:%M} UTC: {current.reason}"
            if current.until is not None
            else "the pause has ended and outreach runs"
        )
        raise ChangedMeanwhile(
            f"{refused}: the pause changed since this page was opened. Now {now_on}, which "
            "this page did not show: see why, then act from the page as it is now."
        )
    return stored


def parse_amount(text: str, currency: str) -> int:
    """``"25.50"`` or ``"1,025.50"`` in ``currency``'s minor units, as the importer reads
    amounts: no sign, symbol or exponent, no more decimals than the currency has. A comma
    is only a thousands separator (``40,50`` is refused rather than read as 4050)."""
    if text.strip().startswith("-"):
        raise ActionRefused("a promised amount is more than zero")
    try:
        minor = parse_imported_amount("amount", text, currency)
    except FieldError as exc:
        raise ActionRefused(f"{text.strip()!r} is not an amount: {exc.message}") from None
    if minor <= 0:
        raise ActionRefused("a promised amount is more than zero")
    return minor


def earliest_promise_day(account: AccountRef, now: datetime) -> date:
    """The first day a promise may be for: the debtor's today, a day not ended there."""
    return promise_days.debtor_today(account.timezone, now)


def promise(
    connection: Connection,
    account: AccountRef,
    amount_minor: int,
    due_on: date,
    by: str,
    now: datetime,
    *,
    form_key: str | None = None,
) -> int | None:
    """A pending promise to pay ``amount_minor`` by ``due_on``, recorded by ``by``; returns
    its id.

    ``form_key``: the random key of the agent's form. A promise the same form recorded
    already (a double click, a form sent again after its answer was lost) records nothing,
    and None is returned; so does a second of two sent at the same moment, which the unique
    index on the key stops. The same form sent with other figures (a page brought back
    with the browser's Back button and changed) is refused with ``ChangedMeanwhile``: the
    agent is not told that a promise they did not make was recorded. A key that is not one
    a form carries is refused."""
    if form_key is not None:
        if not _FORM_KEY.fullmatch(form_key):
            raise ActionRefused("the promise form is out of date: open the account again")
        # SQLite: the look-up and the insert under the one writer's lock.
        hold_writes(connection)
        if _promised_by_form(connection, account, form_key, amount_minor, due_on):
            return None
    if amount_minor <= 0:
        raise ActionRefused("a promised amount is more than zero")
    if amount_minor > account.balance_minor:
        raise ActionRefused("the promised amount is more than the balance")
    first = earliest_promise_day(account, now)
    if due_on < first:
        raise ActionRefused(
            f"{due_on.isoformat()} has passed: a promise is for {first.isoformat()} or later"
        )
    if due_on > first + timedelta(days=MAX_PROMISE_DAYS):
        raise ActionRefused(f"a promise is kept within {MAX_PROMISE_DAYS} days")
    values: dict[str, Any] = {
        "account_id": account.id, "amount_minor": amount_minor, "currency": account.currency,
        "due_on": due_on, "status": PromiseStatus.PENDING, "created_by": by[:100],
        "created_at": now, "form_key": form_key,
    }  # fmt: skip
    # On PostgreSQL the same form sent twice at once: the second waits for the first's
    # row under the unique index, then inserts nothing.
    statement = ignoring_duplicates(promises_to_pay, connection.dialect.name)
    made = connection.execute(
        statement.values(**values).returning(promises_to_pay.c.id)
    ).scalar_one_or_none()
    if made is None and form_key is not None:
        # The other of two sent at once: refused too if its figures were not these.
        _promised_by_form(connection, account, form_key, amount_minor, due_on)
    return None if made is None else int(made)


def _promised_by_form(
    connection: Connection, account: AccountRef, form_key: str, amount_minor: int, due_on: date
) -> bool:
    """Whether the form ``form_key`` recorded its promise already: with these figures, or
    ``ChangedMeanwhile`` when with others."""
    recorded = connection.execute(
        select(promises_to_pay.c.amount_minor, promises_to_pay.c.due_on).where(
            promises_to_pay.c.account_id == account.id,
            promises_to_pay.c.form_key == form_key,
        )
    ).first()
    if recorded is None:
        return False
    if (recorded.amount_minor, recorded.due_on) != (amount_minor, due_on):
        shown = format_money(recorded.amount_minor, account.currency, account.locale)
        raise ChangedMeanwhile(
            f"this form recorded a promise of {shown} by {recorded.due_on.isoformat()} "
            "already, not this one: open the account again to record another"
        )
    return True


def clear_flag(
    connection: Connection,
    account: AccountRef,
    shown: str,
    shown_at: datetime | None,
    now: datetime,
) -> None:
    """Clear the flag the agent's page showed: ``shown``, raised at ``shown_at``. The agent
    has seen what it was about (``inbox.clear_flag``: a hand-off the flag stood over takes
    its place). A flag raised or changed since the page was opened (a reply naming an
    attorney, the same flag raised again by a new reply, a hand-off, another agent clearing
    it) raises ``ChangedMeanwhile`` and clears nothing: the agent has not seen it."""
    # The account locked before its flag is read: a reply flagging it meanwhile waits, and
    # then flags it again, or is read here.
    hold_writes(connection)
    lock_accounts(connection, [account.id])
    current = connection.execute(
        select(accounts.c.flag, accounts.c.flagged_at).where(accounts.c.id == account.id)
    ).one()
    if current.flag is None:
        raise ChangedMeanwhile(
            f"The {shown} flag was cleared meanwhile: the account has no flag now."
        )
    if (current.flag, current.flagged_at) != (shown, shown_at):
        raised = (
            f" (raised {current.flagged_at:%Y-%m-%d %H:%M} UTC)"
            if current.flagged_at is not None
            else ""
        )
        raise ChangedMeanwhile(
            f"Not cleared: the flag changed since this page was opened. It is now "
            f"{current.flag}{raised}, which this page did not show: see what raised it, "
            "then clear it from the page as it is now."
        )
    clear_account_flag(connection, account.id, now)


def record_dispute(
    connection: Connection,
    account: AccountRef,
    note: str,
    by: str,
    now: datetime,
    *,
    form_key: str | None = None,
) -> bool:
    """The debtor disputes the debt: collection contact stops until it is resolved. False
    when the form ``form_key`` recorded this dispute already (``_record_event``)."""
    text = note.strip()
    if not text:
        raise ActionRefused("say what the debtor disputes (the note is kept for the record)")
    refuse_nul(text, "note")
    refuse_long_note(text)
    event = _Event(ComplianceEventKind.DISPUTE, text, form_key)
    return _record_event(connection, account, event, by, now, "dispute")


@dataclass(frozen=True)
class _Event:
    """A compliance event an agent records: what, their note, their form's key (None: a
    form without one, recorded every time it is sent)."""

    kind: ComplianceEventKind
    note: str | None
    form_key: str | None


def _record_event(
    connection: Connection, account: AccountRef, event: _Event, by: str, now: datetime,
    form: str,
) -> bool:  # fmt: skip
    """Record ``event`` unless its form (the ``form`` form) recorded it already: then
    False. The same form sent twice (a double click, a form sent again after its answer was
    lost) records once, as a promise's does; so does the second of two sent at the same
    moment, which the unique index on the key stops. The same form sent with another note
    or choice (a page brought back with the browser's Back button and changed) is refused
    with ``ChangedMeanwhile``: the agent is not told that what they did not record was. A
    key that is not one a form carries is refused."""
    key = event.form_key
    if key is not None:
        if not _FORM_KEY.fullmatch(key):
            raise ActionRefused(f"the {form} form is out of date: open the account again")
        # SQLite: the look-up and the insert under the one writer's lock.
        hold_writes(connection)
        if _recorded_by_form(connection, account, event):
            return False
    values = {
        "account_id": account.id, "kind": event.kind, "channel": None, "address": None,
        "occurred_at": now, "source": f"agent {by}"[:200], "note": event.note,
        "form_key": key,
    }  # fmt: skip
    # On PostgreSQL the same form sent twice at once: the second waits for the first's
    # row under the unique index, then inserts nothing.
    statement = ignoring_duplicates(compliance_events, connection.dialect.name)
    made = connection.execute(
        statement.values(**values).returning(compliance_events.c.id)
    ).scalar_one_or_none()
    if made is None and key is not None:
        # The other of two sent at once: refused too if what it records was not this.
        _recorded_by_form(connection, account, event)
    return made is not None


def _recorded_by_form(connection: Connection, account: AccountRef, event: _Event) -> bool:
    """Whether the form ``event.form_key`` recorded ``event`` already: the same, or
    ``ChangedMeanwhile`` when another."""
    recorded = connection.execute(
        select(compliance_events.c.kind, compliance_events.c.note).where(
            compliance_events.c.account_id == account.id,
            compliance_events.c.form_key == event.form_key,
        )
    ).first()
    if recorded is None:
        return False
    if (recorded.kind, recorded.note) != (event.kind, event.note):
        what = f"the {recorded.kind.replace('_', ' ')} event"
        if recorded.note:
            shown = recorded.note if len(recorded.note) <= 80 else recorded.note[:80] + "..."
            what += f" ({shown})"
        raise ChangedMeanwhile(
            f"this form recorded {what} already, not this one: to record this one too, "
            "send it again from the page as it is now"
        )
    return True


# What an agent may record about contact at work, and what the notice says of it.
WORKPLACE_EVENTS = {
    ComplianceEventKind.WORKPLACE_INCONVENIENT: "the debtor finds contact at work inconvenient: "
    "nothing goes to a work number or mailbox",
    ComplianceEventKind.WORKPLACE_PROHIBITED: "the debtor's employer prohibits contact at work: "
    "nothing goes to a work number or mailbox",
    ComplianceEventKind.WORKPLACE_CONVENIENT: "the debtor agrees to contact at work again",
    ComplianceEventKind.WORKPLACE_ALLOWED: "the debtor's employer allows contact at work again",
}


def record_workplace(
    connection: Connection,
    account: AccountRef,
    kind: str,
    note: str,
    by: str,
    now: datetime,
    *,
    form_key: str | None = None,
) -> str | None:
    """What the debtor said about contact at work, as a compliance event; the words that
    say what it does, or None when the form ``form_key`` recorded it already
    (``_record_event``)."""
    try:
        chosen = ComplianceEventKind(kind)
    except ValueError:
        chosen = None
    if chosen not in WORKPLACE_EVENTS:
        raise ActionRefused(f"{kind!r} is not something to record about contact at work")
    refuse_nul(note, "note")
    refuse_long_note(note.strip())
    event = _Event(chosen, note.strip() or None, form_key)
    if not _record_event(connection, account, event, by, now, "contact at work"):
        return None
    lifted = _LIFTS.get(chosen)
    if lifted is None:
        return WORKPLACE_EVENTS[chosen]
    # What is about the person holds while any of their accounts holds it (a reply records
    # it on every account with the address it came from): say where it still does.
    elsewhere = held_elsewhere(connection, account.id, Lift(chosen), now)
    if not elsewhere:
        return WORKPLACE_EVENTS[chosen]
    return (
        f"{WORKPLACE_EVENTS[chosen]} on this account; the debtor's other account(s) "
        f"{', '.join(elsewhere)} still hold the {lifted.replace('_', ' ')} (it holds for the "
        "person): record it there too"
    )


# What each lift ends, from the engine's own table.
_LIFTS = {lift: restriction for restriction, lift in LIFTED_BY.items()}
