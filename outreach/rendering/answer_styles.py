"""The CSS that decides whether an element of an answer email shows its words, for
answer_text.py: the element's inline style, the rules of the document's ``<style>`` sheets
that match it, and its presentational attributes (``bgcolor``, ``<font color>``), settled
as the cascade settles them.

Only the properties that can hide words are read, each to a small value (``_READERS``).
A declaration whose value a browser would drop is left out. The cascade: an
``!important`` declaration beats a plain one; then the inline style beats the sheets, a
sheet rule of higher specificity beats one of lower, a sheet beats an attribute; then the
later one wins (a later sheet's rule over all of an earlier sheet's). Sheets are read with
tinycss2 and matched with selectolax's selector engine (Lexbor), once per document; a
selector Lexbor cannot read matches nothing, and one that needs a state (``:hover``)
matches as if it were not in it.

A sheet in a ``@media`` (or ``@supports``, ``@container``, ``@layer``) block, or in a
``<style media=…>``, may or may not apply (a phone's narrow screen, a dark mode), so each
condition is a reading of its own: the rules outside all blocks plus those of every block
with that condition (blocks nested in them included), which apply together. Conditions
are compared as written, spacing and case aside, and in a @media condition an absolute
length in any unit: ``(max-width:600px)`` is ``( MAX-WIDTH: 600px )``,
``<style media="(max-width: 600px)">`` and ``(max-width: 450pt)``, but not
``(max-width: 37.5em)`` (an em there is the reader's default font size, 16px only by
default), nor ``(width <= 600px)`` or ``screen and (max-width: 600px)``. Different
conditions that may hold at once (a narrow screen in dark mode) are not combined: each is
checked on its own. Each reading is a pass over the page, so at most ``MAX_CONDITIONS``
conditions that style an element are checked; beyond, ``StyleSheets`` raises
``Uncheckable``. Other at-rules (``@font-face``,
``@import``) and nested rules are skipped, as are external sheets.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from fractions import Fraction
from functools import lru_cache
from typing import Any, NamedTuple

import tinycss2
from selectolax.lexbor import LexborHTMLParser, LexborNode, SelectolaxError
from tinycss2 import color4
from tinycss2.ast import (
    AtRule,
    Declaration,
    DimensionToken,
    FunctionBlock,
    HashToken,
    IdentToken,
    LiteralToken,
    NumberToken,
    ParenthesesBlock,
    PercentageToken,
    QualifiedRule,
    SquareBracketsBlock,
    URLToken,
    WhitespaceToken,
)

# tinycss2's component values (tokens and blocks); it has no type hints.
_Tokens = list[Any]
RGBA = tuple[float, float, float, float]  # channels 0-255, alpha 0-1
# A settled property: a keyword of the readers below, a length in px, or a colour.
Value = str | float | RGBA
Style = Mapping[str, Value]
_Specificity = tuple[int, int, int]
# The cascade's order: (important, source (0 attribute, 1 sheet, 2 inline), specificity,
# sheet (its number in the document), order (in the sheet, or in the inline style))
_Rank = tuple[bool, int, _Specificity, int, int]
_Declared = tuple[_Rank, str, Value]
_NONE: _Specificity = (0, 0, 0)
# How many conditions (``@media`` and the like) are checked, each a reading of the page.
MAX_CONDITIONS = 32


class Uncheckable(ValueError):
    """The sheets have more conditions that style an element than are checked."""

    def __init__(self, conditions: int) -> None:
        super().__init__(
            f"too many @media blocks to check: {conditions} (at most {MAX_CONDITIONS})"
        )
        self.conditions = conditions


class StyleSheets:
    """The ``<style>`` sheets of one parsed document, matched to its elements once.

    ``readings`` is how many ways a mail reader may apply them: the first with the rules
    outside any ``@media``-like block, then one per condition whose blocks style an
    element. Raises ``Uncheckable`` past ``MAX_CONDITIONS`` such conditions."""

    def __init__(self, tree: LexborHTMLParser) -> None:
        reading_of: dict[str, int] = {}  # by condition
        matches: dict[str, list[int]] = {}  # a selector's elements: sheets repeat selectors
        # What a selector of a rule brings to the elements it matches: its reading and its
        # declarations, each ranked.
        self._brought: list[tuple[int, tuple[_Declared, ...]]] = []
        brought: dict[int, list[int]] = {}  # by element (mem_id)
        for sheet, element in enumerate(tree.css("style")):
            kind = (element.attributes.get("type") or "text/css").split(";")[0].strip().lower()
            if kind not in {"", "text/css"}:
                continue  # a browser reads no other type
            media = (element.attributes.get("media") or "all").strip()
            whole = "" if media.lower() in {"", "all"} else _condition("media", media)
            for rule in _sheet(element.text(deep=True)):
                condition = whole or rule.condition
                if len(reading_of) > MAX_CONDITIONS and (not condition or condition in reading_of):
                    continue  # refused below: only the conditions are still counted
                for selector, specificity in rule.selectors:
                    if selector not in matches:
                        try:
                            matches[selector] = [node.mem_id for node in tree.css(selector)]
                        except SelectolaxError:
                            matches[selector] = []
                    if not matches[selector]:
                        continue
                    reading = 0
                    if condition:
                        reading = reading_of.setdefault(condition, len(reading_of) + 1)
                        if len(reading_of) > MAX_CONDITIONS:
                            break
                    self._brought.append((reading, tuple(
                        ((important, 1, specificity, sheet, order), target, value)
                        for order, target, value, important in rule.declarations
                    )))  # fmt: skip
                    for mem_id in matches[selector]:
                        brought.setdefault(mem_id, []).append(len(self._brought) - 1)
        if len(reading_of) > MAX_CONDITIONS:
            raise Uncheckable(len(reading_of))
        self.readings = 1 + len(reading_of)
        # Elements that match the same rules share their styles: each set is numbered.
        sets: dict[tuple[int, ...], int] = {}
        self._matched = {
            mem_id: sets.setdefault(tuple(found), len(sets)) for mem_id, found in brought.items()
        }
        self._sets = list(sets)
        self._styles: dict[tuple[int, str, tuple[_Declared, ...]], tuple[Style, ...]] = {}

    def styles(
        self, node: LexborNode, tag: str, attributes: Mapping[str, str | None]
    ) -> tuple[Style, ...]:
        """The element's settled style in each reading (the same object where a reading's
        blocks do not change it). Elements that match the same rules, with the same
        inline style and attributes, get the same tuple."""
        inline = attributes.get("style") or ""
        hints = _hints(tag, attributes)
        key = (self._matched.get(node.mem_id, -1) if self._matched else -1, inline, hints)
        styles = self._styles.get(key)
        if styles is None:
            styles = self._styles[key] = self._settled(key[0], inline, hints)
        return styles

    def _settled(
        self, matched: int, inline: str, hints: tuple[_Declared, ...]
    ) -> tuple[Style, ...]:
        if matched < 0:
            style = _settled(hints + _inline(inline)) if hints else _inline_style(inline)
            return (style,) * self.readings
        base = list(hints + _inline(inline))
        extra: dict[int, list[_Declared]] = {}
        for number in self._sets[matched]:  # grouped by reading, in one pass
            reading, declared = self._brought[number]
            (extra.setdefault(reading, []) if reading else base).extend(declared)
        first = _settle(base)
        styles: list[Style] = [first] * self.readings
        for reading, more in extra.items():
            style = _settle(base + more)
            styles[reading] = first if style == first else style
        return tuple(styles)


def _settle(declared: Iterable[_Declared]) -> dict[str, Value]:
    style: dict[str, Value] = {}
    for _, target, value in sorted(declared, key=lambda item: item[0]):
        style[target] = value  # the higher rank comes later and wins
    return style


@lru_cache(maxsize=1024)  # most elements have only attributes and an inline style
def _settled(declared: tuple[_Declared, ...]) -> Style:
    return _settle(declared)


@lru_cache(maxsize=1024)
def _inline_style(style: str) -> Style:
    return _settle(_inline(style))


@lru_cache(maxsize=1024)  # an email repeats its styles; tinycss2 takes most of the time
def _inline(style: str) -> tuple[_Declared, ...]:
    return tuple(
        ((important, 2, _NONE, 0, order), target, value)
        for order, target, value, important in _declarations(style)
    )


def _declarations(content: str | _Tokens) -> list[tuple[int, str, Value, bool]]:
    """(order, target, value, important) of each declaration that can hide words."""
    found: list[tuple[int, str, Value, bool]] = []
    for declaration in tinycss2.parse_blocks_contents(
        content, skip_comments=True, skip_whitespace=True
    ):
        if not isinstance(declaration, Declaration) or declaration.lower_name not in _READERS:
            continue  # a parse error, a nested rule, a property that hides nothing
        tokens = [token for token in declaration.value if not isinstance(token, WhitespaceToken)]
        values = _READERS[declaration.lower_name](tokens) if tokens else None
        for target, value in (values or {}).items():
            found.append((len(found), target, value, bool(declaration.important)))
    return found


# --- attributes --------------------------------------------------------------------------


_FONT_SIZE_ATTRIBUTE = re.compile(r"\s*[+-]?\d")
# The attributes that style each element (HTML's presentational hints).
_HINTED = {
    "font": ("size", "color"),
    "a": ("href",),
    "body": ("text", "bgcolor", "background"),
    **dict.fromkeys(("table", "tr", "td", "th"), ("bgcolor", "background")),
}


def _hints(tag: str, attributes: Mapping[str, str | None]) -> tuple[_Declared, ...]:
    names = _HINTED.get(tag)
    if names is None or attributes.keys().isdisjoint(names):
        return ()
    return _attribute_hints(tag, tuple(attributes.get(name) for name in names))


@lru_cache(maxsize=1024)
def _attribute_hints(tag: str, values: tuple[str | None, ...]) -> tuple[_Declared, ...]:
    """What the element's attributes (``_HINTED[tag]``, in order) style, below any sheet."""
    given = dict(zip(_HINTED[tag], values, strict=True))
    hints: dict[str, Value] = {}
    if _FONT_SIZE_ATTRIBUTE.match(given.get("size") or ""):
        hints["font-size"] = "absolute"  # always a size above zero
    if "href" in given and given["href"] is not None:
        hints["color"] = "unknown"  # the reader's link colour
    for name, target in (("color", "color"), ("text", "color"), ("bgcolor", "background-color")):
        color = _legacy_color(given.get(name) or "")
        if color is not None:
            hints[target] = color
    if (given.get("background") or "").strip():
        hints["background-image"] = "image"
    return tuple(((False, 0, _NONE, 0, 0), target, value) for target, value in hints.items())


