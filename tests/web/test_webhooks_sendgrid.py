"""SendGrid's Event Webhook, Inbound Parse and one-click unsubscribe, and the outbox's
webhook, against a real server."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import Engine

from outreach.clock import FixedClock
from outreach.compliance_store import inbox_messages
from outreach.config import Settings
from outreach.events import provider_events
from outreach.providers.sendgrid_email import unsubscribe_token
from outreach.store import compliance_events, suppressions
from outreach.web.app import create_app
from tests.conftest import NOW
from tests.eventdata import EMAIL, PHONE, add_account, add_attempt, attempt, count, rows
from tests.providers.conftest import PUBLIC, SECRET_KEY, EcdsaKeys
from tests.web.conftest import (
    TIMESTAMP,
    Server,
    multipart,
    outbox_events,
    sendgrid_events,
    sendgrid_inbound,
    serving,
)

# The suppression ledger spells email addresses in lower case.
MAILBOX = EMAIL.lower()
# What Inbound Parse posts besides the message, as its documentation shows it.
PARSE_FIELDS = {"dkim": "{@example.com : pass}", "sender_ip": "192.0.2.1", "SPF": "pass",
                "charsets": '{"to":"UTF-8","subject":"UTF-8","from":"UTF-8"}'}  # fmt: skip


def _active(engine: Engine) -> list[tuple[str, str, str]]:
    """The suppressions in force: channel, address, reason."""
    found = rows(engine, suppressions)
    return sorted((s.channel, s.address, s.reason) for s in found if s.lifted_at is None)


def _envelope(to: str, sender: str) -> str:
    """Inbound Parse's ``envelope`` field: the SMTP recipients and sender."""
    return json.dumps({"to": [to], "from": sender})


def _event(name: str, attempt_id: int, event_id: str, **extra: object) -> dict[str, object]:
    return {
        "email": EMAIL.lower(), "timestamp": int(TIMESTAMP), "event": name,
        "sg_event_id": event_id, "sg_message_id": "sg-1.filter0001.1.2.0",
        "outreach_attempt_id": str(attempt_id), **extra,
    }  # fmt: skip


def test_a_batch_out_of_order_and_with_repeats_is_stored_once_each(
    engine: Engine, server: Server, event_keys: EcdsaKeys
) -> None:
    mail = add_attempt(engine, add_account(engine), channel="email", to=EMAIL, message_id="sg-1")
    delivered = _event("delivered", mail, "ev-2", future_field={"added": "later"})
    processed = _event("processed", mail, "ev-1")
    first = server.send(sendgrid_events([delivered, processed, delivered], event_keys))
    assert first.json() == {"stored": 2, "duplicates": 0}  # a repeat in one batch is dropped
    replayed = server.send(sendgrid_events([delivered, processed], event_keys))
    assert replayed.json() == {"stored": 0, "duplicates": 2}
    assert attempt(engine, mail).status == "delivered"
    assert count(engine, provider_events) == 2


def test_forged_or_tampered_event_batches_are_refused(
    engine: Engine, server: Server, event_keys: EcdsaKeys, inbound_keys: EcdsaKeys
) -> None:
    mail = add_attempt(engine, add_account(engine), channel="email", to=EMAIL, message_id="sg-1")
    genuine = sendgrid_events([_event("bounce", mail, "ev-1")], event_keys)
    tampered = replace(genuine, body=genuine.body.replace(b"bounce", b"open"))
    other_time = replace(
        genuine, headers={**genuine.headers, "X-Twilio-Email-Event-Webhook-Timestamp": "1"}
    )
    wrong_key = sendgrid_events([_event("bounce", mail, "ev-1")], inbound_keys)
    for request in (tampered, other_time, wrong_key):
        assert server.send(request).status_code == 403
    assert count(engine, provider_events) == 0
    assert rows(engine, suppressions) == []


@pytest.mark.parametrize("timestamp", ["253402300800", "999999999999"])
def test_an_unsigned_batch_stamped_after_the_year_9999_is_refused_not_an_error(
    engine: Engine, server: Server, event_keys: EcdsaKeys, timestamp: str
) -> None:
    """Anyone can send this timestamp: it is a 403 like any other too far ahead."""
    genuine = sendgrid_events([], event_keys)
    forged = replace(
        genuine, headers={**genuine.headers, "X-Twilio-Email-Event-Webhook-Timestamp": timestamp}
    )
    response = server.send(forged)
    assert response.status_code == 403, response.text
    assert "in the future" in response.json()["detail"]


def test_unknown_messages_and_extra_fields_are_kept(
    engine: Engine, server: Server, event_keys: EcdsaKeys
) -> None:
    item = {
        "email": "x@example.com", "event": "delivered", "sg_event_id": "ev-9",
        "sg_message_id": "sg-unknown.filter", "timestamp": 1793710800, "brand_new": [1],
    }  # fmt: skip
    assert server.send(sendgrid_events([item], event_keys)).json()["stored"] == 1
    (stored,) = rows(engine, provider_events)
    assert (stored.attempt_id, stored.payload["brand_new"]) == (None, [1])


