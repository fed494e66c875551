"""An agent answers a debtor's reply from the account's page (``outreach.answers``).

A refused answer shows the page again with the reason and the words the agent wrote, so
nothing typed is lost: 400 for input that cannot be sent as given, 404 for a message that
is not the account's, 409 when compliance does not allow the answer (its decision is
stored all the same) or when another agent answered the same reply after the page was
opened, on this account or on another account with the sender's address, which has its
own copy of the message (an answer to another of the account's replies does not count).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import Connection

from outreach import agent_actions as actions
from outreach.answers import AnsweredMeanwhile, AnswerKit, answer_reply, seen_in_form
from outreach.channels import lint_policy
from outreach.compliance.rules import RuleSet, load_ruleset
from outreach.config import Settings
from outreach.errors import NotFoundError
from outreach.rendering.context import load_company
from outreach.rendering.render import Renderer
from outreach.template_store import published
from outreach.web.auth import Agent
from outreach.web.inbox_pages import account_page, engine_of, whole_number
from outreach.web.notices import notice_query
from outreach.web.paths import from_segment, path_segment

router = APIRouter()


@router.post("/inbox/accounts/{reference:path}/answer")
def answer(
    request: Request,
    session: Agent,
    reference: str,
    # No length limits here: a field out of bounds would be a bare 422 that loses the
    # agent's words; each is checked below, the words by ``answer_reply``.
    message_id: Annotated[str, Form()] = "",
    words: Annotated[str, Form(alias="answer")] = "",
    form_key: Annotated[str, Form()] = "",
    seen: Annotated[str, Form()] = "",
    handled: Annotated[str, Form()] = "",
) -> Response:
    reference = from_segment(reference)  # as routing decoded it (``inbox_pages``)
    now: datetime = request.app.state.clock.now()
    kept = {"message_id": message_id, "text": words}

    def again(status: int, notice: str) -> Response:
        return account_page(request, session, reference, [("error", notice)], status, kept)

    try:
        number = whole_number(message_id, "message id")
        newest = seen_in_form(seen, number)
        with engine_of(request).begin() as connection:
            account = actions.account_by_reference(connection, reference)
            done = answer_reply(
                connection, account, number, words, form_key, session.user.id,
                answer_kit(request, connection), now, mark_handled=bool(handled), seen=newest,
            )  # fmt: skip
    except NotFoundError as exc:
        return again(404, str(exc))
    except AnsweredMeanwhile as exc:
        return again(409, str(exc))
    except actions.ActionRefused as exc:
        return again(400, str(exc))
    if done.outcome == "blocked":
        return again(409, done.describe())
    where = f"/inbox/accounts/{path_segment(reference)}?{notice_query(request, done.describe())}"
    return RedirectResponse(where, status_code=303)


def answer_kit(request: Request, connection: Connection) -> AnswerKit:
    """The rules and the company are read once per app; templates as published now."""
    settings: Settings = request.app.state.settings
    state = request.app.state
    rules: RuleSet | None = getattr(state, "answer_rules", None)
    if rules is None:
        rules = state.answer_rules = load_ruleset(settings.compliance_rules_file)
    templates = published(connection)
    return AnswerKit(
        rules=rules,
        company=load_company(settings.templates_dir),
        renderer=Renderer(templates.sources),
        version_ids=dict(templates.version_ids),
        public_base_url=settings.public_base_url,
        secret_key=settings.secret_key.get_secret_value(),
        default_region=settings.default_region,
        max_sms_segments=lint_policy(settings.channels_dir).max_sms_segments,
    )
