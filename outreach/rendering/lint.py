"""Template lint: what is checked before a template may be published.

A template is refused, with the line and the cause, when:
- its name is not ``{channel}/{name}.{tone}[.{language}].j2``, or names a language variant
  that would never be used (``BAD_NAME``: see ``unused_variant``), or one whose language
  company.yaml has no texts in (``NO_LANGUAGE_TEXTS``);
- it does not parse (``SYNTAX``), or misses a block its channel needs (``MISSING_BLOCK``);
- it uses a variable that does not exist (``UNKNOWN_VARIABLE``);
- it fails to render for any sample account (``RENDER_ERROR``: a misspelt attribute, an
  escape attempt the sandbox stops);
- an SMS is longer than the channel allows (``POLICY_SMS_TOO_MANY_SEGMENTS``);
- an SMS lacks how to opt out, or an email its unsubscribe link (``REGF_OPTOUT_NOTICE_MISSING``);
- a message to a debt collector's debtor lacks the disclosure, whole but in an SMS
  (``REGF_MINI_MIRANDA_MISSING``);
- an email's HTML writes the debtor's name unescaped: SAMPLE-4's markup comes out as tags
  (``HTML_UNESCAPED_DATA``);
- in an email's HTML, the link and the disclosure count only where a mail reader shows them
  (``answer_text.shown_text``), and HTML past what that reads is refused
  (``HTML_UNCHECKABLE``);
- a voicemail says more than a limited-content message may, such as a word about the debt
  (``REGF_LCM_CONTENT_INVALID``: ``LCM_FORBIDDEN``); so for the words a call says to a
  person before they say they are the debtor (the identity check, and the goodbye to
  someone else: company.yaml's ``call_identity_check``, ``call_not_the_debtor``);
- an answer template does not show the agent's whole answer (``ANSWER_INCOMPLETE``), or
  its HTML is past what that check reads (``ANSWER_UNCHECKABLE``: too many ``@media``
  conditions);
- a message for a time-barred debt (SAMPLE-8) threatens legal action
  (``REGF_TIME_BARRED_SUIT_THREAT``: ``suit_threat.threatens_suit``), with the line where
  the source has the wording found, in the part's block where it reads as a threat.
"""

from __future__ import annotations

import re
import traceback
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any, NamedTuple

from jinja2 import TemplateNotFound, TemplateSyntaxError, meta, nodes
from jinja2.exceptions import SecurityError
from jinja2.exceptions import TemplateError as JinjaTemplateError
from selectolax.lexbor import LexborHTMLParser

from outreach.errors import TemplateError
from outreach.rendering.answer_styles import Uncheckable
from outreach.rendering.answer_text import check_answer_shown, shown_text
from outreach.rendering.context import (
    ANSWER_TEMPLATE,
    LCM_COMPANY_FIELDS,
    OPT_OUT_WORD,
    SAMPLE_ACCOUNTS,
    SAMPLE_TODAY,
    Company,
    MessageFacts,
    call_identity_texts,
    sample_context,
    variables_for,
)
from outreach.rendering.environment import PARTIALS_DIR, TemplateKey, unused_variant
from outreach.rendering.limits import RenderLimit
from outreach.rendering.render import REQUIRED_BLOCKS, Rendered, Renderer, RenderError
from outreach.rendering.suit_threat import CODE as SUIT_THREAT
from outreach.rendering.suit_threat import SuitThreatOnTimeBarredDebt, threatens_suit

