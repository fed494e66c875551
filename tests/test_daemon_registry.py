"""The registry of running daemons (``outreach.daemon_registry``): each daemon's row from
its start to its stop, stale rows removed, the warning when daemons sharing a database plan
with different files, and ``outreach daemons``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, insert, select, update

from outreach import __version__
from outreach.clock import FixedClock, ScaledClock
from outreach.config import Settings
from outreach.config_digest import config_digest
from outreach.daemon import Daemon, RunOptions
from outreach.daemon_registry import Registration, daemon_instances, stale_after
from outreach.process_identity import pid_namespace, process_start
from tests.conftest import NOW, REPO
from tests.test_cli import outreach
from tests.test_daemon import START, Running, running, wait_until
from tests.test_planner import make_settings

__all__ = ["running"]  # a fixture, used by name

WARNED = "accounts are planned by whichever daemon claims them"

linux_only = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="processes are told apart from /proc (Linux)"
)


def registered(engine: Engine) -> dict[str, Any]:
    """The registry's rows, by worker."""
    with engine.connect() as connection:
        return {row.worker: row for row in connection.execute(select(daemon_instances))}


def other_schedules(tmp_path: Path) -> Path:
    """schedules/ with one change: the standard cadence goes on while a promise is pending."""
    folder = tmp_path / "other-schedules"
    shutil.copytree(REPO / "schedules", folder)
    standard = folder / "standard.yaml"
    text = standard.read_text(encoding="utf-8")
    changed = text.replace(
        "stop_when: [paid, disputed, promise_pending, cease_requested]",
        "stop_when: [paid, disputed, cease_requested]",
    )
    assert changed != text
    standard.write_text(changed, encoding="utf-8")
    return folder


def registry_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        record.getMessage()
        for record in caplog.records
        if record.name == "outreach.daemon_registry" and record.levelno == logging.WARNING
    ]


# --- the digest --------------------------------------------------------------------------


def copied_configuration(tmp_path: Path) -> Settings:
    for folder in ("schedules", "channels"):
        shutil.copytree(REPO / folder, tmp_path / folder)
    (tmp_path / "templates").mkdir()
    shutil.copy(REPO / "templates" / "company.yaml", tmp_path / "templates")
    return Settings(
        _env_file=None,
        schedules_dir=tmp_path / "schedules",
        channels_dir=tmp_path / "channels",
        templates_dir=tmp_path / "templates",
    )


def test_the_digest_follows_what_the_files_say(tmp_path: Path) -> None:
    settings = copied_configuration(tmp_path / "a")
    first = config_digest(settings)
    assert len(first) == 64 and int(first, 16) >= 0

    # Touched, or the same files in another folder (another machine): the same digest.
    for path in (tmp_path / "a").rglob("*"):
        os.utime(path, (0, 0))
    assert config_digest(settings) == first
    assert config_digest(copied_configuration(tmp_path / "b")) == first
    # A file the daemon does not read: the same digest.
    (settings.channels_dir / "README.md").write_text("notes", encoding="utf-8")
    assert config_digest(settings) == first

    standard = settings.schedules_dir / "standard.yaml"
    standard.write_text(standard.read_text(encoding="utf-8") + "\n# a comment\n", "utf-8")
    changed = config_digest(settings)
    assert changed != first
    renamed = settings.schedules_dir / "standard-2.yaml"
    standard.rename(renamed)
    assert config_digest(settings) not in {first, changed}
    renamed.rename(standard)
    assert config_digest(settings) == changed


