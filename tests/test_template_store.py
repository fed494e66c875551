from __future__ import annotations

import shutil
import threading
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, insert, text, update
from sqlalchemy.exc import IntegrityError

from outreach import template_store
from outreach.clock import FixedClock
from outreach.errors import NotFoundError, TemplateError
from outreach.rendering import lint_limits
from outreach.rendering.context import Company, load_company
from outreach.rendering.lint import LintPolicy
from outreach.template_store import (
    PublishedSince,
    SavedSince,
    affected_paths,
    list_versions,
    publish_version,
    published,
    retire,
    rollback,
    save_version,
    sync_templates,
    versions,
)
from tests.conftest import REPO

SMS = "sms/overdue.firm.j2"
FOOTER = "_partials/sms_footer.j2"


@pytest.fixture
def templates(tmp_path: Path) -> Path:
    folder = tmp_path / "templates"
    shutil.copytree(REPO / "templates", folder)
    return folder


@pytest.fixture
def company(templates: Path) -> Company:
    return load_company(templates)


def edit(templates: Path, path: str, old: str, new: str) -> None:
    file = templates / path
    text = file.read_text(encoding="utf-8")
    assert old in text
    file.write_text(text.replace(old, new), encoding="utf-8")


def test_sync_adds_versions_only_for_changed_content(
    engine: Engine, templates: Path, company: Company, clock: FixedClock
) -> None:
    first = sync_templates(engine, templates, company, clock, author="maria")
    shipped = len(list(templates.rglob("*.j2")))
    assert (len(first.added), first.refused, first.published) == (shipped, [], [])
    again = sync_templates(engine, templates, company, clock, author="maria")
    assert (again.added, len(again.unchanged)) == ([], shipped)
    edit(templates, SMS, "Please pay today", "Please pay now")
    third = sync_templates(engine, templates, company, clock, author="li")
    assert third.added == [(SMS, 2)]
    versions = list_versions(engine, SMS)
    assert [(v.version, v.author, v.status) for v in versions] == [
        (1, "maria", "draft"),
        (2, "li", "draft"),
    ]
    assert versions[0].content_hash != versions[1].content_hash
    assert versions[1].created_at == clock.now()


def test_nothing_is_published_until_asked(
    engine: Engine, templates: Path, company: Company, clock: FixedClock
) -> None:
    sync_templates(engine, templates, company, clock, author="maria")
    with engine.connect() as connection:
        assert published(connection).sources == {}
    # The SMS includes a partial that is not published yet: refused, and saying why.
    with pytest.raises(
        TemplateError, match=r"includes _partials/sms_footer\.j2, which is not available"
    ):
        publish_version(engine, SMS, company, clock)
    assert publish_version(engine, "_partials/sms_footer.j2", company, clock) == 1
    assert publish_version(engine, SMS, company, clock) == 1
    with engine.connect() as connection:
        live = published(connection)
    assert sorted(live.sources) == ["_partials/sms_footer.j2", SMS]
    assert live.version_ids[SMS] == list_versions(engine, SMS)[0].id


def test_publish_and_rollback_are_explicit(
    engine: Engine, templates: Path, company: Company, clock: FixedClock
) -> None:
    sync_templates(engine, templates, company, clock, author="maria", publish=True)
    edit(templates, SMS, "Please pay today", "Please pay now")
    report = sync_templates(engine, templates, company, clock, author="li", publish=True)
    assert report.published == [(SMS, 2)]
    statuses = [(v.version, v.status) for v in list_versions(engine, SMS)]
    assert statuses == [(1, "retired"), (2, "published")]
    assert rollback(engine, SMS, company, clock, policy=None) == 1
    with engine.connect() as connection:
        assert "Please pay today" in published(connection).sources[SMS]
    with pytest.raises(TemplateError, match="is its first"):
        rollback(engine, SMS, company, clock, policy=None)


def test_rollback_lints_with_the_policy_it_is_given(
    engine: Engine, templates: Path, company: Company, clock: FixedClock
) -> None:
    sync_templates(engine, templates, company, clock, author="maria", publish=True)
    source = (templates / SMS).read_text(encoding="utf-8")
    three_segments = source.replace("Please pay today", "Please pay today. " + "x" * 40)
    save_version(engine, SMS, three_segments, clock, author="li")
    assert publish_version(engine, SMS, company, clock, policy=LintPolicy(3)) == 2
    save_version(engine, SMS, source.replace("Please pay today", "Pay today"), clock, author="li")
    assert publish_version(engine, SMS, company, clock, policy=LintPolicy(3)) == 3
    # The limit is now two segments: version 2 may not come back, by rollback either.
    with pytest.raises(TemplateError, match=r"version 2 of sms/overdue\.firm\.j2 is refused"):
        rollback(engine, SMS, company, clock, policy=LintPolicy(2))
    assert [v.status for v in list_versions(engine, SMS)] == ["retired", "retired", "published"]
    assert rollback(engine, SMS, company, clock, policy=LintPolicy(3)) == 2