def test_a_signed_body_that_is_not_json_is_malformed(
    engine: Engine, server: Server, event_keys: EcdsaKeys
) -> None:
    genuine = sendgrid_events([], event_keys)
    body = b"[{not json"
    broken = replace(
        genuine,
        body=body,
        headers={
            **genuine.headers,
            "X-Twilio-Email-Event-Webhook-Signature": event_keys.sign(TIMESTAMP, body),
        },
    )
    response = server.send(broken)
    assert (response.status_code, response.json()) == (400, {"detail": "the body is not JSON"})


def test_unsubscribes_spam_reports_bounces_and_drops_suppress(
    engine: Engine, server: Server, event_keys: EcdsaKeys
) -> None:
    mail = add_attempt(engine, add_account(engine), channel="email", to=EMAIL, message_id="sg-1")
    items = [
        _event("unsubscribe", mail, "a"),
        _event("group_unsubscribe", mail, "b", asm_group_id=1),
        _event("spamreport", mail, "c"),
        _event("bounce", mail, "d", type="bounce", status="5.1.1"),
        _event("dropped", mail, "e", reason="Bounced Address"),
    ]
    server.send(sendgrid_events(items, event_keys))
    found = sorted((s.address, s.reason) for s in rows(engine, suppressions))
    assert found == [(MAILBOX, "bounce"), (MAILBOX, "complaint"), (MAILBOX, "unsubscribe")]
    assert all(s.provider_event_id is not None for s in rows(engine, suppressions))


def test_an_unsubscribe_in_a_batch_with_half_of_a_surrogate_pair_is_applied(
    engine: Engine, server: Server, event_keys: EcdsaKeys
) -> None:
    """An emoji cut in half in a custom argument ("\\ud83d" in the JSON): the batch is
    stored, the half replaced, and its unsubscribe applied, on PostgreSQL too, whose JSONB
    refuses the half: a refusal would come back on every retry."""
    mail = add_attempt(engine, add_account(engine), channel="email", to=EMAIL, message_id="sg-1")
    items = [_event("processed", mail, "a", subject="Your balance \ud83d"),
             _event("unsubscribe", mail, "b", campaign="\ud83d")]  # fmt: skip
    response = server.send(sendgrid_events(items, event_keys))
    assert response.status_code == 200, response.text
    assert response.json() == {"stored": 2, "duplicates": 0}
    assert _active(engine) == [("email", MAILBOX, "unsubscribe")]
    stored = {row.payload["sg_event_id"]: row.payload for row in rows(engine, provider_events)}
    assert (stored["a"]["subject"], stored["b"]["campaign"]) == ("Your balance \ufffd", "\ufffd")


def test_a_reply_in_utf_7_with_half_of_a_surrogate_pair_reaches_the_inbox(
    engine: Engine, server: Server, inbound_keys: EcdsaKeys
) -> None:
    """UTF-7 decodes "+2D0-" to half of a surrogate pair, as a JSON escape may: the reply is
    kept with U+FFFD in its place, on PostgreSQL too, instead of being refused on every
    retry."""
    account_id = add_account(engine)
    message = (
        f"MIME-Version: 1.0\r\nFrom: Pat Doe <{EMAIL}>\r\n"
        "Date: Wed, 10 Aug 2026 14:44:21 -0700\r\nSubject: Re: your balance\r\n"
        "To: billing@reply.example.com\r\nMessage-ID: <m1@example.com>\r\n"
        "Content-Type: text/plain; charset=utf-7\r\n\r\nI dispute this amount +2D0-\r\n"
    )
    fields = {**PARSE_FIELDS, "email": message, "to": "billing@reply.example.com",
              "from": f"Pat Doe <{EMAIL}>", "subject": "Re: your balance",
              "envelope": _envelope("billing@reply.example.com", MAILBOX)}  # fmt: skip
    response = server.send(sendgrid_inbound(fields, inbound_keys))
    assert response.status_code == 200, response.text
    (reply,) = rows(engine, inbox_messages)
    assert (reply.account_id, reply.intent) == (account_id, "dispute")
    assert reply.body.endswith("amount \ufffd")


def test_an_inbound_email_reaches_the_inbox(
    engine: Engine, server: Server, inbound_keys: EcdsaKeys
) -> None:
    account_id = add_account(engine)
    fields = {"from": f"Pat Doe <{EMAIL}>", "to": "billing+7@reply.example.com",
              "subject": "Re: your balance", "text": "I dispute this amount.\n> quoted",
              "envelope": '{"to": ["billing+7@reply.example.com"]}', "extra": "kept"}  # fmt: skip
    response = server.send(sendgrid_inbound(fields, inbound_keys))
    assert response.json() == {"stored": 1, "duplicates": 0}
    (reply,) = rows(engine, inbox_messages)
    assert (reply.account_id, reply.intent, reply.channel) == (account_id, "dispute", "email")
    again = server.send(sendgrid_inbound(fields, inbound_keys))
    assert again.json() == {"stored": 0, "duplicates": 1}


