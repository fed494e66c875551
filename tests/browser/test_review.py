"""An operator settles a message held for review, in a real browser."""

from __future__ import annotations

from playwright.sync_api import Page, expect
from sqlalchemy import Engine, select

from outreach.compliance_store import attempts
from outreach.models import Role
from tests.browser.conftest import sign_in_as
from tests.eventdata import add_account, add_attempt
from tests.web.conftest import Server


def test_an_admin_settles_a_held_message_as_sent(
    page: Page, ui_server: Server, engine: Engine
) -> None:
    account_id = add_account(engine)
    attempt_id = add_attempt(engine, account_id, status="unknown", message_id=None,
                             error_message="read timeout: held for review")  # fmt: skip
    sign_in_as(page, ui_server, engine, "olga", Role.ADMIN)
    expect(page.get_by_role("status")).to_contain_text("1 message(s) held for review")
    page.get_by_role("link", name="Held").click()
    held = page.get_by_role("table", name="Held for review")
    expect(held).to_contain_text("sms to +16175550101")
    expect(held).to_contain_text("read timeout")

    form = page.get_by_role("form", name=f"Settle message {attempt_id}")
    form.get_by_label("It was").select_option("sent")
    form.get_by_label("Provider's id (if sent)").fill("SM5150")
    form.get_by_label("Note").fill("found in the console")
    form.get_by_role("button", name=f"Settle message {attempt_id}").click()
    expect(page.get_by_role("status")).to_contain_text(f"Message {attempt_id} is settled as sent")
    expect(held).to_contain_text("No message is held for review.")
    with engine.connect() as connection:
        settled = connection.execute(select(attempts)).one()
    assert (settled.status, settled.provider_message_id, settled.reviewed_by) == (
        "sent", "SM5150", "olga"
    )  # fmt: skip