def _legacy_color(value: str) -> Value | None:
    """HTML's colour attributes: a name or #hex as in CSS, hex without its #; others are
    read by rules this does not follow (their colour is not known)."""
    value = value.strip()
    if not value or value.lower() == "transparent":
        return None  # HTML ignores them
    if len(value) == 6 and all(c in "0123456789abcdefABCDEF" for c in value):
        value = "#" + value
    color = _rgba(tinycss2.parse_one_component_value(value))
    return color if isinstance(color, tuple) else "unknown"


# --- style sheets ------------------------------------------------------------------------


class _Rule(NamedTuple):
    selectors: tuple[tuple[str, _Specificity], ...]
    declarations: tuple[tuple[int, str, Value, bool], ...]  # order in the sheet first
    condition: str  # "" outside any @media-like block, else that of the outermost block


_GROUPS = frozenset({"media", "supports", "container", "layer", "document", "-moz-document"})


@lru_cache(maxsize=64)  # each sample renders the same sheet
def _sheet(text: str) -> tuple[_Rule, ...]:
    rules: list[_Rule] = []
    order = 0  # each declaration's, those of rules a browser drops included
    # Depth first in the sheet's order, without recursion (blocks may nest deep).
    stack: list[tuple[Iterator[Any], str]] = [
        (iter(tinycss2.parse_stylesheet(text, skip_comments=True, skip_whitespace=True)), "")
    ]
    while stack:
        nodes, condition = stack[-1]
        node = next(nodes, None)
        if node is None:
            stack.pop()
        elif isinstance(node, QualifiedRule):
            found = _declarations(node.content)
            declared = tuple((order + n, target, value, imp) for n, target, value, imp in found)
            order += len(declared)
            selectors = tuple(_selectors(node.prelude))
            if declared and selectors:
                rules.append(_Rule(selectors, declared, condition))
        elif (
            isinstance(node, AtRule) and node.lower_at_keyword in _GROUPS and node.content
        ):  # a block that may apply or not: a reading of its own, with what it nests
            inside = tinycss2.parse_rule_list(
                node.content, skip_comments=True, skip_whitespace=True
            )
            outer = condition or _condition(node.lower_at_keyword, node.prelude)
            stack.append((iter(inside), outer))
    return tuple(rules)


