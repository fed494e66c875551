"""Template lint: the shipped templates pass, and each issue code is found where it belongs."""

from __future__ import annotations

import multiprocessing
import os
import re
import signal
import sys
from functools import cache
from typing import Any

import pytest

from outreach.rendering import answer_styles, lint_limits
from outreach.rendering.answer_styles import MAX_CONDITIONS, Uncheckable
from outreach.rendering.answer_text import check_answer_shown, shown_text, shown_texts
from outreach.rendering.context import SAMPLE_ACCOUNTS, Company, load_company
from outreach.rendering.environment import PARTIALS_DIR, TemplateKey, read_template_files
from outreach.rendering.lint import MAX_TEMPLATE_CHARACTERS, LintIssue, LintPolicy, lint_sources
from outreach.rendering.lint_limits import lint_sources_bounded, preview_bounded
from outreach.rendering.render import Rendered
from tests.conftest import REPO

SHIPPED = read_template_files(REPO / "templates")
PARTIALS = {p: s for p, s in SHIPPED.items() if p.startswith(f"{PARTIALS_DIR}/")}

SMS = "sms/x.firm.j2"
EMAIL = "email/x.firm.j2"
VOICE = "voice/x.firm.j2"

GOOD_SMS = (
    "Hi {{ debtor.first_name }}, {{ amount }} is due: {{ payment_link }}\n"
    "{%- include '_partials/sms_footer.j2' %}"
)
EMAIL_SUBJECT = "{% block subject %}{{ amount }} is due{% endblock %}\n"
EMAIL_TEXT = (
    "{% block text %}\nHi {{ debtor.first_name }}, pay {{ amount }}: {{ payment_link }}\n"
    '{% include "_partials/email_footer.txt.j2" %}\n{% endblock %}\n'
)
EMAIL_HTML = (
    "{% block html %}\n"
    '{% import "_partials/email.html.j2" as email with context %}\n'
    "{% call email.layout() %}<p>Hi {{ debtor.first_name }}, pay {{ amount }}.</p>{% endcall %}\n"
    "{% endblock %}\n"
)
GOOD_EMAIL = EMAIL_SUBJECT + EMAIL_TEXT + EMAIL_HTML
VOICE_HUMAN = (
    "{% block human %}\nHello {{ debtor.name }}, this is {{ company.name }}.\n"
    "{% if disclosure %}{{ disclosure }}{% endif %}\n"
    "Your balance is {{ amount }}.\n{% endblock %}\n"
)
GOOD_VOICEMAIL = (
    "Hello, this is {{ company.agent_name }} from {{ company.lcm_name }}. "
    "Please call me back at {{ company.phone }}."
)


def voice(voicemail: str) -> str:
    return VOICE_HUMAN + "{% block voicemail %}\n" + voicemail + "\n{% endblock %}\n"


GOOD_VOICE = voice(GOOD_VOICEMAIL)


@cache
def company() -> Company:
    return load_company(REPO / "templates")


def lint(path: str, source: str, policy: LintPolicy | None = None) -> list[LintIssue]:
    return lint_sources(
        {path: source, **PARTIALS}, company(), paths=[path], policy=policy or LintPolicy()
    )


def codes(issues: list[LintIssue]) -> set[str]:
    return {issue.code for issue in issues}


def test_the_shipped_templates_lint_clean() -> None:
    assert lint_sources(SHIPPED, company()) == []


@pytest.mark.parametrize(
    ("path", "source"),
    [(SMS, GOOD_SMS), (EMAIL, GOOD_EMAIL), (VOICE, GOOD_VOICE)],
    ids=["sms", "email", "voice"],
)
def test_the_small_templates_below_start_clean(path: str, source: str) -> None:
    assert lint(path, source) == []


# --- parsing and structure ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "source", "line"),
    [
        pytest.param(SMS, "Hi\n\n{{ debtor.name }\n{{ opt_out_text }}", 3, id="unclosed"),
        pytest.param(SMS, "Hi\n{% if amount %}\n{{ amount }}\n{% endfi %}\n", 4, id="bad end tag"),
        pytest.param(SMS, "Hi {{ amount | nosuchfilter }}", 1, id="unknown filter"),
        pytest.param(EMAIL, EMAIL_SUBJECT + "{% block text %}\n{{ amount +}}\n{% endblock %}",
                     3, id="email"),
        pytest.param(f"{PARTIALS_DIR}/broken.j2", "line one\n{% for x in %}\n", 2,
                     id="partial"),
    ],
)  # fmt: skip
def test_syntax_errors_give_the_line(path: str, source: str, line: int) -> None:
    issues = lint(path, source)
    assert [(i.path, i.code, i.line) for i in issues] == [(path, "SYNTAX", line)]
    assert issues[0].message
    assert str(issues[0]).startswith(f"{path}:{line}: SYNTAX: ")


@pytest.mark.parametrize(
    ("path", "source", "missing"),
    [
        pytest.param(EMAIL, EMAIL_SUBJECT + EMAIL_TEXT, ["html"], id="email without html"),
        pytest.param(EMAIL, EMAIL_HTML, ["subject", "text"], id="email with html only"),
        pytest.param(VOICE, VOICE_HUMAN, ["voicemail"], id="voice without voicemail"),
        pytest.param(VOICE, "Hello {{ company.name }}", ["human", "voicemail"], id="voice plain"),
    ],
)
def test_missing_blocks(path: str, source: str, missing: list[str]) -> None:
    issues = lint(path, source)
    assert [(i.code, i.line) for i in issues] == [("MISSING_BLOCK", None)] * len(missing)
    for issue, block in zip(issues, missing, strict=True):
        assert f"{{% block {block} %}}" in issue.message


def test_unknown_variables_give_the_line() -> None:
    source = GOOD_SMS.replace("{{ amount }}", "{{ amount }}\n\n{{ balance }} {{ debtor_name }}")
    issues = lint(SMS, source)
    assert [(i.code, i.line) for i in issues] == [
        ("UNKNOWN_VARIABLE", 3),
        ("UNKNOWN_VARIABLE", 3),
    ]
    assert "'balance' is not a template variable" in issues[0].message
    assert "'debtor_name'" in issues[1].message


def test_only_the_answer_templates_know_the_agents_words() -> None:
    with_answer = "{{ answer }} " + GOOD_SMS
    assert [(i.code, i.line) for i in lint(SMS, with_answer)] == [("UNKNOWN_VARIABLE", 1)]
    # SAMPLE-2's long answer, with the whole disclosure of a first contact: four segments.
    assert lint("sms/answer.agent.j2", with_answer, LintPolicy(max_sms_segments=4)) == []
    # Rendered with the sample answers: markup and template syntax in them stay text.
    answer = "{{ answer }}\n{%- include '_partials/sms_footer.j2' %}"
    assert lint("sms/answer.agent.j2", answer) == []
    preview = preview_bounded(
        {"sms/answer.agent.j2": answer, **PARTIALS}, "sms/answer.agent.j2", company(),
        SAMPLE_ACCOUNTS[3],
    )  # fmt: skip
    assert preview.rendered is not None
    assert preview.rendered.text.startswith('<b>Noted</b> {{ 7 * 7 }} & "thanks"')


@pytest.mark.parametrize(
    ("path", "source", "parts"),
    [
        ("sms/answer.agent.j2", GOOD_SMS, ["text"]),  # no {{ answer }} at all
        ("sms/answer.agent.j2", "{{ answer[:40] }}\n{%- include '_partials/sms_footer.j2' %}",
         ["text"]),  # cut short
        ("sms/answer.agent.j2", "{{ answer | truncate(30) }}\n{%- include "
         "'_partials/sms_footer.j2' %}", ["text"]),
        ("email/answer.agent.j2", EMAIL_SUBJECT + EMAIL_TEXT.replace("Hi", "{{ answer }} Hi")
         + EMAIL_HTML, ["html"]),  # in the text body only
        ("email/answer.agent.j2", GOOD_EMAIL, ["text", "html"]),
    ],
)  # fmt: skip
def test_an_answer_template_must_show_the_whole_answer(
    path: str, source: str, parts: list[str]
) -> None:
    issues = [i for i in lint(path, source) if i.code == "ANSWER_INCOMPLETE"]
    assert sorted({i.message.split()[1] for i in issues}) == sorted(parts)
    assert "include {{ answer }} as it is" in issues[0].message


