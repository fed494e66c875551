"""Bounds on one render, so that no template can make the daemon spend unbounded time or
memory on a message, whoever wrote it and whatever the account's data.

The editor's checks render sample accounts in a bounded child process, but a template can
behave otherwise for real debtors (a branch on a name, an amount, a date). These bounds
hold for every render, in the daemon, the web app and the checks alike:

- **steps**: what a render does is counted: calls (macros, methods, globals, a recursive
  loop's ``loop(...)``), filters, the operators that compute (``+``, ``*``...),
  comparisons, and each run of a loop's or a macro's body, which counts as many steps as
  the body has nodes (what it holds that is not counted otherwise, such as an attribute
  read or a bare ``{% if %}``, is paid for that way), and, before a filter that calls a
  function on each item starts (``sort``, ``max``, ``groupby``... and any filter given an
  ``attribute``), its items, once for each call and each part of the attribute; a render
  may take ``STEPS`` of them;
- **values**: a value that a template makes (a string, a list, a dict, with ``*``, ``+``,
  ``%``, ``~``, a literal, a call or a filter) may not exceed ``VALUE_SIZE``, counted as
  its characters and ``ITEM_WORK`` for each item, through every list it holds (a list
  repeated inside another counts each time, as printing or comparing it would), and a
  whole number may not exceed ``NUMBER_BITS`` bits. Where the size of a result can be
  told before it is made (a repeat, a power, a width, a format, a ``replace``, a
  ``join``, an ``indent``) it is refused before it is made;
- **work**: what a render makes and what its filters, methods and comparisons read, sized
  the same way, may not exceed ``WORK_SIZE`` in all, which bounds what a loop can pile up
  or go over again; the filters that go over their value in Python, a word, a line or an
  item at a time, count it several times over (``_SLOW_FILTERS``, measured);
- **output**: a render writes at most ``OUTPUT_SIZE`` characters, counted as it is
  written (what a loop writes included), not once it is all in memory;
- **time**: each step looks at the clock, and a render may take ``DEADLINE`` seconds: a
  backstop, should the bounds above weigh some work wrong (within them, the costliest
  renders known take a third of it).

Methods of strings, lists and dicts are those a message needs (``upper``, ``split``,
``replace``, ``format``, ``get``, ``items``...); the others (``translate``,
``expandtabs``, ``fromkeys``...) are refused, and so are the filters and globals whose
cost no bound can see (``striptags`` and ``urlize``, whose regular expressions take time
that grows with the square of a crafted text; ``lipsum``).

Going past one raises ``RenderLimit``, which fails that render with the template's line,
as any error of a template's own code does. Loop-free templates, which nearly all
messages are, pay for little of it but the count of their output.
"""

from __future__ import annotations

import inspect
import re
import threading
from collections.abc import Callable, ItemsView, Iterable, Iterator, KeysView, Sized, ValuesView
from datetime import date, datetime
from decimal import Decimal
from functools import lru_cache
from time import monotonic
from typing import Any, cast

from jinja2 import nodes, pass_context
from jinja2.exceptions import SecurityError
from jinja2.utils import Namespace
from jinja2.visitor import NodeTransformer
from markupsafe import Markup

# Values that hold nothing else: measured at once.
_ATOMS = frozenset({int, float, bool, type(None), Decimal, date, datetime})
_FLAT = (list, tuple, set, frozenset, KeysView, ValuesView)
_PLAIN = _ATOMS | {str, Markup}

STEPS = 100_000
VALUE_SIZE = 1_000_000
WORK_SIZE = 20_000_000
ITEM_WORK = 20
OUTPUT_SIZE = 1_000_000
NUMBER_BITS = 10_000
# Wall-clock seconds a render may take: a backstop for work the bounds above weigh wrong.
# Within them a render takes a fraction of it; an ordinary message, a millisecond or two.
DEADLINE = 1.0

# Names given to the helpers the compiled templates call.
LOOP_FILTER = "_outreach_loop"
OUTPUT_FILTER = "_outreach_output"
VALUE_FILTER = "_outreach_value"
READ_FILTER = "_outreach_read"
SPEND_FILTER = "_outreach_spend"

