"""An admin manages the users of the web UI from /admin/users, on a real server over SQLite
and PostgreSQL: adding, roles, disabling and enabling, passwords; every change ends the
user's sessions, and the last admin always stays."""

from __future__ import annotations

import html
import logging
import re
import threading
from collections.abc import Iterator

import httpx
import pytest
from sqlalchemy import Engine, update

from outreach.models import Role
from outreach.users import list_users, set_role, users
from tests.web.conftest import Server
from tests.web.ui_support import add_user, browser_path, page_token, sign_in

NEW_PASSWORD = "a brand new passphrase"


@pytest.fixture
def admin(server: Server, engine: Engine) -> Iterator[httpx.Client]:
    add_user(engine, "root", Role.ADMIN)
    with sign_in(server.base, "root") as client:
        yield client


def post(client: httpx.Client, path: str, **form: str) -> httpx.Response:
    return client.post(path, data={"csrf_token": page_token(client, "/admin/users"), **form})


def people(engine: Engine) -> dict[str, tuple[str, bool]]:
    with engine.connect() as connection:
        return {u.username: (u.role.value, u.active) for u, _ in list_users(connection)}


def signed_in(client: httpx.Client) -> bool:
    return client.get("/", follow_redirects=False).status_code == 200


def test_an_admin_adds_a_user_who_can_then_sign_in(
    server: Server, admin: httpx.Client, engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    page = admin.get("/admin/users")
    assert page.status_code == 200 and 'href="/admin/users"' in page.text
    caplog.set_level(logging.DEBUG)
    added = post(admin, "/admin/users", username="Ana", display_name="Ana Lima", role="agent",
                 password=NEW_PASSWORD, password_again=NEW_PASSWORD)  # fmt: skip
    assert added.status_code == 303
    assert "ana (agent) can now sign in." in admin.get(added.headers["location"]).text
    assert people(engine)["ana"] == ("agent", True)
    assert NEW_PASSWORD not in caplog.text  # passwords never reach the logs
    with sign_in(server.base, "ana", NEW_PASSWORD) as ana:
        assert ana.get("/inbox").status_code == 200
        assert ana.get("/admin/users").status_code == 403  # only admins manage users


@pytest.mark.parametrize(
    ("form", "reason"),
    [
        ({"username": "ana lima"}, "a username has 1 to 100 letters"),
        ({"username": "an\x00a"}, "a username has 1 to 100 letters"),
        ({"password_again": "something else entirely"}, "the two passwords differ"),
        ({"password": "short", "password_again": "short"}, "at least 12 characters"),
        ({"role": "boss"}, "is not a role"),
        ({"username": "root"}, "a user named &#39;root&#39; already exists"),
    ],
)
def test_a_user_that_cannot_be_added_is_refused_with_the_reason(
    admin: httpx.Client, engine: Engine, form: dict[str, str], reason: str
) -> None:
    full = {"username": "ana", "display_name": "Ana Lima", "role": "agent",
            "password": NEW_PASSWORD, "password_again": NEW_PASSWORD} | form  # fmt: skip
    refused = post(admin, "/admin/users", **full)
    assert refused.status_code == 400 and reason in refused.text
    # What was typed is kept, the passwords never.
    assert 'value="Ana Lima"' in refused.text and NEW_PASSWORD not in refused.text
    assert set(people(engine)) == {"root"}


def test_a_display_name_with_a_nul_is_refused_with_the_reason(
    admin: httpx.Client, engine: Engine
) -> None:
    """A NUL typed or pasted in a name: the reason, not a server error (PostgreSQL cannot
    store it), and nothing is added. A user's address holding one names no user."""
    refused = post(admin, "/admin/users", username="ana", display_name="Ana\x00 Lima",
                   role="agent", password=NEW_PASSWORD, password_again=NEW_PASSWORD)  # fmt: skip
    assert refused.status_code == 400 and "a display name holds no control characters" in (
        refused.text
    )
    assert set(people(engine)) == {"root"}
    for change, form in (("role", {"role": "agent"}), ("active", {"active": "no"}),
                         ("password", {"password": NEW_PASSWORD,
                                       "password_again": NEW_PASSWORD})):  # fmt: skip
        missing = post(admin, f"/admin/users/ro%00ot/{change}", **form)
        assert missing.status_code == 404 and "no user named" in missing.text, change
    assert people(engine) == {"root": ("admin", True)}


def test_a_new_role_a_disabled_user_and_a_new_password_end_their_sessions(
    server: Server, admin: httpx.Client, engine: Engine
) -> None:
    add_user(engine, "ana", Role.AGENT)
    with sign_in(server.base, "ana") as ana:
        assert post(admin, "/admin/users/ana/role", role="marketer").status_code == 303
        assert people(engine)["ana"] == ("marketer", True) and not signed_in(ana)
    with sign_in(server.base, "ana") as ana:
        assert post(admin, "/admin/users/ana/active", active="no").status_code == 303
        assert people(engine)["ana"] == ("marketer", False) and not signed_in(ana)
    assert post(admin, "/admin/users/ana/active", active="yes").status_code == 303
    with sign_in(server.base, "ana") as ana:
        changed = post(admin, "/admin/users/ana/password", password=NEW_PASSWORD,
                       password_again=NEW_PASSWORD)  # fmt: skip
        assert changed.status_code == 303 and not signed_in(ana)
    with sign_in(server.base, "ana", NEW_PASSWORD) as ana:
        assert signed_in(ana)
    missing = post(admin, "/admin/users/nobody/role", role="agent")
    assert missing.status_code == 404 and "no user named" in missing.text


def test_the_last_admin_stays_and_an_admin_does_not_disable_themselves(
    server: Server, admin: httpx.Client, engine: Engine
) -> None:
    demoted = post(admin, "/admin/users/root/role", role="agent")
    assert demoted.status_code == 400 and "the only active admin" in demoted.text
    myself = post(admin, "/admin/users/root/active", active="no")
    assert myself.status_code == 400 and "you cannot disable yourself" in myself.text
    assert people(engine)["root"] == ("admin", True)
    # With a second admin, the first may step down: their own session ends with it.
    add_user(engine, "boss", Role.ADMIN)
    stepped = post(admin, "/admin/users/root/role", role="agent")
    assert stepped.status_code == 303 and stepped.headers["location"] == "/login"
    assert people(engine)["root"] == ("agent", True) and not signed_in(admin)
    with sign_in(server.base, "boss") as boss:
        token = page_token(boss, "/admin/users")
        last = boss.post("/admin/users/boss/role", data={"csrf_token": token, "role": "viewer"})
        assert last.status_code == 400


def test_an_admin_stepping_down_while_the_other_admin_is_demoted_waits_and_is_refused(
    server: Server, admin: httpx.Client, engine: Engine
) -> None:
    """The change waits for the one in progress (the CLI's, say) and reads what it did:
    on SQLite too, where it would otherwise fail as "database is locked"."""
    add_user(engine, "boss", Role.ADMIN)
    token = page_token(admin, "/admin/users")
    holding, done = threading.Event(), threading.Event()

    def demote_boss() -> None:
        with engine.begin() as connection:
            set_role(connection, "boss", Role.AGENT)
            holding.set()
            done.wait(timeout=0.5)  # the web request comes in meanwhile

    other = threading.Thread(target=demote_boss)
    other.start()
    assert holding.wait(timeout=30)
    stepped = admin.post("/admin/users/root/role", data={"csrf_token": token, "role": "agent"})
    done.set()
    other.join(timeout=30)
    assert stepped.status_code == 400 and "root is the only active admin" in stepped.text
    assert people(engine) == {"root": ("admin", True), "boss": ("agent", True)}


def test_users_named_with_dots_only_are_managed_from_the_users_page(
    admin: httpx.Client, engine: Engine
) -> None:
    # Names made only of dots are refused now, but earlier versions took them.
    for name in ("ana", "bob", "cy"):
        add_user(engine, name, Role.AGENT)
    with engine.begin() as connection:
        for name, dots in (("ana", "."), ("bob", ".."), ("cy", "...")):
            connection.execute(update(users).where(users.c.username == name).values(username=dots))
    page = admin.get("/admin/users").text
    for name in (".", "..", "..."):
        (action,) = re.findall(
            rf'action="([^"]*)/active" aria-label="Sign-in of {re.escape(name)}"', page
        )
        response = post(admin, browser_path(html.unescape(action)) + "/active", active="no")
        assert response.status_code == 303, (name, response.status_code)
    (action,) = re.findall(r'action="([^"]*)/role" aria-label="Role of \.\."', page)
    assert post(admin, browser_path(action) + "/role", role="viewer").status_code == 303
    assert people(engine) == {
        ".": ("agent", False), "..": ("viewer", False), "...": ("agent", False),
        "root": ("admin", True),
    }  # fmt: skip


def test_only_admins_and_only_with_the_form_token(
    server: Server, admin: httpx.Client, engine: Engine
) -> None:
    add_user(engine, "ana", Role.AGENT)
    forged = admin.post("/admin/users/ana/role", data={"csrf_token": "x" * 20, "role": "admin"})
    assert forged.status_code == 403
    with sign_in(server.base, "ana") as ana:
        token = page_token(ana, "/inbox")
        raised = ana.post("/admin/users/ana/role", data={"csrf_token": token, "role": "admin"})
        assert raised.status_code == 403
        assert 'href="/admin/users"' not in ana.get("/").text
    assert people(engine)["ana"] == ("agent", True)
