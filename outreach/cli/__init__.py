"""The ``outreach`` command line.

Settings are built once here, by the entry point, and handed down. Errors outreach raises
on purpose print as one line with their remedy, without a traceback; exit codes: 0 done,
1 done with rejected rows or configuration problems, 2 nothing done (a prompt's input
ended included), 130 interrupted (Ctrl-C).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import SecretStr, ValidationError
from rich.markup import escape
from rich.table import Table
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from typer.core import TyperGroup

from outreach.cli import accounts, attempts, compliance, daemons, templates, users
from outreach.cli.accounts import print_summary
from outreach.cli.common import (
    Context,
    context_of,
    ensure_schema,
    err,
    import_defaults,
    out,
    refuse_out_of_range,
    with_database,
)
from outreach.clock import SystemClock
from outreach.config import Settings, mask_url
from outreach.config_files import unreadable
from outreach.db import current_known_revision, current_revision, upgrade
from outreach.errors import ConfigError, OutreachError


class _Commands(TyperGroup):
    """The root of the commands: a prompt left without an answer says so, with the exit
    code of what happened (click's Abort would exit 1, which means done with rejected
    rows)."""

    def invoke(self, ctx: Any) -> Any:  # typer's own click's Context
        try:
            return super().invoke(ctx)
        except (typer.Abort, EOFError) as exc:
            if isinstance(exc, typer.Abort) and isinstance(
                exc.__cause__ or exc.__context__, KeyboardInterrupt
            ):
                err.print("Interrupted: nothing was done.", highlight=False)
                raise typer.Exit(130) from None
            raise OutreachError(
                "no answer to the prompt (its input ended): nothing was done"
            ) from None


app = typer.Typer(
    cls=_Commands,
    help="Omnichannel outreach for accounts receivable and collections.",
    no_args_is_help=True,
    # Locals in a traceback could hold credentials or debtor data: never print them.
    pretty_exceptions_show_locals=False,
)
app.add_typer(accounts.accounts_app, name="accounts")
app.add_typer(accounts.payments_app, name="payments")
app.add_typer(templates.templates_app, name="templates")
app.add_typer(templates.cadences_app, name="cadences")
app.add_typer(compliance.compliance_app, name="compliance")
app.add_typer(users.users_app, name="users")
app.add_typer(attempts.attempts_app, name="attempts")


@app.callback()
def _root(ctx: typer.Context) -> None:
    try:
        settings = Settings()
    except (UnicodeDecodeError, OSError) as exc:
        # The environment's values are text already: what could not be read is .env.
        raise unreadable(Path(".env"), exc) from None
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in error['loc']).upper()}: {error['msg']}"
            for error in exc.errors()
        )
        raise ConfigError(f"invalid settings: {problems} (see .env.example)") from None
    if ctx.invoked_subcommand != "config":
        refuse_placeholder_secrets(settings)
    ctx.obj = Context(settings, SystemClock())


def refuse_placeholder_secrets(settings: Settings) -> None:
    """Outside development, a placeholder secret stops every command but ``config``."""
    secrets = [
        p
        for p in settings.secret_problems()
        if p.severity == "error" and "placeholder" in p.message
    ]
    if secrets:
        names = ", ".join(p.setting for p in secrets)
        raise ConfigError(
            f"{names} still hold placeholder values in {settings.environment}; set real "
            "secrets (see 'outreach config')"
        )


# --- set-up ------------------------------------------------------------------------------


@app.command()
def init(
    ctx: typer.Context,
    demo: Annotated[bool, typer.Option("--demo", help="Also load the demo accounts.")] = False,
) -> None:
    """Create the database, or upgrade it to the current schema."""
    context = context_of(ctx)
    if demo:
        refuse_demo_outside_development(context.settings, "--demo")
    where = mask_url(context.settings.database_url)
    before = current_known_revision(context.engine, where)
    upgrade(context.engine)
    after = current_revision(context.engine)
    if before == after:
        out.print(f"Database {where} is up to date (schema {after}).")
    else:
        out.print(f"Database {where} upgraded from {before or 'empty'} to schema {after}.")
    _seed_templates(context)
    if demo:
        _load_demo(context, count=300, seed=7)
        _demo_users(context)


def refuse_demo_outside_development(settings: Settings, what: str) -> None:
    """Demo accounts, which the daemon would work, and demo users, who could sign in, are
    for a development database only."""
    if settings.environment != "development":
        raise ConfigError(
            f"{what} loads demo accounts and users, for development only: ENVIRONMENT is "
            f"{settings.environment}. Use a database of its own with ENVIRONMENT=development "
            "(as 'make demo' does)"
        )


def _demo_users(context: Context) -> None:
    from outreach.demo import demo_users

    users = demo_users(context.engine, context.clock)
    if users.created:
        names = ", ".join(users.created)
        out.print(f"Web UI users {names}; password for this demo: {users.password}")
    if users.existing:
        names = ", ".join(users.existing)
        out.print(
            f"Web UI users {names} exist already: left as they are, with the password they "
            "had ('outreach users password NAME' sets a new one)."
        )


def _seed_templates(context: Context) -> None:
    """A new database gets the template files as its first published versions; after that
    templates change only through sync, publish and the editor."""
    from outreach.template_store import published

    with context.engine.connect() as connection:
        if published(connection).sources:
            return
    if not context.settings.templates_dir.is_dir():
        out.print(f"No templates in {context.settings.templates_dir}: none published yet.")
        return
    added = templates.store_template_files(
        context, author="outreach init", publish=True, quiet=True
    )
    out.print(f"Published {added} template(s) from {context.settings.templates_dir}.")


@app.command()
def run(
    ctx: typer.Context,
    once: Annotated[
        bool,
        typer.Option(
            "--once",
            help="One plan and one dispatch tick, then exit (SIGTERM or SIGINT stop it as "
            "they stop the daemon).",
        ),
    ] = False,
    web: Annotated[bool, typer.Option(help="Serve the web app in the same process.")] = True,
    host: Annotated[str | None, typer.Option(help="Web host (default: WEB_HOST).")] = None,
    port: Annotated[
        int | None, typer.Option(min=1, max=65535, help="Web port (default: WEB_PORT).")
    ] = None,
    plan_every: Annotated[float, typer.Option(min=0.1, help="Seconds between plan ticks.")] = 60,
    dispatch_every: Annotated[
        float, typer.Option(min=0.1, help="Seconds between dispatch ticks.")
    ] = 5,
    start: Annotated[
        str | None,
        typer.Option(help="Development only: run as if it were this instant (ISO 8601)."),
    ] = None,
    speed: Annotated[
        float, typer.Option(min=1, max=3600, help="Development only: how fast time passes.")
    ] = 1,
) -> None:
    """Run the daemon: plan, check, render and send on a schedule (SIGTERM or SIGINT stops
    it cleanly)."""
    from outreach import event_loop
    from outreach.clock import ScaledClock
    from outreach.daemon import Daemon, RunOptions

    context = with_database(ctx)
    settings = context.settings
    if start is not None or speed != 1:
        if settings.environment != "development":
            raise ConfigError("--start and --speed are for development and demos only")
        context.clock = ScaledClock(_instant_option(start) if start else context.clock.now(), speed)
    configure_logging(settings.log_level)
    options = RunOptions(
        plan_every=plan_every,
        dispatch_every=dispatch_every,
        web=web and not once,
        host=host or settings.web_host,
        port=port or settings.web_port,
    )
    if options.web:
        warn_of_public_url(settings, options.port)
    daemon = Daemon(settings, context.engine, context.clock, options)
    if once:
        planned, sent = event_loop.run(daemon.run_once())
        out.print(f"plan: {planned.summary()}", highlight=False)
        out.print(f"dispatch: {sent.summary()}", highlight=False)
        return
    event_loop.run(daemon.serve())


@app.command()
def simulate(
    ctx: typer.Context,
    start: Annotated[
        str, typer.Option("--from", help="First day (YYYY-MM-DD, 00:00 UTC) or an instant.")
    ],
    days: Annotated[int, typer.Option(min=1, max=366, help="How many days to forecast.")] = 7,
    accounts: Annotated[
        str | None,
        typer.Option(
            help="Only references matching this pattern, e.g. 'DEMO-000*': '*' for any "
            "characters, every other character for itself (case included).",
        ),
    ] = None,
    csv_path: Annotated[Path | None, typer.Option("--csv", help="Write every row here.")] = None,
    limit: Annotated[int, typer.Option(min=0, help="Rows to show on the terminal.")] = 40,
) -> None:
    """Forecast which account gets which step, where and when, and which steps are
    dropped, with the daemon's own code in a scratch copy of the database. Nothing is
    sent."""
    from collections import Counter

    from outreach.simulate import rest_day_calls, write_csv
    from outreach.simulate import simulate as run_simulation

    context = with_database(ctx)
    given = start if "T" in start else f"{start}T00:00:00+00:00"
    first = _instant_option(given, "--from", shown=start)
    _refuse_out_of_range(first, days, start)
    if csv_path is not None:
        _refuse_unwritable(csv_path)  # said before the forecast runs, not after
    if accounts and not _any_account(context, accounts):
        # Nothing was done (exit 2), so that a script does not take it for a quiet forecast.
        raise OutreachError(f"no account's reference matches {accounts!r}: nothing to forecast")
    rows = run_simulation(context.engine, context.settings, first, days, accounts)
    per_day: dict[str, Counter[str]] = {}
    for row in rows:
        per_day.setdefault(row.day, Counter())[row.outcome] += 1
    outcomes = ("sent", "deferred", "blocked", "skipped")
    summary = Table("day (debtor's date)", *outcomes)
    for day, counts in sorted(per_day.items()):
        summary.add_row(day, *(str(counts[outcome]) for outcome in outcomes))
    out.print(summary)
    detail = Table()
    for name in ("day", "local", "zone", "account", "step", "channel", "outcome", "why"):
        detail.add_column(name, overflow="fold")  # a narrow terminal wraps, cuts nothing
    for row in rows[:limit]:
        detail.add_row(row.day, row.local_time, row.zone, row.account, row.step, row.channel,
                       row.outcome, row.detail)  # fmt: skip
    if limit:
        out.print(detail)
    if len(rows) > limit:
        out.print(f"... {len(rows) - limit} more rows" + ("" if csv_path else " (use --csv)"))
    _warn_of_rest_day_calls(rest_day_calls(context.engine, rows, context.settings.default_region))
    if csv_path is not None:
        try:
            write_csv(rows, csv_path)
        except OSError as exc:
            raise OutreachError(f"--csv {csv_path}: cannot write it ({exc.strerror})") from None
        out.print(f"Forecast written to {csv_path} ({len(rows)} rows).")


def _refuse_out_of_range(first: datetime, days: int, shown: str) -> None:
    """Refuse a forecast that runs past the years an import accepts (its first day is in
    them: ``_instant_option`` checked)."""
    from datetime import timedelta

    from outreach.importing.fields import FIRST_YEAR, LAST_YEAR

    years = f"years {FIRST_YEAR} to {LAST_YEAR}"
    if (first + timedelta(days=days)).year > LAST_YEAR:
        raise ConfigError(f"--from {shown!r} with --days {days} runs past {LAST_YEAR} ({years})")


def _refuse_unwritable(path: Path) -> None:
    """Refuse ``--csv`` where the forecast could not be written: a missing folder, a folder
    in the file's place, a file or folder without write permission. Nothing is truncated,
    and a file made to try is removed."""
    if not path.parent.is_dir():
        raise OutreachError(f"--csv {path}: the folder {path.parent} does not exist")
    if path.is_dir():
        raise OutreachError(f"--csv {path}: it is a folder, not a file")
    # Through a link, what it points to: the link stays, and a file made to try goes.
    target = path.resolve()
    existed = target.exists()
    try:
        with target.open("a", encoding="utf-8"):
            pass
        if not existed:
            target.unlink()
    except OSError as exc:
        raise OutreachError(f"--csv {path}: cannot write it ({exc.strerror})") from None


def _warn_of_rest_day_calls(found: Sequence[Any]) -> None:
    """Say which accounts' calls concentrate on Sundays or public holidays, and what keeps
    calls off those days."""
    if not found:
        return
    shown = ", ".join(f"{c.account} ({c.on_rest_days} of {c.calls})" for c in found[:10])
    more = f" and {len(found) - 10} more" if len(found) > 10 else ""
    out.print(
        f"Warning: calls concentrate on Sundays or public holidays for {len(found)} "
        f"account(s): {shown}{more}. Concentrating calls on those days can rebut Reg F's "
        "presumption of compliance (comment 14(b)(2)(i)-2); a restricted_days rule in "
        "COMPLIANCE_RULES_FILE keeps calls off them (docs/compliance.md)."
    )


@app.command("web")
def web_only(
    ctx: typer.Context,
    host: Annotated[str | None, typer.Option(help="Default: WEB_HOST.")] = None,
    port: Annotated[int | None, typer.Option(min=1, max=65535, help="Default: WEB_PORT.")] = None,
) -> None:
    """Serve the web app alone (web UI, health, webhooks), without planning or sending."""
    from outreach.daemon import serve_web

    context = with_database(ctx)
    configure_logging(context.settings.log_level)
    settings = context.settings
    warn_of_public_url(settings, port or settings.web_port)
    serve_web(settings, context.engine, host or settings.web_host, port or settings.web_port)


def warn_of_public_url(settings: Settings, port: int) -> None:
    """Said at start, not refused: a proxy may forward the local address's port."""
    import logging

    warning = settings.public_url_elsewhere(port)
    if warning is not None:
        logging.getLogger("outreach").warning(warning)


