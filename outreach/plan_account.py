"""What the plan stage decides for each account of a batch, as values: no database, no clock.

Given an account, what compliance knows of it, the cadence steps already dealt with and
``now``, it returns the rows to write: at most one queued attempt (the due step on the
first channel compliance allows), the decisions taken on the way, the steps recorded as
skipped, and when to look at the account again. ``planner.py`` feeds it batches and writes
the answers in bulk; ``outreach simulate`` runs the same planner.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from outreach.cadence import (
    AccountFacts,
    Cadence,
    NextAction,
    Step,
    StepRecord,
    action_key,
    next_action,
)
from outreach.compliance.alike import AlikeDecisions
from outreach.compliance.decision import Decision, Reason
from outreach.compliance.facts import Situation
from outreach.compliance.rules import RuleSet
from outreach.compliance.status import latest_hold
from outreach.compliance_store import DebtorRecord, decision_row, situation
from outreach.errors import TemplateError
from outreach.importing.fields import currency_exponent
from outreach.models import AttemptStatus, StepOutcome
from outreach.rendering.context import (
    SAMPLE_ACCOUNTS,
    SAMPLE_TODAY,
    Company,
    MessageFacts,
    ShortFirstDisclosure,
    build_context,
    check_first_disclosure,
    sample_context,
    written_in,
)
from outreach.rendering.environment import PARTIALS_DIR, TemplateKey
from outreach.rendering.limits import RenderLimit
from outreach.rendering.render import Renderer, RenderError
from outreach.unsubscribe import unsubscribe_url
from outreach.written_facts import account_zone, facts_digest, time_barred

log = logging.getLogger(__name__)

# A stopped or finished-but-unsettled account is looked at again after this long.
RECHECK = timedelta(days=1)
# A template problem is the marketer's to fix; try again soon rather than skip the step.
TEMPLATE_RETRY = timedelta(hours=1)
TIMED_OUT_RETRY = timedelta(minutes=5)  # a render stopped by its clock alone
# The partial that gives a text its disclosure: one published before lint told first
# contacts apart gives every text the short form.
SMS_FOOTER = f"{PARTIALS_DIR}/sms_footer.j2"


@dataclass(frozen=True)
class Toolkit:
    """What planning needs besides the account, built once per tick."""

    cadences: Mapping[str, Cadence]
    rules: RuleSet
    company: Company
    renderer: Renderer
    version_ids: Mapping[str, int]
    public_base_url: str
    secret_key: str


@dataclass
class AccountPlan:
    """The rows one account's planning writes, and what happened, for the tick's report."""

    outcome: str  # queued, deferred, blocked, stopped, idle, finished, error
    next_contact_at: datetime | None
    attempt: dict[str, Any] | None = None
    decisions: list[dict[str, Any]] = field(default_factory=list)
    steps: list[dict[str, Any]] = field(default_factory=list)
    detail: str = ""
    # The error is a first text with the short disclosure only (``ShortFirstDisclosure``).
    short_disclosure: bool = False
    # The cadence is done and its hand-off has come: when the account goes to the agents.
    handoff_at: datetime | None = None


# The account, what compliance knows of it, its steps taken, whether a promise to pay is
# pending, and whether nothing about the debt has reached the debtor yet (first contact).
Planned = tuple[Any, DebtorRecord, Sequence[StepRecord], bool, bool]
Chosen = tuple[str, str, int]  # the channel compliance allows, the address, its contact point


def plan_accounts(batch: Sequence[Planned], kit: Toolkit, now: datetime) -> list[AccountPlan]:
    """Plan a batch: each item is an account, what compliance knows of it, the cadence
    steps already dealt with, whether a promise to pay is pending and whether its message
    would be the first to reach the debtor about the debt.

    The batch goes through in three passes (the cadence for every account, then
    compliance, then rendering) rather than account by account: each pass runs the same
    code over and over, which keeps it in the processor's caches (about a tenth less time
    than one account at a time). Each account's answer is the same either way."""
    plans: list[AccountPlan] = []
    contacting: list[tuple[AccountPlan, Any, DebtorRecord, NextAction, ZoneInfo, bool]] = []
    actions: dict[Hashable, NextAction] = {}  # accounts alike share the cadence's answer
    for account, record, taken, promise_pending, first in batch:
        plan, action, zone = _cadence(account, record, taken, promise_pending, kit, now, actions)
        plans.append(plan)
        if action is not None and zone is not None:
            contacting.append((plan, account, record, action, zone, first))
    allowed: list[tuple[AccountPlan, Any, NextAction, ZoneInfo, Chosen, bool, bool]] = []
    decide = AlikeDecisions(kit.rules).evaluate  # debtors alike share the engine's answer
    for plan, account, record, action, zone, first in contacting:
        chosen = _choose_channel(plan, account, record, action, decide, now)
        if chosen is not None:
            barred = time_barred(account, kit.rules, record.jurisdiction, now)
            allowed.append((plan, account, action, zone, chosen, first, barred))
    for plan, account, action, zone, chosen, first, barred in allowed:
        _queue(plan, account, action, chosen, kit, now, zone, (first, barred))
    return plans


