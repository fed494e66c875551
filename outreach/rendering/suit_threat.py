"""Whether a message threatens legal action, for debts that are time-barred.

A debt collector must not bring or threaten to bring a legal action to collect a
time-barred debt (Reg F 12 CFR 1006.26(b)); the rule is of strict liability, so a message
that could be read as a threat counts as one. ``threatens_suit`` reads a message as the
debtor gets it (an SMS, an email's subject and text, what a mail reader shows of its HTML,
a call's script, a voicemail) for the usual English and Spanish ways to say it.

A negated statement is not a threat: "we will not sue you", "no legal action will be
taken", "no le demandaremos", and the notices states require on such debts (California's
"The law limits how long you can be sued on a debt. Because of the age of your debt, we
will not sue you for it.") pass. A negation counts only where it governs the threat: the
words between the two must be of the verb group ("will not *be able to* sue"); any other
word ("we will not *hesitate to* sue", "if you do not *pay we will* sue") leaves the
threat standing. A list cannot know every way to threaten: templates for time-barred debts
are still to be written without one (docs/templates.md, "Time-barred debts").

Some states mandate a notice that does describe suit (New York's, 23 NYCRR 1.3: "If a
creditor sues you..."): the wordings counsel approved, ``company.yaml``'s
``time_barred_notices``, are taken out of a message where they occur verbatim (spacing and
case aside) before it is read; the rest of the message is read as any other.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from outreach.errors import TemplateError
from outreach.rendering.answer_styles import Uncheckable
from outreach.rendering.answer_text import shown_texts

if TYPE_CHECKING:
    from outreach.rendering.render import Rendered

CODE = "REGF_TIME_BARRED_SUIT_THREAT"

# The ways to threaten legal action, one a row: each is matched as whole words, so words
# that hold one (issue, pursue, courtesy, suede, cortesía) do not match. On the debtor's
# side where unsure: "judgment" or "lien" alone counts, as a debtor may read a threat in it.
_THREATS: tuple[str, ...] = (
    # English
    r"su(?:e|es|ed|ing)",  # sue, sues, sued, suing
    r"lawsuits?",
    r"(?:file[sd]?|filing|bring|brings|bringing|brought)\s+suit",
    r"legal\s+(?:actions?|proceedings?|steps|measures|recourse|remed(?:y|ies))",
    r"court\s+(?:actions?|proceedings?|orders?)",
    r"(?:take|takes|taking|took|taken)\s+(?:\w+\s+){0,2}?to\s+court",  # "take you to court"
    r"(?:see|meet)\s+you\s+in\s+court",
    r"small[\s-]+claims",
    r"(?:file[sd]?|filing)\s+(?:a\s+|an\s+)?(?:claim|complaint|case|action)\s+against\s+you",
    r"judge?ments?",
    r"garnish\w*",
    r"liens?",
    r"litigat\w*",
    # A referral to lawyers for collection: "we will refer your account to our attorneys".
    r"(?:refer|send|sent|turn|forward|pass|hand|assign|transfer|place)\w*\b[^.!?;\n]{0,40}?"
    r"\b(?:to|with)\s+(?:(?:our|an?|the|outside|collection)\s+)*"
    r"(?:attorneys?|lawyers?|law\s+firm|legal\s+(?:department|team|counsel))",
    r"our\s+(?:attorneys?|lawyers?|law\s+firm|legal\s+(?:department|team|counsel))",
    # Spanish
    r"demand\w*",  # demanda, demandar, demandarle, demandaremos, demandado
    r"acci(?:ón|on|ones)\s+(?:legal(?:es)?|judicial(?:es)?)",
    r"(?:procesos?|procedimientos?)\s+(?:judicial(?:es)?|legal(?:es)?)",
    r"juicios?",
    r"tribunal(?:es)?",
    r"cortes?",
    r"embarg\w*",  # embargo, embargar, embargaremos
    r"litigi\w*",
    r"abogad[oa]s",
    r"nuestr[oa]s?\s+abogad[oa]s?",
    r"departamento\s+(?:legal|jur[ií]dico)",
)
_THREAT = re.compile(r"\b(?:" + "|".join(_THREATS) + r")\b", re.IGNORECASE)

# Wording that holds a threat's word without being one: statements of the law in the
# notices states require on time-barred debts, Spanish's "however", and a utility's cut-off
# of a service ("corte de luz"), which is no court.
_NOT_THREATS = re.compile(
    r"\b(?:how\s+long\s+(?:you\s+)?can\s+be\s+sued"
    r"|(?:time\s+limit|statute\s+of\s+limitations?)(?:\s+\([^)]*\))?\s+for\s+suing"
    r"|tiempo\s+(?:durante\s+el\s+cual\s+|en\s+(?:el\s+)?que\s+|que\s+)?"
    r"(?:se\s+le\s+puede|le\s+pueden|usted\s+puede\s+ser)\s+demand(?:ar|ad[oa])\w*"
    r"|cortes?\s+(?:de\s+(?:la\s+)?|del\s+)"
    r"(?:servicios?|luz|agua|gas|energ[ií]a|electricidad|suministros?)"
    r"|sin\s+embargo)\b",
    re.IGNORECASE,
)


def _words(listed: str) -> frozenset[str]:
    return frozenset(listed.split())


# Words that negate what follows them.
_NEGATIONS = _words(
    "not never cannot no nor neither nunca jamás jamas ni ningún ninguna ninguno tampoco"
)
# Words that may stand between a negation and the threat it negates: the verb group and
# its objects ("will not be able to sue", "won't take any legal action", "no le podemos
# demandar"). Any other word leaves the threat standing.
_BETWEEN = _words(
    """
    will would shall should can could may might must do does did have has had
    be been being ever take takes taking taken bring bringing file filing start begin
    initiate pursue commence any a an the you your this to going intend intends plan
    plans able we us further also legally our intention
    le les lo la los las se al usted ustedes su sus en contra un una el
    podemos podremos puede pueden podrá podrán podría podríamos vamos va van ir iremos
    tomaremos tomar tomará tomarán tomado iniciaremos iniciar iniciará emprenderemos
    emprender presentaremos presentar llevaremos llevar ser será serán sido hemos hay
    """
)
_MOST_BETWEEN = 4
_WINDOW = 200  # characters before a threat that hold its negation, if any
# A threat's word then its negation, in the passive: "legal action will not be taken".
_NEGATED_AFTER = re.compile(
    r"\s+(?:will\s+not|will\s+never|won[’']t|shall\s+not|cannot|can\s+not|can[’']t|"
    r"would\s+not|wouldn[’']t)\s+be\s+(?:taken|filed|brought|started|initiated|pursued|"
    r"commenced|sought)\b",
    re.IGNORECASE,
)
# A clause ends at punctuation: "No, we will sue you" is not negated.
_CLAUSE_END = re.compile(r"[.,;:!?¡¿()\[\]\"“”\n]")
_WORD = re.compile(r"[\w’']+")


class SuitThreatOnTimeBarredDebt(TemplateError):
    """A message for a time-barred debt threatens legal action (Reg F 1006.26(b)): it is
    not sent. ``phrase`` is the wording found, ``part`` where (text, subject, html,
    voicemail)."""

    def __init__(self, phrase: str, part: str = "text", path: str = "") -> None:
        self.phrase, self.part, self.path = phrase, part, path
        where = f"{path}: " if path else ""
        super().__init__(
            f"{where}{CODE}: the {part} threatens legal action ('{phrase}') on a time-barred "
            "debt, which Reg F 1006.26(b) forbids: say it only {% if not time_barred %}"
        )


def threatens_suit(text: str, names: Iterable[str] = (), notices: Iterable[str] = ()) -> str | None:
    """The first wording in ``text`` that threatens legal action, or None. ``names``
    (the debtor's, the company's) are people and businesses, not words: a debtor called
    Sue or Lien is greeted, not threatened. ``notices`` are the approved notices on
    time-barred debts: where one occurs verbatim it is not read."""
    text = _without_notices(text, tuple(notices))
    text = _NOT_THREATS.sub(" ", _without_names(text, names))
    for found in _THREAT.finditer(text):
        if not _negated(text, found):
            return " ".join(found.group(0).split())
    return None


def refuse_suit_threat(path: str, rendered: Rendered, context: Mapping[str, Any]) -> None:
    """Raise ``SuitThreatOnTimeBarredDebt`` if any part of ``rendered`` threatens legal
    action: the caller asks only for a time-barred debt's message."""
    names = _names(context)
    notices = getattr(context.get("company"), "time_barred_notices", ())
    for part, said in _parts(rendered):
        phrase = threatens_suit(said, names, notices)
        if phrase is not None:
            raise SuitThreatOnTimeBarredDebt(phrase, part, path)


