"""What Twilio SMS and voice share: credentials, the REST call, error codes, signatures."""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from datetime import datetime
from functools import lru_cache
from typing import Any
from urllib.parse import parse_qs, urlsplit, urlunsplit

import httpx
import orjson
from twilio.request_validator import RequestValidator

from outreach.clock import Clock
from outreach.config import Settings
from outreach.errors import ChannelError, ConfigError, WebhookRejected
from outreach.models.accounts import ContactStatus
from outreach.models.messaging import SuppressionReason
from outreach.providers.base import WebhookRequest
from outreach.providers.failures import CodeRule, http_failure, transport_failure
from outreach.providers.form_encoding import encode_form
from outreach.providers.transport import HttpAnswer, post_bytes

API_VERSION = "2010-04-01"
FORM = "application/x-www-form-urlencoded"
SIGNATURE_HEADER = "X-Twilio-Signature"
# The same on every retry of one webhook request (Twilio's webhook connection overrides).
IDEMPOTENCY_HEADER = "I-Twilio-Idempotency-Token"

INVALID = ContactStatus.INVALID.value

# Twilio error codes (twilio.com/docs/api/errors), from the REST answer or a callback's
# ErrorCode. Codes not listed are final unless the HTTP status says otherwise. A refusal of
# our own account or settings (the credentials, the sending number or Messaging Service) is
# an outage: every message would be refused alike, so they wait for the operator's fix.
TWILIO_CODES: dict[str, CodeRule] = {
    "20003": CodeRule(
        "authentication failed: check TWILIO_ACCOUNT_SID and the token or key", outage=True
    ),
    "20404": CodeRule("not found: check TWILIO_ACCOUNT_SID and TWILIO_API_BASE_URL", outage=True),
    "20429": CodeRule("too many requests", retryable=True),
    "21210": CodeRule(
        "the caller ID is neither a Twilio number nor a verified caller ID of the account: "
        "check TWILIO_FROM_NUMBER",
        outage=True,
    ),
    "21211": CodeRule("the 'To' number is not a valid phone number", contact_status=INVALID),
    "21212": CodeRule(
        "the 'From' is not a valid phone number, short code or sender ID: check TWILIO_FROM_NUMBER",
        outage=True,
    ),
    "21214": CodeRule("the 'To' number cannot be reached", contact_status=INVALID),
    "21217": CodeRule("the 'To' number does not appear to be valid", contact_status=INVALID),
    "21408": CodeRule("the account may not send to this region"),
    "21601": CodeRule(
        "the 'From' number is not an SMS-capable number of the account: check TWILIO_FROM_NUMBER",
        outage=True,
    ),
    # 21606, 21659 and 21703 come for a sending number the account does not have, and also
    # for one destination it cannot reach (a short code of another country): the code alone
    # cannot tell the two apart. Each is a refusal of this message tried again with the
    # backoff, each try counted (a debtor abroad fails after MAX_TRIES, and holds no other
    # text), which leaves the operator about an hour to mend a wrong TWILIO_FROM_NUMBER
    # before the texts fail.
    "21606": CodeRule(
        "the 'From' number cannot send to this destination, or is not a message-capable "
        "number of the account: check TWILIO_FROM_NUMBER if every text is refused",
        retryable=True,
    ),
    "21608": CodeRule("a trial account may only send to verified numbers"),
    "21610": CodeRule(
        "the recipient has opted out (replied STOP)",
        suppression=SuppressionReason.STOP.value,
    ),
    "21611": CodeRule("the sender's queue is full", retryable=True),
    "21612": CodeRule("the 'To' number is not reachable by SMS from this sender"),
    "21614": CodeRule(
        "the 'To' number is not a mobile number (a landline cannot receive SMS)",
        contact_status=INVALID,
    ),
    "21617": CodeRule("the message body is too long"),
    "21659": CodeRule(
        "the 'From' is not a Twilio number, or a short code of another country than the "
        "destination's: check TWILIO_FROM_NUMBER if every text is refused",
        retryable=True,
    ),
    "21701": CodeRule(
        "the Messaging Service does not exist on the account: check TWILIO_MESSAGING_SERVICE_SID",
        outage=True,
    ),
    "21703": CodeRule(
        "the Messaging Service has no number available to send this message from: check "
        "TWILIO_MESSAGING_SERVICE_SID if every text is refused",
        retryable=True,
    ),
    "21704": CodeRule(
        "the Messaging Service contains no phone numbers: check TWILIO_MESSAGING_SERVICE_SID",
        outage=True,
    ),
    "21705": CodeRule(
        "the Messaging Service is invalid: check TWILIO_MESSAGING_SERVICE_SID", outage=True
    ),
    "30003": CodeRule("the handset is unreachable (off or out of coverage)"),
    "30004": CodeRule("the message was blocked"),
    "30005": CodeRule("unknown destination handset", contact_status=INVALID),
    "30006": CodeRule("landline or unreachable carrier", contact_status=INVALID),
    "30007": CodeRule("filtered by the carrier"),
    "30008": CodeRule("unknown error"),
    "30034": CodeRule("the sender is not registered for A2P 10DLC"),
    "13224": CodeRule("the number is invalid or cannot be called", contact_status=INVALID),
    "13225": CodeRule("the number may not be called (forbidden)"),
}


