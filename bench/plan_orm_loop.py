"""The plan stage written the textbook way: the naive loop the plan benchmark compares with.

One account at a time through the ORM (SQLModel sessions), as the issue's "a query and a
commit per account" describes it: claim the next due account and commit the lease; read
what compliance needs of its debtor with the planner's own reading (``load_debtors``) for
that one account: its contact points, events, designated times, recent attempts and
replies, opt-outs, and what its debtor's other accounts hold, a query or a few each; load
its cadence steps and promises as ORM objects; plan it with the product's own code
(cadence, compliance, rendering), so that the work is the same as the batched planner's;
add the planned rows as ORM objects, release the account and commit.
The engine is the product's (WAL, the same pragmas), and each commit is durable, as a
plain ``session.commit()`` is.

Run as ``python -m bench.plan_orm_loop URL COUNT REPO``; prints one JSON line.
"""

from __future__ import annotations

import json
import sys
import time
from collections import Counter
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, or_
from sqlmodel import Session, col, select

from outreach.cadence import StepRecord
from outreach.clock import FixedClock
from outreach.compliance_store import load_debtors
from outreach.config import Settings
from outreach.db import make_engine, upgrade
from outreach.inbox import HANDOFF
from outreach.models import (
    Account,
    AccountStatus,
    Attempt,
    CadenceStep,
    Decision,
    PromiseStatus,
    PromiseToPay,
)
from outreach.plan_account import plan_accounts
from outreach.planner import Planner
from outreach.rendering.context import load_company
from outreach.template_store import sync_templates
from outreach.written_facts import CALL_TAKEN, COMMUNICATED

WORKER = "orm-loop"
LEASE = timedelta(minutes=5)


def plan_one(session: Session, planner: Planner, now: datetime) -> str | None:
    """Claim, plan and store the next due account; its outcome, or None when none is due."""
    account = session.exec(
        select(Account)
        .where(
            Account.status == AccountStatus.ACTIVE,
            col(Account.next_contact_at) <= now,
            col(Account.paused_until).is_(None),
            or_(col(Account.acquired_until).is_(None), col(Account.acquired_until) < now),
        )
        .order_by(col(Account.next_contact_at), col(Account.id))
        .limit(1)
    ).first()
    if account is None:
        return None
    account.acquired_by, account.acquired_until = WORKER, now + LEASE
    session.commit()
    assert account.id is not None
    own = account.id
    # What compliance knows of the debtor, read as the planner reads it for a batch, here for
    # this one account: its contact points, events, designated times, recent attempts and
    # replies, opt-outs, and what the debtor's other accounts hold (their contacts counted
    # by the caps per debtor, restrictions on the person, consents revoked by number,
    # student loans serviced under one number), a query or a few each.
    record = load_debtors(
        session.connection(), [account], now, planner.rules.lookback_days,
        planner.settings.default_region, rules=planner.rules,
    )[own]  # fmt: skip
    steps = session.exec(select(CadenceStep).where(CadenceStep.account_id == own))
    promised = (
        session.exec(
            select(PromiseToPay).where(
                PromiseToPay.account_id == own, PromiseToPay.status == PromiseStatus.PENDING
            )
        ).first()
        is not None
    )
    taken = [StepRecord(step.step_key, step.at) for step in steps]
    # Whether a message has reached the debtor before: the first carries the whole disclosure.
    reached = session.exec(
        select(Attempt.id).where(
            Attempt.account_id == own,
            col(Attempt.status).in_(COMMUNICATED),
            or_(Attempt.channel != "voice", Attempt.outcome == CALL_TAKEN),
        )
    ).first()
    kit = planner.toolkit(session.connection())
    plan = plan_accounts([(account, record, taken, promised, reached is None)], kit, now)[0]
    if plan.attempt is not None:
        session.add(Attempt(**plan.attempt))
    session.add_all([CadenceStep(**step) for step in plan.steps])
    session.add_all([Decision(**decision) for decision in plan.decisions])
    account.next_contact_at = plan.next_contact_at
    if plan.handoff_at is not None and account.handoff is None:
        account.handoff = "pending"
        if account.flag is None:
            account.flag, account.flagged_at = HANDOFF, now
    account.acquired_by = account.acquired_until = None
    account.updated_at = now
    session.commit()
    return plan.outcome


def run(engine: Engine, planner: Planner, now: datetime, count: int) -> Counter[str]:
    """Plan up to ``count`` due accounts one at a time; the outcomes."""
    outcomes: Counter[str] = Counter()
    with Session(engine, expire_on_commit=False) as session:
        for _ in range(count):
            outcome = plan_one(session, planner, now)
            if outcome is None:
                break
            outcomes[outcome] += 1
            session.expunge_all()  # a fresh identity map per account, as a loop would
    return outcomes


def main(url: str, count: int, repo: Path) -> dict[str, Any]:
    from bench.plan_accounts import load_accounts, weekday_afternoon

    settings = Settings(
        database_url=url,
        templates_dir=repo / "templates",
        schedules_dir=repo / "schedules",
        channels_dir=repo / "channels",
    )
    engine = make_engine(settings)
    upgrade(engine)
    now = weekday_afternoon(date(2026, 11, 22))
    clock = FixedClock(now)
    sync_templates(engine, settings.templates_dir, load_company(settings.templates_dir), clock,
                   author="bench", publish=True)  # fmt: skip
    load_accounts(engine, count, now)
    planner = Planner(engine, settings, clock, WORKER, processes=1)
    started = time.perf_counter()
    outcomes = run(engine, planner, now, count)
    seconds = time.perf_counter() - started
    planner.close()
    done = sum(outcomes.values())
    if done != count:
        sys.exit(f"plan_orm_loop: {done:,} of the {count:,} accounts loaded were planned")
    return {"accounts": done, "seconds": round(seconds, 2), "per_second": round(done / seconds),
            "outcomes": dict(outcomes)}  # fmt: skip


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1], int(sys.argv[2]), Path(sys.argv[3]))))
