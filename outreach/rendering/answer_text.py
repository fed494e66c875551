"""Whether a rendered answer shows the agent's words whole.

An answer template wraps the words with what every message must carry; it must not drop
or cut them (a ``{{ answer[:50] }}``, a forgotten ``{{ answer }}``): the debtor would get
something other than what the agent wrote, and the conversation would show words that
were never sent. Lint refuses such a template at save
time with the samples' answers, and an answer whose words do not come out whole is
refused before it is queued.

In the HTML body only the words a mail reader shows count: not those of an element with
the ``hidden`` attribute or an inline style that hides it (``display: none``,
``visibility: hidden``, a zero ``font-size`` or ``opacity``, ``max-height: 0`` with its
overflow clipped, Outlook's ``mso-hide: all``), nor those in ``<head>``, ``<script>``,
``<style>``, ``<template>``, ``<title>`` or a comment. Elements are nested as a browser
nests them (a new ``<p>`` or ``<li>`` ends an open one, an unclosed ``<b>`` carries on
into the next paragraph); an element left open hides all that follows it. A class in a
``<style>`` sheet is not read: what it hides counts as shown.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from typing import NamedTuple

from outreach.rendering.render import Rendered


def bodies_missing_answer(rendered: Rendered, answer: str) -> list[str]:
    """The bodies of ``rendered`` ("text", "html") that do not show ``answer`` whole, its
    spacing aside (an email's paragraphs are laid out afresh in HTML)."""
    wanted = _flat(answer)
    missing = [] if wanted in _flat(rendered.text) else ["text"]
    if rendered.html is not None and wanted not in _flat(shown_text(rendered.html)):
        missing.append("html")
    return missing


def shown_text(markup: str) -> str:
    """The words of an HTML body that a mail reader shows, a space for each tag, entities
    decoded; what is hidden (see the module's notes) is left out."""
    parser = _ShownText()
    parser.feed(markup)
    parser.finish()
    return parser.text()


def _flat(text: str) -> str:
    return " ".join(text.split())


# --- inline styles -----------------------------------------------------------------------


def _names(names: str) -> frozenset[str]:
    return frozenset(names.split())


_GLOBAL = frozenset({"inherit", "initial", "unset", "revert", "revert-layer"})
_DISPLAY = _names(
    "block inline run-in flow flow-root table flex grid ruby list-item contents none math "
    "inline-block inline-table inline-flex inline-grid inline-list-item table-row-group "
    "table-header-group table-footer-group table-row table-cell table-column-group "
    "table-column table-caption ruby-base ruby-text ruby-base-container ruby-text-container "
    "-webkit-box -webkit-inline-box -webkit-flex -webkit-inline-flex -moz-box -moz-inline-box "
    "-moz-inline-stack -ms-flexbox -ms-inline-flexbox -ms-grid -ms-inline-grid"
)
_OVERFLOW = frozenset({"visible", "hidden", "clip", "scroll", "auto", "overlay"})
_CLIPPING = frozenset({"hidden", "clip", "scroll", "auto", "overlay"})  # a zero box shows none
_SIZE_KEYWORDS = _names("xx-small x-small small medium large x-large xx-large xxx-large")
_HEIGHT_KEYWORDS = _names(
    "none auto min-content max-content fit-content stretch -webkit-fill-available -moz-available"
)
_FONT_PREFIX = _names(
    "normal italic oblique small-caps bold bolder lighter ultra-condensed extra-condensed "
    "condensed semi-condensed semi-expanded expanded extra-expanded ultra-expanded"
)
_SYSTEM_FONTS = _names("caption icon menu message-box small-caption status-bar")
# Units that size a font from its parent's (a zero stays zero) or from elsewhere.
_RELATIVE_UNITS = frozenset({"em", "ex", "ch", "cap", "ic", "lh", "%"})
_ABSOLUTE_UNITS = _names(
    "px pt pc cm mm q in rem rlh rex rch rcap ric vw vh vi vb vmin vmax svw svh svi svb "
    "svmin svmax lvw lvh lvi lvb lvmin lvmax dvw dvh dvi dvb dvmin dvmax cqw cqh cqi cqb "
    "cqmin cqmax"
)
_NUMBER = r"[+-]?(?:\d+\.?\d*|\.\d+)(?:e[+-]?\d+)?"
_DIMENSION = re.compile(rf"({_NUMBER})([a-z]*|%)")
_NUMBERS = re.compile(_NUMBER)
_FUNCTION = re.compile(r"-?[a-z][a-z0-9-]*\(.*\)", re.DOTALL)
_WEIGHT = re.compile(r"\d+(?:\.\d+)?")
_PROPERTY = re.compile(r"-?[a-z_][a-z0-9_-]*")
_IMPORTANT = re.compile(r"!\s*important\s*$")
_CSS_ESCAPE = re.compile(r"\\(?:([0-9a-f]{1,6})[ \t\n\r\f]?|(.))", re.IGNORECASE | re.DOTALL)


def _inline_style(style: str) -> dict[str, str]:
    """What an inline style declares, as the cascade settles it, for the properties that
    can hide an element: an ``!important`` declaration beats a plain one, the last one
    of a kind wins otherwise, and one a browser would drop (an unknown value) is left out.
    Values are read as "zero", "relative", "absolute" or "other" where sizes matter."""
    settled: dict[str, tuple[str, bool]] = {}
    for name, value, important in _declarations(style):
        read = _READERS.get(name)
        if read is None:
            continue
        target, parse = read
        parsed = parse(value)
        if parsed is None or (target in settled and settled[target][1] and not important):
            continue
        settled[target] = (parsed, important)
    return {name: value for name, (value, _) in settled.items()}


def _declarations(style: str) -> Iterator[tuple[str, str, bool]]:
    """(property, value, important) of each declaration in turn, lower case, spacing
    collapsed; a malformed one is skipped."""
    for chunk in _split_declarations(style):
        name, colon, value = chunk.partition(":")
        name = _unescape_css(name).strip().lower()
        if not colon or not _PROPERTY.fullmatch(name):
            continue
        value = " ".join(_unescape_css(value).lower().split())
        important = _IMPORTANT.search(value)
        if important:
            value = value[: important.start()].rstrip()
        if value:
            yield name, value, important is not None


def _split_declarations(style: str) -> Iterator[str]:
    """The declarations of a style attribute: split at the semicolons outside strings,
    brackets and comments; comments read as a space."""
    chunk: list[str] = []
    quote, depth, index = "", 0, 0
    while index < len(style):
        char = style[index]
        if char == "\\":
            chunk.append(style[index : index + 2])
            index += 2
            continue
        if quote:
            quote = "" if char == quote else quote
        elif style.startswith("/*", index):
            end = style.find("*/", index + 2)
            index = len(style) if end < 0 else end + 2
            chunk.append(" ")
            continue
        elif char in "\"'":
            quote = char
        elif char in "([{":
            depth += 1
        elif char in ")]}":
            depth = max(depth - 1, 0)
        elif char == ";" and not depth:
            yield "".join(chunk)
            chunk = []
            index += 1
            continue
        chunk.append(char)
        index += 1
    yield "".join(chunk)


def _unescape_css(text: str) -> str:
    def one(match: re.Match[str]) -> str:
        if match[1] is None:
            return "" if match[2] == "\n" else match[2]
        code = int(match[1], 16)
        return chr(code) if 0 < code <= 0x10FFFF and not 0xD800 <= code <= 0xDFFF else "\ufffd"

    return _CSS_ESCAPE.sub(one, text)


def _display(value: str) -> str | None:
    words = value.split()
    if value in _GLOBAL or (set(words) <= _DISPLAY and ("none" not in words or len(words) == 1)):
        return value
    return None


def _visibility(value: str) -> str | None:
    return value if value in {"visible", "hidden", "collapse"} | _GLOBAL else None


def _amount(value: str) -> str | None:
    """A length or percentage: "zero", "relative" (to the parent's font), "absolute",
    or None if it is not one; a function (``calc()``) is zero if all its numbers are."""
    dimension = _DIMENSION.fullmatch(value)
    if dimension:
        number, unit = float(dimension[1]), dimension[2]
        if number < 0 or (unit and unit not in _RELATIVE_UNITS | _ABSOLUTE_UNITS):
            return None
        if number == 0:
            return "zero"
        if not unit:
            return None
        return "relative" if unit in _RELATIVE_UNITS else "absolute"
    if _FUNCTION.fullmatch(value):
        numbers = _NUMBERS.findall(value)
        return "zero" if numbers and not any(float(n) for n in numbers) else "relative"
    return None


def _font_size(value: str) -> str | None:
    if value in _SIZE_KEYWORDS or value == "initial":
        return "absolute"
    if value in {"larger", "smaller", "math"} | _GLOBAL:
        return "relative"
    return _amount(value)


def _font(value: str) -> str | None:
    """The font size the ``font`` shorthand sets (``font: 0/0 a`` hides text)."""
    if value in _GLOBAL:
        return _font_size(value)
    if value in _SYSTEM_FONTS:
        return "absolute"
    words = value.replace("/", " / ").split()
    for index, word in enumerate(words):
        if word in _FONT_PREFIX or (_WEIGHT.fullmatch(word) and 1 <= float(word) <= 1000):
            continue
        rest = words[index + 1 :]
        if rest[:1] == ["/"]:
            rest = rest[2:]
        size = _font_size(word)
        return size if rest else None  # a family must follow
    return None


def _height(value: str) -> str | None:
    if value in _GLOBAL or value in _HEIGHT_KEYWORDS or value.startswith("fit-content("):
        return "other"
    amount = _amount(value)
    return None if amount is None else "zero" if amount == "zero" else "other"


def _opacity(value: str) -> str | None:
    if value in _GLOBAL:
        return "other"
    dimension = _DIMENSION.fullmatch(value)
    if dimension and dimension[2] in {"", "%"}:
        return "zero" if float(dimension[1]) <= 0 else "other"
    if _FUNCTION.fullmatch(value):
        numbers = _NUMBERS.findall(value)
        return "zero" if numbers and all(float(n) <= 0 for n in numbers) else "other"
    return None


def _overflow(value: str) -> str | None:
    """The vertical overflow the ``overflow`` shorthand sets (its second word, if any)."""
    words = value.split()
    if value in _GLOBAL:
        return "visible"
    return words[-1] if 1 <= len(words) <= 2 and set(words) <= _OVERFLOW else None


def _overflow_y(value: str) -> str | None:
    return "visible" if value in _GLOBAL else value if value in _OVERFLOW else None


def _mso_hide(value: str) -> str | None:
    return value if value in {"all", "none"} else None


# property: (what it settles, how its value reads)
_READERS: dict[str, tuple[str, Callable[[str], str | None]]] = {
    "display": ("display", _display),
    "visibility": ("visibility", _visibility),
    "opacity": ("opacity", _opacity),
    "font-size": ("font-size", _font_size),
    "font": ("font-size", _font),
    "max-height": ("max-height", _height),
    "height": ("height", _height),
    "overflow": ("overflow-y", _overflow),
    "overflow-y": ("overflow-y", _overflow_y),
    "mso-hide": ("mso-hide", _mso_hide),
}


# --- elements ----------------------------------------------------------------------------


class _Effect(NamedTuple):
    """What an element does to what it contains: ``gone`` hides all of it; ``invisible``
    and ``tiny`` (a zero font size) are passed down until an element says otherwise
    (None: as its parent)."""

    gone: bool = False
    invisible: bool | None = None
    tiny: bool | None = None


class _State(NamedTuple):
    gone: bool = False
    invisible: bool = False
    tiny: bool = False


_SHOWN = _State()
_NOT_SHOWN = _names("head script style template title iframe noembed noframes")
_FONT_SIZE_ATTRIBUTE = re.compile(r"\s*[+-]?\d")


def _effect(tag: str, attrs: list[tuple[str, str | None]]) -> _Effect:
    first: dict[str, str | None] = {}
    for name, value in attrs:
        first.setdefault(name, value)  # a browser keeps an attribute's first value
    style = _inline_style(first.get("style") or "")
    clipped = style.get("overflow-y") in _CLIPPING
    gone = (
        tag in _NOT_SHOWN
        or "hidden" in first
        or style.get("display") == "none"
        or style.get("opacity") == "zero"
        or style.get("mso-hide") == "all"
        or (clipped and "zero" in (style.get("max-height"), style.get("height")))
    )
    visibility = style.get("visibility", "inherit")
    invisible = (
        None if visibility in _GLOBAL - {"initial"} else visibility in {"hidden", "collapse"}
    )
    size = style.get("font-size")
    if size is None and tag == "font" and _FONT_SIZE_ATTRIBUTE.match(first.get("size") or ""):
        size = "absolute"
    tiny = True if size == "zero" else False if size == "absolute" else None
    return _Effect(gone, invisible, tiny)


def _state(parent: _State, effect: _Effect) -> _State:
    return _State(
        parent.gone or effect.gone,
        parent.invisible if effect.invisible is None else effect.invisible,
        parent.tiny if effect.tiny is None else effect.tiny,
    )


@dataclass(eq=False)
class _Element:
    tag: str
    effect: _Effect
    state: _State
    open: bool = True


# The HTML standard's tree building, as far as it decides what an element contains.
_VOID = _names(
    "area base basefont bgsound br col embed frame hr image img input keygen link meta param "
    "source track wbr"
)
_HEADINGS = frozenset({"h1", "h2", "h3", "h4", "h5", "h6"})
_SPECIAL = (
    _names(
        "address applet area article aside base basefont bgsound blockquote body br button "
        "caption center col colgroup dd details dir div dl dt embed fieldset figcaption figure "
        "footer form frame frameset head header hgroup hr html iframe img input keygen li link "
        "listing main marquee menu meta nav noembed noframes noscript object ol p param "
        "plaintext pre script search section select source style summary table tbody td "
        "template textarea tfoot th thead title tr track ul wbr xmp mi mo mn ms mtext "
        "annotation-xml foreignobject desc"
    )
    | _HEADINGS
)
_FORMATTING = _names("a b big code em font i nobr s small strike strong tt u")
_MARKERS = frozenset({"applet", "caption", "marquee", "object", "td", "th", "template"})
_SCOPE = _names(
    "applet caption html table td th marquee object template mi mo mn ms mtext "
    "annotation-xml foreignobject desc"
)
_BUTTON_SCOPE = _SCOPE | {"button"}
_LIST_SCOPE = _SCOPE | {"ol", "ul"}
_TABLE_SCOPE = frozenset({"html", "table", "template"})
_TABLE_PARTS = _names("table caption colgroup tbody thead tfoot tr td th")
# A <table> is left out: in quirks mode, as many emails are, it does not end a <p>.
_ENDS_P = (
    _names(
        "address article aside blockquote center details dialog dir div dl fieldset "
        "figcaption figure footer form header hgroup hr main menu nav ol p pre listing "
        "search section summary ul li dd dt plaintext xmp"
    )
    | _HEADINGS
)
_ROW_GROUPS = {"tbody", "thead", "tfoot", "tr", "td", "th", "caption", "colgroup"}
# A table part's start tag ends the open parts it cannot sit in: (those, where to stop).
_ENDS_TABLE_PARTS: dict[str, tuple[set[str], set[str]]] = {
    "td": ({"td", "th"}, {"tr", "tbody", "thead", "tfoot", "table", "html", "template"}),
    "th": ({"td", "th"}, {"tr", "tbody", "thead", "tfoot", "table", "html", "template"}),
    "tr": ({"tr", "td", "th"}, {"tbody", "thead", "tfoot", "table", "html", "template"}),
    **{part: (_ROW_GROUPS, {"table", "html", "template"})
       for part in ("tbody", "thead", "tfoot", "caption", "colgroup")},
}  # fmt: skip
_HEAD_CONTENT = _names(
    "base basefont bgsound link meta noframes noscript script style template title"
)
_COMMENT_END = re.compile(r"--!?>")


class _ShownText(HTMLParser):
    """Collects the text a mail reader shows, keeping the open elements as a browser
    would: each knows whether it hides what it holds."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self._open: list[_Element] = []
        self._formatting: list[_Element | None] = []  # None: a marker (a cell's start)
        self._words: list[str] = []
        self._in_body = False
        self._head_seen = False
        self._all_hidden = False  # a later <body> or <html> hid the whole document
        self._at_end = False

    def finish(self) -> None:
        self._at_end = True
        self.close()

    def text(self) -> str:
        return "" if self._all_hidden else "".join(self._words)

    # -- tokens --

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._start(tag, attrs, self_closing=False)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._start(tag, attrs, self_closing=True)

    def handle_endtag(self, tag: str) -> None:
        self._words.append(" ")
        if tag in {"html", "body", "br"}:  # what follows stays where it is
            return
        if tag == "head":
            if self._top() == "head":
                self._pop_through(len(self._open) - 1)
            return
        if tag in _FORMATTING:
            self._end_formatting(tag)
            return
        if tag == "p":
            index = self._find({"p"}, _BUTTON_SCOPE)
        elif tag == "li":
            index = self._find({"li"}, _LIST_SCOPE)
        elif tag in _HEADINGS:
            index = self._find(_HEADINGS, _SCOPE)
        elif tag in _TABLE_PARTS:
            index = self._find({tag}, _TABLE_SCOPE)
        elif tag in _SPECIAL:
            index = self._find({tag}, _SCOPE)
        else:
            index = self._find({tag}, _SPECIAL)
        if index is not None:
            self._pop_through(index)

    def handle_data(self, data: str) -> None:
        if self._top() == "head":
            if data.isspace():
                return
            self._pop_through(len(self._open) - 1)
        if self._top() not in _HEAD_CONTENT:
            if not data.isspace():
                self._in_body = True
            self._reconstruct()
        if self._current() == _SHOWN:
            self._words.append(data)

    def handle_comment(self, data: str) -> None:
        self._words.append(" ")

    def handle_decl(self, decl: str) -> None:
        self._words.append(" ")

    def handle_pi(self, data: str) -> None:
        self._words.append(" ")

    def unknown_decl(self, data: str) -> None:
        self._words.append(" ")

    # Markup declarations as a browser reads them: a comment ends at the first "-->" or
    # "--!>" ("<!-->" is an empty one), anything else after "<!" at the next ">"; either
    # runs to the end of the document if it is never closed.

    def parse_comment(self, i: int, report: bool = True) -> int:
        rawdata = self.rawdata
        for empty in ("<!-->", "<!--->"):
            if rawdata.startswith(empty, i):
                self.handle_comment("")
                return i + len(empty)
        end = _COMMENT_END.search(rawdata, i + 4)
        if end is None and not self._at_end:
            return -1
        self.handle_comment("")
        return len(rawdata) if end is None else end.end()

    def parse_html_declaration(self, i: int) -> int:
        if self.rawdata.startswith("<!--", i):
            return self.parse_comment(i)
        end = self.rawdata.find(">", i + 2)
        if end < 0 and not self._at_end:
            return -1
        self.handle_comment("")
        return len(self.rawdata) if end < 0 else end + 1

    # -- the tree --

    def _start(self, tag: str, attrs: list[tuple[str, str | None]], self_closing: bool) -> None:
        self._words.append(" ")
        effect = _effect(tag, attrs)
        if tag == "html":
            if self._open or self._in_body:
                self._merge(effect)
            else:
                self._push(tag, effect)
            return
        if tag == "head":
            if not (self._head_seen or self._in_body or self._top() not in {None, "html"}):
                self._head_seen = True
                self._push(tag, effect)
            return
        if self._top() == "head" and tag not in _HEAD_CONTENT:
            self._pop_through(len(self._open) - 1)
        if tag == "body":
            if self._in_body:
                self._merge(effect)
            else:
                self._in_body = True
                self._push(tag, effect)
            return
        if tag not in _HEAD_CONTENT:
            self._in_body = True
        self._end_implied(tag)
        if tag not in _SPECIAL:
            self._reconstruct()
        if tag in _VOID:
            return
        element = self._push(tag, effect)
        if tag in _FORMATTING:
            self._formatting.append(element)
        if tag in _MARKERS:
            self._formatting.append(None)
        if self_closing and any(open_.tag in {"svg", "math"} for open_ in self._open):
            self._pop_through(len(self._open) - 1)  # <x/> closes only in SVG and MathML

    def _end_implied(self, tag: str) -> None:
        """End the open elements that a ``tag`` starting here ends (an open <li> at a new
        <li>, an open <p> at a block, an open cell at a new cell or row)."""
        if tag in {"li", "dd", "dt"}:
            siblings = {"li"} if tag == "li" else {"dd", "dt"}
            for index in range(len(self._open) - 1, -1, -1):
                name = self._open[index].tag
                if name in siblings:
                    self._pop_through(index)
                    break
                if name in _SPECIAL and name not in {"address", "div", "p"}:
                    break
        if tag in _ENDS_P:
            paragraph = self._find({"p"}, _BUTTON_SCOPE)
            if paragraph is not None:
                self._pop_through(paragraph)
        if tag in _HEADINGS and self._top() in _HEADINGS:
            self._pop_through(len(self._open) - 1)
        if tag in _ENDS_TABLE_PARTS:
            parts, stop = _ENDS_TABLE_PARTS[tag]
            outermost = None
            for index in range(len(self._open) - 1, -1, -1):
                name = self._open[index].tag
                if name in parts:
                    outermost = index
                elif name in stop:
                    break
            if outermost is not None:
                self._pop_through(outermost)

    def _end_formatting(self, tag: str) -> None:
        """An end tag of <b>, <font>, <a>...: what was opened inside it goes on without it
        (the standard's adoption agency, as far as it concerns what is shown)."""
        element = None
        for candidate in reversed(self._formatting):
            if candidate is None:
                break
            if candidate.tag == tag:
                element = candidate
                break
        if element is None:
            index = self._find({tag}, _SPECIAL)
            if index is not None:
                self._pop_through(index)
            return
        if not element.open:
            self._formatting.remove(element)
            return
        index = None
        for position in range(len(self._open) - 1, -1, -1):
            if self._open[position] is element:
                index = position
                break
            if self._open[position].tag in _SCOPE:
                return  # out of scope: ignored
        assert index is not None
        self._formatting.remove(element)
        if any(inner.tag in _SPECIAL for inner in self._open[index + 1 :]):
            element.open = False
            del self._open[index]
            for position in range(index, len(self._open)):
                parent = self._open[position - 1].state if position else _SHOWN
                self._open[position].state = _state(parent, self._open[position].effect)
        else:
            self._pop_through(index)

    def _reconstruct(self) -> None:
        """Reopen the formatting elements that were closed without their end tag (a <b>
        left open at a </p> goes on in the next paragraph)."""
        if not self._formatting or self._formatting[-1] is None or self._formatting[-1].open:
            return
        first = len(self._formatting) - 1
        while first > 0:
            previous = self._formatting[first - 1]
            if previous is None or previous.open:
                break
            first -= 1
        for position in range(first, len(self._formatting)):
            closed = self._formatting[position]
            if closed is not None:
                self._formatting[position] = self._push(closed.tag, closed.effect)

    def _merge(self, effect: _Effect) -> None:
        """A second <html> or <body> adds its attributes to the document's."""
        if effect.gone or effect.invisible or effect.tiny:
            self._all_hidden = True

    def _push(self, tag: str, effect: _Effect) -> _Element:
        element = _Element(tag, effect, _state(self._current(), effect))
        self._open.append(element)
        return element

    def _pop_through(self, index: int) -> None:
        for element in reversed(self._open[index:]):
            element.open = False
            if element.tag in _MARKERS:
                while self._formatting and self._formatting.pop() is not None:
                    pass
        del self._open[index:]

    def _find(self, tags: set[str] | frozenset[str], stop: frozenset[str]) -> int | None:
        """The innermost open element among ``tags``, unless one of ``stop`` is nearer."""
        for index in range(len(self._open) - 1, -1, -1):
            if self._open[index].tag in tags:
                return index
            if self._open[index].tag in stop:
                return None
        return None

    def _top(self) -> str | None:
        return self._open[-1].tag if self._open else None

    def _current(self) -> _State:
        return self._open[-1].state if self._open else _SHOWN
