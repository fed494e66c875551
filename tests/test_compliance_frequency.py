"""Frequency rules: Reg F's 7-in-7 and post-conversation bars, state overlays and policy
caps, with hand-computed expectations and a property over random call histories."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from outreach.compliance.frequency import (
    ConversationRule,
    CountRule,
    PastContact,
    Proposed,
    check_frequency,
)

NY = "America/New_York"
REGF_CALLS = CountRule(
    "REGF_7IN7_CALL_CAP", "12 CFR 1006.14(b)(2)(i)(A)", frozenset({"voice"}), 7, 7
)
REGF_TALK = ConversationRule(
    "REGF_7IN7_POST_CONVERSATION", "12 CFR 1006.14(b)(2)(i)(B)", frozenset({"voice"})
)
MA = CountRule("MA_2_PER_7_DAYS_PER_DEBT", "940 CMR 7.04(1)(f)", frozenset({"voice", "sms"}), 2, 7)
WA = CountRule(
    "WA_3_PER_WEEK", "RCW 19.16.250", frozenset({"voice", "sms", "email"}), 3, 7, per_debt=False
)


def local(*args: int) -> datetime:
    return datetime(*args, tzinfo=ZoneInfo(NY))  # type: ignore[misc]


def call(
    at: datetime, outcome: str = "no_answer", debts: tuple[str, ...] = ("D1",), **kw: str
) -> PastContact:
    return PastContact(
        at, kw.get("channel", "voice"), kw.get("direction", "outbound"), debts, outcome
    )


def calls_on_days(*days: int, outcome: str = "no_answer") -> list[PastContact]:
    return [call(local(2025, 6, day, 10), outcome) for day in days]


def test_seven_calls_in_seven_days_defer_the_eighth_to_the_day_the_first_drops_out() -> None:
    history = calls_on_days(1, 2, 3, 4, 5, 6, 7)  # June 1-7
    result = check_frequency(
        Proposed("voice", ("D1",)), history, local(2025, 6, 7, 15), [NY], [REGF_CALLS]
    )
    assert [f.code for f in result.findings] == ["REGF_7IN7_CALL_CAP"]
    # June 1 leaves the window on June 8: allowed from local midnight then.
    assert result.not_before == local(2025, 6, 8)
    # Six calls: the seventh is allowed.
    six = check_frequency(
        Proposed("voice", ("D1",)), history[1:], local(2025, 6, 7, 15), [NY], [REGF_CALLS]
    )
    assert six.findings == []
    assert six.evaluated == ["REGF_7IN7_CALL_CAP"]


def test_busy_and_not_in_service_calls_do_not_count_and_inbound_calls_neither() -> None:
    history = [
        *calls_on_days(1, 2, 3, 4, 5, 6),
        call(local(2025, 6, 7, 9), "busy"),
        call(local(2025, 6, 7, 9, 5), "not_in_service"),
        call(local(2025, 6, 7, 9, 10), "no_answer", direction="inbound"),
    ]
    result = check_frequency(
        Proposed("voice", ("D1",)), history, local(2025, 6, 7, 15), [NY], [REGF_CALLS]
    )
    assert result.findings == []


def test_calls_count_per_debt_and_a_call_about_two_debts_counts_for_each() -> None:
    history = [call(local(2025, 6, d, 10), debts=("D1", "D2")) for d in range(1, 7)]
    history.append(call(local(2025, 6, 7, 10), debts=("D1",)))
    about_d2 = check_frequency(
        Proposed("voice", ("D2",)), history, local(2025, 6, 7, 15), [NY], [REGF_CALLS]
    )
    assert about_d2.findings == []  # D2 has six
    about_both = check_frequency(
        Proposed("voice", ("D1", "D2")), history, local(2025, 6, 7, 15), [NY], [REGF_CALLS]
    )
    assert about_both.not_before == local(2025, 6, 8)  # D1 has seven


def test_a_conversation_bars_calls_for_seven_dates_starting_that_day() -> None:
    history = [call(local(2025, 6, 3, 16), "conversation", direction="inbound")]
    result = check_frequency(
        Proposed("voice", ("D1",)),
        history,
        local(2025, 6, 9, 20),
        [NY],
        [REGF_TALK],
    )
    assert result.not_before == local(2025, 6, 10)  # June 3 is day one; June 10 is free
    free = check_frequency(
        Proposed("voice", ("D1",)),
        history,
        local(2025, 6, 10, 8),
        [NY],
        [REGF_TALK],
    )
    assert free.findings == []
    other_debt = check_frequency(
        Proposed("voice", ("D9",)),
        history,
        local(2025, 6, 4, 9),
        [NY],
        [REGF_TALK],
    )
    assert other_debt.findings == []
    texts = check_frequency(
        Proposed("sms", ("D1",)),
        history,
        local(2025, 6, 4, 9),
        [NY],
        [REGF_TALK],
    )
    assert texts.evaluated == []


def test_only_contacts_made_by_now_count() -> None:
    # What a contact stamped after ``now`` means is the engine's to say, once, against the
    # decision's own instant (timing._history): asked about any instant, this module counts
    # the contacts made by then, at their stamps, and never moves one to the instant asked.
    proposed = Proposed("voice", ("D1",))
    now = local(2025, 6, 7, 15)
    history = [*calls_on_days(1, 2, 3, 4, 5, 6), call(now + timedelta(seconds=2))]
    assert check_frequency(proposed, history, now, [NY], [REGF_CALLS]).findings == []
    ahead = [call(local(2027, 1, 1, 12), "conversation", direction="inbound")]
    for at in (now, local(2025, 6, 20, 8)):
        assert check_frequency(proposed, ahead, at, [NY], [REGF_TALK]).findings == []


def test_state_overlays_are_data() -> None:
    history = [call(local(2025, 6, 2, 10)), call(local(2025, 6, 4, 10), channel="sms")]
    massachusetts = check_frequency(
        Proposed("sms", ("D1",)), history, local(2025, 6, 5, 10), [NY], [MA]
    )
    assert massachusetts.not_before == local(2025, 6, 9)  # June 2 leaves the 7 dates on June 9
    emails = [call(local(2025, 6, d, 10), debts=(f"D{d}",), channel="email") for d in (2, 3, 4)]
    washington = check_frequency(
        Proposed("voice", ("D7",)), emails, local(2025, 6, 5, 10), [NY], [WA]
    )
    assert washington.not_before == local(2025, 6, 9)  # per debtor, every channel


def test_day_counting_uses_each_candidate_zone_and_the_latest_answer_wins() -> None:
    # 01:30 Eastern on June 2 is still June 1 in Los Angeles: in Eastern dates June 2-8 hold
    # seven calls, in Pacific dates only six.
    history = [call(datetime(2025, 6, 2, 5, 30, tzinfo=UTC)), *calls_on_days(3, 4, 5, 6, 7, 8)]
    now = local(2025, 6, 8, 15)
    proposed = Proposed("voice", ("D1",))
    eastern = check_frequency(proposed, history, now, [NY], [REGF_CALLS])
    pacific = check_frequency(proposed, history, now, ["America/Los_Angeles"], [REGF_CALLS])
    both = check_frequency(proposed, history, now, ["America/Los_Angeles", NY], [REGF_CALLS])
    assert eastern.not_before == local(2025, 6, 9)
    assert pacific.findings == []
    assert both.not_before == eastern.not_before


@settings(max_examples=200, deadline=None)
@given(
    offsets=st.lists(st.integers(min_value=0, max_value=60 * 24 * 30), min_size=0, max_size=40),
    outcomes=st.lists(
        st.sampled_from(["no_answer", "voicemail", "busy", "not_in_service"]),
        min_size=40,
        max_size=40,
    ),
)
def test_no_allowed_call_makes_more_than_seven_in_any_seven_local_days(
    offsets: list[int], outcomes: list[str]
) -> None:
    """Place calls at random times, each only when the engine allows it (else at its
    not_before): no seven consecutive local dates ever hold more than seven counted calls."""
    start = datetime(2025, 3, 1, tzinfo=UTC)  # spans the March DST change
    history: list[PastContact] = []
    for minutes, outcome in zip(sorted(offsets), outcomes, strict=False):
        at = start + timedelta(minutes=minutes)
        if history and at < history[-1].at:
            at = history[-1].at
        result = check_frequency(Proposed("voice", ("D1",)), history, at, [NY], [REGF_CALLS])
        if result.not_before is not None:
            at = max(at, result.not_before)
            assert (
                check_frequency(
                    Proposed("voice", ("D1",)), history, at, [NY], [REGF_CALLS]
                ).findings
                == []
            )
        history.append(call(at, outcome))
    counted = sorted(
        c.at.astimezone(ZoneInfo(NY)).date()
        for c in history
        if c.outcome not in ("busy", "not_in_service")
    )
    for first in counted:
        window = [d for d in counted if first <= d <= first + timedelta(days=6)]
        assert len(window) <= 7
