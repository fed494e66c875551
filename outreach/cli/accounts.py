"""``outreach accounts`` and ``outreach payments``."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn
from rich.table import Table
from sqlalchemy import select

from outreach import store
from outreach.cli.common import err, import_defaults, out, with_database
from outreach.compliance_store import attempts, inbox_messages
from outreach.errors import DataFileError, OutreachError
from outreach.importing.accounts import ImportHooks, ImportSummary, import_accounts
from outreach.importing.fields import format_minor
from outreach.importing.reader import detect_format
from outreach.importing.rejects import RowProblem

RECENT = 20  # rows of each activity table shown

accounts_app = typer.Typer(help="Import and inspect debtor accounts.", no_args_is_help=True)
payments_app = typer.Typer(help="Record payments.", no_args_is_help=True)


@accounts_app.command("import")
def accounts_import(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="A .csv or .jsonl file (UTF-8).")],
    file_format: Annotated[
        str | None, typer.Option("--format", help="csv or jsonl, when the name does not say.")
    ] = None,
    dry_run: Annotated[bool, typer.Option(help="Validate and count; write nothing.")] = False,
    rejects: Annotated[
        Path | None, typer.Option(help="Write rejected rows, with their reasons, to this file.")
    ] = None,
    batch_size: Annotated[int | None, typer.Option(min=1, max=50_000)] = None,
    quiet: Annotated[bool, typer.Option(help="Do not list rejected rows one by one.")] = False,
) -> None:
    """Import or update accounts by reference. Bad rows are reported; good rows land."""
    context = with_database(ctx)
    chosen = detect_format(file, file_format)
    if not file.is_file():
        raise DataFileError(f"{file}: no such file")
    with _progress() as progress:
        # The description is markup (the progress bar's column reads it so).
        task = progress.add_task(f"importing {escape(file.name)}", total=file.stat().st_size)

        def on_problem(problem: RowProblem) -> None:
            if not quiet:
                progress.console.print(
                    f"[red]rejected[/red] {escape(str(problem))}", highlight=False, markup=True
                )

        summary = import_accounts(
            context.engine,
            file,
            chosen,
            import_defaults(context, file.name),
            context.clock,
            batch_size=batch_size or context.settings.import_batch_size,
            dry_run=dry_run,
            rejects_path=rejects,
            hooks=ImportHooks(
                on_problem, lambda done, total: progress.update(task, completed=done)
            ),
        )
        progress.update(task, completed=file.stat().st_size)
    print_summary(summary)
    if rejects is not None and summary.rejected:
        out.print(f"Rejected rows written to {rejects}.")
    if summary.rejected:
        raise typer.Exit(1)


def _progress() -> Progress:
    return Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        DownloadColumn(),
        TimeRemainingColumn(),
        console=err,
        transient=True,
        disable=not err.is_terminal,
    )


def print_summary(summary: ImportSummary) -> None:
    verb = "would be " if summary.dry_run else ""
    out.print(
        f"{summary.rows_read} rows read: {summary.created} {verb}created, "
        f"{summary.updated} {verb}updated, {summary.unchanged} unchanged, "
        f"{summary.rejected} rejected."
    )
    if summary.kept_closed:
        out.print(
            f"{summary.kept_closed} of the updated accounts are paid or closed and stay closed "
            "for outreach."
        )
    if summary.unknown_columns:
        out.print(f"Ignored unknown columns: {', '.join(summary.unknown_columns)}.")


@accounts_app.command("show")
def accounts_show(
    ctx: typer.Context, reference: Annotated[str, typer.Argument(help="The account reference.")]
) -> None:
    """Show one account: its figures, contact points, payments, messages, replies and
    compliance events."""
    context = with_database(ctx)
    with context.engine.connect() as connection:
        account = store.account_by_reference(connection, reference)
        contacts = connection.execute(
            select(store.contact_points)
            .where(store.contact_points.c.account_id == account.id)
            .order_by(store.contact_points.c.priority, store.contact_points.c.channel)
        ).all()
        paid = connection.execute(
            select(store.payments)
            .where(store.payments.c.account_id == account.id)
            .order_by(store.payments.c.paid_on)
        ).all()
        sent = connection.execute(
            select(attempts)
            .where(attempts.c.account_id == account.id)
            .order_by(attempts.c.created_at.desc(), attempts.c.id.desc())
            .limit(RECENT)
        ).all()
        replies = connection.execute(
            select(inbox_messages)
            .where(inbox_messages.c.account_id == account.id)
            .order_by(inbox_messages.c.received_at.desc())
            .limit(RECENT)
        ).all()
        events = connection.execute(
            select(store.compliance_events)
            .where(store.compliance_events.c.account_id == account.id)
            .order_by(store.compliance_events.c.occurred_at.desc())
            .limit(RECENT)
        ).all()
    details = Table(show_header=False, title=f"Account {reference}")
    for column in store.accounts.columns:
        value = getattr(account, column.name)
        if column.name == "balance_minor":
            details.add_row(
                "balance", f"{format_minor(value, account.currency)} {account.currency}"
            )
        elif column.name != "id":
            details.add_row(column.name, "" if value is None else str(value))
    out.print(details)
    points = Table("channel", "address", "kind", "consent", "status", title="Contact points")
    for point in contacts:
        consent = f"yes ({point.consent_source})" if point.consent else "no"
        points.add_row(point.channel, point.address, point.kind, consent, point.status)
    out.print(points)
    if paid:
        history = Table("paid on", "amount", "source", title="Payments")
        for payment in paid:
            amount = format_minor(payment.amount_minor, payment.currency)
            history.add_row(str(payment.paid_on), f"{amount} {payment.currency}", payment.source)
        out.print(history)
    _print_activity(sent, replies, events)


def _print_activity(sent: Sequence[Any], replies: Sequence[Any], events: Sequence[Any]) -> None:
    """What was sent and what came back: the attempts with their provider's latest word,
    the debtor's replies, and what the debtor said or what happened (compliance events)."""
    if sent:
        table = Table("created (UTC)", "step", "channel", "to", "status", "outcome", "provider id",
                      title=f"Messages (latest {RECENT})")  # fmt: skip
        for a in sent:
            table.add_row(f"{a.created_at:%Y-%m-%d %H:%M}", a.step_key, a.channel, a.to_address,
                          a.status, a.outcome or "", a.provider_message_id or "")  # fmt: skip
        out.print(table)
    if replies:
        table = Table("received (UTC)", "channel", "from", "intent", "status", "message",
                      title="Replies")  # fmt: skip
        for m in replies:
            table.add_row(f"{m.received_at:%Y-%m-%d %H:%M}", m.channel, m.from_address,
                          m.intent or "", m.status, m.body[:80])  # fmt: skip
        out.print(table)
    if events:
        table = Table("when (UTC)", "kind", "channel", "address", "source",
                      title="Compliance events")  # fmt: skip
        for e in events:
            table.add_row(f"{e.occurred_at:%Y-%m-%d %H:%M}", e.kind, e.channel or "",
                          e.address or "", e.source)  # fmt: skip
        out.print(table)


