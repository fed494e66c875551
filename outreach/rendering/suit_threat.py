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
threat standing. It carries through a list of threats ("we will not sue, garnish or take
legal action") but not to a threat that opens a new subject ("we did not sue you, the
garnishment starts Monday"). It promises nothing, and the threat stands, when a subject of
its own or a need stands between it and the threat ("if you do not, we will sue", "so we
do not have to sue you"), when a doubt or a payment asked for comes before it in its
clause ("we may or may not sue you", "pay today and we will not sue you"), or when the
threat is said to be still to come: "yet", a condition or a time ("if you pay today",
"for now", "si paga hoy"), "but we will", a next sentence opening "But". On the debtor's
side where unsure: a lawful statement refused costs a rewording, a threat read as negated
breaks the law. A line break is a space (text
wraps, HTML source is laid out); a blank line ends a clause. A list cannot know every way
to threaten: templates for time-barred debts are still to be written without one
(docs/templates.md, "Time-barred debts").

Some states mandate a notice that does describe suit (New York's, 23 NYCRR 1.3: "If a
creditor sues you..."): the wordings counsel approved, ``company.yaml``'s
``time_barred_notices``, are taken out of a message where they occur verbatim (spacing and
case aside) before it is read; the rest of the message is read as any other.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
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
_LAWYERS = r"(?:attorneys?|lawyers?|law\s+firms?|legal\s+(?:department|team|counsel))"
_THREATS: tuple[str, ...] = (
    # English
    r"su(?:e|es|ed|ing)",  # sue, sues, sued, suing
    r"lawsuits?",
    r"(?:file[sd]?|filing|bring|brings|bringing|brought)\s+suit",
    r"legal\s+(?:actions?|proceedings?|steps|measures|recourse|remed(?:y|ies))",
    r"court\s+(?:actions?|proceedings?|orders?)",
    r"(?:take|takes|taking|took|taken)\s+(?:\w+\s+){0,2}?to\s+court",  # "take you to court"
    r"(?:see|meet)\s+you\s+in\s+court",
    r"(?:go|goes|going|went|gone)\s+to\s+court",
    r"(?:in|through)\s+(?:the\s+)?courts?",  # "pursue this matter in court"
    r"proceedings?\s+against\s+you",
    r"small[\s-]+claims",
    r"(?:file[sd]?|filing)\s+(?:a\s+|an\s+)?(?:claim|complaint|case|action)\s+against\s+you",
    r"judge?ments?",
    r"garnish\w*",
    r"liens?",
    r"litigat\w*",
    # A referral to lawyers for collection: "we will refer your account to our attorneys".
    # "forwarded to a collections attorney", "now with our collection attorney".
    r"(?:refer|send|sent|turn|forward|pass|hand|assign|transfer|place)\w*\b[^.!?;\n]{0,40}?"
    r"\b(?:to|with)\s+(?:(?:our|an?|the|outside|collections?)\s+)*" + _LAWYERS,
    r"our\s+(?:[\w’'-]+\s+)?" + _LAWYERS,
    r"collections?\s+" + _LAWYERS,
    # Spanish. Only Spanish forms of "demandar": English "demand", "demands", "demanded",
    # "demanding" ("our final demand for payment") are not threats.
    r"demand(?!ed\b)[aeéoó]\w*",  # demanda, demandar, demandarle, demandaremos, demandado
    r"acci(?:ón|on|ones)\s+(?:legal(?:es)?|judicial(?:es)?)",
    r"medidas?\s+(?:legal(?:es)?|judicial(?:es)?)",
    r"v[ií]as?\s+judicial(?:es)?",  # "por la vía judicial"
    r"cobros?\s+judicial(?:es)?",
    r"(?:procesos?|procedimientos?)\s+(?:judicial(?:es)?|legal(?:es)?)",
    r"juicios?",
    r"tribunal(?:es)?",
    r"cortes?",
    r"embarg\w*",  # embargo, embargar, embargaremos
    r"litigi\w*",
    r"abogad[oa]s",
    r"nuestr[oa]s?\s+abogad[oa]s?",
    # A referral to a lawyer: "su cuenta pasó a un abogado", "enviada a un abogado".
    r"(?:pas|envi|turn|remit|transf|deriv|entreg|asign|refer)\w*\b[^.!?;\n]{0,40}?"
    r"\b(?:a|al|con)\s+(?:(?:un|una|el|la|nuestr[oa]s?|su|sus)\s+)?abogad[oa]s?",
    r"departamento\s+(?:legal|jur[ií]dico)",
)
_THREAT = re.compile(r"\b(?:" + "|".join(_THREATS) + r")\b", re.IGNORECASE)

# Wording that holds a threat's word without being one: statements of the law in the
# notices states require on time-barred debts, Spanish's "however", and a utility's cut-off
# of a service ("corte de luz"), which is no court.
_NOT_THREATS = re.compile(
    r"\b(?:how\s+long\s+(?:you\s+)?can\s+be\s+sued"
    r"|(?:time\s+limit|statute\s+of\s+limitations?)(?:\s+\([^)\n]{0,200}\))?\s+for\s+suing"
    r"|tiempo\s+(?:durante\s+el\s+cual\s+|en\s+(?:el\s+)?que\s+|que\s+)?"
    r"(?:se\s+le\s+puede|le\s+pueden|usted\s+puede\s+ser)\s+demand(?:ar|ad[oa])\w*"
    r"|cortes?\s+(?:de\s+|del\s+|al\s+|en\s+)(?:(?:la|el|los|las|su|sus|tu|tus)\s+)?"
    r"(?:servicios?|luz|agua|gas|energ[ií]a|el[eé]ctric[oa]|electricidad|suministros?|"
    r"internet|tel[eé]fonos?|telefon[ií]a|l[ií]neas?|cable|se[ñn]al|cuenta)"
    r"|fechas?\s+de\s+cortes?"
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
    plans able we us further also legally our intention allowed permitted allow allows
    permit permits
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
# A clause ends at punctuation: "No, we will sue you" is not negated. A line break is a
# space (text wraps, HTML source is laid out): only a blank line ends a clause.
_CLAUSE_END = re.compile(r"[.,;:!?¡¿()\[\]\"“”\n]")
_SENTENCE_END = re.compile(r"[.;!?\n]")
# From a line break only: a long run of spaces is not tried at each of its characters.
_BLANK_LINE = re.compile(r"\n(?:[^\S\n]*\n)+")
_WORD = re.compile(r"[\w’']+")
# Characters a reader does not see, which would split a word: "su&#8203;e" reads "sue".
_UNSEEN = dict.fromkeys(map(ord, "\u00ad\u200b\u200c\u200d\u2060\ufeff"))
# After a negated threat in its sentence, words that say it is still to come: "no lawsuit
# has been filed yet", "no le hemos demandado todavía", "we have not sued you, but we
# will", "but one will be if you do not pay".
_STILL_TO_COME = re.compile(
    r"\b(?:yet|todav[ií]a|aún)\b"
    r"|\bbut\b.*?\b(?:will|may|might|could|can|shall|would|must|[’']ll)\b"
    r"(?:\s+(?:be|do|so|too|still|soon|later))*\s*"
    r"(?:$|[,:]|\b(?:if|unless|when|once|should|after|before|in)\b)"
    r"|\bpero\b.*?\b(?:lo\s+har(?:emos|é|á|án)|s[ií])\b"
    r"|\bbut\b.*?\b(?:follows?|following|comes?|coming)\b"
    # A negation for now or on a condition: "we will not sue you if you pay today".
    r"|\b(?:if|unless|until|till|as\s+long\s+as|so\s+long\s+as|provided|for\s+now|"
    r"at\s+(?:this|the\s+moment|present)|for\s+the\s+time\s+being|going\s+to|however|"
    r"although|though|so\s+far|to\s+date|as\s+of\s+(?:now|today)|right\s+now|today|this\s+(?:week|month|year|time)|"
    r"si|mientras|hoy|ahora|a\s+menos\s+que|hasta|por\s+ahora|por\s+el\s+momento|"
    r"siempre\s+(?:y\s+)?cuando|con\s+tal\s+(?:de\s+)?que)\b",
    re.IGNORECASE,
)
# A next sentence that takes the negation back: "We haven't sued you. But we will."
_TAKEN_BACK = re.compile(r"[^\S\n]*(?:but|yet|however|pero|todav[ií]a|aún)\b", re.IGNORECASE)
# Before a negation, words that make it "not yet": "todavía no le demandamos".
_STILL = _words("todavía todavia aún")
# What may open a clause that tells the reader what not to do: "(please) do not allow us
# to sue you" is "don't make us sue you", a threat.
_BIDDING = _words("please just so and then")
# What may join threats a negation carries through as a list: "we will not sue, garnish
# or take legal action". Not a subject or a verb of its own ("we will not sue you, and we
# will take legal action" is a threat), nor a blank line.
_LIST_GAP = re.compile(
    r"(?:[^\S\n]|,|\b(?:and|or|nor|y|o|u|ni|take|bring|file|start|begin|initiate|pursue|seek|"
    r"any|you|to|tomar|iniciar|presentar|llevar|le|les|lo)\b)*",
    re.IGNORECASE,
)


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
    (the debtor's full and first names, the company's) are people and businesses, not
    words: where one is written whole, as given, it is not read ("Hello Sue"). ``notices``
    are the approved notices on time-barred debts: where one occurs verbatim it is not
    read."""
    text = _without_notices(_spaced(text), tuple(notices))
    text = _NOT_THREATS.sub(" ", _without_names(text, names))
    carried: re.Match[str] | None = None  # the last threat a negation governs
    for found in _THREAT.finditer(text):
        listed = carried is not None and _LIST_GAP.fullmatch(text, carried.end(), found.start())
        if not (listed or _negated(text, found)) or _still_to_come(text, found):
            return " ".join(found.group(0).split())
        carried = found
    return None


def _spaced(text: str) -> str:
    """``text`` as it reads: each run of spacing within a paragraph one space, a blank
    line a line break (a clause's end), characters no one sees left out."""
    paragraphs = _BLANK_LINE.split(text.translate(_UNSEEN))
    return "\n".join(" ".join(paragraph.split()) for paragraph in paragraphs)


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
    return message_parts(rendered.text, rendered.subject, rendered.html, rendered.voicemail)


def message_parts(
    text: str, subject: str | None, html: str | None, voicemail: str | None
) -> Iterator[tuple[str, str]]:
    """What the debtor reads or hears of a message, part by part: its text, an email's
    subject, what a mail reader shows of its HTML in any reading of its styles (a word
    split by inline tags whole; past what that reads, the whole markup), a call's
    voicemail. Lazily: a later part is read only if the earlier ones pass."""
    yield "text", text
    if subject:
        yield "subject", subject
    if html:
        try:
            readings = shown_texts(html, words_whole=True)
        except Uncheckable:
            readings = [html]
        for shown in readings:
            yield "html", shown
    if voicemail:
        yield "voicemail", voicemail


def _names(context: Mapping[str, Any]) -> list[str]:
    return said_names(getattr(context.get("debtor"), "name", ""), context.get("company"))


def said_names(debtor_name: str, company: Any) -> list[str]:
    """The names a message may write: the debtor's full name and first name (as
    ``build_context`` greets them), the company's names. Longest first, so a full name
    goes whole before its first name."""
    words = (debtor_name or "").split()
    said = [debtor_name or "", words[0] if words else ""]
    said += [getattr(company, field, "") for field in ("name", "lcm_name", "agent_name")]
    names = [name for name in said if isinstance(name, str) and name.strip()]
    return sorted(names, key=len, reverse=True)


def _without_notices(text: str, notices: tuple[str, ...]) -> str:
    """``text`` with each verbatim occurrence of a notice taken out, spacing and case
    aside (templates wrap lines, HTML reflows). Each leaves a clause's end: a negation
    before a notice does not govern what follows it."""
    pattern = _notice_pattern(notices)
    # A full stop between line breaks: no negation before a notice, nor a passive one
    # after it ("... will not be taken"), reaches across it.
    return text if pattern is None else pattern.sub("\n.\n", text)


@lru_cache(maxsize=16)
def _notice_pattern(notices: tuple[str, ...]) -> re.Pattern[str] | None:
    """The notices as one pattern, longest first (one notice within a longer one takes
    out the longer one whole, whatever their order in the file): each notice's words in
    order, any run of spacing between them, and not within a longer word at either end
    ("...the clock" is not "...the clockwork")."""
    alternatives = []
    for notice in sorted(notices, key=lambda notice: len(" ".join(notice.split())), reverse=True):
        words = notice.split()
        if not words:
            continue
        start = r"(?<!\w)" if re.match(r"\w", words[0]) else ""
        end = r"(?!\w)" if re.search(r"\w$", words[-1]) else ""
        alternatives.append(start + r"\s+".join(re.escape(word) for word in words) + end)
    if not alternatives:
        return None
    return re.compile("|".join(f"(?:{one})" for one in alternatives), re.IGNORECASE)


def _without_names(text: str, names: Iterable[str]) -> str:
    """``text`` with each name taken out, whole and as it is written ("Hello Sue" is a
    greeting, "we will sue" is not). Never a word of a name alone: with a company called
    Legal Recovery Partners, "legal action" is still a threat, and so is "a Lien" to a
    debtor surnamed Lien."""
    for name in names:
        whole = r"\s+".join(re.escape(word) for word in name.split())
        text = re.sub(rf"(?<!\w){whole}(?!\w)", " ", text)
    return text


def _negated(text: str, found: re.Match[str]) -> bool:
    """Whether a negation governs the threat ``found``: before it in its clause, with only
    verb-group words between, or after it in the passive ("will not be taken")."""
    if _NEGATED_AFTER.match(text, found.end()):
        return True
    # The words just before it: a window keeps a long message's many matches linear.
    start = found.start()
    clause = _CLAUSE_END.split(text[max(0, start - _WINDOW) : start])[-1]
    before = [word.lower() for word in _WORD.findall(clause)[::-1]]
    for at, word in enumerate(before[: _MOST_BETWEEN + 1]):
        if word in _NEGATIONS or word.endswith(("n't", "n’t")):
            return not (
                _STILL.intersection(before[at + 1 : at + 2])
                or _bids(before, at)
                or _not_the_threats(before, at)
            )
        if word not in _BETWEEN:
            return False
    return False


# Between a negation and its threat, words that make the threat the point: a subject of
# its own ("if you do not, we will sue"), a need ("so we do not have to sue you").
_NEW_SUBJECT = _words("we you i they he she it nosotros ustedes")
_NEED = _words("have has had need needs needed tener tengamos tenga tengan")
# Before a negation in its clause, words that make it no promise: "we may or may not sue
# you", "whether or not to sue", "if you do not...", "so we don't have to", "we can't
# promise that we won't sue you", "if you want us not to sue you", and a payment asked
# for ("pay today and we will not sue you": else we will).
_UNSURE = _words(
    "or whether if so unless guarantee guaranteed promise promised sure certain say "
    "saying said want wants si garantizar garantizamos prometer prometemos quiere quieres "
    "pay pays paid paying payment pague paga pagar pago pagos pagas"
)


def _not_the_threats(before: list[str], at: int) -> bool:
    """Whether the negation at ``before[at]`` (the clause's words, last first) is not one
    of the threat's: a new subject or a need between them, or a doubt or a payment asked
    for before it in its clause."""
    between = before[:at]
    if _NEW_SUBJECT.intersection(between) or _NEED.intersection(between):
        return True
    return bool(_UNSURE.intersection(before[at + 1 :]))


def _bids(before: list[str], at: int) -> bool:
    """Whether the negation at ``before[at]`` (the clause's words, last first) tells the
    reader what not to do: "do not" or "don't" opening the clause."""
    if before[at] == "not" and before[at + 1 : at + 2] == ["do"]:
        at += 1
    elif before[at] not in {"don't", "don’t"}:
        return False
    return set(before[at + 1 :]) <= _BIDDING


def _still_to_come(text: str, found: re.Match[str]) -> bool:
    """Whether the rest of the threat's sentence says it is still to come ("yet", "but
    we will"): then no negation clears it."""
    after = text[found.end() : found.end() + _WINDOW]
    rest, *following = _SENTENCE_END.split(after, maxsplit=1)
    if _STILL_TO_COME.search(rest) is not None:
        return True
    return bool(following) and _TAKEN_BACK.match(following[0]) is not None
