"""The registry of running daemons: who shares the database, and with what configuration.

Leases keep daemons sharing a PostgreSQL database from planning an account twice, but
each plans with its own machine's files (``outreach.config_digest``): two daemons with
different cadences would plan an account by whichever claims it, and different stop
conditions can make it go back and forth. So each daemon keeps a row in
``daemon_instance``: written at its start, seen again at each housekeeping interval (a
job of its own beside housekeeping), deleted at a clean stop. A row not seen for ten
housekeeping intervals (ten minutes at least) is a daemon that stopped otherwise, and any
daemon's refresh deletes it. Sooner on the same machine: a refresh deletes at once the row
of a daemon whose process has ended (killed, crashed), which a daemon restarted with new
files would otherwise take for another daemon planning with the old ones.

At each refresh a daemon compares itself with the other live daemons and logs a warning
when one plans with another configuration or runs another version: once per daemon and
difference, again when it changes. Nothing stops for it: a rolling deploy mixes
configurations for a minute.

Times are on each daemon's clock, as the rest of housekeeping's; a demo's runs faster,
and its rows are believed for as much more of its time.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections import Counter
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, delete, insert, select, update
from sqlalchemy.exc import SQLAlchemyError

from outreach import __version__
from outreach.clock import Clock, clock_time
from outreach.config import Settings
from outreach.config_digest import DIGEST_COVERS, SHORT, config_digest
from outreach.models import DaemonInstance
from outreach.process_identity import has_ended, pid_namespace, process_start
from outreach.store import delete_unheld, named_rows, table_of

log = logging.getLogger("outreach.daemon_registry")

daemon_instances = table_of(DaemonInstance)

# How long a row is believed without a refresh, in real time: at least this, and at least
# ten housekeeping intervals.
STALE_AFTER = timedelta(minutes=10)
INTERVALS_BEFORE_STALE = 10
CONSEQUENCE = "accounts are planned by whichever daemon claims them"


def stale_after(clock: Clock, housekeeping_every: float) -> timedelta:
    """How long, on ``clock``, a daemon refreshing every ``housekeeping_every`` real
    seconds may go unseen before it is taken for stopped."""
    real = max(STALE_AFTER, INTERVALS_BEFORE_STALE * timedelta(seconds=housekeeping_every))
    return clock_time(clock, real)


class Registration:
    """One daemon's row in the registry, and the differences it has already told of."""

    def __init__(
        self,
        engine: Engine,
        clock: Clock,
        worker: str,
        settings: Settings,
        housekeeping_every: float,
    ) -> None:
        self.engine = engine
        self.clock = clock
        self.worker = worker
        # Read when the daemon reads its files (it does not read them again until restarted).
        self.config_digest = config_digest(settings)
        self.version = __version__
        self.host = socket.gethostname()[:255]
        self.pid = os.getpid()
        self.pid_namespace = pid_namespace()
        self.process_start = process_start(self.pid) if self.pid_namespace else None
        self.stale_after = stale_after(clock, housekeeping_every)
        self.started_at: datetime | None = None
        self._inserted = False
        # A refresh and the stop's removal, each in a thread of its own, one at a time.
        self._stopped = False
        self._turn = threading.Lock()
        # The value each other daemon had at the last refresh, per (worker, what).
        self._seen: dict[tuple[str, str], str] = {}

    def register(self) -> None:
        """At the daemon's start: its row, and the differences with those already there."""
        self.started_at = self.clock.now()
        self.refresh()

    def refresh(self) -> None:
        """At each housekeeping interval: seen now; the stale rows deleted; the other live
        daemons compared with this one."""
        with self._turn:
            if not self._stopped:  # a tick ending after the stop does not bring the row back
                self._refresh()

    def _refresh(self) -> None:
        now = self.clock.now()
        with self.engine.begin() as connection:
            seen = connection.execute(
                update(daemon_instances)
                .where(daemon_instances.c.worker == self.worker)
                .values(seen_at=now)
            ).rowcount
            if not seen:
                if self._inserted:
                    # Not seen for so long (a suspended machine, a database away) that
                    # another daemon deleted its row.
                    log.info("registry: %s registered again", self.worker)
                self._insert(connection, now)
            removed = remove_stale(connection, now - self.stale_after)
            ended = remove_ended(connection, self.pid_namespace) if self.pid_namespace else []
            others = [d for d in live_daemons(connection, now - self.stale_after)
                      if d.worker != self.worker]  # fmt: skip
        for gone in removed:
            log.info(
                "registry: %s on %s not seen since %s, taken for stopped: removed",
                gone.worker, gone.host, gone.seen_at.isoformat(timespec="seconds"),
            )  # fmt: skip
        for gone in ended:
            log.info("registry: %s (pid %d on %s) has ended: removed",
                     gone.worker, gone.pid, gone.host)  # fmt: skip
        self._compare(others)

    def unregister(self) -> None:
        """At a clean stop. A failure is logged, not raised: the row goes anyway once stale."""
        with self._turn:
            self._stopped = True
            self._unregister()

    def _unregister(self) -> None:
        try:
            with self.engine.begin() as connection:
                connection.execute(
                    delete(daemon_instances).where(daemon_instances.c.worker == self.worker)
                )
        except SQLAlchemyError as exc:
            log.warning(
                "registry: %s could not be removed (%s); other daemons remove it once it "
                "is not seen for %s",
                self.worker, type(exc).__name__, self.stale_after,
            )  # fmt: skip

    def _insert(self, connection: Connection, now: datetime) -> None:
        connection.execute(
            insert(daemon_instances).values(
                worker=self.worker,
                host=self.host,
                pid=self.pid,
                started_at=self.started_at or now,
                seen_at=now,
                config_digest=self.config_digest,
                version=self.version,
                pid_namespace=self.pid_namespace,
                process_start=self.process_start,
            )
        )
        self._inserted = True

    def _compare(self, others: Sequence[Any]) -> None:
        """A warning for each difference not told of yet, or changed since; a note when a
        daemon told of is the same again."""
        seen: dict[tuple[str, str], str] = {}
        for other in others:
            for what, theirs, ours in (
                ("config", other.config_digest, self.config_digest),
                ("version", other.version, self.version),
            ):
                before = self._seen.get((other.worker, what))
                seen[other.worker, what] = theirs
                if theirs != ours and theirs != before:
                    self._warn(other, what, theirs)
                elif theirs == ours and before is not None and before != ours:
                    log.info("registry: %s on %s has the same %s as this daemon again",
                             other.worker, other.host, what)  # fmt: skip
        self._seen = seen

    def _warn(self, other: Any, what: str, theirs: str) -> None:
        if what == "config":
            log.warning(
                "daemon %s on %s plans with another configuration (%s; this daemon %s): "
                "%s: make %s the same on every machine",
                other.worker, other.host, theirs[:SHORT],
                self.config_digest[:SHORT], CONSEQUENCE, DIGEST_COVERS,
            )  # fmt: skip
        else:
            log.warning(
                "daemon %s on %s runs outreach %s (this daemon %s): %s, with its version's "
                "code: run the same version on every machine",
                other.worker, other.host, theirs, self.version, CONSEQUENCE,
            )  # fmt: skip


