"""Every render is bounded, in the daemon as in the editor's checks: a template cannot make
the process that renders it spend unbounded time or memory, whatever the account's data.
Each template below would hang or exhaust the process without the bounds; each fails
instead with ``RenderLimit`` and its line, the way a template's own error does."""

from __future__ import annotations

from typing import Any

import pytest

from outreach.rendering import environment, limits
from outreach.rendering.context import SAMPLE_ACCOUNTS, SAMPLE_TODAY, build_context, load_company
from outreach.rendering.environment import read_template_files
from outreach.rendering.limits import RenderLimit
from outreach.rendering.render import Renderer, RenderError
from tests.conftest import REPO
from tests.test_rendering import render_source

EMAIL = "email/x.firm.j2"


def email(body: str) -> str:
    return (
        "{% block subject %}Balance{% endblock %}"
        "{% block text %}" + body + "{% endblock %}"
        "{% block html %}<p>" + body + "</p>{% endblock %}"
    )


ATTACKS = {
    "nested loops": "{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}"
    "{% endfor %}",
    "a macro calling itself twice": "{% macro f(n) %}{% if n %}{{ f(n - 1) }}{{ f(n - 1) }}"
    "{% endif %}{% endmacro %}{{ f(60) }}",
    "a recursive loop": "{% for x in [60] recursive %}{% if x %}{{ loop([x - 1, x - 1]) }}"
    "{% endif %}{% endfor %}",
    "doubling with ~": "{% macro f(s, n) %}{% if n %}{{ f(s ~ s, n - 1) }}{% else %}"
    "{{ s|length }}{% endif %}{% endmacro %}{{ f('x', 40) }}",
    "doubling in a namespace": "{% set ns = namespace(s='x') %}{% for i in range(64) %}"
    "{% set ns.s = ns.s + ns.s %}{% endfor %}{{ ns.s|length }}",
    "a pile of copies": "{% set ns = namespace(l=[]) %}{% set s = 'x' * 900000 %}"
    "{% for i in range(5000) %}{% set ns.l = ns.l + [s ~ i] %}{% endfor %}{{ ns.l|length }}",
    "a huge repeat": "{{ ('x' * 1000) * 1000000 }}",
    "a huge list": "{{ ([1] * 100000000)|length }}",
    "a huge power": "{{ (10 ** 100000000) % 7 }}",
    "squaring in a loop": "{% set ns = namespace(n=3) %}{% for i in range(40) %}"
    "{% set ns.n = ns.n * ns.n %}{% endfor %}{{ ns.n % 7 }}",
    "a %-format width": "{{ '%*d' % (2000000000, 1) }}",
    "a str.format width": "{{ '{:>2000000000}'.format(1) }}",
    "the format filter": "{{ '%2000000000d'|format(1) }}",
    "ljust": "{{ 'x'.ljust(2000000000) }}",
    "center": "{{ 'x'|center(2000000000) }}",
    "indent with a long string": "{{ ('a\\n' * 200000)|indent('x' * 100000) }}",
    "wordwrap with a long wrapstring": "{{ ('a ' * 200000)|wordwrap(1, wrapstring='x' * 100000) }}",
    # textwrap breaks a long word by copying the rest of it at each line: quadratic.
    "wordwrap breaking a long word": "{{ ('x' * 400000)|wordwrap(1) }}",
    # ... and a run of spaces, which it breaks alike.
    "wordwrap breaking a run of spaces": "{{ (' ' * 200000)|wordwrap(1)|length }}",
    # textwrap keeps a no-break space inside a word: such a "word" is as long.
    "wordwrap breaking words joined by no-break spaces": "{{ ('x\u00a0' * 400000)|wordwrap(1) }}",
    "wordwrap breaking long words, named": "{{ (('x' * 40000 ~ ' ') * 10)|wordwrap(width=2, "
    "break_long_words=true) }}",
    "replace with nothing found everywhere": "{{ ('x' * 100000).replace('', 'y' * 100000) }}",
    "the replace filter": "{{ ('x' * 100000)|replace('x', 'y' * 100000) }}",
    "join with a long separator": "{{ range(100000)|join('y' * 100000) }}",
    "join through map": "{{ range(100000)|map('string')|join('y' * 100000) }}",
    "batch filled up": "{{ [1]|batch(2000000000, 'x')|list|length }}",
    "scanning again and again": "{% set s = 'ab' * 500000 %}{% for i in range(9000) %}"
    "{% if 'abc' in s %}x{% endif %}{% endfor %}",
    "sorting again and again": "{% set l = range(100000)|list %}{% for i in range(9000) %}"
    "{{ (l|sort|first) }}{% endfor %}",
    "slicing again and again": "{% set s = 'x' * 900000 %}{% for i in range(9000) %}"
    "{{ s[1:]|length }}{% endfor %}",
    # Sizes set by an argument, by a dict's values, or by lists held many times over.
    "a format width from an argument": "{{ '{:{}}'.format('x', 999999999)|length }}",
    "a format_map width": "{{ '{a:{b}}'.format_map({'a': 'x', 'b': 999999999})|length }}",
    "a format field many times": "{% set s = 'x' * 900000 %}{{ ('{0}' * 100).format(s)|length }}",
    "a %-field many times": "{% set s = 'x' * 900000 %}{{ ('%s' * 100) % ((s,) * 100) }}",
    "expandtabs": "{{ ('\t' * 1000).expandtabs(999999)|length }}",
    "translate": "{{ ('a' * 1000).translate({97: 'b' * 999999})|length }}",
    "dict.fromkeys": "{{ ''.join({}.fromkeys(range(1000), 'x' * 999999).values())|length }}",
    "joining one long string many times": "{% set s = 'x' * 900000 %}"
    "{{ ''.join(range(100)|map('string')|map('replace', '', s))|length }}",
    "indent by a wide number on every line": "{{ ('\\n' * 1000)|indent(999999, true, true)"
    "|length }}",
    "printing lists held many times": "{{ [[[[0] * 100] * 100] * 100] * 100 }}",
    "tojson of lists held many times": "{{ ([[[[0] * 100] * 100] * 100] * 30)|tojson|length }}",
    "tojson with a wide indent": "{{ (range(1000)|list)|tojson(999999)|length }}",
    "comparing lists held many times": "{% set x = [[[0] * 100] * 100] * 50 %}"
    "{% set y = [[[0] * 100] * 100] * 50 %}{{ x == y }}",
    "a sum of lists": "{{ ([[0]] * 20000)|sum(start=[])|length }}",
    "slices by the million": "{{ [1]|slice(999999, 0)|list|length }}",
    # Work done in Python on each item of a lazy filter, or in measuring, or hidden in the
    # arguments of a call.
    "lazy filters stacked": "{% set s = 'x' * 200000 %}{{ s" + "|select" * 150 + "|list|length }}",
    "measuring a list again and again": "{% set l = range(49000)|list %}"
    "{% for i in range(100) %}{{ l * 0 }}{% endfor %}",
    "a list repeated into a call's arguments": "{% set l = range(40000)|list %}"
    "{% set c = cycler(*(range(1500)|map(attribute='zz', default=l))) %}{{ c.items }}",
    "a list repeated into a macro's arguments": "{% set l = range(40000)|list %}"
    "{% macro f() %}{{ varargs|length }}{% endmacro %}"
    "{{ f(*(range(1500)|map(attribute='zz', default=l))) }}",
    "a large dict measured again and again": "{% set d = dict(range(99998)|batch(2)) %}"
    "{% for i in range(30) %}{{ d|length }}{% endfor %}",
    # Filters that call a Python function on each item (a key, an attribute looked up),
    # each item a step, and filters that go word by word or line by line, weighed as such.
    "max by an attribute, again and again": "{% set s = 'ab' * 500000 %}"
    "{% for i in range(8) %}{% set m = s|max(attribute=0) %}{% endfor %}",
    "max of a long text, ignoring case": "{{ ('ab' * 60000)|max }}",
    "unique letters of a long text": "{{ ('ab' * 60000)|unique|list|length }}",
    "sorting by a long attribute": "{{ ('ab' * 5000)|sort(attribute="
    + repr("0." * 19 + "0")
    + ")|length }}",
    "mapping through a long attribute": "{{ ('ab' * 10000)|map(attribute="
    + repr("0." * 49 + "0")
    + ")|list|length }}",
    "grouping a long text": "{{ ('ab' * 20000)|groupby(0)|length }}",
    "a dict sorted by value again and again": "{% set d = dict(range(20000)|map('string')"
    "|batch(2)) %}{% for i in range(15) %}{% set x = d|dictsort(by='value') %}{% endfor %}",
    "title again and again": "{% set s = 'a ' * 100000 %}{% for i in range(40) %}"
    "{% set t = s|title %}{% endfor %}",
    "counting words again and again": "{% set s = 'a ' * 500000 %}{% for i in range(19) %}"
    "{% set n = s|wordcount %}{% endfor %}",
    "wordwrap again and again": "{% set s = 'a ' * 100000 %}{% for i in range(4) %}"
    "{% set t = s|wordwrap(1) %}{% endfor %}",
}


