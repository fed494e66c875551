"""What a template can say: the variables, built from an account and the company's details.

Every variable is documented in docs/templates.md; ``KNOWN_VARIABLES`` is the list lint
checks templates against. Money and dates are formatted for the debtor's locale with Babel
(cached: formatting is the expensive part of rendering).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from copy import copy
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import quote

import yaml
from babel import Locale, UnknownLocaleError
from babel.dates import format_date
from babel.numbers import (
    format_currency,
    get_currency_precision,
    get_currency_symbol,
    get_decimal_symbol,
    get_group_symbol,
)
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from outreach.config_files import read_config_text
from outreach.errors import ConfigError, TemplateError
from outreach.importing.fields import currency_exponent
from outreach.records import quick_init
from outreach.rendering.sms import plain_for_sms

KNOWN_VARIABLES = frozenset(
    {
        "debtor",
        "reference",
        "amount",
        "due_date",
        "due_date_iso",
        "days_past_due",
        "days_until_due",
        "payment_link",
        "self_service_link",
        "company",
        "opt_out_text",
        "unsubscribe_url",
        "disclosure",
        "disclosure_short",
        "first_contact",
        "time_barred",
        "collector_type",
        "locale",
        "language",
    }
)
# The answer templates (``{sms,email}/answer.agent.j2``) wrap an agent's own words in what
# every message must carry (greeting, disclosure, opt-out); only they know these variables.
ANSWER_TEMPLATE = "answer"
ANSWER_TONE = "agent"
ANSWER_VARIABLES = frozenset({"answer", "answer_subject"})
# A limited-content voicemail may say only these (Reg F 1006.2(j)).
LCM_COMPANY_FIELDS = frozenset({"lcm_name", "agent_name", "phone"})
# What an SMS must name for the debtor to opt out: the keyword carriers and our replies
# honour (lint holds every SMS template to it, and ``company.yaml``'s opt_out to it too).
# STOP as a word of its own: not within another Latin word ("STOPPED", "NONSTOP"), but
# beside Chinese or Japanese ("回复STOP退订"), which write no spaces between words.
OPT_OUT_WORD = re.compile(r"(?<![A-Za-z0-9])STOP(?![A-Za-z0-9])", re.IGNORECASE)


# What a call's identity check must say: whom it asks for, and the keys to answer with.
_IDENTITY_PARTS = {
    "{name}": re.compile(re.escape("{name}")),
    "the key 1": re.compile(r"(?<![0-9])1(?![0-9])"),
    "the key 2": re.compile(r"(?<![0-9])2(?![0-9])"),
}


class LocalTexts(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    opt_out: str  # the SMS opt-out
    disclosure: str  # a debt collector's first communication (Reg F 1006.18(e)(1))
    disclosure_short: str  # its later SMS ((e)(2))
    # Calls: the opt-out every call offers, and what a person who takes it hears
    # ({company} becomes company.lcm_name). Unset: the defaults in CALL_OPT_OUT_DEFAULTS.
    call_opt_out: str | None = None
    call_opt_out_confirmation: str | None = None
    # Calls answered by a person: the question asked before anything about the account is
    # said ({company} becomes company.lcm_name, {name} the debtor's name), and what a
    # person who is not the debtor hears ({company} alone). Unset: the defaults in
    # CALL_IDENTITY_DEFAULTS.
    call_identity_check: str | None = None
    call_not_the_debtor: str | None = None

    # Every message is made of these: a blank one would send debt collectors' messages
    # without their disclosure, and texts without a way to stop them.
    @field_validator("opt_out", "disclosure", "disclosure_short")
    @classmethod
    def _said(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be empty: every message that needs it would go without")
        return value

    @field_validator("opt_out")
    @classmethod
    def _names_stop(cls, value: str) -> str:
        if not OPT_OUT_WORD.search(value):
            raise ValueError(
                "must name STOP (as in 'Reply STOP to opt out.'): the word every text's "
                "opt-out gives, which carriers and the STOP replies honour"
            )
        return value

    # A question that names no one lets anyone who answers press 1 and hear the debt; one
    # without both keys leaves the debtor and a stranger no way to say which they are.
    @field_validator("call_identity_check")
    @classmethod
    def _asks_for_the_debtor(cls, value: str | None) -> str | None:
        if value is None:
            return value
        missing = [part for part, found in _IDENTITY_PARTS.items() if not found.search(value)]
        if missing:
            raise ValueError(
                f"must have {' and '.join(missing)}, as in 'This call is for {{name}}. If you "
                "are {name}, press 1. If you are not, press 2.': only the debtor may hear "
                "the message"
            )
        return value

    # Said to someone who is not the debtor: naming the debtor would tell them whom we call.
    @field_validator("call_not_the_debtor")
    @classmethod
    def _names_no_one(cls, value: str | None) -> str | None:
        if value is not None and "{name}" in value:
            raise ValueError("must not have {name}: it is said to someone who is not the debtor")
        return value


class Company(BaseModel):
    """The sender's details, from ``templates/company.yaml``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    phone: str
    email: str
    website: str
    payment_url: str  # {reference} is replaced by the account's reference
    self_service_url: str
    lcm_name: str  # a business name that does not say it collects debts
    agent_name: str  # a person the debtor can ask for
    texts: dict[str, LocalTexts]  # by language; "en" is the fallback
    # The notices counsel approved for time-barred debts, whose mandated wording speaks of
    # suit (New York's 23 NYCRR 1.3): a verbatim occurrence is not read as a threat.
    time_barred_notices: tuple[str, ...] = ()

    # A blank notice would be found in every message, and exempt nothing anyone wrote.
    @field_validator("time_barred_notices")
    @classmethod
    def _notices_said(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for number, notice in enumerate(value, start=1):
            if not notice.strip():
                raise ValueError(
                    f"notice {number} is empty: each is the wording counsel approved, in full"
                )
        return value

    def texts_for(self, locale: str) -> LocalTexts:
        language = locale.split("_")[0]
        return self.texts.get(language) or self.texts["en"]


@dataclass(frozen=True)
class CallOptOutTexts:
    """What a call says to offer its opt-out, and the confirmation once a person takes it."""

    offer: str
    confirmation: str  # the company's name already in it


# The defaults by language: the offer, the confirmation, and the confirmation when no
# company file names the business. None names a debt, so a limited-content voicemail may
# carry the offer too (Reg F 1006.2(j) limits what it says about the debt, not how to stop).
CALL_OPT_OUT_DEFAULTS: dict[str, tuple[str, str, str]] = {
    "en": (
        "To stop these calls, press 9 or say stop.",
        "You will not receive further automated calls from {company} at this number. Goodbye.",
        "You will not receive further automated calls from us at this number. Goodbye.",
    ),
    "es": (
        "Para dejar de recibir estas llamadas, marque 9 o diga alto.",
        "No recibirá más llamadas automatizadas de {company} a este número. Adiós.",
        "No recibirá más llamadas automatizadas de nuestra parte a este número. Adiós.",
    ),
}


def call_opt_out_texts(company: Company | None, language: str) -> CallOptOutTexts:
    """The call opt-out's words in ``language``: the company's own when it set them, else
    the default for that language, else English. The confirmation names the business as
    the limited-content voicemail does (``lcm_name``): whoever pressed 9 may not be the
    debtor, so it must not tell them the call is about a debt."""
    language = language.replace("-", "_").split("_")[0].lower()
    if company is not None and language not in company.texts:
        language = "en"  # the company's fallback language, so offer and message agree
    offer, confirmation, unnamed = CALL_OPT_OUT_DEFAULTS.get(language, CALL_OPT_OUT_DEFAULTS["en"])
    if company is None:
        return CallOptOutTexts(offer, unnamed)
    texts = company.texts[language]
    confirmation = texts.call_opt_out_confirmation or confirmation
    return CallOptOutTexts(
        (texts.call_opt_out or offer).strip(),
        confirmation.replace("{company}", company.lcm_name).strip(),
    )


@dataclass(frozen=True)
class CallIdentityTexts:
    """What a call asks whoever answers before it says anything about the account, and
    what it says to someone who is not the debtor."""

    check: str  # the company's and the debtor's names already in it
    not_the_debtor: str


# The defaults by language: the question, the question when no company file names the
# business, and the words to someone else. Like a limited-content voicemail they name the
# business by lcm_name and say nothing of a debt: whoever answers may not be the debtor
# (15 USC 1692c(b), Reg F 1006.6(d)(1)).
CALL_IDENTITY_DEFAULTS: dict[str, tuple[str, str, str]] = {
    "en": (
        "Hello, this is {company}. This call is for {name}. If you are {name}, press 1. "
        "If you are not, press 2.",
        "Hello, this call is for {name}. If you are {name}, press 1. If you are not, press 2.",
        "Thank you. Sorry to have bothered you.",
    ),
    "es": (
        "Hola, le llamamos de {company}. Esta llamada es para {name}. Si usted es {name}, "
        "marque 1. Si no lo es, marque 2.",
        "Hola, esta llamada es para {name}. Si usted es {name}, marque 1. Si no lo es, marque 2.",
        "Gracias. Disculpe la molestia.",
    ),
}
_IDENTITY_FIELDS = re.compile(r"\{(company|name)\}")


def call_identity_texts(company: Company | None, language: str, name: str) -> CallIdentityTexts:
    """The identity check's words in ``language`` for the debtor ``name``: the company's
    own when it set them, else the default for that language, else English."""
    language = language.replace("-", "_").split("_")[0].lower()
    if company is not None and language not in company.texts:
        language = "en"  # the company's fallback language, as for the opt-out
    check, unnamed, not_the_debtor = CALL_IDENTITY_DEFAULTS.get(
        language, CALL_IDENTITY_DEFAULTS["en"]
    )
    words = {"company": "", "name": spoken_name(name)}
    if company is None:
        check = unnamed
    else:
        texts = company.texts[language]
        check = texts.call_identity_check or check
        not_the_debtor = texts.call_not_the_debtor or not_the_debtor
        words["company"] = company.lcm_name
    # In one pass: a name spelt "{company}" stays a name.
    said = _IDENTITY_FIELDS.sub(lambda found: words[found.group(1)], check)
    # The goodbye names the business as the check did, never the debtor (``LocalTexts``).
    goodbye = not_the_debtor.replace("{company}", words["company"])
    return CallIdentityTexts(said.strip(), goodbye.strip())


def spoken_name(name: str) -> str:
    """A debtor's name as a call's identity check says it: spaces aside."""
    return " ".join(name.split())


def load_company(templates_dir: Path) -> Company:
    path = templates_dir / "company.yaml"
    if templates_dir.is_file():
        raise ConfigError(f"{templates_dir} is a file, not the templates folder (TEMPLATES_DIR)")
    try:
        raw = yaml.safe_load(read_config_text(path))
        company = Company.model_validate(raw)
    except FileNotFoundError:
        raise ConfigError(
            f"{path} is missing: it names the company messages come from (is TEMPLATES_DIR "
            "the templates folder?)"
        ) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc})") from None
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
        )
        raise ConfigError(f"{path}: {problems}") from None
    if "en" not in company.texts:
        raise ConfigError(f"{path}: texts needs an 'en' entry, the fallback for other languages")
    return company


