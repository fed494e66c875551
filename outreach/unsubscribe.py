"""Signed unsubscribe links for the body of an email.

The link names the address and the account it was sent for, signed with SECRET_KEY, so
the unsubscribe page can suppress the address without a login and nobody can forge a link
for someone else's address. A link signed with a key SECRET_KEY held before (listed in
SECRET_KEY_PREVIOUS) still reads: an email already sent must keep its opt-out working after
the key is rotated. (The List-Unsubscribe header uses the provider's own one-click URL,
signed per attempt.)
"""

from __future__ import annotations

import base64
import hmac
import json
from dataclasses import dataclass
from functools import lru_cache

from outreach.db import json_dumps
from outreach.errors import OutreachError

PATH = "/u/"


class BadUnsubscribeToken(OutreachError):
    """The link was not made by this installation, or was altered."""


@dataclass(frozen=True)
class UnsubscribeRequest:
    address: str
    reference: str


def make_token(secret_key: str, address: str, reference: str) -> str:
    payload = json_dumps([address, reference]).encode()
    body = base64.urlsafe_b64encode(payload).rstrip(b"=").decode()
    return f"{body}.{_signature(secret_key, body)}"


def read_token(
    secret_key: str, token: str, previous_keys: tuple[str, ...] = ()
) -> UnsubscribeRequest:
    """What the link names, if ``secret_key`` or one of ``previous_keys`` signed it."""
    body, _, signature = token.partition(".")
    # Links are made of ASCII only (compare_digest would refuse other text with a TypeError).
    if not token.isascii() or not any(
        hmac.compare_digest(signature, _signature(key, body))
        for key in (secret_key, *previous_keys)
    ):
        raise BadUnsubscribeToken("this unsubscribe link is not valid")
    try:
        address, reference = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    except ValueError:
        raise BadUnsubscribeToken("this unsubscribe link is not valid") from None
    return UnsubscribeRequest(str(address), str(reference))


def unsubscribe_url(public_base_url: str, secret_key: str, address: str, reference: str) -> str:
    return f"{public_base_url.rstrip('/')}{PATH}{make_token(secret_key, address, reference)}"


def _signature(secret_key: str, body: str) -> str:
    signer = _signer(secret_key).copy()
    signer.update(body.encode())
    return base64.urlsafe_b64encode(signer.digest()[:18]).decode()


@lru_cache(maxsize=4)
def _signer(secret_key: str) -> hmac.HMAC:
    """The HMAC with the key and the link prefix taken in, copied for each link: every
    email of a batch carries one, and keying the hash is half the cost of signing."""
    return hmac.new(secret_key.encode(), b"unsubscribe-link:", "sha256")