@pytest.mark.parametrize(
    "change",
    ["sms", "company", "rules", "reply_pause", "region", "provider"],
)
def test_the_digest_covers_channels_company_rules_and_settings(tmp_path: Path, change: str) -> None:
    settings = copied_configuration(tmp_path)
    before = config_digest(settings)
    if change == "sms":
        sms = settings.channels_dir / "sms.yaml"
        sms.write_text(sms.read_text(encoding="utf-8") + "\n# changed\n", encoding="utf-8")
    elif change == "company":
        company = settings.templates_dir / "company.yaml"
        company.write_text(company.read_text(encoding="utf-8") + "\n# changed\n", "utf-8")
    elif change == "rules":
        rules = tmp_path / "rules.yaml"
        rules.write_text("version: local-1\nprofiles: []\n", encoding="utf-8")
        settings = settings.model_copy(update={"compliance_rules_file": rules})
    else:
        setting, value = {
            "reply_pause": ("reply_pause_days", 3),
            "region": ("default_region", "CA"),
            "provider": ("sms_provider", "outbox"),
        }[change]
        if change == "provider":  # Twilio where the other machine has the outbox
            settings = settings.model_copy(
                update={"twilio_account_sid": "AC1", "twilio_auth_token": "token"}
            )
            before = config_digest(settings)
        settings = settings.model_copy(update={setting: value})
    assert config_digest(settings) != before


# --- register, refresh, remove -----------------------------------------------------------


def registration(
    engine: Engine, clock: FixedClock | ScaledClock, worker: str, settings: Settings
) -> Registration:
    return Registration(engine, clock, worker, settings, housekeeping_every=30)


def test_a_daemon_registers_is_seen_and_leaves(
    engine: Engine, tmp_path: Path, clock: FixedClock
) -> None:
    settings = make_settings(engine, tmp_path)
    mine = registration(engine, clock, "host-a:1:aaaa", settings)
    mine.register()
    row = registered(engine)["host-a:1:aaaa"]
    assert (row.host, row.pid) == (mine.host, os.getpid())
    assert row.started_at == row.seen_at == NOW
    assert row.config_digest == config_digest(settings)
    assert row.version == __version__

    clock.advance(timedelta(seconds=30))
    mine.refresh()
    row = registered(engine)["host-a:1:aaaa"]
    assert (row.started_at, row.seen_at) == (NOW, NOW + timedelta(seconds=30))

    mine.unregister()
    assert registered(engine) == {}
    mine.refresh()  # a housekeeping tick that ends after the stop
    assert registered(engine) == {}


def test_a_daemon_not_seen_for_ten_minutes_is_removed(
    engine: Engine, tmp_path: Path, clock: FixedClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="outreach.daemon_registry")
    settings = make_settings(engine, tmp_path)
    live = registration(engine, clock, "host-a:1:aaaa", settings)
    gone = registration(engine, clock, "host-b:2:bbbb", settings)
    live.register()
    gone.register()  # and never again: killed

    clock.advance(timedelta(minutes=10))
    live.refresh()
    assert set(registered(engine)) == {"host-a:1:aaaa", "host-b:2:bbbb"}
    clock.advance(timedelta(seconds=30))
    live.refresh()
    assert set(registered(engine)) == {"host-a:1:aaaa"}
    assert any("host-b:2:bbbb on " in m and "removed" in m for m in caplog.messages)

    # It was only away (a suspended machine): it comes back at its next refresh.
    gone.refresh()
    assert set(registered(engine)) == {"host-a:1:aaaa", "host-b:2:bbbb"}
    assert "registry: host-b:2:bbbb registered again" in caplog.messages


def ended_process() -> tuple[int, int]:
    """The pid and start of a process that ran on this machine and has ended."""
    child = subprocess.Popen(["sleep", "60"])
    start = process_start(child.pid)
    child.kill()
    child.wait()
    assert start is not None
    return child.pid, start


def add_row(engine: Engine, worker: str, pid: int, namespace: str | None, start: int) -> None:
    """A registry row as a daemon with that process would have written it."""
    with engine.begin() as connection:
        connection.execute(
            insert(daemon_instances).values(
                worker=worker, host="host-a", pid=pid, started_at=NOW, seen_at=NOW,
                config_digest="f" * 64, version=__version__, pid_namespace=namespace,
                process_start=start,
            )
        )  # fmt: skip