@quick_init
@dataclass(frozen=True)
class MessageFacts:
    """What rendering needs to know about one account."""

    reference: str
    debtor_name: str
    balance_minor: int
    currency: str
    due_date: date
    locale: str
    collector_type: str
    unsubscribe_url: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    # Nothing about this debt has reached the debtor before (``first_contact``): a debt
    # collector's message then carries the whole disclosure. True unless known otherwise.
    first_contact: bool = True
    # The debt is time-barred at the message's instant: its message may not threaten suit
    # (Reg F 1006.26(b)). False unless the account says so.
    time_barred: bool = False


@quick_init
@dataclass(frozen=True)
class Debtor:
    name: str
    first_name: str


@lru_cache(maxsize=65536)
def format_money(amount_minor: int, currency: str, locale: str) -> str:
    """The amount as the locale writes it (Babel's ``format_currency``), never rounded.

    Amounts are stored in ISO 4217 minor units, and CLDR shows fewer digits for some
    currencies (HUF, IDR, COP: 0 where ISO has 2; IQD: 0 where ISO has 3): an amount with a
    fraction in those digits shows them all (``HUF12,345.50``) rather than a rounded sum the
    debtor does not owe; a whole one is written as CLDR writes it (``HUF12,346``).

    Babel costs about 70 us a call and amounts rarely repeat, so for the common CLDR
    patterns (thousands grouped by three, the symbol before or after the number) the
    pieces are looked up once per currency and locale and the number is laid out with
    Python's own formatting; a test holds the two equal. Other patterns go to Babel."""
    exponent = currency_exponent(currency)
    digits = _shown_digits(amount_minor, exponent, _cldr_digits(currency))
    layout = _money_layout(currency, locale)
    if layout is None or amount_minor < 0:
        return _babel_money(amount_minor, currency, locale, exponent, digits)
    prefix, suffix, group, decimal_mark = layout
    whole, fraction = divmod(amount_minor, 10**exponent)
    # Exact: fewer digits than the exponent drop only zeros (``_shown_digits``).
    shown = fraction * 10**digits // 10**exponent
    number = f"{whole:,}" + (f".{shown:0{digits}d}" if digits else "")
    number = number.translate({ord(","): group, ord("."): decimal_mark})
    return f"{prefix}{number}{suffix}"