def test_a_raw_mode_unsubscribe_mail_with_an_unknown_charset_is_honoured(
    engine: Engine, server: Server, inbound_keys: EcdsaKeys
) -> None:
    """A text part labelled with a charset Python does not know (``unknown-8bit``, as some
    mail servers label 8-bit text) is read as UTF-8, not refused: a refusal would come
    back on every retry, and the unsubscribe would be lost."""
    add_account(engine)
    message = (
        f"MIME-Version: 1.0\r\nFrom: Pat Doe <{EMAIL}>\r\n"
        "Date: Wed, 10 Aug 2026 14:44:21 -0700\r\nSubject: unsubscribe\r\n"
        "To: billing@reply.example.com\r\nMessage-ID: <m1@example.com>\r\n"
        "Content-Type: text/plain; charset=unknown-8bit\r\n\r\nSTOP\r\n"
    )
    fields = {**PARSE_FIELDS, "email": message, "to": "billing@reply.example.com",
              "from": f"Pat Doe <{EMAIL}>", "subject": "unsubscribe",
              "envelope": _envelope("billing@reply.example.com", MAILBOX)}  # fmt: skip
    response = server.send(sendgrid_inbound(fields, inbound_keys))
    assert response.status_code == 200, response.text
    assert _active(engine) == [("email", MAILBOX, "unsubscribe")]


def _nested(depth: int, text: str) -> str:
    """A message body of ``depth`` multipart/mixed parts, one in another, around ``text``."""
    opening = "".join(
        f"Content-Type: multipart/mixed; boundary=b{i}\r\n\r\n--b{i}\r\n" for i in range(depth)
    )
    closing = "".join(f"\r\n--b{i}--" for i in reversed(range(depth)))
    return f"{opening}Content-Type: text/plain\r\n\r\n{text}{closing}\r\n"


_HEAD = "To: billing@reply.example.com\r\nSubject: Re: your balance\r\n"


@pytest.mark.parametrize(
    "fields",
    [
        # The stdlib's header parser fails on these (AttributeError, UnboundLocalError).
        {"headers": "Message-ID: <abc@[127.0.0.1>\r\n", "text": "STOP"},
        {"headers": "Message-ID: <a@[\r\n", "text": "STOP"},
        {"email": f"From: .a:?\r\n{_HEAD}\r\nSTOP\r\n"},
        {"email": f"From: Pat Doe <{EMAIL}>\r\n{_HEAD}{_nested(1000, 'STOP')}"},
        # A charset that refuses errors="replace" (a UnicodeError, once a 400).
        {"text": "STOP", "charsets": '{"text": "idna"}'},
    ],
    ids=["message-id", "message-id-cut", "raw-from", "raw-nested", "charset"],
)
def test_a_signed_unsubscribe_mail_the_stdlib_fails_to_read_is_honoured(
    engine: Engine, server: Server, inbound_keys: EcdsaKeys, fields: dict[str, str]
) -> None:
    """Refused, it would be refused on every retry and the unsubscribe lost: the mail is
    stored, from its sender, and its STOP honoured."""
    add_account(engine)
    post = {**PARSE_FIELDS, "from": f"Pat Doe <{EMAIL}>", "to": "billing@reply.example.com",
            "subject": "Re: your balance",
            "envelope": _envelope("billing@reply.example.com", MAILBOX), **fields}  # fmt: skip
    response = server.send(sendgrid_inbound(post, inbound_keys))
    assert response.status_code == 200, response.text
    assert _active(engine) == [("email", MAILBOX, "unsubscribe")]
    (stored,) = rows(engine, provider_events)
    assert (stored.kind, stored.event_type) == ("inbound", "opted_out")


def test_an_unsubscribe_mail_from_an_unquoted_display_name_unsubscribes_the_sender(
    engine: Engine, server: Server, inbound_keys: EcdsaKeys
) -> None:
    """``Doe, Pat <pat.doe@...>`` (a display name with an unquoted comma, as some mailers
    write it) names the mailbox after the comma, not an address "Doe"; and an email is
    never taken for a text."""
    add_account(engine)
    fields = {**PARSE_FIELDS, "from": f"Doe, Pat <{EMAIL}>", "to": "billing@reply.example.com",
              "subject": "unsubscribe", "text": "",
              "envelope": _envelope("billing@reply.example.com", MAILBOX)}  # fmt: skip
    assert server.send(sendgrid_inbound(fields, inbound_keys)).status_code == 200
    assert _active(engine) == [("email", MAILBOX, "unsubscribe")]


def test_an_email_naming_a_text_message_does_not_opt_out_the_phone(
    engine: Engine, server: Server, inbound_keys: EcdsaKeys
) -> None:
    """Anyone can write to ``billing+N@``: the ``+N`` ties an email to an email of ours
    only. Naming a text, it is an email from its sender, here an unknown one, who
    unsubscribes their own mailbox and nothing else."""
    account_id = add_account(engine)
    text = add_attempt(engine, account_id, channel="sms", to=PHONE, message_id="SM1")
    to = f"billing+{text}@reply.example.com"
    fields = {**PARSE_FIELDS, "from": "stranger@evil.example", "to": to, "subject": "Re: hi",
              "text": "STOP", "envelope": _envelope(to, "stranger@evil.example")}  # fmt: skip
    assert server.send(sendgrid_inbound(fields, inbound_keys)).status_code == 200
    assert _active(engine) == [("email", "stranger@evil.example", "unsubscribe")]
    (stored,) = rows(engine, provider_events)
    assert (stored.attempt_id, stored.account_id) == (None, None)
    assert rows(engine, inbox_messages) == []  # no text confirmation to the phone either
    assert rows(engine, compliance_events, account_id=account_id) == []


