"""Signing in to the web UI: sessions, roles, CSRF, throttling, and the headers every
page carries. A real server on 127.0.0.1; SQLite and PostgreSQL."""

from __future__ import annotations

import html
import re
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import Engine, select

from outreach import users as users_module
from outreach.clock import FixedClock
from outreach.config import Settings
from outreach.models import Role
from outreach.store import compliance_events
from outreach.users import end_sessions, set_active, set_password, set_role, user_by_name
from outreach.web import ui
from outreach.web.app import create_app
from outreach.web.auth import SESSION_COOKIE
from outreach.web.sign_in_slots import SignInSlots
from outreach.web.throttle import SignInThrottle, name_key
from tests.conftest import NOW
from tests.eventdata import add_account
from tests.web.conftest import Server, serving
from tests.web.ui_support import (
    PASSWORD,
    add_user,
    csrf_of,
    page_token,
    seed_templates,
    sign_in,
    stored_attempts,
)


def test_pages_send_a_stranger_to_the_sign_in_form(server: Server) -> None:
    with httpx.Client(base_url=server.base) as client:
        response = client.get("/?x=1")
        assert response.status_code == 303
        assert response.headers["location"] == "/login?next=%2F%3Fx%3D1"
        assert client.get("/", headers={"Accept": "application/json"}).status_code == 401


def test_the_sign_in_form_returns_to_the_address_as_it_was_written(server: Server) -> None:
    # Decoded, "X%2F..%2FR-2" would be X/../R-2, which a browser opens as R-2.
    with httpx.Client(base_url=server.base) as client:
        response = client.get("/inbox/accounts/X%2F..%2FR-2")
        assert response.headers["location"] == "/login?next=%2Finbox%2Faccounts%2FX%252F..%252FR-2"


def test_signing_in_opens_the_start_page_and_signing_out_ends_it(
    server: Server, engine: Engine
) -> None:
    add_user(engine, "ana", Role.AGENT)
    with sign_in(server.base, "ana") as client:
        start = client.get("/")
        assert start.status_code == 200
        assert "Hello, Ana" in start.text
        assert 'href="/inbox"' in start.text and 'href="/templates"' not in start.text
        out = client.post("/logout", data={"csrf_token": csrf_of(start.text)})
        assert out.status_code == 303
        assert client.get("/").status_code == 303


def test_the_session_cookie_is_http_only_and_lax(server: Server, engine: Engine) -> None:
    add_user(engine, "ana", Role.AGENT)
    with httpx.Client(base_url=server.base) as client:
        form = client.get("/login")
        response = client.post(
            "/login",
            data={"username": "ana", "password": PASSWORD, "csrf_token": csrf_of(form.text)},
        )
        cookie = next(v for v in response.headers.get_list("set-cookie") if SESSION_COOKIE in v)
        assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Max-Age=43200" in cookie
        assert PASSWORD not in cookie


def test_a_wrong_password_or_unknown_name_gets_the_same_answer(
    server: Server, engine: Engine
) -> None:
    add_user(engine, "ana", Role.AGENT)
    answers = []
    for name, password in (("ana", "wrong password!!"), ("nobody", PASSWORD)):
        with httpx.Client(base_url=server.base) as client:
            token = csrf_of(client.get("/login").text)
            response = client.post(
                "/login", data={"username": name, "password": password, "csrf_token": token}
            )
            assert response.status_code == 401
            assert SESSION_COOKIE not in response.headers.get("set-cookie", "")
            answers.append(response.text.split('role="alert">')[1].split("<")[0])
    assert answers[0] == answers[1]


def test_a_name_with_a_nul_gets_the_answer_of_an_unknown_name(
    server: Server, engine: Engine
) -> None:
    """PostgreSQL cannot compare a text holding a NUL: such a name is an unknown one (the
    same answer, not a server error)."""
    add_user(engine, "root", Role.ADMIN)
    with httpx.Client(base_url=server.base) as client:
        token = csrf_of(client.get("/login").text)
        form = {"username": "ro\x00ot", "password": PASSWORD, "csrf_token": token}
        response = client.post("/login", data=form)
    assert response.status_code == 401
    assert "The username or password is not right" in response.text
    assert SESSION_COOKIE not in response.headers.get("set-cookie", "")


