"""``outreach compliance``: ask the engine, explain its decisions, record what debtors said."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Annotated, Any
from zoneinfo import ZoneInfo

import typer
from rich.markup import escape
from rich.table import Table
from sqlalchemy import Connection, select

from outreach import store
from outreach.cli.common import Context, context_of, out, refuse_out_of_range, with_database
from outreach.compliance.decision import Decision
from outreach.compliance.engine import evaluate
from outreach.compliance.facts import EVENT_KINDS
from outreach.compliance.rules import COLLECTOR_TYPES, RuleSet, load_ruleset
from outreach.compliance.scenario import read_scenario
from outreach.compliance.windows import WEEKDAYS
from outreach.compliance_store import (
    PERSON_RESTRICTIONS,
    Lift,
    decisions,
    designated_times,
    held_from_elsewhere,
    in_force,
    load_debtors,
    person_accounts,
    situation,
    still_held,
)
from outreach.errors import NotFoundError, OutreachError
from outreach.importing.fields import FieldError, parse_email, parse_jurisdiction, parse_phone
from outreach.models import ContactStatus, SuppressionReason
from outreach.opt_outs import (
    accounts_using,
    held_without_opt_in,
    hold_addresses,
    ledger_address,
    lift_opt_outs,
    phone_or_email,
    same_address,
    suppress_address,
)

compliance_app = typer.Typer(
    help="Ask the compliance engine, explain its decisions, record what debtors said.",
    no_args_is_help=True,
)
CHANNELS = ("sms", "email", "voice")


def ruleset_of(context: Context) -> RuleSet:
    return load_ruleset(context.settings.compliance_rules_file)


@compliance_app.command("check")
def check(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="A scenario file (docs/compliance.md).")],
) -> None:
    """Evaluate a what-if scenario and print the decision as JSON."""
    decision = evaluate(read_scenario(file).situation(), ruleset_of(context_of(ctx)))
    out.print_json(json.dumps(decision.as_json()))


@compliance_app.command("explain")
def explain(
    ctx: typer.Context,
    account: Annotated[str, typer.Option("--account", help="The account's reference.")],
    channel: Annotated[
        str | None, typer.Option(help="sms, email or voice; every channel by default.")
    ] = None,
    at: Annotated[
        str | None, typer.Option(help="An instant with its offset (ISO 8601); now by default.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the decisions as JSON.")] = False,
) -> None:
    """Say in plain words whether, and when, outreach may contact an account, and why."""
    context = with_database(ctx)
    if channel is not None and channel not in CHANNELS:
        raise OutreachError(f"--channel {channel!r}: use one of {', '.join(CHANNELS)}")
    now = _instant(at, "--at") if at else context.clock.now()
    rules = ruleset_of(context)
    with context.engine.connect() as connection:
        row = store.account_by_reference(connection, account)
        record = load_debtors(
            connection,
            [row],
            now,
            rules.lookback_days,
            context.settings.default_region,
            rules=rules,
        )[row.id]
        targets = _addresses(connection, row.id, [channel] if channel else list(CHANNELS))
        shared = not as_json and any(event.elsewhere for event in record.events)
        held = held_from_elsewhere(connection, row.id, now) if shared else []
    # Asked about the address as the planner asks (a mailbox without case), shown as stored.
    answers = [
        (ch, address, evaluate(situation(record, ch, ledger_address(ch, address), now), rules))
        for ch, address in targets
    ]
    if as_json:
        out.print_json(
            json.dumps([{"channel": c, "to": a} | d.as_json() for c, a, d in answers], default=str)
        )
        return
    out.print(
        f"Account {row.reference} ({row.name}): {row.collector_type.replace('_', '-')} "
        f"collection, jurisdiction {record.jurisdiction}",
        highlight=False,
    )
    if not answers:
        out.print("No active contact point on the channels asked about.")
        return
    first = answers[0][2]
    out.print("Where the debtor may be: " + "; ".join(f"{z} ({s})" for z, s in first.zones))
    out.print(
        f"Asked at {now.astimezone(UTC):%Y-%m-%d %H:%M} UTC, rule set {first.ruleset_version}"
    )
    if held:
        out.print(
            "Held from other accounts (the debtor's, or using their number), until lifted on "
            "the account each was recorded on:"
        )
        for where, restriction in held:
            out.print(f"  {where}: {_restriction(restriction)}", soft_wrap=True, highlight=False)
    for ch, address, decision in answers:
        where = f"{escape(ch)} to {escape(address)}"
        out.print(f"\n{where}: {_headline(decision)}", highlight=False, markup=True)
        for reason in decision.reasons:
            if reason.code == "OK":
                continue
            out.print(f"  - {reason.code}: {reason.detail}.", highlight=False)
            if reason.lifted_by:
                out.print(f"    Lifted by {reason.lifted_by}.", highlight=False)
            out.print(f"    ({reason.citation})", style="dim", highlight=False)
        passed = sum(1 for c in decision.checks if c.outcome == "pass")
        out.print(f"  {len(decision.checks)} rules evaluated, {passed} passed.", style="dim")


@compliance_app.command("decisions")
def list_decisions(
    ctx: typer.Context,
    account: Annotated[str, typer.Option("--account", help="The account's reference.")],
    limit: Annotated[int, typer.Option(min=1, max=10_000)] = 50,
) -> None:
    """The decisions stored for an account, newest first."""
    context = with_database(ctx)
    with context.engine.connect() as connection:
        row = store.account_by_reference(connection, account)
        found = connection.execute(
            select(decisions)
            .where(decisions.c.account_id == row.id)
            .order_by(decisions.c.decided_at.desc(), decisions.c.id.desc())
            .limit(limit)
        ).all()
    table = Table("id", "decided (UTC)", "stage", "step", "channel", "verdict", "not before",
                  "reasons", "rules")  # fmt: skip
    for d in found:
        table.add_row(
            str(d.id),
            f"{d.decided_at:%Y-%m-%d %H:%M}",
            d.stage,
            d.step_key or "",
            f"{d.channel} {d.address or ''}".strip(),
            d.verdict,
            f"{d.not_before:%Y-%m-%d %H:%M}" if d.not_before else "",
            ", ".join(r["code"] for r in d.reasons),
            d.ruleset_version,
        )
    out.print(table)


@compliance_app.command("snapshot")
def snapshot(
    ctx: typer.Context,
    decision_id: Annotated[int, typer.Argument(help="A decision's id (see 'decisions').")],
) -> None:
    """Print what a stored decision was asked, as a scenario for 'compliance check'."""
    context = with_database(ctx)
    with context.engine.connect() as connection:
        found = connection.execute(
            select(decisions.c.input_snapshot).where(decisions.c.id == decision_id)
        ).scalar_one_or_none()
    if found is None:
        raise NotFoundError(f"no decision {decision_id} with a stored input")
    out.print_json(json.dumps(found))


@compliance_app.command("rules")
def rules(
    ctx: typer.Context,
    jurisdiction: Annotated[str, typer.Option(help="e.g. US, US-MA, US-NY-NYC.")] = "US",
    collector: Annotated[str, typer.Option(help="first_party or third_party.")] = "third_party",
    on: Annotated[str | None, typer.Option(help="A date (YYYY-MM-DD); today by default.")] = None,
) -> None:
    """The rules in force for a jurisdiction and collector type, with their citations."""
    context = context_of(ctx)
    where = _jurisdiction(jurisdiction)
    if collector not in COLLECTOR_TYPES:
        raise OutreachError(f"--collector {collector!r}: use {' or '.join(COLLECTOR_TYPES)}")
    ruleset = ruleset_of(context)
    day = _date(on, "--on") if on else context.clock.now().date()
    table = Table("code", "kind", "channels", "profile", "citation", title=ruleset.version)
    for profile, rule in ruleset.rules_for([where], collector, day):
        table.add_row(rule.code, rule.kind, ",".join(rule.channels), profile.id, rule.citation)
    out.print(table)


@compliance_app.command("record")
def record(
    ctx: typer.Context,
    account: Annotated[str, typer.Option("--account", help="The account's reference.")],
    kind: Annotated[str, typer.Option(help=f"One of {', '.join(EVENT_KINDS)}.")],
    channel: Annotated[str | None, typer.Option(help="sms, email or voice.")] = None,
    address: Annotated[str | None, typer.Option(help="The phone or email it concerns.")] = None,
    at: Annotated[str | None, typer.Option(help="When it happened (ISO 8601); now.")] = None,
    source: Annotated[str, typer.Option(help="Who or what says so.")] = "cli",
    note: Annotated[str | None, typer.Option(help="Free text for the record.")] = None,
) -> None:
    """Record what a debtor said or what happened (a cease letter, a dispute, an opt-out)."""
    context = with_database(ctx)
    if kind not in EVENT_KINDS:
        raise OutreachError(f"--kind {kind!r}: use one of {', '.join(EVENT_KINDS)}")
    if channel is not None and channel not in CHANNELS:
        raise OutreachError(f"--channel {channel!r}: use one of {', '.join(CHANNELS)}")
    if kind == "prohibited_medium" and channel is None:
        raise OutreachError("--kind prohibited_medium needs --channel: the medium not to use")
    if kind == "opt_out" and channel is None and address is None:
        raise OutreachError(
            "--kind opt_out needs --channel, --address or both: what it is about (a request "
            "to stop all contact is --kind cease)"
        )
    if kind == "opt_in" and channel is None:
        raise OutreachError(
            "--kind opt_in needs --channel: an opt-in is to one channel (with --address, that "
            "address's opt-out is lifted; without, a prohibited medium)"
        )
    when = _instant(at, "--at") if at else context.clock.now()
    if when > context.clock.now():
        # A word dated ahead would outrank what the debtor says until then (a STOP).
        raise OutreachError(f"--at {at} is later than now: record what has happened")
    if address is not None:
        address, channels = _address_and_channels(address, channel, context)
    with context.engine.begin() as connection:
        row = store.account_by_reference(connection, account)
        if address is not None and kind in _CONSENT_KINDS:
            _refuse_a_stranger(connection, row.id, account, channels, address)
        if address is not None and kind in ABOUT_AN_ADDRESS:
            others = _about_an_address(connection, row.id, kind, channels, address, when,
                                       source, note)  # fmt: skip
        else:
            others = []
            connection.execute(
                store.compliance_events.insert().values(
                    account_id=row.id, kind=kind, channel=channel, address=address,
                    occurred_at=when, source=source[:200], note=note[:500] if note else None,
                )
            )  # fmt: skip
        now = context.clock.now()
        person = (
            person_accounts(connection, row.id, address if kind == "consent_revoked" else None)
            if kind in PERSON_RESTRICTIONS and in_force(connection, row.id, kind, when, now)
            else []
        )
        still = still_held(connection, row.id, Lift(kind, channel, address), now)
    out.print(f"Recorded {kind} for {account} at {when.isoformat()}.")
    if others:
        out.print(
            f"{address} is also used by {', '.join(others)}: recorded there too, as the "
            "debtor's reply would be."
        )
    if person:
        where = "their other account(s)"
        if kind == "consent_revoked" and address is not None and "@" not in address:
            where += f" and every account using {address}"
        out.print(
            f"It is about the debtor, not one debt: it holds on {where} "
            f"({', '.join(person)}) too, until it is lifted on {account}."
        )
    if still:
        out.print(
            "Still in force for the debtor (on their other accounts, and here for what this "
            "does not cover) until a later event at least as wide lifts it where it was "
            "recorded:"
        )
        for where, held in still:
            # A lift counts from its time on: one dated before the restriction is no lift.
            later = " (recorded after this --at)" if held.occurred_at > when else ""
            out.print(f"  {where}: {_restriction(held)}{later}", soft_wrap=True)


def _restriction(row: Any) -> str:
    scope = ", ".join(filter(None, (row.channel, row.address)))
    return f"{row.kind} of {row.occurred_at:%Y-%m-%d %H:%M} ({scope or 'every channel'})"


# What a debtor says about an address holds for it wherever it is used, as the replies
# that say it do: an opt-out in the suppression ledger and on every account using the
# address, and an opt-in lifting it there. (A consent given or revoked is recorded on its
# account, as an import's is; a revocation in force there holds for the person's other
# accounts as the planner links them: ``compliance_store.PERSON_RESTRICTIONS``.)
ABOUT_AN_ADDRESS = ("opt_out", "opt_in")


# A consent given or revoked is recorded on an account whose address it names: one named on
# another account would hold wherever the number is used, and be lifted only there.
_CONSENT_KINDS = ("consent", "consent_revoked")


def _refuse_a_stranger(
    connection: Connection, account_id: int, account: str, channels: tuple[str, ...], address: str
) -> None:
    """Refuse an address the account has never had (in any status: a number it no longer
    uses was still the debtor's when they spoke)."""
    found = connection.execute(
        select(store.contact_points.c.id)
        .where(
            store.contact_points.c.account_id == account_id,
            store.contact_points.c.channel.in_(phone_or_email(channels[0])),
            same_address(connection, store.contact_points.c.address, channels, address),
        )
        .limit(1)
    ).first()
    if found is None:
        raise OutreachError(
            f"--address {address} is not one of {account}'s addresses: record it on the "
            "account whose address it is"
        )


def _address_and_channels(
    address: str, channel: str | None, context: Context
) -> tuple[str, tuple[str, ...]]:
    """The address as the contact points spell it (E.164, a normalized mailbox), and the
    channels the record is about: the one given, else every channel of the address."""
    channels: tuple[str, ...]
    try:
        if "@" in address:
            spelled, channels = parse_email("--address", address), ("email",)
        else:
            phone = parse_phone("--address", address, context.settings.default_region)
            spelled, channels = phone.e164, ("sms", "voice")
    except FieldError as error:
        raise OutreachError(str(error)) from None
    if channel is not None and channel not in channels:
        raise OutreachError(f"--address {address} is not an address on --channel {channel}")
    return spelled, (channel,) if channel is not None else channels


def _about_an_address(
    connection: Connection,
    account_id: int,
    kind: str,
    channels: tuple[str, ...],
    address: str,
    at: datetime,
    source: str,
    note: str | None,
) -> list[str]:
    """Record ``kind`` about ``address`` on its ``channels`` for the account and every
    account using the address; the references of the others."""
    cited = source[:200]
    # Every channel's lock at once, as a webhook batch takes them: one by one, a number's
    # texts then its calls, this could wait in a circle with a batch taking its calls first.
    hold_addresses(connection, [(channel, address) for channel in channels])
    shared: set[int] = set()
    for channel in channels:
        owners = {account_id, *accounts_using(connection, (channel,), address)}
        shared |= owners
        if kind == "opt_out":
            reason = SuppressionReason.UNSUBSCRIBE if channel == "email" else SuppressionReason.STOP
            suppress_address(connection, channel, address, reason, at, cited, cited,
                             accounts=sorted(owners), note=note)  # fmt: skip
        else:
            if held_without_opt_in(connection, channel, address):
                raise OutreachError(
                    f"{address} on {channel} is held by a complaint or an operator's "
                    "suppression, which the debtor's opt-in does not lift: nothing recorded"
                )
            lift_opt_outs(connection, channel, address, at, f"opt-in by {cited}", cited,
                          sorted(owners), note=note)  # fmt: skip
    shared.discard(account_id)
    return sorted(
        connection.execute(
            select(store.accounts.c.reference).where(store.accounts.c.id.in_(shared))
        ).scalars()
    )


@compliance_app.command("designate")
def designate(
    ctx: typer.Context,
    account: Annotated[str, typer.Option("--account", help="The account's reference.")],
    start: Annotated[str, typer.Option("--from", help="Local time, HH:MM.")],
    end: Annotated[str, typer.Option("--to", help="Local time, HH:MM (past midnight is fine).")],
    days: Annotated[str, typer.Option(help="Weekdays, e.g. mon,tue or mon-fri.")] = "mon-sun",
    source: Annotated[str, typer.Option(help="Who or what says so.")] = "cli",
) -> None:
    """Record a time the debtor said is inconvenient; outreach never contacts them then."""
    context = with_database(ctx)
    weekdays = _weekdays(days)
    start_at, end_at = _clock(start, "--from"), _clock(end, "--to")
    if start_at == end_at:
        raise OutreachError("--from and --to are the same time: nothing would be designated")
    with context.engine.begin() as connection:
        row = store.account_by_reference(connection, account)
        connection.execute(
            designated_times.insert().values(
                account_id=row.id, days=",".join(weekdays), start_local=start_at,
                end_local=end_at, source=source[:200], created_at=context.clock.now(),
            )
        )  # fmt: skip
    out.print(f"{account}: no contact {','.join(weekdays)} {start}-{end} local time.")


@compliance_app.command("designations")
def designations(
    ctx: typer.Context,
    account: Annotated[str, typer.Option("--account", help="The account's reference.")],
    withdraw: Annotated[int | None, typer.Option(help="Withdraw this designation id.")] = None,
) -> None:
    """List an account's designated inconvenient times, or withdraw one."""
    context = with_database(ctx)
    with context.engine.begin() as connection:
        row = store.account_by_reference(connection, account)
        own = designated_times.c.account_id == row.id
        if withdraw is not None:
            done = connection.execute(
                designated_times.update()
                .where(own, designated_times.c.id == withdraw)
                .where(designated_times.c.withdrawn_at.is_(None))
                .values(withdrawn_at=context.clock.now())
            )
            if done.rowcount == 0:
                raise NotFoundError(f"{account} has no designation {withdraw} in force")
            out.print(f"Withdrew designation {withdraw}.")
            return
        found = connection.execute(select(designated_times).where(own)).all()
    table = Table("id", "days", "from", "to", "source", "withdrawn")
    for d in found:
        table.add_row(str(d.id), d.days, f"{d.start_local:%H:%M}", f"{d.end_local:%H:%M}",
                      d.source, f"{d.withdrawn_at:%Y-%m-%d}" if d.withdrawn_at else "")  # fmt: skip
    out.print(table)


def _addresses(connection: Connection, account_id: int, channels: list[str]) -> list[Any]:
    """The primary active address on each channel asked about."""
    points = store.contact_points
    rows = connection.execute(
        select(points.c.channel, points.c.address)
        .where(
            points.c.account_id == account_id,
            points.c.status == ContactStatus.ACTIVE,
            points.c.channel.in_(channels),
        )
        .order_by(points.c.priority)
    ).all()
    chosen: dict[str, str] = {}
    for row in rows:
        chosen.setdefault(row.channel, row.address)
    return [(channel, chosen[channel]) for channel in channels if channel in chosen]


def _headline(decision: Decision) -> str:
    if decision.verdict == "allow":
        return "[green]ALLOWED now[/green]"
    if decision.verdict == "block":
        return "[red]BLOCKED[/red] until an event lifts it"
    assert decision.not_before is not None
    local = "; ".join(
        f"{decision.not_before.astimezone(ZoneInfo(zone)):%a %H:%M} {zone}"
        for zone in dict.fromkeys(z for z, _ in decision.zones)
    )
    return f"[yellow]DEFERRED[/yellow] until {decision.not_before:%Y-%m-%d %H:%M} UTC ({local})"


def _jurisdiction(text: str) -> str:
    """A country (``US``), an ISO 3166-2 subdivision (``US-MA``), or one with a city
    (``US-NY-NYC``), as an account's jurisdiction is written."""
    code = text.strip().upper().replace("_", "-")
    if code.endswith("-") or "--" in code:
        raise OutreachError(f"--jurisdiction {text!r}: an empty part (such as US-NY-)")
    state, _, city = code.partition("-")[2].partition("-")
    country = code.partition("-")[0]
    try:
        parse_jurisdiction("--jurisdiction", f"{country}-{state}" if state else country)
    except FieldError:
        raise OutreachError(
            f"--jurisdiction {text!r}: not a country or an ISO 3166-2 subdivision (such as US "
            "or US-MA, and a city after it, as US-NY-NYC)"
        ) from None
    if "-" in city or (city and not city.isalnum()):
        raise OutreachError(f"--jurisdiction {text!r}: a city is one code, as US-NY-NYC")
    return code


def _date(text: str, option: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise OutreachError(f"{option} {text!r}: not a date (YYYY-MM-DD)") from None


def _instant(text: str, option: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise OutreachError(f"{text!r} is not an ISO 8601 instant") from None
    if value.tzinfo is None:
        raise OutreachError(f"{text!r} needs a UTC offset, e.g. 2026-06-03T10:30:00-04:00")
    refuse_out_of_range(value, option, text)
    return value


def _clock(text: str, option: str) -> time:
    try:
        return time.fromisoformat(text)
    except ValueError:
        raise OutreachError(f"{option} {text!r} is not a time such as 09:00") from None


def _weekdays(text: str) -> list[str]:
    chosen: list[str] = []
    for part in text.lower().replace(" ", "").split(","):
        first, _, last = part.partition("-")
        if first not in WEEKDAYS or (last and last not in WEEKDAYS):
            raise OutreachError(f"--days {text!r}: use weekdays such as mon,tue or mon-fri")
        i, j = WEEKDAYS.index(first), WEEKDAYS.index(last or first)
        span = WEEKDAYS[i : j + 1] if i <= j else WEEKDAYS[i:] + WEEKDAYS[: j + 1]
        chosen += [d for d in span if d not in chosen]
    return [d for d in WEEKDAYS if d in chosen]