_COMMENT = re.compile(r"/\*.*?(?:\*/|$)", re.DOTALL)
_SPACED = re.compile(r"\s*([(),:])\s*")


# Absolute lengths in px, exactly (CSS: 1in = 96px = 2.54cm = 72pt). Not em or rem: in a
# @media condition they are the reader's default font size, 16px only by default.
_ABSOLUTE_PX = {
    "px": Fraction(1),
    "pt": Fraction(4, 3),
    "pc": Fraction(16),
    "in": Fraction(96),
    "cm": Fraction(9600, 254),
    "mm": Fraction(960, 254),
    "q": Fraction(240, 254),
}


def _condition(keyword: str, condition: str | _Tokens) -> str:
    """A block's condition as written, spacing, comments and case aside (and for @media,
    the unit of an absolute length), after its at-keyword: blocks with the same one apply
    together."""
    tokens = (
        tinycss2.parse_component_value_list(condition, skip_comments=True)
        if isinstance(condition, str)
        else condition
    )
    text = _in_px(tokens) if keyword == "media" else tinycss2.serialize(tokens)
    text = _SPACED.sub(r"\1", " ".join(_COMMENT.sub(" ", text).lower().split()))
    return f"@{keyword} {text}"


def _in_px(tokens: _Tokens) -> str:
    """``tokens`` serialized with each absolute length in px, exactly (``450pt`` is
    ``600px``; ``1cm`` is ``4800/127px``)."""
    parts: list[str] = []
    for token in tokens:
        if isinstance(token, DimensionToken) and token.lower_unit in _ABSOLUTE_PX:
            parts.append(f"{Fraction(token.representation) * _ABSOLUTE_PX[token.lower_unit]}px")
        elif isinstance(token, FunctionBlock):
            parts.append(f"{token.name}({_in_px(token.arguments)})")
        elif isinstance(token, ParenthesesBlock):
            parts.append(f"({_in_px(token.content)})")
        elif isinstance(token, SquareBracketsBlock):
            parts.append(f"[{_in_px(token.content)}]")
        else:
            parts.append(tinycss2.serialize([token]))
    return "".join(parts)