def test_an_email_starting_with_yes_does_not_lift_the_unsubscribe(
    engine: Engine, server: Server, event_keys: EcdsaKeys, inbound_keys: EcdsaKeys
) -> None:
    """An opt-in by email is the whole reply, as a text's is: "Yes." and then a question
    answers something else, and reaches an agent."""
    account_id = add_account(engine)
    mail = add_attempt(engine, account_id, channel="email", to=EMAIL, message_id="sg-1")
    assert server.send(sendgrid_events([_event("unsubscribe", mail, "ev-u")], event_keys))
    assert _active(engine) == [("email", MAILBOX, "unsubscribe")]
    to = f"billing+{mail}@reply.example.com"
    fields = {**PARSE_FIELDS, "from": f"Pat Doe <{EMAIL}>", "to": to,
              "subject": "Re: Your balance",
              "text": "Yes.\nCan someone call me tomorrow after 5pm about the balance?\n\n"
                      "On Mon, Nov 2, 2026 Northwind wrote:\n> Reply YES to hear from us again",
              "envelope": _envelope(to, MAILBOX)}  # fmt: skip
    assert server.send(sendgrid_inbound(fields, inbound_keys)).status_code == 200
    assert _active(engine) == [("email", MAILBOX, "unsubscribe")]
    (reply,) = rows(engine, inbox_messages)
    assert (reply.account_id, reply.intent) == (account_id, "call_me")
    fields |= {"text": "Yes\n\nOn Mon, Nov 2, 2026 Northwind wrote:\n> Hello"}
    assert server.send(sendgrid_inbound(fields, inbound_keys)).status_code == 200
    assert _active(engine) == []  # the whole reply is the keyword


def test_a_reply_from_a_non_ascii_address_reaches_its_account(
    engine: Engine, server: Server, inbound_keys: EcdsaKeys
) -> None:
    """The contact point keeps the import's "Élodie.Durand@..."; the reply comes from the
    mailbox lower-cased. Matched without case on every letter, not only ASCII's (SQLite's
    lower() folds ASCII only)."""
    account_id = add_account(engine, email="Élodie.Durand@example.com")
    sender = "élodie.durand@example.com"
    fields = {**PARSE_FIELDS, "from": f"Élodie Durand <{sender}>",
              "to": "billing@reply.example.com", "subject": "Re: your balance",
              "text": "I dispute this debt. Stop emailing me.",
              "envelope": _envelope("billing@reply.example.com", sender)}  # fmt: skip
    assert server.send(sendgrid_inbound(fields, inbound_keys)).status_code == 200
    (reply,) = rows(engine, inbox_messages)
    kinds = sorted(e.kind for e in rows(engine, compliance_events, account_id=account_id))
    assert reply.account_id == account_id, kinds
    assert kinds == ["dispute", "opt_out", "prohibited_medium"]
    assert _active(engine) == [("email", sender, "unsubscribe")]


def test_a_reply_from_a_cyrillic_mailbox_with_capitals_reaches_its_account(
    engine: Engine, server: Server, inbound_keys: EcdsaKeys
) -> None:
    """As with "Élodie", for a mailbox with more letters beyond ASCII than SQLite's search
    spells out whole (any Cyrillic or Greek name): the import's "Иван.Петров@..." is found
    for the provider's lower-cased "иван.петров@..."."""
    account_id = add_account(engine, email="Иван.Петров@example.com")
    sender = "иван.петров@example.com"
    fields = {**PARSE_FIELDS, "from": f"Иван Петров <{sender}>",
              "to": "billing@reply.example.com", "subject": "Re: your balance",
              "text": "I dispute this debt.",
              "envelope": _envelope("billing@reply.example.com", sender)}  # fmt: skip
    assert server.send(sendgrid_inbound(fields, inbound_keys)).status_code == 200
    (reply,) = rows(engine, inbox_messages)
    kinds = sorted(e.kind for e in rows(engine, compliance_events, account_id=account_id))
    assert (reply.account_id, kinds) == (account_id, ["dispute"])


def test_a_forged_inbound_email_is_refused(
    engine: Engine, server: Server, event_keys: EcdsaKeys
) -> None:
    fields = {"from": EMAIL, "to": "billing@reply.example.com", "text": "STOP"}
    assert server.send(sendgrid_inbound(fields, event_keys)).status_code == 403
    assert count(engine, provider_events) == 0


def _one_click(attempt_id: int, *, token: str | None = None) -> str:
    token = token or unsubscribe_token(SECRET_KEY, attempt_id)
    return f"/webhooks/sendgrid_email/unsubscribe?attempt_id={attempt_id}&token={token}"


