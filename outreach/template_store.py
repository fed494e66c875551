"""Template versions in the database: files seed them; publishing, rolling back and retiring
are explicit.

Each (channel, name, tone, language) and each partial has numbered versions with the
author, the time and a content hash. At most one version of each is published (publishes
of one template take turns, and a unique index holds it); the daemon renders only
published versions, and every attempt records the version it used. Nothing reaches the
database without passing lint among the sources it would render with.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from pathlib import Path

from jinja2 import Environment, TemplateSyntaxError, meta
from sqlalchemy import Connection, Engine, and_, func, insert, select, update

from outreach.clock import Clock
from outreach.errors import NotFoundError, TemplateError
from outreach.models import TemplateStatus, TemplateVersion
from outreach.rendering.context import Company
from outreach.rendering.environment import PARTIALS_DIR, TemplateKey, read_template_files
from outreach.rendering.lint import LintIssue, LintPolicy, blocking
from outreach.rendering.lint_limits import lint_sources_bounded
from outreach.store import hold_writes, table_of

versions = table_of(TemplateVersion)


class SavedSince(TemplateError):
    """A save based on an older version than the latest: storing it on top would drop what
    was saved in between without anyone seeing it."""

    def __init__(
        self, path: str, based_on: int, newer: list[TemplateVersion], base: str | None
    ) -> None:
        self.path, self.based_on, self.newer, self.base = path, based_on, newer, base
        if not newer:  # a version it does not have (yet): the page is not from here
            super().__init__(f"{path} has no version {based_on}: open it again")
            return
        latest = newer[-1].version
        saved = f"version {latest}" if len(newer) == 1 else f"versions {newer[0].version}-{latest}"
        authors = ", ".join(sorted({v.author for v in newer}))
        super().__init__(f"{authors} saved {saved} since you opened version {based_on}")

    @property
    def latest(self) -> int:
        return self.newer[-1].version if self.newer else self.based_on


class PublishedSince(TemplateError):
    """Another version was published (or none is) since the caller saw ``seen`` published:
    rolling back or retiring now would undo what it never saw."""

    def __init__(self, path: str, seen: int, now: int | None) -> None:
        self.path, self.seen, self.now = path, seen, now
        current = f"version {now} is published" if now is not None else "no version is published"
        super().__init__(
            f"{path}: {current} now, not version {seen} as you saw: nothing was changed; "
            "check the versions, then try again"
        )


def identity(path: str) -> tuple[str, str, str, str]:
    """The (channel, name, tone, locale) columns for a template or partial path."""
    if "\x00" in path:  # no template has one, and PostgreSQL refuses it in a query
        raise TemplateError("a template's path holds no NUL character")
    if path.startswith(f"{PARTIALS_DIR}/"):
        return PARTIALS_DIR, path[len(PARTIALS_DIR) + 1 :], "", ""
    key = TemplateKey.from_path(path)
    return key.channel, key.name, key.tone, key.language


def path_of(channel: str, name: str, tone: str, locale: str) -> str:
    if channel == PARTIALS_DIR:
        return f"{PARTIALS_DIR}/{name}"
    return TemplateKey(channel, name, tone, locale).path


def content_hash(content: str) -> str:
    return hashlib.sha256(content.encode("utf-8")).hexdigest()


@dataclass
class SyncReport:
    added: list[tuple[str, int]] = field(default_factory=list)  # (path, new version)
    unchanged: list[str] = field(default_factory=list)
    published: list[tuple[str, int]] = field(default_factory=list)
    refused: list[LintIssue] = field(default_factory=list)


@dataclass(frozen=True)
class PublishedTemplates:
    """What the daemon renders with: published content by path, and each version's id."""

    sources: dict[str, str]
    version_ids: dict[str, int]


def sync_templates(
    engine: Engine,
    templates_dir: Path,
    company: Company,
    clock: Clock,
    *,
    author: str,
    publish: bool = False,
    policy: LintPolicy | None = None,
) -> SyncReport:
    """Add a version for every file whose content differs from its latest version.

    All or nothing: when any template fails lint, nothing is stored and the report lists
    every issue, because a changed partial can break the templates that include it.
    """
    files = read_template_files(templates_dir)
    report = SyncReport()
    report.refused = nul_issues(files) or lint_sources_bounded(files, company, policy=policy)
    if report.refused:
        return report
    now = clock.now()
    with engine.begin() as connection:
        # SQLite: the writer lock before reading what the files are compared with.
        hold_writes(connection)
        if publish:
            # PostgreSQL: the publishing lock too, so that a partial retired meanwhile is
            # read as retired, and published again from its file with what uses it.
            _hold_publishing(connection)
        latest = _latest(connection)
        for path, content in files.items():
            current = latest.get(path)
            if current is not None and current.content_hash == content_hash(content):
                report.unchanged.append(path)
                if publish and current.status != TemplateStatus.PUBLISHED:
                    _lock_template(connection, path)
                    _publish(connection, path, current.version, now)
                    report.published.append((path, current.version))
                continue
            number = (current.version if current is not None else 0) + 1
            _insert(connection, path, number, content, author, now)
            report.added.append((path, number))
            if publish:
                _lock_template(connection, path)
                _publish(connection, path, number, now)
                report.published.append((path, number))
    return report


