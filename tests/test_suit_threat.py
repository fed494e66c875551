"""Time-barred debts (Reg F 1006.26(b)): the wording that threatens suit, the refusal of
such a message when the debt is time-barred, and lint's check of templates."""

from __future__ import annotations

import textwrap
from dataclasses import replace
from functools import cache
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml

from outreach.errors import ConfigError
from outreach.rendering.answer_text import shown_texts
from outreach.rendering.context import (
    SAMPLE_ACCOUNTS,
    SAMPLE_TODAY,
    Company,
    MessageFacts,
    answer_variables,
    build_context,
    load_company,
)
from outreach.rendering.environment import PARTIALS_DIR, TemplateKey, read_template_files
from outreach.rendering.lint import LintPolicy, lint_sources
from outreach.rendering.render import Rendered, Renderer
from outreach.rendering.suit_threat import SuitThreatOnTimeBarredDebt, threatens_suit
from outreach.written_facts import suit_threat
from tests.conftest import REPO

SHIPPED = read_template_files(REPO / "templates")
PARTIALS = {p: s for p, s in SHIPPED.items() if p.startswith(f"{PARTIALS_DIR}/")}
CODE = "REGF_TIME_BARRED_SUIT_THREAT"

# California's notice on a time-barred debt (Civ. Code 1788.14(d)), and New York's words.
CALIFORNIA = (
    "The law limits how long you can be sued on a debt. Because of the age of your debt, we "
    "will not sue you for it. If you do not pay the debt, we may continue to report it to the "
    "credit reporting agencies as unpaid for as long as the law permits this reporting."
)
NEW_YORK = "Because of the age of your debt, we cannot sue you to collect it."

THREATS = [
    "We will sue you.",
    "WE WILL SUE",
    "If you do not pay we will sue you.",
    "Pay today or we are suing.",
    "You could be sued.",
    "A lawsuit may follow.",
    "We may file suit.",
    "We will not hesitate to take legal action.",
    "Failure to pay will not stop us from suing you.",
    "Don't make us sue you.",
    "No, we will sue you.",
    "You leave us no choice but to sue you.",
    "legal proceedings may begin",
    "We will take you to court.",
    "We will take this matter to court.",
    "We may start court action.",
    "We may file a complaint against you.",
    "We may file a claim against you.",
    "A judgment may be entered.",
    "We may garnish your wages.",
    "wage garnishment",
    "We may place a lien on your home.",
    "This may end in litigation.",
    "We will refer your account to our attorneys for collection.",
    "Your file is being sent to a lawyer.",
    "Our legal department will contact you.",
    "Your account has been forwarded to a collections attorney.",
    "Your file is now with our collection attorney.",
    "Your account is with a collection law firm.",
    "Pay by Friday or we will go to court.",
    "We are going to court.",
    "We may pursue this matter in court.",
    "We will initiate proceedings against you.",
    # A negation with "yet" or "but ... will" after it: the threat is still to come
    "No lawsuit has been filed yet, but one will be if you do not pay.",
    "We have not sued you yet.",
    "We have not sued you, but we will.",
    "Legal action will not be taken yet.",
    # A negation does not carry past a clause's end, nor a subject of its own
    "We will not\n\nsue you.",
    "We will not allow you to forget: we will sue.",
    "We will not allow you to ignore a lawsuit.",
    "We are allowed to sue you.",
    "Do not allow us to sue you.",
    "Please don't allow us to take legal action.",
    "We will not sue you\n\nGarnishment will follow.",
    "We will not sue you, and we will take legal action.",
    "We won't sue, we'll garnish your wages.",
    # A character no one sees does not split a word
    "We will su\u200be you.",
    # Spanish
    "Le demandaremos.",
    "Podemos demandarle.",
    "Presentaremos una demanda.",
    "Iniciaremos acciones legales.",
    "Tomaremos acción legal.",
    "Iniciaremos un proceso judicial.",
    "Le llevaremos ante el tribunal.",
    "Nos veremos en la corte.",
    "Su caso irá a la corte.",
    "Le llevaremos a la corte.",
    "Corte.",
    "Evite el corte de servicio: si no paga, le veremos en la corte.",
    "Embargaremos su salario.",
    "Un embargo de su cuenta.",
    "Su cuenta pasará a nuestros abogados.",
    "Su cuenta pasó a un abogado.",
    "Su cuenta fue enviada a un abogado.",
    "Su expediente fue turnado al abogado.",
    "Procederemos por la vía judicial.",
    "Iniciaremos el cobro judicial.",
    "Tomaremos medidas legales.",
    "Una demanda.",
    "Las demandas siguen.",
    "Todavía no le hemos demandado.",
    "No le hemos demandado, pero lo haremos.",
]