def test_one_click_unsubscribe_works_without_a_login(engine: Engine, server: Server) -> None:
    mail = add_attempt(engine, add_account(engine), channel="email", to=EMAIL, message_id="sg-1")
    url = server.base + _one_click(mail)
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    first = server.http.post(url, content=b"List-Unsubscribe=One-Click", headers=form)
    _clock(server).advance(timedelta(seconds=30))
    again = server.http.post(url, content=b"List-Unsubscribe=One-Click", headers=form)
    assert (first.json(), again.json()) == ({"stored": 1, "duplicates": 0},) * 2
    # The same request again (a retry, or a second press while unsubscribed) is an event of
    # its own, and finds the address unsubscribed: one suppression.
    assert [(s.address, s.reason) for s in rows(engine, suppressions)] == [(MAILBOX, "unsubscribe")]
    assert [e.kind for e in rows(engine, compliance_events)] == ["opt_out", "opt_out"]


def _clock(server: Server) -> FixedClock:
    clock = server.app.state.clock
    assert isinstance(clock, FixedClock)
    return clock


# When the resubscribe in these tests happened (its "timestamp"), and just before and after.
RESUBSCRIBED = datetime.fromtimestamp(int(TIMESTAMP), UTC)
BEFORE, AFTER = RESUBSCRIBED - timedelta(hours=1), RESUBSCRIBED + timedelta(hours=1)


def test_one_click_unsubscribe_after_an_opt_in_unsubscribes_again(
    engine: Engine, server: Server, inbound_keys: EcdsaKeys
) -> None:
    """A one-click POST carries no id of its own: once the debtor has opted back in (a
    reply that is only START), the same URL posted again is a new unsubscribe, and a retry
    of it adds nothing to it."""
    mail = add_attempt(engine, add_account(engine), channel="email", to=EMAIL, message_id="sg-1")
    url = server.base + _one_click(mail)
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    _clock(server).set(BEFORE)
    assert server.http.post(url, content=b"List-Unsubscribe=One-Click", headers=form).is_success
    assert _active(engine) == [("email", MAILBOX, "unsubscribe")]
    _clock(server).set(RESUBSCRIBED)
    start = {"from": f"Pat Doe <{EMAIL}>", "to": f"billing+{mail}@reply.example.com",
             "subject": "Re: your balance", "text": "START",
             "envelope": _envelope(f"billing+{mail}@reply.example.com", MAILBOX)}  # fmt: skip
    assert server.send(sendgrid_inbound(start, inbound_keys)).is_success
    assert _active(engine) == []
    _clock(server).set(AFTER)
    again = server.http.post(url, content=b"List-Unsubscribe=One-Click", headers=form)
    _clock(server).advance(timedelta(seconds=30))
    retried = server.http.post(url, content=b"List-Unsubscribe=One-Click", headers=form)
    assert (again.status_code, retried.status_code) == (200, 200)
    unsubscribes = [(s.reason, s.created_at, s.lifted_at) for s in rows(engine, suppressions)]
    assert unsubscribes == [("unsubscribe", BEFORE, RESUBSCRIBED), ("unsubscribe", AFTER, None)]
    kinds = [e.kind for e in rows(engine, compliance_events)]
    assert kinds == ["opt_out", "opt_in", "opt_out", "opt_out"]


@pytest.mark.parametrize("unsubscribed_by", ["one-click", "unsubscribe", "reply"])
def test_a_group_resubscribe_lifts_no_unsubscribe(
    engine: Engine,
    server: Server,
    event_keys: EcdsaKeys,
    inbound_keys: EcdsaKeys,
    unsubscribed_by: str,
) -> None:
    """A group resubscribe is about one unsubscribe group (``asm_group_id``) on SendGrid's
    preference page. It never lifts SendGrid's global unsubscribe, nor our one-click
    unsubscribe or a reply's, which SendGrid never heard of: it is stored, and the
    address stays unsubscribed for every account using it."""
    mail = add_attempt(engine, add_account(engine), channel="email", to=EMAIL, message_id="sg-1")
    _clock(server).set(RESUBSCRIBED)  # when the requests are signed
    if unsubscribed_by == "one-click":
        form = {"Content-Type": "application/x-www-form-urlencoded"}
        click = server.http.post(
            server.base + _one_click(mail), content=b"List-Unsubscribe=One-Click", headers=form
        )
        assert click.is_success
    elif unsubscribed_by == "unsubscribe":
        unsubscribe = _event("unsubscribe", mail, "ev-unsub")
        assert server.send(sendgrid_events([unsubscribe], event_keys)).is_success
    else:
        stop = {"from": f"Pat Doe <{EMAIL}>", "to": f"billing+{mail}@reply.example.com",
                "subject": "Re: your balance", "text": "STOP",
                "envelope": _envelope(f"billing+{mail}@reply.example.com", MAILBOX)}  # fmt: skip
        assert server.send(sendgrid_inbound(stop, inbound_keys)).is_success
    assert _active(engine) == [("email", MAILBOX, "unsubscribe")]
    _clock(server).set(AFTER)
    resubscribe = _event(
        "group_resubscribe", mail, "ev-resub", asm_group_id=1, timestamp=int(AFTER.timestamp())
    )
    assert server.send(sendgrid_events([resubscribe], event_keys)).json() == {
        "stored": 1, "duplicates": 0
    }  # fmt: skip
    assert _active(engine) == [("email", MAILBOX, "unsubscribe")]
    assert [e.kind for e in rows(engine, compliance_events)] == ["opt_out"]
    stored = [e for e in rows(engine, provider_events) if e.raw_status == "group_resubscribe"]
    assert [(e.event_type, e.attempt_id) for e in stored] == [("unknown", mail)]