def test_a_sign_in_without_the_forms_token_is_refused(server: Server, engine: Engine) -> None:
    add_user(engine, "ana", Role.AGENT)
    with httpx.Client(base_url=server.base) as client:
        response = client.post("/login", data={"username": "ana", "password": PASSWORD})
        assert response.status_code == 303 and response.headers["location"].startswith("/login")
        assert SESSION_COOKIE not in response.headers.get("set-cookie", "")


def test_five_failures_hold_a_name_back_even_with_the_right_password(
    server: Server, engine: Engine
) -> None:
    add_user(engine, "ana", Role.AGENT)
    with httpx.Client(base_url=server.base) as client:
        token = csrf_of(client.get("/login").text)
        for _ in range(5):
            wrong = {"username": "ana", "password": "not the password", "csrf_token": token}
            assert client.post("/login", data=wrong).status_code == 401
        right = {"username": "Ana ", "password": PASSWORD, "csrf_token": token}
        held = client.post("/login", data=right)
        assert held.status_code == 401 and "Too many failed attempts" in held.text


def test_failures_over_many_names_hold_the_clients_address_back(
    server: Server, engine: Engine
) -> None:
    """One password tried on many names: after 20 failures from one address, that address
    is held back whatever name it tries, and other clients are not. The test's clients are
    behind a proxy that uvicorn trusts (127.0.0.1, its default), which names each client in
    ``X-Forwarded-For``."""
    add_user(engine, "ana", Role.AGENT)
    guesser, colleague = {"X-Forwarded-For": "203.0.113.7"}, {"X-Forwarded-For": "198.51.100.2"}
    with httpx.Client(base_url=server.base, headers=guesser) as client:
        token = csrf_of(client.get("/login").text)
        for n in range(20):
            guess = {"username": f"name{n}", "password": "Summer2026!!", "csrf_token": token}
            failed = client.post("/login", data=guess)
            assert failed.status_code == 401 and "not right" in failed.text
        right = {"username": "ana", "password": PASSWORD, "csrf_token": token}
        held = client.post("/login", data=right)
        assert held.status_code == 401 and "from this address" in held.text
    with httpx.Client(base_url=server.base, headers=colleague) as client:
        token = csrf_of(client.get("/login").text)
        right = {"username": "ana", "password": PASSWORD, "csrf_token": token}
        assert client.post("/login", data=right).status_code == 303


def test_after_sign_in_only_a_local_path_is_followed(server: Server, engine: Engine) -> None:
    add_user(engine, "ana", Role.AGENT)
    for target, expected in (("/inbox?x=1", "/inbox?x=1"), ("//evil.example", "/"),
                             ("https://evil.example/", "/"), ("/\\evil", "/")):  # fmt: skip
        with httpx.Client(base_url=server.base) as client:
            token = csrf_of(client.get("/login").text)
            response = client.post(
                "/login",
                data={"username": "ana", "password": PASSWORD, "csrf_token": token,
                      "next": target},
            )  # fmt: skip
            assert response.headers["location"] == expected


def test_signing_in_from_an_address_too_long_to_return_to_opens_the_start_page(
    server: Server, engine: Engine
) -> None:
    add_user(engine, "ana", Role.AGENT)
    with httpx.Client(base_url=server.base) as client:
        # A signed-out agent opens a long link: a search for a pasted text, say.
        first = client.get("/inbox/accounts", params={"q": "x" * 1990})
        assert first.status_code == 303 and len(first.headers["location"]) > 2000
        form = client.get(first.headers["location"])
        assert 'name="next" value="/"' in form.text
        right = {"username": "ana", "password": PASSWORD, "csrf_token": csrf_of(form.text)}
        answer = client.post("/login", data={**right, "next": "/inbox?q=" + "x" * 5000})
        assert answer.status_code == 303 and answer.headers["location"] == "/"
        assert "Hello, Ana" in client.get("/").text


def test_a_change_without_the_sessions_token_is_refused(server: Server, engine: Engine) -> None:
    add_user(engine, "ana", Role.AGENT)
    with sign_in(server.base, "ana") as client:
        assert client.post("/logout").status_code == 403
        assert client.post("/logout", data={"csrf_token": "forged"}).status_code == 403
        assert client.get("/").status_code == 200  # still signed in
        token = page_token(client)
        assert client.post("/logout", headers={"X-CSRF-Token": token}).status_code == 303