# Negations that promise nothing: a condition, a time, a doubt, a need, a new subject,
# or a next clause with a threat of its own.
THREATS += [
    "Pay today so we do not have to sue you.",
    "Please pay today so we won't have to take legal action.",
    "If you do not we will sue you.",
    "Pay today. If not we will take legal action.",
    "If you don't you will be sued.",
    "We may or may not sue you.",
    "We will decide whether or not to sue you.",
    "We can't guarantee we won't sue you.",
    "We cannot promise that we will not sue you.",
    "If you want us not to sue you, pay today.",
    "Pay today and we will not sue you.",
    "We will not sue you if you pay today.",
    "We will not sue you unless you ignore this letter.",
    "No legal action will be taken if you pay today.",
    "We will not sue you for now.",
    "We will not be taking you to court right now.",
    "We haven't sued you. But we will.",
    "This is not a lawsuit, but one will follow.",
    "No lawsuit has been filed so far.",
    "We have not sued you, and the lawsuit will be filed Monday.",
    "We did not sue you, the garnishment starts Monday.",
    "No lawsuit, a judgment is what we will seek.",
    "No le demandaremos si paga hoy.",
    "No le demandaremos por ahora.",
    "No le demandaremos hoy, pero mañana sí.",
    "No le hemos demandado, y el embargo de su salario empieza el lunes.",
    "No le demandaremos, el juicio ya empezó.",
]

NOT_THREATS = [
    CALIFORNIA,
    NEW_YORK,
    "We will not sue you.",
    "We cannot sue you.",
    "You can't be sued for this debt.",
    "We won't take legal action.",
    "We won’t take legal action.",
    "No legal action will be taken.",
    "Legal action will not be taken.",
    "We will never take you to court.",
    "It is not our intention to sue you.",
    "Because of the age of this debt, we are not allowed to sue you.",
    "We are not permitted to sue you.",
    "The law does not allow us to sue you for this debt.",
    "We will not sue, garnish or take legal action.",
    "We will not sue you or garnish your wages.",
    "We will not report this debt, nor sue you.",
    "We will not sue you, but you still owe the debt.",
    # A line break is a space: wrapped text and HTML source keep the negation
    "Because of the age of your debt, we will not\nsue you for it.",
    "We will not\r\n   take legal action.",
    # English "demand" is no "demanda"
    "This is our final demand for payment.",
    "Payment is due on demand.",
    "She demands, demanded and is demanding a receipt.",
    # Words that hold a threat's letters
    "Please do not ignore this issue.",
    "We will pursue a payment plan with you.",
    "A courtesy reminder.",
    "Thank you for your suede jacket order.",
    # Spanish
    "No le demandaremos.",
    "No podemos demandarle.",
    "No tomaremos acciones legales.",
    "Nunca le llevaremos a la corte.",
    "Sin embargo, puede pagar cuando quiera.",
    "Un recordatorio de cortesía.",
    "Puede consultar a un abogado.",
    # A utility's cut-off of a service is no court
    "Evite el corte de servicio.",
    "Aviso de corte de luz.",
    "Para evitar el corte del agua, pague hoy.",
    "Programamos el corte de gas para el lunes.",
    "Corte de energía el 5 de diciembre.",
    "Aviso de corte de la electricidad.",
    "Cortes de suministro por falta de pago.",
    "Pague hoy para evitar el corte de su servicio.",
    "Aviso: corte de sus servicios el lunes.",
    "Evite el corte de internet y de teléfono.",
    "Puede haber un corte en el servicio.",
    "La fecha de corte de su factura es el día 5.",
    "Please pay {amount} by Friday: https://pay.example.com/X-1",
]