def test_one_click_as_multipart_form_data_as_rfc_8058_prefers(
    engine: Engine, server: Server
) -> None:
    mail = add_attempt(engine, add_account(engine), channel="email", to=EMAIL, message_id="sg-1")
    response = server.http.post(
        server.base + _one_click(mail),
        content=multipart({"List-Unsubscribe": "One-Click"}),
        headers={"Content-Type": "multipart/form-data; boundary=xYzZY"},
    )
    assert response.status_code == 200
    assert [s.reason for s in rows(engine, suppressions)] == ["unsubscribe"]


def test_a_one_click_url_with_a_wrong_token_is_refused(engine: Engine, server: Server) -> None:
    mail = add_attempt(engine, add_account(engine), channel="email", to=EMAIL, message_id="sg-1")
    other = unsubscribe_token(SECRET_KEY, mail + 1)
    response = server.http.post(server.base + _one_click(mail, token=other), content=b"")
    assert response.status_code == 403
    assert rows(engine, suppressions) == []


def test_a_one_click_url_signed_before_the_key_was_rotated_still_unsubscribes(
    engine: Engine, settings: Settings
) -> None:
    mail = add_attempt(engine, add_account(engine), channel="email", to=EMAIL, message_id="sg-1")
    sent = _one_click(mail)  # signed with SECRET_KEY, in an email sent before the change
    new_key = {"secret_key": SecretStr("the-new-key-for-tests-only-9876543210")}
    for previous, status in ((None, 403), (SecretStr(SECRET_KEY), 200)):
        changed = settings.model_copy(update={**new_key, "secret_key_previous": previous})
        with serving(create_app(changed, engine, clock=FixedClock(NOW))) as server:
            response = server.http.post(server.base + sent, content=b"List-Unsubscribe=One-Click")
            assert response.status_code == status
            page = server.http.get(server.base + sent)
            assert page.status_code == status
            if status == 403:  # another way to opt out is named
                assert "billing@northwind.example.com" in page.text
    assert [s.reason for s in rows(engine, suppressions)] == ["unsubscribe"]


def test_a_one_click_url_with_a_non_ascii_token_is_refused(engine: Engine, server: Server) -> None:
    mail = add_attempt(engine, add_account(engine), channel="email", to=EMAIL, message_id="sg-1")
    for token in ("%C3%A9", "%E2%80%8B" + unsubscribe_token(SECRET_KEY, mail)[1:]):
        url = server.base + _one_click(mail, token=token)
        assert server.http.post(url, content=b"List-Unsubscribe=One-Click").status_code == 403
        assert server.http.get(url).status_code == 403
    assert rows(engine, suppressions) == []


def test_a_one_click_url_whose_attempt_id_is_a_non_ascii_digit_is_refused(
    engine: Engine, server: Server
) -> None:
    add_attempt(engine, add_account(engine), channel="email", to=EMAIL, message_id="sg-1")
    # "\u00b2" and "\u0663" pass str.isdigit(); neither is an attempt id.
    for attempt_id in ("%C2%B2", "%D9%A3"):
        url = f"{server.base}/webhooks/sendgrid_email/unsubscribe?attempt_id={attempt_id}&token=x"
        assert server.http.post(url, content=b"List-Unsubscribe=One-Click").status_code == 403
        assert server.http.get(url).status_code == 403
    assert rows(engine, suppressions) == []


def test_the_one_click_url_in_a_browser_shows_a_page_and_a_button(
    engine: Engine, server: Server
) -> None:
    mail = add_attempt(engine, add_account(engine), channel="email", to=EMAIL, message_id="sg-1")
    shown = server.http.get(server.base + _one_click(mail))
    assert shown.status_code == 200 and '<form method="post">' in shown.text
    assert rows(engine, suppressions) == []  # opening the page unsubscribes nobody
    pressed = server.http.post(
        server.base + _one_click(mail),
        data={"List-Unsubscribe": "One-Click"},
        headers={"Accept": "text/html"},
    )
    assert "You are unsubscribed" in pressed.text
    assert server.http.get(server.base + _one_click(mail, token="x")).status_code == 403


def test_the_outbox_webhook(engine: Engine, server: Server) -> None:
    text_id = add_attempt(engine, add_account(engine), message_id="OB1")
    items: list[dict[str, object]] = [
        {"message_id": "OB1", "attempt_id": text_id, "channel": "sms", "event": "delivered",
         "timestamp": "2026-11-02T15:00:05+00:00", "new_field": 1},
        {"message_id": "OB1", "attempt_id": text_id, "channel": "sms", "event": "sent",
         "timestamp": "2026-11-02T15:00:00+00:00"},
    ]  # fmt: skip
    assert server.send(outbox_events(items)).json() == {"stored": 2, "duplicates": 0}
    assert server.send(outbox_events(items)).json() == {"stored": 0, "duplicates": 2}
    assert attempt(engine, text_id).status == "delivered"
    assert server.send(outbox_events(items, secret="another")).status_code == 403
    body = json.dumps(items).encode()
    assert server.send(replace(outbox_events(items), body=body + b" ")).status_code == 403


