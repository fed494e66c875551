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

The template editor's preview runs the same way (``preview_bounded``): lint, then the
render for one sample account, in one child within one time limit.

Where the platform has no fork server (Windows), lint runs in the process, unbounded.
"""

from __future__ import annotations

import multiprocessing
import resource
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import date
from multiprocessing.connection import Connection
from pathlib import Path

from outreach.rendering.context import SAMPLE_TODAY, Company, MessageFacts, sample_context
from outreach.rendering.environment import PARTIALS_DIR, TemplateKey
from outreach.rendering.lint import LintIssue, LintPolicy, blocking, lint_sources, named
from outreach.rendering.render import Rendered, Renderer

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
    stop_at_limit: bool = False,
) -> list[LintIssue]:
    """``lint_sources``, each template's renders bounded in time and memory (``seconds``
    for each template, ``SECONDS_PER_TEMPLATE`` by default). With ``stop_at_limit``, the
    first template over the limits ends the run (the rest are reported unchecked): a
    partial that loops for ever would otherwise cost the limit once per template."""
    chosen = tuple(sorted(paths if paths is not None else sources))
    key = (tuple(sorted(sources.items())), company.model_dump_json(), chosen, policy)
    with _answers_lock:
        found = _answers.get(key)
    if found is None:
        limit = SECONDS_PER_TEMPLATE if seconds is None else seconds
        found, stopped = _lint(sources, company, list(chosen), policy, limit, memory, stop_at_limit)
        if stopped:  # not the whole answer: not kept for a run that wants it all
            return list(found)
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
    stop_at_limit: bool = False,
) -> tuple[list[LintIssue], bool]:
    """The issues, and whether the run stopped before the end (``stop_at_limit``)."""
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return lint_sources(sources, company, paths=chosen, policy=policy), False
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
        if remaining and stop_at_limit:
            more = f" and {len(remaining) - 1} more" if len(remaining) > 1 else ""
            message = f"not checked{more}: lint stopped at the template over the limits"
            issues.append(LintIssue(remaining[0], None, _LIMIT, message))
            return issues, True
    return issues, False


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
                return _refused(current, _ended(child), paths, issues)
            if kind == "start":
                current, deadline = value, time.monotonic() + seconds
            elif kind == "issues":
                issues.extend(value)
            else:  # "done"
                return []
    finally:
        _reap(child)


def _ended(child: multiprocessing.process.BaseProcess) -> str:
    """Why a child that stopped answering ended: an allocation the C library could not fail
    gracefully kills it (a signal), a Python error it did not catch exits with a status."""
    child.join(timeout=5)
    if child.exitcode is not None and child.exitcode > 0:
        return f"stopped the check with an error (exit status {child.exitcode})"
    return "needed more memory than allowed"


def _reap(child: multiprocessing.process.BaseProcess) -> None:
    """The child is gone when this returns: it ended, or was killed past its limit."""
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
    _limit_memory(memory)
    for path in paths:
        sending.send(("start", path))
        sending.send(("issues", _checked(sources, company, [path], policy, path)))
    sending.send(("done", None))
    sending.close()


def _checked(
    sources: dict[str, str],
    company: Company,
    paths: list[str],
    policy: LintPolicy | None,
    blamed: str,
) -> list[LintIssue]:
    """Lint's issues for ``paths``; a failure of lint itself refuses ``blamed`` with its
    cause, rather than ending the child (which would read as the memory ceiling)."""
    try:
        return lint_sources(sources, company, paths=paths, policy=policy)
    except MemoryError:
        message = "rendering it for the sample accounts needed more memory than allowed"
        return [LintIssue(blamed, None, _LIMIT, message)]
    except Exception as exc:
        return [LintIssue(blamed, None, "RENDER_ERROR", f"could not be checked: {named(exc)}")]


def _limit_memory(memory: int) -> None:
    statm = Path("/proc/self/statm")
    if statm.exists():  # Linux; elsewhere the time limit stands alone
        held = int(statm.read_text().split()[0]) * resource.getpagesize()
        # Past the ceiling an allocation fails with MemoryError, which lint reports with
        # its line; an allocation the C library cannot fail gracefully ends the process.
        resource.setrlimit(resource.RLIMIT_AS, (held + memory, resource.RLIM_INFINITY))


# What a preview shows of each part of a message: far beyond any real one, and a bound on
# what the child sends back.
PREVIEW_CHARS = 100_000


@dataclass(frozen=True)
class Preview:
    """Lint's issues for a template, and what it renders for one sample (``None`` when it
    does not render, or for a partial, which renders only inside templates)."""

    issues: list[LintIssue]
    rendered: Rendered | None


def preview_bounded(
    sources: Mapping[str, str],
    path: str,
    company: Company,
    sample: MessageFacts,
    *,
    paths: Iterable[str] | None = None,
    policy: LintPolicy | None = None,
    seconds: float = SECONDS_PER_TEMPLATE,
    memory: int = MEMORY_BYTES,
    today: date = SAMPLE_TODAY,
) -> Preview:
    """Lint ``paths`` (default: ``path``) among ``sources`` and render ``path`` for
    ``sample`` as of ``today`` (the debtor's date), all in a child within ``seconds`` and
    ``memory``."""
    chosen = sorted(paths if paths is not None else [path])
    args = (dict(sources), path, company, sample, chosen, policy, today)
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return _preview(*args)
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["outreach.rendering.lint_limits"])
    receiving, sending = context.Pipe(duplex=False)
    child = context.Process(
        target=_preview_child, args=(sending, memory, *args), name="outreach-preview",
        daemon=True,
    )  # fmt: skip
    child.start()
    sending.close()
    try:
        found = _preview_answer(child, receiving, seconds)
    finally:
        receiving.close()
    if isinstance(found, Preview):
        return found
    message = f"rendering it for the sample accounts {found}"
    return Preview([LintIssue(path, None, _LIMIT, message)], None)


def _preview_answer(
    child: multiprocessing.process.BaseProcess, receiving: Connection, seconds: float
) -> Preview | str:
    """The child's preview, or why it was stopped."""
    deadline = time.monotonic() + STARTUP_SECONDS
    try:
        while True:
            if not receiving.poll(max(0.0, deadline - time.monotonic())):
                child.kill()
                return f"took more than {seconds:g} s"
            try:
                kind, value = receiving.recv()
            except EOFError:
                return _ended(child)
            if kind == "start":
                deadline = time.monotonic() + seconds
            elif isinstance(value, Preview):
                return value
    finally:
        _reap(child)


def _preview_child(
    sending: Connection,
    memory: int,
    sources: dict[str, str],
    path: str,
    company: Company,
    sample: MessageFacts,
    paths: list[str],
    policy: LintPolicy | None,
    today: date,
) -> None:
    _limit_memory(memory)
    sending.send(("start", None))
    sending.send(("preview", _preview(sources, path, company, sample, paths, policy, today)))
    sending.close()


def _preview(
    sources: dict[str, str],
    path: str,
    company: Company,
    sample: MessageFacts,
    paths: list[str],
    policy: LintPolicy | None,
    today: date,
) -> Preview:
    issues = blocking(_checked(sources, company, paths, policy, path), path)
    if path.startswith(f"{PARTIALS_DIR}/") or any(i.code == "BAD_NAME" for i in issues):
        return Preview(issues, None)
    key = TemplateKey.from_path(path)
    try:
        rendered = Renderer(sources).render_key(
            key, sample_context(sample, company, today, key.name, key.language, key.channel)
        )
    except Exception as exc:  # lint names the cause; this sample may fail where it did not
        if not issues:
            issues.append(LintIssue(path, None, "RENDER_ERROR", f"{type(exc).__name__}: {exc}"))
        return Preview(issues, None)
    return Preview(issues, _clipped(rendered))


def _clipped(rendered: Rendered) -> Rendered:
    def clip(text: str | None) -> str | None:
        if text is None or len(text) <= PREVIEW_CHARS:
            return text
        return text[:PREVIEW_CHARS] + f"\n[... {len(text) - PREVIEW_CHARS} more characters]"

    return replace(
        rendered,
        text=clip(rendered.text) or "",
        subject=clip(rendered.subject),
        html=clip(rendered.html),
        voicemail=clip(rendered.voicemail),
    )