@pytest.mark.parametrize("text", THREATS)
def test_wording_that_threatens_suit_is_found(text: str) -> None:
    assert threatens_suit(text) is not None


@pytest.mark.parametrize("text", NOT_THREATS)
def test_negated_statements_notices_and_look_alike_words_pass(text: str) -> None:
    assert threatens_suit(text) is None


def test_the_phrase_found_is_given() -> None:
    assert threatens_suit("Pay now.\nOtherwise we will take  you to\ncourt.") == (
        "take you to court"
    )


def test_a_name_is_not_a_threat() -> None:
    """A debtor called Sue Lien is greeted, not threatened; the word still counts."""
    assert threatens_suit("Hello Sue Lien, please call us.", ["Sue Lien"]) is None
    assert threatens_suit("Hello Sue, we will sue you.", ["Sue Lien", "Sue"]) == "sue"


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ("Legal action will be taken.", ["Legal Recovery Partners"]),
        ("Court action will follow.", ["Court Street Collections"]),
        ("A Lien may be placed on your home.", ["Sue Lien", "Sue"]),
        ("Judge Smith will enter a Judgment.", ["Jane Judgment", "Jane"]),
    ],
)
def test_a_word_of_a_name_alone_is_still_read(text: str, names: list[str]) -> None:
    """Only whole names are taken out: a word a company or a surname shares with a
    threat still threatens."""
    assert threatens_suit(text, names) is not None
    for name in names:
        assert threatens_suit(f"Hello {name}, thank you.", names) is None


# --- the render refuses a time-barred debt's message that threatens suit -----------------


@cache
def company() -> Company:
    return load_company(REPO / "templates")


def facts(time_barred: bool) -> MessageFacts:
    return replace(SAMPLE_ACCOUNTS[1], time_barred=time_barred)


SMS_THREAT = "Pay {{ amount }} or we will sue you. {{ disclosure }} {{ opt_out_text }}"
EMAIL_PARTS = {
    "subject": "{% block subject %}Pay or face a lawsuit{% endblock %}"
    "{% block text %}Pay.{% endblock %}{% block html %}<p>Pay.</p>{% endblock %}",
    "text": "{% block subject %}Pay{% endblock %}"
    "{% block text %}Pay or we will sue.{% endblock %}{% block html %}<p>Pay.</p>{% endblock %}",
    "html": "{% block subject %}Pay{% endblock %}{% block text %}Pay.{% endblock %}"
    "{% block html %}<p>Pay or we will <b>garnish</b> your wages.</p>{% endblock %}",
}
VOICE_PARTS = {
    "text": "{% block human %}Pay or we will sue.{% endblock %}"
    "{% block voicemail %}Call us.{% endblock %}",
    "voicemail": "{% block human %}Pay.{% endblock %}"
    "{% block voicemail %}Call us before legal action.{% endblock %}",
}


def render(path: str, source: str, time_barred: bool) -> Rendered:
    key = TemplateKey.from_path(path)
    return Renderer({path: source}).render(
        key.channel, key.name, key.tone, facts(time_barred), company(), SAMPLE_TODAY
    )


@pytest.mark.parametrize(
    ("path", "source", "part"),
    [
        ("sms/x.firm.j2", SMS_THREAT, "text"),
        *[("email/x.firm.j2", source, part) for part, source in EMAIL_PARTS.items()],
        *[("voice/x.firm.j2", source, part) for part, source in VOICE_PARTS.items()],
    ],
)
def test_a_time_barred_debts_message_that_threatens_suit_is_refused(
    path: str, source: str, part: str
) -> None:
    with pytest.raises(SuitThreatOnTimeBarredDebt) as refused:
        render(path, source, time_barred=True)
    assert refused.value.part == part
    assert CODE in str(refused.value) and refused.value.phrase in str(refused.value)
    assert path in str(refused.value)
    # The same message to a debt that is not time-barred is not checked.
    assert render(path, source, time_barred=False).key.path == path


