"""A form whose token is an earlier session's: the user signed in again (in another tab)
since the page was shown. Refused, and what was typed comes back to send again."""

from __future__ import annotations

import html
import re
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine, func, select

from outreach.compliance_store import attempts
from outreach.errors import NotFoundError
from outreach.events import apply_events
from outreach.models import Role
from outreach.store import compliance_events, promises_to_pay
from outreach.users import end_sessions, user_by_name
from outreach.web import ui
from tests.conftest import NOW
from tests.eventdata import add_account, inbound
from tests.web.conftest import Server
from tests.web.test_review_pages import _attempt, _held, _hold
from tests.web.ui_support import (
    PASSWORD,
    add_user,
    csrf_of,
    page_token,
    seed_templates,
    sign_in,
)

WORDS = 'She says the invoice <b>was</b> paid by "cheque" on 3 March & has the receipt.'
ACCOUNT = "/inbox/accounts/R-1"


def _signed_in_again(client: httpx.Client, engine: Engine, user: str, page: str) -> str:
    """``user`` opens ``page``; their session ends and they sign in again in another tab.
    The token of the page's forms, now an earlier session's."""
    old = page_token(client, page)
    with engine.begin() as connection:
        end_sessions(connection, user_by_name(connection, user).id)
    form = client.get("/login")
    again = {"username": user, "password": PASSWORD, "csrf_token": csrf_of(form.text)}
    assert client.post("/login", data=again).status_code == 303
    assert page_token(client, page) != old
    return old


_FORM = re.compile(r'<form method="post" action="([^"]*)">(.*?)</form>', re.S)
_HIDDEN = re.compile(r'<input type="hidden" name="([^"]+)" value="([^"]*)">')
_TEXT = re.compile(r'<textarea name="([^"]+)"[^>]*>\n(.*?)</textarea>', re.S)
_SELECT = re.compile(r'<select name="([^"]+)"[^>]*>(.*?)</select>', re.S)
_SELECTED = re.compile(r'<option value="([^"]*)" selected>')  # a disabled one is not sent
_PASSWORD = re.compile(r'<input type="password" name="([^"]+)"[^>]*>')


def _form_to_send_again(page: str) -> tuple[str, list[tuple[str, str]]]:
    """The out-of-date page's form: where it posts, and its fields as a browser sends them
    (a password field as it comes: empty)."""
    found = [m for m in _FORM.finditer(page) if m.group(1) != "/logout"]
    assert len(found) == 1, page
    action, body = found[0].groups()
    chosen = [
        (name, selected.group(1))
        for name, options in _SELECT.findall(body)
        if (selected := _SELECTED.search(options)) is not None
    ]
    passwords = [(name, "") for name in _PASSWORD.findall(body)]
    fields = [*_HIDDEN.findall(body), *chosen, *_TEXT.findall(body), *passwords]
    return html.unescape(action), [(name, html.unescape(value)) for name, value in fields]


def _visible(page: str) -> str:
    """The out-of-date page's words as the user sees them: no hidden input."""
    return _HIDDEN.sub("", page.split("<h1>Form out of date</h1>")[1])


def _value(page: str, name: str) -> str:
    found = re.search(f'name="{name}" value="([^"]+)"', page)
    assert found is not None, name
    return found.group(1)


def _count(engine: Engine, table: object) -> int:
    with engine.connect() as connection:
        return int(connection.execute(select(func.count()).select_from(table)).scalar_one())