ANSWER = "email/answer.agent.j2"


def answer_email(markup: str, layout: bool = True) -> str:
    """An answer email showing the answer in its text body, and ``markup`` as its HTML
    body: inside the shared layout, or (``layout=False``) as the whole document."""
    if layout:
        markup = (
            '{% import "_partials/email.html.j2" as email with context %}\n'
            "{% call email.layout() %}" + markup + "{% endcall %}"
        )
    return (
        EMAIL_SUBJECT + EMAIL_TEXT.replace("Hi", "{{ answer }} Hi")
        + "{% block html %}\n" + markup + "\n{% endblock %}\n"
    )  # fmt: skip


HIDE = "{{ answer }}"  # where the answer goes in the markup below


@pytest.mark.parametrize(
    ("markup", "layout"),
    [
        pytest.param(f'<div style="display:none">{HIDE}</div>', True, id="display none"),
        pytest.param(f'<p style="DISPLAY : None !IMPORTANT">{HIDE}</p>', True,
                     id="display none, any case, important"),
        pytest.param(f'<p style="color: #222; display: none; font-weight: bold">{HIDE}</p>', True,
                     id="display none among other declarations"),
        pytest.param(f'<p style="display: block; display: none">{HIDE}</p>', True,
                     id="the last display wins"),
        pytest.param(f'<p style="display: none !important; display: block">{HIDE}</p>', True,
                     id="an important display wins over a later one"),
        pytest.param(f'<p style="display: none; display: nonsense">{HIDE}</p>', True,
                     id="a later invalid display is dropped"),
        pytest.param(f'<p style="display:/* preheader */none">{HIDE}</p>', True,
                     id="display none around a comment"),
        pytest.param(f'<p style="visibility: hidden">{HIDE}</p>', True, id="visibility hidden"),
        pytest.param(f"<p hidden>{HIDE}</p>", True, id="hidden attribute"),
        pytest.param(f'<div hidden="hidden"><p>{HIDE}</p></div>', True,
                     id="inside a hidden element"),
        pytest.param(f"<template>{HIDE}</template>", True, id="template"),
        pytest.param(f'<script type="text/plain">{HIDE}</script>', True, id="script"),
        pytest.param(f"<style>{HIDE}</style>", True, id="style"),
        pytest.param(f"<title>{HIDE}</title>", True, id="title"),
        pytest.param(f"<!-- {HIDE} -->", True, id="comment"),
        pytest.param(f"<!-- {HIDE} -- > -->", True, id="comment not closed by -- >"),
        pytest.param(
            f"<html><head><title>{HIDE}</title></head><body><p>Hi</p><p>{{{{ disclosure }}}}</p>"
            '<a href="{{ unsubscribe_url }}">Unsubscribe</a></body></html>', False,
            id="head"),
        pytest.param(f'<p style="font-size:0">{HIDE}</p>', True, id="font-size 0"),
        pytest.param(f'<p style="font-size: 0px">{HIDE}</p>', True, id="font-size 0px"),
        pytest.param(f'<p style="font-size:0pt">{HIDE}</p>', True, id="font-size 0pt"),
        pytest.param(f'<p style="font-size:0em !important">{HIDE}</p>', True,
                     id="font-size 0em"),
        pytest.param(f'<p style="font: 0/0 a">{HIDE}</p>', True, id="font shorthand 0"),
        pytest.param(f'<div style="font-size:0"><p style="font-size:2em">{HIDE}</p></div>', True,
                     id="font-size relative to a zero one"),
        pytest.param(f'<p style="opacity:0">{HIDE}</p>', True, id="opacity 0"),
        pytest.param(f'<p style="opacity: 0.0">{HIDE}</p>', True, id="opacity 0.0"),
        pytest.param(f'<div style="opacity:0"><p style="opacity:1">{HIDE}</p></div>', True,
                     id="inside a transparent element"),
        pytest.param(f'<div style="max-height:0;overflow:hidden">{HIDE}</div>', True,
                     id="max-height 0 overflow hidden"),
        pytest.param(f'<div style="overflow: hidden; max-height: 0px">{HIDE}</div>', True,
                     id="overflow hidden max-height 0px"),
        pytest.param(f'<div style="mso-hide:all">{HIDE}</div>', True, id="mso-hide all"),
        pytest.param(f'<div style="display:none"><p>Hi<br><img src="a.png"><p>{HIDE}</div>',
                     True, id="void and unclosed elements inside a hidden one"),
        pytest.param(f'<div style="display:none"><div>a<div>b</div></div><p>{HIDE}</p>', True,
                     id="nested divs: the hidden one is never closed"),
        pytest.param(f'<div style="display:none">Hi<p>{HIDE}</p>', True,
                     id="an unclosed hidden element hides what follows"),
        pytest.param(f'<span style="display:none"><div>Hi</span><p>{HIDE}</p></div>', True,
                     id="an end tag does not close across a block"),
        pytest.param(f'<p><b style="display:none">Hi</p><p>{HIDE}</p>', True,
                     id="an unclosed b goes on in the next paragraph"),
        pytest.param(f'<div style="display:none">Hi</body></html><p>{HIDE}</p>', True,
                     id="a closing body tag closes nothing"),
        # Style sheets, in head or body.
        pytest.param(
            "<html><head><style>.reply { display: none; }</style></head><body>"
            f'<p class="reply">{HIDE}</p><p>{{{{ disclosure }}}}</p>'
            '<a href="{{ unsubscribe_url }}">Unsubscribe</a></body></html>', False,
            id="a class in a style sheet in head"),
        pytest.param(f"<style>#answer {{ display: none }}</style><p id=answer>{HIDE}</p>", True,
                     id="an id rule"),
        pytest.param("<style>@media only screen and (max-width: 600px) { .wide { display: none "
                     f'!important; }} }}</style><div class="wide">{HIDE}</div>', True,
                     id="a rule inside @media"),
        pytest.param(f'<style>.x {{ display: none !important }}</style><p class="x" '
                     f'style="display: block">{HIDE}</p>', True,
                     id="an important sheet rule beats an inline display block"),
        pytest.param(f'<style>.narrow {{ display: none }} @media (max-width: 600px) {{ .narrow '
                     f'{{ display: block !important }} }}</style><div class="narrow">{HIDE}</div>',
                     True, id="a rule inside @media does not show what the sheet hides"),
        pytest.param(f"<style>div p {{ opacity: 0 }} p {{ opacity: 1 }}</style><div><p>{HIDE}</p>"
                     "</div>", True, id="the more specific sheet rule wins"),
        pytest.param(f'<style>.quiet {{ color: #fff }}</style><p class="quiet">{HIDE}</p>', True,
                     id="white text by a class"),
        # Off screen, clipped, scaled away.
        pytest.param(f'<div style="position: absolute; left: -9999px">{HIDE}</div>', True,
                     id="off screen left -9999px"),
        pytest.param(f'<div style="position:fixed;top:-80em">{HIDE}</div>', True,
                     id="off screen top -80em"),
        pytest.param(f'<div style="margin: 0 0 0 -2000px">{HIDE}</div>', True,
                     id="off screen margin-left"),
        pytest.param(f'<p style="text-indent: -9999px">{HIDE}</p>', True, id="text-indent"),
        pytest.param(f'<span style="position:absolute;clip:rect(0 0 0 0)">{HIDE}</span>', True,
                     id="clip rect 0"),
        pytest.param(f'<span style="position:absolute;clip:rect(0,0,0,0)">{HIDE}</span>', True,
                     id="clip rect 0 with commas"),
        pytest.param(f'<p style="clip-path: inset(50%)">{HIDE}</p>', True, id="clip-path inset"),
        pytest.param(f'<p style="transform: scale(0)">{HIDE}</p>', True, id="transform scale 0"),
        pytest.param(f'<p style="width: 0; overflow: hidden">{HIDE}</p>', True,
                     id="width 0 overflow hidden"),
        # The colour of the background.
        pytest.param(f'<p style="color: #fff">{HIDE}</p>', True,
                     id="white text with no background"),
        pytest.param(f'<table><tr><td bgcolor="#1f5fbf"><span style="color: #1F5FBF">{HIDE}'
                     "</span></td></tr></table>", True, id="text the colour of its td's bgcolor"),
        pytest.param(f'<div style="background: #000"><p style="color: black">{HIDE}</p></div>',
                     True, id="black text on a black background"),
        pytest.param(f'<p style="color: transparent">{HIDE}</p>', True, id="color transparent"),
        pytest.param(f'<p style="color: rgba(0, 0, 0, 0)">{HIDE}</p>', True, id="alpha 0"),
    ],
)  # fmt: skip
def test_an_answer_hidden_in_the_html_is_refused(markup: str, layout: bool) -> None:
    issues = lint(ANSWER, answer_email(markup, layout))
    # A hiding element left open hides the layout's disclosure and unsubscribe link too.
    hidden_too = {"REGF_MINI_MIRANDA_MISSING", "REGF_OPTOUT_NOTICE_MISSING"}
    issues = [i for i in issues if i.code not in hidden_too]
    assert codes(issues) == {"ANSWER_INCOMPLETE"}
    assert {i.message.split()[1] for i in issues} == {"html"}
    assert len(issues) == len(SAMPLE_ACCOUNTS)


