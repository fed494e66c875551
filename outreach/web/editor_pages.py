"""The marketers' template editor: the templates and their versions, editing with a live
preview, saving (after lint), publishing and rolling back.

- The preview renders the edited source among the published ones, for a sample account,
  with the daemon's renderer and variables, in a child process bounded in time and memory
  (``preview_bounded``): a template is code, and one that loops for ever or builds a huge
  string must not hold the server. The routes are plain functions, so FastAPI runs them
  in its thread pool, off the event loop; a few previews run at once, the rest wait.
- The email's HTML is served by a route of its own with a policy that allows its inline
  styles and no script at all, into an iframe sandboxed without permissions: a page
  written with ``srcdoc`` would inherit the editor's policy and lose its styles. It is
  kept in the database for the user who rendered it (``html_previews``), so the frame's
  request may reach any web process.
- Saving lints as ``outreach templates publish`` does; a refused template is kept in the
  editor with the line and cause of each issue, and nothing is stored.
- The form carries the version the marketer opened (``based_on``): a save is refused when
  someone saved a newer one since, with the marketer's text kept and the changes made
  since shown, so that nobody's work is dropped unseen.
"""

from __future__ import annotations

import difflib
import threading
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from pydantic import BaseModel, Field, ValidationError
from sqlalchemy import Engine, select
from sqlalchemy.exc import IntegrityError

from outreach.channels import lint_policy
from outreach.config import Settings
from outreach.errors import CadenceError, NotFoundError, TemplateError
from outreach.models import TemplateStatus, TemplateVersion
from outreach.rendering.context import SAMPLE_ACCOUNTS, Company, call_identity_texts, load_company
from outreach.rendering.environment import PARTIALS_DIR
from outreach.rendering.lint import (
    MAX_TEMPLATE_CHARACTERS,
    LintIssue,
    LintPolicy,
    blocking,
    too_large,
)
from outreach.rendering.lint_limits import Preview, lint_sources_bounded, preview_bounded
from outreach.template_store import (
    SavedSince,
    affected_paths,
    list_versions,
    nul_issues,
    path_of,
    publish_version,
    published,
    retire,
    rollback,
    save_version,
    versions,
)
from outreach.templates_in_use import templates_in_use
from outreach.web import ui
from outreach.web.auth import Marketer, Session
from outreach.web.html_previews import HtmlPreviews
from outreach.web.notices import notice_from, notice_query

router = APIRouter()

# The longest source the editor takes (line ends counted as stored, LF): far beyond any
# message template, and twice what lint lets one have (MAX_TEMPLATE_CHARACTERS), so that a
# text between the two is shown with lint's issue. The body's cap (``body_limit``) keeps
# the request itself small enough to read; a longer text is kept in the editor, refused.
SOURCE_CHARS = 100_000
PREVIEW_SECONDS = 5.0  # a live preview of a real template takes a fraction of a second
SAVE_SECONDS: float | None = None  # None: the limit ``outreach templates publish`` uses
# Each preview or save holds a child process: a few at a time, whoever asks.
_RENDERS = threading.BoundedSemaphore(4)
_RENDER_WAIT_SECONDS = 30.0

# The email preview's own policy: inline styles (emails are written with them), images
# from anywhere an email could load them, nothing else; ``sandbox`` even when opened alone.
HTML_PREVIEW_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; img-src https: data:; "
        "frame-ancestors 'self'; form-action 'none'; base-uri 'none'; sandbox"
    ),
    "X-Frame-Options": "SAMEORIGIN",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


@dataclass(frozen=True)
class TemplateRow:
    path: str
    channel: str
    name: str
    tone: str
    language: str
    published: int | None
    latest: int
    changed_at: datetime
    author: str

    @property
    def newer_draft(self) -> bool:
        return self.published is None or self.latest > self.published


