"""An admin adds a user and gives them another role in a real browser."""

from __future__ import annotations

from playwright.sync_api import Page, expect
from sqlalchemy import Engine

from outreach.models import Role
from tests.browser.conftest import sign_in_as
from tests.web.conftest import Server

PASSWORD = "a brand new passphrase"


def test_an_admin_adds_a_user_and_changes_their_role(
    page: Page, ui_server: Server, engine: Engine
) -> None:
    sign_in_as(page, ui_server, engine, "root", Role.ADMIN)
    page.get_by_role("link", name="Users").click()
    adding = page.get_by_role("form", name="Add a user")
    adding.get_by_label("Username").fill("ana")
    adding.get_by_label("Name shown").fill("Ana Lima")
    adding.get_by_label("Role").select_option("agent")
    adding.get_by_label("Password (at least 12 characters)").fill(PASSWORD)
    adding.get_by_label("Again").fill("not the same passphrase")
    adding.get_by_role("button", name="Add the user").click()
    expect(page.get_by_role("status")).to_contain_text("the two passwords differ")
    adding = page.get_by_role("form", name="Add a user")
    expect(adding.get_by_label("Name shown")).to_have_value("Ana Lima")
    adding.get_by_label("Password (at least 12 characters)").fill(PASSWORD)
    adding.get_by_label("Again").fill(PASSWORD)
    adding.get_by_role("button", name="Add the user").click()
    expect(page.get_by_role("status")).to_contain_text("ana (agent) can now sign in.")
    users = page.get_by_role("table", name="Users")
    expect(users).to_contain_text("Ana Lima")

    page.get_by_text("Change ana").click()
    role = page.get_by_role("form", name="Role of ana")
    role.get_by_label("Role").select_option("marketer")
    role.get_by_role("button", name="Change the role").click()
    expect(page.get_by_role("status")).to_contain_text("ana is now marketer")
    expect(page.get_by_role("table", name="Users").get_by_role("row", name="ana")).to_contain_text(
        "marketer"
    )