@lru_cache(maxsize=1024)
def _cldr_digits(currency: str) -> int:
    return int(get_currency_precision(currency))


def _shown_digits(amount_minor: int, exponent: int, cldr_digits: int) -> int:
    """The decimals to write: CLDR's, unless that would drop a non-zero minor unit."""
    if cldr_digits >= exponent or amount_minor % 10 ** (exponent - cldr_digits) == 0:
        return cldr_digits
    return exponent


def _babel_money(amount_minor: int, currency: str, locale: str, exponent: int, digits: int) -> str:
    amount = Decimal(amount_minor).scaleb(-exponent)
    if digits == _cldr_digits(currency):
        return str(format_currency(amount, currency, locale=locale))
    # The locale's pattern with the stored amount's decimals, so Babel does not round it.
    pattern = copy(Locale.parse(locale).currency_formats["standard"])
    pattern.frac_prec = (digits, digits)
    return str(
        format_currency(amount, currency, format=pattern, locale=locale, currency_digits=False)
    )


@lru_cache(maxsize=1024)
def _money_layout(currency: str, locale: str) -> tuple[str, str, str, str] | None:
    parsed = Locale.parse(locale)
    pattern = parsed.currency_formats["standard"]
    plain = (
        pattern.grouping == (3, 3)
        and not pattern.exp_prec
        and pattern.scale == 0  # no percent or permille scaling
        and "@" not in pattern.pattern
        and "'" not in pattern.pattern
        and "¤¤" not in pattern.pattern
    )
    if not plain:
        return None
    symbol = get_currency_symbol(currency, locale)
    return (
        pattern.prefix[0].replace("¤", symbol),
        pattern.suffix[0].replace("¤", symbol),
        get_group_symbol(locale),
        get_decimal_symbol(locale),
    )