def test_an_outbox_webhook_with_a_non_ascii_signature_is_refused(
    engine: Engine, server: Server
) -> None:
    request = outbox_events([])
    for signature in (b"\xe9", "é".encode(), b"\xe9" * 64):
        headers = httpx.Headers(
            [(b"Content-Type", b"application/json"), (b"X-Outreach-Signature", signature)]
        )
        response = server.http.post(
            server.base + "/webhooks/outbox/events", content=request.body, headers=headers
        )
        assert response.status_code == 403
    assert count(engine, provider_events) == 0


def test_public_url_is_what_twilio_signed_not_where_we_listen(server: Server) -> None:
    assert not server.base.startswith(PUBLIC)


def test_outbox_events_with_numbers_or_lists_for_text_are_stored(
    engine: Engine, server: Server
) -> None:
    """A number where a text belongs is read as its digits, a list or an object as absent:
    neither makes the batch unstorable on every retry."""
    text_id = add_attempt(engine, add_account(engine), message_id="5")
    items: list[dict[str, object]] = [
        {"event": "delivered", "message_id": 5, "attempt_id": text_id},
        {"event": "reply", "message_id": "r1", "body": ["STOP"], "from": 5, "to": {"a": 1}},
    ]
    response = server.send(outbox_events(items))
    assert (response.status_code, response.json()) == (200, {"stored": 2, "duplicates": 0})
    assert attempt(engine, text_id).status == "delivered"
    assert count(engine, suppressions) == 0


def test_an_event_batch_with_a_huge_attempt_id_or_a_long_address_is_stored(
    engine: Engine, server: Server, event_keys: EcdsaKeys
) -> None:
    """An attempt id past 32 bits names no attempt, an address over 320 characters no one:
    the batch is stored and its other events applied, on PostgreSQL too (whose columns and
    32-bit ids would refuse them, the whole batch with them, on every retry)."""
    mail = add_attempt(engine, add_account(engine), channel="email", to=EMAIL, message_id="sg-1")
    huge = _event("delivered", mail, "a") | {"outreach_attempt_id": "999999999999999999"}
    long = _event("unsubscribe", mail, "b") | {"email": "x" * 400 + "@example.com"}
    response = server.send(
        sendgrid_events([huge, long, _event("unsubscribe", mail, "c")], event_keys)
    )
    assert (response.status_code, response.json()) == (200, {"stored": 3, "duplicates": 0})
    assert _active(engine) == [("email", MAILBOX, "unsubscribe")]


def test_an_inbound_email_from_an_address_over_320_characters_is_stored(
    engine: Engine, server: Server, inbound_keys: EcdsaKeys
) -> None:
    fields = {"from": "x" * 400 + "@example.com", "to": "billing@reply.example.com",
              "subject": "Re: your balance", "text": "STOP"}  # fmt: skip
    response = server.send(sendgrid_inbound(fields, inbound_keys))
    assert (response.status_code, response.json()) == (200, {"stored": 1, "duplicates": 0})
    assert count(engine, suppressions) == 0


# Our email as a reply quotes it: Gmail's attribution and ">" lines; Outlook's header block
# with the original unquoted after it.
QUOTED = (
    "On Mon, Dec 7, 2026 at 9:00 AM Northwind Billing <billing@example.com> wrote:\n"
    "> Your balance of $120.50 is due.\n> Reply STOP to opt out.\n\n"
)
OUTLOOK = (
    "From: Northwind Billing <billing@example.com>\nSent: Monday, December 7, 2026 9:00 AM\n"
    "To: Pat Doe\nSubject: Your balance\n\nYour balance is due. Reply STOP to opt out.\n"
)


def _reply(engine: Engine, server: Server, keys: EcdsaKeys, text: str, html: str = "") -> int:
    """Post ``text`` (or ``html`` alone) as the debtor's reply to an email of a new account;
    the account."""
    account_id = add_account(engine)
    mail = add_attempt(engine, account_id, channel="email", to=EMAIL, message_id="sg-1")
    to = f"billing+{mail}@reply.example.com"
    fields = {**PARSE_FIELDS, "from": f"Pat Doe <{EMAIL}>", "to": to,
              "subject": "Re: Your balance", "text": text, "html": html,
              "envelope": _envelope(to, MAILBOX)}  # fmt: skip
    assert server.send(sendgrid_inbound(fields, keys)).status_code == 200
    return account_id


@pytest.mark.parametrize("text", [QUOTED + "STOP\n", QUOTED + "Please stop emailing me.\n"])
def test_a_stop_typed_below_the_quote_unsubscribes(
    engine: Engine, server: Server, inbound_keys: EcdsaKeys, text: str
) -> None:
    _reply(engine, server, inbound_keys, text)
    assert _active(engine) == [("email", MAILBOX, "unsubscribe")]


