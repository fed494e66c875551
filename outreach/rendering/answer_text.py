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
``<style>``, ``<template>``, ``<title>`` or a comment. The body is parsed as a browser
parses it (selectolax's Lexbor, which follows the HTML standard's tree construction: a new
``<p>`` or ``<li>`` ends an open one, an unclosed ``<b>`` carries on into the next
paragraph, a second ``<body>`` adds to the first the attributes it lacks); an element left
open hides all that follows it. An inline style is read with tinycss2 and settled as the
cascade settles it: an ``!important`` declaration beats a plain one, the last one wins
otherwise, and one whose value a browser would drop is left out. A class in a ``<style>``
sheet is not read: what it hides counts as shown.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from functools import lru_cache
from typing import Any, NamedTuple

import tinycss2
from selectolax.lexbor import LexborHTMLParser, LexborNode
from tinycss2.ast import (
    Declaration,
    DimensionToken,
    FunctionBlock,
    IdentToken,
    LiteralToken,
    NumberToken,
    ParenthesesBlock,
    PercentageToken,
    WhitespaceToken,
)

from outreach.rendering.render import Rendered

# tinycss2's component values (tokens and blocks); it has no type hints.
_Tokens = list[Any]


def bodies_missing_answer(rendered: Rendered, answer: str) -> list[str]:
    """The bodies of ``rendered`` ("text", "html") that do not show ``answer`` whole, its
    spacing aside (an email's paragraphs are laid out afresh in HTML)."""
    wanted = _flat(answer)
    missing = [] if wanted in _flat(rendered.text) else ["text"]
    if rendered.html is not None and wanted not in _flat(shown_text(rendered.html)):
        missing.append("html")
    return missing


def shown_text(markup: str) -> str:
    """The words of an HTML body that a mail reader shows, a space between two text nodes
    (at each tag the parser keeps), entities decoded; what is hidden (see the module's
    notes) is left out."""
    words: list[str] = []
    root = LexborHTMLParser(markup).root
    # Depth first, without recursion: a template may nest elements deeper than Python may.
    stack: list[tuple[LexborNode, _Inherited]] = [] if root is None else [(root, _Inherited())]
    while stack:
        node, parent = stack.pop()
        if node.is_text_node:
            if not (parent.invisible or parent.tiny):
                words.append(node.text_content or "")
        elif node.is_element_node:  # a comment is neither
            inside = _inside(node.tag or "", node.attributes, parent)
            if inside is not None:
                children = list(node.iter(include_text=True))
                stack.extend((child, inside) for child in reversed(children))
    return " ".join(words)


def _flat(text: str) -> str:
    return " ".join(text.split())


# --- elements ----------------------------------------------------------------------------


class _Inherited(NamedTuple):
    """What an element passes down until an element inside says otherwise."""

    invisible: bool = False  # visibility: hidden or collapse
    tiny: bool = False  # a zero font size


def _names(names: str) -> frozenset[str]:
    return frozenset(names.split())


_NOT_SHOWN = _names("head script style template title iframe noembed noframes")
_CLIPPING = _names("hidden clip scroll auto overlay")  # a zero box shows none
_FONT_SIZE_ATTRIBUTE = re.compile(r"\s*[+-]?\d")  # <font size>: always a size above zero


def _inside(tag: str, attributes: dict[str, str | None], parent: _Inherited) -> _Inherited | None:
    """What an element passes down to what it holds, given what its parent passed down;
    None if it hides all of it."""
    if tag in _NOT_SHOWN or "hidden" in attributes:
        return None
    style = _inline_style(attributes.get("style") or "")
    clipped = style.get("overflow-y") in _CLIPPING
    if (
        style.get("display") == "none"
        or style.get("opacity") == "zero"
        or style.get("mso-hide") == "all"
        or (clipped and "zero" in (style.get("max-height"), style.get("height")))
    ):
        return None
    visibility = style.get("visibility", "inherit")
    size = style.get("font-size")
    if size is None and tag == "font" and _FONT_SIZE_ATTRIBUTE.match(attributes.get("size") or ""):
        size = "absolute"
    return _Inherited(
        invisible=parent.invisible if visibility == "inherit" else visibility == "hidden",
        tiny=parent.tiny if size not in {"zero", "absolute"} else size == "zero",
    )


