"""``outreach templates`` and ``outreach cadences``: what marketers and operators edit."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Annotated
from zoneinfo import ZoneInfo

import typer
from rich.markup import escape
from rich.table import Table
from sqlalchemy.exc import SQLAlchemyError

from outreach import store
from outreach.cadence import load_cadences
from outreach.cadence_changes import unknown_steps, warn_of_unknown_steps
from outreach.channels import lint_policy
from outreach.cli.common import (
    Context,
    context_of,
    ensure_schema,
    err,
    out,
    system_user,
    with_database,
)
from outreach.compliance.rules import load_ruleset
from outreach.errors import NotFoundError, OutreachError, TemplateError
from outreach.rendering.context import SAMPLE_ACCOUNTS, SAMPLE_TODAY, MessageFacts, load_company
from outreach.rendering.environment import TemplateKey, read_template_files
from outreach.rendering.lint_limits import lint_sources_bounded, preview_bounded
from outreach.rendering.render import Rendered, Renderer
from outreach.template_store import (
    list_versions,
    publish_version,
    published,
    retire,
    rollback,
    sync_templates,
)
from outreach.templates_in_use import templates_in_use
from outreach.written_facts import contacted, time_barred

templates_app = typer.Typer(
    help="Lint, preview, sync and publish message templates.", no_args_is_help=True
)
cadences_app = typer.Typer(help="Check and show cadences.", no_args_is_help=True)

ChannelOption = Annotated[str, typer.Option("--channel", "-c", help="sms, email or voice.")]
TemplatePath = Annotated[str, typer.Argument(help="Such as sms/overdue.firm.j2.")]
ToneOption = Annotated[str, typer.Option("--tone", "-t", help="friendly, firm or final.")]


@templates_app.command("lint")
def templates_lint(
    ctx: typer.Context,
    paths: Annotated[
        list[str] | None,
        typer.Argument(help="Paths under templates/, such as sms/overdue.firm.j2."),
    ] = None,
) -> None:
    """Check templates: syntax, variables, required content, SMS length. Exit 1 on any issue."""
    settings = context_of(ctx).settings
    sources = read_template_files(settings.templates_dir)
    chosen = [p.removeprefix(f"{settings.templates_dir.as_posix()}/") for p in paths or []]
    for path in chosen:
        if path not in sources:
            raise NotFoundError(f"no template {path} under {settings.templates_dir}")
    issues = lint_sources_bounded(
        sources,
        load_company(settings.templates_dir),
        paths=chosen or None,
        policy=lint_policy(settings.channels_dir),
    )
    for issue in issues:
        out.print(f"[red]{escape(str(issue))}[/red]", highlight=False, markup=True)
    checked = len(chosen) if chosen else len(sources)
    out.print(f"{checked} template(s) checked, {len(issues)} issue(s).")
    if issues:
        raise typer.Exit(1)


@templates_app.command("preview")
def templates_preview(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The template name, such as overdue.")],
    channel: ChannelOption,
    tone: ToneOption,
    account: Annotated[str | None, typer.Option(help="Render for this account reference.")] = None,
    locale: Annotated[
        str | None, typer.Option(help="Render in this locale (sample data; not with --account).")
    ] = None,
    sample: Annotated[
        int | None,
        typer.Option(min=1, max=len(SAMPLE_ACCOUNTS), help="Which sample account (1 by default)."),
    ] = None,
    published_only: Annotated[
        bool, typer.Option("--published", help="Use the published versions, not the files.")
    ] = False,
) -> None:
    """Show exactly what a debtor would receive: SMS segments, email subject and both bodies.
    Lint's findings for the template come first, on standard error."""
    context = context_of(ctx)
    if account is not None and (locale is not None or sample is not None):
        given = "--locale" if locale is not None else "--sample"
        raise OutreachError(
            f"{given} is for the sample data: --account renders the account's own facts, in "
            "its own locale"
        )
    settings = context.settings
    company = load_company(settings.templates_dir)
    if published_only:
        ensure_schema(context)
        with context.engine.connect() as connection:
            sources = published(connection).sources
    else:
        sources = read_template_files(settings.templates_dir)
    if account is not None:
        facts, today = _account_facts(context, account)
    else:
        facts, today = SAMPLE_ACCOUNTS[(sample or 1) - 1], SAMPLE_TODAY
        if locale is not None:
            facts = MessageFacts(**{**facts.__dict__, "locale": locale})
    key = Renderer(sources).resolve(channel, name, tone, facts.locale)
    # In a child within lint's limits: a template that would render for ever, or fill the
    # memory, is stopped with its cause rather than hanging the terminal.
    policy = lint_policy(settings.channels_dir)
    preview = preview_bounded(sources, key.path, company, facts, policy=policy, today=today)
    for issue in preview.issues:
        err.print(f"lint: {issue}", highlight=False, markup=False)
    if preview.rendered is None:
        raise TemplateError(f"{key.path} does not render: see the lint lines above")
    _show(preview.rendered, facts)


