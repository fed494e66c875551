"""Where a provider's events leave an attempt: its status and outcome, in any order.

Events arrive late, twice and out of order (a ``sent`` after the ``delivered``). An
attempt's progress is therefore the *greatest* of what its events say, by a fixed rank,
not the last one heard: the same events in any order end in the same status and outcome.

Ranks, lowest first: queued; sending and unknown (we do not know yet); sent; undelivered
(a carrier's or a call's no); delivered (positive evidence it arrived: a delivery receipt,
an open, an answered call); failed (a hard failure, e.g. a bounce after the receiving
server first accepted the mail). ``cancelled`` was never sent and does not move.
"""

from __future__ import annotations

from dataclasses import dataclass

from outreach.models import AttemptStatus
from outreach.providers.base import EventType

STATUS_OF: dict[EventType, AttemptStatus] = {
    EventType.SENT: AttemptStatus.SENT,
    EventType.DEFERRED: AttemptStatus.SENT,
    EventType.DELIVERED: AttemptStatus.DELIVERED,
    EventType.OPENED: AttemptStatus.DELIVERED,
    EventType.CLICKED: AttemptStatus.DELIVERED,
    EventType.COMPLAINED: AttemptStatus.DELIVERED,
    EventType.UNSUBSCRIBED: AttemptStatus.DELIVERED,
    EventType.ANSWERED_HUMAN: AttemptStatus.DELIVERED,
    EventType.ANSWERED_MACHINE: AttemptStatus.DELIVERED,
    EventType.COMPLETED: AttemptStatus.DELIVERED,
    EventType.UNDELIVERED: AttemptStatus.UNDELIVERED,
    EventType.NO_ANSWER: AttemptStatus.UNDELIVERED,
    EventType.BUSY: AttemptStatus.UNDELIVERED,
    EventType.FAILED: AttemptStatus.FAILED,
    EventType.BOUNCED: AttemptStatus.FAILED,
    EventType.DROPPED: AttemptStatus.FAILED,
}
RANK: dict[str, int] = {
    AttemptStatus.QUEUED: 0,
    AttemptStatus.SENDING: 1,
    AttemptStatus.UNKNOWN: 1,
    AttemptStatus.SENT: 2,
    AttemptStatus.UNDELIVERED: 3,
    AttemptStatus.DELIVERED: 4,
    AttemptStatus.FAILED: 5,
    AttemptStatus.CANCELLED: 99,
}
# Between two outcomes of the same rank (which one event never gives together), the one
# that says more about the contact wins, so that the order of arrival still cannot matter.
OUTCOME_RANK: dict[str | None, int] = {
    None: 0,
    "delivered": 1,
    "failed": 2,
    "no_answer": 3,
    "busy": 4,
    "voicemail": 5,
    "limited_content_message": 6,
    "conversation": 7,
}


@dataclass(frozen=True)
class Progress:
    """An attempt's status and outcome, with the error that came with them."""

    status: str
    outcome: str | None = None
    error_code: str | None = None

    def key(self) -> tuple[int, int, str]:
        return (
            RANK.get(self.status, 0),
            OUTCOME_RANK.get(self.outcome, 0),
            self.error_code or "",
        )


def progress_of(event_type: EventType, outcome: str | None, error_code: str | None) -> Progress:
    """What one event says about its attempt (``queued`` when it says nothing)."""
    status = STATUS_OF.get(event_type, AttemptStatus.QUEUED)
    failed = status in (AttemptStatus.FAILED, AttemptStatus.UNDELIVERED)
    return Progress(status, outcome, (error_code or "")[:32] or None if failed else None)


def advance(current: Progress, event: Progress) -> Progress:
    """The greater of two: commutative, associative and idempotent, hence order-free."""
    return max(current, event, key=Progress.key)