def test_a_rollback_is_refused_when_the_published_version_is_not_the_one_seen(
    engine: Engine, templates: Path, company: Company, clock: FixedClock
) -> None:
    sync_templates(engine, templates, company, clock, author="maria", publish=True)
    source = (templates / SMS).read_text(encoding="utf-8")
    for change in ("Please pay now", "Pay today"):  # versions 2, then 3, published
        save_version(engine, SMS, source.replace("Please pay today", change), clock, author="li")
        publish_version(engine, SMS, company, clock)
    with pytest.raises(PublishedSince, match="version 3 is published now, not version 2"):
        rollback(engine, SMS, company, clock, policy=None, rolling_back=2)
    assert [v.status for v in list_versions(engine, SMS)] == ["retired", "retired", "published"]
    # Replacing a version that is no longer published is refused under the template's lock.
    with pytest.raises(PublishedSince):
        publish_version(engine, SMS, company, clock, version=1, replacing=2)
    assert rollback(engine, SMS, company, clock, policy=None, rolling_back=3) == 2


def test_a_variant_published_before_bad_name_does_not_block_its_partial_and_can_be_retired(
    engine: Engine, templates: Path, company: Company, clock: FixedClock
) -> None:
    sync_templates(engine, templates, company, clock, author="maria", publish=True)
    # Published by an earlier release, whose lint accepted any variant name.
    odd = "sms/overdue.firm.ES.j2"
    source = (templates / "sms/overdue.firm.es.j2").read_text(encoding="utf-8")
    with engine.begin() as connection:
        connection.execute(insert(versions).values(
            channel="sms", name="overdue", tone="firm", locale="ES", version=1,
            content=source, content_hash="h", status="published", author="old",
            created_at=clock.now(), published_at=clock.now(),
        ))  # fmt: skip
    footer = list_versions(engine, FOOTER)[-1].content
    number = save_version(engine, FOOTER, footer + " ", clock, author="mia", based_on=1)
    # Its name is its own to fix (no account gets it); the templates a broken footer
    # breaks still refuse it.
    assert publish_version(engine, FOOTER, company, clock, version=number) == number
    broken = save_version(engine, FOOTER, "{{ 1 // 0 }}", clock, author="mia")
    with pytest.raises(TemplateError, match=r"sms/overdue\.firm\.j2: RENDER_ERROR") as refused:
        publish_version(engine, FOOTER, company, clock, version=broken)
    assert "BAD_NAME" not in str(refused.value)
    # Nothing uses it, and no account gets it: it can be retired.
    with pytest.raises(TemplateError, match="is used by"):
        retire(engine, FOOTER)
    assert retire(engine, odd) == 1
    with engine.connect() as connection:
        assert odd not in published(connection).sources
    assert [v.status for v in list_versions(engine, odd)] == ["retired"]
    with pytest.raises(TemplateError, match="has no published version to retire"):
        retire(engine, odd)
    with pytest.raises(PublishedSince, match="no version is published now, not version 1"):
        retire(engine, odd, retiring=1)


def test_sync_refuses_a_file_with_an_empty_language(
    engine: Engine, templates: Path, company: Company, clock: FixedClock
) -> None:
    """``overdue.firm..j2`` would be stored as the default variant's next version."""
    (templates / "sms" / "overdue.firm..j2").write_text("{{ 1 // (days_past_due * 0) }}")
    report = sync_templates(engine, templates, company, clock, author="maria", publish=True)
    assert [(i.path, i.code) for i in report.refused] == [("sms/overdue.firm..j2", "BAD_NAME")]
    assert list_versions(engine, SMS) == []


def test_a_broken_template_is_refused_and_nothing_is_stored(
    engine: Engine, templates: Path, company: Company, clock: FixedClock
) -> None:
    edit(templates, SMS, "{{ amount }}", "{{ amount }")
    edit(templates, "sms/due.friendly.j2", '{%- include "_partials/sms_footer.j2" %}', "")
    report = sync_templates(engine, templates, company, clock, author="maria")
    assert report.added == []
    codes = {(issue.path, issue.code) for issue in report.refused}
    assert (SMS, "SYNTAX") in codes
    assert ("sms/due.friendly.j2", "REGF_OPTOUT_NOTICE_MISSING") in codes
    syntax = next(i for i in report.refused if i.code == "SYNTAX")
    assert syntax.line == 1
    assert list_versions(engine, SMS) == []