def require_credentials(settings: Settings) -> None:
    if not settings.twilio_configured():
        raise ConfigError(
            "Twilio credentials are missing: set TWILIO_ACCOUNT_SID with TWILIO_AUTH_TOKEN "
            "(or TWILIO_API_KEY_SID and TWILIO_API_KEY_SECRET)"
        )


def credentials(settings: Settings) -> tuple[str, str]:
    """An API key pair when set (revocable, preferred), else the account SID and token."""
    if settings.twilio_api_key_sid and settings.twilio_api_key_secret:
        return settings.twilio_api_key_sid, settings.twilio_api_key_secret.get_secret_value()
    assert settings.twilio_account_sid and settings.twilio_auth_token
    return settings.twilio_account_sid, settings.twilio_auth_token.get_secret_value()


@lru_cache(maxsize=64)
def _target(
    base: str, account_sid: str | None, user: str, secret: str, resource: str
) -> tuple[str, str]:
    """The URL and the Basic credentials for a resource, worked out once rather than on
    every message."""
    token = base64.b64encode(f"{user}:{secret}".encode()).decode("ascii")
    return _resource_url(base, account_sid, resource), f"Basic {token}"


def _resource_url(base: str, account_sid: str | None, resource: str) -> str:
    return f"{base.rstrip('/')}/{API_VERSION}/Accounts/{account_sid}/{resource}"


async def post_form(
    client: httpx.AsyncClient,
    settings: Settings,
    clock: Clock,
    provider: str,
    resource: str,
    form: Mapping[str, str | Sequence[str]],
) -> dict[str, Any]:
    """POST a form to the REST API; the created resource, or a classified ChannelError."""
    user, secret = credentials(settings)
    url, authorization = _target(
        settings.twilio_api_base_url, settings.twilio_account_sid, user, secret, resource
    )
    try:
        response = await post_bytes(
            client,
            url,
            encode_form(form).encode(),
            {"Authorization": authorization, "Content-Type": FORM},
        )
    except httpx.HTTPError as exc:
        raise transport_failure(provider, exc) from None
    if response.is_success:
        created = _json_body(response)
        if not isinstance(created, dict) or not created.get("sid"):
            # Twilio said yes but we cannot tell to what: never send it again on our own.
            raise ChannelError(
                f"{provider}: HTTP {response.status_code} without a resource id; the "
                "message may have been accepted, so hold it for review",
                provider=provider,
                ambiguous=True,
                status_code=response.status_code,
            )
        return created
    raise error_from(provider, response, clock.now())


