"""An agent's work in a real browser: a reply, a promise to pay, the reply handled."""

from __future__ import annotations

import re

from playwright.sync_api import Page, expect
from sqlalchemy import Engine

from outreach.events import apply_events
from outreach.models import Role
from tests.browser.conftest import sign_in_as
from tests.conftest import NOW
from tests.eventdata import add_account, inbound
from tests.web.conftest import Server
from tests.web.ui_support import seed_templates


def test_an_agent_records_a_promise_and_handles_the_reply(
    page: Page, ui_server: Server, engine: Engine
) -> None:
    add_account(engine)
    apply_events(engine, [inbound("I can pay 40 next Friday", key="p1", at=NOW)], NOW)
    sign_in_as(page, ui_server, engine, "ana", Role.AGENT)
    page.get_by_role("link", name="Inbox").click()
    replies = page.get_by_role("table", name="Replies waiting")
    expect(replies).to_contain_text("I can pay 40 next Friday")
    replies.get_by_role("link", name="R-1").click()
    expect(page.get_by_role("heading", name="R-1: Pat Doe")).to_be_visible()
    expect(page.get_by_role("table", name="Conversation")).to_contain_text("I can pay 40")

    promise = page.get_by_role("form", name="Promise to pay")
    promise.get_by_label("Amount (USD)").fill("40")
    promise.get_by_label("By").fill("2026-11-06")
    promise.get_by_role("button", name="Record the promise").click()
    expect(page.get_by_role("status")).to_contain_text("Promise to pay $40.00 by 2026-11-06")
    expect(page.get_by_role("table", name="Promises to pay")).to_contain_text("$40.00")

    page.get_by_role("button", name="Mark handled").click()
    expect(page.get_by_role("status")).to_contain_text("The reply is handled.")
    expect(page.get_by_role("button", name="Mark handled")).to_have_count(0)
    page.get_by_role("link", name="Back to the inbox").click()
    expect(page.get_by_role("table", name="Replies waiting")).to_contain_text("No replies wait.")


def test_a_refused_promise_says_why_in_the_page(
    page: Page, ui_server: Server, engine: Engine
) -> None:
    add_account(engine)
    sign_in_as(page, ui_server, engine, "ana", Role.AGENT)
    page.goto(ui_server.base + "/inbox/accounts/R-1")
    promise = page.get_by_role("form", name="Promise to pay")
    promise.get_by_label("Amount (USD)").fill("9999")
    promise.get_by_label("By").fill("2026-11-06")
    promise.get_by_role("button", name="Record the promise").click()
    expect(page.get_by_role("status")).to_contain_text("more than the balance")


def test_a_reply_about_work_shows_its_hold_and_the_debtor_can_agree_again(
    page: Page, ui_server: Server, engine: Engine
) -> None:
    add_account(engine)
    apply_events(engine, [inbound("Don't call me at work", key="w1", at=NOW)], NOW)
    sign_in_as(page, ui_server, engine, "ana", Role.AGENT)
    page.get_by_role("link", name="Inbox").click()
    replies = page.get_by_role("table", name="Replies waiting")
    expect(replies).to_contain_text("not_at_work")
    replies.get_by_role("link", name="R-1").click()
    events = page.get_by_role("table", name="Compliance events")
    expect(events).to_contain_text("workplace_inconvenient")

    work = page.get_by_role("form", name="Contact at work")
    work.get_by_label("The debtor says").select_option("workplace_convenient")
    work.get_by_label("Note").fill("agreed on a call")
    work.get_by_role("button", name="Record").click()
    expect(page.get_by_role("status")).to_contain_text("agrees to contact at work again")
    expect(events).to_contain_text("workplace_convenient")
    expect(events).to_contain_text("agreed on a call")


def test_an_agent_answers_a_reply(page: Page, ui_server: Server, engine: Engine) -> None:
    seed_templates(engine)
    add_account(engine)
    apply_events(engine, [inbound("Can I pay on Friday?", key="q1", at=NOW)], NOW)
    sign_in_as(page, ui_server, engine, "ana", Role.AGENT)
    page.goto(ui_server.base + "/inbox/accounts/R-1")
    page.get_by_text("Answer by sms").click()
    form = page.get_by_role("form", name=re.compile(r"Answer message \d+"))
    form.get_by_label(re.compile("Answer to")).fill("Yes, Friday is fine <b>thanks</b>")
    form.get_by_role("button", name="Send the answer").click()
    expect(page.get_by_role("status")).to_contain_text("Answer queued to +16175550101 by sms.")
    conversation = page.get_by_role("table", name="Conversation")
    expect(conversation).to_contain_text("Yes, Friday is fine <b>thanks</b>")
    expect(conversation).to_contain_text("queued")
    expect(page.get_by_role("button", name="Mark handled")).to_have_count(0)


def test_an_agent_changes_the_reply_pause_without_resuming(
    page: Page, ui_server: Server, engine: Engine
) -> None:
    add_account(engine)
    apply_events(engine, [inbound("I'm in hospital for a month", key="h1", at=NOW)], NOW)
    sign_in_as(page, ui_server, engine, "ana", Role.AGENT)
    page.goto(ui_server.base + "/inbox/accounts/R-1")
    expect(page.get_by_role("button", name="Resume outreach")).to_be_visible()
    pause = page.get_by_role("form", name="Pause")
    expect(pause.get_by_role("heading", name="Change the pause")).to_be_visible()
    pause.get_by_label("Days").fill("30")
    pause.get_by_label("Why").fill("in hospital")
    pause.get_by_role("button", name="Pause until then").click()
    expect(page.get_by_role("status")).to_contain_text("paused until 2026-12-02 15:00 UTC")
    expect(page.get_by_text("in hospital (ana)")).to_be_visible()
