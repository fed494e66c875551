"""The sign-in throttle in the database: several processes (each with its own engine and
connection pool, as on several machines) share one count per name, attempts made at once
never pass the cap together, and attempts past the window count for nothing and are
deleted. SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from sqlalchemy import Engine

from outreach.clock import FixedClock
from outreach.config import Settings
from outreach.db import make_engine
from outreach.web import throttle as throttle_module
from outreach.web.throttle import SignInThrottle, name_key
from tests.conftest import NOW
from tests.web.ui_support import stored_attempts

PENDING, FAILED = "pending", "failed"


@pytest.fixture
def other_engine(engine: Engine) -> Iterator[Engine]:
    """Another engine on the test's database: the connections of another web process."""
    url = engine.url.render_as_string(hide_password=False)
    other = make_engine(Settings(database_url=url))
    yield other
    other.dispose()


def test_the_cap_holds_across_processes_sharing_the_database(
    engine: Engine, other_engine: Engine
) -> None:
    here = SignInThrottle(engine, failures=3)
    there = SignInThrottle(other_engine, failures=3)
    here.failed("ana", here.reserve("ana"))
    checking_there = there.reserve("Ana")
    checking_here = here.reserve("ana ")
    assert checking_there is not None and checking_here is not None
    assert there.reserve("ana") is None and here.reserve("ana") is None
    assert here.held("ana") and there.held("ANA")
    # A reservation is ended wherever its attempt ends: the right password, checked there.
    there.succeeded("ana", checking_here)
    assert stored_attempts(engine) == [(name_key("ana"), PENDING)]
    assert not here.held("ana")


@pytest.mark.parametrize("name", ["ana", "nobody"])
def test_attempts_at_once_from_two_processes_never_pass_the_cap(
    engine: Engine, other_engine: Engine, name: str
) -> None:
    throttles = [SignInThrottle(engine), SignInThrottle(other_engine)]
    start = threading.Barrier(24)

    def attempt(n: int) -> int | None:
        start.wait()
        return throttles[n % 2].reserve(name if n % 3 else name.upper())

    with ThreadPoolExecutor(24) as pool:
        reserved = [r for r in pool.map(attempt, range(24)) if r is not None]
    # None of them ends: every one still counts.
    assert len(reserved) == 5 and len(set(reserved)) == 5
    assert stored_attempts(engine) == [(name_key(name), PENDING)] * 5


def test_a_success_forgets_the_failures_but_not_the_attempts_under_way(engine: Engine) -> None:
    throttle = SignInThrottle(engine, failures=3)
    throttle.failed("ana")
    throttle.failed("bob")
    elsewhere = throttle.reserve("ana")  # another attempt, still being checked
    right = throttle.reserve("ana")
    assert elsewhere is not None and right is not None and throttle.held("ana")
    throttle.succeeded("ana", right)
    assert stored_attempts(engine) == [(name_key("bob"), FAILED), (name_key("ana"), PENDING)]
    assert throttle.reserve("ana") is not None and throttle.reserve("ana") is not None
    assert throttle.reserve("ana") is None  # the one under way counts until it ends


def test_a_reservation_left_by_a_stopped_process_expires_with_the_window(
    engine: Engine,
) -> None:
    clock = FixedClock(NOW)
    throttle = SignInThrottle(engine, failures=2, window_seconds=900, clock=clock)
    assert throttle.reserve("ana") is not None and throttle.reserve("ana") is not None
    # Their process stopped before checking the passwords: nothing ends them.
    clock.advance(timedelta(seconds=899))
    assert throttle.reserve("ana") is None and throttle.held("ana")
    clock.advance(timedelta(seconds=2))
    assert not throttle.held("ana")
    assert throttle.reserve("ana") is not None
    assert stored_attempts(engine) == [(name_key("ana"), PENDING)]  # the stale ones deleted


def test_a_failure_counts_from_when_it_is_known(engine: Engine) -> None:
    clock = FixedClock(NOW)
    throttle = SignInThrottle(engine, failures=1, window_seconds=900, clock=clock)
    reservation = throttle.reserve("ana")
    clock.advance(timedelta(seconds=600))  # a slow check
    throttle.failed("ana", reservation)
    clock.advance(timedelta(seconds=600))
    assert throttle.held("ana")
    clock.advance(timedelta(seconds=301))
    assert not throttle.held("ana")