class PreviewRequest(BaseModel):
    path: str = Field(max_length=300)
    source: str  # its length is checked after line ends are normalised (``_too_long``)
    sample: int = Field(default=1, ge=1, le=len(SAMPLE_ACCOUNTS))
    based_on: int | None = None  # the form's, kept when the page comes back without script


@dataclass(frozen=True)
class PreviewAsked:
    request: PreviewRequest
    as_json: bool


async def preview_asked(request: Request) -> PreviewAsked:
    """The preview's input, as JSON from the editor's script or as the editor's form."""
    as_json = request.headers.get("content-type", "").startswith("application/json")
    try:
        raw: Any = await request.json() if as_json else dict(await request.form())
    except ValueError:
        raise HTTPException(400, "the preview request is not JSON") from None
    except RecursionError:  # "[[[[..." past the parser's depth
        raise HTTPException(400, "the preview request is nested too deeply") from None
    try:
        return PreviewAsked(PreviewRequest.model_validate(raw), as_json)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise HTTPException(422, problems) from None


@router.get("/templates", response_class=HTMLResponse)
def template_list(request: Request, session: Marketer) -> Response:
    rows = _overview(_engine(request))
    values = {"title": "Templates", "rows": rows, "partials_dir": PARTIALS_DIR}
    return ui.render(request, "editor_list.html", session, values, notices=notice_from(request))


@router.get("/templates/edit", response_class=HTMLResponse)
def edit_page(request: Request, session: Marketer, path: str, sample: int = 1) -> Response:
    sample = _sample_number(sample)
    rows = _versions_of(_engine(request), path)
    if not rows:
        return _not_found(request, session, path)
    source = rows[-1].content
    preview = _preview(request, path, source, sample)
    return _editor(
        request, session, path, source, sample, rows, preview,
        notices=notice_from(request), based_on=rows[-1].version,
    )  # fmt: skip


@router.post("/templates/preview", response_class=HTMLResponse)
def preview(
    request: Request, session: Marketer, asked: Annotated[PreviewAsked, Depends(preview_asked)]
) -> Response:
    """The live preview (JSON, for the editor's script) or, without JavaScript, the editor
    page with the preview of what the form holds."""
    path, sample = asked.request.path, asked.request.sample
    source = _normalised(asked.request.source)
    rows = _versions_of(_engine(request), path)
    if not rows:
        if asked.as_json:
            return JSONResponse({"detail": f"no template {path}"}, status_code=404)
        return _not_found(request, session, path)
    if _too_long(source):
        if asked.as_json:  # not the source back: the script has it
            return JSONResponse({"detail": _too_long_text(source)}, status_code=413)
        note = [("error", f"Not previewed: {_too_long_text(source)}. {_KEPT}")]
        return _editor(request, session, path, source, sample, rows,
                       _too_long_preview(path, source), notices=note, status=413,
                       based_on=asked.request.based_on)  # fmt: skip
    found = _preview(request, path, source, sample)
    if not asked.as_json:
        # The form's own: a page without it stays without it, and its save is refused.
        based_on = asked.request.based_on
        return _editor(request, session, path, source, sample, rows, found, based_on=based_on)
    view = _preview_view(request, found, session, sample)
    fragment = ui.pages.get_template("editor_preview.html").render(preview=view, path_shown=path)
    return JSONResponse({**view, "fragment": fragment}, headers={"Cache-Control": "no-store"})


@router.get("/templates/preview/html/{token}", response_class=HTMLResponse)
def preview_html(request: Request, token: str, session: Marketer) -> Response:
    html = _html_previews(request).get(session.user.id, token)
    if html is None:
        html = "<p>This preview has expired: change the template or reload the editor.</p>"
        return HTMLResponse(html, status_code=404, headers=HTML_PREVIEW_HEADERS)
    return HTMLResponse(html, headers=HTML_PREVIEW_HEADERS)


