"""The web UI in a real headless Chromium (Debian's, at /usr/bin/chromium or CHROMIUM),
driven by Playwright, against a real uvicorn server on 127.0.0.1 over SQLite.

A missing browser fails these tests rather than skipping them: ``.ci/run`` installs it.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, sync_playwright
from sqlalchemy import Engine

from outreach.clock import FixedClock
from outreach.config import Settings
from outreach.models import Role
from outreach.web.app import create_app
from tests.conftest import NOW
from tests.web.conftest import Server, serving
from tests.web.conftest import settings as settings  # the web tests' settings
from tests.web.ui_support import PASSWORD, add_user

# The closed network refuses Chromium's own background connections; without these flags
# it retries them all the time.
_FLAGS = [
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage",
]  # fmt: skip


def chromium_path() -> str:
    path = os.environ.get("CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(path).exists():
        pytest.fail(f"no Chromium at {path}: install Debian's chromium (see .ci/run)")
    return path


# Per module: Playwright's sync API holds an event loop open in this thread while it runs,
# and the asyncio tests of other modules cannot start their own beside it.
@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium_path(), args=_FLAGS)
        yield launched
        launched.close()


@pytest.fixture
def backend() -> str:
    return "sqlite"  # the browser checks the pages; the HTTP tests cover both databases


@pytest.fixture
def ui_server(engine: Engine, settings: Settings) -> Iterator[Server]:
    with serving(create_app(settings, engine, clock=FixedClock(NOW))) as running:
        yield running


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context()
    opened = context.new_page()
    opened.set_default_timeout(15_000)
    yield opened
    context.close()


def sign_in_as(page: Page, server: Server, engine: Engine, username: str, role: Role) -> None:
    """Create the user and sign in through the form, as a person would."""
    add_user(engine, username, role)
    page.goto(server.base + "/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(server.base + "/")