def named(debtor: str, company_name: str) -> tuple[MessageFacts, Company]:
    raw: dict[str, Any] = company().model_dump()
    return replace(facts(True), debtor_name=debtor), Company.model_validate(
        {**raw, "name": company_name}
    )


@pytest.mark.parametrize(
    ("source", "refused"),
    [
        ("Hi {{ debtor.first_name }} ({{ debtor.name }}), {{ company.name }} writes.", False),
        ("Hi {{ debtor.first_name }}, a Lien may be placed on your home.", True),
        ("{{ company.name }}: legal action will be taken.", True),
        ("Hello {{ debtor.first_name }}, we will sue you.", True),
    ],
)
def test_a_time_barred_debtors_and_companys_names_hide_no_threat(
    source: str, refused: bool
) -> None:
    """The names are those the message writes: the debtor's full and first names, the
    company's, each whole; a word of one elsewhere is read as any other."""
    debtor, listed = named("Sue Lien", "Legal Recovery Partners")
    sms = source + " {{ opt_out_text }}"
    key = TemplateKey.from_path("sms/x.firm.j2")
    renderer = Renderer({key.path: sms})
    args = (key.channel, key.name, key.tone, debtor, listed, SAMPLE_TODAY)
    if refused:
        with pytest.raises(SuitThreatOnTimeBarredDebt):
            renderer.render(*args)
    else:
        assert "Sue Lien" in renderer.render(*args).text


def test_a_word_the_html_splits_with_inline_tags_is_read_whole() -> None:
    """A mail reader shows "s<b>ue</b>" as one word: so is it read for a threat. The
    answer check reads as before, a space between the text nodes; paragraphs stay apart."""
    source = (
        "{% block subject %}Pay{% endblock %}{% block text %}Pay.{% endblock %}"
        "{% block html %}<p>We will s<b>ue</b> you.</p><p>Pay</p><p>today.</p>{% endblock %}"
    )
    with pytest.raises(SuitThreatOnTimeBarredDebt) as refused:
        render("email/x.firm.j2", source, time_barred=True)
    assert refused.value.part == "html" and refused.value.phrase == "sue"
    html = "<p>We will s<b>ue</b> you.</p><p>Pay</p><p>today.</p>"
    assert shown_texts(html) == ["We will s ue  you. Pay today."]
    assert " ".join(shown_texts(html, words_whole=True)[0].split()) == (
        "We will sue you. Pay today."
    )


def test_words_the_html_hides_are_not_read() -> None:
    source = (
        "{% block subject %}Pay{% endblock %}{% block text %}Pay.{% endblock %}"
        '{% block html %}<p>Pay.</p><p style="display: none">we will sue</p>{% endblock %}'
    )
    assert render("email/x.firm.j2", source, time_barred=True).html is not None


def test_templates_see_time_barred_and_may_keep_the_threat_from_such_debts() -> None:
    source = (
        "Pay {{ amount }}.{% if not time_barred %} Or we will sue you.{% endif %}"
        "{% if time_barred %} We will not sue you for it.{% endif %}"
    )
    assert render("sms/x.firm.j2", source, time_barred=False).text.endswith("we will sue you.")
    assert render("sms/x.firm.j2", source, time_barred=True).text.endswith("not sue you for it.")
    context = build_context(facts(True), company(), SAMPLE_TODAY)
    assert context["time_barred"] is True and context["first_contact"] is True


def test_an_agents_answer_that_threatens_suit_on_a_time_barred_debt_is_refused() -> None:
    key = TemplateKey.from_path("sms/answer.agent.j2")
    renderer = Renderer(SHIPPED)
    for time_barred, refused in ((False, False), (True, True)):
        context = build_context(facts(time_barred), company(), SAMPLE_TODAY, "", "sms")
        context.update(answer_variables("Pay by Friday or we will take you to court."))
        if refused:
            with pytest.raises(SuitThreatOnTimeBarredDebt, match="take you to court"):
                renderer.render_key(key, context)
        else:
            assert "court" in renderer.render_key(key, context).text


# --- lint ----------------------------------------------------------------------------------


