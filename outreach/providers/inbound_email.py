"""Reading an Inbound Parse POST: multipart/form-data, parsed fields or the raw MIME.

Parsed mode posts ``from``, ``to``, ``subject``, ``text``, ``html``, ``headers``,
``envelope`` and ``charsets``; raw mode posts the whole message in ``email``. Bodies come
with CRLF line endings (RFC 7578) or, from some senders, bare LF; the stdlib MIME parser
reads both. Text in a charset Python does not know (``unknown-8bit``) is read as UTF-8,
what cannot be read replaced: a message refused would be refused on every retry, and its
opt-out lost. The sender is the From header's address; a display name with an unquoted
comma ("Doe, Pat <pat@example.com>") does not hide it, and with no address in the header
the envelope's sender is taken.

Whatever the message carries, a signed post is read: a header the stdlib's parser fails on
is taken as written, a message nested too deep to parse is read part by part for its first
text, and a post whose message cannot be read at all is read from its form fields alone
(in raw mode, with the text its message's body holds as written).
Only a body that is no multipart form is refused. Nothing of a message is logged.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import re
from dataclasses import dataclass
from email import policy
from email.header import decode_header, make_header
from email.message import Message, MIMEPart
from email.parser import BytesParser
from email.utils import getaddresses
from html.parser import HTMLParser
from urllib.parse import unquote_to_bytes

from selectolax.lexbor import LexborHTMLParser, LexborNode

from outreach.errors import WebhookRejected

log = logging.getLogger("outreach.providers.inbound_email")

# A multipart boundary parameter, to cut a message too deep to parse into its parts: quoted
# (RFC 2046 allows spaces in it) or a token, or in RFC 2231's forms, its charset and
# language named and its value percent-encoded (boundary*=utf-8''b%20x), or in numbered
# sections (boundary*0="b "; boundary*1*=x%30). Groups: section, extended, quoted, token.
_BOUNDARY = re.compile(
    rb'boundary(?:\*(\d{1,3}))?(\*)?\s*=\s*(?:"([^"\r\n]{1,200})"|([^\s;"]+))', re.IGNORECASE
)
# A message no parser reads is read as written from its first MiB.
_WRITTEN_LIMIT = 1 << 20
# In it, a line that may be a boundary (when a MIME header follows it), a header line, and
# the content type a header line names.
_DELIMITER = re.compile(rb"--\S.{0,200}")
_MIME_HEADER = re.compile(rb"(?:content-[\w-]+|mime-version)\s*:", re.IGNORECASE)
_HEADER = re.compile(rb"[!-9;-~]+:")
_CONTENT_TYPE = re.compile(rb"content-type\s*:\s*([\w.+-]+/[\w.+-]+)", re.IGNORECASE)
_ATTACHMENT = re.compile(rb"\bfilename\*?\s*=|content-disposition\s*:\s*attachment", re.IGNORECASE)


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
    # Read from the form fields alone, with no Message-ID: a digest of the message as posted
    # (raw mode's email field, parsed mode's headers), to tell two such mails apart.
    digest: str | None = None


def read_form(body: bytes, content_type: str) -> dict[str, tuple[bytes, str | None]]:
    """multipart/form-data fields: name -> (bytes, filename or None)."""
    if "multipart/form-data" not in content_type.lower() or "boundary=" not in content_type:
        raise WebhookRejected("an Inbound Parse request must be multipart/form-data")
    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode("latin-1")
    try:
        return _form_fields(BytesParser(policy=policy.HTTP).parsebytes(head + body))
    except Exception:  # the modern header parser on a part's header: the legacy one
        try:
            return _form_fields(BytesParser(policy=policy.compat32).parsebytes(head + body))
        except Exception:  # RecursionError, for one: no form SendGrid posts
            raise WebhookRejected("the multipart body could not be read") from None


def _form_fields(message: Message) -> dict[str, tuple[bytes, str | None]]:
    if not message.is_multipart():
        raise WebhookRejected("the multipart body could not be read")
    fields: dict[str, tuple[bytes, str | None]] = {}
    for part in message.get_payload():
        if not isinstance(part, Message):
            continue
        name = part.get_param("name", header="content-disposition")
        if not isinstance(name, str):
            continue
        payload = part.get_payload(decode=True)
        fields[name] = (payload if isinstance(payload, bytes) else b"", part.get_filename())
    return fields


def parse_inbound(body: bytes, content_type: str) -> InboundEmail:
    """The email an Inbound Parse post carries. Refused (``WebhookRejected``) only when the
    body is no multipart form: a signed post refused would be refused on every retry, and
    an opt-out in it lost."""
    form = read_form(body, content_type)
    try:
        return _read(form)
    except Exception as exc:  # the last resort: what the form's own fields say
        # Its type only: the exception's text may quote the message.
        log.warning(
            "an Inbound Parse message was read from its form fields alone (%s)",
            type(exc).__name__,
        )
        return _from_fields(form)


def _read(form: dict[str, tuple[bytes, str | None]]) -> InboundEmail:
    charsets = _charsets(form)
    fields = {
        name: _decode(value, charsets.get(name, "utf-8"))
        for name, (value, filename) in form.items()
        if filename is None
    }
    if "email" in fields:
        return _from_raw(form["email"][0], fields)
    # Only the headers: parsed further, a body after them could fail the parse.
    headers = _parser().parsebytes(fields.get("headers", "").encode("utf-8"), headersonly=True)
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


def _from_fields(form: dict[str, tuple[bytes, str | None]]) -> InboundEmail:
    """An email from the parsed-mode fields alone, each read as UTF-8, with no headers."""
    fields = {
        name: value.decode("utf-8", errors="replace")
        for name, (value, filename) in form.items()
        if filename is None and name != "email"
    }
    envelope = _envelope(fields.get("envelope"))
    return InboundEmail(
        from_address=_address(fields.get("from", ""), envelope.sender),
        to_address=_address(fields.get("to", ""), next(iter(envelope.to), "")),
        subject=fields.get("subject", "").strip(),
        # Raw mode posts no text field: the raw message's body, as written.
        text=fields.get("text", "").strip() or _written_text(form.get("email", (b"", None))[0]),
        message_id=None,
        in_reply_to=None,
        envelope_to=envelope.to,
        fields=fields,
        digest=hashlib.sha256(form.get("email", form.get("headers", (b"", None)))[0]).hexdigest(),
    )


def _parser() -> BytesParser:
    return BytesParser(policy=policy.default)


def _from_raw(raw: bytes, fields: dict[str, str]) -> InboundEmail:
    try:
        message = _parser().parsebytes(raw)
        text = _body_text(message)
    except Exception:  # nested deeper than the parser recurses, or a header it fails on
        message = _parser().parsebytes(raw, headersonly=True)
        text = _first_text(raw)
    envelope = _envelope(fields.get("envelope"))
    return InboundEmail(
        from_address=_address(_header(message, "From") or fields.get("from", ""), envelope.sender),
        to_address=_address(
            _header(message, "To") or fields.get("to", ""), next(iter(envelope.to), "")
        ),
        subject=_header(message, "Subject") or fields.get("subject", "").strip(),
        text=text.strip(),
        message_id=_header(message, "Message-ID"),
        in_reply_to=_header(message, "In-Reply-To"),
        envelope_to=envelope.to,
        fields={k: v for k, v in fields.items() if k != "email"},
    )


def _body_text(message: Message) -> str:
    """The message's text: its plain part, else its HTML part's words."""
    assert isinstance(message, MIMEPart)
    part = message.get_body(preferencelist=("plain", "html"))
    if part is None:
        return ""
    text = _content(part)
    return _text_or_html(None, text) if part.get_content_type() == "text/html" else text


def _first_text(raw: bytes) -> str:
    """The first plain (else HTML) part of a message that cannot be parsed whole (parts
    nested deeper than the parser recurses): cut at each boundary the message declares,
    each piece read on its own, with the legacy parser."""
    boundaries = _boundaries(raw)
    pieces: list[list[bytes]] = [[]]
    for line in raw.splitlines(keepends=True):
        mark = line.rstrip()
        if mark in boundaries or (mark.endswith(b"--") and mark[:-2] in boundaries):
            pieces.append([])
        else:
            pieces[-1].append(line)
    found: dict[str, str] = {}
    # The first piece is the message's own headers and preamble, unless it is all there is.
    unread = False
    for piece in pieces[1:] or pieces:
        # A piece that cannot be read (still nested too deep, a boundary not found) is
        # skipped: the text may be in the next.
        read = _text_part(b"".join(piece))
        unread = unread or read is None
        kind, text = read or ("", "")
        if kind in ("text/plain", "text/html") and kind not in found:
            found[kind] = text
    text = _text_or_html(found.get("text/plain"), found.get("text/html"))
    return text if text or not unread else _written_text(raw)


def _written_text(raw: bytes) -> str:
    """The text of a raw message no parser reads, crudely: in its first MiB, cut at each
    line that looks like a boundary, each piece's leading MIME headers dropped (the first
    piece's are the message's), the first plain text piece as written (no transfer encoding
    undone), else the first HTML piece's words. Linear in the message's length."""
    boundaries = _boundaries(raw)
    lines = raw[:_WRITTEN_LIMIT].splitlines(keepends=True)
    pieces: list[list[bytes]] = [[]]
    for at, line in enumerate(lines):
        mark = line.rstrip()
        following = lines[at + 1] if at + 1 < len(lines) else b""
        if _DELIMITER.fullmatch(mark) and _MIME_HEADER.match(following):
            boundaries.add(mark)  # a boundary not found declared: its close is known too
        if mark in boundaries or (mark.endswith(b"--") and mark[:-2] in boundaries):
            pieces.append([])
        else:
            pieces[-1].append(line)
    html = ""
    for piece in pieces:
        at, kind = 0, "text/plain"
        while at < len(piece) and (
            _HEADER.match(piece[at])
            or (at and piece[at][:1] in (b" ", b"\t") and piece[at].strip())
        ):
            if found := _CONTENT_TYPE.match(piece[at]):
                kind = found.group(1).decode("ascii").lower()
            if _ATTACHMENT.search(piece[at]):
                kind = "attachment"
            at += 1
        if at < len(piece) and not piece[at].strip():
            at += 1  # the blank line after the headers
        text = b"".join(piece[at:]).decode("utf-8", errors="replace").strip()
        if not text:
            continue
        if kind == "text/plain":
            return text
        if kind == "text/html" and not html:
            html = _text_or_html(None, text)
    return html


def _text_part(piece: bytes) -> tuple[str, str] | None:
    """A piece of a message cut at its boundaries, as a text part (no attachment): its
    content type and text; ("", "") when it is no such part, None when it cannot be read."""
    try:
        part = BytesParser(policy=policy.compat32).parsebytes(piece)
        kind = part.get_content_type()
        if kind not in ("text/plain", "text/html") or part.get_filename():
            return "", ""
        payload = part.get_payload(decode=True)
        charset = part.get_content_charset("utf-8")
    except Exception:  # RecursionError, for one
        return None
    return kind, _decode(payload if isinstance(payload, bytes) else b"", charset)


def _boundaries(raw: bytes) -> set[bytes]:
    """The delimiter lines ("--" and the boundary) of each boundary ``raw`` declares."""
    found: set[bytes] = set()
    sections: list[bytes] = []  # an RFC 2231 boundary's sections, read so far

    def close() -> None:
        if sections:
            found.add(b"".join(sections))
            sections.clear()

    for match in _BOUNDARY.finditer(raw):
        section, extended, quoted, token = match.groups()
        value = quoted if quoted is not None else token
        if extended:  # charset'language'value in the first section, percent-encoded
            if section in (None, b"0") and value.count(b"'") >= 2:
                value = value.split(b"'", 2)[2]
            value = unquote_to_bytes(value)
        if section is None:
            close()
            found.add(value)
        elif int(section) == 0:
            close()
            sections.append(value)
        elif sections:
            sections.append(value)
    close()
    # A delimiter line is compared without its trailing white space.
    return {b"--" + boundary.rstrip() for boundary in found if boundary.strip()}


def _content(part: MIMEPart) -> str:
    """A text part's content; in a charset Python does not know, or one that cannot replace
    what it fails on (idna), its bytes read as UTF-8, what is not UTF-8 replaced."""
    try:
        content = part.get_content()
    except (LookupError, ValueError):  # UnicodeError is a ValueError
        payload = part.get_payload(decode=True)
        content = payload.decode("utf-8", errors="replace") if isinstance(payload, bytes) else ""
    return content if isinstance(content, str) else ""


def _decode(value: bytes, charset: str) -> str:
    """``value`` in ``charset``; else, in a charset Python does not know or one that cannot
    replace what it fails on (idna), as UTF-8, what is not UTF-8 replaced."""
    try:
        return value.decode(charset, errors="replace")
    except (LookupError, ValueError):  # UnicodeError is a ValueError
        return value.decode("utf-8", errors="replace")


def _address(header: str, fallback: str) -> str:
    """The first email address (one with an @) a From or To header names, lower-cased; else
    ``fallback`` (the envelope's), else what the header names (kept for an agent to read).
    An unquoted comma in a display name ("Doe, Pat <pat@example.com>") splits the header
    in two, and the part before it is no address."""
    try:
        named = [address.strip().lower() for _name, address in getaddresses([header])]
    except Exception:  # the legacy address parser on a header it cannot read
        named = [header.strip().lower()]
    return next((a for a in named if "@" in a), None) or fallback or next(iter(named), "")


def _charsets(form: dict[str, tuple[bytes, str | None]]) -> dict[str, str]:
    """The ``charsets`` field: each field's charset by its name (as SendGrid names it;
    one that cannot be used is met when decoding)."""
    raw = form.get("charsets", (b"{}", None))[0]
    try:
        loaded = json.loads(raw.decode("utf-8", errors="replace") or "{}")
    except (ValueError, RecursionError):  # nested deeper than the JSON parser recurses
        return {}
    if not isinstance(loaded, dict):
        return {}
    return {str(name): str(charset) for name, charset in loaded.items()}


@dataclass(frozen=True)
class _Envelope:
    """The SMTP envelope SendGrid posts (``{"to": [...], "from": "..."}``), lower-cased."""

    to: tuple[str, ...] = ()
    sender: str = ""


def _envelope(value: str | None) -> _Envelope:
    try:
        envelope = json.loads(value or "{}")
    except (ValueError, RecursionError):  # nested deeper than the JSON parser recurses
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
    """A header's value, decoded; as written (unfolded, its encoded words decoded if they
    can be) when the stdlib's header parser fails on it ("<abc@[127.0.0.1>" in a
    Message-ID, ".a:?" in a From)."""
    try:
        value = message.get(name)
        return str(value).strip() or None if value is not None else None
    except Exception:  # AttributeError, UnboundLocalError, HeaderParseError...
        written = _legacy_headers(message).get(name)
        return (
            _words_decoded(" ".join(str(written).split())) or None if written is not None else None
        )


def _words_decoded(text: str) -> str:
    """A header's text with its RFC 2047 encoded words ("=?utf-8?q?Re=3A_STOP?=") decoded;
    as written when they cannot be (a charset Python does not know, bad base64...)."""
    try:
        return str(make_header(decode_header(text)))
    except Exception:  # LookupError, UnicodeError, binascii.Error, HeaderParseError...
        return text


def _legacy_headers(message: Message) -> Message:
    """``message``'s headers as written, read by the legacy parser (which takes any text)."""
    legacy = Message(policy=policy.compat32)
    for name, value in message.raw_items():
        legacy[name] = value
    return legacy