def test_a_note_sent_with_an_earlier_sessions_token_comes_back_to_send_again(
    server: Server, engine: Engine
) -> None:
    """The dispute note is refused (403, nothing recorded) but not lost: it comes back,
    as text, in the same form with this session's token, and sending it records it."""
    add_user(engine, "ana", Role.AGENT)
    add_account(engine)
    own = {"Origin": server.base, "Referer": f"{server.base}{ACCOUNT}"}
    with sign_in(server.base, "ana") as client:
        old = _signed_in_again(client, engine, "ana", ACCOUNT)
        sent = client.post(
            f"{ACCOUNT}/dispute", data={"csrf_token": old, "note": WORDS}, headers=own
        )
        assert sent.status_code == 403 and "Form out of date" in sent.text
        assert "signed in again" in sent.text and "nothing was saved" in sent.text
        assert "<b>was</b>" not in sent.text and old not in sent.text
        assert _count(engine, compliance_events) == 0
        action, fields = _form_to_send_again(sent.text)
        assert action == f"{ACCOUNT}/dispute"
        assert fields == [("csrf_token", page_token(client)), ("note", WORDS)]
        again = client.post(action, data=dict(fields), headers=own)
        assert again.status_code == 303 and again.headers["location"].startswith(ACCOUNT)
        with engine.connect() as connection:
            notes = connection.execute(select(compliance_events)).all()
        assert len(notes) == 1 and WORDS in str(notes[0])
        # A form with nothing typed (signing out) and the old token: refused as ever.
        out = client.post("/logout", data={"csrf_token": old}, headers=own)
        assert out.status_code == 403 and "Not sent from outreach" in out.text
        assert client.get("/").status_code == 200  # still signed in


def test_a_promise_sent_again_twice_is_recorded_once(server: Server, engine: Engine) -> None:
    """The form's key comes back with the figures: sending the page again (twice) records
    the promise once."""
    add_user(engine, "ana", Role.AGENT)
    add_account(engine)
    own = {"Sec-Fetch-Site": "same-origin", "Referer": f"{server.base}{ACCOUNT}"}
    with sign_in(server.base, "ana") as client:
        key = _value(client.get(ACCOUNT).text, "form_key")
        old = _signed_in_again(client, engine, "ana", ACCOUNT)
        typed = {"amount": "25.50", "due_on": "2026-12-24", "form_key": key}
        sent = client.post(f"{ACCOUNT}/promise", data={"csrf_token": old, **typed}, headers=own)
        assert sent.status_code == 403 and _count(engine, promises_to_pay) == 0
        action, fields = _form_to_send_again(sent.text)
        assert dict(fields) == {**typed, "csrf_token": page_token(client)}
        for _ in range(2):
            assert client.post(action, data=dict(fields), headers=own).status_code == 303
        assert _count(engine, promises_to_pay) == 1


def test_an_answer_to_a_debtor_sent_again_is_queued_once(server: Server, engine: Engine) -> None:
    """The answer comes back with the reply it answers, what the agent had seen and the
    form's key: sent again, it is queued; sent once more, it is not queued twice."""
    seed_templates(engine)
    add_user(engine, "ana", Role.AGENT)
    add_account(engine)
    apply_events(engine, [inbound("Can I pay on Friday?", key="r1", at=NOW)], NOW)
    own = {"Sec-Fetch-Site": "same-origin", "Referer": f"{server.base}{ACCOUNT}"}
    with sign_in(server.base, "ana") as client:
        page = client.get(ACCOUNT).text
        # The answer form's fields (the first of each name on the page).
        shown = {name: _value(page, name) for name in ("message_id", "seen", "form_key")}
        old = _signed_in_again(client, engine, "ana", ACCOUNT)
        typed = {**shown, "answer": "Friday is fine.", "handled": "yes"}
        sent = client.post(f"{ACCOUNT}/answer", data={"csrf_token": old, **typed}, headers=own)
        assert sent.status_code == 403 and _count(engine, attempts) == 0
        action, fields = _form_to_send_again(sent.text)
        assert dict(fields) == {**typed, "csrf_token": page_token(client)}
        assert "Mark the reply handled: <strong>yes</strong>" in _visible(sent.text)
        assert "message_id" not in _visible(sent.text)
        for _ in range(2):
            assert client.post(action, data=dict(fields), headers=own).status_code == 303
        with engine.connect() as connection:
            [attempt] = connection.execute(select(attempts)).all()
        assert attempt.body.startswith("Friday is fine.")


