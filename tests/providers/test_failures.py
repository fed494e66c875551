"""The shared HTTP rules every provider's error table builds on."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest

from outreach.providers.failures import CodeRule, http_failure, retry_after_seconds
from tests.conftest import NOW


def response(status: int, **headers: str) -> httpx.Response:
    return httpx.Response(status, headers=headers, request=httpx.Request("POST", "https://p.test"))


@pytest.mark.parametrize(
    ("status", "rule", "retryable"),
    [
        (400, None, False),
        (404, None, False),
        (409, None, False),
        (429, None, True),
        (503, None, True),
        (400, CodeRule("queue full", retryable=True), True),
        (400, CodeRule("opted out", suppression="stop"), False),
    ],
)
def test_the_status_decides_unless_the_code_says_more(
    status: int, rule: CodeRule | None, retryable: bool
) -> None:
    error = http_failure("p", response(status), NOW, code="1", rule=rule)
    assert (error.retryable, error.ambiguous) == (retryable, False)
    assert error.suppression == (rule.suppression if rule else None)
    assert ("safe to retry" in str(error)) is retryable


@pytest.mark.parametrize("status", [500, 501, 502, 504, 505, 507, 599])
@pytest.mark.parametrize("rule", [None, CodeRule("queue full", retryable=True)])
def test_a_server_error_other_than_503_may_have_been_acted_on(
    status: int, rule: CodeRule | None
) -> None:
    # Neither Twilio nor SendGrid de-duplicates a second POST, and a 500 or a gateway's
    # 502/504 does not say whether the message went out: held for review, never resent.
    error = http_failure("p", response(status, **{"Retry-After": "4"}), NOW, rule=rule)
    assert (error.retryable, error.ambiguous) == (False, True)
    assert error.retry_after is None
    assert "safe to retry" not in str(error)
    assert "hold it for review" in str(error)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("12", 12.0),
        ((NOW + timedelta(seconds=90)).strftime("%a, %d %b %Y %H:%M:%S GMT"), 90.0),
        ((NOW - timedelta(seconds=90)).strftime("%a, %d %b %Y %H:%M:%S GMT"), 0.0),
        ("soon", None),
        # An offset too long for any number a date is built from.
        ("Mon, 01 Jan 2024 00:00:00 +99999999999999999999", None),
    ],
)
def test_retry_after_in_seconds_or_as_a_date(value: str, seconds: float | None) -> None:
    assert retry_after_seconds(response(429, **{"Retry-After": value}), NOW) == seconds


def test_a_retry_after_of_a_non_ascii_digit_is_no_number() -> None:
    # httpx reads the byte 0xB2 as "\u00b2": a digit to str.isdigit(), not to float().
    request = httpx.Request("POST", "https://p.test")
    sent = httpx.Response(429, headers=[(b"Retry-After", b"\xb2")], request=request)
    assert retry_after_seconds(sent, NOW) is None


def test_retry_after_is_kept_only_when_retrying() -> None:
    assert http_failure("p", response(503, **{"Retry-After": "4"}), NOW).retry_after == 4
    assert http_failure("p", response(400, **{"Retry-After": "4"}), NOW).retry_after is None


@pytest.mark.parametrize("status", [301, 302, 307, 308])
def test_a_redirect_means_the_post_was_not_processed_and_the_base_url_is_wrong(
    status: int,
) -> None:
    # Providers' APIs never redirect a POST: a wrong base URL (http://, an old host) or a
    # proxy did, and the provider never saw the message. Every message would go the same
    # way, so they all wait for the setting to be fixed; none is failed for it.
    sent = response(status, Location="https://api.p.test/v1/send")
    error = http_failure("p", sent, NOW)
    assert (error.retryable, error.outage, error.ambiguous) == (True, True, False)
    assert error.status_code == status
    assert "base URL" in str(error)
    assert "not retried" not in str(error)


def test_a_303_may_follow_a_processed_post_so_it_is_held_for_review() -> None:
    # 303 See Other is how a server points at the result of a POST it has acted on.
    error = http_failure("p", response(303, Location="https://p.test/v1/messages/1"), NOW)
    assert (error.retryable, error.outage, error.ambiguous) == (False, False, True)
    assert "hold it for review" in str(error)
    assert "server error" not in str(error)
