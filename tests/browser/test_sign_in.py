"""Signing in and out in a real browser."""

from __future__ import annotations

from playwright.sync_api import Page, expect
from sqlalchemy import Engine

from outreach.models import Role
from tests.browser.conftest import sign_in_as
from tests.web.conftest import Server


def test_an_agent_signs_in_sees_their_sections_and_signs_out(
    page: Page, ui_server: Server, engine: Engine
) -> None:
    sign_in_as(page, ui_server, engine, "ana", Role.AGENT)
    expect(page.get_by_role("heading", name="Hello, Ana")).to_be_visible()
    expect(page.get_by_role("link", name="Inbox")).to_be_visible()
    expect(page.get_by_role("link", name="Templates")).to_have_count(0)
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    page.goto(ui_server.base + "/")
    expect(page).to_have_url(ui_server.base + "/login?next=%2F")


def test_a_wrong_password_shows_why_and_keeps_the_name(
    page: Page, ui_server: Server, engine: Engine
) -> None:
    from tests.web.ui_support import add_user

    add_user(engine, "ana", Role.AGENT)
    page.goto(ui_server.base + "/login")
    page.get_by_label("Username").fill("ana")
    page.get_by_label("Password").fill("not the right one")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("not right")
    expect(page.get_by_label("Username")).to_have_value("ana")


def test_after_signing_in_the_browser_returns_to_the_page_it_asked_for(
    page: Page, ui_server: Server, engine: Engine
) -> None:
    from tests.web.ui_support import PASSWORD, add_user

    add_user(engine, "max", Role.MARKETER)
    page.goto(ui_server.base + "/?from=link")
    page.get_by_label("Username").fill("max")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(ui_server.base + "/?from=link")
    expect(page.get_by_role("link", name="Templates")).to_be_visible()