@pytest.mark.parametrize(
    "headers",
    [
        {},  # no Origin: the browser does not say where the form was
        {"Origin": "https://example.net", "Referer": "https://example.net/inbox"},
        {"Sec-Fetch-Site": "cross-site", "Origin": "https://example.net"},
    ],
)
def test_a_form_from_elsewhere_with_an_old_token_gets_the_plain_refusal(
    server: Server, engine: Engine, headers: dict[str, str]
) -> None:
    """A page elsewhere cannot put its words on ours, nor have them sent with our token:
    the form that comes back to send again from our own page is, from elsewhere, only
    refused, with none of its words."""
    add_user(engine, "ana", Role.AGENT)
    add_account(engine)
    own = {"Origin": server.base, "Referer": f"{server.base}{ACCOUNT}"}
    with sign_in(server.base, "ana") as client:
        old = _signed_in_again(client, engine, "ana", ACCOUNT)
        form = {"csrf_token": old, "note": WORDS}
        ours = client.post(f"{ACCOUNT}/dispute", data=form, headers=own)
        assert ours.status_code == 403 and "Form out of date" in ours.text
        sent = client.post(f"{ACCOUNT}/dispute", data=form, headers=headers)
        assert sent.status_code == 403 and "Not sent from outreach" in sent.text
        assert "cheque" not in sent.text and "Form out of date" not in sent.text
        assert _count(engine, compliance_events) == 0


NEW_PASSWORD = "Winter-Sunrise-4471!"


def test_passwords_tokens_and_unlisted_fields_are_never_shown_back(
    server: Server, engine: Engine
) -> None:
    """The admin's "Add a user" form: the name and display name come back, the role with
    them; the passwords, a token, a secret and a field not listed do not."""
    add_user(engine, "root", Role.ADMIN)
    own = {"Sec-Fetch-Site": "same-origin", "Referer": f"{server.base}/admin/users"}
    with sign_in(server.base, "root") as client:
        old = _signed_in_again(client, engine, "root", "/admin/users")
        typed = {"username": "bob", "display_name": "Bob Stone", "role": "agent",
                 "password": NEW_PASSWORD, "password_again": NEW_PASSWORD,
                 "api_token": "t0ken-value", "client_secret": "s3cr3t-value",
                 "pin": "4471"}  # fmt: skip
        sent = client.post("/admin/users", data={"csrf_token": old, **typed}, headers=own)
        assert sent.status_code == 403 and "Form out of date" in sent.text
        for hidden in (NEW_PASSWORD, "t0ken-value", "s3cr3t-value", "4471", old):
            assert hidden not in sent.text
        _, fields = _form_to_send_again(sent.text)
        assert dict(fields) == {"csrf_token": page_token(client), "role": "agent",
                                "username": "bob", "display_name": "Bob Stone",
                                "password": "", "password_again": ""}  # fmt: skip
        with engine.connect() as connection, pytest.raises(NotFoundError):
            user_by_name(connection, "bob")  # nothing recorded


_TEMPLATES = Path(ui.__file__).parent / "ui_templates"
_MACRO = re.compile(r"{% macro (\w+)\(\) -%}(.*?){%- endmacro %}", re.S)
_FORM_IN_TEMPLATE = re.compile(r"(<form\b[^>]*>)(.*?)</form>", re.S)
_NAME = re.compile(r'\bname="([^"{]+)"')


def _forms(template: Path) -> list[tuple[str, list[str]]]:
    """Each form of ``template``: its opening tag and its fields' names, those of the
    template's macros included."""
    text = template.read_text()
    for name, body in _MACRO.findall(text):
        text = text.replace(f"{{{{ {name}() }}}}", body)
    return [(tag, _NAME.findall(body)) for tag, body in _FORM_IN_TEMPLATE.findall(text)]


def test_every_form_with_words_worth_keeping_sends_all_its_fields_again() -> None:
    """A form that can come back out of date comes back whole: each of its fields is kept,
    carried or chosen again, but for its token and a password or secret (never shown
    back). A field added to such a form, and not listed, fails here rather than making
    every form sent again refused. (The sign-in form has a token of its own and a refusal
    of its own: a fresh sign-in form.)"""
    again = ui.KEPT_FIELDS | ui.CARRIED_FIELDS | ui.CHOSEN_FIELDS.keys()
    checked = 0
    for template in sorted(_TEMPLATES.glob("*.html")):
        for tag, names in _forms(template) if template.name != "login.html" else []:
            if not ui.KEPT_FIELDS & set(names):
                continue
            checked += 1
            lost = {
                name
                for name in names
                if name != "csrf_token"
                and not any(word in name.lower() for word in ("password", "token", "secret"))
                and name not in again
            }
            assert not lost, (template.name, tag, lost)
    assert checked >= 8  # the answer, promise, dispute, workplace, pause, settle, editor, user