def _split_commas(tokens: _Tokens) -> list[_Tokens]:
    parts: list[_Tokens] = [[]]
    for token in tokens:
        if isinstance(token, LiteralToken) and token.value == ",":
            parts.append([])
        else:
            parts[-1].append(token)
    return parts


def _selectors(prelude: _Tokens) -> list[tuple[str, _Specificity]]:
    """A rule's selectors; none if one is empty, as a browser then drops the rule (but one
    that only Lexbor cannot read drops only itself: it may be valid)."""
    selectors = [(tinycss2.serialize(part).strip(), part) for part in _split_commas(prelude)]
    if not all(text for text, _ in selectors):
        return []
    return [(text, _specificity(part)) for text, part in selectors]


_LEGACY_PSEUDO_ELEMENTS = frozenset({"before", "after", "first-line", "first-letter"})
_TAKE_ARGUMENTS = frozenset({"not", "is", "has", "matches", "-webkit-any", "-moz-any"})


def _specificity(tokens: _Tokens) -> _Specificity:
    """A selector's (ids, classes attributes and pseudo-classes, types), as CSS counts."""
    ids = classes = types = 0
    tokens = [token for token in tokens if not isinstance(token, WhitespaceToken)]
    for index, token in enumerate(tokens):
        before = [getattr(earlier, "value", None) for earlier in tokens[max(0, index - 2) : index]]
        if isinstance(token, HashToken):
            ids += 1
        elif isinstance(token, SquareBracketsBlock):
            classes += 1
        elif isinstance(token, IdentToken) and before[-1:] == [":"]:
            element = before == [":", ":"] or token.lower_value in _LEGACY_PSEUDO_ELEMENTS
            types, classes = (types + 1, classes) if element else (types, classes + 1)
        elif isinstance(token, IdentToken):
            types, classes = (types, classes + 1) if before[-1:] == ["."] else (types + 1, classes)
        elif isinstance(token, FunctionBlock) and before[-1:] == [":"]:
            more = _pseudo_class(token.lower_name, token.arguments)
            ids, classes, types = ids + more[0], classes + more[1], types + more[2]
    return ids, classes, types