DEFAULT_MAX_SMS_SEGMENTS = 3
# Words that would tell an eavesdropper the call is about a debt: a limited-content
# message must not carry them (Reg F 1006.2(j)), in any language we ship. A list cannot
# know every way to say it: the voicemail is still to be written as the model message is
# (a name, a person to ask for, a number to call back), and this catches the usual words.
LCM_FORBIDDEN = re.compile(
    r"\b(debt\w*|collect\w*|ow(?:e|es|ed|ing)|balances?|payments?|pay|pays|paid|paying|payable|"
    r"overdue|past[\s-]*due|delinquen\w*|outstanding|arrears?|bills?|billing|billed|"
    r"invoice\w*|amounts?|money|dollars?|funds|loans?|"
    r"deuda\w*|adeud\w*|cobr\w*|pag(?:o|os|ar|ue|uen|ado|ada|ados|adas)|saldo\w*|vencid\w*|"
    r"atrasad\w*|moros\w*|factura\w*|dinero|pr[eé]stamo\w*)\b",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class LintIssue:
    path: str
    line: int | None
    code: str
    message: str

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line else self.path
        return f"{where}: {self.code}: {self.message}"


MAX_TEMPLATE_CHARACTERS = 50_000


def too_large(path: str, characters: int) -> LintIssue:
    """The issue of a template or partial longer than ``MAX_TEMPLATE_CHARACTERS``."""
    message = (
        f"{characters:,} characters; a template or partial may have "
        f"{MAX_TEMPLATE_CHARACTERS:,} (messages are far smaller)"
    )
    return LintIssue(path, None, "TOO_LARGE", message)


@dataclass(frozen=True)
class LintPolicy:
    max_sms_segments: int = DEFAULT_MAX_SMS_SEGMENTS


def lint_sources(
    sources: Mapping[str, str],
    company: Company,
    *,
    paths: Iterable[str] | None = None,
    policy: LintPolicy | None = None,
    samples: tuple[MessageFacts, ...] = SAMPLE_ACCOUNTS,
    today: date = SAMPLE_TODAY,
) -> list[LintIssue]:
    """Lint ``paths`` (default: every template) as they would render among ``sources``."""
    renderer = Renderer(sources)
    chosen = sorted(paths if paths is not None else sources)
    issues: list[LintIssue] = []
    for path in chosen:
        issues += lint_one(
            renderer, path, sources[path], company, policy or LintPolicy(), samples, today
        )
    return issues


# What a template's own name says is wrong: its own to fix (when it is saved or published),
# never a reason to refuse a change to a partial it includes.
NAME_CODES = frozenset({"BAD_NAME", "NO_LANGUAGE_TEXTS"})


def blocking(issues: Iterable[LintIssue], path: str) -> list[LintIssue]:
    """The issues that refuse a change to ``path``: all of its own, and what the templates
    including it render (a name problem of theirs is not the change's doing)."""
    return [i for i in issues if i.path == path or i.code not in NAME_CODES]


def lint_one(
    renderer: Renderer,
    path: str,
    source: str,
    company: Company,
    policy: LintPolicy,
    samples: tuple[MessageFacts, ...],
    today: date,
) -> list[LintIssue]:
    if len(source) > MAX_TEMPLATE_CHARACTERS:
        # A render's bounds count its steps and what it makes, not the nodes each step
        # runs: the size of a template is what keeps that part small.
        return [too_large(path, len(source))]
    try:
        tree = renderer.text_env.parse(source, name=path, filename=path)
        # Compiling finds what parsing does not, such as an unknown filter.
        renderer.text_env.compile(source, name=path, filename=path)
    except TemplateSyntaxError as exc:
        return [LintIssue(path, exc.lineno, "SYNTAX", exc.message or "syntax error")]
    if path.startswith(f"{PARTIALS_DIR}/"):
        return []  # partials are checked through the templates that include them
    try:
        key = TemplateKey.from_path(path)
    except TemplateError as exc:
        return [LintIssue(path, None, "BAD_NAME", str(exc))]
    unused = unused_variant(key)
    if unused is not None:
        return [LintIssue(path, None, "BAD_NAME", unused)]
    issues = _structure(path, tree, key)
    if issues:
        return issues
    if key.language and key.language not in company.texts:
        # Still rendered below: a variant published before this check is sent, and a
        # change to a partial it includes must keep it rendering.
        message = (
            f"company.yaml has no texts in '{key.language}' (opt-out, disclosures): the "
            f"message would carry them in English; add a '{key.language}' entry under texts"
        )
        issues.append(LintIssue(path, None, "NO_LANGUAGE_TEXTS", message))
    for sample in samples:
        try:
            context = sample_context(sample, company, today, key.name, key.language, key.channel)
            rendered = renderer.render_key(key, context)
        except TemplateNotFound as exc:
            message = f"includes {exc.name}, which is not available (not published yet?)"
            issues.append(LintIssue(path, _template_line(exc, path), "RENDER_ERROR", message))
            break
        except SuitThreatOnTimeBarredDebt as exc:
            issues.append(_suit_threat(path, source, exc, sample))
            continue
        except RenderError as exc:
            cause = exc.cause
            said = str(cause) if isinstance(cause, JinjaTemplateError) else named(cause)
            where = "" if exc.path == path else f" (in {exc.path}, line {exc.line})"
            message = f"fails for sample account {sample.reference}: {said}{where}"
            line = exc.line if exc.path == path else None
            # Past a render's bounds (``limits``): the same code as the time and memory
            # limits of the checks themselves.
            code = "RENDER_LIMIT" if isinstance(cause, RenderLimit) else "RENDER_ERROR"
            issues.append(LintIssue(path, line, code, message))
            break
        except (JinjaTemplateError, TemplateError, SecurityError) as exc:
            message = f"fails for sample account {sample.reference}: {exc}"
            issues.append(LintIssue(path, _template_line(exc, path), "RENDER_ERROR", message))
            break
        except Exception as exc:  # outside the template's code: its variables, say
            message = f"fails for sample account {sample.reference}: {named(exc)}"
            issues.append(LintIssue(path, None, "RENDER_ERROR", message))
            break
        issues += _content(path, key, rendered, sample, context, company, policy)
    return _unique(issues)


def _suit_threat(
    path: str, source: str, exc: SuitThreatOnTimeBarredDebt, sample: MessageFacts
) -> LintIssue:
    """A time-barred debt's message that threatens suit, on the line of the source that
    has the wording (none when it comes from a partial or a variable)."""
    if exc.part == "voicemail":
        fix = "a voicemail may not say it at all"
    else:
        fix = "say it only {% if not time_barred %}...{% endif %}"
    message = (
        f"the {exc.part} threatens legal action ('{exc.phrase}') on a time-barred debt "
        f"(sample account {sample.reference}), which Reg F 1006.26(b) forbids: {fix}"
    )
    return LintIssue(path, _phrase_line(source, exc.phrase, exc.part), SUIT_THREAT, message)


# The block of a template that makes each part a message has (an SMS has none).
_PART_BLOCKS = {
    "text": r"(?:text|human)", "subject": "subject", "html": "html", "voicemail": "voicemail"
}  # fmt: skip
_MARKUP = re.compile(r"<[^>]*>|\{\{.*?\}\}|\{%.*?%\}|\{#.*?#\}", re.DOTALL)
_SENTENCE = re.compile(r"[.;!?]|\n\s*\n")


def _phrase_line(source: str, phrase: str, part: str = "text") -> int | None:
    """The line of ``source`` with ``phrase`` (spacing and case aside) where it threatens:
    in the block of the part it was found in, the first occurrence that reads as a threat
    in its sentence ("we will not sue you" on an earlier line is not it); else the first
    occurrence there, else in the whole source."""
    words = r"\s+".join(re.escape(word) for word in phrase.split())
    pattern = re.compile(rf"(?<!\w){words}(?!\w)", re.IGNORECASE)
    block = re.search(r"\{%-?\s*block\s+" + _PART_BLOCKS[part] + r"\b", source)
    found = list(pattern.finditer(source, block.end() if block else 0))
    if not found:
        found = list(pattern.finditer(source))
    for occurrence in found:
        if _threatens_in_its_sentence(source, occurrence):
            return source.count("\n", 0, occurrence.start()) + 1
    return source.count("\n", 0, found[0].start()) + 1 if found else None


def _threatens_in_its_sentence(source: str, occurrence: re.Match[str]) -> bool:
    """Whether the words of the occurrence's sentence, markup and template tags aside,
    read as a threat."""
    start = max(0, occurrence.start() - 300)
    before = _SENTENCE.split(source[start : occurrence.start()])[-1]
    after = _SENTENCE.split(source[occurrence.start() : occurrence.start() + 300], maxsplit=1)
    return threatens_suit(_MARKUP.sub(" ", before + after[0])) is not None


def _structure(path: str, tree: nodes.Template, key: TemplateKey) -> list[LintIssue]:
    issues: list[LintIssue] = []
    blocks = {block.name: block for block in tree.find_all(nodes.Block)}
    for name in REQUIRED_BLOCKS[key.channel]:
        if name not in blocks:
            issues.append(
                LintIssue(
                    path,
                    None,
                    "MISSING_BLOCK",
                    f"{key.channel} templates need a {{% block {name} %}}",
                )
            )
    for name in sorted(meta.find_undeclared_variables(tree) - variables_for(key.name)):
        line = next((n.lineno for n in tree.find_all(nodes.Name) if n.name == name), None)
        issues.append(
            LintIssue(
                path,
                line,
                "UNKNOWN_VARIABLE",
                f"'{name}' is not a template variable (see docs/templates.md)",
            )
        )
    if key.channel == "voice" and "voicemail" in blocks:
        issues += _voicemail_variables(path, blocks["voicemail"])
    return issues


def _voicemail_variables(path: str, block: nodes.Block) -> list[LintIssue]:
    """A limited-content message may name only the caller, a person and a number: the only
    variables allowed are the three ``company.<field>`` attributes, written as such (not
    ``company["name"]`` nor ``company|attr("name")``, which would slip past the list)."""
    issues = []
    allowed = ", ".join(f"company.{f}" for f in sorted(LCM_COMPANY_FIELDS))
    permitted = {
        id(attribute.node)
        for attribute in block.find_all(nodes.Getattr)
        if isinstance(attribute.node, nodes.Name)
        and attribute.node.name == "company"
        and attribute.attr in LCM_COMPANY_FIELDS
    }
    for attribute in block.find_all(nodes.Getattr):
        on_company = isinstance(attribute.node, nodes.Name) and attribute.node.name == "company"
        if on_company and attribute.attr not in LCM_COMPANY_FIELDS:
            message = f"a voicemail may not use 'company.{attribute.attr}'; only {allowed}"
            issues.append(LintIssue(path, attribute.lineno, "REGF_LCM_CONTENT_INVALID", message))
            permitted.add(id(attribute.node))  # reported once, as the attribute
    # What another template says cannot be checked here: a voicemail stands alone.
    for node in block.find_all((nodes.Include, nodes.Import, nodes.FromImport, nodes.CallBlock)):
        message = "a voicemail may not include or import other templates"
        issues.append(LintIssue(path, node.lineno, "REGF_LCM_CONTENT_INVALID", message))
    for name in block.find_all(nodes.Name):
        if id(name) in permitted:
            continue
        what = "company except as " + allowed if name.name == "company" else f"'{name.name}'"
        message = f"a voicemail may not use {what}; only {allowed}"
        issues.append(LintIssue(path, name.lineno, "REGF_LCM_CONTENT_INVALID", message))
    return issues


def _content(
    path: str,
    key: TemplateKey,
    rendered: Rendered,
    sample: MessageFacts,
    context: Mapping[str, Any],
    company: Company,
    policy: LintPolicy,
) -> list[LintIssue]:
    issues: list[LintIssue] = []
    where = f"(sample account {sample.reference})"
    if key.channel == "sms":
        length = rendered.sms
        assert length is not None
        if length.segments > policy.max_sms_segments:
            issues.append(
                LintIssue(
                    path,
                    None,
                    "POLICY_SMS_TOO_MANY_SEGMENTS",
                    f"{length.describe()}; the limit is {policy.max_sms_segments} {where}",
                )
            )
        if not OPT_OUT_WORD.search(rendered.text):
            issues.append(
                LintIssue(
                    path,
                    None,
                    "REGF_OPTOUT_NOTICE_MISSING",
                    "an SMS must say how to opt out: include {{ opt_out_text }}",
                )
            )
    shown: _Shown | None = None
    url = str(context["unsubscribe_url"])
    if key.channel == "email" and rendered.html is not None:
        issues += _unescaped(path, rendered.html, sample)
        shown = _shown(rendered.html, url)
        if shown.unchecked and key.name != ANSWER_TEMPLATE:  # the answer check says so
            message = f"the html body cannot be checked: {shown.unchecked} {where}"
            issues.append(LintIssue(path, None, "HTML_UNCHECKABLE", message))
    if key.channel == "email":
        missing = [] if url in rendered.text else ["text"]
        if shown is not None and not shown.unchecked and not shown.unsubscribe:
            missing.append("html")
        for part in missing:
            issues.append(
                LintIssue(
                    path,
                    None,
                    "REGF_OPTOUT_NOTICE_MISSING",
                    f"the {part} body must include {{{{ unsubscribe_url }}}}"
                    + (", shown (a visible link or its text)" if part == "html" else ""),
                )
            )
    if sample.collector_type == "third_party":
        # Only an SMS after the first communication may make do with the short form (Reg F
        # 1006.18(e)(2) and (4)): the first one, an email or a call carries the whole.
        required = [str(context["disclosure"])]
        if key.channel == "sms" and not sample.first_contact:
            required.append(str(context["disclosure_short"]))
        bodies = [rendered.text]
        if shown is not None and not shown.unchecked:
            bodies.append(shown.text)  # what a mail reader shows, not the markup
        for body in bodies:
            flat = " ".join(body.split())
            if not any(" ".join(text.split()) in flat for text in required if text):
                issues.append(
                    LintIssue(
                        path,
                        None,
                        "REGF_MINI_MIRANDA_MISSING",
                        "messages from a debt collector must carry {{ disclosure }}, shown "
                        "(or {{ disclosure_short }} in an SMS when not first_contact) " + where,
                    )
                )
                break
    if key.channel == "voice" and rendered.voicemail is not None:
        issues += _voicemail_content(path, rendered.voicemail, company)
    if key.channel == "voice":
        issues += _identity_check_content(path, company, key.language or "en")
    if key.name == ANSWER_TEMPLATE:
        missing, unchecked = check_answer_shown(rendered, str(context["answer"]))
        if unchecked:
            message = f"the html body cannot be checked: {unchecked} {where}"
            issues.append(LintIssue(path, None, "ANSWER_UNCHECKABLE", message))
        for part in missing:
            issues.append(
                LintIssue(
                    path,
                    None,
                    "ANSWER_INCOMPLETE",
                    f"the {part} body must show the agent's whole answer: include "
                    f"{{{{ answer }}}} as it is {where}",
                )
            )
    return issues


# A tag in an account's data (SAMPLE-4's name) and the words after it: found as such in the
# HTML, they were not escaped. (A tag alone could be the template's own.)
_TAGGED = re.compile(r"(<[^<>]+>)([^<]*)")


def _unescaped(path: str, html: str, sample: MessageFacts) -> list[LintIssue]:
    """The debtor's name comes from an import: an email that writes it unescaped
    (``|safe``, ``{% autoescape false %}``) lets a crafted name add markup, a script or a
    link, to the email. The tags of the sample's name must not come out as tags."""
    lowered = html.lower()
    raw = [
        tag
        for tag, after in _TAGGED.findall(sample.debtor_name)
        if after.strip() and (tag + after).strip().lower() in lowered
    ]
    if not raw:
        return []
    message = (
        f"the html body writes the debtor's name as markup: for sample account "
        f"{sample.reference}, {', '.join(repr(tag) for tag in dict.fromkeys(raw))} came out "
        "as a tag; write account data escaped, without |safe or {% autoescape false %}"
    )
    return [LintIssue(path, None, "HTML_UNESCAPED_DATA", message)]


class _Shown(NamedTuple):
    """What a mail reader shows of an email's HTML body: its words (``shown_text``), and
    whether it shows the unsubscribe link; or why the body could not be checked."""

    text: str = ""
    unsubscribe: bool = False
    unchecked: str | None = None


# Put around the words of each unsubscribe link, to find them among the words shown.
_LINK_START, _LINK_END = "\ue000", "\ue001"
_SHOWN_LINK = re.compile(f"{_LINK_START}([^{_LINK_END}]*){_LINK_END}")


def _shown(markup: str, url: str) -> _Shown:
    """What ``markup`` shows (see ``answer_text``): hidden words (``display: none``, a
    comment, white on white...) are not among them. The unsubscribe link is shown when
    ``url`` is among the words shown, or a link to it shows words of its own."""
    tree = LexborHTMLParser(markup.replace(_LINK_START, "").replace(_LINK_END, ""))
    for link in tree.css("a[href]"):
        if (link.attributes.get("href") or "").strip().startswith(url):
            first = link.first_child
            if first is None:
                link.insert_child(_LINK_START)
            else:
                first.insert_before(_LINK_START)
            link.insert_child(_LINK_END)
    try:
        marked = shown_text(tree.html or "")
    except Uncheckable as exc:
        return _Shown(unchecked=str(exc))
    text = marked.replace(_LINK_START, " ").replace(_LINK_END, " ")
    linked = any(words.strip() for words in _SHOWN_LINK.findall(marked))
    return _Shown(text, linked or url in text)


def _voicemail_content(path: str, voicemail: str, company: Company) -> list[LintIssue]:
    issues = []
    # The agent is a person the debtor may ask for: a Bill or an Owen says nothing of a debt.
    # The whole name in any case ("BILL HART"), and each word of it as it is written in the
    # name ("ask for Bill"): "your bill" is still a word about the debt.
    said = voicemail
    if company.agent_name.strip():
        whole = r"\s+".join(re.escape(word) for word in company.agent_name.split())
        said = re.sub(rf"\b{whole}\b", " ", said, flags=re.IGNORECASE)
        for word in company.agent_name.split():
            said = re.sub(rf"\b{re.escape(word)}\b", " ", said)
    found = LCM_FORBIDDEN.finditer(said)
    forbidden = sorted({" ".join(m.group(0).split()).lower() for m in found})
    if forbidden:
        issues.append(
            LintIssue(
                path,
                None,
                "REGF_LCM_CONTENT_INVALID",
                f"a voicemail may not mention {', '.join(forbidden)}",
            )
        )
    for field in sorted(LCM_COMPANY_FIELDS):
        if str(getattr(company, field)) not in voicemail:
            issues.append(
                LintIssue(
                    path,
                    None,
                    "REGF_LCM_CONTENT_INVALID",
                    f"a voicemail must give {{{{ company.{field} }}}}",
                )
            )
    return issues


def _identity_check_content(path: str, company: Company, language: str) -> list[LintIssue]:
    """Whoever answers a call hears the identity check before saying who they are, and
    someone else the goodbye: like a voicemail, neither may name the debt."""
    texts = call_identity_texts(company, language, "")
    found = LCM_FORBIDDEN.finditer(f"{texts.check} {texts.not_the_debtor}")
    forbidden = sorted({" ".join(m.group(0).split()).lower() for m in found})
    if not forbidden:
        return []
    message = (
        f"the identity check a call asks before its message (company.yaml's "
        f"call_identity_check, call_not_the_debtor) may not mention {', '.join(forbidden)}"
    )
    return [LintIssue(path, None, "REGF_LCM_CONTENT_INVALID", message)]


def _template_line(exc: BaseException, path: str) -> int | None:
    """The line in ``path`` where rendering failed, from Jinja's rewritten traceback."""
    line = getattr(exc, "lineno", None)
    if isinstance(line, int):
        return line
    for frame in reversed(traceback.extract_tb(exc.__traceback__)):
        if frame.filename == path:
            return frame.lineno
    return None


def named(exc: BaseException) -> str:
    """A Python error as a marketer can read it: its kind and message."""
    if isinstance(exc, MemoryError):
        return "MemoryError: what it builds is larger than a message may use"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _unique(issues: list[LintIssue]) -> list[LintIssue]:
    return list(dict.fromkeys(issues))
