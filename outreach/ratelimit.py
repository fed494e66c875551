"""Per-sender rate limits from ``channels/*.yaml``, enforced across concurrent sends.

Each sender (a number, a Messaging Service, an address) has a token bucket: ``burst``
messages may go at once, then one every ``1/per_second`` seconds. A send *reserves* its
slot before it waits, with no await in between, so concurrent sends on one event loop
never take the same slot. A daemon's dispatch processes reserve from the daemon's limiter
(``outreach.shared_ratelimit``), so the limits hold across them; several daemons sharing a
sender should each be given a share of its rate.

Time is injected (``monotonic`` and ``sleep``) so that tests run on a fake clock.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from outreach.channels import CHANNELS, RateLimit, RateLimits, load_channel


@dataclass
class _Bucket:
    interval: float  # seconds between messages once the burst is spent
    capacity: float  # the burst, in seconds of interval
    next_free: float  # when the bucket is empty again ("theoretical arrival time")


class RateLimiter:
    """Token buckets per (channel, sender), configured per channel."""

    def __init__(
        self,
        limits: Mapping[str, RateLimits],
        *,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._limits = dict(limits)
        self._monotonic = monotonic
        self._sleep = sleep
        self._buckets: dict[tuple[str, str], _Bucket] = {}
        # Dispatch processes reserve from another thread (see outreach.shared_ratelimit).
        self._lock = threading.Lock()

    @classmethod
    def from_channels(cls, channels_dir: Path) -> RateLimiter:
        """Limits as channels/*.yaml set them (each channel's defaults where unset)."""
        return cls(
            {channel: load_channel(channels_dir, channel).rate_limits for channel in CHANNELS}
        )

    def limit_for(self, channel: str, sender: str) -> RateLimit | None:
        limits = self._limits.get(channel)
        return limits.for_sender(sender) if limits is not None else None

    def reserve(self, channel: str, sender: str, max_wait: float | None = None) -> float | None:
        """Take the next slot for ``sender``; the seconds to wait before using it. With
        ``max_wait``, a slot further off than that is not taken (None): the dispatcher
        then leaves the message queued for a later tick instead of holding it."""
        with self._lock:
            return self._reserve(channel, sender, max_wait)

    def reserve_many(
        self, senders: Sequence[tuple[str, str]], max_wait: float | None = None
    ) -> list[float | None]:
        """``reserve`` for each (channel, sender) in turn."""
        with self._lock:
            return [self._reserve(channel, sender, max_wait) for channel, sender in senders]

    def _reserve(self, channel: str, sender: str, max_wait: float | None) -> float | None:
        limit = self.limit_for(channel, sender)
        if limit is None:
            return 0.0
        now = self._monotonic()
        bucket = self._buckets.get((channel, sender))
        interval = 1.0 / limit.per_second
        if bucket is None or bucket.interval != interval:
            bucket = _Bucket(interval, interval * limit.burst, now)
            self._buckets[(channel, sender)] = bucket
        # GCRA: a slot is free when the bucket is less than full at that moment.
        start = max(now, bucket.next_free - bucket.capacity + bucket.interval)
        if max_wait is not None and start - now > max_wait:
            return None
        bucket.next_free = max(bucket.next_free, now) + bucket.interval
        return start - now

    async def wait(self, seconds: float) -> None:
        if seconds > 0:
            await self._sleep(seconds)

    async def acquire(self, channel: str, sender: str) -> float:
        """Wait for ``sender``'s next slot; the seconds waited."""
        wait = self.reserve(channel, sender) or 0.0
        if wait > 0:
            await self._sleep(wait)
        return wait