def _account_facts(context: Context, reference: str) -> tuple[MessageFacts, date]:
    ensure_schema(context)
    with context.engine.connect() as connection:
        row = store.account_by_reference(connection, reference)
        # As its next message would be written: the first, unless one reached the debtor.
        first_contact = not contacted(connection, [row.id])
    now = context.clock.now()
    rules = load_ruleset(context.settings.compliance_rules_file)
    barred = time_barred(row, rules, row.jurisdiction or context.settings.default_region, now)
    facts = MessageFacts(
        row.reference,
        row.name,
        row.balance_minor,
        row.currency,
        row.due_date,
        row.locale,
        row.collector_type,
        unsubscribe_url="(the unsubscribe link of each message)",
        first_contact=first_contact,
        time_barred=barred,
    )
    zone = ZoneInfo(row.timezone or "America/New_York")
    return facts, now.astimezone(zone).date()


def _show(rendered: Rendered, facts: MessageFacts) -> None:
    out.print(
        f"[bold]{escape(rendered.key.path)}[/bold] for {escape(facts.reference)} "
        f"({escape(facts.locale)})",
        highlight=False,
        markup=True,
    )
    if rendered.sms is not None:
        out.print(f"[dim]{escape(rendered.sms.describe())}[/dim]", highlight=False, markup=True)
        out.print(rendered.text, highlight=False, markup=False, soft_wrap=True)
    elif rendered.subject is not None:
        out.print(f"[bold]Subject:[/bold] {escape(rendered.subject)}", highlight=False, markup=True)
        out.rule("text")
        out.print(rendered.text, highlight=False, markup=False, soft_wrap=True)
        out.rule("html")
        out.print(rendered.html or "", highlight=False, markup=False, soft_wrap=True)
    else:
        out.rule("a person answers")
        out.print(rendered.text, highlight=False, markup=False, soft_wrap=True)
        out.rule("an answering machine (limited-content message)")
        out.print(rendered.voicemail or "", highlight=False, markup=False, soft_wrap=True)


@templates_app.command("sync")
def templates_sync(
    ctx: typer.Context,
    publish: Annotated[bool, typer.Option(help="Also publish what was added.")] = False,
    author: Annotated[str | None, typer.Option(help="Recorded with each new version.")] = None,
) -> None:
    """Store a new version of every template file whose content changed (after lint)."""
    context = with_database(ctx)
    store_template_files(context, author=author or system_user(), publish=publish)


def store_template_files(
    context: Context, *, author: str, publish: bool, quiet: bool = False
) -> int:
    """Sync the template files into the database (all or nothing, after lint); how many
    versions were added."""
    settings = context.settings
    report = sync_templates(
        context.engine,
        settings.templates_dir,
        load_company(settings.templates_dir),
        context.clock,
        author=author,
        publish=publish,
        policy=lint_policy(settings.channels_dir),
    )
    if report.refused:
        for issue in report.refused:
            out.print(f"[red]{escape(str(issue))}[/red]", highlight=False, markup=True)
        raise TemplateError(f"{len(report.refused)} lint issue(s): nothing was stored")
    if not quiet:
        for path, version in report.added:
            out.print(f"added {path} version {version}", highlight=False)
        for path, version in report.published:
            out.print(f"published {path} version {version}", highlight=False)
        out.print(f"{len(report.added)} added, {len(report.unchanged)} unchanged.")
    return len(report.added)


@templates_app.command("publish")
def templates_publish(
    ctx: typer.Context,
    path: TemplatePath,
    version: Annotated[int | None, typer.Option(help="Default: the latest version.")] = None,
) -> None:
    """Publish a stored version: the daemon uses it from its next message on."""
    context = with_database(ctx)
    settings = context.settings
    published_version = publish_version(
        context.engine,
        path,
        load_company(settings.templates_dir),
        context.clock,
        version=version,
        policy=lint_policy(settings.channels_dir),
    )
    out.print(f"published {path} version {published_version}", highlight=False)


