"""What SQLite reads for the statements about a list of accounts or messages.

SQLite keeps no statistics unless asked (outreach never runs ANALYZE), and without them it
prefers an index on a status (the dispatch queue's, the due accounts', the open replies')
to the ids a statement names: it then reads every row with that status, each time. These
statements are asked about fifty ids, enough for that choice, and must search by the ids.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta
from typing import Any, NamedTuple

import pytest
from sqlalchemy import Connection, Engine

from outreach.answers import _not_answered_since, seen_answers
from outreach.compliance_store import work_mailboxes_used
from outreach.dispatcher import _still_ours
from outreach.inbox import copies_elsewhere
from outreach.payments import PaymentSummary, _reduce_balances
from outreach.planner import _pending_promises
from outreach.replies import reply_holds
from outreach.returned_steps import due_now
from outreach.written_facts import contacted
from tests.conftest import NOW
from tests.query_plans import plan_of, statements_run

pytestmark = pytest.mark.parametrize("backend", ["sqlite"])

IDS = list(range(1, 51))
# A search through an index whose first column is a status or a direction.
_BY_STATUS = re.compile(r"INDEX \w+ \((status|direction)=")
# (``inbox.copies_elsewhere`` reads the inbox twice, as ``mine`` and ``other``.)
_GROWING = re.compile(
    r"SCAN (attempt|inbox_message|mine|other)\b"
    r"|(attempt|inbox_message) USING INTEGER PRIMARY KEY \(rowid>|AUTOMATIC"
)


class _Copy(NamedTuple):
    account_id: int
    id: int


class _WorkMailbox(NamedTuple):
    channel: str
    kind: str
    address: str


CALLS: dict[str, Callable[[Connection], Any]] = {
    "steps given back, accounts due now": lambda c: due_now(c, IDS, NOW),
    "pending promises of a plan batch": lambda c: _pending_promises(c, IDS),
    "accounts whose debtor has had a message": lambda c: contacted(c, IDS),
    "replies holding accounts": lambda c: reply_holds(c, IDS, NOW, timedelta(hours=48)),
    "attempts a dispatcher still holds": lambda c: _still_ours(c, IDS, "w"),
    "accounts paid off": lambda c: _reduce_balances(
        c, dict.fromkeys(IDS, 100), NOW, PaymentSummary()
    ),
    "an answer since the agent looked": lambda c: _not_answered_since(
        c, 1, [_Copy(1, 1), _Copy(2, 2)], 0
    ),
    "a message's copies on other accounts": lambda c: copies_elsewhere(c, 1),
    "the answers an account's page has seen": lambda c: seen_answers(c, 1),
    "work mailboxes a debtor wrote from": lambda c: work_mailboxes_used(
        c, {i: [_WorkMailbox("email", "work", f"pat{i}@employer.example")] for i in IDS}, NOW
    ),
}


@pytest.mark.parametrize("call", list(CALLS), ids=list(CALLS))
def test_a_statement_about_listed_ids_searches_by_them(engine: Engine, call: str) -> None:
    with statements_run(engine) as seen, engine.connect() as connection:
        CALLS[call](connection)
        connection.rollback()
    assert seen
    for statement, parameters in seen:
        steps = plan_of(engine, statement, parameters)
        assert not _BY_STATUS.search(steps), (statement, steps)
        # Nor a read of the messages sent that grows with them: a scan, a range of ids, or
        # an index SQLite builds for the statement because none serves it.
        assert not _GROWING.search(steps), (statement, steps)