def _pseudo_class(name: str, arguments: _Tokens) -> _Specificity:
    """A function's: none for ``:where()``, that of its most specific selector for
    ``:is()``, ``:not()``, ``:has()``; a class for others (with, for ``:nth-child(… of
    S)``, the most specific of S)."""
    if name == "where":
        return _NONE
    if name in {"nth-child", "nth-last-child"}:
        words = [getattr(argument, "lower_value", None) for argument in arguments]
        of = _most_specific(arguments[words.index("of") + 1 :]) if "of" in words else _NONE
        return of[0], of[1] + 1, of[2]
    return _most_specific(arguments) if name in _TAKE_ARGUMENTS else (0, 1, 0)


def _most_specific(selectors: _Tokens) -> _Specificity:
    return max((_specificity(part) for part in _split_commas(selectors)), default=_NONE)


# --- values ------------------------------------------------------------------------------


def _names(names: str) -> frozenset[str]:
    return frozenset(names.split())


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
_POSITION = _names("static relative absolute fixed sticky -webkit-sticky")
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
# Roughly, in px, for how far an offset moves an element (a font's em taken as 16px).
_PX = {"px": 1, "pt": 4 / 3, "pc": 16, "in": 96, "cm": 37.8, "mm": 3.78, "q": 0.945}
_PX |= {"em": 16, "rem": 16, "ex": 8, "ch": 8}
# Functions that compute a number or a length (var() and env() substitute one).
_MATH_FUNCTIONS = _names("calc min max clamp round mod rem abs sign -webkit-calc -moz-calc var env")
_IMAGE_FUNCTIONS = _names(
    "url image image-set -webkit-image-set cross-fade element paint linear-gradient "
    "radial-gradient conic-gradient repeating-linear-gradient repeating-radial-gradient "
    "repeating-conic-gradient -webkit-gradient -webkit-linear-gradient -webkit-radial-gradient "
    "-moz-linear-gradient -moz-radial-gradient -o-linear-gradient"
)
_SHAPES = _names("inset circle ellipse polygon path rect xywh shape url")
_TRANSFORMS = _names(
    "matrix matrix3d translate translatex translatey translatez translate3d scale scalex scaley "
    "scalez scale3d rotate rotatex rotatey rotatez rotate3d skew skewx skewy perspective"
)


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


def _arguments(token: Any) -> _Tokens:
    """A function's arguments without whitespace and commas."""
    return [
        argument
        for argument in token.arguments
        if not isinstance(argument, WhitespaceToken)
        and not (isinstance(argument, LiteralToken) and argument.value == ",")
    ]


def _px(token: Any) -> float | None:
    """A length in px, if it is one in a unit that does not depend on the layout."""
    if isinstance(token, NumberToken) and token.value == 0:
        return 0.0
    if isinstance(token, DimensionToken) and token.lower_unit in _PX:
        return float(token.value) * _PX[token.lower_unit]
    return None


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
    """A height or width: "zero", "other", or None."""
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


def _overflow(tokens: _Tokens) -> dict[str, Value] | None:
    """The ``overflow`` shorthand: its first word for x, its second (or first) for y."""
    words = _keywords(tokens)
    if words and len(words) == 1 and words[0] in _GLOBAL:
        words = ["visible"]
    if words and len(words) <= 2 and set(words) <= _OVERFLOW:
        return {"overflow-x": words[0], "overflow-y": words[-1]}
    return None


def _overflow_axis(tokens: _Tokens) -> Value | None:
    both = _overflow(tokens) if len(tokens) == 1 else None
    return None if both is None else both["overflow-x"]


def _mso_hide(tokens: _Tokens) -> str | None:
    word = _keyword(tokens)
    return word if word in {"all", "none"} else None


def _position(tokens: _Tokens) -> str | None:
    word = _keyword(tokens)
    return word if word in _POSITION else "static" if word in _GLOBAL else None


def _offset(tokens: _Tokens) -> Value | None:
    """A length in px, "other" (auto, a percentage, a calc()), or None if invalid."""
    if len(tokens) != 1:
        return None
    token = tokens[0]
    px = _px(token)
    if px is not None:
        return px
    if isinstance(token, IdentToken):
        return "other" if token.lower_value in _GLOBAL | {"auto"} else None
    if isinstance(token, DimensionToken):
        return "other" if token.lower_unit in _RELATIVE_UNITS | _ABSOLUTE_UNITS else None
    return "other" if isinstance(token, PercentageToken) or _math(token) else None


# Which of a box shorthand's one to four values is its top, right, bottom and left.
_SIDES = ((0, 0, 0, 0), (0, 1, 0, 1), (0, 1, 2, 1), (0, 1, 2, 3))


