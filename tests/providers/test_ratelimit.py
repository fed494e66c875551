"""Per-sender rate limits on a fake clock: the waits are computed, never measured."""

from __future__ import annotations

import asyncio

import pytest

from outreach.channels import RateLimit, RateLimits
from outreach.ratelimit import RateLimiter
from tests.conftest import REPO

pytestmark = pytest.mark.anyio


class FakeTime:
    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def monotonic(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        await asyncio.sleep(0)  # let the other sends run, as a real sleep would


def limiter(time: FakeTime, **channels: RateLimits) -> RateLimiter:
    return RateLimiter(channels, monotonic=time.monotonic, sleep=time.sleep)


def test_a_burst_then_one_per_interval() -> None:
    time = FakeTime()
    limits = limiter(time, sms=RateLimits(default=RateLimit(per_second=2, burst=3)))
    waits = [limits.reserve("sms", "+16175550100") for _ in range(6)]
    assert waits == [0, 0, 0, 0.5, 1.0, 1.5]


def test_the_bucket_refills_with_time() -> None:
    time = FakeTime()
    limits = limiter(time, sms=RateLimits(default=RateLimit(per_second=1, burst=2)))
    assert [limits.reserve("sms", "a") for _ in range(3)] == [0, 0, 1]
    time.now += 10
    assert [limits.reserve("sms", "a") for _ in range(3)] == [0, 0, 1]


def test_senders_are_limited_separately_and_may_have_their_own_limit() -> None:
    time = FakeTime()
    sms = RateLimits(
        default=RateLimit(per_second=1, burst=1),
        senders={"+18005550100": RateLimit(per_second=3, burst=3)},
    )
    limits = limiter(time, sms=sms)
    assert [limits.reserve("sms", "+16175550100") for _ in range(2)] == [0, 1]
    assert [limits.reserve("sms", "+16175550101") for _ in range(2)] == [0, 1]
    assert [limits.reserve("sms", "+18005550100") for _ in range(4)] == [
        0,
        0,
        0,
        pytest.approx(1 / 3),
    ]


def test_a_channel_without_limits_never_waits() -> None:
    assert limiter(FakeTime()).reserve("fax", "anyone") == 0


async def test_concurrent_sends_never_share_a_slot() -> None:
    time = FakeTime()
    limits = limiter(time, sms=RateLimits(default=RateLimit(per_second=4, burst=2)))
    waited = await asyncio.gather(*(limits.acquire("sms", "+16175550100") for _ in range(10)))
    assert sorted(waited) == [0, 0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0]
    assert sorted(time.slept) == sorted(w for w in waited if w > 0)


def test_limits_come_from_the_channel_files() -> None:
    limits = RateLimiter.from_channels(REPO / "channels")
    assert limits.limit_for("sms", "+16175550100") == RateLimit(per_second=1, burst=1)
    assert limits.limit_for("email", "billing@example.com") == RateLimit(per_second=10, burst=20)
    assert limits.limit_for("voice", "+16175550100") == RateLimit(per_second=1, burst=1)


def test_a_slot_further_off_than_max_wait_is_not_taken() -> None:
    time = FakeTime()
    limits = limiter(time, sms=RateLimits(default=RateLimit(per_second=1, burst=1)))
    assert limits.reserve("sms", "a", max_wait=0.5) == 0
    assert limits.reserve("sms", "a", max_wait=0.5) is None  # 1 s away: left for later
    assert limits.reserve("sms", "a") == 1  # the refused one did not use up that slot
