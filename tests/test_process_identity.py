"""Processes told apart beyond their number (``outreach.process_identity``), as the daemon
registry uses it to remove the row of a daemon that was killed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from outreach.process_identity import has_ended, pid_namespace, process_start

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="processes are told apart from /proc (Linux)"
)


def test_this_process_has_a_namespace_and_a_start_and_has_not_ended() -> None:
    namespace = pid_namespace()
    assert namespace is not None and " pid:[" in namespace
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