@pytest.mark.parametrize(
    "markup",
    [
        pytest.param(f"<p>{HIDE}</p>", id="paragraph"),
        pytest.param(
            '<table role="presentation" width="100%"><tr><td style="font-size:0px">'
            f'<div style="font-size:14px;line-height:20px">{HIDE}</div></td></tr></table>',
            id="table with a zero font-size cell"),
        pytest.param('{% for line in answer.splitlines() %}{{ line }}<br>{% endfor %}',
                     id="br between lines"),
        pytest.param(f"<p>Hi&nbsp;{{{{ debtor.first_name }}}} &mdash; &#8203;</p><p>{HIDE}</p>",
                     id="entities"),
        pytest.param('<div style="display: block"><div style="DISPLAY:block !important">'
                     f"<div>{HIDE}</div></div></div>", id="nested divs display block"),
        pytest.param(f'<div style="display: none">Your reply</div><p>{HIDE}</p>',
                     id="display none on a sibling only"),
        pytest.param(f'<div style="display:none">{HIDE}</div><p>{HIDE}</p>',
                     id="a hidden copy beside a visible one"),
        pytest.param(f"<style>p {{ color: #222; }}</style><script></script><p>{HIDE}</p>",
                     id="after a style sheet and a script"),
        pytest.param(f'<div style="display:none">a<br><img src="a.png"></div><p>{HIDE}</p>',
                     id="void elements inside a closed hidden one"),
        pytest.param(f'<p style="display:none">Hi<p>{HIDE}', id="a new p ends a hidden one"),
        pytest.param(f"<ul><li hidden>Hi<li>{HIDE}</ul>", id="a new li ends a hidden one"),
        pytest.param(f'<table><tr><td style="display:none">Hi<td>{HIDE}</table>',
                     id="a new cell ends a hidden one"),
        pytest.param(f'<p aria-hidden="true">{HIDE}</p>', id="aria-hidden is not hidden"),
        pytest.param(f'<div style="visibility:hidden"><p style="visibility:visible">{HIDE}</p>'
                     "</div>", id="visible inside hidden visibility"),
        pytest.param(f'<p style="max-height:0">{HIDE}</p>', id="max-height 0 overflowing"),
        pytest.param(f'<p style="display:none; display:block">{HIDE}</p>',
                     id="a later display block wins"),
        pytest.param(f"<!-- a comment --><p>{HIDE}</p><!---->", id="after a comment"),
        pytest.param(f'<style>.preheader {{ display: none }}</style><div class="preheader">Hi'
                     f"</div><p>{HIDE}</p>", id="a sheet rule that hides another class"),
        pytest.param(f'<style>.x {{ display: none }}</style><p class="x" style="display: block">'
                     f"{HIDE}</p>", id="an inline display block beats a sheet's display none"),
        pytest.param(f'<style>p.reply {{ display: block }} .reply {{ display: none }}</style>'
                     f'<p class="reply">{HIDE}</p>', id="a more specific sheet rule shows it"),
        pytest.param(f'<style>@media (max-width: 600px) {{ .wide {{ display: none }} }}</style>'
                     f'<div class="wide">Hi</div><p>{HIDE}</p>', id="@media hides another class"),
        pytest.param(f'<style>.m {{ display: none }} @media (max-width: 600px) {{ .m {{ display: '
                     f'block !important }} .d {{ display: none !important }} }}</style><div '
                     f'class="d">{HIDE}</div><div class="m">{HIDE}</div>',
                     id="a copy for each screen"),
        pytest.param(f"<style>p!! {{ display: none }} p, {{ display: none }}</style><p>{HIDE}</p>",
                     id="selectors no browser reads"),
        pytest.param(f'<div style="background: #111; color: #222"><div style="background-color: '
                     f'#fff"><p>{HIDE}</p></div></div>',
                     id="dark text in a light box on a dark background"),
        pytest.param(f'<p style="background: #1f5fbf; color: #fff">{HIDE}</p>',
                     id="white text on a blue background"),
        pytest.param(f'<div style="color: #fff"><a href="#">{HIDE}</a></div>',
                     id="a link in white has the link colour"),
        pytest.param(f'<div style="position: relative; left: -5px">{HIDE}</div>',
                     id="left -5px"),
        pytest.param(f'<div style="left: -9999px">{HIDE}</div>', id="left without position"),
        pytest.param(f'<p style="clip: rect(0 0 0 0)">{HIDE}</p>',
                     id="clip without position"),
    ],
)  # fmt: skip
def test_an_answer_shown_in_ordinary_markup_passes(markup: str) -> None:
    assert lint(ANSWER, answer_email(markup)) == []


@pytest.mark.parametrize(
    ("markup", "shown"),
    [
        ('<p style="d\\69 splay: none">words</p>', ""),  # a CSS escape
        ('<p style="display:none" style="display:block">words</p>', ""),  # the first one counts
        ("<p style=\"background: url('a;display:none')\">words</p>", "words"),
        ("<!-- words", ""),  # a comment never closed runs to the end
        ("<!--> words", "words"),  # an empty comment
        ("<![CDATA[ words ]]>", ""),
        ('<p>words</p><body style="display:none">', ""),  # a late body's style is the body's
        # ... unless the body has a style already: a browser adds only what it lacks.
        ('<body style="color: red"><p>words</p><body style="display:none">', "words"),
        ('<p style="font-size: rgb(0, 0, 0)">words</p>', "words"),  # a value a browser drops
        ("<textarea>a<b>words</b></textarea>", "a<b>words</b>"),  # no tags in a textarea
        ("<div>" * 10_000 + "words", "words"),  # nesting deeper than Python's recursion
        ('<svg style="display:none"><path d="M0 0"/></svg><p>words</p>', "words"),
        ("<p>a &amp; b&nbsp;c</p><img alt=words>", "a & b\xa0c"),
        # Style sheets: the cascade, and what a browser skips.
        ("<style><!-- .a { display: none } --></style><p class=a>a</p>words", "words"),
        (
            "<style>#i { display: block } p.a { display: none }</style><p id=i class=a>words",
            "words",
        ),
        ("<style>p { display: none }</style><style>p { display: block }</style><p>words", "words"),
        ('<style type="text/plain">p { display: none }</style><p>words</p>', "words"),
        ("<style>p:hover { display: none }</style><p>words</p>", "words"),
        ("<style>:not(.a) > p { display: none }</style><p>words</p>", ""),
        ("<style>.a:is(p, div) { display: none }</style><p class=a>a</p>words", "words"),
        ("<style>@supports (display: grid) { p { display: none } }</style><p>a</p>words", "words"),
        ('<style media="print">p { display: none }</style><p>a</p>words', "words"),
        ("<style>@font-face { src: url(a) } p { display: none }</style><p>a</p>words", "words"),
        ("<template><style>p { display: none }</style></template><p>words</p>", "words"),
        # Colours: near the background's, translucent, not known.
        ('<p style="color: #f2f2f2">a</p><p style="color: #ddd">words</p>', "words"),
        (
            '<p style="color: rgba(255, 255, 255, 0.5)">a</p><p style="color: hsl(0 0% 50%)">words',
            "words",
        ),
        ('<div style="background: url(a.png) #fff; color: #fff">words</div>', "words"),
        ('<div style="background: linear-gradient(#000, #fff); color: #fff">words</div>', "words"),
        (
            '<p style="color: var(--ink)">words</p><p style="color: lab(100% 0 0)">words</p>',
            "words words",
        ),
        ('<div style="color: #fff"><a href="#" style="color: inherit">a</a></div>', ""),
        ('<body bgcolor="black" text="#000"><p>a</p><font color=white>words</font>', "words"),
        (
            '<div style="background-color: #000"><p style="background-color: rgba(255, 255, 255, '
            '.5); color: #000">words</p></div>',
            "words",
        ),
        # Out of view: inherited text-indent, both overflow axes, transforms.
        ('<div style="text-indent: -9999px">a<p style="text-indent: 0">words</p></div>', "words"),
        (
            '<p style="overflow-x: hidden; height: 0">a</p><p style="max-height: 0">words</p>',
            "words",
        ),
        (
            '<p style="transform: translate(1px) scaleY(0)">a</p><p style="scale: 1.5">words</p>',
            "words",
        ),
    ],
)
def test_the_shown_text_of_an_html_body(markup: str, shown: str) -> None:
    assert " ".join(shown_text(markup).split()) == " ".join(shown.split())