@pytest.mark.parametrize(
    ("text", "kind"),
    [("I have a lawyer", "attorney"), ("I dispute this debt", "dispute")],
)
def test_a_hold_typed_below_the_quote_holds_the_account(
    engine: Engine, server: Server, inbound_keys: EcdsaKeys, text: str, kind: str
) -> None:
    account_id = _reply(engine, server, inbound_keys, "Thanks.\n\n" + QUOTED + text)
    recorded = rows(engine, compliance_events, account_id=account_id)
    assert kind in [e.kind for e in recorded]
    (reply,) = rows(engine, inbox_messages)
    assert reply.intent == kind
    assert text in reply.body  # the agent reads the debtor's own words


def test_our_own_reply_stop_below_an_outlook_header_is_not_the_debtors(
    engine: Engine, server: Server, inbound_keys: EcdsaKeys
) -> None:
    """Guards against over-correction (passes before the change too): the original below
    Outlook's header block is our message, not quoted, and its "Reply STOP" is ours."""
    _reply(engine, server, inbound_keys, "Thanks, I will pay Friday.\n\n" + OUTLOOK)
    assert _active(engine) == []
    (reply,) = rows(engine, inbox_messages)
    assert reply.intent == "payment_plan"


@pytest.mark.parametrize(
    ("footer", "kind"),
    [
        ("This email and any attachments are confidential and may be protected by "
         "attorney-client privilege.", "attorney"),
        ("Smith & Sons Plumbing | 555-0100\nIf you no longer wish to receive emails from us, "
         "reply UNSUBSCRIBE.", "opt_out"),
    ],
)  # fmt: skip
def test_a_mail_servers_footer_under_a_top_posted_reply_is_not_the_debtors(
    engine: Engine, server: Server, inbound_keys: EcdsaKeys, footer: str, kind: str
) -> None:
    """The debtor wrote above the quote; their server appended its footer under it."""
    text = "Thanks, I will pay Friday.\n\n" + QUOTED + "\n" + footer + "\n"
    account_id = _reply(engine, server, inbound_keys, text)
    assert _active(engine) == []
    assert rows(engine, compliance_events, account_id=account_id) == []
    (reply,) = rows(engine, inbox_messages)
    assert reply.intent == "payment_plan"


# Our email below a reply in Outlook's Spanish and German forms, and its footer's line.
OURS = "Your balance is due.\nTo stop receiving these emails: https://app.example.com/u\n"


@pytest.mark.parametrize(
    "original",
    [
        "De: Northwind Billing <billing@example.com>\nEnviado: lunes, 7 de diciembre de 2026"
        " 9:00\nPara: Pat Doe\nAsunto: Your balance\n\n" + OURS,
        "Von: Northwind Billing <billing@example.com>\nGesendet: Montag, 7. Dezember 2026"
        " 09:00\nAn: Pat Doe\nBetreff: Your balance\n\n" + OURS,
    ],
)
def test_our_email_under_a_localized_outlook_header_is_not_the_debtors(
    engine: Engine, server: Server, inbound_keys: EcdsaKeys, original: str
) -> None:
    _reply(engine, server, inbound_keys, "Pago el viernes.\n\n" + original)
    assert _active(engine) == []


# Our HTML email as Gmail and Outlook on the web quote it in an HTML-only reply.
OURS_HTML = (
    "<p>Your balance is due.</p><p>Northwind · +1 555 0100<br>"
    '<a href="https://app.example.com/u">Unsubscribe from these emails</a></p>'
)


@pytest.mark.parametrize(
    "html",
    [
        "<div dir='ltr'>I will pay Friday.</div><br><div class='gmail_quote'><div "
        "class='gmail_attr'>On Mon, Dec 7, 2026 at 9:00 AM Northwind &lt;billing@example.com"
        "&gt; wrote:<br></div><blockquote class='gmail_quote'>" + OURS_HTML + "</blockquote>"
        "</div>",
        "<div>I will pay Friday.</div><div id='appendonsend'></div><hr><div id='divRplyFwdMsg'>"
        "<b>De:</b> Northwind<br><b>Enviado:</b> lunes</div><div>" + OURS_HTML + "</div>",
    ],
)
def test_our_email_quoted_in_an_html_only_reply_is_not_the_debtors(
    engine: Engine, server: Server, inbound_keys: EcdsaKeys, html: str
) -> None:
    """The reply's HTML is read line by line, its quote as quoted: our unsubscribe link's
    label is not the debtor's request."""
    _reply(engine, server, inbound_keys, "", html=html)
    assert _active(engine) == []
    (reply,) = rows(engine, inbox_messages)
    assert reply.intent == "payment_plan"
    assert reply.body.startswith("I will pay Friday.\n")


def test_a_stop_below_the_quote_of_an_html_only_reply_unsubscribes(
    engine: Engine, server: Server, inbound_keys: EcdsaKeys
) -> None:
    """Guards against over-correction: the words typed under an HTML quote are read."""
    html = "<blockquote type='cite'>" + OURS_HTML + "</blockquote><div>STOP</div>"
    _reply(engine, server, inbound_keys, "", html=html)
    assert _active(engine) == [("email", MAILBOX, "unsubscribe")]