@router.post("/templates/save", response_class=HTMLResponse)
def save(
    request: Request,
    session: Marketer,
    path: Annotated[str, Form(max_length=300)],
    source: Annotated[str, Form()],  # its length is checked below, as stored
    sample: Annotated[int, Form()] = 1,
    action: Annotated[str, Form(max_length=20)] = "draft",
    based_on: Annotated[int | None, Form()] = None,
) -> Response:
    """Lint, then store a new version (a draft, or published at once) on top of
    ``based_on``, the version the editor was opened on."""
    engine = _engine(request)
    sample = _sample_number(sample)
    source = _normalised(source)
    rows = _versions_of(engine, path)
    if not rows:
        return _not_found(request, session, path)
    if _too_long(source):  # nothing to lint: lint would refuse it for its length alone
        refused = [("error", f"Not saved: {_too_long_text(source)}. {_KEPT}")]
        return _editor(request, session, path, source, sample, rows,
                       _too_long_preview(path, source), notices=refused, status=413,
                       based_on=based_on)  # fmt: skip
    if based_on is None:  # a page from before the field: what it would overwrite is unknown
        unknown = [("error", "Not saved: this page does not say which version it was opened "
                             f"on. Your text is kept below; the latest is version "
                             f"{rows[-1].version}: check the versions below, then save "
                             "again.")]  # fmt: skip
        # Saving again from this page is deliberate: it now counts as opened on the latest.
        return _editor(request, session, path, source, sample, rows, Preview([], None),
                       notices=unknown, status=400, based_on=rows[-1].version)  # fmt: skip
    if nul := nul_issues({path: source}):  # PostgreSQL would refuse to store it
        refused = [("error", f"Not saved: line {nul[0].line} holds a NUL character.")]
        return _editor(request, session, path, source, sample, rows, Preview(nul, None),
                       notices=refused, status=400, based_on=based_on)  # fmt: skip
    company, policy = _company_and_policy(request)
    with engine.connect() as connection:
        sources = {**published(connection).sources, path: source}
    with _render_slot():
        # One template over the limits refuses the save: the rest need not wait their turn.
        issues = lint_sources_bounded(
            sources, company, paths=affected_paths(sources, path), policy=policy,
            seconds=SAVE_SECONDS, stop_at_limit=True,
        )  # fmt: skip
    # A template including this one is not refused for its own name (``blocking``).
    issues = blocking(issues, path)
    if issues:
        refused = [("error", f"Not saved: {_count(len(issues), 'issue')} to fix first.")]
        found = Preview(issues, None)
        return _editor(request, session, path, source, sample, rows, found, notices=refused,
                       status=422, based_on=based_on)  # fmt: skip
    try:
        number = save_version(
            engine, path, source, request.app.state.clock, author=session.user.username,
            based_on=based_on,
        )  # fmt: skip
    except SavedSince as since:
        return _saved_since(request, session, source, sample, since)
    except IntegrityError:  # another save of this template took the number first
        clash = [("error", "Someone saved this template at the same moment: save again.")]
        found = Preview([], None)
        return _editor(request, session, path, source, sample, rows, found, notices=clash,
                       status=409, based_on=based_on)  # fmt: skip
    done = f"Saved version {number} as a draft."
    if number == rows[-1].version:
        done = f"Nothing new to save: version {number} holds this text."
    if action == "publish":
        try:
            publish_version(
                engine, path, company, request.app.state.clock, version=number, policy=policy
            )
        except TemplateError as exc:  # the published partials changed since the lint
            found = Preview([], None)
            rows = _versions_of(engine, path)
            note = [("error", f"Saved version {number}, not published: {exc}")]
            return _editor(request, session, path, source, sample, rows, found, notices=note,
                           status=422, based_on=number)  # fmt: skip
        done = (
            f"Saved and published version {number}."
            if number != rows[-1].version
            else f"Published version {number}: it holds this text."
        )
    return _back_to_editor(request, path, sample, done)