def lint(path: str, source: str) -> list[tuple[int | None, str]]:
    issues = lint_sources({path: source, **PARTIALS}, company(), paths=[path], policy=LintPolicy())
    return [(issue.line, issue.code) for issue in issues]


SMS_LINES = (
    "Hi {{ debtor.first_name }}, {{ amount }} is due: {{ payment_link }}\n"
    "{{ '' }}{THREAT}\n"
    "{%- include '_partials/sms_footer.j2' %}"
)


def test_lint_refuses_a_threat_of_suit_a_time_barred_debt_would_get_on_its_line() -> None:
    source = SMS_LINES.replace("{THREAT}", "Pay now or we will take legal action.")
    issues = lint_sources({"sms/x.firm.j2": source, **PARTIALS}, company(), paths=["sms/x.firm.j2"])
    assert [(i.line, i.code) for i in issues] == [(2, CODE)]
    assert "legal action" in issues[0].message and "SAMPLE-8" in issues[0].message
    assert "{% if not time_barred %}" in issues[0].message


EMAIL_WRAPPED = (
    "{% block subject %}Pay{% endblock %}\n"
    "{% block text %}Pay. Because of the age of your debt, we will not\n"
    "sue you for it. {{ disclosure }} {{ unsubscribe_url }}{% endblock %}\n"
    "{% block html %}<p>Pay. Because of the age of your debt, we will not\n"
    "sue you for it.</p>{THREAT}\n"
    '<p>{{ disclosure }} <a href="{{ unsubscribe_url }}">Unsubscribe</a></p>{% endblock %}'
)


def test_lint_reads_a_negation_across_a_line_break_and_points_at_the_threat() -> None:
    """Hard-wrapped text and HTML source keep a negation; a threat in the HTML is reported
    on its own line, not on an earlier line that negates the same word."""
    assert lint("email/x.firm.j2", EMAIL_WRAPPED.replace("{THREAT}", "")) == []
    threat = "\n<p>Otherwise we will\nsue you.</p>"
    assert lint("email/x.firm.j2", EMAIL_WRAPPED.replace("{THREAT}", threat)) == [(7, CODE)]


def test_lint_accepts_a_final_demand_for_payment() -> None:
    source = SMS_LINES.replace("{THREAT}", "This is our final demand for payment.")
    assert lint("sms/x.firm.j2", source) == []


def test_lint_accepts_a_threat_kept_from_time_barred_debts() -> None:
    guarded = "{% if not time_barred %}Pay now or we will take legal action.{% endif %}"
    assert lint("sms/x.firm.j2", SMS_LINES.replace("{THREAT}", guarded)) == []


def test_lint_reads_every_part_of_an_email() -> None:
    subject = (
        EMAIL_PARTS["subject"]
        .replace(
            "{% block text %}Pay.{% endblock %}",
            "{% block text %}Pay. {{ disclosure }} {{ unsubscribe_url }}{% endblock %}",
        )
        .replace(
            "<p>Pay.</p>",
            '<p>Pay. {{ disclosure }} <a href="{{ unsubscribe_url }}">Unsubscribe</a></p>',
        )
    )
    assert lint("email/x.firm.j2", subject) == [(1, CODE)]


def test_the_shipped_templates_say_nothing_of_suit_to_a_time_barred_debt() -> None:
    barred = [s for s in SAMPLE_ACCOUNTS if s.time_barred]
    assert [s.reference for s in barred] == ["SAMPLE-8"]
    paths = [p for p in SHIPPED if not p.startswith(f"{PARTIALS_DIR}/")]
    assert lint_sources(SHIPPED, company(), paths=paths, samples=tuple(barred)) == []


# --- notices a state requires on time-barred debts, as counsel approved them ---------------

