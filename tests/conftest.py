"""Shared fixtures: a database on every backend, a fixed clock, import defaults.

Database tests take the ``engine`` fixture and run twice, on SQLite and on a real
PostgreSQL. PostgreSQL comes from OUTREACH_TEST_POSTGRES_URL or, failing that, a throwaway
cluster started from Debian's binaries for this session. Without either, its tests skip on
a developer's machine and fail in CI (CI=true), where PostgreSQL must run.
"""

from __future__ import annotations

import contextlib
import gc
import os
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from sqlalchemy import Engine, text
from sqlmodel import SQLModel

from outreach import heap
from outreach.clock import FixedClock
from outreach.config import Settings
from outreach.db import make_engine, upgrade
from outreach.importing.account_rows import ImportDefaults
from tests.pgcluster import ThrowawayPostgres, find_bin_dir

if TYPE_CHECKING:
    from tests.providers.conftest import EcdsaKeys

NOW = datetime(2026, 11, 2, 15, 0, tzinfo=UTC)
REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    configured = os.environ.get("OUTREACH_TEST_POSTGRES_URL")
    if configured:
        yield configured
        return
    bin_dir = find_bin_dir()
    if bin_dir is None:
        message = "PostgreSQL binaries not found (apt-get install postgresql)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{message}: CI must run the PostgreSQL tests")
        pytest.skip(message)
    cluster = ThrowawayPostgres(bin_dir).start()
    try:
        yield cluster.url
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def _migrated_sqlite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "template.db"
    engine = make_engine(Settings(database_url=f"sqlite:///{path}"))
    upgrade(engine)
    with engine.connect() as connection:  # fold the WAL into the file before copying it
        connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    engine.dispose()
    return path


@pytest.fixture(scope="session")
def _migrated_postgres(postgres_url: str) -> Iterator[Engine]:
    engine = make_engine(Settings(database_url=postgres_url))
    upgrade(engine)
    yield engine
    engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def engine(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """A migrated, empty database on ``backend``."""
    if backend == "sqlite":
        path = tmp_path / "outreach.db"
        shutil.copy(request.getfixturevalue("_migrated_sqlite"), path)
        engine = make_engine(Settings(database_url=f"sqlite:///{path}"))
        yield engine
        engine.dispose()
        return
    engine = request.getfixturevalue("_migrated_postgres")
    _truncate_all(engine)
    yield engine


def _truncate_all(engine: Engine) -> None:
    names = ", ".join(f'"{table.name}"' for table in SQLModel.metadata.sorted_tables)
    with engine.begin() as connection:
        connection.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))


@pytest.fixture
def database_url(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=False)


@pytest.fixture
def env(database_url: str) -> dict[str, str]:
    """The environment of an ``outreach`` process using the test's database."""
    values = {k: v for k, v in os.environ.items() if not k.startswith(("TWILIO_", "SENDGRID_"))}
    values.update(
        DATABASE_URL=database_url,
        SCHEDULES_DIR=str(REPO / "schedules"),
        COLUMNS="200",  # wide enough that rich does not wrap the lines tests read
    )
    return values


@pytest.fixture
def daemon_env(env: dict[str, str], tmp_path: Path) -> dict[str, str]:
    """``env`` for ``outreach run``: the repository's files, an outbox of the test's own."""
    env.update(
        TEMPLATES_DIR=str(REPO / "templates"),
        CHANNELS_DIR=str(REPO / "channels"),
        OUTBOX_PATH=str(tmp_path / "outbox.jsonl"),
        ENVIRONMENT="development",  # --start is for development only
        LOG_LEVEL="INFO",
    )
    return env


@pytest.fixture(scope="session")
def event_keys() -> EcdsaKeys:
    """SendGrid's Event Webhook signing keys, generated for the test session."""
    from tests.providers.conftest import new_keys  # that module imports this one

    return new_keys()


@pytest.fixture(scope="session")
def inbound_keys() -> EcdsaKeys:
    """The Inbound Parse signing keys."""
    from tests.providers.conftest import new_keys

    return new_keys()


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(NOW)


@pytest.fixture
def defaults(clock: FixedClock) -> ImportDefaults:
    return ImportDefaults(
        region="US",
        locale="en_US",
        currency="USD",
        cadence="standard",
        collector_type="first_party",
        consent_source="import test.csv",
        consent_at=clock.now(),
        known_cadences=frozenset({"standard", "pre-due"}),
    )


@pytest.fixture(autouse=True)
def _heap_left_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    """The test process keeps CPython's collector settings: the first test to plan or
    dispatch would otherwise settle the heap for every test after it. ``tests/test_heap.py``
    checks settling in a fresh process; daemons started as subprocesses settle as usual."""
    monkeypatch.setattr(heap, "settle", lambda: False)


@contextlib.contextmanager
def collector_as_started() -> Iterator[None]:
    """The collector as in a fresh process: a memory test measures what is kept a row, not
    when the collector runs. Late in a long test session the process holds millions of
    objects, and CPython then puts off full collections (until the objects new since the
    last one are a quarter of those it holds): the cyclic garbage of a large import (a
    rejected row's exception and its frames) waits, and swells a peak with the size of the
    file. Frozen, what the session holds is left out of that count (set by the collection
    after the freeze)."""
    gc.collect()  # today's garbage is not frozen with the rest
    gc.freeze()
    gc.collect()
    try:
        yield
    finally:
        gc.unfreeze()
