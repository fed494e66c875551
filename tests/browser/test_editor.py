"""The template editor in a real browser: the live preview, lint's answer, saving and
publishing, and the email's HTML in its sandboxed frame."""

from __future__ import annotations

from playwright.sync_api import Page, expect
from sqlalchemy import Engine

from outreach.clock import FixedClock
from outreach.models import Role
from outreach.template_store import published, save_version
from tests.browser.conftest import sign_in_as
from tests.conftest import NOW
from tests.web.conftest import Server
from tests.web.ui_support import seed_templates as seed


def open_editor(page: Page, server: Server, engine: Engine, path: str) -> None:
    seed(engine)
    sign_in_as(page, server, engine, "mia", Role.MARKETER)
    page.get_by_role("link", name="Templates").click()
    page.get_by_role("link", name=path, exact=True).click()
    expect(page.get_by_role("heading", name=path)).to_be_visible()


def test_a_marketer_edits_an_sms_with_the_live_preview_and_publishes_it(
    page: Page, ui_server: Server, engine: Engine
) -> None:
    open_editor(page, ui_server, engine, "sms/overdue.firm.j2")
    preview = page.locator("#preview")
    expect(preview.locator(".sms-text")).to_contain_text("Please pay today")
    page.evaluate("window.sameDocument = true")  # gone if the page loads again

    source = page.get_by_label("Template source")
    source.fill(source.input_value().replace("Please pay today", "Kindly pay today"))
    expect(preview.locator(".sms-text")).to_contain_text("Kindly pay today")
    expect(preview.locator(".sms-length")).to_contain_text("GSM-7")

    broken = source.input_value() + "\n{% if amount %}"
    source.fill(broken)
    last_line = broken.count("\n") + 1  # where Jinja finds the block unclosed
    expect(preview.get_by_role("alert")).to_contain_text(f"Line {last_line}")
    expect(preview.get_by_role("alert")).to_contain_text("SYNTAX")
    expect(preview.locator(".sms-text")).to_have_count(0)

    source.fill(broken.removesuffix("\n{% if amount %}"))
    expect(preview.locator(".sms-text")).to_contain_text("Kindly pay today")
    expect(preview.locator(".lint-ok")).to_be_visible()
    assert page.evaluate("window.sameDocument") is True

    page.get_by_role("button", name="Save and publish").click()
    expect(page.get_by_role("status").first).to_contain_text("Saved and published version 2.")
    versions = page.get_by_role("table", name="Versions")
    expect(versions.locator("tbody tr").first).to_contain_text("published")
    expect(versions.locator("tbody tr").first).to_contain_text("mia")
    with engine.connect() as connection:
        assert "Kindly pay today" in published(connection).sources["sms/overdue.firm.j2"]


def test_the_email_preview_shows_the_html_in_a_sandboxed_frame(
    page: Page, ui_server: Server, engine: Engine
) -> None:
    refused: list[str] = []
    page.on("console", lambda m: refused.append(m.text) if "Content Security" in m.text else None)
    open_editor(page, ui_server, engine, "email/overdue.firm.j2")
    frame = page.locator("iframe.email-html")
    expect(frame).to_have_attribute("sandbox", "")
    expect(page.frame_locator("iframe.email-html").get_by_text("Pay today")).to_be_visible()

    source = page.get_by_label("Template source")
    source.fill(source.input_value().replace("Pay today", "Settle today"))
    inside = page.frame_locator("iframe.email-html")
    expect(inside.get_by_text("Settle today")).to_be_visible()
    expect(page.locator("#preview .email-subject")).to_contain_text("Action needed")
    # The email's inline styles apply inside the frame: its own policy allows them.
    button = inside.get_by_role("link", name="Settle today")
    expect(button).to_have_css("background-color", "rgb(31, 95, 191)")
    assert not [text for text in refused if "style" in text], refused


def test_a_script_in_the_emails_html_never_runs(
    page: Page, ui_server: Server, engine: Engine
) -> None:
    open_editor(page, ui_server, engine, "email/overdue.firm.j2")
    source = page.get_by_label("Template source")
    hostile = (
        "<script>document.body.dataset.ran = 'script'</script>"
        '<img src="data:," onerror="document.body.dataset.ran = \'handler\'">'
        "<p>Marker paragraph</p>"
    )
    text = source.input_value()
    last = text.rindex("{% endblock %}")  # the html block ends the template
    source.fill(text[:last] + hostile + text[last:])
    inside = page.frame_locator("iframe.email-html")
    expect(inside.get_by_text("Marker paragraph")).to_be_visible()
    expect(inside.locator("body")).not_to_have_attribute("data-ran", "script")
    expect(inside.locator("body")).not_to_have_attribute("data-ran", "handler")
    # Opened on its own, outside the sandboxed frame, the page's policy still stops it.
    address = page.locator("iframe.email-html").get_attribute("src")
    assert address is not None
    page.goto(ui_server.base + address)
    expect(page.get_by_text("Marker paragraph")).to_be_visible()
    assert page.evaluate("document.body.dataset.ran") is None


def test_the_editor_holds_the_latest_source_exactly(
    page: Page, ui_server: Server, engine: Engine
) -> None:
    seed(engine)
    # A leading blank line: an HTML parser drops the first newline inside a textarea.
    draft = "\n" + published_sms(engine).replace("Please pay today", "Pay today")
    save_version(engine, "sms/overdue.firm.j2", draft, FixedClock(NOW), author="mia")
    sign_in_as(page, ui_server, engine, "mia", Role.MARKETER)
    page.goto(ui_server.base + "/templates/edit?path=sms/overdue.firm.j2")
    expect(page.get_by_label("Template source")).to_have_value(draft)


def published_sms(engine: Engine) -> str:
    with engine.connect() as connection:
        return published(connection).sources["sms/overdue.firm.j2"]