@linux_only
def test_a_daemon_whose_process_ended_is_removed_at_its_neighbours_next_refresh(
    engine: Engine, tmp_path: Path, clock: FixedClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="outreach.daemon_registry")
    settings = make_settings(engine, tmp_path)
    here = registration(engine, clock, "host-a:1:aaaa", settings)
    beside = registration(engine, clock, "host-a:1:bbbb", settings)  # the same process
    here.register()
    beside.register()
    namespace = pid_namespace()
    own_start = process_start(os.getpid())
    assert namespace is not None and own_start is not None
    killed_pid, killed_start = ended_process()
    add_row(engine, "host-a:killed", killed_pid, namespace, killed_start)
    # The same number as this process, given to an earlier one that ended (pids wrap).
    add_row(engine, "host-a:before-restart", os.getpid(), namespace, own_start - 1)
    # A process in another container, or on another machine: its number means nothing here.
    add_row(engine, "host-b:elsewhere", killed_pid, "another-boot pid:[1]", killed_start)

    clock.advance(timedelta(seconds=30))
    here.refresh()
    assert set(registered(engine)) == {"host-a:1:aaaa", "host-a:1:bbbb", "host-b:elsewhere"}
    assert f"registry: host-a:killed (pid {killed_pid} on host-a) has ended: removed" in (
        caplog.messages
    )
    assert any(m.startswith("registry: host-a:before-restart (pid ") for m in caplog.messages)
    # The daemons whose processes ended were not compared: only the one elsewhere is told of.
    [told] = registry_warnings(caplog)
    assert told.startswith("daemon host-b:elsewhere on ")


@pytest.mark.postgres
@pytest.mark.parametrize("backend", ["postgresql"])
def test_a_row_being_refreshed_is_not_removed_nor_waited_for(
    engine: Engine, tmp_path: Path, clock: FixedClock
) -> None:
    settings = make_settings(engine, tmp_path)
    live = registration(engine, clock, "host-a:1:aaaa", settings)
    late = registration(engine, clock, "host-b:2:bbbb", settings)
    live.register()
    late.register()
    clock.advance(timedelta(minutes=11))
    # The late daemon's refresh has its row locked (it is back, its commit not yet made).
    with engine.connect() as refreshing:
        refreshing.execute(
            update(daemon_instances)
            .where(daemon_instances.c.worker == "host-b:2:bbbb")
            .values(seen_at=clock.now())
        )
        done = threading.Thread(target=live.refresh)
        done.start()
        done.join(timeout=10)
        waited = done.is_alive()
        refreshing.commit()
    done.join()
    assert not waited
    assert set(registered(engine)) == {"host-a:1:aaaa", "host-b:2:bbbb"}


def test_a_live_daemon_on_a_demo_clock_is_not_taken_for_stopped(
    engine: Engine, tmp_path: Path
) -> None:
    # The demo's clock runs 60 times faster: a housekeeping tick every 30 real seconds is
    # one every 30 minutes of its time.
    wall = FixedClock(datetime(2026, 12, 5, 17, 0, tzinfo=UTC))
    demo = ScaledClock(NOW, speed=60, wall=wall)
    assert stale_after(demo, 30) == timedelta(hours=10)
    settings = make_settings(engine, tmp_path)
    first = registration(engine, demo, "host-a:1:aaaa", settings)
    second = registration(engine, demo, "host-b:2:bbbb", settings)
    first.register()
    second.register()
    for _ in range(20):
        wall.advance(timedelta(seconds=30))
        first.refresh()
        assert set(registered(engine)) == {"host-a:1:aaaa", "host-b:2:bbbb"}
        second.refresh()

    for _ in range(21):  # the second stopped: ten real minutes later it is removed
        wall.advance(timedelta(seconds=30))
        first.refresh()
    assert set(registered(engine)) == {"host-a:1:aaaa"}


# --- the warning -------------------------------------------------------------------------


def housekeep(*daemons: Daemon) -> None:
    """A tick of each daemon's housekeeping and registry jobs."""
    for daemon in daemons:
        asyncio.run(daemon.housekeep())
        asyncio.run(daemon.refresh_registry())


@pytest.fixture
def daemons() -> Iterator[list[Daemon]]:
    """In-process daemons a test made; their HTTP clients are closed at the end."""
    made: list[Daemon] = []
    yield made
    for daemon in made:
        asyncio.run(daemon.client.aclose())


