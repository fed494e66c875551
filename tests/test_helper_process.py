"""Helper processes leave when the daemon that started them is gone.

A real process tree: a stand-in daemon (a Python process) spawns a helper as the daemon's
pools do, and dies without a word (``os._exit``), as a killed daemon would. The helper,
left waiting for work, must notice and leave.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import REPO

DAEMON = """
import logging, multiprocessing, os, sys, time
from outreach import helper_process

def helper():
    helper_process.prepare(logging.WARNING)
    time.sleep(120)  # idle, as a helper waiting for its next tick

if __name__ == "__main__":
    child = multiprocessing.get_context("spawn").Process(target=helper)
    child.start()
    time.sleep(float(sys.argv[2]))  # the helper may be up, its watch started, or not yet
    with open(sys.argv[1], "w") as pid_file:
        pid_file.write(str(child.pid))
    os._exit(9)  # the daemon dies without closing anything
"""


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "\nState:\tZ" not in state  # a zombie has left; only its exit status remains


@pytest.mark.parametrize("head_start", ["1", "0"], ids=["idle", "still-starting"])
def test_a_helper_leaves_when_its_daemon_is_gone(tmp_path: Path, head_start: str) -> None:
    """Whether the daemon dies while the helper waits for work, or before the helper has
    finished importing what it needs (it is then already another process's child)."""
    script = tmp_path / "daemon.py"
    script.write_text(DAEMON, encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    pid_file = tmp_path / "helper.pid"
    # No pipes: the helper would hold them open, and the wait would be for the helper.
    done = subprocess.run(
        [sys.executable, str(script), str(pid_file), head_start], cwd=REPO, env=env,
        timeout=60, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    assert done.returncode == 9
    helper = int(pid_file.read_text())
    deadline = time.monotonic() + 30
    try:
        while alive(helper):
            assert time.monotonic() < deadline, "the helper outlived its daemon"
            time.sleep(0.1)
    finally:
        if alive(helper):  # not left behind by a failure
            os.kill(helper, signal.SIGKILL)