app.command("daemons")(daemons.daemons)


def _instant_option(text: str, option: str = "--start", *, shown: str | None = None) -> datetime:
    shown = text if shown is None else shown
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise ConfigError(
            f"{option} {shown!r} is not a date (YYYY-MM-DD) or an ISO 8601 instant"
        ) from None
    if value.tzinfo is None:
        raise ConfigError(f"{option} {shown!r} needs a UTC offset, e.g. 2026-11-23T14:00:00Z")
    refuse_out_of_range(value, option, shown)
    return value


def _any_account(context: Context, pattern: str) -> bool:
    from sqlalchemy import select

    from outreach.simulate import references_like
    from outreach.store import accounts

    with context.engine.connect() as connection:
        chosen = select(accounts.c.id).where(references_like(connection, pattern))
        found = connection.execute(chosen).first()
    return found is not None


def configure_logging(level: str) -> None:
    import logging

    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # SQLAlchemy and HTTP client chatter would carry statements and URLs, not the story.
    for noisy in ("sqlalchemy", "httpx", "aiohttp", "alembic"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLevelName(level)))
    # A tick that outlasts its interval is skipped by design (max_instances=1), not a fault.
    logging.getLogger("apscheduler").setLevel(logging.ERROR)


@app.command("demo-data")
def demo_data(
    ctx: typer.Context,
    count: Annotated[int, typer.Option(min=1, max=100_000, help="How many accounts.")] = 300,
    seed: Annotated[int, typer.Option(help="Same seed, same accounts.")] = 7,
) -> None:
    """Load realistic demo accounts (fictional phones and example.* emails); repeatable.
    Development only (ENVIRONMENT=development)."""
    context = context_of(ctx)
    refuse_demo_outside_development(context.settings, "demo-data")
    ensure_schema(context)
    _load_demo(context, count=count, seed=seed)