@router.post("/templates/publish")
def publish(
    request: Request,
    session: Marketer,
    path: Annotated[str, Form(max_length=300)],
    version: Annotated[int, Form()],
) -> Response:
    """Publish a stored version (a draft, or an older one)."""
    company, policy = _company_and_policy(request)
    try:
        with _render_slot():
            number = publish_version(
                _engine(request), path, company, request.app.state.clock, version=version,
                policy=policy,
            )  # fmt: skip
    except (NotFoundError, TemplateError) as exc:
        return _refused_change(request, session, path, str(exc))
    return _back_to_editor(request, path, 1, f"Published version {number}.")


@router.post("/templates/rollback")
def roll_back(
    request: Request,
    session: Marketer,
    path: Annotated[str, Form(max_length=300)],
    rolling_back: Annotated[int | None, Form()] = None,
) -> Response:
    """Publish the version before ``rolling_back``, the published version the page showed;
    refused when another is published by now, which the page's button did not mean."""
    if rolling_back is None:  # a page from before the field: what it showed is unknown
        return _refused_change(request, session, path, _UNSAID, status=400)
    company, policy = _company_and_policy(request)
    try:
        with _render_slot():
            number = rollback(
                _engine(request), path, company, request.app.state.clock, policy=policy,
                rolling_back=rolling_back,
            )  # fmt: skip
    except (NotFoundError, TemplateError) as exc:
        return _refused_change(request, session, path, str(exc))
    return _back_to_editor(request, path, 1, f"Rolled back: version {number} is published again.")


@router.post("/templates/retire")
def retire_published(
    request: Request,
    session: Marketer,
    path: Annotated[str, Form(max_length=300)],
    retiring: Annotated[int | None, Form()] = None,
) -> Response:
    """Retire the published version the page showed: the daemon stops sending the template."""
    if retiring is None:
        return _refused_change(request, session, path, _UNSAID, status=400)
    settings: Settings = request.app.state.settings
    try:
        in_use = templates_in_use(settings.schedules_dir)
        number = retire(_engine(request), path, retiring=retiring, in_use=in_use)
    except (NotFoundError, TemplateError, CadenceError) as exc:
        return _refused_change(request, session, path, str(exc))
    done = f"Retired version {number}: no version is published, the daemon no longer sends it."
    return _back_to_editor(request, path, 1, done)


_UNSAID = (
    "Nothing was changed: this page does not say which version it showed published. "
    "Check the versions below, then try again."
)


def _editor(
    request: Request,
    session: Session,
    path: str,
    source: str,
    sample: int,
    rows: list[TemplateVersion],
    found: Preview,
    *,
    notices: list[tuple[str, str]] | None = None,
    status: int = 200,
    based_on: int | None = None,
    since: SavedSince | None = None,
) -> HTMLResponse:
    """The editor page; ``based_on``: the version the form's text started from (None: the
    form says none, and its save is refused), ``since``: the versions saved after it, when
    a save was refused for them."""
    current = next((r for r in rows if r.status == TemplateStatus.PUBLISHED), None)
    earlier = [r.version for r in rows if current is not None and r.version < current.version]
    samples = [
        {"number": n, "label": f"{s.reference}: {s.debtor_name[:40]} ({s.locale}, "
                               f"{s.collector_type.replace('_', ' ')}"
                               f"{', time-barred' if s.time_barred else ''})"}
        for n, s in enumerate(SAMPLE_ACCOUNTS, start=1)
    ]  # fmt: skip
    values = {
        "title": f"Edit {path}",
        "path": path,
        "source": source,
        "sample": sample,
        "samples": samples,
        "versions": list(reversed(rows)),
        "published": current.version if current is not None else None,
        "latest": rows[-1].version,
        "based_on": based_on,
        "since": _since_view(since) if since is not None else None,
        "rollback_to": earlier[-1] if earlier else None,
        "preview": _preview_view(request, found, session, sample),
        "is_partial": path.startswith(f"{PARTIALS_DIR}/"),
        "source_chars": SOURCE_CHARS,
    }
    return ui.render(request, "editor.html", session, values, status=status,
                     notices=notices or [])  # fmt: skip


