from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from datetime import UTC, date, datetime, time, timedelta, timezone
from pathlib import Path
from typing import Any, cast

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import (
    Connection,
    Engine,
    bindparam,
    column,
    create_engine,
    event,
    func,
    insert,
    inspect,
    select,
    table,
    text,
    type_coerce,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, SQLModel

from outreach.compliance_store import attempts
from outreach.config import Settings
from outreach.db import (
    MIGRATIONS_DIR,
    REDOABLE_CHECKPOINT_PAGES,
    alembic_config,
    begin_redoable,
    current_revision,
    head_revision,
    json_dumps,
    json_loads,
    make_engine,
    upgrade,
)
from outreach.db_types import JSONDocument
from outreach.errors import OutreachError
from outreach.models import Account
from outreach.opt_outs import accounts_using, known_spelling, mark_contact_points
from outreach.store import accounts, compliance_events, contact_points
from outreach.template_store import versions
from outreach.web.ui import messages_planned
from tests.conftest import NOW
from tests.eventdata import OTHER_PHONE, add_account, add_attempt
from tests.query_plans import plan_of, statements_run

# SQLite's reflection leaves out expression indexes (with this warning); PostgreSQL's
# compares them.
SKIPPED_EXPRESSION_INDEX = (
    "ignore:Skipped unsupported reflection of expression-based index:sqlalchemy.exc.SAWarning"
)
# ... and alembic's comparison says it skips them on SQLite (the query plan test below
# finds the lower-cased address index there; the byte-order reference index is
# PostgreSQL's only).
SKIPPED_EXPRESSION_INDEX_COMPARISON = (
    "ignore:autogenerate skipping metadata-specified expression-based index:UserWarning"
)


@pytest.mark.filterwarnings(SKIPPED_EXPRESSION_INDEX)
@pytest.mark.filterwarnings(SKIPPED_EXPRESSION_INDEX_COMPARISON)
def test_migrations_build_exactly_the_models(engine: Engine) -> None:
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        differences = compare_metadata(context, SQLModel.metadata)
    assert differences == []
    assert current_revision(engine) == head_revision()


def test_upgrade_again_is_a_no_op(engine: Engine) -> None:
    upgrade(engine)
    assert current_revision(engine) == head_revision()


@pytest.mark.filterwarnings(SKIPPED_EXPRESSION_INDEX)
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


def _durability(connection: Connection) -> tuple[object, ...]:
    if connection.dialect.name == "sqlite":
        return (
            connection.exec_driver_sql("PRAGMA synchronous").scalar(),
            connection.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar(),
        )
    return (connection.exec_driver_sql("SHOW synchronous_commit").scalar(),)


def _stored(engine: Engine, reference: str) -> int:
    with engine.connect() as connection:
        return connection.execute(
            select(func.count()).where(accounts.c.reference == reference)
        ).scalar_one()


@pytest.fixture
def durable(engine: Engine) -> Iterator[Engine]:
    """The test's PostgreSQL runs with ``synchronous_commit`` off; these sessions have it on."""
    if engine.dialect.name == "sqlite":
        yield engine
        return
    url = engine.url.render_as_string(hide_password=False)
    own = create_engine(url, connect_args={"options": "-c synchronous_commit=on"})
    yield own
    own.dispose()


def test_a_redoable_transaction_commits_without_the_flush_and_then_flushes_again(
    durable: Engine,
) -> None:
    engine = durable
    sqlite = engine.dialect.name == "sqlite"
    durable = (2, 1000) if sqlite else ("on",)  # FULL and SQLite's default checkpoint
    with begin_redoable(engine) as connection:
        inside = _durability(connection)
        raw = connection.connection.dbapi_connection
        connection.execute(
            insert(accounts).values(_account(reference="R9").model_dump(exclude={"id"}))
        )
    assert inside == ((1, REDOABLE_CHECKPOINT_PAGES) if sqlite else ("off",))
    assert _stored(engine, "R9") == 1
    with engine.connect() as connection:  # later transactions are durable again
        assert _durability(connection) == durable
    if sqlite:  # the very connection, back in the pool
        assert raw is not None
        cursor = raw.cursor()
        assert cursor.execute("PRAGMA synchronous").fetchone()[0] == 2
        assert cursor.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 1000


def test_a_failed_redoable_transaction_writes_nothing(durable: Engine) -> None:
    engine = durable

    def failing_batch() -> None:
        with begin_redoable(engine) as connection:
            connection.execute(
                insert(accounts).values(_account(reference="R8").model_dump(exclude={"id"}))
            )
            raise RuntimeError("the batch failed")

    with pytest.raises(RuntimeError):
        failing_batch()
    assert _stored(engine, "R8") == 0
    with engine.connect() as connection:
        assert _durability(connection) == (
            (2, 1000) if engine.dialect.name == "sqlite" else ("on",)
        )


@pytest.mark.parametrize(
    ("stored", "address"),
    [
        ("PAT@example.NET", "pat@example.net"),
        ("Élodie.Durand@Example.com", "élodie.durand@example.com"),
        # More letters beyond ASCII than SQLite's search spells out whole.
        ("Иван.Петров@Example.com", "иван.петров@example.com"),
    ],
)
def test_a_mailbox_is_found_in_any_case_through_an_index(
    engine: Engine, stored: str, address: str
) -> None:
    """Every letter's case, not only ASCII's (SQLite's lower() folds ASCII only), and each
    lookup a search of the index on the lower-cased address, not a read of every mailbox."""
    owner = add_account(engine, email=stored)
    add_account(engine, "R-2", phone=OTHER_PHONE, email="someone.else@example.net")
    with statements_run(engine, "contact_point") as seen, engine.connect() as connection:
        assert accounts_using(connection, ("email",), address) == [owner]
        assert known_spelling(connection, "email", address) == stored
        mark_contact_points(connection, ("email",), address, "invalid", NOW)
        marked = connection.execute(
            select(contact_points.c.account_id).where(contact_points.c.status == "invalid")
        ).scalars()
        assert list(marked) == [owner]
        connection.rollback()
    lookups = [(statement, parameters) for statement, parameters in seen if "lower(" in statement]
    # Three, and on SQLite, for a name beyond ASCII, three more for the spellings stored.
    beyond = engine.dialect.name == "sqlite" and "Иван" in stored
    assert len(lookups) == (6 if beyond else 3)
    for statement, parameters in lookups:
        steps = plan_of(engine, statement, parameters)
        assert "ix_contact_point_address_lower" in steps, (statement, steps)
        if engine.dialect.name == "sqlite":  # a search by the address, not by the channel
            assert "(channel=? AND <expr>" in steps, (statement, steps)
            assert "SCAN" not in steps, (statement, steps)


def test_the_start_page_counts_the_days_messages_through_an_index(engine: Engine) -> None:
    """Not by reading every attempt there is (an index on the status, or none)."""
    start = datetime(2026, 11, 2, tzinfo=UTC)
    query = messages_planned(start, start + timedelta(days=1))
    assert "ix_attempt_created_status" in plan_of(engine, query)


@pytest.fixture
def empty_postgres(postgres_url: str) -> Iterator[Engine]:
    """A PostgreSQL database of its own, with no schema yet."""
    url = make_url(postgres_url)
    name = f"outreach_migrations_{os.getpid()}"
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.exec_driver_sql(f"CREATE DATABASE {name}")
    engine = make_engine(
        Settings(database_url=url.set(database=name).render_as_string(hide_password=False))
    )
    try:
        yield engine
    finally:
        engine.dispose()
        with admin.connect() as connection:
            connection.exec_driver_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.dispose()


@pytest.mark.postgres
def test_postgresql_transactions_read_committed_whatever_the_servers_default(
    empty_postgres: Engine,
) -> None:
    """The answer's and the claims' re-reads under their locks must see what committed
    meanwhile: a database defaulting to REPEATABLE READ would show them their first
    snapshot instead."""
    name = empty_postgres.url.database
    with empty_postgres.connect() as connection:
        connection.execution_options(isolation_level="AUTOCOMMIT")
        connection.exec_driver_sql(
            f"ALTER DATABASE {name} SET default_transaction_isolation = 'repeatable read'"
        )
    url = empty_postgres.url.render_as_string(hide_password=False)
    ours = make_engine(Settings(database_url=url))
    plain = create_engine(url)
    try:
        with plain.connect() as connection:  # the server's default, as a plain engine sees it
            assert connection.exec_driver_sql("SHOW transaction_isolation").scalar_one() == (
                "repeatable read"
            )
        with ours.connect() as connection:
            assert connection.exec_driver_sql("SHOW transaction_isolation").scalar_one() == (
                "read committed"
            )
            connection.rollback()
            connection.exec_driver_sql("CREATE TABLE seen (n integer)")
            connection.commit()
            assert connection.exec_driver_sql("SELECT count(*) FROM seen").scalar_one() == 0
            with plain.begin() as other:  # committed while this transaction is open
                other.exec_driver_sql("INSERT INTO seen VALUES (1)")
            assert connection.exec_driver_sql("SELECT count(*) FROM seen").scalar_one() == 1
    finally:
        ours.dispose()
        plain.dispose()


def _reference_c_index(engine: Engine) -> tuple[str, bool] | None:
    with engine.connect() as connection:
        row = connection.execute(
            text(
                "SELECT pg_get_indexdef(i.indexrelid), i.indisvalid FROM pg_index i"
                " JOIN pg_class c ON c.oid = i.indexrelid"
                " WHERE c.relname = 'ix_account_reference_c'"
            )
        ).first()
    return None if row is None else (row[0], row[1])


@pytest.mark.postgres
def test_the_byte_order_index_is_built_concurrently_and_again_after_a_failed_build(
    empty_postgres: Engine,
) -> None:
    engine = empty_postgres
    upgrade(engine, "0011")
    add_account(engine, "INV-1")
    add_account(engine, "INV-2")
    with engine.connect() as connection:  # a concurrent build that failed: left invalid
        connection.execution_options(isolation_level="AUTOCOMMIT")
        with pytest.raises(Exception, match="could not create unique index"):
            connection.exec_driver_sql(
                "CREATE UNIQUE INDEX CONCURRENTLY ix_account_reference_c ON account ((1))"
            )
    assert _reference_c_index(engine) == (
        "CREATE UNIQUE INDEX ix_account_reference_c ON public.account USING btree ((1))",
        False,
    )

    statements: list[str] = []

    def record(conn: Connection, cursor: object, statement: str, *args: object) -> None:
        statements.append(" ".join(statement.split()))

    event.listen(engine, "before_cursor_execute", record)
    try:
        upgrade(engine, "0012")
    finally:
        event.remove(engine, "before_cursor_execute", record)
    # PostgreSQL refuses CONCURRENTLY inside a transaction: that it ran says it was outside.
    assert "DROP INDEX CONCURRENTLY ix_account_reference_c" in statements
    assert any(s.startswith("CREATE INDEX CONCURRENTLY ix_account_reference_c") for s in statements)
    assert _reference_c_index(engine) == (
        'CREATE INDEX ix_account_reference_c ON public.account USING btree (reference COLLATE "C")',
        True,
    )
    assert current_revision(engine) == "0012"

    command.downgrade(alembic_config(engine), "0011")
    assert _reference_c_index(engine) is None
    upgrade(engine)
    assert _reference_c_index(engine) is not None and current_revision(engine) == head_revision()


@pytest.mark.postgres
def test_an_upgrade_stopped_after_the_concurrent_build_runs_again(
    empty_postgres: Engine,
) -> None:
    """The index commits before its migration is recorded: an upgrade that fails later
    (here in 0013) keeps every migration before it recorded, and the next one goes on."""
    engine = empty_postgres
    upgrade(engine, "0011")
    add_account(engine, "INV-1")
    with engine.begin() as connection:  # 0013 cannot create a table that is there already
        connection.exec_driver_sql("CREATE TABLE sign_in_attempt (id integer)")
    with pytest.raises(Exception, match="sign_in_attempt"):
        upgrade(engine)
    assert current_revision(engine) == "0012"
    built = _reference_c_index(engine)
    assert built is not None and built[1]
    # Stopped between the build and the record of 0012: the index is kept as it is.
    with engine.begin() as connection:
        connection.exec_driver_sql("DROP TABLE sign_in_attempt")
        connection.exec_driver_sql("UPDATE alembic_version SET version_num = '0011'")
    upgrade(engine)
    assert current_revision(engine) == head_revision()
    assert _reference_c_index(engine) == built


def test_the_upgrade_leaves_one_published_version_per_template(engine: Engine) -> None:
    command.downgrade(alembic_config(engine), "0025")
    now = datetime(2026, 1, 1, tzinfo=UTC)
    row = {"channel": "sms", "name": "overdue", "tone": "firm", "locale": "", "content": "x",
           "content_hash": "h", "author": "a", "created_at": now, "published_at": now}  # fmt: skip
    # Two publishes at once used to leave two versions published.
    with engine.begin() as connection:
        connection.execute(
            insert(versions),
            [{**row, "version": n, "status": "published"} for n in (1, 2)]
            + [{**row, "name": "other", "version": 1, "status": "published"}],
        )
    upgrade(engine)
    with engine.connect() as connection:
        found = connection.execute(
            select(versions.c.name, versions.c.version, versions.c.status).order_by(versions.c.id)
        ).all()
    assert [tuple(r) for r in found] == [
        ("overdue", 1, "retired"), ("overdue", 2, "published"), ("other", 1, "published"),
    ]  # fmt: skip


def test_attempts_written_before_outages_were_counted_start_at_none(engine: Engine) -> None:
    account_id = add_account(engine, "INV-1")
    add_attempt(engine, account_id, status="queued", message_id=None, outages=3)
    command.downgrade(alembic_config(engine), "0029")
    upgrade(engine)
    # A writer that does not know the column yet (a daemon not upgraded) still writes one.
    with engine.begin() as connection:
        written = connection.execute(select(attempts)).one()._asdict()
        kept = {k: v for k, v in written.items() if k not in ("id", "outages")}
        unaware = table("attempt", *(column(name, attempts.c[name].type) for name in kept))
        connection.execute(insert(unaware).values(kept | {"idempotency_key": "other"}))
        found = connection.execute(select(attempts.c.outages).order_by(attempts.c.id))
        assert found.scalars().all() == [0, 0]


def test_accounts_kept_across_the_time_barred_day_migration_are_not_time_barred(
    engine: Engine,
) -> None:
    """0033 adds ``account.time_barred_on`` empty: no debt is taken for time-barred until
    an import says so; going back below it drops the column and keeps the accounts."""
    add_account(engine, "INV-1")
    command.downgrade(alembic_config(engine), "0032")
    assert "time_barred_on" not in {c["name"] for c in inspect(engine).get_columns("account")}
    upgrade(engine)
    with engine.connect() as connection:
        found = connection.execute(select(accounts.c.reference, accounts.c.time_barred_on)).all()
    assert [tuple(r) for r in found] == [("INV-1", None)]


# The agents' forms' key on compliance events, found by its index's name rather than by
# its number (another migration may come before it).
FORM_KEY_INDEX = "ux_compliance_event_form_key"


def _migration_building(index: str) -> tuple[str, str]:
    """The revision whose migration builds ``index`` (its ``_NAME``), and the one before."""
    for found in ScriptDirectory(str(MIGRATIONS_DIR)).walk_revisions():
        if getattr(found.module, "_NAME", None) == index:
            return found.revision, str(found.down_revision)
    raise AssertionError(f"no migration builds {index}")


def _add_event(connection: Connection, account_id: int, form_key: str | None = None) -> None:
    """A dispute, written with the columns every revision has, and a key if given."""
    values: dict[str, object] = {
        "account_id": account_id, "kind": "dispute", "occurred_at": NOW, "source": "agent ana"
    }  # fmt: skip
    if form_key is not None:
        values["form_key"] = form_key
    columns = (column(name, compliance_events.c[name].type) for name in values)
    connection.execute(insert(table("compliance_event", *columns)).values(values))


def test_compliance_events_kept_across_the_form_key_migration_have_none(engine: Engine) -> None:
    """The migration adds ``compliance_event.form_key`` empty; going back below it drops the
    column and keeps the events. One form's key records one event an account, however many
    events have none."""
    revision, previous = _migration_building(FORM_KEY_INDEX)
    first, second = add_account(engine, "INV-1"), add_account(engine, "INV-2")
    with engine.begin() as connection:
        _add_event(connection, first)
    command.downgrade(alembic_config(engine), previous)
    columns = {c["name"] for c in inspect(engine).get_columns("compliance_event")}
    assert "form_key" not in columns
    upgrade(engine, revision)
    with engine.begin() as connection:
        _add_event(connection, first)  # a second event without a key
        _add_event(connection, first, "k" * 24)
        _add_event(connection, second, "k" * 24)  # the key is the account's form's
        found = connection.execute(text("SELECT form_key FROM compliance_event ORDER BY id"))
        assert found.scalars().all() == [None, None, "k" * 24, "k" * 24]
    with pytest.raises(IntegrityError), engine.begin() as connection:
        _add_event(connection, first, "k" * 24)
    upgrade(engine)
    assert current_revision(engine) == head_revision()


@pytest.mark.postgres
def test_the_form_key_index_is_built_concurrently_and_again_after_a_stopped_upgrade(
    empty_postgres: Engine,
) -> None:
    """compliance_event is large: its unique index is built CONCURRENTLY, with only the
    events that have a key in it. An upgrade stopped after the column was added and while
    the index was being built (left invalid) runs again."""
    engine = empty_postgres
    revision, previous = _migration_building(FORM_KEY_INDEX)
    upgrade(engine, previous)
    account_id = add_account(engine, "INV-1")
    with engine.begin() as connection:
        connection.exec_driver_sql("ALTER TABLE compliance_event ADD COLUMN form_key VARCHAR(64)")
        _add_event(connection, account_id, "k" * 24)
        _add_event(connection, account_id, "k" * 24)
    with engine.connect() as connection:  # a concurrent build that failed: left invalid
        connection.execution_options(isolation_level="AUTOCOMMIT")
        with pytest.raises(Exception, match="could not create unique index"):
            connection.exec_driver_sql(
                f"CREATE UNIQUE INDEX CONCURRENTLY {FORM_KEY_INDEX}"
                " ON compliance_event (account_id, form_key)"
            )
    assert _index_valid(engine, FORM_KEY_INDEX) is False
    with engine.begin() as connection:
        connection.exec_driver_sql("DELETE FROM compliance_event WHERE id = 2")
    statements: list[str] = []

    def record(conn: Connection, cursor: object, statement: str, *args: object) -> None:
        statements.append(" ".join(statement.split()))

    event.listen(engine, "before_cursor_execute", record)
    try:
        upgrade(engine, revision)
        command.downgrade(alembic_config(engine), previous)
    finally:
        event.remove(engine, "before_cursor_execute", record)
    # PostgreSQL refuses CONCURRENTLY inside a transaction: that it ran says it was outside.
    (built,) = [
        s for s in statements if s.startswith(f"CREATE UNIQUE INDEX CONCURRENTLY {FORM_KEY_INDEX} ")
    ]
    assert built.endswith("WHERE form_key IS NOT NULL")
    assert statements.count(f"DROP INDEX CONCURRENTLY {FORM_KEY_INDEX}") == 2  # invalid, down
    assert "form_key" not in {c["name"] for c in inspect(engine).get_columns("compliance_event")}
    upgrade(engine)
    assert _index_valid(engine, FORM_KEY_INDEX) is True


def test_accounts_kept_across_the_collector_since_migration_have_no_switch(
    engine: Engine,
) -> None:
    """0035 adds ``account.collector_since`` empty: every account's messages count as its
    collector's until an import switches it; going back below it drops the column and
    keeps the accounts."""
    add_account(engine, "INV-1")
    command.downgrade(alembic_config(engine), "0034")
    assert "collector_since" not in {c["name"] for c in inspect(engine).get_columns("account")}
    upgrade(engine)
    with engine.begin() as connection:
        found = connection.execute(select(accounts.c.reference, accounts.c.collector_since)).all()
        assert [tuple(r) for r in found] == [("INV-1", None)]
        # An aware UTC time in and out, as every other time of the account's.
        connection.execute(accounts.update().values(collector_since=NOW))
        assert connection.execute(select(accounts.c.collector_since)).scalar_one() == NOW


# One row of each table an account's history fills, each referring to the rows before it,
# as a database in use holds them. The columns a migration adds are left out where the
# schema has none of them yet.
_AT = datetime(2026, 1, 1, tzinfo=UTC)
_HISTORY: list[tuple[str, dict[str, object]]] = [
    ("account", {"reference": "R1", "name": "Pat", "balance_minor": 100,
                 "imported_balance_minor": 100, "currency": "USD", "due_date": date(2026, 1, 1),
                 "status": "active", "locale": "en_US", "cadence": "standard",
                 "collector_type": "first_party", "created_at": _AT, "updated_at": _AT}),
    ("user", {"username": "agent", "display_name": "Agent", "password_hash": "x",
              "role": "agent", "active": True, "created_at": _AT, "session_epoch": 0}),
    ("import_run", {"kind": "accounts", "source": "a.csv", "dry_run": False, "started_at": _AT,
                    "rows_read": 1, "created": 1, "updated": 0, "unchanged": 0, "rejected": 0}),
    ("template_version", {"channel": "sms", "name": "overdue", "tone": "firm", "locale": "",
                          "version": 1, "content": "x", "content_hash": "h",
                          "status": "published", "author": "a", "created_at": _AT}),
    ("contact_point", {"account_id": 1, "channel": "sms", "address": "+16175550101",
                       "kind": "mobile", "priority": 0, "consent": True, "status": "active",
                       "created_at": _AT, "updated_at": _AT}),
    ("compliance_event", {"account_id": 1, "kind": "opt_out", "channel": "sms",
                          "address": "+16175550101", "occurred_at": _AT, "source": "test"}),
    ("payment", {"account_id": 1, "amount_minor": 10, "currency": "USD",
                 "paid_on": date(2026, 1, 1), "dedupe_key": "p1", "source": "test",
                 "created_at": _AT}),
    ("promise_to_pay", {"account_id": 1, "amount_minor": 50, "currency": "USD",
                        "due_on": date(2026, 2, 1), "status": "open", "created_by": "agent",
                        "created_at": _AT}),
    ("attempt", {"account_id": 1, "contact_point_id": 1, "template_version_id": 1,
                 "idempotency_key": "k1", "step_key": "day-1", "channel": "sms",
                 "to_address": "+16175550101", "template_name": "overdue", "tone": "firm",
                 "locale": "en_US", "body": "Pay", "status": "sent", "tries": 1,
                 "created_at": _AT, "updated_at": _AT, "automated": True}),
    ("decision", {"account_id": 1, "attempt_id": 1, "stage": "plan", "channel": "sms",
                  "verdict": "allow", "reasons": [], "ruleset_version": "1",
                  "decided_at": _AT}),
    ("provider_event", {"provider": "twilio_sms", "kind": "status", "event_type": "delivered",
                        "attempt_id": 1, "account_id": 1, "dedupe_key": "e1",
                        "received_at": _AT, "payload": {"a": 1}}),
    ("inbox_message", {"account_id": 1, "provider_event_id": 1, "direction": "inbound",
                       "channel": "sms", "from_address": "+16175550101", "to_address": "+1",
                       "body": "STOP", "status": "handled", "received_at": _AT,
                       "handled_by": 1, "attempt_id": 1}),
    ("suppression", {"channel": "sms", "address": "+16175550101", "reason": "stop",
                     "source": "test", "provider_event_id": 1, "created_at": _AT}),
    ("cadence_step", {"account_id": 1, "step_key": "day-1", "outcome": "done", "at": _AT}),
    ("designated_time", {"account_id": 1, "days": "mon", "start_local": time(9),
                         "end_local": time(17), "source": "test", "created_at": _AT}),
]  # fmt: skip


def _history_table(engine: Engine, name: str) -> tuple[Any, dict[str, object]] | None:
    """The table ``name`` as the database has it now (its columns typed as the models type
    them), with the values of ``_HISTORY`` it has columns for; None if it has no such table."""
    inspector = inspect(engine)
    if not inspector.has_table(name):
        return None
    present = {column["name"] for column in inspector.get_columns(name)}
    model = SQLModel.metadata.tables[name]
    values = {k: v for k, v in dict(_HISTORY)[name].items() if k in present}
    return table(name, *(column(k, model.c[k].type) for k in values)), values


def _fill_history(engine: Engine) -> None:
    for name, _ in _HISTORY:
        found = _history_table(engine, name)
        if found is not None:
            with engine.begin() as connection:
                connection.execute(insert(found[0]).values(found[1]))


def _history_kept(engine: Engine, names: Sequence[str]) -> dict[str, list[dict[str, object]]]:
    """What each of ``names`` holds of ``_HISTORY``'s columns, by column."""
    kept = {}
    with engine.connect() as connection:
        for name in names:
            found = _history_table(engine, name)
            assert found is not None, name
            kept[name] = [dict(row._mapping) for row in connection.execute(select(*found[0].c))]
    return kept


def _same_history(now: dict[str, list[dict[str, object]]], before: dict[str, Any]) -> None:
    """Every row of ``before`` still there, each value as it was (columns added since aside)."""
    for name, rows in before.items():
        assert [{k: v for k, v in row.items() if k in rows[0]} for row in now[name]] == rows, name


def _references_checked(engine: Engine) -> None:
    """The schema's references all hold; on SQLite, each connection enforces them again."""
    if engine.dialect.name != "sqlite":
        return
    with engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA foreign_key_check").all() == []
        assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1


@pytest.fixture
def empty_database(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[Engine]:
    """A database of its own on ``backend``, with no schema yet."""
    if backend == "postgresql":
        yield cast(Engine, request.getfixturevalue("empty_postgres"))
        return
    engine = make_engine(Settings(database_url=f"sqlite:///{tmp_path / 'empty.db'}"))
    yield engine
    engine.dispose()


def test_a_database_in_use_at_the_first_schema_upgrades_with_its_rows(
    empty_database: Engine,
) -> None:
    """SQLite refused the upgrade of a database with rows in it: a migration that copies a
    table (batch mode) drops the original, which foreign keys forbid while other tables'
    rows refer to it. The upgrade left it at 0001; now it reaches the head, every row kept."""
    engine = empty_database
    upgrade(engine, "0001")
    _fill_history(engine)
    first = [name for name, _ in _HISTORY if inspect(engine).has_table(name)]
    before = _history_kept(engine, first)
    upgrade(engine)
    assert current_revision(engine) == head_revision()
    _same_history(_history_kept(engine, first), before)
    with engine.connect() as connection:  # 0002 took the balance as the one imported
        assert connection.execute(select(accounts.c.imported_balance_minor)).scalar_one() == 100
    _references_checked(engine)


def test_a_database_in_use_steps_down_to_the_first_schema_and_back(
    empty_database: Engine,
) -> None:
    """Downgrades copy tables too: on SQLite they failed once rows referred to them. Down
    to 0001 the rows its tables hold are kept, and back up again; down to nothing, empty."""
    engine = empty_database
    upgrade(engine)
    _fill_history(engine)
    first = [name for name, _ in _HISTORY if name not in ("cadence_step", "designated_time")]
    before = _history_kept(engine, first)
    command.downgrade(alembic_config(engine), "0001")
    assert current_revision(engine) == "0001"
    kept = _history_kept(engine, first)
    _same_history(before, kept)
    _references_checked(engine)
    upgrade(engine)
    assert current_revision(engine) == head_revision()
    _same_history(_history_kept(engine, first), kept)
    _references_checked(engine)
    command.downgrade(alembic_config(engine), "base")
    assert current_revision(engine) is None
    assert set(inspect(engine).get_table_names()) <= {"alembic_version"}


@pytest.mark.parametrize("backend", ["sqlite"])
def test_a_migration_that_breaks_a_reference_is_refused(empty_database: Engine) -> None:
    """SQLite migrates with foreign keys off, so each migration's references are checked
    before it commits: one that would leave a row referring to nothing is not applied, and
    the connection goes back to the pool enforcing foreign keys again."""
    engine = empty_database
    upgrade(engine, "0001")
    _fill_history(engine)
    broken = r"migration 0002 would leave references to rows that do not exist: .* account row"

    def delete_the_accounts(connection: Connection, cursor: object, statement: str,
                            *args: object) -> None:  # fmt: skip
        if statement.startswith("UPDATE account SET imported_balance_minor"):
            cursor.execute("DELETE FROM account")  # type: ignore[attr-defined]

    event.listen(engine, "before_cursor_execute", delete_the_accounts)
    try:
        with pytest.raises(OutreachError, match=broken):
            upgrade(engine)
    finally:
        event.remove(engine, "before_cursor_execute", delete_the_accounts)
    assert current_revision(engine) == "0001"
    _references_checked(engine)


@pytest.mark.parametrize("backend", ["sqlite"])
def test_a_refused_migration_leaves_nothing_and_runs_again(empty_database: Engine) -> None:
    """pysqlite commits an ALTER or CREATE TABLE as it runs unless a transaction is open:
    the column a refused 0002 added stayed, the database said 0001, and the upgrade run
    again failed on a duplicate column. Now the migration's DDL is rolled back with it,
    the upgrade runs again once the cause is gone, and the application's connections keep
    pysqlite's own transaction handling."""
    engine = empty_database
    upgrade(engine, "0001")
    _fill_history(engine)

    def delete_the_accounts(connection: Connection, cursor: object, statement: str,
                            *args: object) -> None:  # fmt: skip
        if statement.startswith("UPDATE account SET imported_balance_minor"):
            cursor.execute("DELETE FROM account")  # type: ignore[attr-defined]

    event.listen(engine, "before_cursor_execute", delete_the_accounts)
    try:
        with pytest.raises(OutreachError, match="would leave references"):
            upgrade(engine)
    finally:
        event.remove(engine, "before_cursor_execute", delete_the_accounts)
    assert current_revision(engine) == "0001"
    columns = {column["name"] for column in inspect(engine).get_columns("account")}
    assert "imported_balance_minor" not in columns
    _references_checked(engine)
    upgrade(engine)
    assert current_revision(engine) == head_revision()
    _references_checked(engine)
    with engine.connect() as connection:
        assert connection.connection.driver_connection.isolation_level == ""  # type: ignore[union-attr]


def _index_valid(engine: Engine, name: str) -> bool | None:
    with engine.connect() as connection:
        return cast(
            "bool | None",
            connection.execute(
                text(
                    "SELECT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid"
                    " WHERE c.relname = :name"
                ),
                {"name": name},
            ).scalar(),
        )


@pytest.mark.postgres
@pytest.mark.parametrize(
    ("revision", "index"),
    [
        ("0010", "ix_account_paused"),
        ("0010", "ix_account_flagged"),
        ("0023", "ix_attempt_created_status"),
        ("0024", "ix_compliance_event_address"),
    ],
)
def test_indexes_on_large_tables_are_built_concurrently(
    empty_postgres: Engine, revision: str, index: str
) -> None:
    """A plain CREATE INDEX on attempt, account or compliance_event blocks every write to it
    while the table is read: the daemons' and the webhooks' for as long as the build takes."""
    engine = empty_postgres
    previous = f"{int(revision) - 1:04d}"
    upgrade(engine, previous)
    statements: list[str] = []

    def record(conn: Connection, cursor: object, statement: str, *args: object) -> None:
        statements.append(" ".join(statement.split()))

    event.listen(engine, "before_cursor_execute", record)
    try:
        upgrade(engine, revision)
        command.downgrade(alembic_config(engine), previous)
    finally:
        event.remove(engine, "before_cursor_execute", record)
    # PostgreSQL refuses CONCURRENTLY inside a transaction: that it ran says it was outside.
    (built,) = [s for s in statements if s.startswith(f"CREATE INDEX CONCURRENTLY {index} ")]
    assert ("IS NOT NULL" in built) == (revision == "0010")  # 0010's are partial
    assert f"DROP INDEX CONCURRENTLY {index}" in statements
    assert _index_valid(engine, index) is None
    upgrade(engine)
    assert _index_valid(engine, index) is True


def test_stepping_below_0003_is_refused_while_partials_are_saved(engine: Engine) -> None:
    """0003 widened template_version.channel for "_partials" (9 characters): going below
    it with partials saved failed on PostgreSQL with a bare "value too long", and on SQLite
    (which keeps any length) left them in a column too narrow for them. It is refused on
    both, saying what to delete, and the database stays at 0003."""
    command.downgrade(alembic_config(engine), "0003")
    with engine.begin() as connection:
        connection.execute(
            insert(versions).values(
                channel="_partials", name="footer", tone="", locale="", version=1,
                content="x", content_hash="h", status="published", author="a",
                created_at=_AT, published_at=_AT,
            )
        )  # fmt: skip
    with pytest.raises(
        OutreachError,
        match=r"cannot go below schema 0003: template versions are saved for _partials, .*"
        r"delete the template_version rows of those channels first",
    ):
        command.downgrade(alembic_config(engine), "0002")
    assert current_revision(engine) == "0003"
    with engine.begin() as connection:
        connection.execute(text("DELETE FROM template_version WHERE channel = '_partials'"))
    command.downgrade(alembic_config(engine), "0002")
    assert current_revision(engine) == "0002"
    upgrade(engine)
    assert current_revision(engine) == head_revision()