def test_each_reading_of_the_style_sheets_must_show_the_words() -> None:
    markup = (
        "<style>.d { display: none } @media (max-width: 600px) { .d { display: block } "
        ".w { display: none } } @media print { .p { color: #fff } }</style>"
        '<p class="w">wide</p><p class="d">narrow</p><p class="p">screen</p>'
    )
    assert shown_texts(markup) == ["wide screen", "narrow screen", "wide"]
    assert shown_text(markup) == ""  # no word is shown on every screen


def test_a_rule_a_browser_drops_does_not_reorder_the_sheets_after_it() -> None:
    """The second sheet's rule comes later than all of the first's, whatever the first
    drops (an empty selector): it hides the paragraph."""
    first = "<style>.x, { display: block; opacity: 1 } .a { display: block }</style>"
    markup = first + "<style>.a { display: none }</style><p class=a>words</p>"
    assert shown_texts(markup) == [""]
    inside = "<style>@media print { .x, { display: block } .a { display: block } }</style>"
    later = inside + "<style>@media print { .a { display: none } }</style><p class=a>words</p>"
    assert shown_texts(later) == ["words", ""]


def test_blocks_with_the_same_condition_are_one_reading() -> None:
    """Both apply on a narrow screen, together: moved out of view. Spacing, case and the
    unit of an absolute length aside (``6.25in`` and ``450pt`` are ``600px``), and a
    ``<style media>`` with that condition too; a later block still wins over an earlier
    one."""
    markup = (
        "<style>@media (max-width:600px) { .a { position: absolute } .b { display: none } }"
        "@media ( MAX-WIDTH : 600px ) { .a { left: -9999px } .b { display: block } }</style>"
        '<style media="(max-width: 600px)">.c { opacity: 0 }</style>'
        "<style>@media (max-width: 6.25in) { .d { color: #123 } }"
        "@media (max-width: 450pt) { .d { background: #123 } }</style>"
        "<div class=a>moved</div><p class=b>shown</p><p class=c>faded</p><p class=d>white</p>"
    )
    assert shown_texts(markup) == ["moved shown faded white", "shown"]


@pytest.mark.parametrize(
    ("first", "second"),
    [
        pytest.param("@media (max-width: 37.5em)", "@media (max-width: 600px)",
                     id="an em is the reader's font size"),
        pytest.param("@media (max-width: 767.9999px)", "@media (max-width: 768px)",
                     id="lengths compared exactly"),
        pytest.param("@container (min-width: 450pt)", "@container (min-width: 600px)",
                     id="a container's condition as written"),
    ],
)  # fmt: skip
def test_conditions_that_may_differ_are_readings_of_their_own(first: str, second: str) -> None:
    """Each block alone leaves the words readable (#123 on white; black on #123): merged,
    the two would read as #123 on #123, hidden; apart, each is a reading of its own, and
    the words show in every one."""
    markup = (
        f"<style>{first} {{ .d {{ color: #123 }} }} {second} {{ .d {{ background: #123 }} }}"
        "</style><p class=d>words</p>"
    )
    assert shown_texts(markup) == ["words", "words", "words"]


def test_at_most_so_many_conditions_are_checked() -> None:
    """Each condition is a reading of the whole page: beyond the bound the HTML is refused
    rather than checked at length. Blocks that style no element do not count, nor do
    repeats of one condition."""
    blocks = "".join(
        f"@media (max-width: {300 + n}px) {{ p {{ color: #333 }} }}" for n in range(MAX_CONDITIONS)
    )
    repeated = f"<style>{blocks}{blocks}</style><p>words</p>"
    assert shown_texts(repeated) == ["words"] * (MAX_CONDITIONS + 1)
    unused = "".join(f"@media (min-width: {n}px) {{ .none {{ color: #333 }} }}" for n in range(50))
    assert shown_text(f"<style>{blocks}{unused}</style><p>words</p>") == "words"
    one_more = f"<style>{blocks}@media print {{ * {{ color: #333 }} }}</style><p>words</p>"
    message = f"too many @media blocks to check: {MAX_CONDITIONS + 1} (at most {MAX_CONDITIONS})"
    with pytest.raises(Uncheckable, match=re.escape(message)):
        shown_texts(one_more)
    with pytest.raises(Uncheckable):
        shown_text(one_more)


def test_an_answer_template_whose_html_cannot_be_checked_is_refused() -> None:
    blocks = "".join(
        f"@media (max-width: {300 + n}px) {{ p {{ color: #333 }} }}" for n in range(40)
    )
    issues = lint(ANSWER, answer_email(f"<style>{blocks}</style><p>{HIDE}</p>"))
    assert issues and {i.message.split()[1] for i in issues} == {"html"}
    assert codes(issues) <= {"ANSWER_INCOMPLETE", "ANSWER_UNCHECKABLE"}
    rendered = Rendered(
        TemplateKey.from_path(ANSWER), "words", "", f"<style>{blocks}</style><p>words"
    )
    shown = check_answer_shown(rendered, "words")
    assert shown == ([], "too many @media blocks to check: 40 (at most 32)")