# Filters and globals left out of message templates (see above).
LEFT_OUT_FILTERS = frozenset({"striptags", "urlize"})
LEFT_OUT_GLOBALS = frozenset({"lipsum"})

# The methods a template may call on the built-in types; any other is refused.
_METHODS: dict[type, frozenset[str]] = {
    str: frozenset(
        {"capitalize", "casefold", "center", "count", "endswith", "find", "format",
         "format_map", "index", "isalnum", "isalpha", "isdecimal", "isdigit", "islower",
         "isnumeric", "isspace", "istitle", "isupper", "join", "ljust", "lower", "lstrip",
         "partition", "removeprefix", "removesuffix", "replace", "rfind", "rindex", "rjust",
         "rpartition", "rsplit", "rstrip", "split", "splitlines", "startswith", "strip",
         "swapcase", "title", "upper", "zfill"}
    ),
    dict: frozenset({"get", "items", "keys", "values"}),
    list: frozenset({"count", "index"}),
    tuple: frozenset({"count", "index"}),
}  # fmt: skip
_BUILT_IN_TYPES = (str, dict, list, tuple, set, frozenset, int, float, bytes, range)

# A width or precision in a %-format or a format string of six digits or more, one taken
# from the arguments ("%*d", "{:{}}"): the text it asks for could exceed any bound.
_WIDE_FORMAT = re.compile(r"\d{6,}|%[-+ #0]*\*|\.\*|\{[^{}]*:[^{}]*\{")
# str methods whose whole-number arguments are the result's width.
_WIDTH_METHODS = frozenset({"center", "ljust", "rjust", "zfill"})
# Jinja2's filters whose whole-number arguments size what they make: a width, or a count.
_WIDTH_FILTERS = ("center", "truncate")
_COUNT_FILTERS = ("batch", "slice")
_JSON_INDENT = 16  # tojson's indent is repeated at each level of each line
# Filters that go over what they read in Python, a word, a line or an item at a time: each
# unit read costs as much as this many read in C (measured, the worst input for each: a
# text of one-letter words, a list of small items), so that the whole work budget spent on
# one of them stays a fraction of a second.
_SLOW_FILTERS = {
    "wordwrap": 100, "title": 45, "pprint": 40, "xmlattr": 25, "urlencode": 20,
    "indent": 20, "wordcount": 12, "batch": 10, "slice": 10, "tojson": 6, "items": 4,
    "dictsort": 4, "join": 4, "escape": 2, "forceescape": 2, "reverse": 2,
}  # fmt: skip
# Filters that call a Python function on each item to sort, compare or group it (a key,
# case-insensitive or not): a step per item and call, before they start; with an
# ``attribute``, a step more for each part of it (``a.b`` is two lookups).
_KEYED_FILTERS = {"min": 1, "max": 1, "unique": 1, "sort": 2, "dictsort": 2, "groupby": 2}
# Filters that look an ``attribute`` up on each item when given one; the lazy ones pay as
# their items go through.
_ATTRIBUTE_FILTERS = frozenset({"sum", "join", "map", "selectattr", "rejectattr"})
_LAZY_FILTERS = frozenset({"map", "select", "reject", "selectattr", "rejectattr"})


class RenderLimit(SecurityError):
    """A render went past one of its bounds; the message says which, and where to read
    what the bounds are."""

    def __init__(self, what: str, *, timed_out: bool = False) -> None:
        super().__init__(f"{what} (the bounds every render keeps: docs/templates.md#lint)")
        # Past the clock, not a count: a machine stalled (swapping, a long collector pause)
        # may be to blame rather than the template.
        self.timed_out = timed_out


class _Budget(threading.local):
    steps: int | None = None  # None: outside ``bounded``, nothing is counted
    output: int = 0
    work: int = 0
    deadline: float = 0.0  # ``monotonic()`` past which a step fails


_budget = _Budget()