def test_two_daemons_with_different_schedules_warn_once(
    engine: Engine,
    tmp_path: Path,
    clock: FixedClock,
    caplog: pytest.LogCaptureFixture,
    daemons: list[Daemon],
) -> None:
    caplog.set_level(logging.INFO)
    settings = make_settings(engine, tmp_path)
    other = settings.model_copy(update={"schedules_dir": other_schedules(tmp_path)})
    first = Daemon(settings, engine, clock, RunOptions(web=False))
    second = Daemon(other, engine, clock, RunOptions(web=False))
    daemons += [first, second]
    first.registration.register()
    assert registry_warnings(caplog) == []
    second.registration.register()  # the second sees the first as it starts
    for _ in range(5):
        clock.advance(timedelta(seconds=30))
        housekeep(first, second)

    ours, theirs = first.registration.config_digest, second.registration.config_digest
    assert ours != theirs
    told = registry_warnings(caplog)
    assert len(told) == 2, told
    by_second, by_first = told
    assert by_first.startswith(f"daemon {second.worker} on {second.registration.host} ")
    assert f"({theirs[:12]}; this daemon {ours[:12]})" in by_first
    assert WARNED in by_first
    assert "make the schedules/, channels/ and compliance rules" in by_first
    assert by_second.startswith(f"daemon {first.worker} on ")
    assert f"({ours[:12]}; this daemon {theirs[:12]})" in by_second

    # A third daemon with yet other files: told of once more, by each.
    caplog.clear()
    third_settings = other.model_copy(update={"reply_pause_days": 3})
    third = Daemon(third_settings, engine, clock, RunOptions(web=False))
    daemons.append(third)
    third.registration.register()
    for _ in range(3):
        clock.advance(timedelta(seconds=30))
        housekeep(first, second, third)
    told = registry_warnings(caplog)
    assert len(told) == 4, told  # the third of both others, each of them of the third
    assert sum(m.startswith(f"daemon {third.worker} ") for m in told) == 2


def test_daemons_with_the_same_files_say_nothing(
    engine: Engine,
    tmp_path: Path,
    clock: FixedClock,
    caplog: pytest.LogCaptureFixture,
    daemons: list[Daemon],
) -> None:
    caplog.set_level(logging.INFO)
    settings = make_settings(engine, tmp_path)
    # The same files in another folder, as on another machine.
    elsewhere = tmp_path / "elsewhere"
    shutil.copytree(REPO / "schedules", elsewhere / "schedules")
    shutil.copytree(REPO / "channels", elsewhere / "channels")
    copy = settings.model_copy(
        update={"schedules_dir": elsewhere / "schedules", "channels_dir": elsewhere / "channels"}
    )
    first = Daemon(settings, engine, clock, RunOptions(web=False))
    second = Daemon(copy, engine, clock, RunOptions(web=False))
    daemons += [first, second]
    first.registration.register()
    second.registration.register()
    for _ in range(3):
        clock.advance(timedelta(seconds=30))
        housekeep(first, second)
    assert set(registered(engine)) == {first.worker, second.worker}
    assert registry_warnings(caplog) == []


def test_another_version_is_told_of_once(
    engine: Engine,
    tmp_path: Path,
    clock: FixedClock,
    caplog: pytest.LogCaptureFixture,
    daemons: list[Daemon],
) -> None:
    caplog.set_level(logging.INFO)
    settings = make_settings(engine, tmp_path)
    first = Daemon(settings, engine, clock, RunOptions(web=False))
    upgraded = Daemon(settings, engine, clock, RunOptions(web=False))
    daemons += [first, upgraded]
    upgraded.registration.version = "99.0.0"
    first.registration.register()
    upgraded.registration.register()
    for _ in range(3):
        clock.advance(timedelta(seconds=30))
        housekeep(first, upgraded)
    told = registry_warnings(caplog)
    assert len(told) == 2, told
    assert f"daemon {upgraded.worker} on " in told[1]
    assert f"runs outreach 99.0.0 (this daemon {__version__})" in told[1]
    assert "another configuration" not in " ".join(told)


