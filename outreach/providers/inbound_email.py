"""Reading an Inbound Parse POST: multipart/form-data, parsed fields or the raw MIME.

Parsed mode posts ``from``, ``to``, ``subject``, ``text``, ``html``, ``headers``,
``envelope`` and ``charsets``; raw mode posts the whole message in ``email``. Bodies come
with CRLF line endings (RFC 7578) or, from some senders, bare LF; the stdlib MIME parser
reads both. Text in a charset Python does not know (``unknown-8bit``) is read as UTF-8,
what cannot be read replaced: a message refused would be refused on every retry, and its
opt-out lost. The sender is the From header's address; a display name with an unquoted
comma ("Doe, Pat <pat@example.com>") does not hide it, and with no address in the header
the envelope's sender is taken.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import EmailMessage, Message, MIMEPart
from email.parser import BytesParser
from email.utils import getaddresses
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
    envelope = _envelope(fields.get("envelope"))
    return InboundEmail(
        from_address=_address(fields.get("from", ""), envelope.sender),
        to_address=_address(fields.get("to", ""), next(iter(envelope.to), "")),
        subject=fields.get("subject", "").strip(),
        text=_text_or_html(fields.get("text"), fields.get("html")),
        message_id=_header(headers, "Message-ID"),
        in_reply_to=_header(headers, "In-Reply-To"),
        envelope_to=envelope.to,
        fields=fields,
    )


def _from_raw(raw: bytes, fields: dict[str, str]) -> InboundEmail:
    message = BytesParser(policy=policy.default).parsebytes(raw)
    assert isinstance(message, EmailMessage)
    part = message.get_body(preferencelist=("plain", "html"))
    text = _content(part) if part is not None else ""
    if part is not None and part.get_content_type() == "text/html":
        text = _text_or_html(None, text)
    envelope = _envelope(fields.get("envelope"))
    return InboundEmail(
        from_address=_address(str(message.get("From", fields.get("from", ""))), envelope.sender),
        to_address=_address(
            str(message.get("To", fields.get("to", ""))), next(iter(envelope.to), "")
        ),
        subject=str(message.get("Subject", fields.get("subject", ""))).strip(),
        text=text.strip(),
        message_id=_header(message, "Message-ID"),
        in_reply_to=_header(message, "In-Reply-To"),
        envelope_to=envelope.to,
        fields={k: v for k, v in fields.items() if k != "email"},
    )


def _content(part: MIMEPart) -> str:
    """A text part's content; in a charset Python does not know, its bytes read as UTF-8,
    what is not UTF-8 replaced."""
    try:
        content = part.get_content()
    except LookupError:
        payload = part.get_payload(decode=True)
        content = payload.decode("utf-8", errors="replace") if isinstance(payload, bytes) else ""
    return content if isinstance(content, str) else ""


def _address(header: str, fallback: str) -> str:
    """The first email address (one with an @) a From or To header names, lower-cased; else
    ``fallback`` (the envelope's), else what the header names (kept for an agent to read).
    An unquoted comma in a display name ("Doe, Pat <pat@example.com>") splits the header
    in two, and the part before it is no address."""
    named = [address.strip().lower() for _name, address in getaddresses([header])]
    return next((a for a in named if "@" in a), None) or fallback or next(iter(named), "")


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


@dataclass(frozen=True)
class _Envelope:
    """The SMTP envelope SendGrid posts (``{"to": [...], "from": "..."}``), lower-cased."""

    to: tuple[str, ...] = ()
    sender: str = ""


def _envelope(value: str | None) -> _Envelope:
    try:
        envelope = json.loads(value or "{}")
    except ValueError:
        return _Envelope()
    if not isinstance(envelope, dict):
        return _Envelope()
    to = envelope.get("to", [])
    sender = envelope.get("from")
    return _Envelope(
        tuple(str(a).lower() for a in to if isinstance(a, str)) if isinstance(to, list) else (),
        sender.strip().lower() if isinstance(sender, str) and "@" in sender else "",
    )


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
