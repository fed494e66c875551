"""``outreach daemons``: the daemons sharing the database, and whether they plan alike."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import typer
from rich.table import Table

from outreach import __version__
from outreach.cli.common import out, with_database
from outreach.config_digest import DIGEST_COVERS, SHORT, config_digest
from outreach.daemon_registry import (
    CONSEQUENCE,
    differences,
    process_ended,
    registered_daemons,
)
from outreach.process_identity import pid_namespace


def daemons(ctx: typer.Context) -> None:
    """List the daemons running on this database (host, process, start, last seen, version
    and a digest of the schedules/, channels/ and compliance rules each plans with), and
    mark those whose configuration or version differs from this machine's files or from
    most daemons': accounts are planned by whichever daemon claims them. Exits 0."""
    context = with_database(ctx)
    local_digest = config_digest(context.settings)
    with context.engine.connect() as connection:
        found = registered_daemons(connection)
    here = f"This machine's files: config {local_digest[:SHORT]}, outreach {__version__}."
    if not found:
        out.print("No daemon is registered on this database.", highlight=False)
        out.print(here, highlight=False)
        return
    ended = _ended_here(found)
    alive = [daemon for daemon in found if daemon.worker not in ended]
    notes = differences(alive, local_digest, __version__)
    notes.update((worker, [ENDED]) for worker in ended)
    table = Table("worker", "host", "pid", "started", "last seen", "config", "version", "notes")
    for daemon in found:
        marked = notes[daemon.worker]
        table.add_row(
            daemon.worker, daemon.host, str(daemon.pid), _when(daemon.started_at),
            _when(daemon.seen_at), daemon.config_digest[:SHORT], daemon.version,
            "; ".join(marked), style="yellow" if marked else None,
        )  # fmt: skip
    out.print(table)
    out.print(here, highlight=False)
    if any(notes[daemon.worker] for daemon in alive):
        out.print(
            f"The marked daemons differ: {CONSEQUENCE}. Make {DIGEST_COVERS} the same on every "
            "machine, and run the same version.",
            highlight=False,
        )
    out.print(
        "Times are on each daemon's clock. A daemon that did not stop cleanly is listed "
        "until another's housekeeping removes it: at its next refresh if they share a pid "
        "namespace (a machine, or a running container), else 10 minutes of real time (or ten "
        "housekeeping intervals, if longer) after it was last seen.",
        highlight=False,
    )


ENDED = "its process has ended (removed at a daemon's next refresh)"


def _ended_here(found: list[Any]) -> set[str]:
    """The workers whose process ran where this command runs and has ended."""
    namespace = pid_namespace()
    return {daemon.worker for daemon in found if process_ended(daemon, namespace)}


def _when(at: datetime) -> str:
    return at.isoformat(sep=" ", timespec="seconds")