def _text_or_html(text: str | None, html: str | None) -> str:
    if text and text.strip():
        return text.strip()
    if not html:
        return ""
    return _html_text(html)


# Elements that start a line of their own; those whose text no mail reader shows.
_BLOCKS = frozenset(
    {"address", "article", "blockquote", "br", "dd", "div", "dl", "dt", "footer", "form",
     "h1", "h2", "h3", "h4", "h5", "h6", "header", "hr", "li", "ol", "p", "pre", "section",
     "table", "td", "th", "tr", "ul"}
)  # fmt: skip
_HIDDEN = frozenset({"head", "script", "style", "template", "title"})
# The quoted history of a reply in HTML: a <blockquote> (Apple Mail, Thunderbird, Gmail's
# inside its gmail_quote block), Gmail's and Yahoo's blocks with the attribution in them.
_QUOTE_CLASSES = frozenset({"gmail_quote", "yahoo_quoted"})
# Outlook's start of the original it leaves unquoted (its "From: ... Sent:" block), as
# its plain text marks it: everything from there is our own message.
_ORIGINAL_IDS = frozenset({"divRplyFwdMsg", "appendonsend"})
_ORIGINAL_MARK = "_" * 32


# The debtor's words stand at the top of a reply: an HTML body is read this far, and markup
# with more tags than a mail has (nesting built to slow the parser, whose tree building
# grows faster than the input as nesting deepens) is read flat, in time linear in its size.
MAX_HTML_READ = 256 * 1024
MAX_HTML_TAGS = 10_000