@lru_cache(maxsize=4096)
def format_day(day: date, locale: str) -> str:
    return str(format_date(day, format="long", locale=locale))


DEFAULT_TEMPLATE_LANGUAGE = "en"


def written_in(template_language: str) -> str:
    """The language a message is written in: its variant's, or the default variant's
    (English) for the default, whatever the account's locale (an attempt's ``locale``,
    which a call is spoken and offers its opt-out in)."""
    return template_language or DEFAULT_TEMPLATE_LANGUAGE


@lru_cache(maxsize=1024)
def message_locale(account_locale: str, template_language: str) -> str:
    """The locale a message is written in: the account's, unless no template variant exists
    in its language, in which case the default variant's language (in the account's
    territory), so that words, dates and amounts never mix two languages.

    Always one Babel knows: where CLDR has no such language in that territory (``en_MX``,
    ``en_BR``, ``de_US``), the language alone (``en``, ``de``). Cached: a batch asks for the
    same few pairs a thousand times."""
    language = template_language or DEFAULT_TEMPLATE_LANGUAGE
    if account_locale.split("_")[0] == language and _babel_knows(account_locale):
        return account_locale
    territory = _territory(account_locale)
    if territory and _babel_knows(f"{language}_{territory}"):
        return f"{language}_{territory}"
    # A language lint accepts for a variant is one Babel knows; the fallback's, always.
    return language if _babel_knows(language) else DEFAULT_TEMPLATE_LANGUAGE