@templates_app.command("rollback")
def templates_rollback(ctx: typer.Context, path: TemplatePath) -> None:
    """Publish the version before the current one."""
    context = with_database(ctx)
    settings = context.settings
    company = load_company(settings.templates_dir)
    policy = lint_policy(settings.channels_dir)
    version = rollback(context.engine, path, company, context.clock, policy=policy)
    out.print(f"rolled back {path} to version {version}", highlight=False)


@templates_app.command("retire")
def templates_retire(ctx: typer.Context, path: TemplatePath) -> None:
    """Retire the published version, leaving none: the daemon stops sending the template.
    Publishing a version brings it back."""
    context = with_database(ctx)
    in_use = templates_in_use(context.settings.schedules_dir)
    version = retire(context.engine, path, in_use=in_use)
    out.print(f"retired {path} version {version}: no version is published", highlight=False)


@templates_app.command("versions")
def templates_versions(ctx: typer.Context, path: TemplatePath) -> None:
    """List the stored versions of a template."""
    context = with_database(ctx)
    rows = list_versions(context.engine, path)
    if not rows:
        raise NotFoundError(f"no versions of {path}; run 'outreach templates sync'")
    table = Table("version", "status", "author", "created", "hash", title=path)
    for row in rows:
        table.add_row(
            str(row.version), row.status, row.author, str(row.created_at), row.content_hash[:12]
        )
    out.print(table)


@cadences_app.command("check")
def cadences_check(ctx: typer.Context) -> None:
    """Validate every cadence in schedules/, naming the file, the step and the reason."""
    settings = context_of(ctx).settings
    sources = read_template_files(settings.templates_dir)
    cadences = load_cadences(settings.schedules_dir, _template_exists(sources))
    for name, cadence in sorted(cadences.items()):
        out.print(f"{name}: {len(cadence.steps)} steps, valid.", highlight=False)
    context = context_of(ctx)
    try:
        ensure_schema(context)
        with context.engine.connect() as connection:
            found = unknown_steps(connection, cadences)
    except (OutreachError, SQLAlchemyError):
        # The files alone can be checked where there is no database (before 'outreach init').
        return
    for warning in warn_of_unknown_steps(found, str(settings.schedules_dir)):
        err.print(f"warning: {warning}", highlight=False, soft_wrap=True)


@cadences_app.command("show")
def cadences_show(ctx: typer.Context, name: Annotated[str, typer.Argument()]) -> None:
    """Show a cadence's steps in order."""
    settings = context_of(ctx).settings
    cadences = load_cadences(
        settings.schedules_dir, _template_exists(read_template_files(settings.templates_dir))
    )
    if name not in cadences:
        raise NotFoundError(f"no cadence {name!r} (known: {', '.join(sorted(cadences))})")
    cadence = cadences[name]
    table = Table(
        "key",
        "when",
        "channel",
        "fallback",
        "template",
        "tone",
        "conditions",
        title=f"{name}: {cadence.description}",
    )
    for step in cadence.steps:
        conditions = []
        if step.conditions.min_balance is not None:
            conditions.append(f"balance >= {step.conditions.min_balance}")
        conditions += (
            [f"status in {','.join(step.conditions.statuses)}"] if step.conditions.statuses else []
        )
        conditions += (
            [f"locale in {','.join(step.conditions.locales)}"] if step.conditions.locales else []
        )
        table.add_row(
            step.key,
            str(step.anchor),
            step.channel,
            ", ".join(step.fallback),
            step.template,
            step.tone,
            "; ".join(conditions),
        )
    out.print(table)
    stops = ", ".join(cadence.stop_when) or "none"
    handoff = (
        f"; hand-off to agents {cadence.handoff.after_days} days after the last step"
        if cadence.handoff
        else ""
    )
    out.print(f"Stops when: {stops}{handoff}.", highlight=False)


def _template_exists(sources: dict[str, str]) -> Callable[[str, str, str], bool]:
    def exists(channel: str, template: str, tone: str) -> bool:
        return TemplateKey(channel, template, tone).path in sources

    return exists
