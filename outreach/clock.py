"""Time as a dependency.

Stages take a ``Clock`` instead of calling ``datetime.now()`` so that tests, benchmarks and
``outreach simulate`` can run the same code at any instant. This module is the only place
that reads the wall clock.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime:
        """The current instant, timezone-aware, in UTC."""
        ...


class SystemClock:
    """The real wall clock."""

    def now(self) -> datetime:
        return datetime.now(UTC)


class FixedClock:
    """A clock that stands still until told to move (tests, simulation)."""

    def __init__(self, at: datetime) -> None:
        self._at = _require_aware(at)

    def now(self) -> datetime:
        return self._at

    def set(self, at: datetime) -> None:
        self._at = _require_aware(at)

    def advance(self, delta: timedelta) -> datetime:
        self._at += delta
        return self._at


class ScaledClock:
    """A clock that starts at a chosen instant and runs ``speed`` times faster than real
    time: for demos and rehearsals, so that a working day passes in minutes."""

    def __init__(self, start: datetime, speed: float = 1.0) -> None:
        self._start = _require_aware(start)
        self._speed = speed
        self._origin = datetime.now(UTC)

    def now(self) -> datetime:
        return self._start + (datetime.now(UTC) - self._origin) * self._speed


def _require_aware(at: datetime) -> datetime:
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError(f"clock instants must be timezone-aware, got naive {at.isoformat()}")
    return at.astimezone(UTC)
