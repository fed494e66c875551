"""Reading an Inbound Parse POST: multipart/form-data, parsed fields or the raw MIME.

Parsed mode posts ``from``, ``to``, ``subject``, ``text``, ``html``, ``headers``,
``envelope`` and ``charsets``; raw mode posts the whole message in ``email``. Bodies come
with CRLF line endings (RFC 7578) or, from some senders, bare LF; the stdlib MIME parser
reads both.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import EmailMessage, Message
from email.parser import BytesParser
from email.utils import parseaddr
from html.parser import HTMLParser

from outreach.errors import WebhookRejected


@dataclass(frozen=True)
class InboundEmail:
    from_address: str
    to_address: str
    subject: str
    text: str
    message_id: str | None
    in_reply_to: str | None
    envelope_to: tuple[str, ...]
    fields: dict[str, str]  # every form field as text (attachments left out)


def read_form(body: bytes, content_type: str) -> dict[str, tuple[bytes, str | None]]:
    """multipart/form-data fields: name -> (bytes, filename or None)."""
    if "multipart/form-data" not in content_type.lower() or "boundary=" not in content_type:
        raise WebhookRejected("an Inbound Parse request must be multipart/form-data")
    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode("latin-1")
    message = BytesParser(policy=policy.HTTP).parsebytes(head + body)
    if not message.is_multipart():
        raise WebhookRejected("the multipart body could not be read")
    fields: dict[str, tuple[bytes, str | None]] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not isinstance(name, str):
            continue
        payload = part.get_payload(decode=True)
        fields[name] = (payload if isinstance(payload, bytes) else b"", part.get_filename())
    return fields


def parse_inbound(body: bytes, content_type: str) -> InboundEmail:
    form = read_form(body, content_type)
    charsets = _charsets(form)
    fields = {
        name: value.decode(charsets.get(name, "utf-8"), errors="replace")
        for name, (value, filename) in form.items()
        if filename is None
    }
    if "email" in fields:
        return _from_raw(form["email"][0], fields)
    headers = message_from_bytes(fields.get("headers", "").encode("utf-8"), policy=policy.default)
    return InboundEmail(
        from_address=parseaddr(fields.get("from", ""))[1].lower(),
        to_address=parseaddr(fields.get("to", ""))[1].lower(),
        subject=fields.get("subject", "").strip(),
        text=_text_or_html(fields.get("text"), fields.get("html")),
        message_id=_header(headers, "Message-ID"),
        in_reply_to=_header(headers, "In-Reply-To"),
        envelope_to=_envelope_to(fields.get("envelope")),
        fields=fields,
    )


def _from_raw(raw: bytes, fields: dict[str, str]) -> InboundEmail:
    message = BytesParser(policy=policy.default).parsebytes(raw)
    assert isinstance(message, EmailMessage)
    part = message.get_body(preferencelist=("plain", "html"))
    content = part.get_content() if part is not None else ""
    text = content if isinstance(content, str) else ""
    if part is not None and part.get_content_type() == "text/html":
        text = _text_or_html(None, text)
    return InboundEmail(
        from_address=parseaddr(str(message.get("From", fields.get("from", ""))))[1].lower(),
        to_address=parseaddr(str(message.get("To", fields.get("to", ""))))[1].lower(),
        subject=str(message.get("Subject", fields.get("subject", ""))).strip(),
        text=text.strip(),
        message_id=_header(message, "Message-ID"),
        in_reply_to=_header(message, "In-Reply-To"),
        envelope_to=_envelope_to(fields.get("envelope")),
        fields={k: v for k, v in fields.items() if k != "email"},
    )


def _charsets(form: dict[str, tuple[bytes, str | None]]) -> dict[str, str]:
    raw = form.get("charsets", (b"{}", None))[0]
    try:
        loaded = json.loads(raw.decode("utf-8", errors="replace") or "{}")
    except ValueError:
        return {}
    if not isinstance(loaded, dict):
        return {}
    known = {}
    for name, charset in loaded.items():
        try:
            b"".decode(str(charset))
        except LookupError:
            continue
        known[str(name)] = str(charset)
    return known


def _envelope_to(value: str | None) -> tuple[str, ...]:
    try:
        envelope = json.loads(value or "{}")
    except ValueError:
        return ()
    to = envelope.get("to", []) if isinstance(envelope, dict) else []
    return tuple(str(address).lower() for address in to if isinstance(address, str))


def _header(message: Message, name: str) -> str | None:
    value = message.get(name)
    return str(value).strip() or None if value is not None else None


def _text_or_html(text: str | None, html: str | None) -> str:
    if text and text.strip():
        return text.strip()
    if not html:
        return ""
    chunks: list[str] = []

    class _Text(HTMLParser):
        def handle_data(self, data: str) -> None:
            chunks.append(data)

    _Text().feed(html)
    return " ".join(" ".join(chunks).split())