def test_a_disabled_user_is_signed_out_at_once(server: Server, engine: Engine) -> None:
    add_user(engine, "ana", Role.AGENT)
    with sign_in(server.base, "ana") as client:
        with engine.begin() as connection:
            set_active(connection, "ana", False)
        assert client.get("/").status_code == 303
    with httpx.Client(base_url=server.base) as client:
        token = csrf_of(client.get("/login").text)
        form = {"username": "ana", "password": PASSWORD, "csrf_token": token}
        assert client.post("/login", data=form).status_code == 401


def test_a_new_password_ends_the_old_sessions(server: Server, engine: Engine) -> None:
    add_user(engine, "ana", Role.AGENT)
    with sign_in(server.base, "ana") as client:
        with engine.begin() as connection:
            set_password(connection, "ana", "a whole new password")
        assert client.get("/").status_code == 303


def test_a_forged_session_cookie_is_no_session(server: Server, engine: Engine) -> None:
    add_user(engine, "ana", Role.AGENT)
    with sign_in(server.base, "ana") as client:
        real = client.cookies[SESSION_COOKIE]
    # One character of the signature changed, away from its end: the last character of a
    # base64 signature carries padding bits, and "xx" written over it could read back as
    # the same signature.
    changed = real[:-6] + ("A" if real[-6] != "A" else "B") + real[-5:]
    for value in (changed, "e30.AAAA.BBBB", "", "not a cookie at all"):
        with httpx.Client(base_url=server.base, cookies={SESSION_COOKIE: value}) as client:
            assert client.get("/").status_code == 303


@pytest.mark.parametrize(
    ("role", "path", "allowed"),
    [
        (Role.AGENT, "/templates", False),
        (Role.MARKETER, "/inbox", False),
        (Role.VIEWER, "/inbox", False),
        (Role.VIEWER, "/templates", False),
        (Role.AGENT, "/inbox", True),
        (Role.MARKETER, "/templates", True),
        (Role.ADMIN, "/inbox", True),
        (Role.ADMIN, "/templates", True),
    ],
)
def test_each_section_is_for_its_roles(
    server: Server, engine: Engine, role: Role, path: str, allowed: bool
) -> None:
    add_user(engine, "user", role)
    with sign_in(server.base, "user") as client:
        response = client.get(path)
        assert response.status_code == (200 if allowed else 403)
        if not allowed:
            assert "Not for your role" in response.text


def test_pages_carry_a_strict_policy_and_are_never_cached(server: Server, engine: Engine) -> None:
    add_user(engine, "ana", Role.AGENT)
    with sign_in(server.base, "ana") as client:
        for path in ("/", "/login"):
            headers = client.get(path, follow_redirects=True).headers
            assert "script-src 'self'" in headers["content-security-policy"]
            assert "frame-ancestors 'none'" in headers["content-security-policy"]
            assert headers["cache-control"] == "no-store"
            assert headers["x-frame-options"] == "DENY"


def test_the_start_page_counts_what_waits(server: Server, engine: Engine) -> None:
    from tests.eventdata import add_account, add_attempt

    add_user(engine, "vic", Role.VIEWER)
    account_id = add_account(engine)
    with sign_in(server.base, "vic") as client:
        page = client.get("/").text
        assert "accounts flagged" in page and "No attempts yet." in page
        assert "held for review" not in page
    # A message whose outcome is not known, from an earlier day: said on every start page.
    add_attempt(engine, account_id, status="unknown", message_id=None,
                now=datetime.now(UTC) - timedelta(days=3))  # fmt: skip
    with sign_in(server.base, "vic") as client:
        page = client.get("/").text
        assert "1 message(s) held for review" in page and "outreach attempts held" in page


def test_a_non_ascii_token_is_refused_not_a_server_error(server: Server, engine: Engine) -> None:
    add_user(engine, "ana", Role.AGENT)
    with httpx.Client(base_url=server.base) as client:
        client.get("/login")
        form = {"username": "ana", "password": PASSWORD, "csrf_token": "é"}
        assert client.post("/login", data=form).status_code == 303
    with sign_in(server.base, "ana") as client:
        assert client.post("/logout", data={"csrf_token": "é"}).status_code == 403
        refused = client.post("/logout", headers={"X-CSRF-Token": "é".encode("latin-1")})
        assert refused.status_code == 403
        assert client.get("/").status_code == 200


