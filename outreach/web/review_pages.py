"""Messages held for review, settled by an admin (the operator): the same listing and the
same settling as ``outreach attempts held`` and ``outreach attempts settle``
(``outreach.review``).

A held message may have reached the provider: it is never sent again on its own. The page
lists each with what the operator needs to find it in the provider's console (recipient,
provider, when it was held, the error), and a form to settle it as sent (with the
provider's id, if known), to send again, or to cancel. A refusal (settled meanwhile, an id
another message holds) shows the page again with the reason and changes nothing: 404 for
no such message, 409 when the message changed since the page was shown (sent again and
held again: the form, filled in for the hold it showed, does not settle a later one), 400
otherwise.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from outreach.agent_actions import ActionRefused, ChangedMeanwhile
from outreach.errors import NotFoundError
from outreach.review import (
    NOTE_LENGTH,
    PROVIDER_ID_LENGTH,
    Hold,
    Settlement,
    count_held,
    held_for_review,
    settle,
)
from outreach.web import ui
from outreach.web.auth import Admin, Session
from outreach.web.inbox_pages import engine_of, whole_number
from outreach.web.notices import notice_from, notice_query

router = APIRouter()
PAGE_SIZE = 200
# What each way of settling does (the form offers them as ``ui.SETTLE_CHOICES``).
_DONE = {
    Settlement.SENT: "is settled as sent",
    Settlement.RESEND: "is queued to be sent again (checked again as it leaves)",
    Settlement.CANCEL: "is cancelled; the cadence goes on from its next step",
}


@router.get("/review", response_class=HTMLResponse)
def held_page(request: Request, session: Admin) -> Response:
    return _page(request, session, notice_from(request))


# What a form field may carry before it is refused with the page's own reason (the
# settling's checks are stricter): past this, a bare 422.
_FIELD_LENGTH = 10_000


@router.post("/review/{attempt}")
def settle_one(
    request: Request,
    session: Admin,
    attempt: str,
    how: Annotated[str, Form(max_length=_FIELD_LENGTH)] = "",
    provider_id: Annotated[str, Form(max_length=_FIELD_LENGTH)] = "",
    note: Annotated[str, Form(max_length=_FIELD_LENGTH)] = "",
    # Which hold of the message the page showed: its tries. (A page shown by an earlier
    # version also sends when it was held: not needed, and not read.)
    tries: Annotated[str, Form(max_length=20)] = "",
) -> Response:
    now: datetime = request.app.state.clock.now()
    try:
        attempt_id = _attempt_id(attempt)
        chosen = _settlement(how)
        shown = _hold(tries)
        with engine_of(request).begin() as connection:
            settle(connection, attempt_id, chosen, now, session.user.username,
                   provider_message_id=provider_id, note=note, expected=shown)  # fmt: skip
    except NotFoundError as exc:
        return _page(request, session, [("error", str(exc))], 404)
    except ChangedMeanwhile as exc:
        return _page(request, session, [("error", str(exc))], 409)
    except ActionRefused as exc:
        return _page(request, session, [("error", str(exc))], 400)
    done = f"Message {attempt_id} {_DONE[chosen]}."
    return RedirectResponse(f"/review?{notice_query(request, done)}", status_code=303)


def _attempt_id(text: str) -> int:
    """The id in the page's address: one that cannot be an id names no message."""
    try:
        return whole_number(text, "message id")
    except ActionRefused:
        raise NotFoundError(f"no held message {text[:20]!r}") from None


def _hold(tries: str) -> Hold:
    """The hold the form was shown for; a form without it (from before it was sent, or
    not the page's) is refused: which hold it was filled in for is unknown."""
    try:
        return Hold(int(tries))
    except ValueError:
        raise ChangedMeanwhile(
            "this form is out of date: settle the message from the page again"
        ) from None


def _settlement(how: str) -> Settlement:
    try:
        return Settlement(how.strip().lower())
    except ValueError:
        shown = f"{how[:20]!r} is not a way to settle" if how.strip() else "Say how it went"
        raise ActionRefused(f"{shown}: choose sent, resend or cancel") from None


def _page(
    request: Request, session: Session, notices: list[tuple[str, str]], status: int = 200
) -> HTMLResponse:
    with engine_of(request).connect() as connection:
        held = held_for_review(connection, limit=PAGE_SIZE)
        total = count_held(connection) if len(held) == PAGE_SIZE else len(held)
    values = {
        "title": "Held for review",
        "held": held,
        "total": total,
        "choices": ui.SETTLE_CHOICES,
        "note_length": NOTE_LENGTH,
        "provider_id_length": PROVIDER_ID_LENGTH,
    }
    return ui.render(request, "review.html", session, values, notices=notices, status=status)
