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


def test_a_note_sent_after_the_session_ended_is_shown_to_copy_and_signing_in_returns(
    page: Page, ui_server: Server, engine: Engine
) -> None:
    """The browser says the form came from the app's own page: the sign-in form comes in
    its place with the note, and signing in goes back to the account."""
    from outreach.users import end_sessions, user_by_name
    from tests.eventdata import add_account
    from tests.web.ui_support import PASSWORD

    add_account(engine)
    sign_in_as(page, ui_server, engine, "ana", Role.AGENT)
    page.goto(ui_server.base + "/inbox/accounts/R-1")
    with engine.begin() as connection:  # signed out on another device
        end_sessions(connection, user_by_name(connection, "ana").id)
    dispute = page.get_by_role("form", name="Dispute")
    dispute.get_by_label("What the debtor disputes").fill("Paid by <cheque> on 3 March")
    dispute.get_by_role("button", name="Record the dispute").click()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    expect(page.get_by_role("alert")).to_contain_text("was not saved")
    sent = page.get_by_role("region", name="What you sent")
    expect(sent.get_by_role("textbox")).to_have_value("Paid by <cheque> on 3 March")
    page.get_by_label("Username").fill("ana")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(ui_server.base + "/inbox/accounts/R-1")
