from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta, timezone

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, bindparam, inspect, select, type_coerce
from sqlmodel import Session, SQLModel

from outreach.db import current_revision, head_revision, json_dumps, json_loads, upgrade
from outreach.db_types import JSONDocument
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


def stored_json(engine: Engine, value: object) -> object:
    """``value`` through a JSON column's writing and reading, as the engine does them."""
    with engine.connect() as connection:
        return connection.execute(
            select(type_coerce(bindparam("value", value, type_=JSONDocument), JSONDocument))
        ).scalar_one()


@pytest.mark.parametrize(
    "value",
    [
        {"reasons": [{"code": "OK"}], "count": 3, "ratio": 0.5, "none": None, "text": "Zoë"},
        {"big": 2**70},  # beyond 64 bits: orjson refuses it, json.dumps writes it
    ],
)
def test_json_columns_store_what_json_dumps_would(engine: Engine, value: dict[str, object]) -> None:
    assert stored_json(engine, value) == value


# PostgreSQL's JSONB refuses a lone surrogate whoever encodes it.
@pytest.mark.parametrize("backend", ["sqlite"])
def test_a_lone_surrogate_orjson_refuses_is_stored_on_sqlite(engine: Engine) -> None:
    value = {"payload": "a lone surrogate \ud800 in a provider's payload"}
    assert stored_json(engine, value) == value


def test_json_written_by_json_dumps_is_still_read() -> None:
    assert json_loads(json.dumps({"nan": float("nan")}))["nan"] != 0  # NaN, not an error
    assert json_loads(json_dumps([("named", "tuple")])) == [["named", "tuple"]]