def test_run_once_registers_warns_and_leaves(
    engine: Engine,
    tmp_path: Path,
    clock: FixedClock,
    caplog: pytest.LogCaptureFixture,
    daemons: list[Daemon],
) -> None:
    caplog.set_level(logging.INFO)
    settings = make_settings(engine, tmp_path)
    elsewhere = registration(engine, clock, "host-b:2:bbbb", settings)
    elsewhere.config_digest = "f" * 64
    elsewhere.register()
    once = Daemon(settings, engine, clock, RunOptions(web=False))
    daemons.append(once)
    asyncio.run(once.run_once())
    [told] = registry_warnings(caplog)
    assert told.startswith(f"daemon host-b:2:bbbb on {elsewhere.host} ")
    assert set(registered(engine)) == {"host-b:2:bbbb"}


# --- real daemons --------------------------------------------------------------------------


def started(env: dict[str, str], tmp_path: Path, running: list[Running], what: str) -> Running:
    """An ``outreach run`` without the web app, once it says it runs."""
    daemon = Running(["run", "--no-web", "--start", START], env, tmp_path)
    running.append(daemon)
    wait_until(lambda: daemon.logged("outreach running as"), what)
    return daemon


def settings_of(env: dict[str, str]) -> Settings:
    """The settings an ``outreach`` process started with ``env`` reads (no .env there)."""
    keys = ("DATABASE_URL", "SCHEDULES_DIR", "TEMPLATES_DIR", "CHANNELS_DIR", "OUTBOX_PATH")
    return Settings(_env_file=None, **{key.lower(): env[key] for key in keys if key in env})


def test_outreach_run_is_registered_until_it_stops(
    engine: Engine, daemon_env: dict[str, str], tmp_path: Path, running: list[Running]
) -> None:
    daemon = started(daemon_env, tmp_path, running, "the daemon to start")
    [row] = registered(engine).values()
    assert f"outreach running as {row.worker}:" in daemon.log
    assert row.pid == daemon.process.pid
    assert row.config_digest == config_digest(settings_of(daemon_env))
    assert NOW <= row.started_at <= row.seen_at < NOW + timedelta(minutes=1)

    assert daemon.stop(signal.SIGTERM) == 0, daemon.log
    assert registered(engine) == {}
    assert "Traceback" not in daemon.log


@linux_only
def test_a_daemon_killed_and_restarted_with_new_files_does_not_warn_of_itself(
    engine: Engine, daemon_env: dict[str, str], tmp_path: Path, running: list[Running]
) -> None:
    killed = started(daemon_env, tmp_path, running, "the daemon to start")
    [killed_worker] = registered(engine)
    killed.process.send_signal(signal.SIGKILL)  # no clean stop: its row stays
    killed.process.wait(timeout=30)
    assert set(registered(engine)) == {killed_worker}

    new_env = {**daemon_env, "SCHEDULES_DIR": str(other_schedules(tmp_path))}
    restarted = started(new_env, tmp_path, running, "the restarted daemon")
    assert f"registry: {killed_worker} (pid {killed.process.pid} on " in restarted.log
    assert " WARNING " not in restarted.log, restarted.log
    [row] = registered(engine).values()
    assert row.pid == restarted.process.pid
    assert restarted.stop(signal.SIGTERM) == 0, restarted.log


@pytest.mark.postgres
@pytest.mark.parametrize("backend", ["postgresql"])
def test_a_daemon_with_other_schedules_is_told_of_at_its_start(
    engine: Engine, daemon_env: dict[str, str], tmp_path: Path, running: list[Running]
) -> None:
    first = started(daemon_env, tmp_path, running, "the first daemon to start")
    [first_worker] = registered(engine)
    other_env = {**daemon_env, "SCHEDULES_DIR": str(other_schedules(tmp_path))}
    second = started(other_env, tmp_path, running, "the second daemon to start")

    ours = config_digest(settings_of(other_env))[:12]
    theirs = config_digest(settings_of(daemon_env))[:12]
    [warning] = [line for line in second.log.splitlines() if " WARNING " in line]
    assert f"daemon {first_worker} on " in warning
    assert f"({theirs}; this daemon {ours})" in warning
    assert WARNED in warning
    assert len(registered(engine)) == 2

    for daemon in (first, second):
        assert daemon.stop(signal.SIGTERM) == 0, daemon.log
    assert registered(engine) == {}


