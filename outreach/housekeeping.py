"""Housekeeping: what time alone changes.

- An attempt still ``sending`` after its lease ended belongs to a daemon that stopped
  mid-send, or whose outcome could not be recorded: the provider may have taken it, so it
  becomes ``unknown`` for review (never sent again on its own). A live dispatcher renews
  the lease of what it is still sending, and what is in flight in the daemon or one of its
  dispatch processes is left alone whatever its lease says.
- A promise to pay whose day has ended where the debtor is, unpaid, is broken, and its
  account's outreach resumes.
- A pause that has run out ends, and the account is due again; unless a reply still waits
  in the inbox, younger than the reply pause: the reply pause then takes over until it
  ends (an agent's pause that ends before the reply pause would have).
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Engine, not_, or_, select, update

from outreach.compliance_store import attempts
from outreach.leases import sends_in_flight
from outreach.models import AttemptStatus, PromiseStatus
from outreach.promise_days import day_ended, last_day_that_may_have_ended
from outreach.replies import hand_over_to_reply_pause
from outreach.returned_steps import due_now
from outreach.store import accounts, among, hold_writes, lock_accounts, promises_to_pay

log = logging.getLogger("outreach.housekeeping")


@dataclass
class Housekeeping:
    lost_sends: int = 0
    broken_promises: int = 0
    pauses_ended: int = 0

    def summary(self) -> str:
        return (
            f"{self.lost_sends} lost send(s) held for review (outreach attempts held), "
            f"{self.broken_promises} broken "
            f"promise(s), {self.pauses_ended} pause(s) ended"
        )


def housekeeping(
    engine: Engine,
    now: datetime,
    worker: str | None = None,
    *,
    helpers: Collection[str] = (),
    reply_pause: timedelta = timedelta(0),
) -> Housekeeping:
    """``worker`` is the caller's own name and ``helpers`` its live dispatch processes'.
    Only sends actually in flight are not lost, whatever their lease says: the caller's
    own in this process, and each helper's as it reported them to this process
    (``sends_in_flight``). Every other ``sending`` attempt past its lease is held, theirs
    too: an outcome that could not be recorded, or a helper that died."""
    done = Housekeeping()
    with engine.begin() as connection:
        lost = (attempts.c.status == AttemptStatus.SENDING) & (attempts.c.acquired_until < now)
        holder = attempts.c.acquired_by
        names = ([worker] if worker is not None else []) + [h for h in helpers if h != worker]
        for name in names:
            flying = sends_in_flight(name)
            if flying:
                lost &= or_(
                    holder.is_(None),
                    holder != name,
                    not_(among(connection, attempts.c.id, sorted(flying))),
                )
        done.lost_sends = connection.execute(
            update(attempts)
            .where(lost)
            .values(
                status=AttemptStatus.UNKNOWN,
                # Either the sender stopped (killed, a crash) or its outcome could not be
                # written: from here the two look the same.
                error_message="its sender stopped, or could not record the outcome, while "
                "sending: the provider may have it; held for review, not sent again",
                acquired_by=None,
                acquired_until=None,
                updated_at=now,
            )
        ).rowcount
    # Each part in a transaction of its own: each changes several accounts, and locks them
    # in the order of their ids (``store.lock_accounts``), which two parts in one
    # transaction would break (the second's first lock may come before the first's last).
    with engine.begin() as connection:
        # A promise breaks once its day has ended where the debtor is (``promise_days``).
        # The accounts are locked before the promises, in the order of their ids, as a
        # payment locks them before keeping a promise; the statement that breaks them reads
        # each promise's status as it writes: a payment that kept it meanwhile wins.
        pending = connection.execute(
            select(promises_to_pay.c.id, promises_to_pay.c.account_id,
                   promises_to_pay.c.due_on, accounts.c.timezone)
            .join(accounts, accounts.c.id == promises_to_pay.c.account_id)
            .where(promises_to_pay.c.status == PromiseStatus.PENDING,
                   promises_to_pay.c.due_on <= last_day_that_may_have_ended(now))
        ).all()  # fmt: skip
        overdue = [row for row in pending if day_ended(row.due_on, row.timezone, now)]
        broken: list[int] = []
        if overdue:
            lock_accounts(connection, [row.account_id for row in overdue])
            broken = list(
                connection.execute(
                    update(promises_to_pay)
                    .where(
                        promises_to_pay.c.id.in_([row.id for row in overdue]),
                        promises_to_pay.c.status == PromiseStatus.PENDING,
                    )
                    .values(status=PromiseStatus.BROKEN, resolved_at=now)
                    .returning(promises_to_pay.c.account_id)
                ).scalars()
            )
        due_now(connection, broken, now)
        done.broken_promises = len(broken)
    with engine.begin() as connection:
        hold_writes(connection)  # SQLite: the pauses read below stay as read
        # Locked in the order of their ids, as every writer of several accounts locks them
        # (``store.lock_accounts``); a pause an agent changed meanwhile is read afresh.
        ended = list(
            connection.execute(
                select(accounts.c.id)
                .where(accounts.c.paused_until.is_not(None), accounts.c.paused_until <= now)
                .order_by(accounts.c.id)
                .with_for_update(key_share=True)
            ).scalars()
        )
        held = hand_over_to_reply_pause(connection, ended, now, reply_pause)
        ended = [account_id for account_id in ended if account_id not in held]
        if ended:
            connection.execute(
                update(accounts)
                .where(accounts.c.id.in_(ended))
                .values(paused_until=None, pause_reason=None, updated_at=now)
            )
            due_now(connection, ended, now)
        done.pauses_ended = len(ended)
    if done.lost_sends or done.broken_promises or done.pauses_ended:
        log.info("housekeeping: %s", done.summary())
    return done