def _edges(tokens: _Tokens) -> list[Value] | None:
    """A box shorthand's (``margin``, ``inset``) top, right, bottom and left."""
    values: list[Value] = []
    for token in tokens:
        value = _offset([token])
        if value is None:
            return None
        values.append(value)
    return [values[side] for side in _SIDES[len(values) - 1]] if len(values) <= 4 else None


def _margin(tokens: _Tokens) -> dict[str, Value] | None:
    edges = _edges(tokens)
    return None if edges is None else {"margin-left": edges[3]}


def _inset(tokens: _Tokens) -> dict[str, Value] | None:
    edges = _edges(tokens)
    return None if edges is None else {"top": edges[0], "left": edges[3]}


def _text_indent(tokens: _Tokens) -> Value | None:
    """Inherited: "inherit" for the parent's."""
    word = _keyword(tokens)
    if word in _GLOBAL:
        return "inherit" if word in {"inherit", "unset"} else "other"
    words = {token.lower_value for token in tokens if isinstance(token, IdentToken)}
    length = [token for token in tokens if not isinstance(token, IdentToken)]
    if len(length) != 1 or not words <= {"hanging", "each-line"}:
        return None
    return "other" if "hanging" in words else _offset(length)  # hanging: not the first line


def _clip(tokens: _Tokens) -> str | None:
    """``clip: rect(top, right, bottom, left)``: "zero" if it leaves no area."""
    word = _keyword(tokens)
    if word in _GLOBAL | {"auto"}:
        return "other"
    if len(tokens) != 1 or not isinstance(tokens[0], FunctionBlock):
        return None
    if tokens[0].lower_name != "rect" or len(_arguments(tokens[0])) != 4:
        return None
    top, right, bottom, left = (_px(argument) for argument in _arguments(tokens[0]))
    if (top is not None and bottom is not None and bottom <= top) or (
        left is not None and right is not None and right <= left
    ):
        return "zero"
    return "other"


def _clip_path(tokens: _Tokens) -> str | None:
    """ "zero" for ``inset()`` of half or more from each side (``inset(50%)``) or a circle
    or ellipse of no radius, "other" for other shapes."""
    if _keyword(tokens) in _GLOBAL | {"none"} or isinstance(tokens[0], URLToken):
        return "other"
    shape = next((token for token in tokens if isinstance(token, FunctionBlock)), None)
    if shape is None or shape.lower_name not in _SHAPES:
        return None
    arguments = _arguments(shape)
    if shape.lower_name in {"circle", "ellipse"} and arguments:
        return "zero" if _px(arguments[0]) == 0 else "other"
    if shape.lower_name != "inset":
        return "other"
    words = [getattr(argument, "lower_value", None) for argument in arguments]
    sides = arguments[: words.index("round")] if "round" in words else arguments
    percents = [
        float(side.value) if isinstance(side, PercentageToken) else
        100.0 if (_px(side) or 0) >= 1000 else 0.0  # a far inset takes all of a box
        for side in sides
    ]  # fmt: skip
    if not 1 <= len(percents) <= 4:
        return None
    top, right, bottom, left = (percents[side] for side in _SIDES[len(percents) - 1])
    return "zero" if top + bottom >= 100 or left + right >= 100 else "other"


def _transform(tokens: _Tokens) -> str | None:
    """ "zero" if a function scales the element to nothing (``scale(0)``, a flat matrix)."""
    if _keyword(tokens) in _GLOBAL | {"none"}:
        return "other"
    if not tokens or not all(
        isinstance(token, FunctionBlock) and token.lower_name in _TRANSFORMS for token in tokens
    ):
        return None
    for token in tokens:
        numbers = list(_numbers(token.arguments))
        name = token.lower_name
        if name in {"scale", "scale3d"} and numbers and 0 in numbers[:2]:
            return "zero"
        if name in {"scalex", "scaley"} and numbers and numbers[0] == 0:
            return "zero"
        if name == "matrix" and len(numbers) == 6:
            a, b, c, d = numbers[:4]
            if a * d - b * c == 0:
                return "zero"
    return "other"


def _scale(tokens: _Tokens) -> str | None:
    """The ``scale`` property: "zero" if it scales x or y to nothing."""
    if _keyword(tokens) in _GLOBAL | {"none"}:
        return "other"
    if not 1 <= len(tokens) <= 3 or not all(
        isinstance(token, NumberToken | PercentageToken) for token in tokens
    ):
        return None
    return "zero" if 0 in [token.value for token in tokens[:2]] else "other"


