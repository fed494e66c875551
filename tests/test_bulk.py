"""The fast executemany writes exactly what SQLAlchemy's own executemany writes."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import (
    Column,
    DateTime,
    Engine,
    Integer,
    MetaData,
    String,
    Table,
    bindparam,
    create_engine,
    delete,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.sql.dml import UpdateBase

from outreach.bulk import BulkStatement
from outreach.compliance_store import attempts, decisions
from outreach.db_types import UTCDateTime
from outreach.models import AttemptStatus
from outreach.store import accounts, ignoring_duplicates

NOW = datetime(2026, 11, 25, 18, 0, tzinfo=UTC)


@pytest.fixture
def two_databases(tmp_path: Path) -> Iterator[tuple[Engine, Engine]]:
    from outreach.db import upgrade

    pair = []
    for name in ("fast", "plain"):
        engine = create_engine(f"sqlite:///{tmp_path / name}.db")
        upgrade(engine)
        pair.append(engine)
    yield pair[0], pair[1]
    for engine in pair:
        engine.dispose()


def _write_both(
    pair: tuple[Engine, Engine],
    build: Callable[[str], UpdateBase],
    rows: list[dict[str, Any]],
) -> None:
    fast, plain = pair
    with fast.begin() as connection:
        BulkStatement(build).execute(connection, rows)
    with plain.begin() as connection:
        connection.execute(build("sqlite"), rows)


def _stored(engine: Engine, table: str) -> list[tuple[Any, ...]]:
    with engine.connect() as connection:
        everything = f"SELECT * FROM {table}"  # noqa: S608 - the tests' own table names
        return [tuple(row) for row in connection.exec_driver_sql(everything)]


def _account(reference: str) -> dict[str, Any]:
    return {
        "reference": reference,
        "name": "Pat Smith",
        "balance_minor": 12_050,
        "imported_balance_minor": 12_050,
        "currency": "USD",
        "due_date": NOW.date(),
        "status": "active",
        "timezone": None,
        "jurisdiction": "US-NY",
        "locale": "en_US",
        "cadence": "standard",
        "collector_type": "first_party",
        "next_contact_at": NOW,
        "created_at": NOW,
        "updated_at": NOW,
    }


def _attempt(account_id: int, key: str, when: datetime) -> dict[str, Any]:
    return {
        "account_id": account_id,
        "contact_point_id": None,
        "idempotency_key": key,
        "step_key": "reminder",
        "channel": "email",
        "to_address": "pat@example.com",
        "template_name": "reminder",
        "tone": "friendly",
        "locale": "en",
        "subject": "Your balance",
        "body": "Hi Pat, \u00e9\u00e8 \U0001f600",
        "body_html": None,
        "voicemail": None,
        "status": AttemptStatus.QUEUED,
        "automated": True,
        "tries": 0,
        "next_try_at": when,
        "created_at": NOW,
        "updated_at": NOW,
    }


def test_inserts_ignoring_duplicates_store_the_same_text(
    two_databases: tuple[Engine, Engine],
) -> None:
    _write_both(two_databases, lambda _: insert(accounts), [_account("A-1"), _account("A-2")])
    new_york = timezone(timedelta(hours=-5))
    rows = [
        _attempt(1, "1:reminder:email", NOW),
        _attempt(2, "2:reminder:email", datetime(2026, 3, 8, 1, 59, 59, 123_456, tzinfo=new_york)),
        _attempt(1, "1:reminder:email", NOW),  # a duplicate key: skipped by both
    ]
    _write_both(two_databases, lambda dialect: ignoring_duplicates(attempts, dialect), rows)
    fast, plain = two_databases
    assert _stored(fast, "attempt") == _stored(plain, "attempt")
    assert len(_stored(fast, "attempt")) == 2


def test_json_columns_and_nulls_store_the_same_text(two_databases: tuple[Engine, Engine]) -> None:
    _write_both(two_databases, lambda _: insert(accounts), [_account("A-1")])
    row = {
        "account_id": 1,
        "attempt_id": None,
        "stage": "plan",
        "step_key": "reminder",
        "channel": "sms",
        "address": "+12125550100",
        "verdict": "defer",
        "not_before": NOW + timedelta(hours=14),
        "reasons": [{"code": "WINDOW", "words": "after 21:00 \u2014 late"}],
        "rules_evaluated": ["WINDOW:defer"],
        "input_snapshot": {"now": NOW.isoformat(), "nested": {"list": [1, 2.5, None, True]}},
        "ruleset_version": "v1",
        "decided_at": NOW,
    }
    _write_both(two_databases, lambda _: decisions.insert(), [row, {**row, "not_before": None}])
    fast, plain = two_databases
    assert _stored(fast, "decision") == _stored(plain, "decision")


def test_updates_with_constants_and_parameters_match(two_databases: tuple[Engine, Engine]) -> None:
    _write_both(two_databases, lambda _: insert(accounts), [_account("A-1"), _account("A-2")])
    for engine in two_databases:
        with engine.begin() as connection:
            connection.execute(update(accounts).values(acquired_by="me", acquired_until=NOW))
    statement = (
        update(accounts)
        .where(
            accounts.c.id == bindparam("account_id"), accounts.c.acquired_by == bindparam("worker")
        )
        .values(next_contact_at=bindparam("next_at"), acquired_by=None, updated_at=NOW)
    )
    rows: list[dict[str, Any]] = [
        {"account_id": 1, "next_at": NOW + timedelta(days=1), "worker": "me"},
        {"account_id": 2, "next_at": None, "worker": "someone else"},  # not this worker's
    ]
    _write_both(two_databases, lambda _: statement, rows)
    fast, plain = two_databases
    assert _stored(fast, "account") == _stored(plain, "account")
    with fast.connect() as connection:
        held = connection.execute(select(accounts.c.acquired_by).order_by(accounts.c.id))
        assert held.scalars().all() == [None, "me"]


def test_the_dispatchers_updates_match(two_databases: tuple[Engine, Engine]) -> None:
    """Marking ``sending`` (an expression and constants) and recording outcomes (a CASE
    over literals keeping a status a webhook has moved on)."""
    from outreach.dispatcher import _CHANGE, _MARK_SENDING, _change

    _write_both(two_databases, lambda _: insert(accounts), [_account("A-1")])
    rows = [_attempt(1, f"1:step-{i}:email", NOW) for i in range(3)]
    _write_both(two_databases, lambda _: insert(attempts), rows)
    for engine in two_databases:
        with engine.begin() as connection:
            connection.execute(update(attempts).values(acquired_by="me"))
            connection.execute(
                update(attempts).where(attempts.c.id == 3).values(status="delivered")
            )
    marks = [
        {
            "attempt_id": i,
            "placed": NOW,
            "lease_end": NOW + timedelta(minutes=i),
            "now": NOW,
            "asked": "outbox",
        }
        for i in (1, 2)
    ]
    _write_both(two_databases, _MARK_SENDING.build, marks)
    fast, plain = two_databases
    with fast.connect() as connection:
        held = connection.execute(select(attempts).order_by(attempts.c.id)).all()
    changes = [
        _change(held[0], AttemptStatus.SENT, NOW, provider="outbox", provider_message_id="m-1",
                sent_at=NOW),
        _change(held[1], AttemptStatus.QUEUED, NOW, error="refused", next_try_at=NOW),
        _change(held[2], AttemptStatus.SENT, NOW, provider="outbox", provider_message_id="m-3",
                sent_at=NOW),
    ]  # fmt: skip
    _write_both(two_databases, _CHANGE.build, [c | {"worker": "me"} for c in changes])
    assert _stored(fast, "attempt") == _stored(plain, "attempt")
    with fast.connect() as connection:
        now_held = connection.execute(select(attempts).order_by(attempts.c.id)).all()
    assert [(a.status, a.tries) for a in now_held] == [
        ("sent", 1),
        ("queued", 1),
        ("delivered", 0),  # the webhook's word stays
    ]


def test_callable_defaults_are_left_to_sqlalchemy(tmp_path: Path) -> None:
    counter = itertools.count(100)
    metadata = MetaData()
    table = Table(
        "t",
        metadata,
        Column("id", Integer, primary_key=True),
        Column("name", String(20)),
        Column("fixed", String(20), default="house"),
        Column("numbered", Integer, default=lambda: next(counter)),
    )
    engine = create_engine(f"sqlite:///{tmp_path / 't.db'}")
    metadata.create_all(engine)
    with engine.begin() as connection:
        BulkStatement(lambda _: insert(table)).execute(connection, [{"name": "a"}, {"name": "b"}])
    with engine.connect() as connection:
        assert connection.execute(text("SELECT name, fixed, numbered FROM t")).all() == [
            ("a", "house", 100),
            ("b", "house", 101),
        ]


def test_a_statement_without_parameters_runs(tmp_path: Path) -> None:
    metadata = MetaData()
    table = Table("t", metadata, Column("id", Integer, primary_key=True), Column("name", String))
    engine = create_engine(f"sqlite:///{tmp_path / 't.db'}")
    metadata.create_all(engine)
    with engine.begin() as connection:
        connection.execute(insert(table), [{"name": "a"}, {"name": "b"}])
        BulkStatement(lambda _: delete(table)).execute(connection, [{}])
    with engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM t")).scalar() == 0


# hypothesis takes naive bounds and attaches the zones itself.
instants = st.datetimes(
    min_value=datetime(1900, 1, 1),  # noqa: DTZ001
    max_value=datetime(2200, 1, 1),  # noqa: DTZ001
    timezones=st.timezones(),
).filter(lambda moment: moment.utcoffset() is not None)


@settings(max_examples=200, deadline=None)
@given(moment=instants)
def test_utc_datetimes_are_stored_as_sqlalchemy_stores_them(moment: datetime) -> None:
    engine = create_engine("sqlite://")
    metadata = MetaData()
    table = Table("t", metadata, Column("ours", UTCDateTime()), Column("plain", DateTime()))
    metadata.create_all(engine)
    with engine.begin() as connection:
        connection.execute(
            insert(table), {"ours": moment, "plain": moment.astimezone(UTC).replace(tzinfo=None)}
        )
        stored = connection.exec_driver_sql("SELECT ours, plain FROM t").one()
        assert stored[0] == stored[1]
        back = connection.execute(select(table.c.ours)).scalar_one()
        assert back == moment.astimezone(UTC) and back.tzinfo is UTC