def _html_text(html: str) -> str:
    """An HTML-only email as its plain text would read: a line for each block, the quoted
    history's lines marked ">" and Outlook's unquoted original after a "____" line, so the
    reply is read without them as a text reply is (intents.reply_text)."""
    html = html[:MAX_HTML_READ]
    if html.count("<") > MAX_HTML_TAGS:
        return _flat_text(html)
    lines: list[tuple[bool, list[str]]] = [(False, [])]
    tree = LexborHTMLParser(html)
    # Depth first without recursion (a mail may nest deeper than Python recurses), each
    # node with whether it is quoted; None closes a block.
    stack: list[tuple[LexborNode | None, bool]] = [(tree.body or tree.root, False)]
    while stack:
        node, quoted = stack.pop()
        if node is None:
            lines.append((quoted, []))
        elif node.is_text_node:
            if lines[-1][0] != quoted:
                lines.append((quoted, []))
            lines[-1][1].append(node.text_content or "")
        elif node.is_element_node and (tag := node.tag or "") not in _HIDDEN:
            attributes = node.attributes
            if attributes.get("id") in _ORIGINAL_IDS:
                lines += [(False, [_ORIGINAL_MARK]), (False, [])]
            classes = set((attributes.get("class") or "").split())
            inside = quoted or tag == "blockquote" or bool(classes & _QUOTE_CLASSES)
            if tag in _BLOCKS:
                lines.append((inside, []))
                stack.append((None, quoted))
            stack.extend((child, inside) for child in reversed(list(node.iter(include_text=True))))
    text = [(quoted, " ".join("".join(words).split())) for quoted, words in lines]
    return "\n".join(f"> {line}" if quoted else line for quoted, line in text if line).strip()


def _flat_text(html: str) -> str:
    """The text of markup too large to read block by block, on one line."""
    chunks: list[str] = []

    class _Text(HTMLParser):
        def handle_data(self, data: str) -> None:
            chunks.append(data)

    # The stdlib's parser asserts on some malformed markup ("<![x]y"): the words before it.
    with contextlib.suppress(AssertionError):
        _Text().feed(html)
    return " ".join(" ".join(chunks).split())
