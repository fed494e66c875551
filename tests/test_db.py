from __future__ import annotations

import json
import os
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta, timezone

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import (
    Connection,
    Engine,
    bindparam,
    create_engine,
    event,
    func,
    insert,
    inspect,
    select,
    text,
    type_coerce,
)
from sqlalchemy.engine import make_url
from sqlmodel import Session, SQLModel

from outreach.config import Settings
from outreach.db import (
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
from outreach.models import Account
from outreach.opt_outs import accounts_using, known_spelling, mark_contact_points
from outreach.store import accounts, contact_points
from outreach.template_store import versions
from outreach.web.ui import messages_planned
from tests.conftest import NOW
from tests.eventdata import OTHER_PHONE, add_account
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