def _babel_knows(identifier: str) -> bool:
    try:
        Locale.parse(identifier)
    except (ValueError, UnknownLocaleError):
        return False
    return True


def _territory(account_locale: str) -> str | None:
    """The territory of a locale (``MX`` in ``es_MX``, ``RS`` in ``sr_Latn_RS``), if any."""
    try:
        return Locale.parse(account_locale).territory
    except (ValueError, UnknownLocaleError):
        return None


def build_context(
    facts: MessageFacts,
    company: Company,
    today: date,
    template_language: str = "",
    channel: str = "",
) -> dict[str, Any]:
    """The variables for one message to one account, as of ``today`` (the debtor's date),
    for a template written in ``template_language`` ("" for the default variant) for
    ``channel`` (its amounts and dates are written in GSM-7 for "sms")."""
    locale = message_locale(facts.locale, template_language)
    texts = company.texts_for(locale)
    overdue_days = (today - facts.due_date).days
    reference = quote(facts.reference, safe="")
    amount = format_money(facts.balance_minor, facts.currency, locale)
    due_date = format_day(facts.due_date, locale)
    if channel == "sms":
        # Babel's no-break spaces would make every text of a de_DE or fr_FR debtor UCS-2,
        # twice the segments; an email or a call keeps them (no wrapping inside an amount).
        amount, due_date = plain_for_sms(amount), plain_for_sms(due_date)
    return {
        "debtor": Debtor(
            facts.debtor_name, facts.debtor_name.split()[0] if facts.debtor_name else ""
        ),
        "reference": facts.reference,
        "amount": amount,
        "due_date": due_date,
        "due_date_iso": facts.due_date.isoformat(),
        "days_past_due": max(overdue_days, 0),
        "days_until_due": max(-overdue_days, 0),
        "payment_link": company.payment_url.replace("{reference}", reference),
        "self_service_link": company.self_service_url.replace("{reference}", reference),
        "company": company,
        "opt_out_text": texts.opt_out,
        "unsubscribe_url": facts.unsubscribe_url,
        # The mini-Miranda (Reg F 1006.18(e)) applies to debt collectors, not to creditors
        # collecting their own debts.
        "disclosure": texts.disclosure if facts.collector_type == "third_party" else "",
        "disclosure_short": texts.disclosure_short if facts.collector_type == "third_party" else "",
        # The initial communication needs the whole of it ((e)(1)); later SMS the short form.
        "first_contact": facts.first_contact,
        # A time-barred debt's message is refused if it threatens suit (``suit_threat``).
        "time_barred": facts.time_barred,
        "collector_type": facts.collector_type,
        "locale": locale,
        # Its language alone (an email's lang="fil"): worked out here once, not by a
        # sandboxed method call in every email's layout.
        "language": locale.split("_")[0],
        **facts.extra,
    }


class ShortFirstDisclosure(TemplateError):
    """A debt collector's first text rendered with the short disclosure only: mended by
    publishing the SMS footer again, not by editing the template."""


def check_first_disclosure(channel: str, context: Mapping[str, Any], text: str, path: str) -> None:
    """Refuse a debt collector's first text that lacks the whole disclosure (Reg F
    1006.18(e)(1)): lint refuses such a template, but one published before lint knew of
    first contacts may still give the short form to every text."""
    disclosure = str(context["disclosure"])
    if channel != "sms" or not disclosure or not context["first_contact"]:
        return
    if " ".join(disclosure.split()) not in " ".join(text.split()):
        raise ShortFirstDisclosure(
            f"{path}: a debt collector's first text must carry the whole {{{{ disclosure }}}}, "
            "not the short form: publish the SMS footer (or the template) again"
        )


