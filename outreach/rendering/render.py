"""Rendering a message: the template for a channel, name, tone and language, with its blocks.

- SMS: the whole template is the text.
- Email: blocks ``subject``, ``text`` and ``html``; the HTML block is autoescaped, so a
  debtor's name cannot inject markup, while the subject and text stay plain.
- Voice: blocks ``human`` (what a person who answers hears) and ``voicemail`` (a
  limited-content message for an answering machine).
"""

from __future__ import annotations

import re
import traceback
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

from jinja2 import Template, TemplateNotFound
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment

from outreach.errors import TemplateError
from outreach.records import quick_init
from outreach.rendering.context import Company, MessageFacts, build_context
from outreach.rendering.environment import TemplateKey, imports_released, make_environments
from outreach.rendering.limits import bounded, bounded_concat
from outreach.rendering.sms import SmsLength, sms_length
from outreach.rendering.suit_threat import refuse_suit_threat

REQUIRED_BLOCKS = {"sms": (), "email": ("subject", "text", "html"), "voice": ("human", "voicemail")}
_BLANK_LINES = re.compile(r"\n{3,}")


class RenderError(TemplateError):
    """A template failed while rendering for the data it was given (a name with one word
    where it takes the second, a division by zero...): the template's to fix, not the
    account's. ``path`` and ``line`` say where, in the template or a partial it uses."""

    def __init__(self, path: str, line: int | None, cause: BaseException) -> None:
        self.path, self.line, self.cause = path, line, cause
        where = f"{path} line {line}" if line else path
        super().__init__(f"{where}: {type(cause).__name__}: {cause}")


@quick_init
@dataclass(frozen=True)
class Rendered:
    key: TemplateKey  # the variant actually used (a language variant or the default)
    text: str  # the SMS, the email's text body, or what a person hears on a call
    subject: str | None = None
    html: str | None = None
    voicemail: str | None = None

    @property
    def sms(self) -> SmsLength | None:
        return sms_length(self.text) if self.key.channel == "sms" else None


class Renderer:
    """Renders templates from one set of sources; compiled templates are cached.

    A mapping of sources is copied and fixed for the renderer's life; a lookup function
    may change its answers, and a template is compiled again when its source does."""

    def __init__(self, sources: Mapping[str, str] | Callable[[str], str | None]) -> None:
        fixed = not callable(sources)
        self.lookup = sources if callable(sources) else dict(sources).get
        self.text_env, self.html_env = make_environments(self.lookup, fixed=fixed)
        # With fixed sources the variant for a step and a locale never changes: the daemon
        # asks for the same few a thousand times a batch.
        self._resolved: dict[tuple[str, str, str, str], TemplateKey] | None = {} if fixed else None

    def resolve(self, channel: str, name: str, tone: str, locale: str) -> TemplateKey:
        """The language variant for ``locale`` when there is one, else the default."""
        if self._resolved is None:
            return self._resolve(channel, name, tone, locale)
        asked = (channel, name, tone, locale)
        key = self._resolved.get(asked)
        if key is None:
            key = self._resolved[asked] = self._resolve(channel, name, tone, locale)
        return key

    def _resolve(self, channel: str, name: str, tone: str, locale: str) -> TemplateKey:
        language = locale.split("_")[0].lower()
        for key in (TemplateKey(channel, name, tone, language), TemplateKey(channel, name, tone)):
            if self.lookup(key.path) is not None:
                return key
        raise TemplateError(f"no template {TemplateKey(channel, name, tone).path}")

    def render(
        self,
        channel: str,
        name: str,
        tone: str,
        facts: MessageFacts,
        company: Company,
        today: date,
    ) -> Rendered:
        """Render for one account: the variant in its language if any, else the default."""
        key = self.resolve(channel, name, tone, facts.locale)
        return self.render_key(key, build_context(facts, company, today, key.language, key.channel))

    def render_key(self, key: TemplateKey, context: Mapping[str, Any]) -> Rendered:
        """Render ``key``; any failure of the template's own code is a ``RenderError``.
        A time-barred debt's message that threatens suit is refused
        (``SuitThreatOnTimeBarredDebt``)."""
        try:
            with imports_released(), bounded():
                rendered = self._render_key(key, context)
        except (TemplateError, TemplateNotFound):
            raise
        except Exception as exc:  # whatever a template's expression raised, for this data
            path, line = self._failed_at(exc, key.path)
            raise RenderError(path, line, exc) from exc
        # Every message passes here, an agent's answer too; other debts pay one lookup.
        if context.get("time_barred"):
            refuse_suit_threat(key.path, rendered, context)
        return rendered

    def _failed_at(self, exc: BaseException, path: str) -> tuple[str, int | None]:
        """The template (or partial) and line where rendering failed, from the traceback
        Jinja rewrites to point into templates."""
        line = getattr(exc, "lineno", None)
        if isinstance(line, int):
            return path, line
        for frame in reversed(traceback.extract_tb(exc.__traceback__)):
            if not frame.filename.endswith(".py") and self.lookup(frame.filename) is not None:
                return frame.filename, frame.lineno
        return path, None

    def _render_key(self, key: TemplateKey, context: Mapping[str, Any]) -> Rendered:
        text_template = self._template(self.text_env, key)
        if key.channel == "sms":
            return Rendered(key, _tidy(text_template.render(context)))
        missing = [b for b in REQUIRED_BLOCKS[key.channel] if b not in text_template.blocks]
        if missing:
            raise TemplateError(f"{key.path}: missing block(s) {', '.join(missing)}")
        # One context per template serves all its blocks, as in a whole-template render.
        text_context = _context(text_template, context)
        if key.channel == "email":
            html_template = self._template(self.html_env, key)
            html_context = _context(html_template, context)
            subject = " ".join(_block(text_template, "subject", text_context).split())
            return Rendered(
                key,
                _tidy(_block(text_template, "text", text_context)),
                subject=subject,
                html=_block(html_template, "html", html_context).strip(),
            )
        return Rendered(
            key,
            _tidy(_block(text_template, "human", text_context)),
            voicemail=_tidy(_block(text_template, "voicemail", text_context)),
        )

    def _template(self, env: ImmutableSandboxedEnvironment, key: TemplateKey) -> Template:
        try:
            return env.get_template(key.path)
        except TemplateNotFound as exc:
            raise TemplateError(f"no template {exc.name}") from None


def _context(template: Template, variables: Mapping[str, Any]) -> Context:
    """What ``Template.render`` would make: the environment's globals under the variables,
    in a dict of its own; built directly, it saves copying the globals' ChainMap twice."""
    return template.new_context({**template.globals, **variables}, shared=True)


def _block(template: Template, name: str, context: Context) -> str:
    render_block: Callable[[Context], Iterator[str]] = template.blocks[name]
    return bounded_concat(render_block(context))


def _tidy(text: str) -> str:
    """Trim the ends and collapse runs of blank lines that conditionals leave behind."""
    # The line pass costs less than any search for lines that need it (a regular
    # expression took five times as long on a typical email).
    text = "\n".join([line.rstrip() for line in text.strip().splitlines()])
    return _BLANK_LINES.sub("\n\n", text) if "\n\n\n" in text else text
