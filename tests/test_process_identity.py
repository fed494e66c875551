"""Processes told apart beyond their number (``outreach.process_identity``), as the daemon
registry uses it to remove the row of a daemon that was killed."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from outreach import process_identity
from outreach.process_identity import has_ended, pid_namespace, process_start

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="processes are told apart from /proc (Linux)"
)


def test_this_process_has_a_namespace_and_a_start_and_has_not_ended() -> None:
    namespace = pid_namespace()
    assert namespace is not None and " pid:[" in namespace
    if Path("/proc/self/ns/time").exists():
        assert " time:[" in namespace
    start = process_start(os.getpid())
    assert isinstance(start, int) and start > 0
    assert not has_ended(os.getpid(), start)
    # The same number with another start is an earlier process that had it.
    assert has_ended(os.getpid(), start - 1)


def test_a_process_that_ended_has_ended(tmp_path: Path) -> None:
    # A command name holding ") " and spaces, as /proc/PID/stat shows it in parentheses.
    odd = tmp_path / "a) b (c"
    odd.symlink_to("/bin/sleep")
    child = subprocess.Popen([str(odd), "60"])
    try:
        start = process_start(child.pid)
        assert start is not None and start >= (process_start(os.getpid()) or 0)
        assert not has_ended(child.pid, start)
    finally:
        child.kill()
        child.wait()
    assert process_start(child.pid) is None
    assert has_ended(child.pid, start)


def test_a_process_killed_and_not_yet_reaped_has_ended() -> None:
    child = subprocess.Popen(["sleep", "60"])
    start = process_start(child.pid)
    assert start is not None
    child.kill()
    try:
        state = b""
        for _ in range(500):  # until the kernel has made it a zombie
            state = Path(f"/proc/{child.pid}/stat").read_bytes().rsplit(b")", 1)[1].split()[0]
            if state == b"Z":
                break
            time.sleep(0.01)
        assert state == b"Z"
        assert process_start(child.pid) == start  # still listed, with its start
        assert has_ended(child.pid, start)
    finally:
        child.wait()


def test_a_process_that_cannot_be_read_has_not_ended(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``/proc`` mounted with ``hidepid``: another user's processes are not listed, but
    they run, as signal 0 says."""
    monkeypatch.setattr(process_identity, "PROC", tmp_path)  # lists no process

    def not_yours(pid: int, signal: int) -> None:
        raise PermissionError(1, "Operation not permitted")

    assert not has_ended(os.getpid(), 1)  # signal 0 reaches it
    monkeypatch.setattr(process_identity.os, "kill", not_yours)
    assert not has_ended(os.getpid(), 1)


def test_no_namespace_where_proc_is_another_namespaces(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A sandbox that kept the host's /proc: its /proc/self is not this process's pid."""
    real = Path("/proc/sys/kernel/random")
    (tmp_path / "sys/kernel").mkdir(parents=True)
    (tmp_path / "sys/kernel/random").symlink_to(real)
    (tmp_path / "self").symlink_to(str(os.getpid()))
    (tmp_path / str(os.getpid())).symlink_to("/proc/self")
    monkeypatch.setattr(process_identity, "PROC", tmp_path)
    assert pid_namespace() == process_identity_namespace()
    (tmp_path / "self").unlink()
    (tmp_path / "self").symlink_to("1")
    assert pid_namespace() is None


def process_identity_namespace() -> str | None:
    """The namespace read from the real /proc."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(process_identity, "PROC", Path("/proc"))
        return pid_namespace()
