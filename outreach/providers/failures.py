"""Turning a failed request into a ``ChannelError`` that says whether to send again.

The HTTP rules are the same for every provider: 429 and 503 are retryable (both honour
``Retry-After``); any other 5xx is ambiguous, because the provider may have acted on the
request before failing (Twilio's error 20500 and a gateway's 502 or 504 say nothing about
whether the message went out, and neither provider de-duplicates a second POST); other
4xx are final, except those that refuse our account or settings rather than the message
(credentials, a base URL: ``CodeRule.outage``), which hold every message until the operator
fixes them. A provider's API never redirects: a 301, 302, 307 or 308 comes from a wrong
base URL (``http://``, an old host) or a proxy, before the provider saw the POST (redirects
are not followed), so it is an outage too; a 303 is how a server points at the result of a
POST it has acted on, so it is ambiguous, as is any other 3xx. Each provider adds one table
of its own error codes (``CodeRule``) for what a refusal means about the address: an opt-out
becomes a suppression, a number that cannot receive becomes a contact-point status. A
transport failure is retryable only when the request provably never left.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING

import httpx

from outreach.errors import ChannelError

if TYPE_CHECKING:
    from outreach.providers.transport import HttpAnswer


@dataclass(frozen=True)
class CodeRule:
    """What one provider error code means for the message and the address."""

    meaning: str
    retryable: bool = False
    # Our account or settings refused (credentials, a base URL): not the message's fault,
    # every message waits for the operator's fix instead of failing.
    outage: bool = False
    suppression: str | None = None  # a SuppressionReason value
    contact_status: str | None = None  # a ContactStatus value


# Failures before the request left: nothing reached the provider.
_NEVER_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.ProxyError)
# Redirects of a POST that was not acted on: the base URL (or a proxy) is wrong.
_NOT_PROCESSED_REDIRECTS = frozenset({301, 302, 307, 308})

# Our own mistakes (a bad base URL): every message would be refused alike, so they wait
# for the operator's fix (an outage), none is failed for it.
_NOT_SENDABLE = (httpx.UnsupportedProtocol, httpx.LocalProtocolError, httpx.InvalidURL)


def transport_failure(provider: str, exc: Exception) -> ChannelError:
    """A request that got no HTTP answer. Never quotes the request (it holds credentials)."""
    kind = type(exc).__name__
    if isinstance(exc, _NEVER_SENT):
        return ChannelError(
            f"{provider}: the request never reached the provider ({kind}); safe to retry",
            provider=provider,
            retryable=True,
            code=kind,
        )
    if isinstance(exc, _NOT_SENDABLE):
        return ChannelError(
            f"{provider}: the request could not be sent ({kind}); check the provider's "
            "base URL setting",
            provider=provider,
            retryable=True,
            outage=True,
            code=kind,
        )
    return ChannelError(
        f"{provider}: the request was sent but no answer came back ({kind}); the provider "
        "may have accepted it, so hold it for review and do not resend",
        provider=provider,
        ambiguous=True,
        code=kind,
    )


def http_failure(
    provider: str,
    response: HttpAnswer,
    now: datetime,
    *,
    code: str | None = None,
    rule: CodeRule | None = None,
    detail: str | None = None,
    retry_after: float | None = None,
) -> ChannelError:
    """An HTTP error answer, classified by status and by the provider's ``rule`` for it."""
    status = response.status_code
    redirected = status in _NOT_PROCESSED_REDIRECTS
    ambiguous = (status >= 500 and status != 503) or (300 <= status < 400 and not redirected)
    outage = redirected or (not ambiguous and rule is not None and rule.outage)
    retryable = not ambiguous and (
        status in (429, 503) or (rule is not None and rule.retryable) or outage
    )
    wait = retry_after if retry_after is not None else retry_after_seconds(response, now)
    parts = [f"{provider}: HTTP {status}"]
    if code:
        parts.append(f" error {code}")
    if rule is not None:
        parts.append(f" ({rule.meaning})")
    elif status == 429:
        parts.append(" (rate limited)")
    elif redirected:
        parts.append(" (redirected: the request was not processed; check the base URL setting)")
    elif status < 400:
        parts.append(" (redirected after the request may have been processed)")
    elif ambiguous:
        parts.append(" (server error)")
    if ambiguous:
        parts.append(
            "; the provider may have accepted the message, so hold it for review and do not resend"
        )
    elif outage:
        parts.append("; every message on this channel waits until it is fixed")
    elif retryable:
        parts.append("; safe to retry" + (f" after {wait:g}s" if wait is not None else ""))
    else:
        parts.append("; not retried")
    return ChannelError(
        "".join(parts),
        provider=provider,
        retryable=retryable,
        ambiguous=ambiguous,
        outage=outage,
        retry_after=wait if retryable else None,
        status_code=status,
        code=code,
        suppression=rule.suppression if rule else None,
        contact_status=rule.contact_status if rule else None,
        detail=detail[:500] if detail else None,
    )


def retry_after_seconds(response: HttpAnswer, now: datetime) -> float | None:
    """``Retry-After`` as seconds from ``now`` (delta-seconds or an HTTP date)."""
    value = response.headers.get("Retry-After")
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():  # "²" passes isdigit() alone
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, OverflowError):  # numbers too long for a date
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, (when - now).total_seconds())
