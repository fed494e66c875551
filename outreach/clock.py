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
    time: for demos and rehearsals, so that a working day passes in minutes. ``wall`` is
    the real time it follows (a test's fixed clock moves it by hand)."""

    def __init__(self, start: datetime, speed: float = 1.0, wall: Clock | None = None) -> None:
        self._start = _require_aware(start)
        self._speed = speed
        self._wall = wall or SystemClock()
        self._origin = self._wall.now()

    @property
    def speed(self) -> float:
        return self._speed

    def now(self) -> datetime:
        return self._start + (self._wall.now() - self._origin) * self._speed


def wall_clock(clock: Clock) -> Clock:
    """The real time ``clock`` follows: a scaled clock's wall clock, any other clock itself.
    For what others stamp in real time, a provider's signature for one."""
    return clock._wall if isinstance(clock, ScaledClock) else clock


def clock_time(clock: Clock, real: timedelta) -> timedelta:
    """How much of ``clock``'s time passes while ``real`` time does: ``speed`` times more
    on a scaled clock (a demo's runs 60 times faster), as much on any other."""
    return real * clock.speed if isinstance(clock, ScaledClock) else real


def _require_aware(at: datetime) -> datetime:
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError(f"clock instants must be timezone-aware, got naive {at.isoformat()}")
    return at.astimezone(UTC)