# --- inline styles -----------------------------------------------------------------------


@lru_cache(maxsize=1024)  # an email repeats its styles; tinycss2 takes most of the time
def _inline_style(style: str) -> Mapping[str, str]:
    """What an inline style declares, as the cascade settles it, for the properties that
    can hide an element (see ``_READERS`` for the values each settles to)."""
    settled: dict[str, tuple[str, bool]] = {}
    for declaration in tinycss2.parse_blocks_contents(
        style, skip_comments=True, skip_whitespace=True
    ):
        if not isinstance(declaration, Declaration) or declaration.lower_name not in _READERS:
            continue  # a parse error, a nested rule, a property that hides nothing
        target, read = _READERS[declaration.lower_name]
        tokens = [token for token in declaration.value if not isinstance(token, WhitespaceToken)]
        value = read(tokens) if tokens else None
        important = bool(declaration.important)
        if value is None or (target in settled and settled[target][1] and not important):
            continue
        settled[target] = (value, important)
    return {name: value for name, (value, _) in settled.items()}


_GLOBAL = _names("inherit initial unset revert revert-layer")
_DISPLAY = _names(
    "block inline run-in flow flow-root table flex grid ruby list-item contents math "
    "inline-block inline-table inline-flex inline-grid inline-list-item table-row-group "
    "table-header-group table-footer-group table-row table-cell table-column-group "
    "table-column table-caption ruby-base ruby-text ruby-base-container ruby-text-container "
    "-webkit-box -webkit-inline-box -webkit-flex -webkit-inline-flex -moz-box -moz-inline-box "
    "-moz-inline-stack -ms-flexbox -ms-inline-flexbox -ms-grid -ms-inline-grid"
)
_OVERFLOW = _names("visible hidden clip scroll auto overlay")
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
_RELATIVE_UNITS = _names("em ex ch cap ic lh %")
_ABSOLUTE_UNITS = _names(
    "px pt pc cm mm q in rem rlh rex rch rcap ric vw vh vi vb vmin vmax svw svh svi svb "
    "svmin svmax lvw lvh lvi lvb lvmin lvmax dvw dvh dvi dvb dvmin dvmax cqw cqh cqi cqb "
    "cqmin cqmax"
)
# Functions that compute a number or a length (var() and env() substitute one).
_MATH_FUNCTIONS = _names("calc min max clamp round mod rem abs sign -webkit-calc -moz-calc var env")


def _keywords(tokens: _Tokens) -> list[str] | None:
    """The value's keywords, lower case, or None if it is not only keywords."""
    if all(isinstance(token, IdentToken) for token in tokens):
        return [str(token.lower_value) for token in tokens]
    return None


def _keyword(tokens: _Tokens) -> str | None:
    """The keyword that is the whole value, lower case."""
    words = _keywords(tokens)
    return words[0] if words and len(words) == 1 else None


def _numbers(tokens: _Tokens) -> Iterator[float]:
    """The numbers in a function's arguments, nested ones included."""
    for token in tokens:
        if isinstance(token, NumberToken | PercentageToken | DimensionToken):
            yield float(token.value)
        elif isinstance(token, FunctionBlock):
            yield from _numbers(token.arguments)
        elif isinstance(token, ParenthesesBlock):
            yield from _numbers(token.content)


def _math(token: Any) -> bool:
    return isinstance(token, FunctionBlock) and token.lower_name in _MATH_FUNCTIONS


def _display(tokens: _Tokens) -> str | None:
    words = _keywords(tokens)
    if words == ["none"]:
        return "none"
    if words and ((len(words) == 1 and words[0] in _GLOBAL) or set(words) <= _DISPLAY):
        return "shown"
    return None


def _visibility(tokens: _Tokens) -> str | None:
    """ "hidden", "visible", or "inherit" (the parent's)."""
    word = _keyword(tokens)
    if word in {"hidden", "collapse"}:
        return "hidden"
    if word in {"visible", "initial"}:
        return "visible"
    return "inherit" if word in _GLOBAL else None


