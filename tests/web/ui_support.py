"""Signed-in HTTP clients for the web UI's tests: users of each role, and their forms."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
from sqlalchemy import Engine, select

from outreach.channels import lint_policy
from outreach.clock import FixedClock
from outreach.models import Role
from outreach.rendering.context import load_company
from outreach.template_store import sync_templates
from outreach.users import create_user
from outreach.web.throttle import sign_in_attempts
from tests.conftest import NOW, REPO

PASSWORD = "correct horse battery staple"
_TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


def add_user(engine: Engine, username: str, role: Role, password: str = PASSWORD) -> None:
    with engine.begin() as connection:
        create_user(connection, username, password, role, NOW, username.title())


def csrf_of(page: str) -> str:
    found = _TOKEN.search(page)
    assert found, "the page has no form token"
    return found.group(1)


@contextmanager
def sign_in(base: str, username: str, password: str = PASSWORD) -> Iterator[httpx.Client]:
    """A client holding a session, for the block."""
    with httpx.Client(base_url=base, timeout=30) as client:
        form = client.get("/login")
        response = client.post(
            "/login",
            data={"username": username, "password": password, "csrf_token": csrf_of(form.text)},
        )
        assert response.status_code == 303, response.text
        yield client


def stored_attempts(engine: Engine) -> list[tuple[str, str]]:
    """The sign-in throttle's rows, oldest first: (name key, state)."""
    c = sign_in_attempts.c
    with engine.connect() as connection:
        rows = connection.execute(select(c.name_key, c.state).order_by(c.id))
        return [(row.name_key, row.state) for row in rows]


def page_token(client: httpx.Client, path: str = "/") -> str:
    """The session's form token, read from a page as a browser would."""
    return csrf_of(client.get(path).text)


def seed_templates(engine: Engine) -> None:
    """The repository's templates, published, as ``outreach init`` stores them."""
    report = sync_templates(
        engine, REPO / "templates", load_company(REPO / "templates"), FixedClock(NOW),
        author="outreach init", publish=True, policy=lint_policy(REPO / "channels"),
    )  # fmt: skip
    assert not report.refused


def browser_path(href: str) -> str:
    """The path a browser requests for ``href``: its dot segments resolved as the URL
    standard says, "%2e" spellings included."""
    kept: list[str] = []
    for segment in href.split("?")[0].split("/")[1:]:
        if segment.lower() in (".", "%2e"):
            continue
        if segment.lower() in ("..", ".%2e", "%2e.", "%2e%2e"):
            kept = kept[:-1]
            continue
        kept.append(segment)
    return "/" + "/".join(kept)