def test_lipsum_is_not_offered() -> None:
    with pytest.raises(RenderError, match="'lipsum' is undefined"):
        render_source("{{ lipsum(1, false, 3000000, 3000001) }}{{ opt_out_text }}")


@pytest.mark.parametrize("source", ATTACKS.values(), ids=ATTACKS.keys())
def test_a_template_past_a_bound_fails_with_its_line(source: str) -> None:
    with pytest.raises(RenderError) as raised:
        render_source(source + "{{ opt_out_text }}")
    assert isinstance(raised.value.cause, RenderLimit)
    assert raised.value.line == 1


LONG_OUTPUT = {
    "a long loop writing": "{% set s = 'x' * 900000 %}{% for i in range(9000) %}{{ s }}"
    "{% endfor %}",
    "writing outside loops": "{% set s = 'x' * 900000 %}" + "{{ s }}" * 50,
}


@pytest.mark.parametrize("source", LONG_OUTPUT.values(), ids=LONG_OUTPUT.keys())
def test_a_render_that_writes_too_much_is_stopped_as_it_writes(source: str) -> None:
    with pytest.raises(RenderError, match="wrote more than 1000000 characters") as raised:
        render_source(source + "{{ opt_out_text }}")
    assert isinstance(raised.value.cause, RenderLimit)


