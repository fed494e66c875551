"""Lint with bounds: a template that would render for ever, or fill the memory, is refused.

Lint renders each template for the sample accounts, and a template is code: nested loops,
a macro that doubles a string at each call or a format width of two billion would hang or
exhaust the process that renders it. Jinja's sandbox keeps a template from Python's
internals, not from using the CPU and the memory it is given. So the renders of a lint run
in a child process with a memory ceiling, each template within a time limit; a template
that exceeds either is refused (``RENDER_LIMIT``) and lint goes on with the next in a
fresh child. The child comes from a fork server started once per process: it is forked
from a clean, single-threaded process, so nothing a parent thread held can block it.

Lint's answer depends on nothing but its input (the samples' day is fixed), so the last
few answers are kept: publishing the same files again costs no process.

Where the platform has no fork server (Windows), lint runs in the process, unbounded.
"""

from __future__ import annotations

import multiprocessing
import resource
import threading
import time
from collections.abc import Iterable, Mapping
from multiprocessing.connection import Connection
from pathlib import Path

from outreach.rendering.context import Company
from outreach.rendering.lint import LintIssue, LintPolicy, lint_sources

# A template's renders for every sample take milliseconds; these are far beyond.
SECONDS_PER_TEMPLATE = 10.0
MEMORY_BYTES = 1 << 30  # above what the child holds when it starts
STARTUP_SECONDS = 60.0  # the fork server's first start imports the renderer

_LIMIT = "RENDER_LIMIT"


def lint_sources_bounded(
    sources: Mapping[str, str],
    company: Company,
    *,
    paths: Iterable[str] | None = None,
    policy: LintPolicy | None = None,
    seconds: float | None = None,
    memory: int = MEMORY_BYTES,
) -> list[LintIssue]:
    """``lint_sources``, each template's renders bounded in time and memory (``seconds``
    for each template, ``SECONDS_PER_TEMPLATE`` by default)."""
    chosen = tuple(sorted(paths if paths is not None else sources))
    key = (tuple(sorted(sources.items())), company.model_dump_json(), chosen, policy)
    with _answers_lock:
        found = _answers.get(key)
    if found is None:
        limit = SECONDS_PER_TEMPLATE if seconds is None else seconds
        found = _lint(sources, company, list(chosen), policy, limit, memory)
        with _answers_lock:
            if len(_answers) >= ANSWERS_KEPT:
                _answers.pop(next(iter(_answers)))
            _answers[key] = found
    return list(found)


ANSWERS_KEPT = 16
_answers: dict[tuple[object, ...], list[LintIssue]] = {}
_answers_lock = threading.Lock()


def _lint(
    sources: Mapping[str, str],
    company: Company,
    chosen: list[str],
    policy: LintPolicy | None,
    seconds: float,
    memory: int,
) -> list[LintIssue]:
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return lint_sources(sources, company, paths=chosen, policy=policy)
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["outreach.rendering.lint_limits"])
    issues: list[LintIssue] = []
    remaining = chosen
    sources = dict(sources)
    while remaining:
        receiving, sending = context.Pipe(duplex=False)
        child = context.Process(
            target=_lint_child,
            args=(sending, sources, company, remaining, policy, memory),
            name="outreach-lint",
            daemon=True,
        )
        child.start()
        sending.close()
        remaining = _follow(child, receiving, remaining, seconds, issues)
        receiving.close()
    return issues


def _follow(
    child: multiprocessing.process.BaseProcess,
    receiving: Connection,
    paths: list[str],
    seconds: float,
    issues: list[LintIssue],
) -> list[str]:
    """Collect what the child finds; the paths still to lint when it had to be stopped."""
    current: str | None = None
    deadline = time.monotonic() + STARTUP_SECONDS
    try:
        while True:
            if not receiving.poll(max(0.0, deadline - time.monotonic())):
                child.kill()
                what = f"took more than {seconds:g} s"
                return _refused(current, what, paths, issues)
            try:
                kind, value = receiving.recv()
            except EOFError:
                # Killed by the memory ceiling, or crashed: the template it was on is refused.
                return _refused(current, "needed more memory than allowed", paths, issues)
            if kind == "start":
                current, deadline = value, time.monotonic() + seconds
            elif kind == "issues":
                issues.extend(value)
            else:  # "done"
                return []
    finally:
        child.join(timeout=5)
        if child.is_alive():
            child.kill()
            child.join()


def _refused(
    current: str | None, what: str, paths: list[str], issues: list[LintIssue]
) -> list[str]:
    if current is None:
        raise RuntimeError(f"the lint process did not start: it {what}")
    message = f"rendering it for the sample accounts {what}"
    issues.append(LintIssue(current, None, _LIMIT, message))
    return paths[paths.index(current) + 1 :]


def _lint_child(
    sending: Connection,
    sources: dict[str, str],
    company: Company,
    paths: list[str],
    policy: LintPolicy | None,
    memory: int,
) -> None:
    statm = Path("/proc/self/statm")
    if statm.exists():  # Linux; elsewhere the time limit stands alone
        held = int(statm.read_text().split()[0]) * resource.getpagesize()
        # Past the ceiling an allocation fails with MemoryError, which lint reports with
        # its line; an allocation the C library cannot fail gracefully ends the process.
        resource.setrlimit(resource.RLIMIT_AS, (held + memory, resource.RLIM_INFINITY))
    for path in paths:
        sending.send(("start", path))
        sending.send(("issues", lint_sources(sources, company, paths=[path], policy=policy)))
    sending.send(("done", None))
    sending.close()