# New York's notice (23 NYCRR 1.3), in substance: it describes suit, a court and a judgment.
NY_NOTICE = (
    "We are required by regulation of the New York State Department of Financial Services to "
    "notify you of the following information. This information is NOT legal advice: Your "
    "creditor or debt collector believes that the legal time limit (statute of limitations) "
    "for suing you to collect this debt may have expired. It is a violation of the Fair Debt "
    "Collection Practices Act, 15 U.S.C. § 1692 et seq., to sue to collect on a debt for which "
    "the statute of limitations has expired. If a creditor sues you to collect on this debt, "
    "you may be able to prevent the creditor from obtaining a judgment against you. To do so, "
    "you must tell the court that the statute of limitations has expired. Even if the statute "
    "of limitations has expired, you may choose to make payments on the debt. However, be "
    "aware: if you make a payment on a debt for which the statute of limitations has expired, "
    "the creditor may be able to restart the clock."
)
# As a template carries it: wrapped at other places than the list's, and HTML reflowed.
WRAPPED = textwrap.fill(NY_NOTICE, width=70)


def company_listing(*notices: str) -> Company:
    raw: dict[str, Any] = company().model_dump()
    return Company.model_validate({**raw, "time_barred_notices": list(notices)})


def render_with(path: str, source: str, listed: Company) -> Rendered:
    key = TemplateKey.from_path(path)
    return Renderer({path: source}).render(
        key.channel, key.name, key.tone, facts(True), listed, SAMPLE_TODAY
    )


NOTICE_SMS = "Pay {{ amount }}: {{ payment_link }}\n" + WRAPPED + " {{ opt_out_text }}"
NOTICE_EMAIL = (
    "{% block subject %}Your account{% endblock %}"
    "{% block text %}Pay {{ amount }}.\n\n" + WRAPPED + "{% endblock %}"
    "{% block html %}<p>Pay {{ amount }}.</p>\n<p>"
    + WRAPPED.replace("NOT legal advice", "<b>NOT</b>\n   legal advice")
    + "</p>{% endblock %}"
)


assert "\n" in WRAPPED and "<b>NOT</b>" in NOTICE_EMAIL


@pytest.mark.parametrize(
    ("path", "source"), [("sms/x.firm.j2", NOTICE_SMS), ("email/x.firm.j2", NOTICE_EMAIL)]
)
def test_a_listed_state_notice_is_sent_to_a_time_barred_debt(path: str, source: str) -> None:
    """New York's notice speaks of a creditor that sues, a judgment and a court: refused as
    a threat until counsel lists it, then sent as the template wraps it."""
    with pytest.raises(SuitThreatOnTimeBarredDebt):
        render_with(path, source, company())
    rendered = render_with(path, source, company_listing(NY_NOTICE))
    assert NY_NOTICE in " ".join(rendered.text.split())


@pytest.mark.parametrize(
    ("path", "source", "part"),
    [
        ("sms/x.firm.j2", NOTICE_SMS.replace("Pay {{", "Pay or we will sue you. {{"), "text"),
        ("email/x.firm.j2", NOTICE_EMAIL.replace("Your account", "Lawsuit pending"), "subject"),
        ("email/x.firm.j2", NOTICE_EMAIL.replace("</p>{% endb", " We will sue.</p>{% endb"),
         "html"),
    ],
)  # fmt: skip
def test_a_threat_beside_a_listed_notice_is_still_refused(
    path: str, source: str, part: str
) -> None:
    with pytest.raises(SuitThreatOnTimeBarredDebt) as refused:
        render_with(path, source, company_listing(NY_NOTICE))
    assert refused.value.part == part


def test_only_a_verbatim_notice_is_read_as_one() -> None:
    """Spacing and case aside the notice must be the one listed: an altered one, or a part
    of it, is read as any other words."""
    listed = [NY_NOTICE]
    assert threatens_suit(WRAPPED.upper(), notices=listed) is None
    assert threatens_suit(" \n ".join(NY_NOTICE.split()), notices=listed) is None
    assert threatens_suit("Read this. " + WRAPPED + " Thanks.", notices=listed) is None
    altered = NY_NOTICE.replace("may be able to prevent", "cannot prevent")
    assert threatens_suit(altered, notices=listed) == "sue"
    half = NY_NOTICE[: NY_NOTICE.index(" To do so")]
    assert threatens_suit(half, notices=listed) == "sue"
    # Taken out, a notice ends a clause: a negation before it governs nothing after it.
    assert threatens_suit("We will not " + NY_NOTICE + " sue you.", notices=listed) == "sue"
    # Nor does a passive negation after it reach a threat before it.
    before = "Pay today or we will take legal action " + NY_NOTICE + " will not be taken back."
    assert threatens_suit(before, notices=listed) == "legal action"