def test_each_combination_of_rules_and_readings_is_settled_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A broad selector in every block, thousands of elements: what an element matches is
    settled once for each reading and each set of matched rules, not for each element
    (nor each reading once for every other)."""
    settled: list[int] = []
    settle = answer_styles._settle

    def counting(declared: Any) -> Any:
        settled.append(1)
        return settle(declared)

    monkeypatch.setattr(answer_styles, "_settle", counting)
    css = "".join(
        f"@media (max-width: {300 + n}px) {{ * {{ color: #{n % 10}00 }} p {{ font-size: 0 }} }}"
        for n in range(MAX_CONDITIONS)
    )
    markup = f"<style>{css}</style>" + "<div><p>a</p><span>b</span></div>" * 1000
    texts = shown_texts(markup)
    assert texts[0].split() == ["a", "b"] * 1000 and set(texts[1:]) == {" ".join(["b"] * 1000)}
    assert len(settled) < 10 * (MAX_CONDITIONS + 1)


def test_variables_set_in_the_template_are_not_unknown() -> None:
    source = "{% set who = debtor.first_name %}Hi {{ who }}\n" + GOOD_SMS
    assert lint(SMS, source) == []


@pytest.mark.parametrize(
    ("source", "line", "cause"),
    [
        pytest.param("Hi\n{{ debtor.nmae }} {{ opt_out_text }}", 2, "has no attribute 'nmae'",
                     id="misspelt attribute"),
        pytest.param("Hi\n\n{{ ''.__class__.__mro__ }} {{ opt_out_text }}", 3,
                     "access to attribute '__class__' of 'str' object is unsafe",
                     id="sandbox escape"),
        pytest.param("Hi\n{{ company.__init__.__globals__ }}", 2, "unsafe", id="globals"),
        pytest.param("Hi\n\n\n{% set x = [] %}{{ x.append(1) }}", 4, "unsafe", id="mutation"),
        pytest.param("Hi\n{{ company.model_fields.name }} {{ opt_out_text }}", 2,
                     "Company.model_fields is not offered to templates: only its fields are",
                     id="record method"),
        pytest.param("Hi\n\n{{ company.texts.en.model_copy() }} {{ opt_out_text }}", 3,
                     "LocalTexts.model_copy is not offered to templates", id="texts method"),
        pytest.param("Hi\n{{ 100 // (days_past_due - days_past_due) }} {{ opt_out_text }}", 2,
                     "ZeroDivisionError: integer division or modulo by zero", id="division"),
        pytest.param("Hi\n\n{{ reference + days_past_due }} {{ opt_out_text }}", 3,
                     "TypeError: can only concatenate str", id="type"),
        pytest.param("{% macro f() %}{{ f() }}{% endmacro %}\n{{ f() }} {{ opt_out_text }}", 1,
                     "RecursionError", id="recursion"),
    ],
)  # fmt: skip
def test_render_errors_give_the_sample_the_line_and_the_cause(
    source: str, line: int, cause: str
) -> None:
    issues = lint(SMS, source)
    assert [(i.code, i.line) for i in issues] == [("RENDER_ERROR", line)]
    assert "fails for sample account SAMPLE-1" in issues[0].message
    assert cause in issues[0].message


def test_a_failure_inside_a_partial_names_the_partial_and_its_line() -> None:
    partial = f"{PARTIALS_DIR}/broken.j2"
    sources = {**PARTIALS, partial: "ok\n{{ 1 // 0 }}",
               SMS: "Hi {% include '_partials/broken.j2' %} {{ opt_out_text }}"}  # fmt: skip
    issues = lint_sources(sources, company(), paths=[SMS], policy=LintPolicy())
    assert [(i.code, i.line) for i in issues] == [("RENDER_ERROR", None)]
    assert f"(in {partial}, line 2)" in issues[0].message


def test_a_missing_include_is_a_render_error_on_its_line() -> None:
    issues = lint(SMS, "{{ debtor.name }}\n{% include '_partials/missing.j2' %}")
    assert [(i.code, i.line) for i in issues] == [("RENDER_ERROR", 2)]
    assert "_partials/missing.j2" in issues[0].message


# --- names -------------------------------------------------------------------------------


@pytest.mark.parametrize("language", ["de", "fr", "pt", "en", "ja", "es"])
def test_a_variant_in_any_language_babel_knows_and_company_yaml_has_texts_in_lints_clean(
    language: str,
) -> None:
    """The samples are American: 'de_US' is no locale Babel knows, so a German variant's
    samples are written in German without a territory."""
    path = f"sms/x.firm.{language}.j2"
    sources = {**PARTIALS, path: GOOD_SMS}
    texts = company().texts
    translated = company().model_copy(update={"texts": {language: texts["en"], **texts}})
    # Amounts spaced with a no-break space make UCS-2 texts: SAMPLE-2's first is 4 segments.
    policy = LintPolicy(max_sms_segments=4)
    assert lint_sources(sources, translated, paths=[path], policy=policy) == []
    assert lint_sources_bounded(sources, translated, paths=[path], policy=policy) == []


def test_a_variant_in_a_language_company_yaml_has_no_texts_in_is_refused() -> None:
    """Its opt-out and disclosures would be the English ones: one message, two languages."""
    path = "sms/overdue.firm.fr.j2"
    french = (
        "{{ debtor.first_name }}, votre solde de {{ amount }} est en retard. "
        "Payez ici : {{ payment_link }}{% include '_partials/sms_footer.j2' %}"
    )
    sources = {**SHIPPED, path: french}
    # In UCS-2 (a no-break space in the amounts), with a first contact's whole disclosure:
    # five segments.
    policy = LintPolicy(6)
    issues = lint_sources(sources, company(), paths=[path], policy=policy)
    assert [(i.path, i.code) for i in issues] == [(path, "NO_LANGUAGE_TEXTS")]
    assert issues[0].message == (
        "company.yaml has no texts in 'fr' (opt-out, disclosures): the message would carry "
        "them in English; add a 'fr' entry under texts"
    )
    assert lint_sources_bounded(sources, company(), paths=[path], policy=policy) == issues
    # What it renders is still checked, as for every template.
    broken = {**sources, path: french + "{{ 1 // (days_past_due * 0) }}"}
    assert codes(lint_sources(broken, company(), paths=[path])) == {
        "NO_LANGUAGE_TEXTS", "RENDER_ERROR",
    }  # fmt: skip


@pytest.mark.parametrize(
    ("language", "reason"),
    [
        ("ES", "languages are written in lowercase ('es'): 'ES' would never be used"),
        ("es_MX", "a variant is named by its language alone ('es')"),
        ("es-MX", "a variant is named by its language alone ('es')"),
        ("pt_BR", "'pt_BR' would never be used"),
        ("xx", "'xx' is not a language Babel knows"),
        ("iw", "accounts in 'iw' have the locale he_IL: name the variant 'he'"),
        # Read as the default variant's path, whose text lint would check in its place.
        ("", "an empty name, tone or language"),
    ],
)
def test_a_variant_that_would_never_be_used_is_a_bad_name(language: str, reason: str) -> None:
    path = f"sms/x.firm.{language}.j2"
    sources = {**PARTIALS, path: GOOD_SMS}
    issues = lint_sources(sources, company(), paths=[path])
    assert [(i.path, i.code) for i in issues] == [(path, "BAD_NAME")]
    assert reason in issues[0].message
    # In the bounded lint that sync and publish run, the same: not a memory limit.
    assert lint_sources_bounded(sources, company(), paths=[path]) == issues


def test_a_failure_of_lint_itself_is_not_reported_as_a_limit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken(*args: Any, **kwargs: Any) -> list[LintIssue]:
        raise KeyError("sample")

    monkeypatch.setattr(lint_limits, "lint_sources", broken)
    [issue] = lint_limits._checked({SMS: GOOD_SMS}, company(), [SMS], None, SMS)
    assert (issue.path, issue.code) == (SMS, "RENDER_ERROR")
    assert issue.message == "could not be checked: KeyError: 'sample'"


def _killed_by_a_signal() -> None:
    os.kill(os.getpid(), signal.SIGKILL)  # as a crash past the memory ceiling ends it


def test_a_lint_process_that_exits_with_an_error_is_not_reported_as_out_of_memory() -> None:
    processes = multiprocessing.get_context("fork")
    failed = processes.Process(target=sys.exit, args=(1,))
    killed = processes.Process(target=_killed_by_a_signal)
    for child in (failed, killed):
        child.start()
    assert lint_limits._ended(failed) == "stopped the check with an error (exit status 1)"
    assert lint_limits._ended(killed) == "needed more memory than allowed"


# --- content -----------------------------------------------------------------------------


def test_sms_longer_than_the_policy_allows() -> None:
    source = GOOD_SMS.replace("Hi", "Hi " + "x" * 400)  # 4 or 5 (a first contact's) segments
    issues = lint(SMS, source)
    assert codes(issues) == {"POLICY_SMS_TOO_MANY_SEGMENTS"}
    assert len(issues) == len(SAMPLE_ACCOUNTS)  # one per sample account
    assert "4 segments, GSM-7" in issues[0].message and "the limit is 3" in issues[0].message
    assert lint(SMS, source, LintPolicy(max_sms_segments=5)) == []


def test_the_segment_limit_comes_from_the_policy() -> None:
    source = GOOD_SMS.replace("Hi", "Hi " + "x" * 100)  # 2 or 3 segments (a first contact's)
    assert lint(SMS, source, LintPolicy(max_sms_segments=3)) == []
    issues = lint(SMS, source, LintPolicy(max_sms_segments=1))
    assert codes(issues) == {"POLICY_SMS_TOO_MANY_SEGMENTS"}
    assert "2 segments, GSM-7" in issues[0].message and "the limit is 1" in issues[0].message


def test_a_non_gsm_character_counts_against_the_policy() -> None:
    source = GOOD_SMS.replace("Hi", "Hi 📅 " + "x" * 60)
    issues = lint(SMS, source, LintPolicy(max_sms_segments=2))
    assert codes(issues) == {"POLICY_SMS_TOO_MANY_SEGMENTS"}
    assert "UCS-2 because of '📅'" in issues[0].message


@pytest.mark.parametrize(
    ("path", "source", "part"),
    [
        pytest.param(SMS, GOOD_SMS.replace("{%- include '_partials/sms_footer.j2' %}",
                                           " {{ disclosure if first_contact "
                                           "else disclosure_short }}"), "opt out",
                     id="sms without footer"),
        pytest.param(EMAIL, GOOD_EMAIL.replace('{% include "_partials/email_footer.txt.j2" %}',
                                               "{{ disclosure }}"), "text body",
                     id="email text"),
        pytest.param(EMAIL, GOOD_EMAIL, "html body", id="email html"),
    ],
)  # fmt: skip
def test_opt_out_notice_missing(path: str, source: str, part: str) -> None:
    sources = {path: source, **PARTIALS}
    if path == EMAIL and part == "html body":  # drop the link from the shared layout instead
        layout = PARTIALS["_partials/email.html.j2"]
        assert '<a href="{{ unsubscribe_url }}">{{ unsubscribe_label }}</a>' in layout
        sources["_partials/email.html.j2"] = layout.replace(
            '<a href="{{ unsubscribe_url }}">{{ unsubscribe_label }}</a>', "{{ unsubscribe_label }}"
        )
    issues = lint_sources(sources, company(), paths=[path], policy=LintPolicy())
    assert codes(issues) == {"REGF_OPTOUT_NOTICE_MISSING"}
    assert len(issues) == 1
    assert part in issues[0].message


def test_sms_footer_partial_without_opt_out_fails_every_sms() -> None:
    sources = {SMS: GOOD_SMS, **PARTIALS}
    sources["_partials/sms_footer.j2"] = PARTIALS["_partials/sms_footer.j2"].replace(
        "{{ opt_out_text }}", ""
    )
    issues = lint_sources(sources, company(), paths=[SMS, "_partials/sms_footer.j2"])
    assert [(i.path, i.code) for i in issues] == [(SMS, "REGF_OPTOUT_NOTICE_MISSING")]


# The debt collector's sample accounts: the ones a message must give the mini-Miranda.
THIRD_PARTY_SAMPLES = sorted(
    s.reference for s in SAMPLE_ACCOUNTS if s.collector_type == "third_party"
)


@pytest.mark.parametrize(
    ("path", "source"),
    [
        pytest.param(SMS, "Hi {{ debtor.first_name }}: {{ payment_link }} {{ opt_out_text }}",
                     id="sms"),
        pytest.param(EMAIL, GOOD_EMAIL.replace('{% include "_partials/email_footer.txt.j2" %}',
                                               "Stop: {{ unsubscribe_url }}"), id="email text"),
        pytest.param(VOICE, GOOD_VOICE.replace("{% if disclosure %}{{ disclosure }}{% endif %}",
                                               ""), id="voice"),
    ],
)  # fmt: skip
def test_mini_miranda_missing_for_third_party_samples_only(path: str, source: str) -> None:
    issues = lint(path, source)
    assert codes(issues) == {"REGF_MINI_MIRANDA_MISSING"}
    flagged = sorted(i.message.rsplit("sample account ", 1)[1].rstrip(")") for i in issues)
    # The first-party ones pass.
    assert flagged == THIRD_PARTY_SAMPLES


def test_a_debt_collectors_first_text_needs_the_whole_disclosure() -> None:
    """Reg F 1006.18(e)(1): the short form is for texts after the first communication
    (SAMPLE-6); a footer that gives every text the short form fails the first contacts."""
    sources = {SMS: GOOD_SMS, **PARTIALS}
    sources["_partials/sms_footer.j2"] = (
        "{% if disclosure_short %} {{ disclosure_short }}{% endif %} {{ opt_out_text }}"
    )
    issues = lint_sources(sources, company(), paths=[SMS, "_partials/sms_footer.j2"])
    assert codes(issues) == {"REGF_MINI_MIRANDA_MISSING"}
    flagged = sorted(i.message.rsplit("sample account ", 1)[1].rstrip(")") for i in issues)
    assert flagged == ["SAMPLE-2", "SAMPLE-3", "SAMPLE-4", "SAMPLE-7"]
    assert "in an SMS when not first_contact" in issues[0].message
    assert lint(SMS, GOOD_SMS) == []  # the shipped footer gives each what it needs


def test_mini_miranda_in_the_html_body_too() -> None:
    sources = {EMAIL: GOOD_EMAIL, **PARTIALS}
    layout = PARTIALS["_partials/email.html.j2"]
    sources["_partials/email.html.j2"] = layout.replace("{{ disclosure }}", "")
    issues = lint_sources(sources, company(), paths=[EMAIL])
    assert codes(issues) == {"REGF_MINI_MIRANDA_MISSING"}
    assert len(issues) == len(THIRD_PARTY_SAMPLES)


@pytest.mark.parametrize(
    ("path", "source"),
    [
        pytest.param(EMAIL, GOOD_EMAIL.replace('{% include "_partials/email_footer.txt.j2" %}',
                                               "{{ disclosure_short }} {{ unsubscribe_url }}"),
                     id="email text"),
        pytest.param(VOICE, GOOD_VOICE.replace("{% if disclosure %}{{ disclosure }}{% endif %}",
                                               "{{ disclosure_short }}"), id="voice"),
    ],
)  # fmt: skip
def test_only_an_sms_may_make_do_with_the_short_disclosure(path: str, source: str) -> None:
    """Reg F allows the short form only in an SMS: an email or a call gives it whole."""
    issues = lint(path, source)
    assert codes(issues) == {"REGF_MINI_MIRANDA_MISSING"}
    assert len(issues) == len(THIRD_PARTY_SAMPLES)  # the debt collector's samples


def email_html(html: str) -> str:
    """GOOD_EMAIL with ``html`` as its whole HTML body, without the shared layout."""
    return EMAIL_SUBJECT + EMAIL_TEXT + "{% block html %}" + html + "{% endblock %}\n"


SHOWN_UNSUBSCRIBE = '<p><a href="{{ unsubscribe_url }}">Unsubscribe</a></p>'
SHOWN_DISCLOSURE = "<p>{{ disclosure }}</p>"


def test_an_html_body_of_its_own_passes_when_it_shows_both() -> None:
    source = email_html(f"<p>Pay {{{{ amount }}}}.</p>{SHOWN_DISCLOSURE}{SHOWN_UNSUBSCRIBE}")
    assert lint(EMAIL, source) == []


@pytest.mark.parametrize(
    "hidden",
    [
        pytest.param('<div style="display:none">{{ disclosure }}</div>', id="display none"),
        pytest.param("<!-- {{ disclosure }} -->", id="comment"),
        pytest.param('<p style="color: #fff">{{ disclosure }}</p>', id="white on white"),
        pytest.param('<p style="font-size: 0">{{ disclosure }}</p>', id="font-size 0"),
        pytest.param("<p>{{ disclosure_short }}</p>", id="the short form"),
        pytest.param('<a href="#" title="{{ disclosure }}">?</a>', id="in an attribute"),
    ],
)
def test_a_disclosure_the_html_does_not_show_is_refused(hidden: str) -> None:
    """The HTML is read as a mail reader shows it: a disclosure in the markup but hidden
    from the debtor is no disclosure."""
    issues = lint(EMAIL, email_html(f"<p>Pay {{{{ amount }}}}.</p>{hidden}{SHOWN_UNSUBSCRIBE}"))
    assert codes(issues) == {"REGF_MINI_MIRANDA_MISSING"}
    assert len(issues) == len(THIRD_PARTY_SAMPLES)


@pytest.mark.parametrize(
    "hidden",
    [
        pytest.param('<a href="{{ unsubscribe_url }}" style="display:none">Unsubscribe</a>',
                     id="a hidden link"),
        pytest.param('<a href="{{ unsubscribe_url }}"></a>', id="a link without words"),
        pytest.param('<a href="{{ unsubscribe_url }}"><span style="font-size:0">Unsubscribe'
                     "</span></a>", id="a link whose words are hidden"),
        pytest.param("<!-- {{ unsubscribe_url }} -->", id="comment"),
        pytest.param('<div style="position:absolute;left:-9999px"><a href="{{ unsubscribe_url '
                     '}}">Unsubscribe</a></div>', id="off screen"),
        pytest.param('<img src="x.png" alt="{{ unsubscribe_url }}">', id="in an attribute"),
    ],
)  # fmt: skip
def test_an_unsubscribe_link_the_html_does_not_show_is_refused(hidden: str) -> None:
    """A debtor who cannot see the link cannot use it."""
    issues = lint(EMAIL, email_html(f"<p>Pay {{{{ amount }}}}.</p>{SHOWN_DISCLOSURE}{hidden}"))
    assert codes(issues) == {"REGF_OPTOUT_NOTICE_MISSING"}
    assert len(issues) == 1
    assert "html body" in issues[0].message


@pytest.mark.parametrize(
    "shown",
    [
        pytest.param("<p>To unsubscribe: {{ unsubscribe_url }}</p>", id="the address as text"),
        pytest.param('<p><a href="{{ unsubscribe_url }}"><img src="x.png" alt="">Stop</a></p>',
                     id="a link with words and an image"),
    ],
)  # fmt: skip
def test_an_unsubscribe_link_shown_another_way_passes(shown: str) -> None:
    assert lint(EMAIL, email_html(f"<p>Pay {{{{ amount }}}}.</p>{SHOWN_DISCLOSURE}{shown}")) == []


def test_an_email_whose_html_cannot_be_checked_is_refused() -> None:
    """Past the conditions the check reads, what the HTML shows is not known: refused
    rather than passed unread."""
    sheet = "".join(
        f"@media (max-width: {400 + n}px) {{ .c{n} {{ color: red }} }}"
        for n in range(MAX_CONDITIONS + 1)
    )
    cells = "".join(f'<span class="c{n}">x</span>' for n in range(MAX_CONDITIONS + 1))
    source = email_html(f"<style>{sheet}</style>{cells}{SHOWN_DISCLOSURE}{SHOWN_UNSUBSCRIBE}")
    issues = lint(EMAIL, source)
    assert codes(issues) == {"HTML_UNCHECKABLE"}
    assert "too many @media blocks to check" in issues[0].message


@pytest.mark.parametrize(
    "greeting",
    [
        pytest.param("<p>Hi {{ debtor.name|safe }},</p>", id="safe"),
        pytest.param("{% autoescape false %}<p>Hi {{ debtor.name }},</p>{% endautoescape %}",
                     id="autoescape false"),
        pytest.param("<p>Hi {{ debtor.first_name|safe|upper }},</p>", id="first name, upper"),
        pytest.param("{% set who = debtor.name|safe %}<p>Hi {{ who }},</p>", id="set"),
        pytest.param("<p>Hi {{ debtor.name|safe|e }},</p>", id="safe, then escape (a no-op)"),
    ],
)  # fmt: skip
def test_an_email_writing_the_debtors_name_as_markup_is_refused(greeting: str) -> None:
    """A name comes from the creditor's import: written unescaped, SAMPLE-4's would put a
    live <script> in the email. Such a template is refused, whichever way it unescapes."""
    source = (
        EMAIL_SUBJECT
        + EMAIL_TEXT
        + EMAIL_HTML.replace("<p>Hi {{ debtor.first_name }}, pay {{ amount }}.</p>", greeting)
    )
    issues = lint(EMAIL, source)
    assert [i.code for i in issues] == ["HTML_UNESCAPED_DATA"]
    assert "SAMPLE-4" in issues[0].message and "'<script>'" in issues[0].message


@pytest.mark.parametrize(
    "greeting",
    [
        pytest.param("<p>Hi {{ debtor.name }},</p>", id="escaped"),
        pytest.param("<p>Hi {{ debtor.name|e }},</p>", id="escaped twice"),
        pytest.param('<p title="{{ debtor.name }}">Hi {{ debtor.first_name }},</p>',
                     id="in an attribute"),
        pytest.param("<script></script><p>Hi {{ debtor.name }},</p>",
                     id="beside a tag of the template's own that the name also has"),
        pytest.param("{% autoescape false %}<p>Hi {{ debtor.name|e }},</p>{% endautoescape %}",
                     id="escaped inside autoescape false"),
    ],
)  # fmt: skip
def test_an_email_escaping_the_debtors_name_passes(greeting: str) -> None:
    source = (
        EMAIL_SUBJECT
        + EMAIL_TEXT
        + EMAIL_HTML.replace("<p>Hi {{ debtor.first_name }}, pay {{ amount }}.</p>", greeting)
    )
    assert lint(EMAIL, source) == []


# --- limited-content voicemail -----------------------------------------------------------


@pytest.mark.parametrize(
    ("voicemail", "line", "what"),
    [
        pytest.param(GOOD_VOICEMAIL + " {{ amount }}", 7, "'amount'", id="amount"),
        pytest.param(GOOD_VOICEMAIL + "\nFor {{ debtor.name }}.", 8, "'debtor'", id="debtor"),
        pytest.param(GOOD_VOICEMAIL + " {{ disclosure }}", 7, "'disclosure'", id="disclosure"),
        pytest.param(GOOD_VOICEMAIL + " {{ company.name }}", 7, "'company.name'",
                     id="company name"),
        pytest.param(GOOD_VOICEMAIL + " {{ company.website }}", 7, "'company.website'",
                     id="company website"),
        pytest.param(GOOD_VOICEMAIL + " {{ self.human() }}", 7, "'self'", id="the human block"),
        pytest.param(GOOD_VOICEMAIL + " {{ company['name'] }}", 7, "company",
                     id="company name by subscript"),
        pytest.param(GOOD_VOICEMAIL + " {{ company | attr('name') }}", 7, "company",
                     id="company name by attr filter"),
        pytest.param(GOOD_VOICEMAIL + ' {% include "_partials/sms_footer.j2" %}', 7,
                     "include or import", id="an included partial"),
    ],
)  # fmt: skip
def test_voicemail_may_use_only_the_limited_content_variables(
    voicemail: str, line: int, what: str
) -> None:
    issues = lint(VOICE, voice(voicemail))
    assert [(i.code, i.line) for i in issues] == [("REGF_LCM_CONTENT_INVALID", line)]
    assert what in issues[0].message


@pytest.mark.parametrize(
    ("voicemail", "words"),
    [
        pytest.param(GOOD_VOICEMAIL + " It is about a debt.", "debt", id="debt"),
        pytest.param(GOOD_VOICEMAIL + " Your payment is overdue.", "overdue, payment",
                     id="payment overdue"),
        pytest.param(GOOD_VOICEMAIL + " Please PAY today.", "pay", id="pay"),
        pytest.param(GOOD_VOICEMAIL + " Es sobre su deuda vencida.", "deuda, vencida",
                     id="spanish"),
        pytest.param(GOOD_VOICEMAIL + " It is about your past-due account.", "past-due",
                     id="past-due"),
        pytest.param(GOOD_VOICEMAIL + " It is about your account, past\ndue.", "past due",
                     id="past due across lines"),
        pytest.param(GOOD_VOICEMAIL + " It is about your delinquent account.", "delinquent",
                     id="delinquent"),
        pytest.param(GOOD_VOICEMAIL + " It is about an outstanding bill.", "bill, outstanding",
                     id="outstanding bill"),
        pytest.param(GOOD_VOICEMAIL + " It is about money you still have not sent us.", "money",
                     id="money"),
        pytest.param(GOOD_VOICEMAIL + " Your account is in arrears.", "arrears", id="arrears"),
        pytest.param(GOOD_VOICEMAIL + " It is about what is owed, what you are owing.",
                     "owed, owing", id="owed"),
        pytest.param(GOOD_VOICEMAIL + " About your billing and the balances.",
                     "balances, billing", id="billing"),
        pytest.param(GOOD_VOICEMAIL + " Our collections team.", "collections",
                     id="collections"),
        pytest.param(GOOD_VOICEMAIL + " Nothing was paid on your loan.", "loan, paid",
                     id="loan"),
        pytest.param(GOOD_VOICEMAIL + " Su cuenta esta atrasada: no ha pagado el adeudo.",
                     "adeudo, atrasada, pagado", id="spanish, late and owed"),
    ],
)  # fmt: skip
def test_voicemail_may_not_mention_the_debt(voicemail: str, words: str) -> None:
    """Whoever hears a limited-content message may not be the debtor: it may not tell them
    the call is about a debt, in any words (Reg F 1006.2(j))."""
    issues = lint(VOICE, voice(voicemail))
    assert [(i.code, i.line) for i in issues] == [("REGF_LCM_CONTENT_INVALID", None)]
    assert issues[0].message == f"a voicemail may not mention {words}"


def test_the_agents_own_name_is_not_read_as_a_word_about_the_debt() -> None:
    """The agent is a person the debtor may ask for: a Bill or an Owen is no debt."""
    named = company().model_copy(update={"agent_name": "Bill Owens"})
    issues = lint_sources({VOICE: GOOD_VOICE, **PARTIALS}, named, paths=[VOICE])
    assert issues == []
    # Asked for by the first name, or the name in capitals: still the agent.
    for asked in (" When you call, ask for Bill.", " Ask for {{ company.agent_name|upper }}."):
        source = voice(GOOD_VOICEMAIL + asked)
        assert lint_sources({VOICE: source, **PARTIALS}, named, paths=[VOICE]) == [], asked
    source = voice(GOOD_VOICEMAIL + " About your bill.")
    issues = lint_sources({VOICE: source, **PARTIALS}, named, paths=[VOICE])
    assert [i.message for i in issues] == ["a voicemail may not mention bill"]


@pytest.mark.parametrize(
    ("field", "words", "found"),
    [
        ("call_identity_check", "This call is for {name} about an overdue bill. If you are "
                                "{name}, press 1.", "bill, overdue"),
        ("call_not_the_debtor", "Sorry. Please tell them their payment is late.", "payment"),
    ],
)  # fmt: skip
def test_the_identity_check_may_not_mention_the_debt(field: str, words: str, found: str) -> None:
    """Whoever answers a call hears the identity check before saying who they are, and
    someone else the goodbye: the company's words for them are held to a voicemail's."""
    texts = company().texts
    english = texts["en"].model_copy(update={field: words})
    told = company().model_copy(update={"texts": {**texts, "en": english}})
    issues = lint_sources({VOICE: GOOD_VOICE, **PARTIALS}, told, paths=[VOICE])
    assert [(i.code, i.line) for i in issues] == [("REGF_LCM_CONTENT_INVALID", None)]
    assert issues[0].message.endswith(f"may not mention {found}")
    assert lint_sources({VOICE: GOOD_VOICE, **PARTIALS}, company(), paths=[VOICE]) == []


@pytest.mark.parametrize(
    ("replace", "field"),
    [
        ("{{ company.agent_name }}", "agent_name"),
        ("{{ company.lcm_name }}", "lcm_name"),
        ("{{ company.phone }}", "phone"),
    ],
)
def test_voicemail_must_name_the_caller_a_person_and_a_number(replace: str, field: str) -> None:
    issues = lint(VOICE, voice(GOOD_VOICEMAIL.replace(replace, "someone")))
    assert [(i.code, i.line) for i in issues] == [("REGF_LCM_CONTENT_INVALID", None)]
    assert issues[0].message == f"a voicemail must give {{{{ company.{field} }}}}"


def test_issues_from_several_templates_are_all_reported() -> None:
    sources = {
        SMS: "Hi {{ debtor.first_name }}",
        "sms/y.firm.j2": "{{ nope }}",
        "email/z.firm.j2": "{% block subject %}{% endblock %}",
        "sms/bad-name.j2": "x",
        **PARTIALS,
    }
    issues = lint_sources(sources, company())
    assert sorted({(i.path, i.code) for i in issues}) == [
        ("email/z.firm.j2", "MISSING_BLOCK"),
        ("sms/bad-name.j2", "BAD_NAME"),
        (SMS, "REGF_MINI_MIRANDA_MISSING"),
        (SMS, "REGF_OPTOUT_NOTICE_MISSING"),
        ("sms/y.firm.j2", "UNKNOWN_VARIABLE"),
    ]


# --- bounds: a template that would hang or fill the memory ------------------------------

NESTED_LOOPS = (
    "{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}"
    "{{ opt_out_text }}"
)
HUGE_WIDTH = "{% set x = '%*d' % (2000000000, 1) %}{{ opt_out_text }}"
DOUBLING = (
    "{% macro f(s, n) %}{% if n %}{{ f(s ~ s, n - 1) }}{% else %}{{ s|length }}{% endif %}"
    "{% endmacro %}{{ f('x', 40) }} {{ opt_out_text }}"
)
# Within every bound of a render (``limits``), yet slower than the time limit below: most
# of the work a render may do (a long text put in title case) and most of its steps, once
# for each sample account. Only the checks' time limit stops it.
SLOW_WITHIN_BOUNDS = (
    "{{ (('a ' * 200000)|title)|length }}{% for a in range(300) %}{% for b in range(300) %}"
    "{% endfor %}{% endfor %}{{ opt_out_text }}"
)


def test_a_template_past_a_renders_bounds_is_refused_with_its_line() -> None:
    later = "sms/z.friendly.j2"
    sources = {**PARTIALS, SMS: NESTED_LOOPS, later: "{{ 1 // 0 }} {{ opt_out_text }}"}
    issues = lint_sources_bounded(sources, company(), paths=[SMS, later])
    assert [(i.path, i.code, i.line) for i in issues] == [
        (SMS, "RENDER_LIMIT", 1), (later, "RENDER_ERROR", 1)
    ]  # fmt: skip
    assert "took more than 100000 steps" in issues[0].message


def test_a_template_that_takes_too_long_is_stopped_and_lint_goes_on() -> None:
    later = "sms/z.friendly.j2"
    sources = {**PARTIALS, SMS: SLOW_WITHIN_BOUNDS, later: "{{ 1 // 0 }} {{ opt_out_text }}"}
    issues = lint_sources_bounded(sources, company(), paths=[SMS, later], seconds=0.25)
    assert [(i.path, i.code) for i in issues] == [(SMS, "RENDER_LIMIT"), (later, "RENDER_ERROR")]
    assert "took more than 0.25 s" in issues[0].message


@pytest.mark.parametrize(
    ("source", "said"),
    [(HUGE_WIDTH, "a format with a width or precision too large to be bounded"),
     (DOUBLING, "a value larger than 1000000 characters")],
    ids=["format-width", "doubling"],
)  # fmt: skip
def test_a_template_that_would_fill_the_memory_is_refused_with_its_line(
    source: str, said: str
) -> None:
    issues = lint_sources_bounded({**PARTIALS, SMS: source}, company(), paths=[SMS])
    assert [(i.code, i.line) for i in issues] == [("RENDER_LIMIT", 1)]
    assert said in issues[0].message


def test_a_template_too_large_is_refused_before_it_is_read() -> None:
    source = "{{ opt_out_text }}" + "x" * MAX_TEMPLATE_CHARACTERS
    issues = lint_sources({**PARTIALS, SMS: source}, company(), paths=[SMS])
    assert [(i.path, i.code) for i in issues] == [(SMS, "TOO_LARGE")]
    assert "50,000" in issues[0].message


def test_bounded_lint_finds_what_lint_finds() -> None:
    assert lint_sources_bounded(SHIPPED, company()) == []
    broken = {**SHIPPED, SMS: "Hi {{ debtor.nmae }}"}
    assert lint_sources_bounded(broken, company(), paths=[SMS]) == lint_sources(
        broken, company(), paths=[SMS]
    )