def test_attempts_past_the_window_are_deleted_as_new_ones_come(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(throttle_module, "_FORGOTTEN_AT_ONCE", 20)
    clock = FixedClock(NOW)
    throttle = SignInThrottle(engine, failures=5, window_seconds=900, clock=clock)
    for n in range(30):
        throttle.failed(f"stranger{n}")
    clock.advance(timedelta(seconds=901))
    throttle.failed("ana")  # a failure alone deletes nothing
    assert len(stored_attempts(engine)) == 31
    throttle.reserve("bob")  # each reservation deletes a batch
    assert len(stored_attempts(engine)) == 30 - 20 + 2
    throttle.reserve("bob")
    assert stored_attempts(engine) == [(name_key("ana"), FAILED)] + [(name_key("bob"), PENDING)] * 2


# --- by address ---------------------------------------------------------------------------

HERE, THERE = "203.0.113.7", "198.51.100.2"


def test_failures_over_many_names_hold_the_address_back(engine: Engine) -> None:
    throttle = SignInThrottle(engine, failures=5, address_failures=3)
    throttle.failed("ana", None, HERE)
    throttle.failed("bob", throttle.reserve("bob", HERE), HERE)
    checking = throttle.reserve("cleo", HERE)  # a third name, being checked: it counts
    assert checking is not None and throttle.address_held(HERE)
    assert throttle.reserve("dan", HERE) is None  # any name, from this address
    # No name is held back, and another address, or an attempt of no known address, is not.
    assert not any(throttle.held(name) for name in ("ana", "bob", "cleo", "dan"))
    assert not throttle.address_held(THERE)
    assert throttle.reserve("dan", THERE) is not None and throttle.reserve("dan") is not None
    assert throttle.reserve("Dan ", " 203.0.113.7") is None  # the address as the name, trimmed


def test_a_success_forgets_its_names_failures_but_not_the_addresss_others(
    engine: Engine,
) -> None:
    throttle = SignInThrottle(engine, failures=5, address_failures=3)
    throttle.failed("ana", throttle.reserve("ana", HERE), HERE)  # a mistyped password
    throttle.failed("bob", throttle.reserve("bob", HERE), HERE)
    right = throttle.reserve("ana", HERE)
    assert right is not None and throttle.address_held(HERE)
    throttle.succeeded("ana", right, HERE)
    assert not throttle.address_held(HERE)  # ana's attempts are forgotten, bob's count
    assert throttle.reserve("cleo", HERE) is not None
    assert throttle.reserve("cleo", HERE) is not None
    assert throttle.reserve("dan", HERE) is None  # bob's one and cleo's two


def test_attempts_at_once_from_one_address_never_pass_its_cap(
    engine: Engine, other_engine: Engine
) -> None:
    throttles = [
        SignInThrottle(engine, address_failures=4),
        SignInThrottle(other_engine, address_failures=4),
    ]
    start = threading.Barrier(24)

    def attempt(n: int) -> int | None:
        start.wait()
        return throttles[n % 2].reserve(f"name{n}", HERE)  # a name each: no name's cap bites

    with ThreadPoolExecutor(24) as pool:
        reserved = [r for r in pool.map(attempt, range(24)) if r is not None]
    assert len(reserved) == 4 and len(set(reserved)) == 4


def test_an_addresss_failures_count_within_the_window_only(engine: Engine) -> None:
    clock = FixedClock(NOW)
    throttle = SignInThrottle(engine, address_failures=2, window_seconds=900, clock=clock)
    throttle.failed("ana", None, HERE)
    clock.advance(timedelta(seconds=600))
    throttle.failed("bob", None, HERE)
    assert throttle.address_held(HERE) and throttle.reserve("cleo", HERE) is None
    clock.advance(timedelta(seconds=301))  # ana's failure is past the window
    assert not throttle.address_held(HERE)
    assert throttle.reserve("cleo", HERE) is not None


def test_the_owners_sign_in_forgets_only_the_failures_made_from_their_address(
    engine: Engine,
) -> None:
    throttle = SignInThrottle(engine, failures=4)
    for _ in range(2):
        throttle.failed("ana", throttle.reserve("ana", THERE), THERE)  # someone guessing
    throttle.failed("ana", throttle.reserve("ana", HERE), HERE)  # ana mistyped
    right = throttle.reserve("ana", HERE)
    assert right is not None
    throttle.succeeded("ana", right, HERE)
    # Ana's own failure is forgotten; the guesses still count: two more, not four.
    assert stored_attempts(engine) == [(name_key("ana"), FAILED)] * 2
    assert throttle.reserve("ana", THERE) is not None
    assert throttle.reserve("ana", THERE) is not None
    assert throttle.reserve("ana", THERE) is None


@pytest.mark.parametrize(
    ("one", "other"),
    [
        ("2001:db8:0:1::7", "2001:db8:0:1:ffff:ffff:ffff:ffff"),  # one /64: one subscriber
        ("::ffff:192.0.2.9", "192.0.2.9"),  # IPv4 written as IPv6
        ("2001:DB8::1", "2001:db8::1"),
    ],
)
def test_one_client_is_one_address_however_it_is_written(
    engine: Engine, one: str, other: str
) -> None:
    throttle = SignInThrottle(engine, address_failures=2)
    throttle.failed("ana", None, one)
    throttle.failed("bob", None, other)
    assert throttle.address_held(one) and throttle.address_held(other)
    assert not throttle.address_held("2001:db8:0:2::7")  # the next /64 is someone else