def _json_body(response: HttpAnswer) -> Any:
    """The answer's JSON, None if it is not JSON. orjson reads the UTF-8 that Twilio
    sends a few times faster than ``response.json()``, which takes anything else."""
    try:
        return orjson.loads(response.content)
    except ValueError:
        try:
            return response.json()
        except ValueError:
            return None


def error_from(provider: str, response: HttpAnswer, now: datetime) -> ChannelError:
    """Twilio's error body ``{"code", "message", "more_info", "status"}`` classified."""
    try:
        body = response.json()
    except ValueError:
        body = {}
    body = body if isinstance(body, dict) else {}
    code = str(body["code"]) if body.get("code") is not None else None
    detail = body.get("message") if isinstance(body.get("message"), str) else None
    return http_failure(
        provider, response, now, code=code, rule=TWILIO_CODES.get(code or ""), detail=detail
    )


def code_rule(error_code: str | None) -> CodeRule | None:
    return TWILIO_CODES.get(error_code or "")


class _MultiParams(dict[str, list[str]]):
    """Form fields with repeated keys, in the shape RequestValidator reads (``getall``)."""

    def getall(self, key: str) -> list[str]:
        return self[key]


def public_url(public_base_url: str, called: str) -> str:
    """The URL Twilio signed: ``called``'s path and query on the public scheme and host.

    Behind a proxy the web layer sees its own host, port or scheme; Twilio signed the
    address it was given, which is PUBLIC_BASE_URL's.
    """
    base, got = urlsplit(public_base_url), urlsplit(called)
    prefix = base.path.rstrip("/")
    path = got.path
    if prefix and path != prefix and not path.startswith(prefix + "/"):
        path = prefix + path
    return urlunsplit((base.scheme, base.netloc, path, got.query, ""))


def verify_signature(settings: Settings, request: WebhookRequest) -> None:
    """Raise WebhookRejected unless X-Twilio-Signature matches the public URL and fields."""
    if settings.twilio_auth_token is None:
        raise WebhookRejected(
            "Twilio webhooks are signed with the auth token, and TWILIO_AUTH_TOKEN is not set"
        )
    signature = request.header(SIGNATURE_HEADER)
    if not signature:
        raise WebhookRejected(f"the request has no {SIGNATURE_HEADER} header")
    url = public_url(settings.public_base_url, request.url)
    params: _MultiParams | str
    # JSON bodies are signed through a hash of the body carried in the URL. The validator
    # reads that hash with parse_qs, which drops an empty value: it would then take the
    # body for form fields and fail on it, so an empty hash is refused here.
    if parse_qs(urlsplit(url).query).get("bodySHA256"):
        params = request.body.decode("utf-8", errors="replace")
    elif "bodySHA256" in request.query():
        raise WebhookRejected("the request's bodySHA256 is empty")
    else:
        params = _MultiParams()
        for key, value in request.form_items():
            params.setdefault(key, []).append(value)
    validator = RequestValidator(settings.twilio_auth_token.get_secret_value())
    if not validator.validate(url, params, signature):
        raise WebhookRejected(
            f"{SIGNATURE_HEADER} does not match this request (check PUBLIC_BASE_URL: Twilio "
            "signs the exact public URL it called)"
        )


def request_token(request: WebhookRequest) -> str | None:
    token = (request.header(IDEMPOTENCY_HEADER) or "").strip()
    return token[:128] or None


def form_payload(request: WebhookRequest) -> dict[str, Any]:
    """The fields as sent, a list where a key repeats, to keep as the raw payload."""
    payload: dict[str, Any] = {}
    for key, value in request.form_items():
        if key in payload:
            existing = payload[key]
            payload[key] = [*existing, value] if isinstance(existing, list) else [existing, value]
        else:
            payload[key] = value
    return payload