# --- payments ----------------------------------------------------------------------------


@payments_app.command("import")
def payments_import(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="A .csv or .jsonl file of payments (UTF-8).")],
    file_format: Annotated[str | None, typer.Option("--format")] = None,
    rejects: Annotated[
        Path | None,
        typer.Option(help="Write rejected rows here, to correct (keeping row_key) and import."),
    ] = None,
) -> None:
    """Record payments from a file; importing it again records nothing twice."""
    from outreach.payments import import_payments

    context = with_database(ctx)
    summary = import_payments(
        context.engine,
        file,
        detect_format(file, file_format),
        context.clock,
        rejects_path=rejects,
        on_problem=lambda problem: err.print(
            f"[red]rejected[/red] {escape(str(problem))}", highlight=False, markup=True
        ),
    )
    out.print(
        f"{summary.rows_read} rows read: {summary.recorded} payments recorded, "
        f"{summary.already_recorded} already recorded, {summary.rejected} rejected; "
        f"{summary.accounts_paid_off} accounts paid in full and closed for outreach."
    )
    if summary.unknown_columns:
        out.print(f"Ignored unknown columns: {', '.join(summary.unknown_columns)}.")
    if summary.rejected:
        raise typer.Exit(1)


@payments_app.command("record")
def payments_record(
    ctx: typer.Context,
    reference: Annotated[str, typer.Argument(help="The account reference.")],
    amount: Annotated[str, typer.Argument(help="The amount, such as 125.00.")],
    paid_on: Annotated[
        str | None, typer.Option(help="The day it was paid (YYYY-MM-DD); today by default.")
    ] = None,
    currency: Annotated[str | None, typer.Option(help="Must match the account's.")] = None,
    payment_id: Annotated[
        str | None,
        typer.Option(help="The payment's id in your system: recording it twice is safe."),
    ] = None,
) -> None:
    """Record one payment against an account."""
    from outreach.payments import record_payment

    context = with_database(ctx)
    try:
        day = date.fromisoformat(paid_on) if paid_on else None
    except ValueError:
        raise OutreachError(f"--paid-on {paid_on!r} is not a date (YYYY-MM-DD)") from None
    recorded, balance, status = record_payment(
        context.engine, context.clock, reference, amount, paid_on=day, currency=currency,
        payment_id=payment_id,
    )  # fmt: skip
    with context.engine.connect() as connection:
        account_currency = str(store.account_by_reference(connection, reference).currency)
    shown = f"{format_minor(balance, account_currency)} {account_currency}"
    if not recorded:
        out.print(f"Payment {payment_id} was already recorded; balance {shown}, {status}.")
        return
    out.print(f"Recorded. Account {reference}: balance {shown}, status {status}.")
