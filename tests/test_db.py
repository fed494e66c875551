from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, inspect, select
from sqlmodel import Session, SQLModel

from outreach.db import current_revision, head_revision, upgrade
from outreach.models import Account


def test_migrations_build_exactly_the_models(engine: Engine) -> None:
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        differences = compare_metadata(context, SQLModel.metadata)
    assert differences == []
    assert current_revision(engine) == head_revision()


def test_upgrade_again_is_a_no_op(engine: Engine) -> None:
    upgrade(engine)
    assert current_revision(engine) == head_revision()


def test_daemon_query_indexes_exist(engine: Engine) -> None:
    inspector = inspect(engine)
    account_indexes = {ix["name"]: ix["column_names"] for ix in inspector.get_indexes("account")}
    assert account_indexes["ix_account_due"] == ["status", "next_contact_at"]
    suppression = {ix["name"]: ix["column_names"] for ix in inspector.get_indexes("suppression")}
    assert suppression["ix_suppression_address"] == ["address", "channel"]
    attempt = {ix["name"]: ix["column_names"] for ix in inspector.get_indexes("attempt")}
    assert attempt["ix_attempt_account_created"] == ["account_id", "created_at"]


def _account(**overrides: object) -> Account:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    values: dict[str, object] = {
        "reference": "R1", "name": "Pat", "balance_minor": 100, "imported_balance_minor": 100,
        "currency": "USD",
        "due_date": date(2026, 1, 1), "locale": "en_US", "cadence": "standard",
        "created_at": now, "updated_at": now,
    }  # fmt: skip
    values.update(overrides)
    return Account(**values)


def test_datetimes_come_back_aware_in_utc(engine: Engine) -> None:
    boston = timezone(timedelta(hours=-5))
    at = datetime(2026, 3, 8, 1, 30, tzinfo=boston)
    with Session(engine) as session:
        session.add(_account(next_contact_at=at))
        session.commit()
    with Session(engine) as session:
        stored = session.exec(select(Account.next_contact_at)).one()[0]  # type: ignore[call-overload]
    assert stored == at
    assert stored.tzinfo is not None
    assert stored.utcoffset() == timedelta(0)


def test_naive_datetimes_are_refused(engine: Engine) -> None:
    with Session(engine) as session:
        session.add(_account(next_contact_at=datetime(2026, 1, 1)))  # noqa: DTZ001
        with pytest.raises(Exception, match="naive datetime"):
            session.commit()


def test_reference_is_unique(engine: Engine) -> None:
    with Session(engine) as session:
        session.add(_account())
        session.commit()
        session.add(_account(name="Other"))
        with pytest.raises(Exception, match=r"(?i)unique"):
            session.commit()