class bounded:
    """Render inside: the steps, work and output of what is rendered meanwhile are
    counted. (A class rather than a generator: it is entered for every message.)"""

    def __enter__(self) -> None:
        self._outer = (_budget.steps, _budget.output, _budget.work, _budget.deadline)
        _budget.steps, _budget.output, _budget.work = STEPS, 0, 0
        _budget.deadline = monotonic() + DEADLINE

    def __exit__(self, *_: object) -> None:
        _budget.steps, _budget.output, _budget.work, _budget.deadline = self._outer


def extend_deadline(seconds: float) -> None:
    """Move the render's deadline ``seconds`` later: the time spent compiling a template
    it loads (its own on first use in a process, a partial it includes) is not rendering."""
    if _budget.steps is not None:
        _budget.deadline += seconds


def plain_arguments(args: tuple[Any, ...]) -> bool:
    """Whether a call's arguments are a few plain values (strings, numbers), as a macro is
    mostly called with: not worth measuring (what could be large is a container, or many
    of them from a ``*``)."""
    return len(args) <= _FEW_ARGUMENTS and all(type(arg) in _PLAIN for arg in args)


_FEW_ARGUMENTS = 4


def spend(count: int = 1) -> None:
    """``count`` steps, and a look at the clock."""
    steps = _budget.steps
    if steps is None:
        return
    if steps < count:
        raise RenderLimit(
            f"the template took more than {STEPS} steps (loop iterations, calls, filters, "
            "operators, comparisons and the items a filter calls a function on)"
        )
    _budget.steps = steps - count
    if monotonic() > _budget.deadline:
        raise RenderLimit(
            f"the template took more than {DEADLINE:g} second to render", timed_out=True
        )


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


def size_of(value: Any, cap: int) -> int:
    """How large ``value`` is: its characters, and ``ITEM_WORK`` for each item of each
    list, tuple, set or dict it holds, however often one is held (printing or comparing
    goes through each time). Counting stops past ``cap``."""
    total = 0
    waiting = [value]
    while waiting:
        item = waiting.pop()
        kind = type(item)
        if kind in _ATOMS:
            continue
        if isinstance(item, str):
            total += len(item)
        # (A dict is not tried against the ABCs there: ruling them out is slow.)
        elif kind is list or kind is tuple or (kind is not dict and isinstance(item, _FLAT)):
            total += ITEM_WORK * len(item)
            if total > cap:
                return total
            waiting.extend(item)
        elif isinstance(item, dict | ItemsView):
            total += ITEM_WORK * len(item)
            if total > cap:
                return total
            pairs = item.items() if isinstance(item, dict) else item
            for key, held in pairs:
                waiting += (key, held)
        elif kind is range:
            total += ITEM_WORK * len(item)
        elif kind is Namespace:
            waiting.append(object.__getattribute__(item, "_Namespace__attrs"))
        if total > cap:
            return total
    return total


def measured(value: Any) -> int:
    """``size_of(value)``, the measuring counted as work (it goes through the value)."""
    size = size_of(value, VALUE_SIZE)
    _add_work(size)
    return size


def checked(value: Any) -> Any:
    """``value``, if it is within the size a template may make; counted as work."""
    if isinstance(value, str):  # most often: a macro's output, a ``~``
        _too_large(len(value))
        _add_work(len(value))
        return value
    if type(value) is int:  # bool is an int too, and small
        if value.bit_length() > NUMBER_BITS:
            raise RenderLimit(f"a number of more than {NUMBER_BITS} bits")
        return value
    if isinstance(value, range):
        return value  # lazy: what goes through it is counted as it does
    size = size_of(value, VALUE_SIZE)
    _too_large(size)
    _add_work(size)
    return value


def work(value: Any, weight: int = 1) -> None:
    """Count the work of reading ``value``, ``weight`` times its size for what costs more
    than a pass in C."""
    if _budget.steps is None:
        return
    left = (WORK_SIZE - _budget.work) // weight + 1
    _add_work(weight * size_of(value, left))


def _add_work(size: int) -> None:
    if _budget.steps is None:
        return
    _budget.work += size
    if _budget.work > WORK_SIZE:
        raise RenderLimit(f"the template made or read more than {WORK_SIZE} characters")