def _cadence(
    account: Any,
    record: DebtorRecord,
    taken: Sequence[StepRecord],
    promise_pending: bool,
    kit: Toolkit,
    now: datetime,
    actions: dict[Hashable, NextAction],
) -> tuple[AccountPlan, NextAction | None, ZoneInfo | None]:
    """The account's plan as far as the cadence goes, and the due step's action and the
    account's zone when there is a step to send."""
    cadence = kit.cadences.get(account.cadence)
    if cadence is None:
        return (
            AccountPlan("error", now + RECHECK, detail=f"no cadence {account.cadence!r}"),
            None,
            None,
        )
    zone = account_zone(account, kit.rules, record.jurisdiction)
    facts = AccountFacts(
        due_date=account.due_date,
        balance=Decimal(account.balance_minor).scaleb(-currency_exponent(account.currency)),
        status=account.status,
        locale=account.locale,
        timezone=zone,
        disputed=_held(record, "dispute", now),
        promise_pending=promise_pending,
        cease_requested=_held(record, "cease", now),
    )
    key = action_key(cadence, facts, taken, now)
    action = actions.get(key)
    if action is None:
        action = actions[key] = next_action(cadence, facts, taken, now)
    plan = AccountPlan("idle", None)
    plan.steps = [
        _step_row(account.id, step.key, StepOutcome.SKIPPED, reason, now)
        for step, reason in action.skipped
    ]
    if action.stopped is not None:
        plan.outcome, plan.next_contact_at = "stopped", now + RECHECK
        plan.decisions.append(_stopped(account, action.stopped, now))
        return plan, None, None
    if action.due is None:
        handoff_at = action.handoff_at
        if action.finished and handoff_at is not None and handoff_at <= now:
            # The agents' from now on: flagged for them (``planner``), with its reason.
            plan.outcome, plan.next_contact_at, plan.handoff_at = "handed_off", None, handoff_at
            plan.decisions.append(_handed_off(account, cadence.handoff, handoff_at, now))
        elif action.finished:
            # Looked at again when the hand-off comes, if the cadence has one.
            plan.outcome, plan.next_contact_at = "finished", handoff_at
        else:
            plan.outcome, plan.next_contact_at = "idle", _next_look(action, now)
        return plan, None, None
    return plan, action, ZoneInfo(zone)