def _load_demo(context: Context, *, count: int, seed: int) -> None:
    from outreach.demo import load_demo

    loaded = load_demo(
        context.engine, import_defaults(context, "demo data"), context.clock, count=count,
        seed=seed,
    )  # fmt: skip
    print_summary(loaded.summary)
    out.print(f"Opt-outs recorded: {loaded.opt_outs_added} new.")


@app.command()
def config(ctx: typer.Context) -> None:
    """Print the effective configuration (secrets masked) and every problem with its remedy."""
    settings = context_of(ctx).settings
    table = Table("setting", "value", title="Effective configuration")
    for name in type(settings).model_fields:
        table.add_row(name.upper(), _display(name, getattr(settings, name)))
    for channel, provider in settings.effective_providers().items():
        table.add_row(f"({channel} provider in use)", provider)
    out.print(table)
    problems = settings.problems()
    if not problems:
        out.print("[green]No problems found.[/green]", markup=True)
        return
    for problem in problems:
        colour = "red" if problem.severity == "error" else "yellow"
        out.print(
            f"[{colour}]{problem.severity}[/{colour}] {escape(problem.setting)}: "
            f"{escape(problem.message)}. Fix: {escape(problem.remedy)}.",
            markup=True,
        )
    if any(problem.severity == "error" for problem in problems):
        raise typer.Exit(1)


def _display(name: str, value: Any) -> str:
    if isinstance(value, SecretStr):
        return "set (hidden)" if value.get_secret_value() else "empty"
    if value is None:
        return "not set"
    if name == "database_url":
        return mask_url(str(value))
    return str(value)


def main() -> None:
    try:
        app()
    except OutreachError as exc:
        err.print(f"[red]error:[/red] {escape(str(exc))}", highlight=False, markup=True)
        sys.exit(2)
    except SQLAlchemyError as exc:
        # The engine hides bound parameters, so this names the problem without debtor data.
        cause = exc.orig if isinstance(exc, DBAPIError) else exc
        first_line = str(cause).strip().splitlines()[0] if str(cause).strip() else ""
        err.print(
            f"[red]database error:[/red] {type(cause).__name__}: {escape(first_line)}",
            highlight=False,
            markup=True,
        )
        sys.exit(2)