def test_a_template_that_would_render_for_ever_is_refused_at_save_time(
    engine: Engine,
    templates: Path,
    company: Company,
    clock: FixedClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(lint_limits, "SECONDS_PER_TEMPLATE", 1.0)
    loops = "{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}"
    edit(templates, SMS, "{{ amount }}", "{{ amount }}" + loops)
    report = sync_templates(engine, templates, company, clock, author="maria")
    assert [(i.path, i.code) for i in report.refused] == [(SMS, "RENDER_LIMIT")]
    assert report.added == []
    assert list_versions(engine, SMS) == []


def test_publishing_a_partial_lints_the_templates_that_use_it(
    engine: Engine, templates: Path, company: Company, clock: FixedClock
) -> None:
    sync_templates(engine, templates, company, clock, author="maria", publish=True)
    # A partial that parses but drops the opt-out breaks every SMS that includes it.
    (templates / "_partials/sms_footer.j2").write_text("{{ disclosure_short }}\n", encoding="utf-8")
    # sync refuses it, because the SMS templates now fail lint...
    assert sync_templates(engine, templates, company, clock, author="li").refused
    # ...and a version stored another way cannot be published either.
    from sqlalchemy import insert

    from outreach.template_store import content_hash, versions

    with engine.begin() as connection:
        connection.execute(
            insert(versions).values(
                channel="_partials", name="sms_footer.j2", tone="", locale="", version=2,
                content="{{ disclosure_short }}", content_hash=content_hash("x"),
                status="draft", author="li", created_at=clock.now(),
            )
        )  # fmt: skip
    with pytest.raises(TemplateError, match="REGF_OPTOUT_NOTICE_MISSING"):
        publish_version(engine, "_partials/sms_footer.j2", company, clock)


def test_publishing_a_template_lints_the_templates_that_include_it(
    engine: Engine, templates: Path, company: Company, clock: FixedClock
) -> None:
    friendly = "sms/overdue.friendly.j2"
    sync_templates(engine, templates, company, clock, author="maria", publish=True)
    firm = "Second notice. " + "z" * 50 + ' {% include "' + friendly + '" %}'
    save_version(engine, SMS, firm, clock, author="li")
    assert publish_version(engine, SMS, company, clock) == 2
    # Fine alone, but it makes the firm SMS that includes it longer than three segments.
    text = (templates / friendly).read_text(encoding="utf-8")
    longer = text.replace("thank you.", "thank you. " + "y" * 100)
    save_version(engine, friendly, longer, clock, author="li")
    with pytest.raises(TemplateError, match=r"sms/overdue\.firm\.j2.*segments"):
        publish_version(engine, friendly, company, clock)
    assert [v.status for v in list_versions(engine, friendly)] == ["published", "draft"]


def test_a_change_lints_every_template_whose_includes_or_imports_reach_it() -> None:
    sources = {
        "sms/a.x.j2": '{% include "sms/b.x.j2" %}',
        "sms/b.x.j2": '{% from "_partials/m.j2" import line %}{{ line() }}',
        "_partials/m.j2": '{% import "_partials/n.j2" as n %}{% macro line() %}.{% endmacro %}',
        "_partials/n.j2": "{% macro x() %}{% endmacro %}",
        "email/c.x.j2": '{% extends "sms/a.x.j2" %}',
        "sms/d.x.j2": "{% include name ~ '.j2' %}",  # computed: it may reach any template
        "sms/e.x.j2": '{% include "sms/d.x.j2" %}',
        "sms/f.x.j2": "alone",
        "sms/g.x.j2": "{% if %}",  # does not parse: linted, to say so
    }
    reach_n = ["_partials/m.j2", "_partials/n.j2", "email/c.x.j2", "sms/a.x.j2", "sms/b.x.j2"]
    computed = ["sms/d.x.j2", "sms/e.x.j2", "sms/g.x.j2"]
    assert sorted(affected_paths(sources, "_partials/n.j2")) == sorted(reach_n + computed)
    assert sorted(affected_paths(sources, "sms/f.x.j2")) == sorted(["sms/f.x.j2", *computed])
    assert sorted(affected_paths(sources, "sms/a.x.j2")) == sorted(
        ["email/c.x.j2", "sms/a.x.j2", *computed]
    )


def test_unknown_template_or_version(engine: Engine, company: Company, clock: FixedClock) -> None:
    with pytest.raises(NotFoundError, match=r"run .outreach templates sync. first"):
        publish_version(engine, SMS, company, clock)


def test_two_publishes_of_one_template_at_once_leave_one_version_published(
    engine: Engine, templates: Path, company: Company, clock: FixedClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    sync_templates(engine, templates, company, clock, author="maria", publish=True)
    source = (templates / SMS).read_text(encoding="utf-8")
    save_version(engine, SMS, source.replace("Please pay today", "Please pay now"), clock,
                 author="mia")  # fmt: skip
    save_version(engine, SMS, source.replace("Please pay today", "Kindly pay today"), clock,
                 author="max")  # fmt: skip
    # Both finish lint together, then publish at once: each must see the other's.
    both_linted = threading.Barrier(2)
    real = template_store.lint_sources_bounded

    def lint(*args: Any, **kwargs: Any) -> Any:
        found = real(*args, **kwargs)
        both_linted.wait(timeout=60)
        return found

    monkeypatch.setattr(template_store, "lint_sources_bounded", lint)
    errors: list[BaseException] = []

    def publish(version: int) -> None:
        try:
            publish_version(engine, SMS, company, clock, version=version)
        except BaseException as exc:  # reported below, with the statuses
            errors.append(exc)

    threads = [threading.Thread(target=publish, args=(v,)) for v in (2, 3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    statuses = [v.status for v in list_versions(engine, SMS)]
    assert (statuses.count("published"), errors) == (1, [])


def test_the_database_refuses_a_second_published_version(
    engine: Engine, templates: Path, company: Company, clock: FixedClock
) -> None:
    sync_templates(engine, templates, company, clock, author="maria", publish=True)
    edit(templates, SMS, "Please pay today", "Please pay now")
    sync_templates(engine, templates, company, clock, author="li")
    with pytest.raises(IntegrityError), engine.begin() as connection:
        connection.execute(
            update(versions).where(versions.c.version == 2).values(status="published")
        )


def test_a_save_based_on_an_older_version_is_refused_and_stores_nothing(
    engine: Engine, templates: Path, company: Company, clock: FixedClock
) -> None:
    sync_templates(engine, templates, company, clock, author="maria", publish=True)
    source = (templates / SMS).read_text(encoding="utf-8")
    mine = source.replace("Please pay today", "Please pay now")
    assert save_version(engine, SMS, mine, clock, author="mia", based_on=1) == 2
    his = source.replace("Please pay today", "Kindly pay today")
    with pytest.raises(SavedSince, match="mia saved version 2 since you opened version 1") as no:
        save_version(engine, SMS, his, clock, author="max", based_on=1)
    assert (no.value.latest, no.value.base) == (2, source)
    assert [v.version for v in list_versions(engine, SMS)] == [1, 2]
    # The same text as the latest is no loss: nothing to store, whatever it was based on.
    assert save_version(engine, SMS, mine, clock, author="max", based_on=1) == 2
    # Based on the latest (or on nothing, as before), it is stored.
    assert save_version(engine, SMS, his, clock, author="max", based_on=2) == 3


def test_two_saves_on_one_version_at_once_store_one_and_refuse_the_other(
    engine: Engine, templates: Path, company: Company, clock: FixedClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """Both opened version 1; the second saves while the first has read the versions and
    not yet stored its own: it is refused with ``SavedSince``, as it is a moment later, and
    not by the database's unique version number."""
    sync_templates(engine, templates, company, clock, author="maria", publish=True)
    source = (templates / SMS).read_text(encoding="utf-8")
    outcomes: dict[str, object] = {}

    def save(author: str, change: str) -> None:
        try:
            text = source.replace("Please pay today", change)
            outcomes[author] = save_version(engine, SMS, text, clock, author=author, based_on=1)
        except Exception as exc:
            outcomes[author] = exc

    other = threading.Thread(target=save, args=("max", "Kindly pay today"))
    real = template_store._versions_of

    def versions_of(*args: Any) -> Any:
        found = real(*args)
        if not other.is_alive() and "max" not in outcomes:
            other.start()  # the second save starts once the first has read
            other.join(1)  # and waits for the first, if it has to
        return found

    monkeypatch.setattr(template_store, "_versions_of", versions_of)
    save("mia", "Please pay now")
    other.join(30)
    assert outcomes["mia"] == 2
    assert isinstance(outcomes["max"], SavedSince), outcomes["max"]
    assert [v.version for v in list_versions(engine, SMS)] == [1, 2]


def test_a_file_holding_a_nul_is_refused_by_name_and_nothing_is_stored(
    engine: Engine, templates: Path, company: Company, clock: FixedClock
) -> None:
    edit(templates, SMS, "Please pay today", "Please pay\x00 today")
    report = sync_templates(engine, templates, company, clock, author="maria")
    assert [str(issue) for issue in report.refused] == [
        f"{SMS}:1: NUL_CHARACTER: a NUL character: remove it"
    ]
    assert report.added == []
    with pytest.raises(TemplateError, match="NUL character"):
        save_version(engine, SMS, "Please pay\x00 today", clock, author="mia")


GREETING = "_partials/greeting.j2"


def _with_greeting(engine: Engine, templates: Path, company: Company, clock: FixedClock) -> None:
    (templates / GREETING).write_text("Hi {{ debtor.first_name }}, ", encoding="utf-8")
    sync_templates(engine, templates, company, clock, author="m", publish=True)


def test_a_partial_a_template_includes_by_an_expression_is_not_retired(
    engine: Engine, templates: Path, company: Company, clock: FixedClock
) -> None:
    """Which partial such a template includes is known only as it renders: any may be."""
    edit(templates, SMS, "{%", '{% include "_partials/" ~ "greeting.j2" %}{%')
    _with_greeting(engine, templates, company, clock)
    with pytest.raises(TemplateError, match=f"{GREETING} is used by {SMS}"):
        retire(engine, GREETING)
    with engine.connect() as connection:
        assert GREETING in published(connection).sources


def test_a_partial_retired_while_a_template_using_it_is_linted_is_seen_before_publishing(
    engine: Engine,
    templates: Path,
    company: Company,
    clock: FixedClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The template is linted again among what is published now, and refused for the
    partial it lacks, rather than published without it."""
    _with_greeting(engine, templates, company, clock)
    source = (templates / SMS).read_text(encoding="utf-8")
    number = save_version(engine, SMS, f'{{% include "{GREETING}" %}}' + source, clock,
                          author="li")  # fmt: skip
    lint = template_store.lint_sources_bounded
    retired: list[int] = []

    def lint_then_retire(*args: Any, **kwargs: Any) -> Any:
        issues = lint(*args, **kwargs)
        if not retired:  # another marketer retires it meanwhile: nothing published uses it
            retired.append(retire(engine, GREETING))
        return issues

    monkeypatch.setattr(template_store, "lint_sources_bounded", lint_then_retire)
    with pytest.raises(TemplateError, match=f"version {number} of {SMS} is refused: .*greeting"):
        publish_version(engine, SMS, company, clock, version=number)
    with engine.connect() as connection:
        found = published(connection)
    assert retired and GREETING not in found.sources
    assert found.sources[SMS] == source  # the version before stays published


def test_a_sync_that_publishes_reads_a_partial_retired_meanwhile_and_publishes_it_again(
    engine: Engine,
    templates: Path,
    company: Company,
    clock: FixedClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A marketer retires the partial while ``templates sync --publish`` publishes a template
    that now includes it: either the retire waits and is refused (the template uses it), or
    the sync reads the partial as retired and publishes its file again. Never the template
    published without its partial."""
    _with_greeting(engine, templates, company, clock)
    edit(templates, SMS, "{%", f'{{% include "{GREETING}" %}}{{%')
    read = template_store._latest
    retiring: list[threading.Thread] = []
    outcome: list[object] = []

    def retire_greeting() -> None:
        try:
            outcome.append(retire(engine, GREETING))
        except TemplateError as refused:
            outcome.append(refused)

    def read_then_retire(connection: Any) -> Any:
        latest = read(connection)
        if not retiring:
            retiring.append(threading.Thread(target=retire_greeting))
            retiring[0].start()
            # Until the retire is done or waits for the publishing lock. (SQLite: the
            # writer lock this sync holds keeps it waiting until the sync is done.)
            while engine.dialect.name == "postgresql" and not _waits_for_a_lock(engine):
                retiring[0].join(timeout=0.05)
                if not retiring[0].is_alive():
                    break
        return latest

    monkeypatch.setattr(template_store, "_latest", read_then_retire)
    report = sync_templates(engine, templates, company, clock, author="li", publish=True)
    retiring[0].join(timeout=60)
    with engine.connect() as connection:
        found = published(connection)
    assert SMS in dict(report.published)
    assert GREETING in found.sources, outcome
    assert [type(o) for o in outcome] == [TemplateError]


def _waits_for_a_lock(engine: Engine) -> bool:
    with engine.connect() as connection:
        waiting = connection.execute(
            text("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted")
        ).scalar_one()
    return bool(waiting)