def remove_stale(connection: Connection, before: datetime) -> list[Any]:
    """Delete the daemons not seen since ``before``; the rows deleted.

    On PostgreSQL a row its daemon is refreshing at this moment is locked: it is skipped
    (that daemon is alive), and two daemons removing the same rows never wait for each
    other, so neither waits in a cycle with a refresh."""
    columns = (
        daemon_instances.c.id,
        daemon_instances.c.worker,
        daemon_instances.c.host,
        daemon_instances.c.seen_at,
    )
    stale = select(daemon_instances.c.id).where(daemon_instances.c.seen_at < before)
    return delete_unheld(connection, daemon_instances, stale, returning=columns)


def remove_ended(connection: Connection, namespace: str) -> list[Any]:
    """Delete the daemons of pid namespace ``namespace`` (this machine's, or this
    container's) whose process has ended; the rows deleted. Rows locked by another
    transaction are skipped, as in ``remove_stale``."""
    columns = (
        daemon_instances.c.id,
        daemon_instances.c.worker,
        daemon_instances.c.host,
        daemon_instances.c.pid,
        daemon_instances.c.pid_namespace,
        daemon_instances.c.process_start,
    )
    here = named_rows(
        connection.execute(select(*columns).where(daemon_instances.c.pid_namespace == namespace))
    )
    ended = [row.id for row in here if process_ended(row, namespace)]
    if not ended:
        return []
    gone = select(daemon_instances.c.id).where(daemon_instances.c.id.in_(ended))
    return delete_unheld(connection, daemon_instances, gone, returning=columns)


def process_ended(row: Any, namespace: str | None) -> bool:
    """Whether the daemon of registry ``row`` ran in pid namespace ``namespace`` (this
    process's, ``process_identity.pid_namespace``) and its process has ended."""
    return (
        namespace is not None
        and row.pid_namespace == namespace
        and row.process_start is not None
        and has_ended(row.pid, row.process_start)
    )


def live_daemons(connection: Connection, since: datetime) -> list[Any]:
    """The daemons seen since ``since``, this one too."""
    return named_rows(
        connection.execute(
            select(daemon_instances)
            .where(daemon_instances.c.seen_at >= since)
            .order_by(daemon_instances.c.worker)
        )
    )


def registered_daemons(connection: Connection) -> list[Any]:
    """Every row of the registry, the oldest daemon first."""
    return named_rows(
        connection.execute(
            select(daemon_instances).order_by(
                daemon_instances.c.started_at, daemon_instances.c.worker
            )
        )
    )


def differences(
    daemons: Sequence[Any], local_digest: str, local_version: str
) -> dict[str, list[str]]:
    """What stands out about each daemon, by worker: a configuration or a version other
    than this machine's, or than most daemons' (or no majority at all)."""
    found: dict[str, list[str]] = {daemon.worker: [] for daemon in daemons}
    for what, local, attribute in (
        ("config", local_digest, "config_digest"),
        ("version", local_version, "version"),
    ):
        values = {daemon.worker: getattr(daemon, attribute) for daemon in daemons}
        majority, split = _majority(list(values.values()))
        for worker, value in values.items():
            if value != local:
                found[worker].append(f"{what} differs from this machine's")
            if split:
                found[worker].append(f"{what}s differ, no majority")
            elif value != majority:
                found[worker].append(f"{what} differs from most daemons'")
    return found


def _majority(values: list[str]) -> tuple[str | None, bool]:
    """The most common value, and whether several tie for it."""
    ranked = Counter(values).most_common(2)
    if not ranked:
        return None, False
    if len(ranked) == 2 and ranked[0][1] == ranked[1][1]:
        return None, True
    return ranked[0][0], False