def publish_version(
    engine: Engine,
    path: str,
    company: Company,
    clock: Clock,
    *,
    version: int | None = None,
    policy: LintPolicy | None = None,
    replacing: int | None = None,
) -> int:
    """Publish ``version`` of ``path`` (default: its latest) after linting it among the
    published sources; returns the version published.

    ``replacing``: the version that must still be the published one when it is replaced
    (``PublishedSince`` otherwise, and nothing changes)."""
    for _ in range(_LINT_TRIES):
        # Lint outside the writing transaction: it takes a second or more, and on SQLite the
        # write lock held meanwhile would stop every other writer.
        with engine.connect() as connection:
            rows = _versions_of(connection, path)
            if not rows:
                raise NotFoundError(f"no versions of {path}; run 'outreach templates sync' first")
            chosen = (
                rows[-1]
                if version is None
                else next((r for r in rows if r.version == version), None)
            )
            if chosen is None:
                known = ", ".join(str(r.version) for r in rows)
                raise NotFoundError(f"{path} has no version {version} (versions: {known})")
            linted_among = published(connection)
        sources = {**linted_among.sources, path: chosen.content}
        affected = _affected(sources, path)
        found = lint_sources_bounded(sources, company, paths=affected, policy=policy)
        issues = blocking(found, path)
        if issues:
            listed = "; ".join(str(issue) for issue in issues)
            raise TemplateError(f"version {chosen.version} of {path} is refused: {listed}")
        with engine.begin() as connection:
            _lock_template(connection, path)
            if replacing is not None:
                now_published = _published_version(connection, path)
                if now_published != replacing:
                    raise PublishedSince(path, replacing, now_published)
            if _others(published(connection), path) != _others(linted_among, path):
                # A partial it uses was retired, or another version published, while it was
                # linted: lint it again among what is published now.
                continue
            _publish(connection, path, chosen.version, clock.now())
            return int(chosen.version)
    raise TemplateError(
        f"{path} was not published: the published templates kept changing while it was "
        "checked; try again"
    )


# Lints of one publish at most, when other templates change meanwhile.
_LINT_TRIES = 3


def _others(found: PublishedTemplates, path: str | None = None) -> dict[str, int]:
    """The published version of every template but ``path``."""
    return {name: ident for name, ident in found.version_ids.items() if name != path}


def save_version(
    engine: Engine,
    path: str,
    content: str,
    clock: Clock,
    *,
    author: str,
    based_on: int | None = None,
) -> int:
    """Store ``content`` as a new draft version of an existing ``path`` (lint it first);
    returns its number, or the latest's when that holds the same content.

    ``based_on``: the version the author started from. When a newer one was saved since,
    ``SavedSince`` is raised and nothing is stored: storing on top would drop its changes.
    """
    if "\x00" in content:
        raise TemplateError(f"{path} holds a NUL character: remove it")
    with engine.begin() as connection:
        # Two saves at once take turns: the second reads the version the first stored, and
        # is refused (``SavedSince``) or numbered after it, as it would be a moment later.
        hold_writes(connection)
        _lock_versions(connection, path)
        rows = _versions_of(connection, path)
        if not rows:
            raise NotFoundError(f"no versions of {path}")
        if rows[-1].content_hash == content_hash(content):
            return int(rows[-1].version)
        if based_on is not None and based_on != rows[-1].version:
            base = next((r.content for r in rows if r.version == based_on), None)
            newer = [r for r in rows if r.version > based_on]
            raise SavedSince(path, based_on, newer, base)
        number = int(rows[-1].version) + 1
        _insert(connection, path, number, content, author, clock.now())
        return number


def nul_issues(sources: dict[str, str]) -> list[LintIssue]:
    """A NUL character in a source, on its line: no message may carry one, and PostgreSQL
    refuses to store it."""
    issues = []
    for path, source in sources.items():
        if (at := source.find("\x00")) >= 0:
            line = source.count("\n", 0, at) + 1
            issues.append(LintIssue(path, line, "NUL_CHARACTER", "a NUL character: remove it"))
    return issues


def affected_paths(sources: dict[str, str], path: str) -> list[str]:
    """What lint checks when ``path`` changes among ``sources``, as publishing does."""
    return _affected(sources, path)