def test_the_throttle_keeps_only_names_with_recent_failures(engine: Engine) -> None:
    throttle = SignInThrottle(engine, failures=2, window_seconds=900)
    for n in range(100):
        assert not throttle.held(f"stranger{n}")
    assert stored_attempts(engine) == []
    throttle.failed("ana")
    throttle.failed("Ana ")
    assert throttle.held("ana")
    assert stored_attempts(engine) == [(name_key("ana"), "failed")] * 2  # the name as a hash
    throttle.succeeded("ana")
    assert not throttle.held("ana") and stored_attempts(engine) == []


def test_a_user_disabled_and_enabled_again_does_not_get_the_old_sessions_back(
    server: Server, engine: Engine
) -> None:
    add_user(engine, "ana", Role.AGENT)
    with sign_in(server.base, "ana") as client:
        with engine.begin() as connection:
            set_active(connection, "ana", False)
        assert client.get("/").status_code == 303
        with engine.begin() as connection:
            set_active(connection, "ana", True)
        assert client.get("/").status_code == 303
    with sign_in(server.base, "ana") as client:  # a new sign-in works again
        assert client.get("/").status_code == 200


def test_a_new_role_ends_the_old_sessions(server: Server, engine: Engine) -> None:
    add_user(engine, "ana", Role.ADMIN)
    add_user(engine, "boss", Role.ADMIN)  # the last admin keeps the role
    with sign_in(server.base, "ana") as client:
        with engine.begin() as connection:
            set_role(connection, "ana", Role.VIEWER)
        assert client.get("/").status_code == 303
    with sign_in(server.base, "ana") as client:
        assert client.get("/templates").status_code == 403


def test_signing_out_ends_every_session_of_the_user_and_copies_of_the_cookie(
    server: Server, engine: Engine
) -> None:
    add_user(engine, "ana", Role.AGENT)
    add_user(engine, "bob", Role.AGENT)
    with (
        sign_in(server.base, "ana") as laptop,
        sign_in(server.base, "ana") as phone,
        sign_in(server.base, "bob") as other,
    ):
        copied = laptop.cookies[SESSION_COOKIE]
        assert laptop.post("/logout", data={"csrf_token": page_token(laptop)}).status_code == 303
        assert laptop.get("/").status_code == 303
        assert phone.get("/").status_code == 303
        with httpx.Client(base_url=server.base, cookies={SESSION_COOKIE: copied}) as thief:
            assert thief.get("/").status_code == 303
        assert other.get("/").status_code == 200  # another user's sessions go on


@pytest.mark.parametrize("username", ["ana", "nobody"])
def test_concurrent_wrong_passwords_get_at_most_five_checks(
    server: Server, engine: Engine, monkeypatch: pytest.MonkeyPatch, username: str
) -> None:
    add_user(engine, "ana", Role.AGENT)
    checks = []
    lock = threading.Lock()
    verify = users_module._verify

    def counted(password_hash: str, password: str) -> bool:
        with lock:
            checks.append(password)
        time.sleep(0.3)  # a slow hash: every attempt is in flight at once
        return verify(password_hash, password)

    monkeypatch.setattr(users_module, "_verify", counted)
    with httpx.Client(base_url=server.base, timeout=60) as client:
        token = csrf_of(client.get("/login").text)
        cookies = dict(client.cookies)
    start = threading.Barrier(30)

    def attempt(n: int) -> httpx.Response:
        form = {"username": username, "password": f"wrong password {n}", "csrf_token": token}
        with httpx.Client(base_url=server.base, cookies=cookies, timeout=60) as client:
            start.wait()
            return client.post("/login", data=form)

    with ThreadPoolExecutor(30) as pool:
        answers = list(pool.map(attempt, range(30)))
    assert [answer.status_code for answer in answers] == [401] * 30
    wrong = [a for a in answers if "The username or password is not right" in a.text]
    held = [a for a in answers if "Too many failed attempts" in a.text]
    assert len(checks) <= 5 and len(wrong) == len(checks) and len(held) == 30 - len(checks)
    again = {"username": username, "password": PASSWORD, "csrf_token": token}
    with httpx.Client(base_url=server.base, cookies=cookies, timeout=60) as client:
        after = client.post("/login", data=again)  # ana's right password, held back too
    assert after.status_code == 401 and "Too many failed attempts" in after.text
    assert len(checks) <= 5