def _rgba(token: Any) -> RGBA | str | None:
    """A colour: RGBA, "inherit" (``currentcolor``), "unknown" (a variable, a colour space
    this does not convert), or None if it is not a colour. tinycss2 knows the names."""
    if isinstance(token, FunctionBlock) and (
        token.lower_name == "color" or any(_math(inner) for inner in token.arguments)
    ):
        return "unknown"
    if _math(token):
        return "unknown"
    color = color4.parse_color(token)
    if color is None or color == "currentcolor":
        return None if color is None else "inherit"
    if color.space in {"hsl", "hwb"}:
        color = color.to("srgb")
    if color.space != "srgb":
        return "unknown"
    red, green, blue = (255 * (channel or 0.0) for channel in color.coordinates)
    return (red, green, blue, float(color.alpha))


def _color(tokens: _Tokens) -> Value | None:
    """The text colour; "inherit" for the parent's."""
    word = _keyword(tokens)
    if word in _GLOBAL:
        return (0.0, 0.0, 0.0, 1.0) if word == "initial" else "inherit"
    if len(tokens) != 1:
        return "unknown" if any(_math(token) for token in tokens) else None
    return _rgba(tokens[0])


_TRANSPARENT: RGBA = (0.0, 0.0, 0.0, 0.0)


def _background_color(tokens: _Tokens) -> Value | None:
    if _keyword(tokens) in _GLOBAL:
        return _TRANSPARENT  # not inherited: the parent's shows through
    color = _rgba(tokens[0]) if len(tokens) == 1 else None
    return "unknown" if color == "inherit" else color


def _background_image(tokens: _Tokens) -> str | None:
    return "none" if _keyword(tokens) in _GLOBAL | {"none"} else "image"


def _background(tokens: _Tokens) -> dict[str, Value] | None:
    """The shorthand's colour (of its last layer) and whether it paints an image."""
    if _keyword(tokens) in _GLOBAL:
        return {"background-color": _TRANSPARENT, "background-image": "none"}
    image = any(
        isinstance(token, URLToken)
        or (isinstance(token, FunctionBlock) and token.lower_name in _IMAGE_FUNCTIONS)
        for token in tokens
    )
    color: Value = _TRANSPARENT
    for token in _split_commas(tokens)[-1]:
        found = _rgba(token)
        if found is not None:
            color = "unknown" if found == "inherit" else found
    unknown = any(_math(token) for token in tokens)  # a variable may be anything
    return {
        "background-color": "unknown" if unknown else color,
        "background-image": "image" if image or unknown else "none",
    }


_Reader = Callable[[_Tokens], dict[str, Value] | None]


def _one(target: str, read: Callable[[_Tokens], Value | None]) -> _Reader:
    def reader(tokens: _Tokens) -> dict[str, Value] | None:
        value = read(tokens)
        return None if value is None else {target: value}

    return reader


# property: how its value reads, to the settled properties it sets
_READERS: dict[str, _Reader] = {
    "display": _one("display", _display),
    "visibility": _one("visibility", _visibility),
    "opacity": _one("opacity", _opacity),
    "font-size": _one("font-size", _font_size),
    "font": _one("font-size", _font),
    "max-height": _one("max-height", _height),
    "height": _one("height", _height),
    "max-width": _one("max-width", _height),
    "width": _one("width", _height),
    "overflow": _overflow,
    "overflow-x": _one("overflow-x", _overflow_axis),
    "overflow-y": _one("overflow-y", _overflow_axis),
    "mso-hide": _one("mso-hide", _mso_hide),
    "position": _one("position", _position),
    "left": _one("left", _offset),
    "top": _one("top", _offset),
    "inset": _inset,
    "margin-left": _one("margin-left", _offset),
    "margin": _margin,
    "text-indent": _one("text-indent", _text_indent),
    "clip": _one("clip", _clip),
    "clip-path": _one("clip-path", _clip_path),
    "-webkit-clip-path": _one("clip-path", _clip_path),
    "transform": _one("transform", _transform),
    "-webkit-transform": _one("transform", _transform),
    "-ms-transform": _one("transform", _transform),
    "scale": _one("scale", _scale),
    "color": _one("color", _color),
    "background-color": _one("background-color", _background_color),
    "background-image": _one("background-image", _background_image),
    "background": _background,
}