def _too_large(size: int) -> None:
    if size > VALUE_SIZE:
        raise RenderLimit(f"a value larger than {VALUE_SIZE} characters")


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
    if isinstance(value, str):
        return len(value)
    if isinstance(value, list | tuple):
        return measured(value)
    return None


def check_binop(operator: str, left: Any, right: Any) -> None:
    """Refuse, before it is worked out, a ``*``, ``**``, ``+`` or ``%`` too large."""
    if operator == "*":
        for seq, times in ((left, right), (right, left)):
            size = _size(seq)
            if size is not None and _whole(times):
                _too_large(size * times)
        if _whole(left) and _whole(right) and left.bit_length() + right.bit_length() > NUMBER_BITS:
            raise RenderLimit(f"a number of more than {NUMBER_BITS} bits")
    elif operator == "**":
        whole = _whole(left) and _whole(right) and abs(left) > 1 and right > 0
        if whole and right * left.bit_length() > NUMBER_BITS:
            raise RenderLimit(f"a number of more than {NUMBER_BITS} bits")
    elif operator == "+":
        one, other = _size(left), _size(right)
        if one is not None and other is not None:
            _too_large(one + other)
    elif operator == "%" and isinstance(left, str):
        _check_format(left, right if isinstance(right, tuple) else (right,), "%")


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_format(text: str, args: Iterable[Any], marker: str) -> None:
    """A format string's result is at most its text and, for each field, the largest of
    its arguments: refuse one that could be larger, or whose widths cannot be bounded."""
    if _WIDE_FORMAT.search(text):
        raise RenderLimit("a format with a width or precision too large to be bounded")
    largest = max((measured(arg) for arg in args), default=0)
    _too_large(len(text) + text.count(marker) * largest)


def check_call(function: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, ...]:
    """Count what a call reads and refuse, before it runs, a call to a method templates
    are not offered, or whose result would be too large; the arguments to call with."""
    method = getattr(function, "__wrapped__", function)  # the sandbox wraps str.format
    owner = getattr(method, "__self__", None)
    if owner is None:
        return args
    if isinstance(owner, type) and issubclass(owner, _BUILT_IN_TYPES):
        raise RenderLimit(f"{owner.__name__}.{method.__name__} is not offered to templates")
    name = getattr(method, "__name__", "")
    for kind, allowed in _METHODS.items():
        if isinstance(owner, kind):
            if name not in allowed:
                raise RenderLimit(f"{kind.__name__}.{name} is not offered to templates")
            break
    else:
        if isinstance(owner, _BUILT_IN_TYPES):
            raise RenderLimit(f"{type(owner).__name__}.{name} is not offered to templates")
        return args
    for value in (owner, *args, *kwargs.values()):
        work(value)
    if not isinstance(owner, str):
        return args
    if name in _WIDTH_METHODS:
        _small_numbers(args, kwargs, VALUE_SIZE)
    elif name == "format":
        _check_format(owner, (*args, *kwargs.values()), "{")
    elif name == "format_map" and args and isinstance(args[0], dict):
        _check_format(owner, args[0].values(), "{")
    elif name == "replace" and len(args) >= 2:
        _check_replace(owner, args[0], args[1])
    elif name == "join" and args:
        items = args[0] if isinstance(args[0], list | tuple) else list(args[0])
        _check_join(owner, items)
        return (items, *args[1:])
    return args


def _small_numbers(args: tuple[Any, ...], kwargs: dict[str, Any], limit: int) -> None:
    for value in (*args, *kwargs.values()):
        if _whole(value) and value > limit:
            raise RenderLimit(f"a width or count above {limit}")


def _check_repeated_text(
    value: Any, args: tuple[Any, ...], kwargs: dict[str, Any], *, spaces: bool
) -> None:
    """``indent`` (its width, a number of ``spaces`` or a string) and ``wordwrap``'s
    ``wrapstring`` repeat a string once a line: refuse those whose result could be too
    large."""
    if not isinstance(value, str):
        return
    lines = value.count("\n") + 1
    for piece in (*args, *kwargs.values()):
        if isinstance(piece, str):
            _too_large(len(value) + len(piece) * (len(value) + 1))
        elif spaces and _whole(piece):
            _too_large(len(value) + piece * lines)


