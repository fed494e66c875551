"""``outreach run`` as an operator runs it: real processes, a real database, the outbox.

The daemon runs on a development clock started at ``NOW`` (``--start``, Monday
2026-11-02 15:00 UTC, 10:00 in Boston), where the accounts imported by the tests are due
(see tests/test_planner.py for which step each one is due).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import IO, Any

import httpx
import pytest
import yaml
from sqlalchemy import Engine, bindparam, select, update

from outreach import store
from outreach.clock import FixedClock
from outreach.compliance_store import attempts
from outreach.daemon import Daemon, RunOptions
from outreach.daemon_registry import daemon_instances
from outreach.dispatcher import SEND_LEASE
from outreach.importing.account_rows import ImportDefaults
from tests.conftest import NOW, REPO
from tests.test_cli import outreach
from tests.test_dispatcher import HangingProvider
from tests.test_import_accounts import row
from tests.test_planner import (
    import_accounts,
    make_settings,
    publish_old_footer,
    publish_templates,
    rows_of,
    set_account,
)

START = NOW.isoformat()  # 2026-11-02T15:00:00+00:00
DEADLINE = 60.0  # seconds a process is given to do what is awaited


def outbox_keys(env: dict[str, str]) -> Counter[str]:
    """How many times each message was written to the outbox (read once the writers ended)."""
    path = Path(env["OUTBOX_PATH"])
    if not path.exists():
        return Counter()
    lines = path.read_text(encoding="utf-8").splitlines()
    return Counter(json.loads(line)["idempotency_key"] for line in lines)


def outbox_count(env: dict[str, str]) -> int:
    """Complete lines in the outbox, safe to read while a daemon writes to it."""
    path = Path(env["OUTBOX_PATH"])
    return path.read_bytes().count(b"\n") if path.exists() else 0


def wait_until(condition: Callable[[], bool], what: str, timeout: float = DEADLINE) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up after {timeout:g}s waiting for {what}")
        time.sleep(0.05)


class Running:
    """A daemon process whose log lines are collected as they come."""

    def __init__(self, args: list[str], env: dict[str, str], cwd: Path) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "outreach", *args],
            env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        self.lines: list[str] = []
        self.readers = [
            threading.Thread(target=self._read, args=(stream,), daemon=True)
            for stream in (self.process.stdout, self.process.stderr)
        ]
        for reader in self.readers:
            reader.start()

    def _read(self, stream: IO[str] | None) -> None:
        assert stream is not None
        for line in stream:
            self.lines.append(line)

    @property
    def log(self) -> str:
        return "".join(self.lines)

    def logged(self, text: str) -> bool:
        if self.process.poll() is not None and text not in self.log:
            raise AssertionError(f"the daemon exited ({self.process.returncode}):\n{self.log}")
        return text in self.log

    def stop(self, signum: signal.Signals) -> int:
        self.process.send_signal(signum)
        code = self.process.wait(timeout=DEADLINE)
        for reader in self.readers:
            reader.join(timeout=DEADLINE)
        return code

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=DEADLINE)


@pytest.fixture
def running() -> Iterator[list[Running]]:
    """Daemons started by a test; any still running when it ends are killed."""
    started: list[Running] = []
    yield started
    for daemon in started:
        daemon.kill()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def statuses(engine: Engine) -> Counter[str]:
    return Counter(a.status for a in rows_of(engine, attempts))


@pytest.mark.parametrize("backend", ["sqlite"])
def test_run_once_plans_sends_and_exits_0(
    engine: Engine,
    daemon_env: dict[str, str],
    tmp_path: Path,
    defaults: ImportDefaults,
    clock: FixedClock,
) -> None:
    initialized = outreach("init", env=daemon_env, cwd=tmp_path)
    assert initialized.returncode == 0, initialized.stderr
    assert "Published" in initialized.stdout
    ids = import_accounts(engine, tmp_path, defaults, clock, [
        row("A-1"), row("A-2", due_date="2026-10-30"), row("A-3", sms_consent="false"),
    ])  # fmt: skip

    result = outreach("run", "--once", "--start", START, env=daemon_env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "plan: claimed 3, queued 3" in result.stdout
    assert "dispatch: claimed 3, sent 3" in result.stdout
    assert outbox_keys(daemon_env) == {
        f"{ids['A-1']}:overdue-10d:sms": 1,
        f"{ids['A-2']}:overdue-3d:email": 1,
        f"{ids['A-3']}:overdue-10d:email": 1,  # no consent to text: the fallback
    }
    assert statuses(engine) == {"sent": 3}

    again = outreach("run", "--once", "--start", START, env=daemon_env, cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert "plan: claimed 0" in again.stdout
    assert "dispatch: claimed 0" in again.stdout
    assert sum(outbox_keys(daemon_env).values()) == 3


@pytest.mark.parametrize("backend", ["sqlite"])
@pytest.mark.parametrize(("signum", "web"), [(signal.SIGTERM, True), (signal.SIGINT, False)])
def test_a_signal_stops_the_daemon_cleanly(
    engine: Engine,
    daemon_env: dict[str, str],
    tmp_path: Path,
    defaults: ImportDefaults,
    clock: FixedClock,
    running: list[Running],
    signum: signal.Signals,
    web: bool,
) -> None:
    publish_templates(engine, clock)
    # Five texts from one sender, which sends one a second: most wait for their slot.
    count = 5
    import_accounts(engine, tmp_path, defaults, clock,
                    [row(f"A-{i}", phone=f"+1617555010{i}") for i in range(count)])  # fmt: skip
    port = free_port()
    args = ["run", "--start", START, "--plan-every", "0.5", "--dispatch-every", "0.5"]
    args += ["--port", str(port)] if web else ["--no-web"]
    daemon = Running(args, daemon_env, tmp_path)
    running.append(daemon)

    wait_until(lambda: daemon.logged("outreach running as"), "the daemon to start")
    if web:
        health: dict[str, Any] = {}

        def healthy() -> bool:
            daemon.logged("outreach running as")  # fails at once if the daemon died
            try:
                response = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
            except httpx.TransportError:
                return False
            health.update(response.json(), code=response.status_code)
            return True

        wait_until(healthy, "GET /healthz")
        assert (health["code"], health["status"], health["database"]) == (200, "ok", "ok")
    wait_until(lambda: outbox_count(daemon_env) >= 1, "a first text")

    assert daemon.stop(signum) == 0, daemon.log
    assert f"stopping on {signum.name}: no new work is claimed" in daemon.log
    assert "outreach stopped" in daemon.log
    assert "Traceback" not in daemon.log
    sent = outbox_keys(daemon_env)
    assert set(sent.values()) == {1}
    found = rows_of(engine, attempts)
    assert len(found) == count
    # Nothing is left in flight: each text went out once, or waits in the queue.
    assert {a.status for a in found} <= {"sent", "queued"}
    assert {a.idempotency_key for a in found if a.status == "sent"} == set(sent)
    assert all(a.acquired_by is None for a in found)
    # What never left was not a try.
    assert all(a.tries == (1 if a.status == "sent" else 0) for a in found)


@pytest.mark.parametrize("backend", ["sqlite"])
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_stops_run_once_cleanly(
    engine: Engine,
    daemon_env: dict[str, str],
    tmp_path: Path,
    defaults: ImportDefaults,
    clock: FixedClock,
    running: list[Running],
    signum: signal.Signals,
) -> None:
    # ``run --once`` from cron or a script, stopped by a service manager, ``timeout`` or
    # Ctrl-C while its texts wait for their sender's slot (one a second).
    publish_templates(engine, clock)
    count = 5
    import_accounts(engine, tmp_path, defaults, clock,
                    [row(f"A-{i}", phone=f"+1617555010{i}") for i in range(count)])  # fmt: skip
    once = Running(["run", "--once", "--start", START], daemon_env, tmp_path)
    running.append(once)
    wait_until(lambda: outbox_count(daemon_env) >= 1, "a first text")

    assert once.stop(signum) == 0, once.log
    assert f"stopping on {signum.name}: no new work is claimed" in once.log
    assert "Traceback" not in once.log
    assert re.search(r"dispatch: claimed 5, sent \d.*, requeued \d", once.log), once.log
    sent = outbox_keys(daemon_env)
    assert set(sent.values()) == {1}
    found = rows_of(engine, attempts)
    assert len(found) == count
    assert {a.status for a in found} == {"sent", "queued"}
    assert {a.idempotency_key for a in found if a.status == "sent"} == set(sent)
    assert all(a.acquired_by is None for a in found)
    assert all(a.tries == (1 if a.status == "sent" else 0) for a in found)


@pytest.mark.parametrize("backend", ["sqlite"])
def test_run_once_stopped_gives_up_on_a_send_with_no_answer_after_the_timeout(
    engine: Engine, tmp_path: Path, defaults: ImportDefaults, clock: FixedClock
) -> None:
    publish_templates(engine, clock)
    import_accounts(engine, tmp_path, defaults, clock, [row("A-1")])
    settings = make_settings(engine, tmp_path)
    daemon = Daemon(settings, engine, clock, RunOptions(web=False, stop_timeout=0.2))
    hanging = HangingProvider("sms")
    daemon.dispatcher.providers = {**daemon.providers, "sms": hanging}

    async def stop_while_sending() -> tuple[Any, Any]:
        once = asyncio.create_task(daemon.run_once())
        await hanging.started.wait()
        daemon.request_stop(signal.SIGTERM)
        return await asyncio.wait_for(once, DEADLINE)

    planned, sent = asyncio.run(stop_while_sending())
    assert (planned.claimed, sent.claimed) == (1, 0)
    # The request left and no answer came: the next housekeeping holds it for review.
    [left] = rows_of(engine, attempts)
    assert (left.status, left.acquired_by) == ("sending", daemon.worker)


@pytest.mark.parametrize("backend", ["sqlite"])
def test_a_restarted_daemon_holds_for_review_what_its_previous_run_lost(
    engine: Engine, tmp_path: Path, defaults: ImportDefaults, clock: FixedClock
) -> None:
    publish_templates(engine, clock)
    import_accounts(engine, tmp_path, defaults, clock, [row("A-1")])
    settings = make_settings(engine, tmp_path)
    first = Daemon(settings, engine, clock, RunOptions(web=False))
    assert dict(first.planner.tick().outcomes) == {"queued": 1}
    hanging = HangingProvider("sms")
    first.dispatcher.providers = {**first.providers, "sms": hanging}

    async def die_while_sending() -> None:
        tick = asyncio.create_task(first.dispatcher.tick())
        await hanging.started.wait()
        tick.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await tick
        await first.client.aclose()

    asyncio.run(die_while_sending())
    [lost] = rows_of(engine, attempts)
    assert (lost.status, lost.acquired_by) == ("sending", first.worker)

    # The service comes back on the same host with the same process id, as a container's
    # daemon (PID 1, the container's hostname) does after a restart.
    clock.advance(SEND_LEASE + timedelta(seconds=1))
    restarted = Daemon(settings, engine, clock, RunOptions(web=False))
    planned, sent = asyncio.run(restarted.run_once())
    assert (planned.claimed, sent.claimed) == (0, 0)
    [held] = rows_of(engine, attempts)
    assert (held.status, held.acquired_by) == ("unknown", None)
    assert not settings.outbox_path.exists()


def fast_channels(tmp_path: Path) -> Path:
    """channels/ with limits that never hold a send back: the test is about claiming."""
    folder = tmp_path / "channels"
    folder.mkdir()
    for source in (REPO / "channels").glob("*.yaml"):
        data = yaml.safe_load(source.read_text(encoding="utf-8"))
        data["rate_limits"] = {"default": {"per_second": 10_000, "burst": 10_000}}
        (folder / source.name).write_text(yaml.safe_dump(data), encoding="utf-8")
    return folder


def tick_totals(log: str, stage: str) -> Counter[str]:
    """The counts of every ``plan: claimed 12, queued 12`` line a daemon logged, summed."""
    totals: Counter[str] = Counter()
    for line in log.splitlines():
        match = re.search(rf" outreach\.\w+: {stage}: (claimed .+)$", line)
        if match:
            for part in match.group(1).split(", "):
                name, value = part.rsplit(" ", 1)
                totals[name] += int(value)
    return totals


@pytest.mark.postgres
@pytest.mark.parametrize("backend", ["postgresql"])
def test_two_daemons_on_one_postgresql_send_each_step_once(
    engine: Engine,
    daemon_env: dict[str, str],
    tmp_path: Path,
    defaults: ImportDefaults,
    clock: FixedClock,
    running: list[Running],
) -> None:
    publish_templates(engine, clock)
    count = 200
    # Half are due a text (overdue-10d), half an email (overdue-3d); every number differs.
    rows = [
        row(f"R-{i:03d}", phone=f"+1{617 if i < 100 else 508}5550{100 + i % 100}",
            due_date="2026-10-15" if i % 2 else "2026-10-30")
        for i in range(count)
    ]  # fmt: skip
    ids = import_accounts(engine, tmp_path, defaults, clock, rows)
    # They fall due one by one over four seconds, so that both daemons' ticks keep finding
    # work at the same time.
    with engine.begin() as connection:
        connection.execute(
            update(store.accounts)
            .where(store.accounts.c.id == bindparam("account_id"))
            .values(next_contact_at=bindparam("due_at")),
            [
                {"account_id": account_id, "due_at": NOW + timedelta(milliseconds=20 * n)}
                for n, account_id in enumerate(sorted(ids.values()))
            ],
        )
    daemon_env["CHANNELS_DIR"] = str(fast_channels(tmp_path))
    # Each daemon's development clock starts with its process, and its ticks fall on the
    # same instants of that clock: different intervals let the later one find work too.
    daemons = [
        Running(["run", "--no-web", "--start", START, "--plan-every", plan_every,
                 "--dispatch-every", dispatch_every], daemon_env, tmp_path)
        for plan_every, dispatch_every in (("0.3", "0.2"), ("0.7", "0.5"))
    ]  # fmt: skip
    running.extend(daemons)

    def all_sent() -> bool:
        for daemon in daemons:
            daemon.logged("outreach running as")  # fails at once if a daemon died
        return statuses(engine) == {"sent": count}

    wait_until(all_sent, f"{count} attempts sent", timeout=180)
    for daemon in daemons:
        assert daemon.stop(signal.SIGTERM) == 0, daemon.log

    plans = sum((tick_totals(d.log, "plan") for d in daemons), Counter())
    sends = sum((tick_totals(d.log, "dispatch") for d in daemons), Counter())
    assert (plans["claimed"], plans["queued"]) == (count, count)
    assert (sends["claimed"], sends["sent"]) == (count, count)
    found = rows_of(engine, attempts)
    assert len(found) == count
    assert len({(a.account_id, a.step_key) for a in found}) == count
    assert Counter(a.channel for a in found) == {"sms": count // 2, "email": count // 2}
    sent = outbox_keys(daemon_env)
    assert len(sent) == count
    assert set(sent.values()) == {1}
    assert set(sent) == {a.idempotency_key for a in found}
    with engine.connect() as connection:
        for table in (attempts, store.accounts):
            held = connection.execute(select(table.c.id).where(table.c.acquired_by.is_not(None)))
            assert held.all() == []


@pytest.mark.parametrize("backend", ["sqlite"])
@pytest.mark.parametrize("command", ["run", "web"])
def test_a_port_in_use_stops_the_command_at_once_with_a_clear_error(
    engine: Engine, daemon_env: dict[str, str], tmp_path: Path, command: str
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-m", "outreach", command, "--port", str(port)],
            env=daemon_env, cwd=tmp_path, capture_output=True, text=True, timeout=DEADLINE,
        )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert f"cannot listen on 127.0.0.1:{port}" in done.stderr
    # Only the daemon has a --no-web to offer.
    assert ("--no-web" in done.stderr) == (command == "run")
    assert "Traceback" not in done.stderr
    assert "outreach running as" not in done.stderr  # it never claimed to be running
    assert rows_of(engine, daemon_instances) == []
    wrong = subprocess.run(
        [sys.executable, "-m", "outreach", command, "--port", "70000"],
        env=daemon_env, cwd=tmp_path, capture_output=True, text=True, timeout=DEADLINE,
    )  # fmt: skip
    assert wrong.returncode == 2 and "less than or equal to 65535" in wrong.stderr


@pytest.mark.parametrize("backend", ["sqlite"])
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_the_web_app_alone_stops_on_a_signal_and_exits_0(
    engine: Engine,
    daemon_env: dict[str, str],
    tmp_path: Path,
    running: list[Running],
    signum: signal.Signals,
) -> None:
    port = free_port()
    web = Running(["web", "--port", str(port)], daemon_env, tmp_path)
    running.append(web)

    def healthy() -> bool:
        web.logged("")  # fails at once if it died
        try:
            return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    wait_until(healthy, "GET /healthz")
    assert web.stop(signum) == 0, web.log
    assert "Traceback" not in web.log


@pytest.mark.parametrize("backend", ["sqlite"])
@pytest.mark.parametrize(
    ("command", "level", "requests_logged"), [("web", "WARNING", False), ("run", "DEBUG", True)]
)
def test_the_web_app_logs_at_log_level_and_warns_of_a_public_url_on_another_port(
    engine: Engine,
    daemon_env: dict[str, str],
    tmp_path: Path,
    running: list[Running],
    command: str,
    level: str,
    requests_logged: bool,
) -> None:
    port = free_port()  # not 8000, the port of PUBLIC_BASE_URL's default
    env = daemon_env | {"LOG_LEVEL": level}
    env.pop("PUBLIC_BASE_URL", None)
    args = [command, "--port", str(port)] + (["--start", START] if command == "run" else [])
    web = Running(args, env, tmp_path)
    running.append(web)

    def healthy() -> bool:
        web.logged("")  # fails at once if it died
        try:
            return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    wait_until(healthy, "GET /healthz")
    assert web.stop(signal.SIGTERM) == 0, web.log
    assert ('"GET /healthz HTTP/1.1" 200' in web.log) == requests_logged, web.log
    assert (
        f"PUBLIC_BASE_URL is http://127.0.0.1:8000 but the web app listens on port {port}: "
        "the unsubscribe links and webhook addresses in messages point at port 8000. "
        f"Set PUBLIC_BASE_URL=http://127.0.0.1:{port}"
    ) in web.log


@pytest.mark.parametrize("backend", ["sqlite"])
def test_the_proxies_to_trust_are_read_from_the_env_file_too(
    engine: Engine, daemon_env: dict[str, str], tmp_path: Path, running: list[Running]
) -> None:
    """FORWARDED_ALLOW_IPS in ``.env``, like every setting: a client's X-Forwarded-For is
    taken only from the proxy named there, and this request comes from another."""
    port = free_port()
    (tmp_path / ".env").write_text("FORWARDED_ALLOW_IPS=10.9.9.9\n")
    env = {k: v for k, v in daemon_env.items() if k != "FORWARDED_ALLOW_IPS"}
    web = Running(["web", "--port", str(port)], env, tmp_path)
    running.append(web)

    def answered() -> bool:
        web.logged("")  # fails at once if it died
        try:
            forged = {"X-Forwarded-For": "203.0.113.7"}
            url = f"http://127.0.0.1:{port}/healthz"
            return httpx.get(url, headers=forged, timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    wait_until(answered, "GET /healthz")
    wait_until(lambda: web.logged("/healthz"), "the access log's line")
    assert "127.0.0.1:" in web.log and "203.0.113.7" not in web.log
    assert web.stop(signal.SIGTERM) == 0, web.log


def edited_schedules(tmp_path: Path, name: str, edit: Callable[[str], str]) -> Path:
    """A copy of schedules/ with ``edit`` applied to the text of ``name``."""
    folder = tmp_path / "schedules"
    shutil.copytree(REPO / "schedules", folder)
    path = folder / name
    path.write_text(edit(path.read_text(encoding="utf-8")), encoding="utf-8")
    return folder


OVERDUE_10D = (
    "  - key: overdue-10d\n    anchor: due_date+10d\n    channel: sms\n"
    "    template: overdue\n    tone: firm\n"
)


def test_a_step_added_to_a_cadence_reaches_the_accounts_it_had_finished_with_once(
    engine: Engine, tmp_path: Path, defaults: ImportDefaults, clock: FixedClock
) -> None:
    """pre-due's steps have all expired 18 days after the due date: the account finishes,
    with no hand-off. A step added to pre-due is planned for it once the daemon restarts
    with the file; an account handed off to the agents, and another cadence's, are not
    looked at again."""
    publish_templates(engine, clock)
    ids = import_accounts(engine, tmp_path, defaults, clock, [
        row("FINISHED", cadence="pre-due"), row("OTHER", cadence="standard"),
        row("HANDED", cadence="pre-due", phone="(617) 555-0102"),
    ])  # fmt: skip
    settings = make_settings(engine, tmp_path)
    first = Daemon(settings, engine, clock, RunOptions(web=False))
    planned, _ = asyncio.run(first.run_once())
    assert dict(planned.outcomes) == {"finished": 2, "queued": 1}
    with engine.begin() as connection:  # as if its cadence had handed it to the agents
        connection.execute(
            update(store.accounts)
            .where(store.accounts.c.id == ids["HANDED"])
            .values(handoff="seen", next_contact_at=None)
        )
        connection.execute(  # OTHER is done with its cadence too
            update(store.accounts)
            .where(store.accounts.c.id == ids["OTHER"])
            .values(next_contact_at=None)
        )
    clock.advance(timedelta(hours=1))
    schedules = edited_schedules(tmp_path, "pre-due.yaml", lambda text: text + OVERDUE_10D)
    edited = settings.model_copy(update={"schedules_dir": schedules})
    planned, _ = asyncio.run(Daemon(edited, engine, clock, RunOptions(web=False)).run_once())
    assert (planned.claimed, dict(planned.outcomes)) == (1, {"queued": 1})
    sent = [(a.account_id, a.step_key) for a in rows_of(engine, attempts)]
    assert sent[1:] == [(ids["FINISHED"], "overdue-10d")]
    # Once: finished again, the account is not looked at by the next start with the same files.
    clock.advance(timedelta(days=2))
    restarted = Daemon(edited, engine, clock, RunOptions(web=False))
    assert dict(restarted.planner.tick().outcomes) == {"finished": 1}
    restarted.check_cadences()
    assert restarted.planner.tick().claimed == 0


def test_a_daemon_not_yet_restarted_does_not_finish_the_accounts_a_changed_cadence_reopened(
    engine: Engine, tmp_path: Path, defaults: ImportDefaults, clock: FixedClock
) -> None:
    """A rolling restart: the first daemon back with a step added to pre-due makes the
    accounts pre-due had finished with due; one still running the old file claims them
    first. It does not finish them again (the restarted daemons, finding the cadence as
    recorded, would never look at them again): they wait a day, for a daemon with the new
    file, which sends the step and then finishes them."""
    publish_templates(engine, clock)
    ids = import_accounts(engine, tmp_path, defaults, clock, [row("FINISHED", cadence="pre-due")])
    settings = make_settings(engine, tmp_path)
    old = Daemon(settings, engine, clock, RunOptions(web=False))
    old.check_cadences()
    assert dict(old.planner.tick().outcomes) == {"finished": 1}
    clock.advance(timedelta(hours=1))
    schedules = edited_schedules(tmp_path, "pre-due.yaml", lambda text: text + OVERDUE_10D)
    edited = settings.model_copy(update={"schedules_dir": schedules})
    Daemon(edited, engine, clock, RunOptions(web=False)).check_cadences()
    assert dict(old.planner.tick().outcomes) == {"cadence_changed": 1}
    assert rows_of(engine, attempts) == []
    second = Daemon(edited, engine, clock, RunOptions(web=False))
    second.check_cadences()
    assert second.planner.tick().claimed == 0
    clock.advance(timedelta(days=1))
    assert dict(second.planner.tick().outcomes) == {"queued": 1}
    assert [a.step_key for a in rows_of(engine, attempts)] == ["overdue-10d"]
    clock.advance(timedelta(days=2))
    assert dict(second.planner.tick().outcomes) == {"finished": 1}
    [finished] = rows_of(engine, store.accounts, store.accounts.c.id == ids["FINISHED"])
    assert finished.next_contact_at is None


def test_a_daemon_starting_warns_of_steps_recorded_that_the_files_do_not_name(
    engine: Engine,
    tmp_path: Path,
    defaults: ImportDefaults,
    clock: FixedClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A step renamed in its file would be sent again to every account that had it."""
    publish_templates(engine, clock)
    import_accounts(engine, tmp_path, defaults, clock, [
        row("A-1"), row("A-2", phone="(617) 555-0102"),
    ])  # fmt: skip
    settings = make_settings(engine, tmp_path)
    first = Daemon(settings, engine, clock, RunOptions(web=False))
    first.check_cadences()  # the cadences as they were, remembered
    assert dict(first.planner.tick().outcomes) == {"queued": 2}  # overdue-10d
    schedules = edited_schedules(
        tmp_path, "standard.yaml", lambda text: text.replace("key: overdue-10d", "key: ten-days")
    )
    edited = settings.model_copy(update={"schedules_dir": schedules})
    with caplog.at_level("WARNING", logger="outreach.daemon"):
        Daemon(edited, engine, clock, RunOptions(web=False)).check_cadences()
    [warning] = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert warning.startswith(
        f"cadence standard: steps recorded for its active accounts are not in {schedules}: "
        "overdue-10d (2 accounts). A step is known by its key"
    )