def _choose_channel(
    plan: AccountPlan,
    account: Any,
    record: DebtorRecord,
    action: NextAction,
    decide: Callable[[Situation], Decision],
    now: datetime,
) -> Chosen | None:
    """The first of the step's channels that compliance allows (channel, address, contact
    point), each decision recorded; None when the step is deferred or blocked on every
    channel, with the plan saying so. A channel's addresses are asked best first: a second
    number is texted when the first is blocked (a STOP from it, no consent to it)."""
    step = action.due
    assert step is not None
    blocked: list[str] = []
    for channel in step.channels:
        addresses = record.addresses(channel)
        if not addresses:
            blocked.append(f"{channel}: no address")
            continue
        refusals: list[str] = []  # each address's codes; the address named when several
        waits: datetime | None = None
        for address, point_id in addresses:
            asked = situation(record, channel, address, now)
            decision = decide(asked)
            plan.decisions.append(
                decision_row(
                    account.id, decision, asked, stage="plan", decided_at=now, step_key=step.key
                )
            )
            if decision.verdict == "allow":
                return channel, address, point_id
            if decision.verdict == "defer":
                assert decision.not_before is not None
                waits = decision.not_before if waits is None else min(waits, decision.not_before)
            else:
                codes = ", ".join(decision.codes)
                refusals.append(f"{address} {codes}" if len(addresses) > 1 else codes)
        if waits is not None:
            # The step waits for its preferred open channel rather than falling back; the
            # account is looked at sooner if the next step falls due first (on a channel
            # that may be open), which then supersedes this one.
            plan.outcome, plan.next_contact_at = "deferred", waits
            superseded_at = action.superseded_at
            if superseded_at is not None and now < superseded_at < waits:
                plan.next_contact_at = superseded_at
            return None
        blocked.append(f"{channel}: {', '.join(refusals)}")
    reason = "blocked on every channel (" + "; ".join(blocked) + ")"
    plan.steps.append(_step_row(account.id, step.key, StepOutcome.SKIPPED, reason[:200], now))
    _record_after(plan, account, action, now)
    plan.outcome, plan.next_contact_at = "blocked", _next_look(action, now)
    plan.detail = reason
    return None


def _queue(
    plan: AccountPlan,
    account: Any,
    action: NextAction,
    chosen: Chosen,
    kit: Toolkit,
    now: datetime,
    zone: ZoneInfo,
    written: tuple[bool, bool],
) -> None:
    """Render the due step for the allowed channel and queue it; ``written``: whether it
    is the first contact, and whether the debt is time-barred."""
    step = action.due
    assert step is not None
    try:
        plan.attempt = _attempt(account, step, chosen, kit, now, zone, written)
    except TemplateError as exc:
        plan.outcome, plan.next_contact_at = "error", now + _retry_after(exc)
        plan.detail = str(exc)
        plan.short_disclosure = isinstance(exc, ShortFirstDisclosure)
        return
    except Exception as exc:
        # Not the template's own failure (a RenderError, above) but a fault elsewhere in
        # making this account's message: it waits like a template error, with its cause,
        # rather than stopping the batch, and every batch after it, from being planned. The
        # planner logs each batch's causes; the traceback is for whoever debugs it.
        log.debug("plan: account %s: rendering failed", account.id, exc_info=True)
        plan.outcome, plan.next_contact_at = "error", now + TEMPLATE_RETRY
        plan.detail = f"{chosen[0]}/{step.template}.{step.tone}: {type(exc).__name__}: {exc}"
        return
    plan.steps.append(_step_row(account.id, step.key, StepOutcome.QUEUED, None, now))
    _record_after(plan, account, action, now)
    plan.outcome, plan.next_contact_at = "queued", _next_look(action, now)


def short_first_texts(renderer: Renderer, company: Company, paths: Iterable[str]) -> list[str]:
    """The SMS templates among ``paths`` that would give a debt collector's first text the
    short disclosure only (``check_first_disclosure`` holds such texts back)."""
    sample = next(
        s for s in SAMPLE_ACCOUNTS if s.collector_type == "third_party" and s.first_contact
    )
    short: list[str] = []
    for path in sorted(p for p in paths if p.startswith("sms/")):
        try:
            key = TemplateKey.from_path(path)
            context = sample_context(
                sample, company, SAMPLE_TODAY, key.name, key.language, key.channel
            )
            check_first_disclosure("sms", context, renderer.render_key(key, context).text, path)
        except ShortFirstDisclosure:
            short.append(path)
        except Exception as exc:  # another fault: planning says it when an account meets it
            log.debug("%s: not checked for a first text's disclosure: %r", path, exc)
    return short


def _retry_after(exc: TemplateError) -> timedelta:
    """How long an account whose message failed to render waits: a template's fault is
    mended by a marketer (an hour); a render stopped by the clock alone may have met a
    stalled machine, and is tried again soon."""
    cause = exc.cause if isinstance(exc, RenderError) else None
    if isinstance(cause, RenderLimit) and cause.timed_out:
        return TIMED_OUT_RETRY
    return TEMPLATE_RETRY


