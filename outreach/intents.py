"""What a debtor's message says: a keyword, a request to stop, and what it is about.

Simple rules, documented in docs/webhooks.md and tested by tables in tests/test_intents.py:

- ``keyword``: the whole message is one keyword (STOP, START, HELP...), case, punctuation
  and the width of letters (a phone's full-width ＳＴＯＰ) ignored. Such a message is an
  instruction, not a conversation: it never reaches the inbox.
- ``stop_request``: the message asks us to stop, by keyword (the FCC's list: stop, quit, end,
  revoke, opt out, cancel, unsubscribe; plus stopall; and in Spanish alto, parar, pare,
  baja, cancelar) alone or as a sentence of its own ("STOP. I paid", "Alto por favor",
  "Can you please stop", "Stop this number"), remove, unsub, basta, detener, "no more" or
  "no más" as the whole message ("Remove please", "NO MORE"; "I can pay 50 a month, no
  more" is none), or in words ("please stop texting me", "don't call me", "don't send me
  any more texts", "I don't want any more texts", "I withdraw my consent", "I do not
  consent to texts", "you don't have my permission to call me", "no me llamen", "no recibir
  mas mensajes", "quítenme de su lista"), but not a consent about a payment or a recording
  ("I withdraw my consent for the ACH", "I do not consent to this call being recorded").
  It names the media it is about: the one it came on unless its words say otherwise
  ("stop calling me" in a text is about calls), every one it lists ("don't call or text
  me", "no calls or texts please"), but not one asked for after "and" ("stop calling me
  and text me the link"); a bare stop beside words that name media is about both ("STOP.
  Don't email me either." in a text: texts and email). When in doubt the
  rules read a request to stop as one: honouring a stop nobody meant costs a message,
  missing one breaks the law.
- ``classify``: every intent the message shows, most serious first: attorney, cease,
  dispute, wrong number, paid, payment plan (hardship, a plan, more time, a promise to pay),
  call me, not at work, opt out (a request to stop this medium only), other. A dispute or
  a lawyer the debtor denies ("I'm not disputing", "I don't have a lawyer", "no dispute,
  I'll pay") is not one, but one only spoken of after a negation is ("No I'm disputing
  this", "I never got the dispute form"); a request to call that is part of a stop ("do
  not text or call me") is not one either.
- ``not_at_work``: a request to stop, or to be left alone, that is about the debtor's work
  only ("don't call me at work", "stop emailing my work address", "no me llamen al
  trabajo"). The workplace is then a place known to be inconvenient (1006.6(b)(1)(ii)): no
  contact at a work number or mailbox, and no more than that (the request is neither an
  opt-out of the debtor's own number nor a cease). A request that goes on ("at work or at
  home") is read whole.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from outreach.providers.keywords import HELP, OPT_IN, OPT_OUT, normalize


class Keyword(StrEnum):
    OPT_OUT = "opt_out"
    OPT_IN = "opt_in"
    HELP = "help"


class Intent(StrEnum):
    ATTORNEY = "attorney"
    CEASE = "cease"
    DISPUTE = "dispute"
    WRONG_NUMBER = "wrong_number"
    PAID = "paid"
    PAYMENT_PLAN = "payment_plan"
    CALL_ME = "call_me"
    NOT_AT_WORK = "not_at_work"
    OPT_OUT = "opt_out"
    OTHER = "other"


# Intents that put a hold on the account (a compliance event) and call for an agent.
HOLDS = (Intent.ATTORNEY, Intent.CEASE, Intent.DISPUTE, Intent.NOT_AT_WORK)

# Words that may stand beside a stop keyword in a sentence of its own ("Stop it please").
_FILLERS = frozenset(
    {"please", "pls", "plz", "now", "it", "them", "this", "that", "these", "those", "all",
     "me", "my", "the", "thanks", "thank", "you", "asap", "immediately", "texts", "text",
     "messages", "message", "sms", "already", "ok", "okay", "thx", "ty", "msg", "msgs",
     "txt", "txts", "spam", "i", "said", "told", "we", "just", "again",
     "for", "good", "forever", "seriously", "do", "u", "ur", "your", "number",
     "por", "favor", "porfavor", "xfa", "ya", "gracias", "mensajes", "mensaje", "textos",
     "texto", "todo", "todos", "ahora", "dije", "de", "los", "las"}
)  # fmt: skip
# Opt-out keywords beyond the provider's (Twilio answers only its own, in English): what a
# Spanish speaker texts to stop. Matched as ours, so outreach confirms them itself.
SPANISH_OPT_OUT = frozenset({"ALTO", "PARAR", "PARE", "BAJA", "CANCELAR"})
# The opt-out keywords as single words ("opt out" is read as "optout"): each a stop as a
# sentence of its own with at most a few filler words ("STOP. I paid", "Stop it please").
_STOP_WORDS = frozenset(keyword.lower().replace(" ", "") for keyword in OPT_OUT | SPANISH_OPT_OUT)
# Words that are a stop only as the whole message, with at most a plea or a thanks around
# them ("Remove", "UNSUB pls", "Basta ya", "Remove number", "Unsub from this"): inside a
# longer message they may be about something else ("The late fee is wrong. Remove it.",
# "Remove it please", "Just remove it"). "No more" and "no más" take a plea only ("NO MORE
# PLEASE"): "No more, thanks" declines an offer, "I can pay 50 a month, no more" and "Ahora
# no más" (just now) ask nothing. A question ("No more?") is none.
_POLITE = r"(?:please|pls|plz|por favor|porfavor|xfa|ya|thanks|thank you|thx|ty|gracias|ok|okay)"
_PLEA = r"(?:please|pls|plz|por favor|porfavor|xfa|ya)"
# What may follow "unsub" or "remove" alone: whom and how soon ("Unsub me", "Remove asap").
_URGENT = r"(?:me|us|now|asap|immediately|right now)"
_MESSAGE_STOP = re.compile(
    rf"(?:{_POLITE} )*(?:unsub(?: from (?:this|these|it|that|here|the list|your list|list))?"
    rf"|remove(?: (?:my |this |the )?number)?|basta|detener|detente)"
    rf"(?: (?:{_POLITE}|{_URGENT}))*"
    rf"|(?:{_PLEA} )*no m(?:ore|[aá]s)(?: {_PLEA})*"
)
# How a sentence may ask for the stop that follows ("Can you please stop", "Please can you
# stop", "Can you guys stop", "I am asking you to stop", "Would you stop it"): read as the
# stop itself. What follows must still be a stop and filler ("can you stop the late fees"
# names a fee).
_ASKING = re.compile(
    r"^(?:(?:please|pls|plz) )?(?:(?:can|could|would|will) (?:you|u|ya|someone|somebody)"
    r"(?: (?:guys|all|people|folks))?|(?:i am|i m|im) "
    r"(?:asking|telling|begging) (?:you|u)(?: to)?|i (?:ask|asked|beg|need|want) (?:you|u) to)"
    r"(?= )"
)
# "Stopp", "STOPPP": a STOP with its last letter held down.
_HELD_STOP = re.compile(r"\bstop{2,}\b")
# STOP spelled out a letter at a time ("S.T.O.P", "s-t-o-p", "S T O P").
_SPELLED_STOP = re.compile(r"\bs(?:[.\-] ?| )t(?:[.\-] ?| )o(?:[.\-] ?| )p\b\.?")

_SMS = (
    r"(?:text|texts|texting|txt|txts|txting|sms|message|messages|messaging|msg|msgs|msging"
    r"|msgng"
    r"|mensaje|mensajes|texto|textos)"
)
_VOICE = (
    r"(?:call|calls|calling|phone|phoning|ring|ringing|robocall|robocalls|voicemail|voicemails"
    r"|llamada|llamadas|llamar|llamarme|llamen|llames|llame|llamando)"
)
_EMAIL = r"(?:email|emails|emailing|e-mail|e-mails|e-mailing|correo|correos)"
# Spanish: writing to someone, as a command or a plea ("no me escriban"), and what is sent.
_WRITE = (
    r"(?:escriban|escribas|escriba|escribiendo|contacten|contactes|contactando|molesten|"
    r"molestes|molestando|(?:env[ií]en|env[ií]es|enviando|manden|mandes|mandando) "
    r"(?:m[aá]s |nada|ning[uú]n )?(?:mensajes|mensaje|textos|correos|nada))"
)
_WRITE_TO = (
    r"(?:escribir|escribirme|enviar|enviarme|mandar|mandarme|contactar|contactarme|"
    r"molestar|molestarme)"
)
_NOUNS = r"(?:mensajes|mensaje|textos|llamadas|correos)"
# The plural of each medium's noun, for "no calls or texts" (a singular "no text" is too
# often a complaint: "I got no text").
_PLURALS = (
    r"(?:texts|txts|msgs|messages|sms|calls|phone calls|emails|e-mails"
    r"|robocalls|voicemails)"
)
# Each medium as a request to stop names it, "being called" too (its past participle, which
# the phrases accept only after "consent to": "stop, I called" asks nothing).
_MEDIUM = {"sms": re.compile(rf"\b(?:{_SMS}|texted|messaged)\b"),
           "voice": re.compile(rf"\b(?:{_VOICE}|called|phoned)\b"),
           "email": re.compile(rf"\b(?:{_EMAIL}|emailed|e-mailed)\b")}  # fmt: skip
# Ways of paying, which "remove me" or a consent may be about instead of the messages.
_PAYING = (
    r"(?:auto[- ]?pay|automatic (?:payments?|debits?|billing|withdrawals?)|auto[- ]?debits?"
    r"|payment plan|recurring (?:payments?|billing|charges?)|direct debits?"
    r"|ach(?: (?:debits?|payments?|transfers?|withdrawals?|authori[sz]ation))?)"
)
# What else a consent may be about than the messages: a way of paying, a payment, an offer
# or a plan ("I withdraw my consent for the ACH", "... to the settlement offer"), but not
# the reminders about them ("I withdraw my consent to payment reminders" is about messages).
_PAID_WITH = (
    rf"(?:{_PAYING}|debits?|payments?|settlements?(?: offers?)?|offers?|plans?|arrangements?"
    r"|(?:credit |debit )?card(?: on file)?|bank account)"
    r"(?! (?:reminders?|notices?|notifications?|alerts?|requests?|texts?|calls?|emails?"
    r"|messages?|by|via|over|through)\b)"
)
_MEDIA = rf"(?:{_SMS}|{_VOICE}|{_EMAIL})"
# What a medium may be named for besides being sent to the debtor: "this call being
# recorded", "this email address being used for the loan", "the call recording". Not when
# the use is contact ("my number being used to call me").
_HANDLED = (
    r"(?:recorded|recording|recordings|shared|used|sold|monitored|taped|transcribed"
    r"|disclosed|released|stored|kept|saved|given out|passed on)\b"
    rf"(?! (?:to|for) (?:\w+ )?(?:{_MEDIA}|contact\w*|reach\w*)\b)"
)
# The words after a consent that make it one about something other than the messages: a
# payment, paying ("... to charge my card"), being recorded, or a medium handled otherwise.
_CONSENT_ELSEWHERE = (
    r" (?:to|for|of|on) (?:(?:the|my|this|your|any|all|these|those|a|an|such|our) )*(?:"
    rf"{_PAID_WITH}\b|(?:charge|debit|draft|bill|withdraw)\b"
    r"|(?:(?:being|be|having|have) )?(?:recorded|recording|record|monitored|taped)\b"
    rf"|{_MEDIA}(?: (?:address|addresses|number|numbers|line|account|conversation"
    rf"|conversations|call|calls))? (?:(?:being|be|to be|getting|get) )?{_HANDLED})"
)
# What a consent withdrawn or refused is to, when it says: a medium, contact, or reminders
# (by a medium: "I do not consent to payment reminders by text"), by whoever makes it ("I
# don't consent to you texting me").
_CONSENT_TO = (
    r" to (?:(?:you|u|anyone|anybody|them|your company) )?(?:(?:receive|receiving|get"
    r"|getting|be|being) )?(?:any |more |further |these |those |your |the |this |my |of )*"
    rf"(?:{_SMS}|{_VOICE}|{_EMAIL}|texted|messaged|called|phoned|emailed|e-mailed|contact"
    r"|contacted|contacting|communications?|(?:(?:payment|collection|debt|billing) )?"
    rf"(?:reminders?|notices?|notifications?|alerts?)(?: (?:by|via|over|through) {_MEDIA})?)"
    r"\b"
)
# The words that may stand before a consent withdrawn: "my prior express consent", "any
# and all consent", "my previous written permission".
_CONSENT_MODIFIERS = (
    r"(?:(?:my|all|any|our|the|and|prior|previous|express|expressed|written|verbal|oral"
    r"|such|every|of) ){0,5}"
)
# What a Spanish consent withdrawn is to, when it says: a medium, or being written to.
_CONSENTIMIENTO_TO = (
    rf" (?:para|a|de) (?:recibir |que me |ser )?(?:m[aá]s )?(?:{_NOUNS}|{_VOICE}|{_WRITE}"
    rf"|{_WRITE_TO}|contactado|llamado)\b"
)
# A Spanish consent about a payment, a plan or a recording.
_CONSENTIMIENTO_ELSEWHERE = (
    r" (?:para|a|de|del|al|sobre) (?:(?:el|la|los|las|mi|mis|su|sus|este|esta) )*(?:pagos?"
    r"|cargos?|d[eé]bitos?|plan|planes|acuerdo|arreglo|oferta|tarjeta|cuenta|grabaci[oó]n"
    r"|grabar|que (?:se )?graben)\b"
)
# "Quítenme de su lista", "sáquenme de la lista", "bórrenme de su lista", "elimínenme de su
# lista", "pueden quitarme de su lista", "quiero que me quiten de la lista": take me off
# your list, in a text, an email or a call.
_OFF_THE_LIST = (
    r"\b(?:qu[ií]t(?:enme|ame|eme|enos)|s[aá]qu(?:enme|eme|enos)|s[aá]c(?:ame|anos)"
    r"|b[oó]rr(?:enme|ame|eme|enos)|elim[ií]n(?:enme|ame|eme|enos)"
    r"|(?:quitar|sacar|borrar|eliminar)(?:me|nos)|me (?:quiten|saquen|borren|eliminen))"
    r" de (?:su |la |sus |esta |tu |las |vuestra )?listas?\b"
)

# A request to stop in words, wherever it stands in the message.
_STOP_PHRASES = tuple(
    re.compile(pattern)
    for pattern in (
        rf"\b(?:stop|quit|cease) (?:\w+ ){{0,2}}(?:{_SMS}|{_VOICE}|{_EMAIL}|contacting|"
        r"harassing|bothering|sending|spamming|spam)\b",
        rf"\b(?:don't|dont|do not|never) (?:ever )?(?:{_SMS}|{_VOICE}|{_EMAIL}|contact|reach)\b",
        rf"\bno more (?:{_SMS}|{_VOICE}|{_EMAIL}|contact)\b",
        # "No calls or texts please", "Please, no emails": a plural at a sentence's start only
        # ("I got no texts from you" asks nothing), that ends its sentence or goes on with
        # nothing but other media, a courtesy or "anymore" ("No texts came through", "no
        # texts yet", "No texts? I never got one" are complaints).
        rf"(?:^|[\n.!?;,] ?)(?:please )?no (?:phone )?{_PLURALS}\b"
        rf"(?:,? (?:or|and|nor) (?:no )?(?:{_SMS}|{_VOICE}|{_EMAIL})\b)*"
        r"(?: (?:please|pls|thanks|thank you|to this number|anymore|any more|ever|again))*"
        r"(?= ?(?:[\n.!;,]|$))",
        # "Don't send me any more texts", "Please do not send messages", "Don't send me
        # anything": sending is what they ask us not to do.
        rf"\b(?:don't|dont|do not|never) (?:ever )?send (?:me |us )?(?:any ?more |any |no )?"
        rf"(?:more |further |of )?(?:these |those |your |the |them |this |that |a |an |another )?"
        rf"(?:{_SMS}|{_VOICE}|{_EMAIL}|anything|any ?more|again)\b"
        # "Don't send the email to my old address" asks for it elsewhere.
        r"(?! to (?:my |the |that |this |an? )?(?:old|previous|former|wrong|other|new)\b)",
        # "I don't want any more texts", "I do not want to receive texts".
        rf"\b(?:don't|dont|do not|no longer) (?:want|wish) (?:to (?:receive|get|have) )?"
        rf"(?:any ?more |any |no )?(?:more |further |of )?(?:these |those |your |the )?"
        rf"(?:{_SMS}|{_VOICE}|{_EMAIL})\b",
        r"\b(?:unsubscribe|opt me out|opt-out|opt out|optout)\b",
        # "Revoke", but not a consent or an authorization to pay ("I revoke my consent for
        # the ACH", "revoke the autopay authorization").
        rf"\brevoke\b(?! {_CONSENT_MODIFIERS}(?:(?:consent|permission|authori[sz]ation)\b"
        rf"{_CONSENT_ELSEWHERE}|{_PAID_WITH}\b))",
        # "Remove me", "Take me off", but not off a way of paying ("take me off autopay",
        # "remove me from the payment plan" ask about payments, not messages).
        rf"\b(?:remove me|take me off)\b(?! (?:from |off )?(?:of )?(?:the |my |this |your )?"
        rf"{_PAYING}\b)",
        r"\b(?:remove|delete|take) (?:my|this) (?:phone |cell |mobile |email )?(?:number|"
        r"phone|cell|email|address)\b",
        # "Remove from your list", "remove my number from the mailing list".
        r"\b(?:remove|take) (?:me |us |my number |this number |my email )?(?:from|off) (?:of )?"
        r"(?:your |the |this |ur |our |all |that )?(?:(?:mailing|contact|call|calling|text|"
        r"texting|sms|email|messaging|distribution) )?lists?\b",
        r"\bleave me alone\b",
        r"\bcease\b",
        # Consent withdrawn ("I withdraw my consent", "I am revoking my prior express
        # consent", "I revoke my consent to calls"), refused ("I do not consent to texts",
        # "I never consented to this.") or denied ("you don't have my permission to text
        # me"): revocation by any reasonable means (47 CFR 64.1200(a)(10)), about the media
        # it names, if any. Not a consent to paying ("withdraw my consent for the ACH", "...
        # to the settlement offer"), to being recorded ("I do not consent to this call being
        # recorded"), nor to something that is no contact ("I do not consent to the fee").
        rf"\b(?:withdraw|withdrawing|withdrew|rescind|rescinding|retract|retracting|revoke"
        rf"|revoking|take back|taking back) {_CONSENT_MODIFIERS}(?:consent|permission)"
        rf"\b(?!{_CONSENT_ELSEWHERE})(?:{_CONSENT_TO})?",
        rf"\b(?:(?:don't|dont|do not|no longer|never|did not|didn't) (?:give (?:you )?(?:my )?"
        r"(?:consent|permission)|consent(?:ed)?)|(?:you|u|ya|your company) (?:don't|dont"
        r"|do not|no longer|never|did not|didn't) (?:have|had|got) (?:my |our |any )?"
        rf"(?:consent|permission))\b(?!{_CONSENT_ELSEWHERE})(?:{_CONSENT_TO}|(?: to (?:this"
        r"|that|it|these|those))?(?= ?(?:[\n.!;,]|$)))",
        # Spanish: "retiro mi consentimiento", "revoco mi permiso para llamarme"; not for a
        # payment or a recording ("retiro mi consentimiento para el cargo automático").
        rf"\b(?:retiro|revoco|retiramos|revocamos) (?:mi |nuestro |el |todo )?"
        rf"(?:consentimiento|permiso)\b(?!{_CONSENTIMIENTO_ELSEWHERE})(?:{_CONSENTIMIENTO_TO})?",
        # Spanish: "no me llamen", "no me sigan llamando", "dejen de escribirme" (but not
        # "no dejen de llamarme", keep calling me), "no quiero más mensajes", "déjenme en
        # paz", "quiero darme de baja" (but not "dar de baja el pago automático").
        rf"\bno me (?:vuelvan a |vuelvas a |sigan |sigas )?(?:{_VOICE}|{_WRITE})\b",
        rf"(?<!no )\b(?:dej|par)(?:en|a|e) de (?:llamar|llamarme|{_WRITE_TO})\b",
        # "No quiero recibir más mensajes", and "no recibir mas mensajes" (our own footer's
        # words, "Responda STOP para no recibir mas mensajes", sent back).
        rf"\bno (?:m[aá]s |(?:(?:quiero|deseo) (?:recibir )?|recibir )(?:m[aá]s )?)"
        rf"(?:{_NOUNS})\b",
        _OFF_THE_LIST,
        rf"\bno quiero que me (?:{_VOICE}|{_WRITE})\b",
        rf"\bno (?:llamen|llames|{_WRITE})(?: m[aá]s)?\b",
        r"\bbasta de (?:mensajes|textos|llamadas|correos)\b",
        r"\bd[eé]j(?:enme|ame) en paz\b",
        r"\b(?:darme|denme|dame|darse) de baja\b",
        r"\bcancelar (?:la |mi )?suscripci[oó]n\b",
    )
)

# The media listed after a request to stop's first ("don't call or text me", "do not call,
# text or email me", "no me llamen ni me escriban"): each is asked about as much as the first.
# Commas alone do not make a list ("stop calling, text me instead" asks for texts).
_MEDIUM_WORD = rf"(?:{_SMS}|{_VOICE}|{_EMAIL}|{_WRITE})"
_LISTED = re.compile(
    rf"(?: (?:me|us|again))?(?P<joint>,? (?:or|and|nor|ni|y|o|e|plus|neither) |, ?)(?:(?:me|us"
    rf"|any|more|no|any more) )*(?P<medium>{_MEDIUM_WORD})\b"
)
_INSTEAD = re.compile(r" (?:me |us )?(?:instead|rather|en su lugar|mejor)\b")
_CONJUNCTION = re.compile(r" (?:or|and|nor|ni|y|o|e|plus) ")
# After "and" a medium may be one more thing asked not to be done ("stop calling and
# texting me", "don't call and text me") or a request of its own ("stop calling me and
# text me the link", "no me llamen y envíen mensajes"): it is listed when it is a noun or
# an -ing form, or a bare verb that closes the phrase; a Spanish verb after "y" never is
# ("no me llamen ni me escriban" lists, with "ni").
_AND = re.compile(r",? (?:and|y|e|plus) ")
_LISTED_NOUN = re.compile(
    r"(?:\w+ing|texts|txts|messages|msgs|sms|calls|robocalls|voicemails|emails|e-mails"
    r"|mensajes|textos|llamadas|correos)"
)
_BARE_VERB = re.compile(r"(?:text|txt|message|msg|call|phone|ring|email|e-mail)")
_CLOSED = re.compile(
    r"(?: (?:me|us))?(?: (?:again|anymore|any more|ever|please|pls|thanks|thank you|at all))*"
    r"(?= ?(?:[\n.!?;,]|$| or | nor ))"
)
# A Spanish plea not to be written to names no medium: it is about the one it came on, or
# texts when said in a call.
_WRITTEN = re.compile(rf"\b{_WRITE}\b")
# Words for any message, not a text's alone: in an email, "stop sending me messages" is
# about the emails too.
_ANY_MESSAGE = re.compile(
    r"\b(?:message|messages|messaging|messaged|msg|msgs|msging|msgng|mensaje|mensajes)\b"
)

# What makes a request to stop one about work only, right after it: "... me at work", "...
# my office number", "... al trabajo", and then nothing but a courtesy before the sentence
# ends. A request that goes on ("at work or at home", "at work, home or cell", "at work
# hours") is read whole: when in doubt, a stop is a stop.
_AT_WORK = re.compile(
    r" (?:me |us )?(?:"
    r"(?:at|to|on|in|through|via) (?:my |our |the )?(?:work|job|office|workplace|employer|"
    r"place of (?:work|employment))(?: (?:number|phone|line|email|e-mail|address))?"
    r"|(?:my|our) (?:work|office|job|employer's)(?: (?:number|phone|line|email|e-mail|"
    r"address|cell|mobile))?"
    r"|(?:al|a mi|en mi|en el) (?:tel[eé]fono |n[uú]mero |celular |correo )?(?:del |de mi )?"
    r"(?:trabajo|oficina|empleo)"
    r")(?: (?:again|ever|please|pls|thanks|thank you|ok|okay|por favor|gracias))*"
    r"(?= ?(?:[.!?;\n]|$))"
)
# A request that names more than one thing ("stop calling and texting me at work": the
# texts may be meant everywhere), or is a formal demand ("cease and desist ..."), is not
# narrowed to work.
_NOT_NARROWED = re.compile(r"\b(?:and|or|nor|y|o|ni|e|desist)\b")

_DISPUTE_WORD = r"\bdisput\w*"
_ATTORNEY_WORD = r"\b(?:attorney|attorneys|lawyer|lawyers|counsel|solicitor)\b"
# A dispute or a lawyer the debtor says they do not have, in one of the forms of a denial:
# a negation and a verb of disputing or of needing right before the word ("I'm not
# disputing the debt", "I don't want to dispute anything", "I won't need a lawyer", "I
# don't have a lawyer"), or "no dispute" / "no lawyer" as a short clause of its own ("No
# dispute, I'll pay Friday", "No lawyer needed."). Anything else is read as said ("I
# dispute", "No I'm disputing this", "I never got the dispute form", "not without a
# lawyer", "There is no dispute on my account?"): when unsure, a dispute is a dispute.
_NEGATED = re.compile(
    r"(?:\b(?:not|never|dont|wont|didnt|doesnt|cant)|n't)(?: (?:need|needing|want|wish|plan|"
    r"planning|intend|intending|to|a|an|any|have|be|for|really|even|ever|is))* $"
)
# "no dispute", after nothing but "there is", "I have" and the like, and then at most two
# words before its clause ends (not in a question: "No dispute? I filed one").
_NO_BEFORE = re.compile(
    r"(?:^|[\n.!;,] ?)(?:(?:there is|there's|theres|i have|i've|ive|we have|"
    r"we've) )?no (?:more )?$"
)
# What after a denied dispute or lawyer says it is only not yet: "yet" ending its clause
# within two words ("I haven't disputed it yet", not "I'm not disputing it yet you call"),
# or a sentence ending in "but I will" and the like.
_CLAUSE_END = re.compile(r"[.!?;\n]+")
_YET = re.compile(r"(?: [\w'-]+){0,2} yet ?(?:[,.!?;\n]|$)")
_LATER = re.compile(
    r"\bbut (?:i|we)(?:'ll| will|'m going to| am going to)(?: soon| get one| hire one|"
    r" file one| need one| get a lawyer| hire a lawyer| dispute\w*(?: it| this)?)? ?$"
)
_NO_AFTER = re.compile(r"(?: [\w'-]+){0,2} ?(?:[\n.!;,]|$)")
_GUARDED = frozenset({_DISPUTE_WORD, _ATTORNEY_WORD})

# Each intent's rules, most serious first; a message shows every intent whose rule matches.
_RULES: tuple[tuple[Intent, tuple[str, ...]], ...] = (
    (Intent.ATTORNEY, (
        _ATTORNEY_WORD,
        r"\blegal (?:representation|representative|aid)\b",
        r"\brepresented by\b",
        r"\blaw (?:firm|office|offices)\b",
    )),
    (Intent.CEASE, (
        r"\bcease\b",
        r"\bdesist\b",
        r"\b(?:stop|quit|end) (?:all )?(?:contacting|harassing|bothering|communicating|"
        r"communication|communications|contact)\b",
        r"\b(?:don't|dont|do not|never) (?:ever )?(?:contact|communicate|reach out)\b",
        r"\bleave me alone\b",
        r"\bno (?:more|further) contact\b",
        r"\brefuse to pay\b",
    )),
    (Intent.DISPUTE, (
        _DISPUTE_WORD,
        r"\b(?:not|isn't|isnt|is not|aint|ain't) (?:my|mine|our) "
        r"(?:debt|bill|account|balance|charge)",
        r"\bnot mine\b",
        r"\b(?:don't|dont|do not|never) owe\b",
        r"\bowe (?:you )?nothing\b",
        r"\bidentity theft\b",
        r"\bfraud\w*",
        r"\bnever (?:had|opened|signed up for|signed for|used|applied for) (?:an? |this |that "
        r"|the |any )?(?:account|service|card|loan|contract|debt|plan)",
        r"\bwrong (?:amount|balance|charge)\b",
        r"\b(?:amount|balance|bill|charge) is (?:wrong|incorrect)\b",
        r"\bvalidat(?:e|ion)\b",
        r"\bprove (?:it|that|i owe)\b",
    )),
    (Intent.WRONG_NUMBER, (
        r"\bwrong (?:number|person|email|address|guy|lady|man|woman)\b",
        r"\b(?:don't|dont|do not) know (?:this person|who|him|her|them|anyone|any)\b",
        r"\bno ?(?:one|body) (?:here )?(?:by|named|called|with (?:that|this) name)\b",
        r"\bthis is not (?:him|her|them|his|hers)\b",
        r"\b(?:he|she|they) (?:doesn't|does not|don't|do not|no longer) (?:live|have this|use)",
        r"\bnot (?:the right|the correct) (?:number|person|email)\b",
    )),
    (Intent.PAID, (
        r"\b(?:i|we|i've|ive|we've|already|just) (?:already |just |have |had )?"
        r"(?:paid|payed|sent (?:the |a |my |in )?payment|made (?:the |a |my )?payment)\b",
        r"(?<!n't )(?<!not )(?<!yet )(?<!never )\bpaid (?:it|this|that|in full|off|"
        r"yesterday|today|last|on|online|already)\b",
        r"(?<!no )\bpayment (?:was |has been |is )?(?:sent|made|submitted|processed)\b",
        r"\bcheck (?:is )?in the mail\b",
        r"^paid\b",
    )),
    (Intent.PAYMENT_PLAN, (
        r"\bpayment plans?\b",
        r"\b(?:set up|setup|make) (?:a )?plan\b",
        r"\binstal?l?ments?\b",
        r"\bpay (?:it )?(?:in|over) (?:parts|time|installments|pieces)\b",
        r"\b(?:can't|cant|cannot|can not|unable to|could not|couldn't) (?:afford|pay)\b",
        r"\bhardship\b",
        r"\b(?:lost|lose|losing) (?:my |our )?(?:job|work|income)\b",
        r"\b(?:unemployed|laid off|disability|medical bills?|hospital)\b",
        r"\bmore time\b",
        r"\bextension\b",
        r"\b(?:i'll|ill|i will|i can|i'm going to|im going to|will) pay\b",
        r"\b(?:smaller|partial|lower|part) payments?\b",
        r"\bpay (?:some|part|half)\b",
    )),
    (Intent.CALL_ME, (
        r"(?<!n't )(?<!dont )(?<!not )(?<!never )(?<!ever )(?<!stop )\b(?:call|phone|ring) "
        r"(?:me|us)\b",
        r"\bgive (?:me|us) a (?:call|ring)\b",
        r"\b(?:can|could|would|please) (?:you |someone |somebody )?(?:please )?call\b",
        r"\b(?:speak|talk) (?:to|with) (?:someone|somebody|a person|an agent|a human|"
        r"a representative|a rep|you|a real person)\b",
        r"\bwhat (?:number|phone) (?:can|do|should) i call\b",
    )),
)  # fmt: skip
_COMPILED = tuple((intent, tuple(re.compile(p) for p in patterns)) for intent, patterns in _RULES)
_COMPILED_GUARDED = frozenset(re.compile(pattern) for pattern in _GUARDED)
_CALL_ME_RULES = dict(_COMPILED)[Intent.CALL_ME]
# Requests to stop and to be left alone, which "at work" after them limits to work.
_LIMITED_BY_WORK = (*_STOP_PHRASES, *dict(_COMPILED)[Intent.CEASE])

_SENTENCE_END = re.compile(r"[.!?;,\n]+")
_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'"})

# What mail clients put before a subject they reply to or forward, in several languages
# (Re, Fwd, AW, WG, RV, Odp, PD, YNT, Vá, 回复, 转发, 답장, Απ, SV, Antw, TR, R...), any number
# of them, and the [tags] mail servers add ("[EXTERNAL] RE:").
_SUBJECT_PREFIXES = re.compile(
    r"^(?:\s*\[[^\]\n]{0,40}\]|\s*(?:re|fw|fwd|aw|wg|rv|res|enc|tr|sv|vs|antw|r|odp|pd|ynt|vá|"
    r"回复|回覆|答复|转发|轉寄|답장|회신|전달|απ|σχετ|πρθ|ответ|пересл)\s*(?:\[\d+\]|\(\d+\))?"
    r"\s*[:：])+",
    re.IGNORECASE,
)

# In an email reply: the line that introduces a quote ("On ... wrote:", and as mail
# clients write it in Spanish, French, German, Dutch, Portuguese, Italian, Swedish), with the
# quoted lines (">") after it; the start of an original that is not quoted (Outlook's
# "From: ... Sent: ..." block, a forward), after which everything is our own message; a
# signature.
_ATTRIBUTION = re.compile(
    r"^(?:on .{0,200}wrote:?|le .{0,200}a écrit ?:|el .{0,200}escribió ?:"
    r"|am .{0,200}schrieb.{0,200}:|op .{0,200}schreef.{0,200}:|em .{0,200}escreveu ?:"
    r"|il .{0,200}ha scritto ?:|den .{0,200}skrev.{0,200}:)$",
    re.IGNORECASE,
)
# The start of an attribution a mail client wrapped onto a second line ("On ... Billing <"
# then "billing@example.com> wrote:").
_ATTRIBUTION_START = re.compile(r"^(?:on|le|el|am|op|em|il|den) ", re.IGNORECASE)
_ORIGINAL_START = re.compile(
    r"^(?:-{2,} ?original message ?-{2,}|_{8,}|\*?from:\*? .*|begin forwarded message:?)$",
    re.IGNORECASE,
)
# Outlook's header block in other languages ("De: ... Enviado:", "Von: ... Gesendet:",
# "Van: ... Verzonden:", "Da: ... Inviato:"), bold in its mobile app ("*De:*"): a sender
# line followed by another header, so a debtor's line that starts "De:" is not one.
_LOCAL_FROM = re.compile(
    r"^\*?(?:de|von|van|da|från|fra|od|expéditeur|mittente|remetente)\*? ?: ?\*? ?\S",
    re.IGNORECASE,
)
_LOCAL_HEADER = re.compile(
    r"^\*?(?:sent|date|to|subject|enviado|enviada em|fecha|para|asunto|gesendet|datum|an|"
    r"betreff|envoyé|à|objet|verzonden|aan|onderwerp|inviato|data|a|oggetto|skickat|till|"
    r"ämne|sendt|til|emne|assunto)\*? ?:",
    re.IGNORECASE,
)
_SIGNATURE_START = re.compile(r"^(?:-- ?|sent from my .*)$", re.IGNORECASE)
# Our own footer's lines (templates/_partials/email_footer*.txt.j2, email.html.j2), which
# a reply may carry unquoted: "To stop receiving these emails" is ours, not a request.
_OUR_FOOTER = re.compile(
    r"^(?:to stop receiving these emails:.*|para dejar de recibir estos correos:.*)$",
    re.IGNORECASE,
)
# Our HTML footer's link text: the debtor's own words when typed above every quote.
_OUR_LINK_TEXT = re.compile(r"^unsubscribe from these emails$", re.IGNORECASE)
# What may stand above a quote when the debtor replies below it (bottom-posting): a
# greeting ("Hi Northwind,") or a thanks, and nothing else.
_COURTESY = re.compile(
    r"^(?:(?:hi|hello|hey|dear|hola|good (?:morning|afternoon|evening)|buenos d[ií]as|"
    r"buenas (?:tardes|noches))(?:[ ,]+[\w.'-]+){0,6}|thanks|thank you|thx|many thanks|"
    r"gracias|regards|best regards|kind regards|best|cheers|sincerely|saludos)[ ,.!:]*$",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class StopRequest:
    """A request to stop: on which media (``sms``, ``voice``, ``email``), and which of them
    it names in words ("stop texting me"): a request not to use a medium at all, every
    address on it (1006.14(h)), where a bare STOP is about the address it came from."""

    media: frozenset[str]
    named: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Classification:
    intent: Intent  # the most serious
    intents: tuple[Intent, ...]  # every one shown, most serious first


def keyword(text: str) -> Keyword | None:
    """The keyword a message consists of, if it is nothing but one."""
    word = normalize(unicodedata.normalize("NFKC", text))
    if word in OPT_OUT or word in SPANISH_OPT_OUT:
        return Keyword.OPT_OUT
    if word in OPT_IN:
        return Keyword.OPT_IN
    if word in HELP:
        return Keyword.HELP
    return None


def stop_request(text: str, channel: str) -> StopRequest | None:
    """Whether ``text``, received on ``channel``, asks to stop, and about which media (a
    request about work only is not one: see ``not_at_work``)."""
    return _stop_request(text, _without_work_requests(_plain(text))[0], channel)


def _stop_request(text: str, plain: str, channel: str) -> StopRequest | None:
    bare = keyword(text) is Keyword.OPT_OUT or _stop_in_sentences(plain)
    matches = [plain[start:end] for start, end in _stop_spans(plain)]
    if not bare and not matches:
        return None
    named = {medium for medium, word in _MEDIUM.items() for m in matches if word.search(m)}
    if named and any(_WRITTEN.search(m) or _ANY_MESSAGE.search(m) for m in matches):
        # "No me llamen ni me escriban", "stop sending me messages": the writing is about
        # the medium it came on.
        named.add("sms" if channel == "voice" else channel)
    # A bare stop is about the medium it came on, whatever else the words name ("STOP.
    # Don't email me either." stops texts and email); words alone are about what they name.
    media = named | {channel} if bare else named or {channel}
    return StopRequest(frozenset(media), frozenset(named))


def _stop_spans(plain: str) -> list[tuple[int, int]]:
    """Where each request to stop in words is in ``plain``, with the media it lists."""
    return [
        (match.start(), match.end() + len(_listed_after(plain, match.end())))
        for phrase in _STOP_PHRASES
        for match in phrase.finditer(plain)
    ]


def _listed_after(plain: str, end: int) -> str:
    """The media a request to stop lists after its first one ("... or text me"), if they
    are a list: joined by "or", "and", "nor" (a comma alone may start another sentence),
    and not a request of their own after "and" ("... and text me the link")."""
    listed, at = "", end
    while (item := _LISTED.match(plain, at)) is not None:
        if _AND.fullmatch(item.group("joint")) and not _listed_after_and(plain, item):
            break
        listed, at = listed + item.group(0), item.end()
    if not listed or _CONJUNCTION.search(listed) is None:
        return ""
    if _INSTEAD.match(plain, at):
        return ""  # "don't call me and text me instead" asks for texts
    return listed


def _listed_after_and(plain: str, item: re.Match[str]) -> bool:
    """Whether a medium after "and" is one more the request is about (see ``_AND``)."""
    word = item.group("medium")
    if _LISTED_NOUN.fullmatch(word):
        return True
    return bool(_BARE_VERB.fullmatch(word)) and _CLOSED.match(plain, item.end()) is not None


def classify(text: str, channel: str) -> Classification:
    """Every intent ``text`` shows, most serious first (``other`` when none)."""
    plain, at_work = _without_work_requests(_plain(text))
    found = [intent for intent, rules in _COMPILED if any(_shows(r, plain) for r in rules)]
    if at_work:
        found.append(Intent.NOT_AT_WORK)
    stop = _stop_request(text, plain, channel)
    if stop is not None:
        found.append(Intent.OPT_OUT)
        if Intent.CALL_ME in found and _call_only_in_stops(plain):
            found.remove(Intent.CALL_ME)  # "do not text or call me" asks for no call
    if not found:
        found = [Intent.OTHER]
    return Classification(found[0], tuple(found))


def _call_only_in_stops(plain: str) -> bool:
    """Whether every request to call in ``plain`` is part of a request to stop ("do not
    text or call me"), not one of its own after it ("don't email me and call me")."""
    spans = _stop_spans(plain)
    return all(
        any(start <= match.start() < end for start, end in spans)
        for rule in _CALL_ME_RULES
        for match in rule.finditer(plain)
    )


def _shows(rule: re.Pattern[str], plain: str) -> bool:
    """Whether ``rule`` matches ``plain``, a guarded rule only where it is not denied."""
    if rule not in _COMPILED_GUARDED:
        return rule.search(plain) is not None
    return any(not _negated(plain, match) for match in rule.finditer(plain))


def _negated(plain: str, match: re.Match[str]) -> bool:
    """Whether the dispute or lawyer ``match`` found is one the debtor says they do not
    have (see ``_NEGATED``)."""
    start = match.start()
    before = _SENTENCE_END.split(plain[max(0, start - 60) : start])[-1]
    if _NEGATED.search(" " + before.lstrip()) is not None:
        return not _not_yet(plain, match)
    return (
        _NO_BEFORE.search(plain[max(0, start - 40) : start]) is not None
        and _NO_AFTER.match(plain, match.end()) is not None
        and not _not_yet(plain, match)
    )


def _not_yet(plain: str, match: re.Match[str]) -> bool:
    """Whether the denial is only "not yet" ("I haven't disputed it yet, but I will"):
    a dispute or a lawyer to come."""
    after = _CLAUSE_END.split(plain[match.end() : match.end() + 60])[0]
    return _YET.match(after + "\n") is not None or _LATER.search(after) is not None


def subject_words(subject: str) -> str:
    """An email's subject without the prefixes mail clients put before a reply's or a
    forward's ("Re:", "Fwd:", "AW:", "RV:", "Re[2]:", "回复:", "Odp:") and the [tags] mail
    servers add ("[EXTERNAL]"): what is left is the sender's words, or the subject they
    answer."""
    return _SUBJECT_PREFIXES.sub("", subject).strip()


def reply_text(body: str) -> str:
    """What the debtor wrote in an email reply: above the quoted history, or below it when
    nothing but a greeting stands above it (a reply typed under the quote: its STOP counts
    as much), without signatures. When the debtor wrote above the quote, what is below it is
    not read: a mail server's footer appended under the history ("attorney-client
    privilege", "reply UNSUBSCRIBE") is not theirs. An original that is not quoted ends the
    reading: what follows is our own message, whose "Reply STOP to opt out" is not the
    debtor's; lines of our own footer are never read."""
    parts = _reply_parts(body.splitlines())
    if any(not _COURTESY.match(line.strip()) for line in parts[0] if line.strip()):
        parts = parts[:1]  # top-posted
    return "\n\n".join(text for part in parts if (text := "\n".join(part).strip()))


def _reply_parts(lines: Sequence[str]) -> list[list[str]]:
    """The debtor's lines of a reply, in parts between quotes (the first above them all),
    up to an unquoted original, without signatures or our footer's lines."""
    parts: list[list[str]] = [[]]
    in_signature = False  # until the next quote: the debtor's words may follow it
    index = 0
    while index < len(lines):
        stripped = lines[index].strip()
        wrapped = _wrapped_attribution(lines, index)
        index += 2 if wrapped else 1
        if stripped.startswith(">") or wrapped or _ATTRIBUTION.match(stripped):
            if not stripped.startswith(">") and not _quote_follows(lines, index):
                break  # "On ... wrote:" with the original unquoted after it
            in_signature = False
            parts.append([])
        elif _original_starts(lines, index - 1):
            break
        elif _SIGNATURE_START.match(stripped):
            in_signature = True
        elif not in_signature and not _ours(stripped, above_quotes=len(parts) == 1):
            parts[-1].append(lines[index - 1])
    return parts


def _ours(line: str, *, above_quotes: bool) -> bool:
    """Whether ``line`` is our footer's: its link text counts only below a quote."""
    return bool(_OUR_FOOTER.match(line)) or (not above_quotes and bool(_OUR_LINK_TEXT.match(line)))


def _wrapped_attribution(lines: Sequence[str], index: int) -> bool:
    """Whether ``lines[index]`` and the next line are one attribution, wrapped."""
    first = lines[index].strip()
    if index + 1 >= len(lines) or not _ATTRIBUTION_START.match(first):
        return False
    return not _ATTRIBUTION.match(first) and bool(
        _ATTRIBUTION.match(f"{first} {lines[index + 1].strip()}")
    )


def _original_starts(lines: Sequence[str], index: int) -> bool:
    """Whether an unquoted original starts at ``lines[index]``."""
    stripped = lines[index].strip()
    if _ORIGINAL_START.match(stripped):
        return True
    following = next((line.strip() for line in lines[index + 1 :] if line.strip()), "")
    return bool(_LOCAL_FROM.match(stripped)) and bool(_LOCAL_HEADER.match(following))


def _quote_follows(lines: Sequence[str], start: int) -> bool:
    """Whether the first line with text from ``start`` on is quoted (or there is none)."""
    following = next((line.strip() for line in lines[start:] if line.strip()), ">")
    return following.startswith(">")


def _plain(text: str) -> str:
    """Lower case, straight apostrophes, words and sentence marks only, single spaces."""
    lowered = unicodedata.normalize("NFKC", text).translate(_APOSTROPHES).lower()
    kept = re.sub(r"[^\w'\-\n.!?;,]+", " ", lowered)
    return re.sub(r"[ \t]+", " ", kept).strip()


def _without_work_requests(plain: str) -> tuple[str, bool]:
    """``plain`` with every request about work only cut out (each leaves a sentence break,
    so the words around it do not join), and whether there was one."""
    spans = sorted(
        (match.start(), at_work.end())
        for phrase in _LIMITED_BY_WORK
        for match in phrase.finditer(plain)
        if (at_work := _AT_WORK.match(plain, match.end())) is not None
        and _NOT_NARROWED.search(match.group(0)) is None
    )
    if not spans:
        return plain, False
    kept: list[str] = []
    done = 0
    for start, end in spans:
        if end <= done:
            continue  # inside the last one cut
        kept += (plain[done : max(start, done)], ".")
        done = end
    kept.append(plain[done:])
    return "".join(kept), True


def _stop_in_sentences(plain: str) -> bool:
    """Whether a sentence of ``plain`` is a stop keyword and filler, or the whole message is
    one of the words that are a stop only alone ("Remove", "Basta", "No more")."""
    plain = _HELD_STOP.sub("stop", _SPELLED_STOP.sub("stop", plain))
    if "?" not in plain and _MESSAGE_STOP.fullmatch(
        " ".join(re.sub(r"[^\w ]+", " ", plain).split())
    ):
        return True
    return any(_stop_sentence(sentence) for sentence in _SENTENCE_END.split(plain))


def _stop_sentence(sentence: str) -> bool:
    """A sentence of its own made of a stop keyword and filler ("Stop it please"), maybe
    asked for ("Can you please stop")."""
    words = re.sub(r"\bopt out\b", "optout", re.sub(r"[^\w ]+", " ", sentence)).split()
    words = _ASKING.sub("", " ".join(words)).split()
    if not words or len(words) > 6:
        return False
    keywords = [word for word in words if word in _STOP_WORDS]
    return bool(keywords) and all(w in _FILLERS for w in words if w not in _STOP_WORDS)
