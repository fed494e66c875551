"""The review page: messages held for review, settled by an admin in a real server, with
the same rules as ``outreach attempts settle``."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import Engine, select, update

from outreach.compliance_store import attempts
from outreach.models import Role
from tests.conftest import NOW
from tests.eventdata import add_account, add_attempt
from tests.web.conftest import Server
from tests.web.ui_support import add_user, page_token, sign_in


@pytest.fixture
def admin(server: Server, engine: Engine) -> Iterator[httpx.Client]:
    add_user(engine, "olga", Role.ADMIN)
    with sign_in(server.base, "olga") as client:
        yield client


def _held(engine: Engine, message_id: str | None = None, to: str = "+16175550101") -> int:
    account_id = add_account(engine)
    return add_attempt(engine, account_id, to=to, status="unknown", message_id=message_id,
                       error_message="read timeout: held for review")  # fmt: skip


def _hold(client: httpx.Client, attempt_id: int) -> dict[str, str]:
    """The hidden fields of the message's form, as the page shows them now: which hold it
    settles."""
    form = client.get("/review").text.split(f'action="/review/{attempt_id}"')[1].split("</form>")[0]
    return {name: form.split(f'name="{name}" value="')[1].split('"')[0]
            for name in ("tries",)}  # fmt: skip


def _attempt(engine: Engine, attempt_id: int) -> object:
    with engine.connect() as connection:
        return connection.execute(select(attempts).where(attempts.c.id == attempt_id)).one()


def test_the_page_lists_held_messages_and_the_start_page_links_to_it(
    admin: httpx.Client, engine: Engine
) -> None:
    assert "No message is held for review." in admin.get("/review").text
    attempt_id = _held(engine)
    page = admin.get("/review").text
    assert "R-1" in page and "+16175550101" in page and "read timeout" in page
    assert f'action="/review/{attempt_id}"' in page
    assert 'href="/review"' in admin.get("/").text


@pytest.mark.parametrize(
    ("how", "status", "sent_again"),
    [("resend", "queued", True), ("cancel", "cancelled", False), ("sent", "sent", False)],
)
def test_settling_records_who_and_why(
    admin: httpx.Client, engine: Engine, how: str, status: str, sent_again: bool
) -> None:
    attempt_id = _held(engine)
    token = page_token(admin, "/review")
    shown = _hold(admin, attempt_id)
    form = {"csrf_token": token, "how": how, "note": "checked  the console", **shown}
    if how == "sent":
        form["provider_id"] = "SM42"
    done = admin.post(f"/review/{attempt_id}", data=form, follow_redirects=True)
    assert done.status_code == 200 and f"Message {attempt_id} " in done.text
    assert "No message is held for review." in done.text
    attempt = _attempt(engine, attempt_id)
    assert (attempt.status, attempt.reviewed_by, attempt.reviewed_at, attempt.review_note) == (
        status, "olga", NOW, "checked the console"
    )  # fmt: skip
    assert (attempt.provider_message_id == "SM42") is (how == "sent")
    assert (attempt.next_try_at is not None) is sent_again
    # Settled once: a second settling is refused and changes nothing.
    again = admin.post(f"/review/{attempt_id}",
                       data={"csrf_token": token, "how": "resend", **shown})  # fmt: skip
    assert again.status_code == 400 and f"is {status}, not held for review" in again.text
    assert _attempt(engine, attempt_id).status == status


def test_what_cannot_be_recorded_as_given_is_refused(admin: httpx.Client, engine: Engine) -> None:
    taken = _held(engine, message_id="SM77")  # a webhook gave it the provider's id
    other = add_attempt(engine, _attempt(engine, taken).account_id, status="unknown",
                        message_id=None, to="+16175550102")  # fmt: skip
    token = page_token(admin, "/review")
    held = {taken: _hold(admin, taken), other: _hold(admin, other)}
    refusals = [
        (other, {"how": "lost"}, 400, "not a way to settle"),
        (other, {"how": "cancel", "provider_id": "SM1"}, 400, "with settling as sent only"),
        (other, {"how": "sent", "provider_id": "SM77"}, 400, "is attempt"),
        (taken, {"how": "resend"}, 400, "the provider took it"),
        (other, {"how": ""}, 400, "Say how it went: choose sent, resend or cancel"),
        (other, {"how": "cancel", "note": "x" * 600}, 400, "longer than 500 characters"),
        # PostgreSQL cannot store a NUL: refused with the reason, not a server error.
        (other, {"how": "cancel", "note": "not\x00 there"}, 400, "note holds a NUL character"),
        (other, {"how": "sent", "provider_id": "SM\x001"}, 400, "id holds a NUL character"),
        (999_999, {"how": "cancel", **held[other]}, 404, "no attempt 999999"),
        # A form without the hold it was shown for (from before it had one), or with one
        # that is no hold.
        (other, {"how": "cancel", "tries": ""}, 409, "form is out of date"),
        (other, {"how": "cancel", "tries": "x"}, 409, "form is out of date"),
        (other, {"how": "cancel", "tries": "2026-01-02 03:04"}, 409, "form is out of date"),
        ("3000000000", {"how": "cancel"}, 404, "no held message"),
        ("abc", {"how": "cancel"}, 404, "no held message"),
    ]
    for attempt_id, form, code, reason in refusals:
        shown = held.get(attempt_id, {}) if isinstance(attempt_id, int) else {}  # the page's
        refused = admin.post(f"/review/{attempt_id}", data={"csrf_token": token, **shown, **form})
        assert (refused.status_code, reason in refused.text) == (code, True), reason
    assert {_attempt(engine, i).status for i in (taken, other)} == {"unknown"}
    # A message the provider has an id for can only be settled as sent: nothing else is
    # offered for it.
    page = admin.get("/review").text
    forms = {n: page.split(f'action="/review/{n}"')[1].split("</form>")[0] for n in (taken, other)}
    assert 'value="resend"' not in forms[taken] and 'value="sent"' in forms[taken]
    assert 'value="resend"' in forms[other] and 'value="cancel"' in forms[other]


def test_only_an_admin_settles_and_only_from_the_page(
    server: Server, admin: httpx.Client, engine: Engine
) -> None:
    attempt_id = _held(engine)
    assert admin.post(f"/review/{attempt_id}", data={"how": "cancel"}).status_code == 403
    add_user(engine, "ana", Role.AGENT)
    with sign_in(server.base, "ana") as agent:
        assert agent.get("/review").status_code == 403
        assert 'href="/review"' not in agent.get("/").text
        token = page_token(agent)
        forbidden = agent.post(f"/review/{attempt_id}", data={"csrf_token": token, "how": "cancel"})
        assert forbidden.status_code == 403
    assert _attempt(engine, attempt_id).status == "unknown"


def test_a_form_for_an_earlier_hold_does_not_settle_a_later_one(
    server: Server, admin: httpx.Client, engine: Engine
) -> None:
    """Two admins: one opens the page, the other settles the message as "send again"; it
    is sent and held again. The first admin's form, filled in for the first hold, is
    refused (409, with the reason) and the second hold stays for review."""
    attempt_id = _held(engine)
    token = page_token(admin, "/review")
    first = _hold(admin, attempt_id)
    add_user(engine, "petr", Role.ADMIN)
    with sign_in(server.base, "petr") as petr:
        form = {"csrf_token": page_token(petr, "/review"), "how": "resend", **first}
        assert petr.post(f"/review/{attempt_id}", data=form).status_code == 303
    with engine.begin() as connection:  # sent again, and held again (``dispatcher._failed``)
        connection.execute(update(attempts).where(attempts.c.id == attempt_id).values(
            status="unknown", tries=attempts.c.tries + 1, updated_at=NOW + timedelta(minutes=5),
            error_message="read timeout: the second send"))  # fmt: skip
    stale = admin.post(f"/review/{attempt_id}",
                       data={"csrf_token": token, "how": "cancel", **first})  # fmt: skip
    assert stale.status_code == 409
    assert f"message {attempt_id} changed since the page was shown" in stale.text
    assert "the second send" in stale.text  # the page shown again has the hold as it is now
    assert _attempt(engine, attempt_id).status == "unknown"
    now = _hold(admin, attempt_id)
    assert now != first
    done = admin.post(f"/review/{attempt_id}", data={"csrf_token": token, "how": "cancel", **now})
    assert done.status_code == 303 and _attempt(engine, attempt_id).status == "cancelled"


def test_a_form_touched_since_only_by_a_webhook_still_settles(
    admin: httpx.Client, engine: Engine
) -> None:
    """A "queued" callback gave the provider's id after the page was shown, and a page
    from the earlier version also sends when the message was held: neither is a new hold
    (it was not sent again), so the form settles it and the webhook's id stays."""
    attempt_id = _held(engine)
    token = page_token(admin, "/review")
    shown = _hold(admin, attempt_id)
    with engine.begin() as connection:  # what ``events._update_attempts`` writes for it
        connection.execute(update(attempts).where(attempts.c.id == attempt_id).values(
            provider_message_id="SM42", updated_at=NOW + timedelta(minutes=5)))  # fmt: skip
    earlier = {"held_since": NOW.isoformat()}  # the earlier page's field, not read now
    form = {"csrf_token": token, "how": "sent", **shown, **earlier}
    assert admin.post(f"/review/{attempt_id}", data=form).status_code == 303
    attempt = _attempt(engine, attempt_id)
    assert (attempt.status, attempt.provider_message_id) == ("sent", "SM42")
