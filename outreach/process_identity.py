"""Which process a process id names, beyond its number.

A pid alone repeats: after a restart a container's daemon is PID 1 again, and any pid is
reused once its process ends. On Linux a process is told apart by where its number is
meaningful (the boot and the pid namespace: two containers each have a PID 1) and by when
it started (clock ticks since boot, from ``/proc/PID/stat``). Elsewhere these are None and
nothing is concluded from a pid.
"""

from __future__ import annotations

import os
from pathlib import Path

PROC = Path("/proc")


def pid_namespace() -> str | None:
    """This process's boot and pid namespace: where its pids name the same processes."""
    try:
        boot = (PROC / "sys/kernel/random/boot_id").read_text(encoding="ascii").strip()
        namespace = os.readlink(PROC / "self/ns/pid")  # "pid:[4026531836]"
    except OSError:
        return None
    return f"{boot} {namespace}"[:128]


def process_start(pid: int) -> int | None:
    """When process ``pid`` started, in clock ticks since boot; None when no such process
    runs here (or this system does not say)."""
    try:
        stat = (PROC / str(pid) / "stat").read_bytes()
    except OSError:
        return None
    # The command name, in parentheses, may hold spaces and parentheses: read after the last.
    fields = stat[stat.rindex(b")") + 2 :].split()
    try:
        return int(fields[19])  # field 22 of proc(5); fields[0] is field 3, the state
    except (IndexError, ValueError):
        return None


def has_ended(pid: int, started: int) -> bool:
    """Whether the process that was ``pid``, started at ``started``, has ended: none runs
    with that number now, or the one that does started at another time (the number was
    given again). Only meaningful in this process's pid namespace."""
    return process_start(pid) != started
