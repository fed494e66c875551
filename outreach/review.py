"""Attempts held for review, and settling them by hand.

An attempt is ``unknown`` when its request may have reached the provider but no answer came
back (a timeout, a reset, a 5xx, the sender stopping mid-send). It is never sent again on
its own, and it counts as a contact for the frequency caps. A webhook from the provider
about it settles it; otherwise a person checks with the provider (its console or logs:
the recipient, the time) and settles it:

- ``sent``: the provider has it. With the provider's id, later webhooks about it find it.
- ``resend``: the provider does not have it. It is queued again as it is, under its own
  idempotency key (one message, sent once more), and checked at the moment of sending like
  any other: a STOP, a closed window, a balance changed since it was written still hold it
  back.
- ``cancel``: it did not go, and is not to go. The cadence goes on from its next step.

Each settling records who, when and their note, and changes only an attempt that is still
``unknown``: a webhook that settled it meanwhile is the provider's word, and wins. A
settling made from what a page showed (``expected``: the hold's tries) changes only that
hold: sent again and held again since, the attempt is held anew, for a reason the person
settling it has not seen, and the settling is refused. Every send counts a try, so the
tries tell the holds apart; a webhook that keeps the attempt ``unknown`` (a "queued"
status bringing the provider's id) changes when it was last changed, not the hold.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Connection, Select, func, select, update

from outreach.agent_actions import ActionRefused, ChangedMeanwhile, refuse_nul
from outreach.compliance_store import attempts
from outreach.errors import NotFoundError
from outreach.models import AttemptStatus
from outreach.store import accounts

NOTE_LENGTH = 500
PROVIDER_ID_LENGTH = 100


class Settlement(StrEnum):
    SENT = "sent"
    RESEND = "resend"
    CANCEL = "cancel"


SETTLED_STATUS = {
    Settlement.SENT: AttemptStatus.SENT,
    Settlement.RESEND: AttemptStatus.QUEUED,
    Settlement.CANCEL: AttemptStatus.CANCELLED,
}


@dataclass(frozen=True)
class HeldAttempt:
    id: int
    reference: str  # the account's
    channel: str
    to_address: str
    step_key: str
    automated: bool
    provider: str | None
    provider_message_id: str | None
    tries: int
    created_at: datetime
    held_since: datetime  # when it was last changed: when it became ``unknown``
    error_message: str | None
    body: str
    subject: str | None


@dataclass(frozen=True)
class Hold:
    """Which hold of an attempt a page showed: an attempt sent again and held again has
    more tries (each send counts one)."""

    tries: int


def held_for_review(
    connection: Connection, *, reference: str | None = None, limit: int = 200
) -> list[HeldAttempt]:
    """The ``unknown`` attempts, oldest first (of one account, by its reference)."""
    query = (
        select(
            attempts.c.id, accounts.c.reference, attempts.c.channel, attempts.c.to_address,
            attempts.c.step_key, attempts.c.automated, attempts.c.provider,
            attempts.c.provider_message_id, attempts.c.tries, attempts.c.created_at,
            attempts.c.updated_at.label("held_since"), attempts.c.error_message,
            attempts.c.body, attempts.c.subject,
        )
        .join(accounts, accounts.c.id == attempts.c.account_id)
        .where(attempts.c.status == AttemptStatus.UNKNOWN)
        .order_by(attempts.c.updated_at, attempts.c.id)
        .limit(limit)
    )  # fmt: skip
    if reference is not None:
        query = query.where(accounts.c.reference == reference)
    return [HeldAttempt(**row._asdict()) for row in connection.execute(query)]


def count_held(connection: Connection) -> int:
    return int(
        connection.execute(
            select(func.count()).where(attempts.c.status == AttemptStatus.UNKNOWN)
        ).scalar_one()
    )


def settle(
    connection: Connection,
    attempt_id: int,
    how: Settlement,
    now: datetime,
    by: str,
    *,
    provider_message_id: str | None = None,
    note: str = "",
    expected: Hold | None = None,
) -> None:
    """Settle an ``unknown`` attempt (see the module's docstring); call it in the
    transaction that is to hold the change. Raises ``NotFoundError`` for no such attempt,
    ``ActionRefused`` when it is not ``unknown`` (settled meanwhile) or the input cannot be
    recorded as given, ``ChangedMeanwhile`` when it is held again since the hold
    ``expected`` (the one the page showed); nothing is written then."""
    note = " ".join(note.split())
    refuse_nul(note, "note")
    if len(note) > NOTE_LENGTH:
        raise ActionRefused(f"the note is longer than {NOTE_LENGTH} characters")
    provider_message_id = (provider_message_id or "").strip() or None
    if provider_message_id is not None:
        refuse_nul(provider_message_id, "provider's id")
        if how is not Settlement.SENT:
            raise ActionRefused("a provider's id goes with settling as sent only")
        if len(provider_message_id) > PROVIDER_ID_LENGTH:
            raise ActionRefused(f"the provider's id is longer than {PROVIDER_ID_LENGTH}")
    by = by.strip()[:64] or "unknown"
    found = connection.execute(_current(attempt_id)).first()
    if found is None:
        raise NotFoundError(f"no attempt {attempt_id}")
    if found.status != AttemptStatus.UNKNOWN:
        raise _not_held(attempt_id, found.status)
    if how is not Settlement.SENT and found.provider_message_id:
        # A webhook told of it under this id: the provider took it.
        raise _taken(attempt_id, found.provider_message_id)
    if expected is not None and found.tries != expected.tries:
        raise _changed(attempt_id)
    if (
        provider_message_id is not None
        and found.provider_message_id
        and found.provider_message_id != provider_message_id
    ):
        raise ActionRefused(
            f"attempt {attempt_id} has the provider's id {found.provider_message_id} already "
            "(a webhook gave it): settle it as sent without a provider's id"
        )
    if provider_message_id is not None:
        other = connection.execute(
            select(attempts.c.id).where(
                attempts.c.provider_message_id == provider_message_id,
                attempts.c.id != attempt_id,
            )
        ).first()
        if other is not None:
            raise ActionRefused(
                f"the provider's id {provider_message_id} is attempt {other.id}'s: check the "
                "id (webhooks about it would reach one of the two)"
            )
    values: dict[str, Any] = {
        "status": SETTLED_STATUS[how],
        "reviewed_by": by,
        "reviewed_at": now,
        "review_note": note or None,
        "acquired_by": None,
        "acquired_until": None,
        "updated_at": now,
    }
    if how is Settlement.SENT:
        if provider_message_id is not None:
            values["provider_message_id"] = provider_message_id
        # When it left is not known exactly: when it was marked sending (it left within its
        # send's lease of that), or (marked before that was kept) when it was held.
        values["sent_at"] = func.coalesce(
            attempts.c.sent_at, attempts.c.placed_at, attempts.c.updated_at
        )
    elif how is Settlement.RESEND:
        # Queued afresh: an outage met when it is sent again waits 30 s first.
        values.update(next_try_at=now, outages=0)
    still = attempts.c.status == AttemptStatus.UNKNOWN
    if how is not Settlement.SENT:
        # Checked again as it is written: a webhook may have given it the provider's id
        # since it was read (a status that keeps it unknown, such as "queued").
        still &= attempts.c.provider_message_id.is_(None)
    if expected is not None:
        # The hold the page showed, not one that came after it (sent again, held again).
        still &= attempts.c.tries == expected.tries
    changed = connection.execute(
        update(attempts).where(attempts.c.id == attempt_id, still).values(**values)
    ).rowcount
    if changed == 1:
        return
    now_found = connection.execute(_current(attempt_id)).one()
    if now_found.status != AttemptStatus.UNKNOWN:
        raise _not_held(attempt_id, now_found.status)
    if how is not Settlement.SENT and now_found.provider_message_id:
        raise _taken(attempt_id, now_found.provider_message_id)
    raise _changed(attempt_id)


def _current(attempt_id: int) -> Select[Any]:
    return select(attempts.c.status, attempts.c.provider_message_id, attempts.c.tries).where(
        attempts.c.id == attempt_id
    )


def _changed(attempt_id: int) -> ChangedMeanwhile:
    return ChangedMeanwhile(
        f"message {attempt_id} changed since the page was shown (it was held again since): "
        "nothing was changed; look at it again as it is now"
    )


def _not_held(attempt_id: int, status: str) -> ActionRefused:
    return ActionRefused(
        f"attempt {attempt_id} is {status}, not held for review: nothing was changed"
    )


def _taken(attempt_id: int, provider_message_id: str) -> ActionRefused:
    return ActionRefused(
        f"attempt {attempt_id} has the provider's id {provider_message_id}: the provider "
        "took it; settle it as sent"
    )