def _check_replace(text: Any, old: Any, new: Any) -> None:
    if not (isinstance(text, str) and isinstance(old, str) and isinstance(new, str)):
        return
    found = len(text) + 1 if old == "" else text.count(old)
    _too_large(len(text) + found * max(len(new) - len(old), 0))


def _check_join(separator: str, items: list[Any] | tuple[Any, ...]) -> None:
    _too_large(
        len(separator) * len(items)
        + sum(len(item) if isinstance(item, str) else measured(item) for item in items)
    )


def _stepping(items: Iterator[Any], count: int = 1) -> Iterator[Any]:
    for item in items:
        spend(count)
        yield item


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
    if _budget.steps is None:
        return value
    if isinstance(value, str):
        write(len(value))
    elif isinstance(value, list | tuple | set | frozenset | dict | Namespace):
        write(size_of(value, OUTPUT_SIZE))  # at least what it prints
    else:
        write(len(str(value)))
    return value


def bounded_filters(filters: dict[str, Callable[..., Any]]) -> dict[str, Callable[..., Any]]:
    """Jinja2's filters, each counting the work of what it reads and checking what it
    makes (those that size their result checked before they run), and the helpers the
    compiled templates call."""
    guarded = {
        name: _bounded_filter(name, original)
        for name, original in filters.items()
        if name not in LEFT_OUT_FILTERS
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
    calls = _KEYED_FILTERS.get(name, 0)
    attribute_of = _attribute_argument(name, original, at)
    lazy = name in _LAZY_FILTERS

    def guarded(*args: Any, **kwargs: Any) -> Any:
        spend()
        if len(args) > at:
            value = args[at]
            work(value, weight)
            lookups = 0 if attribute_of is None else _parts(attribute_of(args, kwargs))
            per_item = max(calls, 1) * (1 + lookups) if lookups else calls
            if per_item:
                if lazy or not isinstance(value, Sized):
                    value = _stepping(iter(value), per_item)  # paid as items go through
                else:
                    spend(len(value) * per_item)
                args = (*args[:at], value, *args[at + 1 :])
            if before is not None:
                value = before(value, args[at + 1 :], kwargs)
                args = (*args[:at], value, *args[at + 1 :])
        made = original(*args, **kwargs)
        if isinstance(made, Iterator):
            # A lazy filter (select, map, unique...) works in Python on each item that
            # goes through it, whoever reads it.
            return _stepping(made)
        return checked(made)

    for mark in ("jinja_pass_arg",):  # what Jinja2 reads to know what to pass
        if hasattr(original, mark):
            setattr(guarded, mark, getattr(original, mark))
    guarded.__name__ = getattr(original, "__name__", name)
    guarded.__doc__ = original.__doc__
    return guarded


def _attribute_argument(
    name: str, original: Callable[..., Any], at: int
) -> Callable[[tuple[Any, ...], dict[str, Any]], Any] | None:
    """How to find the ``attribute`` a call of filter ``name`` looks up on each item (among
    the arguments, the context or environment and the value included), if it takes one."""
    if name in ("selectattr", "rejectattr"):
        return lambda args, kwargs: args[at + 1] if len(args) > at + 1 else None
    if name == "map":  # map('upper') calls a filter, which pays for itself
        return lambda args, kwargs: None if len(args) > at + 1 else kwargs.get("attribute")
    if name not in _KEYED_FILTERS and name not in _ATTRIBUTE_FILTERS:
        return None
    parameters = list(inspect.signature(original).parameters)
    if "attribute" not in parameters:
        return None
    index = parameters.index("attribute")
    return lambda args, kwargs: args[index] if len(args) > index else kwargs.get("attribute")


def _parts(attribute: Any) -> int:
    """How many lookups an ``attribute`` takes on each item: ``a.b`` is two, and so is
    sort's ``a,b``."""
    if attribute is None:
        return 0
    if isinstance(attribute, str):
        return attribute.count(".") + attribute.count(",") + 1
    return 1


def _sized_by_arguments(value: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    _small_numbers(args, kwargs, VALUE_SIZE)
    return value


def _indented(value: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    _small_numbers(args, kwargs, VALUE_SIZE)
    _check_repeated_text(value, args, kwargs, spaces=True)
    return value


def _wrapped(value: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    _small_numbers(args, kwargs, VALUE_SIZE)
    _check_repeated_text(value, args, kwargs, spaces=False)
    if isinstance(value, str):
        _add_work(_long_words_work(value, args, kwargs))
    return value


def _long_words_work(text: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> int:
    """What ``wordwrap`` does with the runs longer than its width: textwrap breaks a word
    (or a run of spaces) by copying what is left of it at each line, the square of its
    length over the width."""
    width = kwargs.get("width", args[0] if args else 79)
    breaks = kwargs.get("break_long_words", args[1] if len(args) > 1 else True)
    if not breaks or not _whole(width) or width < 1 or width >= len(text):
        return 0
    return sum(
        (found.end() - found.start()) ** 2 // width
        for found in _long_runs(width + 1).finditer(text)
    )


@lru_cache(maxsize=32)  # a template picks the width: a few kept, not one per width
def _long_runs(length: int) -> re.Pattern[str]:
    """Runs of ``length`` or more characters that are all ASCII whitespace or none (the
    chunks textwrap splits a text into: a no-break space is inside a word). Each run is
    tried once, from its start, so the search takes time in proportion to the text."""
    space = r"\t\n\x0b\x0c\r "
    return re.compile(
        rf"(?<![^{space}])[^{space}]{{{length},}}|(?<![{space}])[{space}]{{{length},}}"
    )


def _short_indent(value: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    _small_numbers(args, kwargs, _JSON_INDENT)
    return value


def _few(value: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    _small_numbers(args, kwargs, VALUE_SIZE // ITEM_WORK)
    return value


def _narrow_format(value: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    if isinstance(value, str):
        _check_format(value, (*args, *kwargs.values()), "%")
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


def _numbers_only(value: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    # Adding lists (``sum(start=[])``) copies the sum so far at each item: the square of
    # their length.
    items = value if isinstance(value, list | tuple) else list(value)
    start = kwargs.get("start", args[1] if len(args) > 1 else 0)
    if not _whole(start) and not isinstance(start, float):
        raise RenderLimit("sum adds numbers")
    return items


_BEFORE: dict[str, Callable[[Any, tuple[Any, ...], dict[str, Any]], Any]] = {
    **dict.fromkeys(_WIDTH_FILTERS, _sized_by_arguments),
    **dict.fromkeys(_COUNT_FILTERS, _few),
    "indent": _indented,
    "wordwrap": _wrapped,
    "tojson": _short_indent,
    "format": _narrow_format,
    "replace": _small_replacement,
    "join": _small_join,
    "sum": _numbers_only,
}


def bound_loops(template: nodes.Template) -> nodes.Template:
    """Rewrite a parsed template so that what it makes is counted: each loop takes its
    items through ``loop_items``, each expression its body writes goes through
    ``written``, and each run of a loop's, a macro's or a call block's body spends its
    weight; each ``~`` result and each list, tuple or dict literal goes through
    ``checked``, and what a comparison compares through ``work``."""
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

    def visit_List(self, node: nodes.List) -> nodes.Node:
        self.generic_visit(node)
        return _filtered(node, VALUE_FILTER)

    def visit_Dict(self, node: nodes.Dict) -> nodes.Node:
        self.generic_visit(node)
        return _filtered(node, VALUE_FILTER)

    def visit_Tuple(self, node: nodes.Tuple) -> nodes.Node:
        self.generic_visit(node)
        # A tuple that is assigned to (``for a, b in ...``) is no value.
        return _filtered(node, VALUE_FILTER) if node.ctx == "load" else node

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
