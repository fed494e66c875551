"""Whether a rendered answer shows the agent's words whole.

An answer template wraps the words with what every message must carry; it must not drop
or cut them (a ``{{ answer[:50] }}``, a forgotten ``{{ answer }}``): the debtor would get
something other than what the agent wrote, and the conversation would show words that
were never sent. Lint refuses such a template at save time with the samples' answers, and
an answer whose words do not come out whole is refused before it is queued.

In the HTML body only the words a mail reader shows count. The body is parsed as a browser
parses it (selectolax's Lexbor, which follows the HTML standard's tree construction: a new
``<p>`` or ``<li>`` ends an open one, an unclosed ``<b>`` carries on into the next
paragraph, a second ``<body>`` adds to the first the attributes it lacks); an element left
open hides all that follows it. Each element's style is settled from its inline style, the
``<style>`` sheets in head or body and its attributes, with the cascade (answer_styles.py).
Not shown:

- what is in ``<head>``, ``<script>``, ``<style>``, ``<template>``, ``<title>`` or a
  comment, or in an element with the ``hidden`` attribute;
- all inside an element whose style hides it: ``display: none``, a zero ``opacity``,
  Outlook's ``mso-hide: all``, a zero ``(max-)height`` or ``(max-)width`` with its
  overflow clipped, ``transform: scale(0)`` (or a flat matrix, or ``scale: 0``),
  ``clip-path: inset(50%)`` (or more, or a circle of no radius);
- all inside an element moved out of view: ``position: absolute``, ``fixed`` or
  ``relative`` with ``left`` or ``top`` at -1000px or further (lengths in absolute units,
  em and rem taken as 16px; a percentage or a ``calc()`` is not read), a ``margin-left``
  that far, or a positioned element's ``clip: rect()`` of no area;
- text under ``visibility: hidden``, a zero ``font-size`` (both inherited, and undone by an
  element inside), or a ``text-indent`` of -1000px or further (inherited, as in CSS);
- text the colour of what lies behind it: the nearest background of the element or an
  ancestor (``background-color``, ``background``, ``bgcolor``), else the page's white.
  Both must be known: a name (tinycss2's table of CSS Color 4's), hex, ``rgb()``,
  ``hsl()`` or ``hwb()``, or ``<font color>``; a background image or gradient, a
  ``var()``, a link's own colour are not known, and the text then counts as shown. The two
  count as the same when no channel differs by more than 16 (of 255), a translucent text
  colour laid over the background first: near-white on white hides too, light grey shows.
  ``color: transparent`` never shows.

A ``@media`` (or ``@supports``) block may apply or not, so the answer must be shown in every
reading of the sheets (``shown_texts``): without the blocks, and with those of each condition
in turn (blocks with the same condition apply together: one reading). A block that hides
the answer counts; one that shows what the rest of the sheet hides does not. Different
conditions that may hold at once (a narrow screen in dark mode) are not combined. Past
``MAX_CONDITIONS`` (32) conditions that style an element, the HTML is not checked: it is
refused as ``Uncheckable`` (answer_styles.py). Not detected: external style sheets, a
colour from a CSS variable, an image of the text, text covered by another element, CSS
nesting, and text too small or too faint to read but not invisible.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

from selectolax.lexbor import LexborHTMLParser, LexborNode

from outreach.rendering.answer_styles import RGBA, Style, StyleSheets, Uncheckable, Value

if TYPE_CHECKING:
    from outreach.rendering.render import Rendered


class AnswerShown(NamedTuple):
    """Which bodies do not show the answer whole ("text", "html"), and why the HTML body
    could not be checked (``Uncheckable``'s message), if it could not."""

    missing: list[str]
    unchecked: str | None = None


def check_answer_shown(rendered: Rendered, answer: str) -> AnswerShown:
    """Whether the bodies of ``rendered`` show ``answer`` whole, its spacing aside (an
    email's paragraphs are laid out afresh in HTML). An HTML body that cannot be checked
    is not among the missing: ``unchecked`` says why, and it is to be refused for that."""
    wanted = _flat(answer)
    missing = [] if wanted in _flat(rendered.text) else ["text"]
    if rendered.html is None:
        return AnswerShown(missing)
    try:
        texts = shown_texts(rendered.html)
    except Uncheckable as exc:
        return AnswerShown(missing, str(exc))
    if any(wanted not in _flat(text) for text in texts):
        missing.append("html")
    return AnswerShown(missing)


def bodies_missing_answer(rendered: Rendered, answer: str) -> list[str]:
    """The bodies of ``rendered`` ("text", "html") that do not show ``answer`` whole, or
    (the HTML) cannot be checked: ``check_answer_shown`` tells the two apart."""
    missing, unchecked = check_answer_shown(rendered, answer)
    return [*missing, "html"] if unchecked else missing


def shown_text(markup: str) -> str:
    """The words of an HTML body that a mail reader shows whatever its screen (in every
    reading), a space between two text nodes (at each tag the parser keeps), entities
    decoded; what is hidden (see the module's notes) is left out. Raises ``Uncheckable``
    past ``MAX_CONDITIONS`` conditions."""
    return _read(markup)[0]


def shown_texts(markup: str, words_whole: bool = False) -> list[str]:
    """The words an HTML body shows in each reading of its style sheets: the first with
    the rules outside ``@media``-like blocks, then one per condition whose blocks style an
    element. Raises ``Uncheckable`` past ``MAX_CONDITIONS`` conditions.

    A space stands between two text nodes, unless ``words_whole``: then only at the edges
    of an element that is not inline (a paragraph, a cell, a ``<br>``), so a word set
    partly in bold ("s<b>ue</b>") reads whole, as a mail reader shows it."""
    return _read(markup, words_whole)[1]


def _flat(text: str) -> str:
    return " ".join(text.split())


def _read(markup: str, words_whole: bool = False) -> tuple[str, list[str]]:
    """The words shown in every reading, and those shown in each: text nodes joined by a
    space, or if ``words_whole`` only across the edges of elements that are not inline."""
    tree = LexborHTMLParser(markup)
    sheets = StyleSheets(tree)
    everywhere: list[str] = []
    each: list[list[str]] = [[] for _ in range(sheets.readings)]
    known: _Known = {}
    passed: _Passed = {}
    # Where a text node with the given parents' state shows: the readings, and whether all.
    shows: dict[int, tuple[_States, list[list[str]], bool]] = {}  # by id(parents)
    # Depth first, without recursion: a template may nest elements deeper than Python may.
    # Each node comes with what its parent passes down in each reading (None: hidden).
    # Siblings share their parent's tuple, and elements alike in alike parents each other's.
    start: _States = (_Inherited(),) * sheets.readings
    stack: list[tuple[LexborNode | None, _States]] = []
    if tree.root is not None:
        stack.append((tree.root, start))
    while stack:
        node, parents = stack.pop()
        if node is None:  # the end of an element that is not inline: a space
            for words in (everywhere, *each):
                words.append(" ")
        elif node.is_text_node:
            found = shows.get(id(parents))
            if found is None:
                shown = [parent is not None and parent.shows_text for parent in parents]
                into = [words for words, here in zip(each, shown, strict=True) if here]
                found = shows[id(parents)] = (parents, into, False not in shown)
            text = node.text_content or ""
            for words in found[1]:
                words.append(text)
            if found[2]:
                everywhere.append(text)
        elif node.is_element_node:  # a comment is neither
            insides = _insides(node, parents, sheets, known, passed)
            if insides.count(None) < len(insides):
                if words_whole and (node.tag or "") not in _INLINE:
                    # A space at both edges: one now, one once all inside is read.
                    for words in (everywhere, *each):
                        words.append(" ")
                    stack.append((None, parents))
                children = list(node.iter(include_text=True))
                stack.extend((child, insides) for child in reversed(children))
    joiner = "" if words_whole else " "
    return joiner.join(everywhere), [joiner.join(words) for words in each]


# --- elements ----------------------------------------------------------------------------


class _Inherited(NamedTuple):
    """What an element passes down until an element inside says otherwise."""

    invisible: bool = False  # visibility: hidden or collapse
    tiny: bool = False  # a zero font size
    indented: bool = False  # text-indent far to the left
    color: RGBA | None = (0.0, 0.0, 0.0, 1.0)  # the text's; None if not known
    background: RGBA | None = (255.0, 255.0, 255.0, 1.0)  # what lies behind; the page's white
    shows_text: bool = True  # none of the above hides the element's own text


def _names(names: str) -> frozenset[str]:
    return frozenset(names.split())


# Elements set within a line of text (HTML's phrasing content): no space at their edges.
_INLINE = _names(
    """
    a abbr b bdi bdo big cite code data del dfn em font i ins kbd label mark q s samp small
    span strike strong sub sup time tt u var wbr
    """
)
_NOT_SHOWN = _names("head script style template title iframe noembed noframes")
_MOVED = _names("absolute fixed relative")  # left and top move these
_OFF_SCREEN = -1000.0  # px: further left or up than any screen shows
_NEAR = 16  # of 255: a text colour this close to its background does not show


# What an element passes down in each reading (None: nothing, it hides all it holds).
_States = tuple[_Inherited | None, ...]
# What _inside gave for a style (kept alive with it, for its id) and a parent's state.
_Known = dict[tuple[int, _Inherited], tuple[Style, _Inherited | None]]
# What _insides gave for an element's styles and its parent's states (both kept alive with
# it, for their ids): elements alike under one parent, or under alike parents.
_Passed = dict[tuple[int, int], tuple[tuple[Style, ...], _States, _States]]


def _insides(
    node: LexborNode, parents: _States, sheets: StyleSheets, known: _Known, passed: _Passed
) -> _States:
    """What an element passes down in each reading, given what its parent passes down."""
    tag, attributes = node.tag or "", node.attributes
    if tag in _NOT_SHOWN or "hidden" in attributes:
        return (None,) * len(parents)
    styles = sheets.styles(node, tag, attributes)
    found = passed.get((id(styles), id(parents)))
    if found is not None:
        return found[2]
    insides: list[_Inherited | None] = []
    for style, parent in zip(styles, parents, strict=True):
        if parent is None or not style:
            insides.append(parent)  # an element without style passes on what it is given
        elif insides and style is styles[0] and parent is parents[0]:
            insides.append(insides[0])  # a reading whose blocks style neither it nor its parents
        elif (id(style), parent) in known:  # an email repeats its elements' styles
            insides.append(known[id(style), parent][1])
        else:
            inside = _inside(style, parent)
            known[id(style), parent] = (style, inside)
            insides.append(inside)
    passed[id(styles), id(parents)] = (styles, parents, tuple(insides))
    return passed[id(styles), id(parents)][2]


def _inside(style: Style, parent: _Inherited) -> _Inherited | None:
    """What an element of ``style`` passes down to what it holds, given what its parent
    passed down; None if it hides all of it."""
    if _hides_all(style):
        return None
    visibility = style.get("visibility", "inherit")
    size = style.get("font-size")
    indent = style.get("text-indent", "inherit")
    color = style.get("color", "inherit")
    invisible = parent.invisible if visibility == "inherit" else visibility == "hidden"
    tiny = parent.tiny if size not in {"zero", "absolute"} else size == "zero"
    indented = parent.indented if indent == "inherit" else _far(indent)
    text = parent.color if color == "inherit" else color if isinstance(color, tuple) else None
    background = _behind(style, parent.background)
    return _Inherited(
        invisible, tiny, indented, text, background,
        not (invisible or tiny or indented or _blends_in(text, background)),
    )  # fmt: skip


def _hides_all(style: Style) -> bool:
    clipped_x, clipped_y = _clipped(style)
    position = style.get("position", "static")
    return (
        style.get("display") == "none"
        or style.get("opacity") == "zero"
        or style.get("mso-hide") == "all"
        or (clipped_y and "zero" in (style.get("max-height"), style.get("height")))
        or (clipped_x and "zero" in (style.get("max-width"), style.get("width")))
        or "zero" in (style.get("transform"), style.get("scale"), style.get("clip-path"))
        or _far(style.get("margin-left"))
        or (position in _MOVED and (_far(style.get("left")) or _far(style.get("top"))))
        or (position in {"absolute", "fixed"} and style.get("clip") == "zero")
    )


def _clipped(style: Style) -> tuple[bool, bool]:
    """Whether the element clips what overflows it across and down. As CSS computes it:
    beside a scrolling or hidden axis, a visible one scrolls."""
    x, y = style.get("overflow-x", "visible"), style.get("overflow-y", "visible")
    if x in {"visible", "clip"} and y in {"visible", "clip"}:
        return x == "clip", y == "clip"
    return True, True


def _far(offset: Value | None) -> bool:
    return isinstance(offset, float) and offset <= _OFF_SCREEN


# --- colours -----------------------------------------------------------------------------


def _over(top: RGBA, below: RGBA) -> RGBA:
    """A translucent colour laid over an opaque one."""
    alpha = top[3]
    red, green, blue = (
        alpha * t + (1 - alpha) * b for t, b in zip(top[:3], below[:3], strict=True)
    )
    return (red, green, blue, 1.0)


def _behind(style: Style, parent: RGBA | None) -> RGBA | None:
    """What lies behind the element's text: its own background, else its parent's."""
    if style.get("background-image", "none") != "none":
        return None  # an image or a gradient: any colour
    color = style.get("background-color")
    if not isinstance(color, tuple):
        return None if color == "unknown" else parent
    if color[3] >= 1:
        return color
    if color[3] <= 0:
        return parent
    return None if parent is None else _over(color, parent)


def _blends_in(color: RGBA | None, background: RGBA | None) -> bool:
    """Whether text of ``color`` does not show on ``background``: it is transparent, or no
    channel differs by more than ``_NEAR`` once laid over the background. A colour not
    known (None) shows."""
    if color is None:
        return False
    if color[3] <= 0:
        return True
    if background is None:
        return False
    painted = _over(color, background)
    return all(abs(a - b) <= _NEAR for a, b in zip(painted[:3], background[:3], strict=True))