def test_a_daemon_starting_with_an_old_sms_footer_says_so_once(
    engine: Engine,
    tmp_path: Path,
    clock: FixedClock,
    defaults: ImportDefaults,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """After an upgrade, until the footer is published again, a debt collector's first
    texts wait: the daemon's start says so once, naming the footer and the commands that
    publish it alone (agents' answers are refused in the inbox, not held: not named)."""
    publish_templates(engine, clock)
    publish_old_footer(engine)
    ids = import_accounts(engine, tmp_path, defaults, clock, [row("C-1")])
    set_account(engine, ids["C-1"], collector_type="third_party")
    daemon = Daemon(make_settings(engine, tmp_path), engine, clock, RunOptions(web=False))
    with caplog.at_level("WARNING", logger="outreach.daemon"):
        asyncio.run(daemon._register())
    [warning] = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert warning == (
        "templates: the published SMS footer (_partials/sms_footer.j2) gives a debt "
        "collector's first text only the short disclosure: first texts from "
        "sms/due.friendly.j2, sms/final-notice.final.j2, "
        "sms/overdue.firm.es.j2, sms/overdue.firm.j2, sms/overdue.friendly.j2, "
        "sms/reminder.friendly.es.j2, sms/reminder.friendly.j2 wait until it is published "
        "again: run `outreach templates sync` and then `outreach templates publish "
        "_partials/sms_footer.j2` (`sync --publish` would also publish every other changed "
        "template file)"
    )


def test_a_creditor_collecting_its_own_accounts_is_not_told_of_the_old_footer(
    engine: Engine,
    tmp_path: Path,
    clock: FixedClock,
    defaults: ImportDefaults,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # A creditor's own first texts carry no debt collector's disclosure: nothing waits.
    publish_templates(engine, clock)
    publish_old_footer(engine)
    import_accounts(engine, tmp_path, defaults, clock, [row("C-1")])
    daemon = Daemon(make_settings(engine, tmp_path), engine, clock, RunOptions(web=False))
    with caplog.at_level("WARNING", logger="outreach.daemon"):
        daemon.check_first_texts()
    assert [r.getMessage() for r in caplog.records if r.levelname == "WARNING"] == []


def test_a_daemon_starting_with_the_footer_published_says_nothing_of_it(
    engine: Engine, tmp_path: Path, clock: FixedClock, caplog: pytest.LogCaptureFixture
) -> None:
    """The shipped footer gives first texts the whole disclosure: no warning (a guard
    against warning of a footer already published again)."""
    publish_templates(engine, clock)
    daemon = Daemon(make_settings(engine, tmp_path), engine, clock, RunOptions(web=False))
    with caplog.at_level("WARNING", logger="outreach.daemon"):
        daemon.check_first_texts()
    assert [r.getMessage() for r in caplog.records if r.levelname == "WARNING"] == []