def _amount(token: Any) -> str | None:
    """A length or percentage: "zero", "relative" (to the parent's font), "absolute",
    or None if it is not one; a function (``calc()``) is zero if all its numbers are."""
    if _math(token):
        numbers = list(_numbers(token.arguments))
        return "zero" if numbers and not any(numbers) else "relative"
    if isinstance(token, NumberToken):  # without a unit only a zero is a length
        return "zero" if token.value == 0 else None
    if isinstance(token, PercentageToken):
        unit = "%"
    elif isinstance(token, DimensionToken):
        unit = str(token.lower_unit)
    else:
        return None
    if token.value < 0 or unit not in _RELATIVE_UNITS | _ABSOLUTE_UNITS:
        return None
    if token.value == 0:
        return "zero"
    return "relative" if unit in _RELATIVE_UNITS else "absolute"


def _size(token: Any) -> str | None:
    """A font size: "zero", "relative", "absolute", or None if it is not one."""
    if isinstance(token, IdentToken):
        if token.lower_value in _SIZE_KEYWORDS | {"initial"}:
            return "absolute"
        return "relative" if token.lower_value in _GLOBAL | {"larger", "smaller", "math"} else None
    return _amount(token)


def _font_size(tokens: _Tokens) -> str | None:
    return _size(tokens[0]) if len(tokens) == 1 else None


def _font(tokens: _Tokens) -> str | None:
    """The font size the ``font`` shorthand sets (``font: 0/0 a`` hides text)."""
    word = _keyword(tokens)
    if word in _GLOBAL:
        return _size(tokens[0])
    if word in _SYSTEM_FONTS:
        return "absolute"
    for index, token in enumerate(tokens):
        if isinstance(token, IdentToken) and token.lower_value in _FONT_PREFIX:
            continue  # a style, variant, weight or stretch
        if isinstance(token, NumberToken) and 1 <= token.value <= 1000:
            continue  # a weight
        rest = tokens[index + 1 :]
        if rest and isinstance(rest[0], LiteralToken) and rest[0].value == "/":
            rest = rest[2:]  # the line height
        return _size(token) if rest else None  # a family must follow
    return None


def _height(tokens: _Tokens) -> str | None:
    """ "zero", "other", or None."""
    if len(tokens) != 1:
        return None
    token = tokens[0]
    if isinstance(token, IdentToken):
        return "other" if token.lower_value in _GLOBAL | _HEIGHT_KEYWORDS else None
    if isinstance(token, FunctionBlock) and token.lower_name == "fit-content":
        return "other"
    amount = _amount(token)
    return None if amount is None else "zero" if amount == "zero" else "other"


def _opacity(tokens: _Tokens) -> str | None:
    """ "zero", "other", or None."""
    if len(tokens) != 1:
        return None
    token = tokens[0]
    if isinstance(token, IdentToken):
        return "other" if token.lower_value in _GLOBAL else None
    if isinstance(token, NumberToken | PercentageToken):
        return "zero" if token.value <= 0 else "other"
    if _math(token):
        numbers = list(_numbers(token.arguments))
        return "zero" if numbers and all(number <= 0 for number in numbers) else "other"
    return None


def _overflow(tokens: _Tokens) -> str | None:
    """The vertical overflow the ``overflow`` shorthand sets (its second word, if any)."""
    words = _keywords(tokens)
    if words is None:
        return None
    if len(words) == 1 and words[0] in _GLOBAL:
        return "visible"
    return words[-1] if 1 <= len(words) <= 2 and set(words) <= _OVERFLOW else None


def _overflow_y(tokens: _Tokens) -> str | None:
    return _overflow(tokens) if len(tokens) == 1 else None


def _mso_hide(tokens: _Tokens) -> str | None:
    word = _keyword(tokens)
    return word if word in {"all", "none"} else None


# property: (what it settles, how its value reads)
_READERS: dict[str, tuple[str, Callable[[_Tokens], str | None]]] = {
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