def test_settling_a_held_message_sent_again_settles_it(server: Server, engine: Engine) -> None:
    """The settle form comes back with how it went as the same list (to change), the hold
    it settles and the note: sent again, the message is settled with the note."""
    add_user(engine, "olga", Role.ADMIN)
    attempt_id = _held(engine)
    own = {"Sec-Fetch-Site": "same-origin", "Referer": f"{server.base}/review"}
    with sign_in(server.base, "olga") as client:
        shown = _hold(client, attempt_id)
        old = _signed_in_again(client, engine, "olga", "/review")
        typed = {"how": "resend", "note": "not in the console", **shown}
        sent = client.post(f"/review/{attempt_id}", data={"csrf_token": old, **typed}, headers=own)
        assert sent.status_code == 403 and "Form out of date" in sent.text
        assert _attempt(engine, attempt_id).status == "unknown"
        assert '<option value="resend" selected>send again: the provider does not have' in sent.text
        action, fields = _form_to_send_again(sent.text)
        assert dict(fields) == {**typed, "csrf_token": page_token(client)}
        changed = {**dict(fields), "how": "cancel"}  # changed its mind on the page
        assert client.post(action, data=changed, headers=own).status_code == 303
        attempt = _attempt(engine, attempt_id)
        assert (attempt.status, attempt.review_note) == ("cancelled", "not in the console")


def test_the_choices_sent_again_are_shown_and_escaped(server: Server, engine: Engine) -> None:
    """What a carried choice says (a request's kind, a new user's role) is seen on the page,
    as text, not only in a hidden input; what the form acts on (its key) is not shown."""
    add_user(engine, "root", Role.ADMIN)
    add_account(engine)
    own = {"Sec-Fetch-Site": "same-origin", "Referer": f"{server.base}{ACCOUNT}"}
    with sign_in(server.base, "root") as client:
        old = _signed_in_again(client, engine, "root", ACCOUNT)
        for kind, seen in [
            ("workplace_allowed", "Kind: <strong>workplace allowed</strong>"),
            ("<b>prohibited</b>", "Kind: <strong>&lt;b&gt;prohibited&lt;/b&gt;</strong>"),
        ]:
            form = {"csrf_token": old, "kind": kind, "note": "HR email"}
            sent = client.post(f"{ACCOUNT}/workplace", data=form, headers=own)
            assert sent.status_code == 403 and seen in _visible(sent.text)
            assert "<b>prohibited" not in sent.text
        typed = {"username": "bob", "role": "admin", "form_key": "k-123"}
        sent = client.post("/admin/users", data={"csrf_token": old, **typed}, headers=own)
        assert "Role: <strong>admin</strong>" in _visible(sent.text)
        assert "k-123" not in _visible(sent.text) and "k-123" in sent.text
        assert _count(engine, compliance_events) == 0


def test_a_new_user_sent_again_with_the_password_typed_again_is_added_once(
    server: Server, engine: Engine
) -> None:
    """The passwords never come back, but their fields do, empty, saying to type them
    again: sent again with them, the user is added, once."""
    add_user(engine, "root", Role.ADMIN)
    own = {"Sec-Fetch-Site": "same-origin", "Referer": f"{server.base}/admin/users"}
    with sign_in(server.base, "root") as client:
        old = _signed_in_again(client, engine, "root", "/admin/users")
        typed = {"username": "bob", "display_name": "Bob Stone", "role": "admin",
                 "password": NEW_PASSWORD, "password_again": NEW_PASSWORD}  # fmt: skip
        sent = client.post("/admin/users", data={"csrf_token": old, **typed}, headers=own)
        assert sent.status_code == 403 and NEW_PASSWORD not in sent.text
        assert "type it again" in sent.text
        assert '<input type="password" name="password_again"' in sent.text
        action, fields = _form_to_send_again(sent.text)
        typed_again = {**dict(fields), "password": NEW_PASSWORD, "password_again": NEW_PASSWORD}
        assert client.post(action, data=typed_again, headers=own).status_code == 303
        assert client.post(action, data=typed_again, headers=own).status_code != 303
        with engine.connect() as connection:
            assert user_by_name(connection, "bob").role is Role.ADMIN