@pytest.mark.parametrize("source", [ATTACKS["nested loops"], ATTACKS["doubling with ~"],
                                    LONG_OUTPUT["a long loop writing"]])  # fmt: skip
def test_email_blocks_are_bounded_too(source: str) -> None:
    with pytest.raises(RenderError) as raised:
        render_source(email(source), EMAIL)
    assert isinstance(raised.value.cause, RenderLimit)


def test_filters_that_could_take_quadratic_time_are_not_offered() -> None:
    for name in ("striptags", "urlize"):
        with pytest.raises(Exception, match=f"No filter named '{name}'"):
            render_source("{{ 'x'|" + name + " }}{{ opt_out_text }}")


def test_ordinary_templates_stay_well_within_the_bounds() -> None:
    """Loops over a few hundred items, filters, joins, formats and comparisons render as
    they always have."""
    source = (
        "{% set ns = namespace(total=0) %}"
        "{% for i in range(500) %}{% set ns.total = ns.total + i %}{% endfor %}"
        "{{ ns.total }} {{ range(300)|map('string')|join(',')|length }} "
        "{{ '%05.1f'|format(3.14159) }} {{ '{:>8}'.format('ok') }} {{ 'ab' * 3 }} "
        "{{ 2 ** 10 }} {{ 'b' in 'abc' }} {{ ('x' ~ 'y')|center(6) }}|"
        "{{ 'a b c'|replace(' ', '-') }} {{ [3, 1, 2]|sort|join }} {{ 'abcdef'[1:3] }}"
        "{% for w in ('one two three ' * 50).split() %}{{ loop.index }}{% endfor %}"
        "{{ opt_out_text }}"
    )
    text = render_source(source).text
    assert text.startswith("124750 1089 003.1       ok ababab 1024 True   xy  |a-b-c 123 bc123")