def _saved_since(
    request: Request, session: Session, source: str, sample: int, since: SavedSince
) -> HTMLResponse:
    """The save refused as based on an older version: the marketer's text stays in the
    form, now based on the latest, with what changed since; saving again is deliberate."""
    rows = _versions_of(_engine(request), since.path)
    # The version its changes are shown up to; the latest when it named none we have.
    latest = since.latest if since.newer else rows[-1].version
    note = [("error", f"Not saved: {since}. Your text is below as you left it; the "
                      "changes saved since are shown above it. Bring in what you keep of "
                      "them, then save again.")]  # fmt: skip
    return _editor(request, session, since.path, source, sample, rows, Preview([], None),
                   notices=note, status=409, based_on=latest, since=since)  # fmt: skip


def _since_view(since: SavedSince) -> dict[str, Any]:
    newer = since.newer[-1] if since.newer else None
    diff = ""
    if since.base is not None and newer is not None:
        lines = difflib.unified_diff(
            since.base.splitlines(), newer.content.splitlines(),
            f"version {since.based_on}", f"version {newer.version}", lineterm="",
        )  # fmt: skip
        diff = "\n".join(lines)
    return {"based_on": since.based_on, "latest": since.latest, "diff": diff}


def _preview(request: Request, path: str, source: str, sample: int) -> Preview:
    if nul := nul_issues({path: source}):  # nothing renders it, nor stores what it renders
        return Preview(nul, None)
    company, policy = _company_and_policy(request)
    with _engine(request).connect() as connection:
        sources = {**published(connection).sources, path: _normalised(source)}
    with _render_slot():
        return preview_bounded(
            sources, path, company, SAMPLE_ACCOUNTS[sample - 1],
            paths=affected_paths(sources, path), policy=policy, seconds=PREVIEW_SECONDS,
        )  # fmt: skip


def _normalised(source: str) -> str:
    """Browsers send a textarea's line ends as CRLF; templates are stored with LF."""
    return source.replace("\r\n", "\n")


def _too_long(source: str) -> bool:
    """Whether ``source`` (its line ends normalised) is longer than the editor takes."""
    return len(source) > SOURCE_CHARS


_KEPT = "Your text is kept below: shorten it, then try again."


def _too_long_text(source: str) -> str:
    return (
        f"the template is {len(source):,} characters long; the editor takes at most "
        f"{SOURCE_CHARS:,}, and a template or partial may have {MAX_TEMPLATE_CHARACTERS:,}"
    )


def _too_long_preview(path: str, source: str) -> Preview:
    """Lint's issue for the length, without linting or rendering a text that long."""
    return Preview([too_large(path, len(source))], None)


def _preview_view(
    request: Request, found: Preview, session: Session, sample: int
) -> dict[str, Any]:
    """The preview as the page and the script show it; a call's in the order a person
    hears it: the identity check, then the message once they press 1."""
    view: dict[str, Any] = {
        "ok": not found.issues,
        "issues": [_issue_view(issue) for issue in found.issues],
        "channel": None, "variant": None, "sms": None, "email": None, "voice": None,
    }  # fmt: skip
    rendered = found.rendered
    if rendered is None:
        return view
    view["channel"], view["variant"] = rendered.key.channel, rendered.key.path
    if rendered.sms is not None:
        length = rendered.sms
        view["sms"] = {
            "text": rendered.text, "segments": length.segments, "encoding": length.encoding,
            "units": length.units, "non_gsm": list(length.non_gsm),
            "describe": length.describe(),
        }  # fmt: skip
    elif rendered.key.channel == "email":
        token = _html_previews(request).put(session.user.id, rendered.html or "")
        view["email"] = {
            "subject": rendered.subject or "", "text": rendered.text,
            "html_url": f"/templates/preview/html/{token}",
        }  # fmt: skip
    else:
        company, _ = _company_and_policy(request)
        name = SAMPLE_ACCOUNTS[_sample_number(sample) - 1].debtor_name
        check = call_identity_texts(company, rendered.key.language or "en", name)
        view["voice"] = {
            "identity_check": check.check, "human": rendered.text,
            "not_the_debtor": check.not_the_debtor, "voicemail": rendered.voicemail or "",
        }  # fmt: skip
    return view