def test_failures_on_one_web_process_hold_the_name_back_on_another(
    server: Server, engine: Engine, settings: Settings
) -> None:
    add_user(engine, "ana", Role.AGENT)

    def attempt(base: str, password: str) -> httpx.Response:
        with httpx.Client(base_url=base) as client:
            token = csrf_of(client.get("/login").text)
            form = {"username": "ana", "password": password, "csrf_token": token}
            return client.post("/login", data=form)

    with serving(create_app(settings, engine, clock=FixedClock(NOW))) as other:
        for n in range(5):  # shared between the two, as by a balancer
            wrong = attempt((server, other)[n % 2].base, f"wrong password {n}")
            assert "The username or password is not right" in wrong.text
        for base in (server.base, other.base):
            held = attempt(base, PASSWORD)
            assert held.status_code == 401 and "Too many failed attempts" in held.text
    # A web process started later (a restart) holds it back too.
    with serving(create_app(settings, engine, clock=FixedClock(NOW))) as restarted:
        assert "Too many failed attempts" in attempt(restarted.base, PASSWORD).text


def test_the_throttle_counts_attempts_in_flight(engine: Engine) -> None:
    throttle = SignInThrottle(engine, failures=2, window_seconds=900)
    first, second = throttle.reserve("ana"), throttle.reserve("Ana ")
    assert first is not None and second is not None
    assert throttle.reserve("ana") is None and throttle.held("ana")  # two checks under way
    throttle.failed("ana", first)  # one confirmed, one still in flight
    assert throttle.reserve("ana") is None
    throttle.succeeded("ana", second)  # the other was right: failures forgotten, none in flight
    assert not throttle.held("ana") and stored_attempts(engine) == []
    third = throttle.reserve("ana")
    throttle.failed("ana", third)
    fourth = throttle.reserve("ana")
    throttle.failed("ana", fourth)
    assert throttle.reserve("ana") is None
    assert stored_attempts(engine) == [(name_key("ana"), "failed")] * 2  # none left pending


def test_a_few_passwords_are_checked_at_once_and_the_rest_are_told_the_server_is_busy() -> None:
    slots = SignInSlots(running=1, waiting=1, wait=30)
    release_first = threading.Event()
    seen: dict[str, bool] = {}

    def check(name: str, hold: threading.Event | None) -> None:
        with slots.slot() as free:
            seen[name] = free
            if hold is not None:
                hold.wait(30)

    first = threading.Thread(target=check, args=("first", release_first))
    first.start()
    wait_for(lambda: "first" in seen)
    second = threading.Thread(target=check, args=("second", None))  # waits its turn
    second.start()
    wait_for(lambda: slots._admitted._value == 0)  # type: ignore[attr-defined]
    with slots.slot() as third:  # no room left to wait: refused at once
        assert third is False
    release_first.set()
    first.join(30)
    second.join(30)
    assert seen == {"first": True, "second": True}
    # A turn that does not come within the wait is refused too.
    quick = SignInSlots(running=1, waiting=1, wait=0.01)
    with quick.slot() as held, quick.slot() as waited:
        assert (held, waited) == (True, False)


def wait_for(condition: Callable[[], bool]) -> None:
    for _ in range(3000):
        if condition():
            return
        time.sleep(0.01)
    raise AssertionError("the condition never held")


def test_a_sign_in_the_server_is_too_busy_to_check_does_not_count_against_the_name(
    server: Server, engine: Engine
) -> None:
    add_user(engine, "ana", Role.AGENT)
    busy = server.app.state.sessions.slots = SignInSlots(running=1, waiting=0)
    with busy.slot() as free, httpx.Client(base_url=server.base) as client:  # one check under way
        assert free
        token = csrf_of(client.get("/login").text)
        for _ in range(7):  # more than the throttle's five
            wrong = {"username": "ana", "password": "not the password", "csrf_token": token}
            answer = client.post("/login", data=wrong)
            assert answer.status_code == 503 and "busy checking other sign-ins" in answer.text
    assert stored_attempts(engine) == []
    with httpx.Client(base_url=server.base) as client:
        token = csrf_of(client.get("/login").text)
        right = {"username": "ana", "password": PASSWORD, "csrf_token": token}
        assert client.post("/login", data=right).status_code == 303


def _open_page_then_session_ends(client: httpx.Client, engine: Engine) -> str:
    """Ana opens the account's page; her session then ends (she signs out on another
    device). The page's form token."""
    token = page_token(client, "/inbox/accounts/R-1")
    with engine.begin() as connection:
        end_sessions(connection, user_by_name(connection, "ana").id)
    return token