# --- outreach daemons --------------------------------------------------------------------


def test_outreach_daemons_lists_them_and_marks_the_odd_one(
    engine: Engine, daemon_env: dict[str, str], tmp_path: Path
) -> None:
    daemon_env["COLUMNS"] = "320"
    empty = outreach("daemons", env=daemon_env, cwd=tmp_path)
    assert empty.returncode == 0, empty.stderr
    assert "No daemon is registered on this database." in empty.stdout

    local = config_digest(settings_of(daemon_env))
    rows = [
        ("host-a:11:aaaa", "machine-a", 11, local, __version__),
        ("host-b:22:bbbb", "machine-b", 22, local, __version__),
        ("host-c:33:cccc", "machine-c", 33, "e" * 64, "0.0.9"),
    ]
    with engine.begin() as connection:
        connection.execute(
            insert(daemon_instances),
            [
                {"worker": worker, "host": host, "pid": pid, "started_at": NOW,
                 "seen_at": NOW + timedelta(seconds=30), "config_digest": digest,
                 "version": version}
                for worker, host, pid, digest, version in rows
            ],
        )  # fmt: skip

    listed = outreach("daemons", env=daemon_env, cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    lines = {
        worker: next(line for line in listed.stdout.splitlines() if worker in line)
        for worker, *_ in rows
    }
    for worker, host, pid, digest, version in rows:
        line = lines[worker]
        assert all(part in line for part in (host, str(pid), digest[:12], version)), line
        assert "2026-11-02 15:00:00+00:00" in line and "2026-11-02 15:00:30+00:00" in line
    assert "differs" not in lines["host-a:11:aaaa"] + lines["host-b:22:bbbb"]
    odd = lines["host-c:33:cccc"]
    for note in (
        "config differs from this machine's",
        "config differs from most daemons'",
        "version differs from this machine's",
    ):
        assert note in odd, odd
    assert f"This machine's files: config {local[:12]}, outreach {__version__}." in listed.stdout
    assert f"The marked daemons differ: {WARNED}." in listed.stdout


def test_outreach_daemons_marks_every_one_when_there_is_no_majority(
    engine: Engine, daemon_env: dict[str, str], tmp_path: Path, clock: FixedClock
) -> None:
    daemon_env["COLUMNS"] = "320"
    settings = settings_of(daemon_env)
    one = registration(engine, clock, "host-a:11:aaaa", settings)
    two = registration(engine, clock, "host-b:22:bbbb", settings)
    two.config_digest = "e" * 64
    one.register()
    two.register()
    listed = outreach("daemons", env=daemon_env, cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    [line_one] = [line for line in listed.stdout.splitlines() if "host-a:11:aaaa" in line]
    [line_two] = [line for line in listed.stdout.splitlines() if "host-b:22:bbbb" in line]
    assert "configs differ, no majority" in line_one
    assert "config differs from this machine's" not in line_one
    assert "configs differ, no majority" in line_two
    assert "config differs from this machine's" in line_two


@linux_only
def test_outreach_daemons_marks_a_daemon_whose_process_ended(
    engine: Engine, daemon_env: dict[str, str], tmp_path: Path
) -> None:
    daemon_env["COLUMNS"] = "320"
    killed_pid, killed_start = ended_process()
    # Killed, and with other files: it is not counted among the daemons that plan.
    add_row(engine, "host-a:killed", killed_pid, pid_namespace(), killed_start)
    listed = outreach("daemons", env=daemon_env, cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    [line] = [line for line in listed.stdout.splitlines() if "host-a:killed" in line]
    assert "its process has ended (removed at a daemon's next refresh)" in line
    assert "differs" not in line
    assert "The marked daemons differ" not in listed.stdout
