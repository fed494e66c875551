"""What an agent records for an account: pauses, promises to pay and disputes.

Each writes what the rest of outreach already reads, nothing of its own:
- a pause sets ``paused_until``: the planner claims no paused account, and housekeeping
  makes it due again when the pause ends;
- a promise to pay is a pending ``promise_to_pay``: the planner sends no collection step
  while one is pending, and housekeeping marks it broken, and the account due, the day
  after its date passes unpaid;
- a dispute is a compliance event: the compliance engine blocks collection contact until a
  ``dispute_resolved`` event follows.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from babel.numbers import get_currency_precision
from sqlalchemy import Connection, insert, select, update

from outreach.errors import NotFoundError, OutreachError
from outreach.models import ComplianceEventKind, PromiseStatus
from outreach.store import accounts, compliance_events, promises_to_pay

MAX_PAUSE_DAYS = 90
MAX_PROMISE_DAYS = 90


class ActionRefused(OutreachError):
    """The agent's input cannot be recorded as given (the message says why)."""


@dataclass(frozen=True)
class AccountRef:
    id: int
    reference: str
    balance_minor: int
    currency: str


def account_by_reference(connection: Connection, reference: str) -> AccountRef:
    row = connection.execute(
        select(accounts.c.id, accounts.c.reference, accounts.c.balance_minor, accounts.c.currency)
        .where(accounts.c.reference == reference)
    ).first()  # fmt: skip
    if row is None:
        raise NotFoundError(f"no account {reference!r}")
    return AccountRef(row.id, row.reference, row.balance_minor, row.currency)


def pause(
    connection: Connection, account: AccountRef, days: int, reason: str, now: datetime
) -> datetime:
    """No outreach for ``days``; returns when it resumes on its own."""
    if not 1 <= days <= MAX_PAUSE_DAYS:
        raise ActionRefused(f"a pause lasts 1 to {MAX_PAUSE_DAYS} days, not {days}")
    why = " ".join(reason.split())
    if not why:
        raise ActionRefused("say why outreach pauses (the reason is kept with the account)")
    until = now + timedelta(days=days)
    connection.execute(
        update(accounts)
        .where(accounts.c.id == account.id)
        .values(paused_until=until, pause_reason=why[:200], updated_at=now)
    )
    return until


def resume(connection: Connection, account: AccountRef, now: datetime) -> None:
    """End any pause: the account is due at once, and compliance decides what follows."""
    connection.execute(
        update(accounts)
        .where(accounts.c.id == account.id)
        .values(paused_until=None, pause_reason=None, next_contact_at=now, updated_at=now)
    )


def parse_amount(text: str, currency: str) -> int:
    """``"25.50"`` in ``currency``'s minor units; refused if not a positive amount with at
    most the currency's decimals."""
    digits = get_currency_precision(currency)
    try:
        amount = Decimal(text.strip().replace(",", ""))
    except InvalidOperation:
        raise ActionRefused(f"{text!r} is not an amount") from None
    if not amount.is_finite() or amount <= 0:
        raise ActionRefused("a promised amount is more than zero")
    minor = amount.scaleb(digits)
    if minor != minor.to_integral_value():
        raise ActionRefused(f"{currency} amounts have at most {digits} decimal(s)")
    return int(minor)


def promise(
    connection: Connection,
    account: AccountRef,
    amount_minor: int,
    due_on: date,
    today: date,
    by: str,
    now: datetime,
) -> int:
    """A promise to pay ``amount_minor`` by ``due_on``; returns its id."""
    if amount_minor <= 0:
        raise ActionRefused("a promised amount is more than zero")
    if amount_minor > account.balance_minor:
        raise ActionRefused("the promised amount is more than the balance")
    if due_on < today:
        raise ActionRefused(f"{due_on.isoformat()} has passed: a promise is for today or later")
    if due_on > today + timedelta(days=MAX_PROMISE_DAYS):
        raise ActionRefused(f"a promise is kept within {MAX_PROMISE_DAYS} days")
    values: dict[str, Any] = {
        "account_id": account.id, "amount_minor": amount_minor, "currency": account.currency,
        "due_on": due_on, "status": PromiseStatus.PENDING, "created_by": by[:100],
        "created_at": now,
    }  # fmt: skip
    return int(
        connection.execute(
            insert(promises_to_pay).values(**values).returning(promises_to_pay.c.id)
        ).scalar_one()
    )


def record_dispute(
    connection: Connection, account: AccountRef, note: str, by: str, now: datetime
) -> None:
    """The debtor disputes the debt: collection contact stops until it is resolved."""
    text = note.strip()
    if not text:
        raise ActionRefused("say what the debtor disputes (the note is kept for the record)")
    connection.execute(
        insert(compliance_events).values(
            account_id=account.id, kind=ComplianceEventKind.DISPUTE, channel=None, address=None,
            occurred_at=now, source=f"agent {by}"[:200], note=text[:500],
        )
    )  # fmt: skip