WORDS = 'She says the invoice <b>was</b> paid by "cheque" on 3 March & has the receipt.'


def test_a_form_sent_after_the_session_ended_keeps_the_words_on_the_sign_in_page(
    server: Server, engine: Engine
) -> None:
    """The session ended while the page was open: what the agent typed is not saved, and
    not lost either. The sign-in form comes in the page's place, says so, shows the words
    to copy (as text), and signs in back to the page the form was on."""
    add_user(engine, "ana", Role.AGENT)
    add_account(engine)
    page = f"{server.base}/inbox/accounts/R-1?done=x"
    own = {"Origin": server.base, "Referer": page}
    with sign_in(server.base, "ana") as client:
        token = _open_page_then_session_ends(client, engine)
        sent = client.post(
            "/inbox/accounts/R-1/dispute", data={"csrf_token": token, "note": WORDS},
            headers=own,
        )  # fmt: skip
        assert sent.status_code == 401 and "<h1>Sign in</h1>" in sent.text
        assert "Your session has ended" in sent.text and "was not saved" in sent.text
        shown = re.findall(r"<textarea readonly[^>]*>\n(.*?)</textarea>", sent.text, re.S)
        assert [html.unescape(text) for text in shown] == [WORDS]  # the note, as text
        assert "<b>was</b>" not in sent.text
        assert token not in sent.text  # the form's own fields are not shown back
        assert 'name="next" value="/inbox/accounts/R-1?done=x"' in sent.text
        with engine.connect() as connection:
            assert connection.execute(select(compliance_events)).all() == []
        # Signing out, signed out already, loses nothing: the sign-in form as ever.
        out = client.post("/logout", data={"csrf_token": token}, headers=own)
        assert out.status_code == 303 and out.headers["location"] == "/login"
        signed = {"username": "ana", "password": PASSWORD, "csrf_token": csrf_of(sent.text),
                  "next": "/inbox/accounts/R-1?done=x"}  # fmt: skip
        back = client.post("/login", data=signed)
        assert back.status_code == 303 and back.headers["location"] == "/inbox/accounts/R-1?done=x"


@pytest.mark.parametrize(
    "headers",
    [
        {},  # no Origin: the browser does not say where the form was
        {"Origin": "https://example.net", "Referer": "https://example.net/inbox"},
        {"Sec-Fetch-Site": "cross-site", "Origin": "https://example.net"},
    ],
)
def test_a_form_from_elsewhere_after_the_session_ended_shows_none_of_its_words(
    server: Server, engine: Engine, headers: dict[str, str]
) -> None:
    """A page elsewhere cannot put its words on ours: a form not from one of the app's own
    pages is answered with the sign-in form, which says a change was not saved, and signing
    in returns to the page of the form (not to the other site's address)."""
    add_user(engine, "ana", Role.AGENT)
    add_account(engine)
    with sign_in(server.base, "ana") as client:
        token = _open_page_then_session_ends(client, engine)
        sent = client.post(
            "/inbox/accounts/R-1/dispute", data={"csrf_token": token, "note": WORDS},
            headers=headers,
        )  # fmt: skip
        assert sent.status_code == 303
        where = sent.headers["location"]
        assert where == "/login?next=%2Finbox%2Faccounts%2FR-1&ended=1"
        form = client.get(where).text
        assert "Your session has ended" in form and "was not saved" in form
        assert "cheque" not in form and "What you sent" not in form
        assert 'name="next" value="/inbox/accounts/R-1"' in form


def test_a_template_saved_after_the_session_ended_returns_to_its_editor(
    server: Server, engine: Engine
) -> None:
    seed_templates(engine)
    add_user(engine, "mia", Role.MARKETER)
    editing = "/templates/edit?path=sms%2Freminder.friendly.j2"
    with sign_in(server.base, "mia") as mia:
        token = page_token(mia, editing)
        with engine.begin() as connection:
            end_sessions(connection, user_by_name(connection, "mia").id)
        source = "Hi {{ debtor.first_name }}, EDITED for an hour"
        draft = {"csrf_token": token, "path": "sms/reminder.friendly.j2", "source": source,
                 "based_on": "1", "action": "draft"}  # fmt: skip
        own = {"Sec-Fetch-Site": "same-origin", "Referer": server.base + editing}
        sent = mia.post("/templates/save", data=draft, headers=own)
        shown = re.findall(r"<textarea readonly[^>]*>\n(.*?)</textarea>", sent.text, re.S)
        assert sent.status_code == 401 and source in map(html.unescape, shown)
        assert f'name="next" value="{html.escape(editing)}"' in sent.text
        # Without a Referer, the form's section: the template list.
        bare = mia.post("/templates/save", data=draft, headers={"Origin": server.base})
        assert 'name="next" value="/templates"' in bare.text