def _parts(rendered: Rendered) -> Iterable[tuple[str, str]]:
    """What the debtor reads or hears of each part. Of an email's HTML, what a mail reader
    shows in any reading of its styles; past what that reads, the whole markup."""
    yield "text", rendered.text
    if rendered.subject:
        yield "subject", rendered.subject
    if rendered.html:
        try:
            readings = shown_texts(rendered.html)
        except Uncheckable:
            readings = [rendered.html]
        for shown in readings:
            yield "html", shown
    if rendered.voicemail:
        yield "voicemail", rendered.voicemail


def _names(context: Mapping[str, Any]) -> list[str]:
    debtor, company = context.get("debtor"), context.get("company")
    said = [getattr(debtor, "name", "")]
    said += [getattr(company, field, "") for field in ("name", "lcm_name", "agent_name")]
    return [name for name in said if isinstance(name, str) and name.strip()]


def _without_notices(text: str, notices: tuple[str, ...]) -> str:
    """``text`` with each verbatim occurrence of a notice taken out, spacing and case
    aside (templates wrap lines, HTML reflows). Each leaves a clause's end: a negation
    before a notice does not govern what follows it."""
    for notice in _notice_patterns(notices):
        text = notice.sub("\n", text)
    return text


@lru_cache(maxsize=16)
def _notice_patterns(notices: tuple[str, ...]) -> tuple[re.Pattern[str], ...]:
    """Each notice as a pattern: its words in order, any run of spacing between them, and
    not within a longer word at either end ("...the clock" is not "...the clockwork")."""
    patterns = []
    for notice in notices:
        words = notice.split()
        if not words:
            continue
        start = r"(?<!\w)" if re.match(r"\w", words[0]) else ""
        end = r"(?!\w)" if re.search(r"\w$", words[-1]) else ""
        spaced = r"\s+".join(re.escape(word) for word in words)
        patterns.append(re.compile(start + spaced + end, re.IGNORECASE))
    return tuple(patterns)


def _without_names(text: str, names: Iterable[str]) -> str:
    """``text`` with each name taken out: the whole name in any case, and each of its words
    as the name writes it ("Hello Sue" is a greeting, "we will sue" is not)."""
    for name in names:
        whole = r"\s+".join(re.escape(word) for word in name.split())
        text = re.sub(rf"\b{whole}\b", " ", text, flags=re.IGNORECASE)
        for word in name.split():
            text = re.sub(rf"(?<!\w){re.escape(word)}(?!\w)", " ", text)
    return text


def _negated(text: str, found: re.Match[str]) -> bool:
    """Whether a negation governs the threat ``found``: before it in its clause, with only
    verb-group words between, or after it in the passive ("will not be taken")."""
    if _NEGATED_AFTER.match(text, found.end()):
        return True
    # The words just before it: a window keeps a long message's many matches linear.
    start = found.start()
    clause = _CLAUSE_END.split(text[max(0, start - _WINDOW) : start])[-1]
    before = _WORD.findall(clause)[::-1]
    for word in before[: _MOST_BETWEEN + 1]:
        lowered = word.lower()
        if lowered in _NEGATIONS or lowered.endswith(("n't", "n’t")):
            return True
        if lowered not in _BETWEEN:
            return False
    return False
