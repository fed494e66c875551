"""Any order of a message's status events ends in the same status and outcome."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from datetime import timedelta
from functools import reduce

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, update

from outreach.attempt_status import Progress, advance, progress_of
from outreach.compliance_store import attempts
from outreach.events import _advance_attempts, apply_events, find_attempts
from outreach.providers.base import EventType, ProviderEvent
from tests.conftest import NOW
from tests.eventdata import add_account, add_attempt, attempt, event

# What a provider may say about one message: (type, outcome, error code).
SAID = st.tuples(
    st.sampled_from(list(EventType)),
    st.sampled_from([None, "delivered", "failed", "no_answer", "busy", "voicemail",
                     "limited_content_message", "conversation"]),
    st.sampled_from([None, "30007", "21610"]),
)  # fmt: skip
# Unique names across examples, which share one database per backend.
_SERIAL = itertools.count()
STARTS = st.sampled_from(["queued", "sending", "unknown", "sent", "delivered", "failed"])


Said = tuple[EventType, str | None, str | None]


def fold(start: str, said: Sequence[Said]) -> Progress:
    return reduce(advance, (progress_of(*s) for s in said), Progress(start))


@given(start=STARTS, said=st.lists(SAID, max_size=8), data=st.data())
def test_the_fold_ignores_order_and_repeats(
    start: str, said: list[tuple[EventType, str | None, str | None]], data: st.DataObject
) -> None:
    shuffled = data.draw(st.permutations(said))
    repeated = said + data.draw(st.lists(st.sampled_from(said), max_size=4)) if said else said
    assert fold(start, shuffled) == fold(start, said) == fold(start, repeated)


def test_a_late_sent_never_overwrites_delivered() -> None:
    said: list[Said] = [(EventType.DELIVERED, "delivered", None), (EventType.SENT, None, None)]
    assert fold("sent", said) == Progress("delivered", "delivered")
    assert fold("delivered", [(EventType.SENT, None, None)]).status == "delivered"
    assert fold("cancelled", [(EventType.DELIVERED, None, None)]).status == "cancelled"


SMS_EVENTS = [
    (EventType.QUEUED, None, None),
    (EventType.SENT, None, None),
    (EventType.DELIVERED, "delivered", None),
    (EventType.UNDELIVERED, "failed", "30007"),
]
CALL_EVENTS = [
    (EventType.SENT, None, None),
    (EventType.ANSWERED_HUMAN, None, None),
    (EventType.COMPLETED, "conversation", None),
]


def _events(
    message_id: str, said: tuple[tuple[EventType, str | None, str | None], ...]
) -> list[ProviderEvent]:
    return [
        event(kind, key=f"{message_id}:{kind}", provider_message_id=message_id, outcome=outcome,
              error_code=code, at=NOW + timedelta(seconds=n))
        for n, (kind, outcome, code) in enumerate(said)
    ]  # fmt: skip


def test_every_order_of_real_events_ends_alike_in_the_database(engine: Engine) -> None:
    account_id = add_account(engine)
    finals = set()
    for name, said in (("sms", SMS_EVENTS), ("call", CALL_EVENTS)):
        for n, order in enumerate(itertools.permutations(said)):
            message_id = f"{name}-{n}"
            attempt_id = add_attempt(engine, account_id, message_id=message_id, status="sending")
            for one in _events(message_id, order):  # one webhook at a time
                apply_events(engine, [one], NOW)
            row = attempt(engine, attempt_id)
            finals.add((name, row.status, row.outcome))
    assert finals == {("sms", "delivered", "delivered"), ("call", "delivered", "conversation")}


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(said=st.lists(SAID, min_size=1, max_size=6), data=st.data())
def test_random_events_in_any_order_end_alike_in_the_database(
    engine: Engine, said: list[tuple[EventType, str | None, str | None]], data: st.DataObject
) -> None:
    account_id = add_account(engine, f"R-{next(_SERIAL)}")
    shuffled = data.draw(st.permutations(said))
    ends = []
    for order in (said, shuffled):
        message_id = f"m-{next(_SERIAL)}"
        attempt_id = add_attempt(engine, account_id, message_id=message_id, status="sent")
        # A distinct key per event: each is a different webhook, not a repeat.
        events = [
            event(kind, key=f"{message_id}:{n}:{kind}:{outcome}:{code}",
                  provider_message_id=message_id, outcome=outcome, error_code=code)
            for n, (kind, outcome, code) in enumerate(order)
        ]  # fmt: skip
        apply_events(engine, events[: len(events) // 2], NOW)
        apply_events(engine, events[len(events) // 2 :], NOW)
        row = attempt(engine, attempt_id)
        ends.append((row.status, row.outcome, row.error_code))
    expected = fold("sent", said)
    assert ends[0] == ends[1] == (expected.status, expected.outcome, expected.error_code)


def test_a_status_read_before_another_writer_moved_it_is_never_lowered(engine: Engine) -> None:
    attempt_id = add_attempt(engine, add_account(engine), status="sending")
    sent = event(EventType.SENT, provider_message_id="SM0001")
    with engine.begin() as connection:
        (stale,) = find_attempts(connection, [sent])
        # Meanwhile another writer records the delivery (SQLite cannot lock the row read).
        connection.execute(
            update(attempts).where(attempts.c.id == attempt_id).values(status="delivered")
        )
        _advance_attempts(connection, [(sent, stale)], NOW)
    assert attempt(engine, attempt_id).status == "delivered"