def test_wordwrap_breaks_words_and_wraps_long_texts_within_the_bounds() -> None:
    source = (
        "{{ ('abcdefghij' * 3)|wordwrap(8) }}|{{ (('word ' * 20000)|wordwrap(10))|length }}|"
        "{{ (('x' * 4000 ~ ' ') * 10)|wordwrap(2, break_long_words=false)|length }}"
        "{{ opt_out_text }}"
    )
    text = render_source(source).text
    assert text.startswith("abcdefgh\nijabcdef\nghijabcd\nefghij|99999|40009")


def test_sorting_grouping_and_comparing_by_attribute_still_work() -> None:
    """The filters charged a step per item keep their use in a message: a few items sorted,
    grouped, deduplicated or summed by an attribute, case-insensitively or not."""
    source = (
        "{% set rows = [{'n': 'b', 'v': 2}, {'n': 'A', 'v': 1}, {'n': 'a', 'v': 3}] %}"
        "{{ rows|sort(attribute='n,v')|map(attribute='v')|join }} "
        "{{ (rows|max(attribute='v')).n }} {{ rows|unique(attribute='n')|list|length }} "
        "{% for g in rows|groupby('n') %}{{ g.grouper }}{{ g.list|length }}{% endfor %} "
        "{{ rows|sum(attribute='v') }} {{ rows|selectattr('v', 'gt', 1)|list|length }} "
        "{{ {'b': 1, 'a': 2}|dictsort(by='value')|first|first }} {{ 'pay now'|title }} "
        "{{ 'one two three'|wordcount }}{{ opt_out_text }}"
    )
    text = render_source(source).text
    assert text.startswith("132 a 2 A2b1 6 2 b Pay Now 3")


def test_a_render_past_its_time_is_stopped_at_its_next_step(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A backstop for work the bounds weigh wrong: each step looks at the clock, and a
    render that has run past ``DEADLINE`` fails on its line, as past any bound. (The clock
    here moves a tenth of a second each time it is read.)"""
    now = iter(x / 10 for x in range(1_000_000))
    monkeypatch.setattr(limits, "monotonic", lambda: next(now))
    with pytest.raises(RenderError, match="took more than 1 second to render") as raised:
        render_source("Hi\n{% for i in range(50) %}{{ i }}{% endfor %}{{ opt_out_text }}")
    assert isinstance(raised.value.cause, RenderLimit)
    assert raised.value.line == 2


def test_compiling_a_template_is_not_counted_as_rendering_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A process's first render of a template compiles it, and each partial it includes,
    on the way: on a busy machine that can take more than the deadline, and the message
    is no slower to render for it. (Each compile here moves the clock 0.6 seconds; the
    shipped reminder email compiles four times.)"""
    clock = [0.0]
    monkeypatch.setattr(limits, "monotonic", lambda: clock[0])
    monkeypatch.setattr(environment, "monotonic", lambda: clock[0])
    generate = environment.MessageEnvironment._generate

    def slow(self: environment.MessageEnvironment, *args: Any, **kwargs: Any) -> str:
        clock[0] += 0.6
        return generate(self, *args, **kwargs)

    monkeypatch.setattr(environment.MessageEnvironment, "_generate", slow)
    renderer = Renderer(read_template_files(REPO / "templates"))
    key = renderer.resolve("email", "reminder", "friendly", "en_US")
    facts = SAMPLE_ACCOUNTS[0]
    company = load_company(REPO / "templates")
    rendered = renderer.render_key(key, build_context(facts, company, SAMPLE_TODAY, "en", "email"))
    assert clock[0] >= 2.4 and rendered.html


def test_the_bounds_are_each_renders_own() -> None:
    """A render starts with its whole budget, whatever the renders before it spent."""
    source = "{% for i in range(9000) %}{% endfor %}{{ opt_out_text }}"
    for _ in range(3):
        render_source(source)


def test_outside_a_render_nothing_is_counted() -> None:
    limits.spend()
    limits.write(limits.OUTPUT_SIZE + 1)
    assert limits.checked("x" * 10) == "x" * 10