def _issue_view(issue: LintIssue) -> dict[str, Any]:
    return {
        "path": issue.path, "line": issue.line, "code": issue.code, "message": issue.message,
        "text": str(issue),
    }  # fmt: skip


def _overview(engine: Engine) -> list[TemplateRow]:
    """Every template and partial: its published and latest versions, the last change."""
    c = versions.c
    order = (c.channel, c.name, c.tone, c.locale, c.version)
    columns = (*order, c.status, c.author, c.created_at)
    with engine.connect() as connection:
        result = connection.execute(select(*columns).order_by(*order)).all()
    by_path: dict[str, TemplateRow] = {}
    current: dict[str, int] = {}
    for row in result:
        path = path_of(row.channel, row.name, row.tone, row.locale)
        if row.status == TemplateStatus.PUBLISHED:
            current[path] = row.version
        by_path[path] = TemplateRow(
            path, row.channel, row.name, row.tone, row.locale, None, row.version,
            row.created_at, row.author,
        )  # fmt: skip
    rows = [
        TemplateRow(**{**r.__dict__, "published": current.get(r.path)}) for r in by_path.values()
    ]
    # Partials last: they are edited less, and only through the templates that use them.
    return sorted(rows, key=lambda r: (r.channel == PARTIALS_DIR, r.path))


class _render_slot:
    """One of the few concurrent renders; a request that cannot get one in time is told."""

    def __enter__(self) -> None:
        if not _RENDERS.acquire(timeout=_RENDER_WAIT_SECONDS):
            raise HTTPException(503, "the editor is busy: try again in a moment")

    def __exit__(self, *_: object) -> None:
        _RENDERS.release()


def _company_and_policy(request: Request) -> tuple[Company, LintPolicy]:
    settings: Settings = request.app.state.settings
    return load_company(settings.templates_dir), lint_policy(settings.channels_dir)


def _versions_of(engine: Engine, path: str) -> list[TemplateVersion]:
    """The versions of ``path``; none for a path no template could have."""
    try:
        return list_versions(engine, path)
    except TemplateError:
        return []


def _engine(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine


def _html_previews(request: Request) -> HtmlPreviews:
    previews: HtmlPreviews = request.app.state.html_previews
    return previews


def _sample_number(sample: int) -> int:
    return sample if 1 <= sample <= len(SAMPLE_ACCOUNTS) else 1


def _back_to_editor(request: Request, path: str, sample: int, done: str) -> Response:
    query = f"path={quote(path, safe='')}&sample={sample}&{notice_query(request, done)}"
    return RedirectResponse(f"/templates/edit?{query}", status_code=303)


def _refused_change(
    request: Request, session: Session, path: str, message: str, *, status: int = 409
) -> Response:
    rows = _versions_of(_engine(request), path)
    if not rows:
        return _not_found(request, session, path)
    return _editor(request, session, path, rows[-1].content, 1, rows, Preview([], None),
                   notices=[("error", message)], status=status,
                   based_on=rows[-1].version)  # fmt: skip


def _not_found(request: Request, session: Session, path: str) -> HTMLResponse:
    if "\x00" in path:
        message = "A template's path holds no NUL character. Pick one from the list of templates."
        return ui.message_page(request, session, "No such template", message, 400)
    message = f"There is no template {path}. Pick one from the list of templates."
    return ui.message_page(request, session, "No such template", message, 404)


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"
