"""Which process a process id names, beyond its number.

A pid alone repeats: any pid is given again once its process ends. On Linux a process is
told apart by where its number is meaningful (the boot and the pid namespace: two
containers each have a PID 1; and the time namespace, whose offset shifts the start times
read) and by when it started (clock ticks since boot, from ``/proc/PID/stat``). Where
``/proc`` does not show this process's own namespace (a sandbox that kept the host's),
or on another system, there is no namespace and nothing is concluded from a pid.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

PROC = Path("/proc")
# States of a process that has ended and not been waited for yet: a zombie, or dead.
_ENDED_STATES = frozenset({b"Z", b"X"})


def pid_namespace() -> str | None:
    """Where this process's pids name the same processes, as ``/proc`` shows them: its
    boot, pid namespace and time namespace. None where ``/proc`` is another namespace's
    or cannot be read."""
    try:
        if os.readlink(PROC / "self") != str(os.getpid()):
            return None  # /proc was mounted for another pid namespace
        boot = (PROC / "sys/kernel/random/boot_id").read_text(encoding="ascii").strip()
        spaces = [os.readlink(PROC / "self/ns/pid")]  # "pid:[4026531836]"
    except OSError:
        return None
    with contextlib.suppress(OSError):  # time namespaces: Linux 5.6 and later
        spaces.append(os.readlink(PROC / "self/ns/time"))
    return " ".join([boot, *spaces])[:128]


def process_start(pid: int) -> int | None:
    """When process ``pid`` started, in clock ticks since boot; None when no such process
    is seen here (or this system does not say)."""
    stat = _stat(pid)
    return None if stat is None else stat[1]


def has_ended(pid: int, started: int) -> bool:
    """Whether the process that was ``pid``, started at ``started``, has surely ended: no
    process has that number now, the one that has it started at another time (the number
    was given again), or it has ended and waits to be reaped. A process that exists but
    cannot be read (``/proc`` mounted with ``hidepid``, another user's) has not. Only
    meaningful in this process's ``pid_namespace``."""
    stat = _stat(pid)
    if stat is not None:
        state, start = stat
        return start != started or state in _ENDED_STATES
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return True
    except PermissionError:
        return False  # it exists, another user's: whose, it does not say
    return False


def _stat(pid: int) -> tuple[bytes, int] | None:
    """The state and the start of process ``pid``, from ``/proc/PID/stat``."""
    try:
        stat = (PROC / str(pid) / "stat").read_bytes()
    except OSError:
        return None
    # The command name, in parentheses, may hold spaces and parentheses: read after the last.
    fields = stat[stat.rindex(b")") + 2 :].split()
    try:
        return fields[0], int(fields[19])  # fields 3 and 22 of proc(5)
    except (IndexError, ValueError):
        return None