def rollback(
    engine: Engine,
    path: str,
    company: Company,
    clock: Clock,
    *,
    policy: LintPolicy | None,
    rolling_back: int | None = None,
) -> int:
    """Publish the version before the one published now, linted under ``policy`` as
    publishing it would be (the limits may have changed since); returns it.

    ``rolling_back``: the published version the caller saw (a page's); when another is
    published by then, ``PublishedSince`` is raised and nothing changes. Without it, the
    version published now, as read here."""
    with engine.connect() as connection:
        rows = _versions_of(connection, path)
    current = next((r for r in rows if r.status == TemplateStatus.PUBLISHED), None)
    seen = current.version if current is not None else None
    if rolling_back is not None and seen != rolling_back:
        raise PublishedSince(path, rolling_back, seen)
    if current is None:
        raise TemplateError(f"{path} has no published version to roll back from")
    earlier = [r for r in rows if r.version < current.version]
    if not earlier:
        raise TemplateError(
            f"{path} version {current.version} is its first: nothing to roll back to"
        )
    # Checked again as it is replaced: a publish meanwhile must not be rolled back unseen.
    return publish_version(
        engine, path, company, clock, version=earlier[-1].version, policy=policy,
        replacing=current.version,
    )  # fmt: skip


def retire(
    engine: Engine,
    path: str,
    *,
    retiring: int | None = None,
    in_use: Mapping[str, Sequence[str]] | None = None,
) -> int:
    """Retire the published version of ``path``, leaving none published: the daemon stops
    using it from its next tick; returns the version retired. Its versions stay, and
    publishing one brings it back.

    Refused while a published template includes, imports or extends it by name, or names
    what it includes by an expression (each might fail to render). ``retiring``: the
    published version the caller saw (a page's); when another is published by then,
    ``PublishedSince`` is raised and nothing changes.
    ``in_use``: the templates a cadence step or the agents' answers send by name
    (``templates_in_use``), refused too: the accounts at that step would wait on an error."""
    senders = (in_use or {}).get(path)
    if senders:
        more = f" and {len(senders) - 3} more" if len(senders) > 3 else ""
        shown = "; ".join(senders[:3]) + more
        raise TemplateError(
            f"{path} is sent by {shown}: change the cadence in schedules/ first, or publish "
            "another version of it instead"
        )
    with engine.begin() as connection:
        _lock_template(connection, path)
        current = _published_version(connection, path)
        if retiring is not None and current != retiring:
            raise PublishedSince(path, retiring, current)
        if current is None:
            raise TemplateError(f"{path} has no published version to retire")
        users = sorted(
            name
            for name, source in published(connection).sources.items()
            if name != path and _may_use(source, path)
        )
        if users:
            raise TemplateError(
                f"{path} is used by {', '.join(users)}: change or retire them first"
            )
        channel, name, tone, locale = identity(path)
        connection.execute(
            update(versions)
            .where(versions.c.channel == channel, versions.c.name == name,
                   versions.c.tone == tone, versions.c.locale == locale,
                   versions.c.status == TemplateStatus.PUBLISHED)
            .values(status=TemplateStatus.RETIRED)
        )  # fmt: skip
    return current


def published(connection: Connection) -> PublishedTemplates:
    result = connection.execute(
        select(versions).where(versions.c.status == TemplateStatus.PUBLISHED)
    )
    sources: dict[str, str] = {}
    ids: dict[str, int] = {}
    for row in result:
        path = path_of(row.channel, row.name, row.tone, row.locale)
        sources[path] = row.content
        ids[path] = row.id
    return PublishedTemplates(sources, ids)


def _published_version(connection: Connection, path: str) -> int | None:
    channel, name, tone, locale = identity(path)
    number = connection.execute(
        select(versions.c.version)
        .where(versions.c.channel == channel, versions.c.name == name,
               versions.c.tone == tone, versions.c.locale == locale,
               versions.c.status == TemplateStatus.PUBLISHED)
    ).scalar()  # fmt: skip
    return int(number) if number is not None else None


def list_versions(engine: Engine, path: str) -> list[TemplateVersion]:
    with engine.connect() as connection:
        return _versions_of(connection, path)


def _affected(sources: dict[str, str], path: str) -> list[str]:
    """``path`` and every source whose includes, imports or extends reach it, directly or
    through others: each renders with it. A source naming what it includes by an
    expression, or that does not parse, may reach anything and is always among them."""
    dependents: dict[str, list[str]] = {}
    reached = {path}
    for name, source in sources.items():
        names = _referenced(source)
        if names is None:
            reached.add(name)
            continue
        for referenced in names:
            dependents.setdefault(referenced, []).append(name)
    waiting = list(reached)
    while waiting:
        for name in dependents.get(waiting.pop(), ()):
            if name not in reached:
                reached.add(name)
                waiting.append(name)
    return sorted(reached)