SAMPLE_ACCOUNTS: tuple[MessageFacts, ...] = (
    MessageFacts("SAMPLE-1", "Pat Smith", 12_050, "USD", date(2026, 10, 15), "en_US", "first_party",
                 "https://example.com/u/sample-token-1"),
    MessageFacts("SAMPLE-2", "Maximilian Alexander Worthington-Fairbanks", 1_234_567, "USD",
                 date(2026, 8, 1), "en_US", "third_party", "https://example.com/u/sample-token-2"),
    MessageFacts("SAMPLE-3", "José Núñez", 98_000, "USD", date(2026, 11, 20), "es_US",
                 "third_party", "https://example.com/u/sample-token-3"),
    MessageFacts("SAMPLE-4", '<script>alert("x")</script> & Sons', 500, "USD", date(2026, 9, 1),
                 "en_US", "third_party", "https://example.com/u/sample-token-4"),
    MessageFacts("SAMPLE-5", "Yuki Tanaka", 45_000, "JPY", date(2026, 11, 1), "en_US",
                 "first_party", "https://example.com/u/sample-token-5"),
    # A debt collector's message after the first: an SMS may carry the short disclosure
    # (the others are first contacts, which carry the whole of it).
    MessageFacts("SAMPLE-6", "Dana Reyes", 27_500, "USD", date(2026, 9, 15), "en_US",
                 "third_party", "https://example.com/u/sample-token-6", first_contact=False),
    # Babel writes a euro amount with no-break spaces (1.234,56\xa0€): an SMS must not.
    MessageFacts("SAMPLE-7", "Jürgen Müller", 123_456, "EUR", date(2026, 10, 1), "de_DE",
                 "third_party", "https://example.com/u/sample-token-7"),
    # A time-barred debt, years past due: its messages must not threaten suit.
    MessageFacts("SAMPLE-8", "Sam Okafor", 86_000, "USD", date(2019, 3, 1), "en_US",
                 "third_party", "https://example.com/u/sample-token-8", first_contact=False,
                 time_barred=True),
)  # fmt: skip
SAMPLE_TODAY = date(2026, 11, 2)
# What an agent might answer each sample account: lint and the editor's preview render the
# answer templates with these (markup and template syntax in SAMPLE-4's stay plain text).
SAMPLE_ANSWERS: dict[str, str] = {
    "SAMPLE-1": "Thanks for letting us know. We have noted that you will pay on Friday.",
    "SAMPLE-2": (
        "Thank you for your message. We have received your payment of $200.00 and applied it "
        "to your account.\n\nThe remaining balance can be paid online or in instalments; "
        "reply to this message if you would like us to set up a plan."
    ),
    "SAMPLE-3": "Gracias por su mensaje. Hemos anotado su promesa de pago.",
    "SAMPLE-4": '<b>Noted</b> {{ 7 * 7 }} & "thanks"',
    "SAMPLE-5": "We have paused reminders while we look into your question.",
    "SAMPLE-6": "Thank you. Your payment plan starts on the first of next month.",
    "SAMPLE-7": "Thank you. We have received your payment of 200,00 EUR.",
    "SAMPLE-8": "Thank you for writing. Because of the age of this debt, we will not sue you.",
}


def answer_variables(answer: str, subject: str = "") -> dict[str, str]:
    """The answer templates' own variables: the agent's words and the email's subject
    ("" for the template's default)."""
    return {"answer": answer, "answer_subject": subject}


def variables_for(template_name: str) -> frozenset[str]:
    """The variables a template of this name may use."""
    if template_name == ANSWER_TEMPLATE:
        return KNOWN_VARIABLES | ANSWER_VARIABLES
    return KNOWN_VARIABLES


def sample_context(
    sample: MessageFacts,
    company: Company,
    today: date,
    template_name: str,
    language: str,
    channel: str,
) -> dict[str, Any]:
    """A sample account's variables for a template, the answer templates' included."""
    context = build_context(sample, company, today, language, channel)
    if template_name == ANSWER_TEMPLATE:
        context.update(answer_variables(SAMPLE_ANSWERS.get(sample.reference, "Thank you.")))
    return context
