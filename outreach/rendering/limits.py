"""Bounds on one render, so that no template can make the daemon spend unbounded time or
memory on a message, whoever wrote it and whatever the account's data.

The editor's checks render sample accounts in a bounded child process, but a template can
behave otherwise for real debtors (a branch on a name, an amount, a date). These bounds
hold for every render, in the daemon, the web app and the checks alike:

- **steps**: what a render does is counted: calls (macros, methods, globals, a recursive
  loop's ``loop(...)``), filters, the operators that compute (``+``, ``*``...),
  comparisons, reading an attribute or an item, and each run of a loop's or a macro's
  body, which counts as many steps as the body has nodes (what it holds that is not
  counted otherwise, such as a bare ``{% if %}``, is paid for that way); a render may
  take ``STEPS`` of them;
- **values**: a string, list or number that a template makes (with ``*``, ``**``, ``+``,
  ``%``, ``~``, a call, or a filter such as ``center``, ``indent``, ``join`` or ``batch``)
  may not exceed ``VALUE_SIZE`` characters or items (``NUMBER_BITS`` bits for a whole
  number), checked before the work wherever its size can be told in advance (a width, a
  repeat count, a replacement), and on the result otherwise;
- **work**: what a render makes and what its filters and methods read (a character for a
  character, ``ITEM_WORK`` for an item of a list, which costs more to sort or map) may not
  exceed ``WORK_SIZE`` in all, which bounds what a loop can pile up or go over again;
- **output**: a render writes at most ``OUTPUT_SIZE`` characters, counted as it is made
  (what a loop writes included), not once it is all in memory.

Going past one raises ``RenderLimit``, which fails that render with the template's line,
as any error of a template's own code does. Loop-free templates, which nearly all
messages are, pay for none of it but the count of their output.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterable, Iterator, Sized
from contextlib import contextmanager
from typing import Any, cast

from jinja2 import nodes, pass_context
from jinja2.exceptions import SecurityError
from jinja2.visitor import NodeTransformer

STEPS = 100_000
VALUE_SIZE = 1_000_000
WORK_SIZE = 20_000_000
ITEM_WORK = 20
OUTPUT_SIZE = 1_000_000
NUMBER_BITS = 10_000

# Names given to the helpers the compiled templates call.
LOOP_FILTER = "_outreach_loop"
OUTPUT_FILTER = "_outreach_output"
VALUE_FILTER = "_outreach_value"
READ_FILTER = "_outreach_read"
SPEND_FILTER = "_outreach_spend"
# Filters whose regular expressions take time that grows with the square of a crafted
# text's length (striptags on many an unclosed "<"): not offered to message templates,
# whose values are plain already.
_LEFT_OUT = frozenset({"striptags", "urlize"})

# A width or precision in a format string of six digits or more, or one taken from the
# arguments ("%*d"): the text it asks for could exceed any bound.
_WIDE_FORMAT = re.compile(r"\d{6,}|%[-+ #0]*\*|\.\*")
# str methods whose whole-number arguments are widths or counts of the result's size.
_WIDTH_METHODS = frozenset({"center", "ljust", "rjust", "zfill", "expandtabs"})
# Jinja2's filters whose whole-number arguments set the size of what they make.
_WIDTH_FILTERS = ("center", "indent", "batch", "slice", "tojson", "wordwrap", "truncate")
# Filters that go over their text in Python, word by word: a character read costs as much
# as this many read in C.
_SLOW_FILTERS = {"wordwrap": 20}


class RenderLimit(SecurityError):
    """A render went past one of its bounds."""


class _Budget(threading.local):
    steps: int | None = None  # None: outside ``bounded``, nothing is counted
    output: int = 0
    work: int = 0


_budget = _Budget()


@contextmanager
def bounded() -> Iterator[None]:
    """Render inside: the steps and output of what is rendered meanwhile are counted."""
    outer = (_budget.steps, _budget.output, _budget.work)
    _budget.steps, _budget.output, _budget.work = STEPS, 0, 0
    try:
        yield
    finally:
        _budget.steps, _budget.output, _budget.work = outer


def spend(count: int = 1) -> None:
    """``count`` steps."""
    steps = _budget.steps
    if steps is None:
        return
    if steps < count:
        raise RenderLimit(
            f"the template took more than {STEPS} steps (loop iterations, calls, filters, "
            "operators and comparisons)"
        )
    _budget.steps = steps - count


def write(size: int) -> None:
    """``size`` more characters of output."""
    if _budget.steps is None:
        return
    _budget.output += size
    if _budget.output > OUTPUT_SIZE:
        raise RenderLimit(f"the template wrote more than {OUTPUT_SIZE} characters")


def bounded_concat(parts: Iterable[str]) -> str:
    """The output of a render or a block, joined, its size counted part by part (each part
    may be new, an escaped copy, say, so it is counted before the next is made)."""
    if _budget.steps is None:
        return "".join(parts)
    made: list[str] = []
    keep = made.append
    size = _budget.output
    for part in parts:
        size += len(part)
        if size > OUTPUT_SIZE:
            raise RenderLimit(f"the template wrote more than {OUTPUT_SIZE} characters")
        keep(part)
    _budget.output = size
    return "".join(made)


def checked(value: Any) -> Any:
    """``value``, if it is within the size a template may make; counted as made."""
    if isinstance(value, int) and not isinstance(value, bool):
        if value.bit_length() > NUMBER_BITS:
            raise RenderLimit(f"a number of more than {NUMBER_BITS} bits")
    elif isinstance(value, Sized):
        size = len(value)
        if size > VALUE_SIZE:
            raise RenderLimit(f"a value of more than {VALUE_SIZE} characters or items")
        work(value)
    return value


def work(value: Any, weight: int = 1) -> None:
    """Count the work of making or reading ``value``: its characters, and for a list its
    items and the characters of the strings in it (which a sort compares); ``weight``
    times for what costs more than a pass in C."""
    if _budget.steps is None:
        return
    if isinstance(value, str):
        _budget.work += weight * len(value)
    elif isinstance(value, list | tuple | set | frozenset | dict):
        _budget.work += weight * (
            ITEM_WORK * len(value) + sum(len(item) for item in value if isinstance(item, str))
        )
    elif isinstance(value, range):
        _budget.work += weight * ITEM_WORK * len(value)
    else:
        return
    if _budget.work > WORK_SIZE:
        raise RenderLimit(f"the template made or read more than {WORK_SIZE} characters")


@pass_context
def _checked_value(_context: Any, value: Any) -> Any:
    return checked(value)


@pass_context
def _read(_context: Any, value: Any) -> Any:
    """An operand of a comparison (``in``, ``==``...), counted as read."""
    spend()
    work(value)
    return value


@pass_context
def _spent(_context: Any, nothing: str, count: int) -> str:
    """Written at the start of a loop's or a macro's body: the steps of one run of it."""
    spend(count)
    return nothing


def _size(value: Any) -> int | None:
    return len(value) if isinstance(value, str | list | tuple) else None


def check_binop(operator: str, left: Any, right: Any) -> None:
    """Refuse, before it is worked out, a ``*``, ``**``, ``+`` or ``%`` too large."""
    if operator == "*":
        for seq, times in ((left, right), (right, left)):
            size = _size(seq)
            if size is not None and isinstance(times, int) and size * times > VALUE_SIZE:
                raise RenderLimit(f"a value of more than {VALUE_SIZE} characters or items")
        if _whole(left) and _whole(right) and left.bit_length() + right.bit_length() > NUMBER_BITS:
            raise RenderLimit(f"a number of more than {NUMBER_BITS} bits")
    elif operator == "**":
        whole = _whole(left) and _whole(right) and abs(left) > 1 and right > 0
        if whole and right * left.bit_length() > NUMBER_BITS:
            raise RenderLimit(f"a number of more than {NUMBER_BITS} bits")
    elif operator == "+":
        one, other = _size(left), _size(right)
        if one is not None and other is not None and one + other > VALUE_SIZE:
            raise RenderLimit(f"a value of more than {VALUE_SIZE} characters or items")
    elif operator == "%" and isinstance(left, str) and _WIDE_FORMAT.search(left):
        raise RenderLimit("a format with a width or precision too large to be bounded")


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_call(function: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    """Count what a call reads, and refuse, before it runs, a str method call whose result
    would be too large."""
    method = getattr(function, "__wrapped__", function)  # the sandbox wraps str.format
    owner = getattr(method, "__self__", None)
    if _budget.steps is not None:
        for value in (owner, *args, *kwargs.values()):
            work(value)
    if not isinstance(owner, str):
        return
    name = getattr(method, "__name__", "")
    if name in _WIDTH_METHODS:
        _small_numbers(args, kwargs)
    elif name in ("format", "format_map") and _WIDE_FORMAT.search(owner):
        raise RenderLimit("a format with a width or precision too large to be bounded")
    elif name == "replace" and len(args) >= 2:
        _check_replace(owner, args[0], args[1])
    elif name == "join" and args:
        _check_join(owner, args[0])


def _small_numbers(args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    for value in (*args, *kwargs.values()):
        if _whole(value) and value > VALUE_SIZE:
            raise RenderLimit(f"a width or count above {VALUE_SIZE}")


def _check_repeated_text(value: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    """``indent`` with a string for its width and ``wordwrap``'s ``wrapstring`` repeat a
    string once a line: refuse those whose result could be too large."""
    if not isinstance(value, str):
        return
    for piece in (*args, *kwargs.values()):
        if isinstance(piece, str) and len(piece) * (len(value) + 1) > VALUE_SIZE:
            raise RenderLimit(f"a value of more than {VALUE_SIZE} characters or items")


def _check_replace(text: Any, old: Any, new: Any) -> None:
    if not (isinstance(text, str) and isinstance(old, str) and isinstance(new, str)):
        return
    found = len(text) + 1 if old == "" else text.count(old)
    if len(text) + found * max(len(new) - len(old), 0) > VALUE_SIZE:
        raise RenderLimit(f"a value of more than {VALUE_SIZE} characters or items")


def _check_join(separator: Any, items: Any) -> None:
    sized = isinstance(separator, str) and isinstance(items, list | tuple)
    if sized and len(separator) * len(items) > VALUE_SIZE:
        raise RenderLimit(f"a value of more than {VALUE_SIZE} characters or items")


@pass_context
def loop_items(_context: Any, iterable: Iterable[Any], literal: int = 0) -> Iterator[Any]:
    """A loop's items, each a step, and the literal text of the loop's body counted as
    written at each one (an upper bound: every branch of the body is counted)."""
    for item in iterable:
        spend()
        if literal:
            write(literal)
        yield item


@pass_context
def written(_context: Any, value: Any) -> Any:
    """A value a loop writes, counted."""
    if _budget.steps is not None:
        write(len(value) if isinstance(value, str) else len(str(value)))
    return value


def bounded_filters(filters: dict[str, Callable[..., Any]]) -> dict[str, Callable[..., Any]]:
    """Jinja2's filters, each counting the work of what it reads and checking what it
    makes (those that size their result checked before they run), and the helpers the
    compiled templates call."""
    guarded = {
        name: _bounded_filter(name, original)
        for name, original in filters.items()
        if name not in _LEFT_OUT
    }
    guarded[LOOP_FILTER] = loop_items
    guarded[OUTPUT_FILTER] = written
    guarded[VALUE_FILTER] = _checked_value
    guarded[READ_FILTER] = _read
    guarded[SPEND_FILTER] = _spent
    return guarded


def _bounded_filter(name: str, original: Callable[..., Any]) -> Callable[..., Any]:
    # The value comes after the context or the environment for a filter passed one.
    at = 1 if hasattr(original, "jinja_pass_arg") else 0
    before = _BEFORE.get(name)
    weight = _SLOW_FILTERS.get(name, 1)

    def guarded(*args: Any, **kwargs: Any) -> Any:
        spend()
        if len(args) > at:
            value = args[at]
            work(value, weight)
            if before is not None:
                value = before(value, args[at + 1 :], kwargs)
                args = (*args[:at], value, *args[at + 1 :])
        return checked(original(*args, **kwargs))

    for mark in ("jinja_pass_arg",):  # what Jinja2 reads to know what to pass
        if hasattr(original, mark):
            setattr(guarded, mark, getattr(original, mark))
    guarded.__name__ = getattr(original, "__name__", name)
    guarded.__doc__ = original.__doc__
    return guarded


def _sized_by_arguments(value: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    _small_numbers(args, kwargs)
    _check_repeated_text(value, args, kwargs)
    return value


def _narrow_format(value: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    if isinstance(value, str) and _WIDE_FORMAT.search(value):
        raise RenderLimit("a format with a width or precision too large to be bounded")
    return value


def _small_replacement(value: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    if len(args) >= 2:
        _check_replace(str(value), str(args[0]), str(args[1]))
    return value


def _small_join(value: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    # Listed first, so that the count of items is known before the text is made.
    items = value if isinstance(value, list | tuple) else list(value)
    work(items)
    _check_join(str(args[0] if args else kwargs.get("d", "")), items)
    return items


_BEFORE: dict[str, Callable[[Any, tuple[Any, ...], dict[str, Any]], Any]] = {
    **dict.fromkeys(_WIDTH_FILTERS, _sized_by_arguments),
    "format": _narrow_format,
    "replace": _small_replacement,
    "join": _small_join,
}


def bound_loops(template: nodes.Template) -> nodes.Template:
    """Rewrite a parsed template so that what it makes is counted: each loop takes its
    items through ``loop_items`` and each expression its body writes goes through
    ``written``; each ``~`` result goes through ``checked``, and what a comparison
    compares through ``work``."""
    result: nodes.Template = _Bounding().visit(template)
    return result


class _Bounding(NodeTransformer):
    def visit_For(self, node: nodes.For) -> nodes.Node:
        self.generic_visit(node)
        literal = sum(
            len(data.data) for output in _outputs(node.body) for data in output.nodes
            if isinstance(data, nodes.TemplateData)
        )  # fmt: skip
        node.iter = _filtered(cast(nodes.Expr, node.iter), LOOP_FILTER, nodes.Const(literal))
        for output in _outputs(node.body):
            output.nodes = [
                child if isinstance(child, nodes.TemplateData) or _is(child, OUTPUT_FILTER)
                else _filtered(child, OUTPUT_FILTER)
                for child in output.nodes
            ]  # fmt: skip
        return _weighed(node)

    def visit_Macro(self, node: nodes.Macro) -> nodes.Node:
        self.generic_visit(node)
        return _weighed(node)

    def visit_CallBlock(self, node: nodes.CallBlock) -> nodes.Node:
        self.generic_visit(node)
        return _weighed(node)

    def visit_Concat(self, node: nodes.Concat) -> nodes.Node:
        self.generic_visit(node)
        return _filtered(node, VALUE_FILTER)

    def visit_Compare(self, node: nodes.Compare) -> nodes.Node:
        self.generic_visit(node)
        node.expr = _filtered(node.expr, READ_FILTER)
        for operand in node.ops:
            operand.expr = _filtered(operand.expr, READ_FILTER)
        return node


def _weighed(node: nodes.For | nodes.Macro | nodes.CallBlock) -> nodes.Node:
    """``node`` with its body spending, at each run, a step for each node it holds."""
    weight = sum(1 for child in node.body for _ in child.find_all(nodes.Node)) + len(node.body)
    spending = _filtered(nodes.Const(""), SPEND_FILTER, nodes.Const(weight))
    node.body = [nodes.Output([spending], lineno=node.lineno), *node.body]
    return node


def _filtered(node: nodes.Expr, name: str, *args: nodes.Expr) -> nodes.Filter:
    return nodes.Filter(node, name, list(args), [], None, None, lineno=node.lineno)


def _is(node: nodes.Node, name: str) -> bool:
    return isinstance(node, nodes.Filter) and node.name == name


def _outputs(body: list[nodes.Node]) -> Iterator[nodes.Output]:
    for node in body:
        if isinstance(node, nodes.Output):
            yield node
        yield from node.find_all(nodes.Output)
