"""``outreach attempts``: the sends held for review, and settling them."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from outreach.cli.common import out, system_user, with_database
from outreach.errors import OutreachError
from outreach.review import Settlement, held_for_review, settle
from outreach.store import account_by_reference

attempts_app = typer.Typer(
    help="Messages whose outcome is not known (status unknown), held for review.",
    no_args_is_help=True,
)
_HOW = ", ".join(how.value for how in Settlement)


@attempts_app.command("held")
def held(
    ctx: typer.Context,
    account: Annotated[
        str | None, typer.Option(help="Only this account's (its reference).")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, help="At most this many, oldest first.")] = 200,
) -> None:
    """The messages held for review: each may have reached the provider, so it is never sent
    again on its own. Check each with the provider, then settle it."""
    context = with_database(ctx)
    with context.engine.connect() as connection:
        if account is not None:
            # An unknown reference is said as such, not as nothing held for it.
            account_by_reference(connection, account)
        found = held_for_review(connection, reference=account, limit=limit)
    if not found:
        out.print(f"No message{'' if account is None else ' of ' + account} is held for review.")
        return
    table = Table("id", "account", "channel", "to", "step", "provider", "provider id",
                  "held since (UTC)", "why", "message")  # fmt: skip
    for item in found:
        table.add_row(
            str(item.id), item.reference, item.channel, item.to_address, item.step_key,
            item.provider or "", item.provider_message_id or "",
            f"{item.held_since:%Y-%m-%d %H:%M}", item.error_message or "",
            (item.subject or item.body)[:60],
        )  # fmt: skip
    out.print(table)
    out.print(
        f"{len(found)} held. Settle each: outreach attempts settle ID --as sent "
        "[--provider-id ID] | resend | cancel",
        highlight=False,
    )


@attempts_app.command("settle")
def settle_(
    ctx: typer.Context,
    attempt_id: Annotated[int, typer.Argument(help="The attempt's id ('attempts held').")],
    how: Annotated[
        str,
        typer.Option(
            "--as",
            help="sent: the provider has it; resend: it does not, send it again (checked "
            "again as it leaves); cancel: it did not go and is not to go.",
        ),
    ],
    provider_id: Annotated[
        str | None, typer.Option("--provider-id", help="With --as sent: the provider's id.")
    ] = None,
    note: Annotated[str, typer.Option(help="What you checked, for the record.")] = "",
    by: Annotated[
        str | None, typer.Option(help="Who settles it (by default, this system's user).")
    ] = None,
) -> None:
    """Settle a message held for review, once checked with the provider."""
    context = with_database(ctx)
    try:
        chosen = Settlement(how)
    except ValueError:
        raise OutreachError(f"--as {how!r}: choose one of {_HOW}") from None
    with context.engine.begin() as connection:
        settle(connection, attempt_id, chosen, context.clock.now(), by or system_user(),
               provider_message_id=provider_id, note=note)  # fmt: skip
    out.print(
        {
            Settlement.SENT: f"Attempt {attempt_id} is settled as sent.",
            Settlement.RESEND: f"Attempt {attempt_id} is queued again; it is checked again "
            "as it leaves.",
            Settlement.CANCEL: f"Attempt {attempt_id} is cancelled.",
        }[chosen],
        highlight=False,
    )