def test_a_notice_within_a_longer_listed_one_takes_nothing_from_it() -> None:
    """The longer notice is taken out whole, whichever the file lists first."""
    part = "If a creditor sues you to collect on this debt"
    assert part in NY_NOTICE
    for listed in ([part, NY_NOTICE], [NY_NOTICE, part]):
        assert threatens_suit(NY_NOTICE, notices=listed) is None, listed
        assert threatens_suit(part, notices=listed) is None, listed


def test_lint_accepts_a_listed_notice_for_the_time_barred_sample() -> None:
    notice = "{% if time_barred %}" + WRAPPED + "\n{% endif %}"
    source = SMS_LINES.replace("{THREAT}", notice)
    path, sources, policy = "sms/x.firm.j2", {"sms/x.firm.j2": source, **PARTIALS}, LintPolicy(20)
    refused = lint_sources(sources, company(), paths=[path], policy=policy)
    assert [(i.code, "SAMPLE-8" in i.message) for i in refused] == [(CODE, True)]
    assert lint_sources(sources, company_listing(NY_NOTICE), paths=[path], policy=policy) == []
    # A threat beside it is still found, on its line.
    threat = source.replace("{% endif %}", "Or we will take legal action.{% endif %}")
    found = lint_sources({**sources, path: threat}, company_listing(NY_NOTICE), policy=policy)
    assert [(i.line, i.code) for i in found if i.path == path] == [
        (len(WRAPPED.split("\n")) + 2, CODE)
    ]


def write_company(tmp_path: Path, notices: Any) -> Path:
    raw = yaml.safe_load((REPO / "templates" / "company.yaml").read_text(encoding="utf-8"))
    raw["time_barred_notices"] = notices
    (tmp_path / "company.yaml").write_text(yaml.safe_dump(raw), encoding="utf-8")
    return tmp_path


@pytest.mark.parametrize("notices", [[NY_NOTICE, ""], ["  \n "]])
def test_an_empty_notice_is_refused_when_company_yaml_is_read(
    tmp_path: Path, notices: list[str]
) -> None:
    """An empty notice would be found in every message, exempting nothing anyone wrote."""
    with pytest.raises(ConfigError) as refused:
        load_company(write_company(tmp_path, notices))
    said = str(refused.value)
    assert said.startswith(f"{tmp_path / 'company.yaml'}: time_barred_notices: ")
    assert f"notice {len(notices)} is empty" in said


def test_the_shipped_example_of_new_yorks_notice_is_listed_once_uncommented(
    tmp_path: Path,
) -> None:
    """The example is commented out, so the shipped behaviour is unchanged; uncommented,
    it loads and lets New York's notice pass."""
    assert company().time_barred_notices == ()
    shipped = (REPO / "templates" / "company.yaml").read_text(encoding="utf-8")
    start = shipped.index("# time_barred_notices:")
    example = "\n".join(line.removeprefix("# ") for line in shipped[start:].splitlines())
    (tmp_path / "company.yaml").write_text(shipped[:start] + example + "\n", encoding="utf-8")
    listed = load_company(tmp_path)
    assert len(listed.time_barred_notices) == 1
    assert threatens_suit(NY_NOTICE, notices=listed.time_barred_notices) is None
    assert threatens_suit(NY_NOTICE) is not None


@pytest.mark.parametrize(
    ("html", "threat"),
    [("<p>We will s<b>ue</b> you.</p>", True), ("<p>We won<b>'t</b> sue you for it.</p>", False)],
)
def test_the_check_before_sending_reads_html_as_the_render_check_does(
    html: str, threat: bool
) -> None:
    """A queued answer's HTML is read with words split by inline tags whole, as it was
    read when it was written: what passed then passes now, and what would not, does not."""
    row = SimpleNamespace(body="Thank you.", subject=None, body_html=html, voicemail=None)
    found = suit_threat(row)
    assert (found is not None) == threat, found