def _record_after(plan: AccountPlan, account: Any, action: NextAction, now: datetime) -> None:
    """The due step is dealt with: the steps after it that do not apply are recorded."""
    plan.steps.extend(
        _step_row(account.id, step.key, StepOutcome.SKIPPED, reason, now)
        for step, reason in action.after
    )


def _attempt(
    account: Any,
    step: Step,
    chosen: Chosen,
    kit: Toolkit,
    now: datetime,
    zone: ZoneInfo,
    written: tuple[bool, bool],
) -> dict[str, Any]:
    channel, address, point_id = chosen
    first_contact, barred = written
    link = (
        unsubscribe_url(kit.public_base_url, kit.secret_key, address, account.reference)
        if channel == "email"
        else ""
    )
    facts = MessageFacts(
        account.reference,
        account.name,
        account.balance_minor,
        account.currency,
        account.due_date,
        account.locale,
        account.collector_type,
        link,
        first_contact=first_contact,
        time_barred=barred,
    )
    key = kit.renderer.resolve(channel, step.template, step.tone, account.locale)
    today = now.astimezone(zone).date()
    context = build_context(facts, kit.company, today, key.language, key.channel)
    rendered = kit.renderer.render_key(key, context)
    check_first_disclosure(channel, context, rendered.text, key.path)
    return {
        "account_id": account.id,
        "contact_point_id": point_id,
        "template_version_id": kit.version_ids.get(key.path),
        "idempotency_key": f"{account.id}:{step.key}:{channel}",
        "step_key": step.key,
        "channel": channel,
        "to_address": address,
        "template_name": step.template,
        "tone": step.tone,
        "locale": written_in(key.language),
        "subject": rendered.subject,
        "body": rendered.text,
        "body_html": rendered.html,
        "voicemail": rendered.voicemail,
        "facts_digest": facts_digest(
            account, today, first_contact=first_contact, time_barred=barred
        ),
        "status": AttemptStatus.QUEUED,
        "automated": True,
        "tries": 0,
        "next_try_at": now,
        "created_at": now,
        "updated_at": now,
    }


def _stopped(account: Any, condition: str, now: datetime) -> dict[str, Any]:
    reason = Reason(
        f"CADENCE_STOPPED_{condition.upper()}",
        f"cadence {account.cadence}: stop_when {condition}",
        "block",
        f"the cadence stops while the account is {condition.replace('_', ' ')}",
        lifted_by="the condition ending (payment reversed, dispute resolved, promise broken...)",
    )
    return _cadence_decision(account, reason, now)


def _cadence_decision(account: Any, reason: Reason, now: datetime) -> dict[str, Any]:
    """A decision of the cadence's own (not compliance's), stored as the engine's are."""
    return {
        "account_id": account.id,
        "attempt_id": None,
        "stage": "plan",
        "step_key": None,
        "channel": "none",
        "address": None,
        "verdict": "block",
        "not_before": None,
        "reasons": [reason.as_json()],
        "rules_evaluated": None,
        "input_snapshot": None,
        "ruleset_version": "cadence",
        "decided_at": now,
    }


def _handed_off(account: Any, handoff: Any, at: datetime, now: datetime) -> dict[str, Any]:
    reason = Reason(
        "CADENCE_HANDED_OFF",
        f"cadence {account.cadence}: handoff to {handoff.to} after {handoff.after_days} days",
        "block",
        f"the cadence is done: the account went to the agents on {at.date().isoformat()}, "
        f"{handoff.after_days} day(s) after its last step",
        lifted_by="an agent (the account is flagged 'handoff' in the inbox)",
    )
    return _cadence_decision(account, reason, now)


def _step_row(
    account_id: int, key: str, outcome: str, reason: str | None, now: datetime
) -> dict[str, Any]:
    return {"account_id": account_id, "step_key": key, "outcome": outcome, "reason": reason,
            "at": now}  # fmt: skip


def _next_look(action: NextAction, now: datetime) -> datetime:
    """When to look at the account again: when its next step falls due, if known."""
    return action.next_at or now + RECHECK


def _held(record: DebtorRecord, kind: str, now: datetime) -> bool:
    return bool(record.events) and (
        latest_hold(record.events, kind, (record.debt,), now) is not None
    )