# Parses only, never renders; the renderer's syntax (default delimiters, no extensions).
_PARSER = Environment(autoescape=True)


@lru_cache(maxsize=512)
def _may_use(source: str, path: str) -> bool:
    """Whether ``source`` includes, imports or extends ``path``: also when it names what it
    includes by an expression, which may be anything."""
    named = _referenced(source)
    return named is None or path in named


def _referenced(source: str) -> frozenset[str] | None:
    """The sources ``source`` includes, imports or extends by name; None when it names one
    by an expression or does not parse. Cached: a save parses every published source."""
    try:
        tree = _PARSER.parse(source)
    except TemplateSyntaxError:
        return None
    names = list(meta.find_referenced_templates(tree))
    if any(name is None for name in names):
        return None
    return frozenset(name for name in names if name is not None)


def _latest(connection: Connection) -> dict[str, TemplateVersion]:
    newest = (
        select(versions.c.channel, versions.c.name, versions.c.tone, versions.c.locale,
               func.max(versions.c.version).label("version"))
        .group_by(versions.c.channel, versions.c.name, versions.c.tone, versions.c.locale)
        .subquery()
    )  # fmt: skip
    result = connection.execute(
        select(versions).join(
            newest,
            and_(
                versions.c.channel == newest.c.channel,
                versions.c.name == newest.c.name,
                versions.c.tone == newest.c.tone,
                versions.c.locale == newest.c.locale,
                versions.c.version == newest.c.version,
            ),
        )
    )
    latest = {}
    for row in result:
        latest[path_of(row.channel, row.name, row.tone, row.locale)] = (
            TemplateVersion.model_validate(dict(row._mapping))
        )
    return latest


def _versions_of(connection: Connection, path: str) -> list[TemplateVersion]:
    channel, name, tone, locale = identity(path)
    result = connection.execute(
        select(versions)
        .where(versions.c.channel == channel, versions.c.name == name,
               versions.c.tone == tone, versions.c.locale == locale)
        .order_by(versions.c.version)
    )  # fmt: skip
    return [TemplateVersion.model_validate(dict(r._mapping)) for r in result]


def _insert(
    connection: Connection, path: str, number: int, content: str, author: str, now: datetime
) -> None:
    channel, name, tone, locale = identity(path)
    connection.execute(
        insert(versions).values(
            channel=channel, name=name, tone=tone, locale=locale, version=number,
            content=content, content_hash=content_hash(content), status=TemplateStatus.DRAFT,
            author=author[:100], created_at=now,
        )
    )  # fmt: skip


# The advisory lock publishes and retires take (PostgreSQL): "tmpl" in ASCII.
_PUBLISHING_LOCK = 0x746D706C


def _lock_template(connection: Connection, path: str) -> None:
    """Make publishes of ``path`` take turns until the transaction ends: each retires the
    published version it then sees, so two at once could otherwise leave two published
    (READ COMMITTED shows neither the other's). PostgreSQL: lock the template's rows, in
    version order so that two lockers queue rather than deadlock; SQLite: its writer lock.

    On PostgreSQL every publish and retire first takes one lock shared by all templates:
    a partial retired while a template using it is published would otherwise be seen by
    neither (``publish_version`` checks, under it, that what it linted among still holds)."""
    hold_writes(connection)
    _hold_publishing(connection)
    _lock_versions(connection, path)


def _lock_versions(connection: Connection, path: str) -> None:
    """PostgreSQL: lock the versions of ``path`` until the transaction ends, in version
    order, so that two lockers queue rather than deadlock. Nothing on SQLite (its writer
    lock, ``hold_writes``, serves)."""
    if connection.dialect.name != "postgresql":
        return
    channel, name, tone, locale = identity(path)
    connection.execute(
        select(versions.c.id)
        .where(versions.c.channel == channel, versions.c.name == name,
               versions.c.tone == tone, versions.c.locale == locale)
        .order_by(versions.c.version)
        .with_for_update()
    )  # fmt: skip


def _hold_publishing(connection: Connection) -> None:
    """PostgreSQL: the lock every publish and retire takes (SQLite: its writer lock is)."""
    if connection.dialect.name == "postgresql":
        connection.execute(select(func.pg_advisory_xact_lock(_PUBLISHING_LOCK)))


def _publish(connection: Connection, path: str, number: int, now: datetime) -> None:
    channel, name, tone, locale = identity(path)
    same = and_(versions.c.channel == channel, versions.c.name == name,
                versions.c.tone == tone, versions.c.locale == locale)  # fmt: skip
    connection.execute(
        update(versions)
        .where(same, versions.c.status == TemplateStatus.PUBLISHED)
        .values(status=TemplateStatus.RETIRED)
    )
    connection.execute(
        update(versions)
        .where(same, versions.c.version == number)
        .values(status=TemplateStatus.PUBLISHED, published_at=now)
    )