def _sent_after_the_session_ended(
    server: Server, engine: Engine, user: str, page: str, action: str, form: dict[str, str]
) -> tuple[str, list[str]]:
    """``user`` opens ``page``, their session ends, and they send ``form`` to ``action``:
    the sign-in page that comes instead, and the words it shows to copy."""
    with sign_in(server.base, user) as client:
        token = page_token(client, page)
        with engine.begin() as connection:
            end_sessions(connection, user_by_name(connection, user).id)
        own = {"Sec-Fetch-Site": "same-origin", "Referer": server.base + page}
        sent = client.post(action, data={"csrf_token": token, **form}, headers=own)
    assert sent.status_code == 401 and "<h1>Sign in</h1>" in sent.text
    shown = re.findall(r"<textarea readonly[^>]*>\n(.*?)</textarea>", sent.text, re.S)
    return sent.text, [html.unescape(text) for text in shown]


NEW_PASSWORD = "Winter-Sunrise-4471!"


@pytest.mark.parametrize(
    ("action", "form", "kept"),
    [
        ("/admin/users/ana/password", {}, []),
        ("/admin/users", {"username": "bob", "display_name": "Bob Stone", "role": "agent"},
         ["bob", "Bob Stone"]),
    ],
)  # fmt: skip
def test_a_password_sent_after_the_session_ended_is_not_shown_back(
    server: Server, engine: Engine, action: str, form: dict[str, str], kept: list[str]
) -> None:
    """The admin's "Set the password" and "Add a user" forms: the sign-in page shows none
    of the password (it would stay on the screen and in the browser's history), only the
    other words typed."""
    add_user(engine, "root", Role.ADMIN)
    add_user(engine, "ana", Role.AGENT)
    typed = {**form, "password": NEW_PASSWORD, "password_again": NEW_PASSWORD}
    page, shown = _sent_after_the_session_ended(server, engine, "root", "/admin/users", action,
                                                typed)  # fmt: skip
    assert NEW_PASSWORD not in page and "password_again" not in page
    assert shown == kept


def test_only_the_words_worth_keeping_are_shown_back(server: Server, engine: Engine) -> None:
    """An answer, a pause's reason and days, a promise's figures, a note are shown back; a
    field not listed as worth keeping (a new one, or one added to the page) is not."""
    add_user(engine, "ana", Role.AGENT)
    add_account(engine)
    page = "/inbox/accounts/R-1"
    for action, form, kept in [
        ("/inbox/accounts/R-1/answer", {"message_id": "7", "answer": WORDS}, [WORDS]),
        ("/inbox/accounts/R-1/pause", {"days": "5", "reason": "in hospital", "shown_until": ""},
         ["5", "in hospital"]),
        ("/inbox/accounts/R-1/promise", {"amount": "25.50", "due_on": "2026-12-24",
                                         "form_key": "k" * 32}, ["25.50", "2026-12-24"]),
        ("/inbox/accounts/R-1/workplace", {"kind": "workplace_prohibited", "note": WORDS,
                                           "api_secret": "s3cr3t-value", "pin": "4471"},
         [WORDS]),
    ]:  # fmt: skip
        text, shown = _sent_after_the_session_ended(server, engine, "ana", page, action, form)
        assert shown == kept, action
        assert "s3cr3t-value" not in text and "4471" not in text


def test_a_listed_field_named_like_a_secret_is_never_shown_back(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A field added to the list by mistake is still not shown if its name says it holds
    a password, token or secret."""
    monkeypatch.setattr(ui, "KEPT_FIELDS", ui.KEPT_FIELDS | {"new_password", "API_Token"})
    assert ui.kept_field("note") and ui.kept_field("answer") and ui.kept_field("source")
    assert not ui.kept_field("new_password") and not ui.kept_field("API_Token")
    assert not ui.kept_field("password") and not ui.kept_field("csrf_token")
