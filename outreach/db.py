"""Engines, sessions and schema upgrades."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError as AlembicError
from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlmodel import Session

from outreach.config import DATABASE_URL_REMEDY, Settings, database_url_problem
from outreach.errors import ConfigError

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def json_dumps(value: Any) -> str:
    """JSON columns are written with orjson: every decision stores its reasons, checks and
    input, and json.dumps was half of storing one (docs/performance.md). What orjson
    refuses and json.dumps takes (a lone surrogate in a provider's payload, an integer
    beyond 64 bits) is still stored, through json.dumps."""
    try:
        return orjson.dumps(value, default=_json_default, option=orjson.OPT_NON_STR_KEYS).decode()
    except orjson.JSONEncodeError:
        return json.dumps(value, default=_json_default)


def json_loads(text: str | bytes) -> Any:
    """orjson, and json.loads for what orjson does not read (NaN, which json.dumps wrote)."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)


def _json_default(value: Any) -> Any:
    if isinstance(value, tuple):  # a named tuple: a list, as json.dumps writes it
        return list(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def make_engine(settings: Settings, **engine_options: Any) -> Engine:
    """The engine for ``settings.database_url``, tuned for its backend."""
    problem = database_url_problem(settings.database_url)
    if problem is not None:
        raise ConfigError(f"DATABASE_URL: {problem}; {DATABASE_URL_REMEDY}")
    url = make_url(settings.database_url)
    if url.get_backend_name() == "sqlite":
        if url.database and url.database != ":memory:":
            Path(url.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url,
            connect_args={"timeout": 30, "check_same_thread": False},
            # Bound values are debtors' names, phones and amounts: keep them out of errors.
            hide_parameters=True,
            json_serializer=json_dumps,
            json_deserializer=json_loads,
            **engine_options,
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    options: dict[str, Any] = {
        "json_serializer": json_dumps,
        "json_deserializer": json_loads,
        "pool_pre_ping": True,
        "pool_size": 10,
        "max_overflow": 10,
        "hide_parameters": True,
        # The locks and re-reads that keep a message from being planned, sent or answered
        # twice are reasoned for READ COMMITTED (each statement sees what committed before
        # it): PostgreSQL's default, set here so that a server or role defaulting to
        # REPEATABLE READ or SERIALIZABLE changes nothing.
        "isolation_level": "READ COMMITTED",
    }
    options.update(engine_options)
    return create_engine(url, **options)


# Every SQLite connection's settings: each commit on disk before it returns, and the
# write-ahead log copied into the database every 1,000 pages (SQLite's default).
_DURABLE_SYNCHRONOUS = "FULL"
_DURABLE_CHECKPOINT_PAGES = 1_000
# A redoable transaction's connection lets the log grow further before copying it: a page
# that several batches change (an index's, an account table's) is copied once for all.
REDOABLE_CHECKPOINT_PAGES = 16_000


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets the web app read while the daemon writes; foreign keys are off by default in
    # SQLite. FULL sync makes each commit durable before it returns: NORMAL could lose the
    # last commits on power loss, among them a ``sending`` mark whose message had left (a
    # resend after restart) or a STOP already acknowledged to the provider. Work is
    # committed in batches, so the cost is one fsync per batch.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA synchronous={_DURABLE_SYNCHRONOUS}")
    cursor.execute(f"PRAGMA wal_autocheckpoint={_DURABLE_CHECKPOINT_PAGES}")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()
    # SQLite's lower() folds only ASCII letters: "Élodie" would not match "élodie".
    dbapi_connection.create_function("casefold", 1, _casefold, deterministic=True)


def _casefold(text: str | None) -> str | None:
    return text.casefold() if isinstance(text, str) else text


@contextmanager
def begin_redoable(engine: Engine) -> Iterator[Connection]:
    """A transaction whose commit does not wait for the disk, for work that is simply
    done again if a crash loses it: the plan stage's rows for a batch, whose accounts stay
    due until the batch's commit lands.

    A crash (power cut, kernel panic; not a killed process) may lose the last such
    commits, never part of one, and never one that a later durable commit followed: on
    SQLite (WAL, ``synchronous=NORMAL`` for this commit) the next durable commit flushes
    the log up to itself, and on PostgreSQL (``synchronous_commit`` off for this
    transaction) the write-ahead log is flushed in order. So an attempt whose sending was
    claimed is on disk with its plan. On SQLite the connection also checkpoints less
    often (``REDOABLE_CHECKPOINT_PAGES``)."""
    with engine.connect() as connection:
        sqlite = connection.dialect.name == "sqlite"
        try:
            if sqlite:
                # SQLite refuses to change the level inside a transaction.
                _pragmas(connection, "NORMAL", REDOABLE_CHECKPOINT_PAGES)
            with connection.begin():
                if not sqlite:
                    connection.exec_driver_sql("SET LOCAL synchronous_commit TO OFF")
                yield connection
        finally:
            if sqlite:
                try:
                    _pragmas(connection, _DURABLE_SYNCHRONOUS, _DURABLE_CHECKPOINT_PAGES)
                except BaseException:
                    # Never back into the pool with commits that skip the disk.
                    connection.invalidate()
                    raise


def _pragmas(connection: Connection, synchronous: str, checkpoint_pages: int) -> None:
    connection.exec_driver_sql(f"PRAGMA synchronous={synchronous}")
    connection.exec_driver_sql(f"PRAGMA wal_autocheckpoint={checkpoint_pages}")
    connection.commit()


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """A session that commits on success and rolls back on error."""
    with Session(engine, expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


def alembic_config(engine: Engine) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["engine"] = engine
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Create or upgrade the schema to ``revision``."""
    command.upgrade(alembic_config(engine), revision)


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def head_revision() -> str | None:
    script = ScriptDirectory(str(MIGRATIONS_DIR))
    return script.get_current_head()


def is_known_revision(revision: str) -> bool:
    """Whether ``revision`` is one of this version's migrations: a database at another was
    migrated by a newer outreach, which this one can neither use nor upgrade."""
    try:
        return ScriptDirectory(str(MIGRATIONS_DIR)).get_revision(revision) is not None
    except AlembicError:
        return False


def current_known_revision(engine: Engine, where: str) -> str | None:
    """The database's revision; refused (ConfigError) when it is newer than this outreach's
    migrations know."""
    revision = current_revision(engine)
    if revision is not None and not is_known_revision(revision):
        raise ConfigError(
            f"the database at {where} is at schema {revision}, newer than this outreach "
            f"(which knows up to {head_revision()}): upgrade outreach"
        )
    return revision
