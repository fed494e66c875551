"""Rotating SECRET_KEY keeps users signed in: a session cookie signed with a key in
SECRET_KEY_PREVIOUS is read, and set again under the new key, on real servers over SQLite
restarted with each setting, as an operator would."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest
from itsdangerous import TimestampSigner
from pydantic import SecretStr
from sqlalchemy import Engine

from outreach.clock import FixedClock
from outreach.config import Settings
from outreach.models import Role
from outreach.users import end_sessions, user_by_name
from outreach.web.app import create_app
from outreach.web.auth import SESSION_COOKIE, SIGN_IN_COOKIE
from tests.conftest import NOW
from tests.providers.conftest import SECRET_KEY
from tests.web.conftest import Server, serving
from tests.web.ui_support import PASSWORD, add_user, csrf_of, page_token, sign_in

KEY_A = SECRET_KEY
KEY_B = "a-new-key-for-the-web-ui-0123456789abcdef"
KEY_C = "a-key-in-neither-setting-0123456789abcdef"


@contextmanager
def restarted(
    settings: Settings, engine: Engine, key: str, previous: str | None = None
) -> Iterator[Server]:
    """The app built again with ``SECRET_KEY=key`` and ``SECRET_KEY_PREVIOUS=previous``."""
    changed = settings.model_copy(
        update={
            "secret_key": SecretStr(key),
            "secret_key_previous": None if previous is None else SecretStr(previous),
        }
    )
    with serving(create_app(changed, engine, clock=FixedClock(NOW))) as running:
        yield running


def signed_in_with(base: str, cookie: str) -> httpx.Response:
    """The start page, asked for with only ``cookie`` as the session."""
    with httpx.Client(base_url=base, cookies={SESSION_COOKIE: cookie}) as client:
        return client.get("/")


def session_cookies(response: httpx.Response) -> list[str]:
    return [v for v in response.headers.get_list("set-cookie") if v.startswith(SESSION_COOKIE)]


def cookie_under_a(server: Server, engine: Engine) -> str:
    add_user(engine, "ana", Role.AGENT)
    with sign_in(server.base, "ana") as client:
        return str(client.cookies[SESSION_COOKIE])


def test_a_session_under_the_previous_key_goes_on_and_is_signed_again_with_the_new_one(
    server: Server, engine: Engine, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    old = cookie_under_a(server, engine)
    with restarted(settings, engine, KEY_B, previous=KEY_A) as rotated:
        page = signed_in_with(rotated.base, old)
        assert page.status_code == 200 and "Hello, Ana" in page.text
        [set_again] = session_cookies(page)
        assert "HttpOnly" in set_again and "SameSite=lax" in set_again and "Path=/" in set_again
        renewed = str(page.cookies[SESSION_COOKIE])
        assert renewed != old
        # Set again once: a cookie under the new key is left as it is.
        again = signed_in_with(rotated.base, renewed)
        assert again.status_code == 200 and session_cookies(again) == []
    with restarted(settings, engine, KEY_B) as without_a:
        assert signed_in_with(without_a.base, renewed).status_code == 200
        assert signed_in_with(without_a.base, old).status_code == 303  # A is gone
    # The server's logs (the test's HTTP client logs the headers it receives).
    logged = "\n".join(
        r.getMessage() for r in caplog.records if not r.name.startswith(("httpx", "httpcore"))
    )
    for secret in (KEY_A, KEY_B, old, renewed):
        assert secret not in logged


def test_the_session_signed_again_keeps_its_expiry(
    server: Server, engine: Engine, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = cookie_under_a(server, engine)
    hours_on = [0]
    real = TimestampSigner.get_timestamp
    monkeypatch.setattr(
        TimestampSigner, "get_timestamp", lambda self: real(self) + hours_on[0] * 3600
    )
    hours_on[0] = 11  # an hour of the session's 12 left
    with restarted(settings, engine, KEY_B, previous=KEY_A) as rotated:
        page = signed_in_with(rotated.base, old)
        assert page.status_code == 200
        renewed = str(page.cookies[SESSION_COOKIE])
    with restarted(settings, engine, KEY_B) as without_a:
        assert signed_in_with(without_a.base, renewed).status_code == 200
        hours_on[0] = 13  # past the 12 hours from signing in, not from being signed again
        assert signed_in_with(without_a.base, renewed).status_code == 303


def test_a_session_under_a_key_in_neither_setting_is_no_session(
    server: Server, engine: Engine, settings: Settings
) -> None:
    old = cookie_under_a(server, engine)
    with restarted(settings, engine, KEY_B, previous=KEY_C) as elsewhere:
        refused = signed_in_with(elsewhere.base, old)
        assert refused.status_code == 303 and session_cookies(refused) == []
    with restarted(settings, engine, KEY_C, previous=KEY_B) as elsewhere:
        assert signed_in_with(elsewhere.base, old).status_code == 303
    # The same cookie, with its key listed, is a session.
    with restarted(settings, engine, KEY_C, previous=f"{KEY_B},{KEY_A}") as listed:
        assert signed_in_with(listed.base, old).status_code == 200


def test_a_session_ended_on_the_server_stays_ended_under_the_previous_key(
    server: Server, engine: Engine, settings: Settings
) -> None:
    ended = cookie_under_a(server, engine)
    add_user(engine, "bob", Role.AGENT)
    with sign_in(server.base, "bob") as client:
        going_on = str(client.cookies[SESSION_COOKIE])
    with engine.begin() as connection:
        ana = user_by_name(connection, "ana")
        assert ana is not None
        end_sessions(connection, ana.id)  # signed out in another browser
    with restarted(settings, engine, KEY_B, previous=KEY_A) as rotated:
        refused = signed_in_with(rotated.base, ended)
        assert refused.status_code == 303 and session_cookies(refused) == []
        assert signed_in_with(rotated.base, going_on).status_code == 200  # another user's


def test_signing_out_with_a_cookie_under_the_previous_key_removes_it_and_ends_the_session(
    server: Server, engine: Engine, settings: Settings
) -> None:
    add_user(engine, "ana", Role.AGENT)
    with sign_in(server.base, "ana") as client:
        old = str(client.cookies[SESSION_COOKIE])
        token = page_token(client)  # a page opened before the restart
    with restarted(settings, engine, KEY_B, previous=KEY_A) as rotated:
        renewed = str(signed_in_with(rotated.base, old).cookies[SESSION_COOKIE])
        with httpx.Client(base_url=rotated.base, cookies={SESSION_COOKIE: old}) as client:
            out = client.post("/logout", data={"csrf_token": token})
        assert out.status_code == 303 and out.headers["location"] == "/login"
        [removed] = session_cookies(out)
        assert "Max-Age=0" in removed or "expires=Thu, 01 Jan 1970" in removed.lower()
        assert signed_in_with(rotated.base, old).status_code == 303
        assert signed_in_with(rotated.base, renewed).status_code == 303


def test_a_sign_in_form_opened_before_the_rotation_still_signs_in(
    server: Server, engine: Engine, settings: Settings
) -> None:
    add_user(engine, "ana", Role.AGENT)
    with httpx.Client(base_url=server.base) as browser:
        form = browser.get("/login")
        sign_in_cookie = str(browser.cookies[SIGN_IN_COOKIE])
    with (
        restarted(settings, engine, KEY_B, previous=KEY_A) as rotated,
        httpx.Client(base_url=rotated.base, cookies={SIGN_IN_COOKIE: sign_in_cookie}) as browser,
    ):
        form_data = {"username": "ana", "password": PASSWORD, "csrf_token": csrf_of(form.text)}
        response = browser.post("/login", data=form_data)
        assert response.status_code == 303 and response.headers["location"] == "/"
        assert browser.get("/").status_code == 200


def test_a_notice_sealed_with_the_previous_key_is_shown(
    server: Server, engine: Engine, settings: Settings
) -> None:
    add_user(engine, "root", Role.ADMIN)
    with sign_in(server.base, "root") as admin:
        form = {"csrf_token": page_token(admin, "/admin/users"), "username": "ana",
                "display_name": "Ana", "role": "agent", "password": "another horse battery",
                "password_again": "another horse battery"}  # fmt: skip
        added = admin.post("/admin/users", data=form)
        assert added.status_code == 303
        where = added.headers["location"]
        old = str(admin.cookies[SESSION_COOKIE])
    with restarted(settings, engine, KEY_B, previous=KEY_A) as rotated:
        page = httpx.get(rotated.base + where, cookies={SESSION_COOKIE: old})
        assert page.status_code == 200 and "ana (agent) can now sign in." in page.text
    with restarted(settings, engine, KEY_B) as without_a:
        renewed = str(page.cookies[SESSION_COOKIE])
        page = httpx.get(without_a.base + where, cookies={SESSION_COOKIE: renewed})
        assert page.status_code == 200 and "can now sign in." not in page.text


def test_each_key_listed_previously_is_read(
    server: Server, engine: Engine, settings: Settings
) -> None:
    old = cookie_under_a(server, engine)
    with restarted(settings, engine, KEY_C, previous=f" {KEY_B} , {KEY_A}") as rotated:
        page = signed_in_with(rotated.base, old)
        assert page.status_code == 200
        renewed = str(page.cookies[SESSION_COOKIE])
    with restarted(settings, engine, KEY_C) as only_c:
        assert signed_in_with(only_c.base, renewed).status_code == 200
