"""Keyword and intent tables: what outreach reads in a debtor's message."""

from __future__ import annotations

import pytest

from outreach.intents import (
    Intent,
    Keyword,
    classify,
    keyword,
    reply_text,
    stop_request,
    subject_words,
)

# An email reply's quote of our message, as Gmail writes it, and the original as Outlook
# leaves it below a reply: not quoted, after a header block.
QUOTE = (
    "On Mon, Dec 7, 2026 at 9:00 AM Northwind Billing <billing@example.com> wrote:\n"
    "> Your balance of $120.50 is due.\n> Reply STOP to opt out.\n\n"
)
OUTLOOK = (
    "From: Northwind Billing <billing@example.com>\nSent: Monday, December 7, 2026 9:00 AM\n"
    "To: Pat Doe\nSubject: Your balance\n\nYour balance is due. Reply STOP to opt out.\n"
)

# The FCC's revocation words (47 CFR 64.1200(a)(10)) plus stopall, in any case and with
# any punctuation around them.
STOP_KEYWORDS = [
    "STOP", "stop", "Stop.", " Stop! ", "QUIT", "end", "Revoke", "opt out", "Opt-Out",
    "OPTOUT", "cancel", "UNSUBSCRIBE", "unsubscribe!", "stopall", "STOPALL", "Stop!!!",
    "'stop'",
    # Spanish, and full-width letters as some phones' keyboards type them.
    "ALTO", "alto", "Parar", "PARE", "baja", "Cancelar", "ＳＴＯＰ", "ｓｔｏｐ",
]  # fmt: skip


@pytest.mark.parametrize("text", STOP_KEYWORDS)
def test_stop_keywords_alone_are_opt_outs(text: str) -> None:
    assert keyword(text) is Keyword.OPT_OUT
    found = stop_request(text, "sms")
    assert found is not None
    assert found.media == {"sms"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("START", Keyword.OPT_IN),
        ("unstop", Keyword.OPT_IN),
        ("Yes", Keyword.OPT_IN),
        ("HELP", Keyword.HELP),
        ("help?", Keyword.HELP),
        ("Info", Keyword.HELP),
        ("stop", Keyword.OPT_OUT),
        ("stop texting me", None),
        ("I need help paying", None),
        ("Start over", None),
        ("", None),
    ],
)
def test_a_keyword_is_the_whole_message(text: str, expected: Keyword | None) -> None:
    assert keyword(text) is expected


@pytest.mark.parametrize(
    ("text", "media"),
    [
        ("please stop texting me", {"sms"}),
        ("Stop please", {"sms"}),
        ("STOP ALL", {"sms"}),
        ("STOP. I paid", {"sms"}),
        ("I paid. Stop", {"sms"}),
        ("stop it now!", {"sms"}),
        ("Unsubscribe me", {"sms"}),
        ("opt me out", {"sms"}),
        ("take me off your list", {"sms"}),
        ("remove me", {"sms"}),
        ("no more texts", {"sms"}),
        ("don't text me again", {"sms"}),
        ("Stop sending me messages", {"sms"}),
        ("Please stop calling me", {"voice"}),
        ("Do not call this number", {"voice"}),
        ("never call me", {"voice"}),
        ("stop texting and calling me", {"sms", "voice"}),
        ("no more emails please", {"email"}),
        ("stop contacting me", {"sms"}),
        ("leave me alone", {"sms"}),
        ("I revoke my consent", {"sms"}),
        ("I said stop", {"sms"}),
        ("STOP SPAM", {"sms"}),
        ("Stop spamming me", {"sms"}),
        ("stop pls thx", {"sms"}),
        ("Stop msgs", {"sms"}),
        ("Please remove my number", {"sms"}),
        ("Stop calls", {"voice"}),
        ("Alto por favor", {"sms"}),
        ("ya dije alto", {"sms"}),
        ("no me llamen", {"voice"}),
        ("No me manden mensajes", {"sms"}),
        ("dejen de escribirme", {"sms"}),
        ("Deja de llamarme!", {"voice"}),
        ("no más mensajes", {"sms"}),
        ("No mas correos por favor", {"email"}),
        ("no quiero recibir llamadas", {"voice"}),
        ("denme de baja", {"sms"}),
        ("Quiero darme de baja", {"sms"}),
        ("Cancelar suscripción", {"sms"}),
        ("No quiero más mensajes", {"sms"}),
        ("No quiero recibir más mensajes", {"sms"}),
        ("No quiero que me llamen", {"voice"}),
        ("No me vuelvan a llamar", {"voice"}),
        ("No me sigan llamando", {"voice"}),
        ("No me sigan mandando mensajes", {"sms"}),
        ("no me envíen nada", {"sms"}),
        ("Paren de llamarme", {"voice"}),
        ("No llamen más", {"voice"}),
        ("No me escriban", {"sms"}),
        ("Déjenme en paz", {"sms"}),
        ("Basta de mensajes", {"sms"}),
        ("ＳＴＯＰ ｐｌｅａｓｅ", {"sms"}),
        # Asking us not to send, or saying they do not want what we send.
        ("Don't send me any more texts", {"sms"}),
        ("Do not send me texts", {"sms"}),
        ("Please do not send any more messages", {"sms"}),
        ("Don't send me anything else", {"sms"}),
        ("Never send me emails", {"email"}),
        ("I don't want any more texts", {"sms"}),
        ("I do not want to receive texts", {"sms"}),
        ("I no longer wish to receive calls", {"voice"}),
        ("Please, no emails", {"email"}),
        ("No robocalls", {"voice"}),
        ("No texts please", {"sms"}),
        ("No emails anymore, thanks", {"email"}),
        ("No calls to this number", {"voice"}),
        ("Don't send me a text ever again", {"sms"}),
        ("Please do not send me another message", {"sms"}),
        ("Don't send the texts to this number", {"sms"}),
        # Our own Spanish footer sent back, and "take me off your list" in Spanish.
        ("No recibir mas mensajes", {"sms"}),
        ("Responda STOP para no recibir mas mensajes", {"sms"}),
        ("no recibir más llamadas", {"voice"}),
        ("Quítenme de su lista", {"sms"}),
        ("Sáquenme de la lista", {"sms"}),
        ("Bórrenme de su lista", {"sms"}),
        ("Quitenme de su lista por favor", {"sms"}),
        ("Quiero que me quiten de la lista", {"sms"}),
        ("Pueden quitarme de su lista", {"sms"}),
        ("eliminenme de su lista", {"sms"}),
        ("Elimínenme de su lista", {"sms"}),
        # Consent withdrawn or refused: revocation by any reasonable means.
        ("I withdraw my consent", {"sms"}),
        ("I am withdrawing my permission.", {"sms"}),
        ("I withdraw my consent to calls", {"voice"}),
        ("I do not consent to texts", {"sms"}),
        ("I don't consent to being contacted", {"sms"}),
        ("I never consented to being called", {"voice"}),
        ("I do not consent.", {"sms"}),
        ("I am revoking my prior express consent", {"sms"}),
        ("I withdraw my prior consent", {"sms"}),
        ("I withdraw any and all consent", {"sms"}),
        ("I am hereby revoking any prior consent", {"sms"}),
        ("I revoke my prior written consent to calls", {"voice"}),
        ("you don't have my permission to text me", {"sms"}),
        ("I don't consent to you texting me", {"sms"}),
        ("You do not have my consent to call me", {"voice"}),
        ("I do not consent to these calls being made", {"voice"}),
        ("Retiro mi consentimiento", {"sms"}),
        ("Retiro mi consentimiento para recibir llamadas", {"voice"}),
        # A plea to stop, and a stop of this number.
        ("Can you please stop", {"sms"}),
        ("Can you please stop?", {"sms"}),
        ("Please can you stop", {"sms"}),
        ("Can you guys stop", {"sms"}),
        ("I am asking you to stop", {"sms"}),
        ("I'm asking you to stop please", {"sms"}),
        ("Would you stop it", {"sms"}),
        ("I need you to stop", {"sms"}),
        ("Stop this number", {"sms"}),
        ("Stop this number please", {"sms"}),
    ],
)
def test_requests_to_stop_in_words_name_their_media(text: str, media: set[str]) -> None:
    found = stop_request(text, "sms")
    assert found is not None
    assert found.media == media


@pytest.mark.parametrize(
    "text",
    [
        "No more", "No más", "no mas", "NO MORE PLEASE", "No more!", "Ya no más", "Basta",
        "Basta ya", "Detener", "Detente", "UNSUB", "unsub pls", "Unsub from this", "Remove",
        "Remove please", "Remove number", "Remove my number", "Remove from your list",
        "remove from list", "Remove from mailing list", "Please remove me from your list",
        "Stopp", "Stoppp", "STOPP please", "Stop msging", "stop msgng me", "S.T.O.P",
        "S.T.O.P.", "s-t-o-p", "S T O P", "Unsub me", "UNSUB ME", "Unsub now", "Remove now",
        "REMOVE NOW", "Remove asap", "Remove immediately", "remove me now",
    ],
)  # fmt: skip
def test_short_ways_to_say_stop_are_stops(text: str) -> None:
    """Rule T-6: a reasonable person reads each of these, texted back to a reminder, as
    "stop"; "no more" as a sentence of its own, the others as the whole message."""
    found = stop_request(text, "sms")
    assert found is not None and found.media == {"sms"}


@pytest.mark.parametrize(
    "text",
    [
        "I have no more questions, paid yesterday",
        "No more questions",
        "no more than $50 a month",
        "The late fee is wrong. Remove it.",
        "Basta con eso, ya pagué",
        "Remove the late fee",
        "stoop",
    ],
)
def test_no_more_or_remove_inside_a_sentence_is_not_a_stop(text: str) -> None:
    """Guards against over-correction: passes before the change too."""
    assert stop_request(text, "sms") is None


@pytest.mark.parametrize(
    "text",
    [
        "I can pay $50 a month, no more.", "I can pay 50. No more.",
        "Puedo pagar 50 al mes, no más.", "Ahora no más", "Is that all? no more?", "No more?",
        "No more, thanks", "No more. I paid", "Remove it please", "Just remove it",
        "Remove that", "Remove it now",
    ],
)  # fmt: skip
def test_no_more_or_remove_beside_other_words_is_not_a_stop(text: str) -> None:
    """ "No more" and "no más" are a stop only as the whole message, with a plea at most
    ("NO MORE PLEASE"), as remove is: the end of a payment offer ("I can pay 50 a month, no
    more"), a thanks declining an offer, "ahora no más" (just now) or "remove it" (a fee)
    asks nothing."""
    assert stop_request(text, "sms") is None


@pytest.mark.parametrize(
    ("text", "media"),
    [
        ("Don't call or text me", {"voice", "sms"}),
        ("Do not text or call me", {"voice", "sms"}),
        ("Do not call, text or email me", {"voice", "sms", "email"}),
        ("Don't call, text, or email me again", {"voice", "sms", "email"}),
        ("stop calling me or texting me", {"voice", "sms"}),
        ("Never call nor text me", {"voice", "sms"}),
        ("No more calls or texts", {"voice", "sms"}),
        ("No calls or texts please", {"voice", "sms"}),
        ("No more texts and no more emails", {"sms", "email"}),
        ("Don't call or text me at work", {"voice", "sms"}),  # two media: read whole
        ("No me llamen ni me manden mensajes", {"voice", "sms"}),
        ("No me llamen ni me escriban", {"voice", "sms"}),  # writing: the medium it came on
        ("Don't call and text me", {"voice", "sms"}),
        ("Stop calling and texting me", {"voice", "sms"}),
        ("Don't call me and text me.", {"voice", "sms"}),
        ("No calls or texts to this number", {"voice", "sms"}),
    ],
)
def test_a_request_that_lists_media_is_about_each(text: str, media: set[str]) -> None:
    """Each medium listed is asked about as much as the first: "don't call or text me"
    read as about calls only left the number it came from open to texts."""
    found = stop_request(text, "sms")
    assert found is not None
    assert (found.media, found.named) == (media, media)


@pytest.mark.parametrize(
    ("text", "channel", "media"),
    [
        ("Stop sending me messages", "email", {"sms", "email"}),
        ("No more messages please", "email", {"sms", "email"}),
        ("Please stop messaging me", "email", {"sms", "email"}),
        ("No me manden mas mensajes", "email", {"sms", "email"}),
        ("Stop sending me messages", "sms", {"sms"}),
        ("Stop sending me messages", "voice", {"sms"}),
        ("No more texts", "email", {"sms"}),  # a text's word names texts alone
    ],
)
def test_messages_are_also_the_medium_the_request_came_on(
    text: str, channel: str, media: set[str]
) -> None:
    """ "Messages" are any messages: an email asking for no more of them stops the emails
    as well as the texts (read as about texts alone, the mailbox went on being written to)."""
    found = stop_request(text, channel)
    assert found is not None
    assert (found.media, found.named) == (media, media)


@pytest.mark.parametrize(
    ("text", "channel", "media", "named"),
    [
        ("STOP. Don't email me either.", "sms", {"sms", "email"}, {"email"}),
        ("Stop calling me. STOP", "sms", {"sms", "voice"}, {"voice"}),
        ("Stop please. No more emails", "sms", {"sms", "email"}, {"email"}),
        ("Unsubscribe.\nAlso stop calling and texting me", "email",
         {"email", "voice", "sms"}, {"voice", "sms"}),
        ("Stop. Stop texting me too.", "voice", {"voice", "sms"}, {"sms"}),
        ("STOP. Stop texting me", "sms", {"sms"}, {"sms"}),
        ("Alto. No me llamen", "sms", {"sms", "voice"}, {"voice"}),
        ("STOP", "sms", {"sms"}, set()),
    ],
)  # fmt: skip
def test_a_bare_stop_beside_named_media_stops_all_of_them(
    text: str, channel: str, media: set[str], named: set[str]
) -> None:
    """A bare stop is about the medium it came on, and the words beside it still name the
    media they name: "STOP. Don't email me either." read as the bare stop alone left email
    open."""
    found = stop_request(text, channel)
    assert found is not None
    assert (found.media, found.named) == (media, named)


@pytest.mark.parametrize(
    "text", ["Stop calling, text me instead", "Don't call me and text me instead"]
)
def test_a_medium_asked_for_instead_is_not_listed(text: str) -> None:
    """A comma alone may start a new sentence, and "instead" asks for the medium: only the
    calls are stopped."""
    found = stop_request(text, "sms")
    assert found is not None and found.named == {"voice"}


@pytest.mark.parametrize(
    ("text", "asked_for"),
    [
        ("Stop calling me and text me the link", "sms"),
        ("Please don't call me and text me the amount", "sms"),
        ("Don't email me and call me tomorrow", "voice"),
        ("Stop texting me and email me the payoff", "email"),
        ("Do not call me and email me the details", "email"),
        ("No me llamen y envíen mensajes por favor", "sms"),
    ],
)  # fmt: skip
def test_a_medium_asked_for_after_and_is_not_stopped(text: str, asked_for: str) -> None:
    """After "and", a medium with a verb's object ("text me the link") is a request of its
    own, not one more medium to stop: stopping it closed the way the debtor asked for."""
    found = stop_request(text, "sms")
    assert found is not None and asked_for not in found.media


def test_a_call_asked_for_after_a_stop_is_still_a_request_to_call() -> None:
    """Only a call inside the request to stop ("do not text or call me") is not asked for."""
    intents = classify("Don't email me and call me tomorrow", "email").intents
    assert Intent.CALL_ME in intents and Intent.OPT_OUT in intents
    assert Intent.CALL_ME not in classify("Do not text or call me", "sms").intents


@pytest.mark.parametrize(
    "text",
    [
        "I'll pay at the end of the month",
        "Can you cancel the late fee?",
        "Cancel my appointment",
        "out",
        "I can't stop by the office today",
        "Call me please",
        "Who is this?",
        "Yes",
        "HELP",
        "I need more time",
        "When does my payment plan start",
        "don't stop",
        "Do not stop",
        "bus stop",
        "the bus stop is near",
        "I will stop paying",
        "stop for a second",
        "el alto costo",
        "Baja el pago?",
        "quiero pagar el lunes",
        "no me alcanza",
        "pare de cobrar intereses y pago",
        "No dejen de llamarme",  # keep calling me
        "¿Cómo puedo dar de baja el pago automático?",  # cancel the autopay
        "no quiero llamar, prefiero mensajes",
        "no me manden la factura por correo",
        "no me llegan los mensajes",
        "por qué no me llaman?",
        "I got no texts from you",  # "no texts" asks nothing but at a sentence's start
        "I didn't get the text you sent",
        # "No <texts>" going on with what happened to them is a complaint, not a request.
        "No texts came through, can you resend the link?",
        "no texts yet",
        "No texts? I never got one",
        "No emails arrived, please text me the link",
        "No emails received",
        "Don't send the email to my old address, send it to my new one",
        # Off a way of paying, not off the messages.
        "Please take me off autopay",
        "take me off auto-pay, I'll pay by card",
        "Remove me from the payment plan",
        "can you remove me from automatic payments",
        "Take me off recurring billing please",
        # A plea about something else, a consent to no contact, Spanish not about the list.
        "Can you stop the late fees?",
        "Could you stop the interest",
        "Can you stop by the office",
        "I will pay, stop worrying",
        "Ok I will pay $50, that will end it",
        "I want to stop paying",
        "I do not consent to the fee",
        "I withdraw my consent to autopay",
        "I consent",
        # A consent about recording, or about a way of paying, a payment or an offer.
        "I don't consent to the call being recorded",
        "I do not consent to this call recording",
        "I withdraw my consent for the ACH",
        "I withdraw my consent to the ACH debit",
        "I withdraw my consent to the direct debit",
        "I withdraw my consent to charge my card",
        "I withdraw my consent for the payment",
        "I withdraw my consent to the settlement offer",
        "I revoke my consent to the payments",
        "Retiro mi consentimiento para el cargo automático",
        "no puedo recibir mensajes",
        "Quítenme el cargo",
        "Quítenme el recargo de la lista de precios",
    ],
)
def test_messages_that_do_not_ask_to_stop(text: str) -> None:
    assert stop_request(text, "sms") is None


@pytest.mark.parametrize(
    ("text", "intent"),
    [
        ("I paid yesterday", Intent.PAID),
        ("I already paid this last week", Intent.PAID),
        ("Paid in full on the 3rd", Intent.PAID),
        ("payment was sent Monday", Intent.PAID),
        ("The check is in the mail", Intent.PAID),
        ("This is not my debt", Intent.DISPUTE),
        ("I don't owe you anything", Intent.DISPUTE),
        ("I dispute this balance", Intent.DISPUTE),
        ("The amount is wrong", Intent.DISPUTE),
        ("I never opened an account with you", Intent.DISPUTE),
        ("This is identity theft", Intent.DISPUTE),
        ("Can I set up a payment plan?", Intent.PAYMENT_PLAN),
        ("I lost my job and can't pay right now", Intent.PAYMENT_PLAN),
        ("I'll pay Friday", Intent.PAYMENT_PLAN),
        ("Could I have more time?", Intent.PAYMENT_PLAN),
        ("Can I pay in installments", Intent.PAYMENT_PLAN),
        ("Wrong number", Intent.WRONG_NUMBER),
        ("You have the wrong person", Intent.WRONG_NUMBER),
        ("I don't know who that is", Intent.WRONG_NUMBER),
        ("No one by that name here", Intent.WRONG_NUMBER),
        ("Call me please", Intent.CALL_ME),
        ("Can you call me after 5?", Intent.CALL_ME),
        ("I want to speak to someone", Intent.CALL_ME),
        ("Give me a call tomorrow", Intent.CALL_ME),
        ("Stop contacting me", Intent.CEASE),
        ("Leave me alone", Intent.CEASE),
        ("Cease and desist", Intent.CEASE),
        ("I refuse to pay this", Intent.CEASE),
        ("Do not contact me again", Intent.CEASE),
        ("Talk to my lawyer", Intent.ATTORNEY),
        ("I am represented by an attorney", Intent.ATTORNEY),
        ("Please stop texting me", Intent.OPT_OUT),
        ("Don't call me", Intent.OPT_OUT),
        ("Do not text or call me", Intent.OPT_OUT),  # not a request for a call
        ("You do not have my consent to call me", Intent.OPT_OUT),
        ("Text or call me anytime", Intent.CALL_ME),
        ("Who is this?", Intent.OTHER),
        ("Thanks", Intent.OTHER),
        ("I haven't paid it yet", Intent.OTHER),
        ("", Intent.OTHER),
    ],
)
def test_intents(text: str, intent: Intent) -> None:
    assert classify(text, "sms").intent is intent


@pytest.mark.parametrize(
    ("text", "intents"),
    [
        ("This is not my debt, stop contacting me", (Intent.CEASE, Intent.DISPUTE,
                                                     Intent.OPT_OUT)),
        ("My lawyer says I don't owe this", (Intent.ATTORNEY, Intent.DISPUTE)),
        ("STOP. I paid", (Intent.PAID, Intent.OPT_OUT)),
        ("Don't call me, I'll pay Friday", (Intent.PAYMENT_PLAN, Intent.OPT_OUT)),
    ],
)  # fmt: skip
def test_every_intent_a_message_shows_most_serious_first(
    text: str, intents: tuple[Intent, ...]
) -> None:
    assert classify(text, "sms").intents == intents


@pytest.mark.parametrize(
    "text",
    [
        "I'm not disputing the debt, can I set up a payment plan?",
        "I do not dispute it",
        "No dispute, I will pay Friday",
        "I dont want to dispute anything",
        "I won't dispute the balance",
        "I will not need a lawyer, I can pay",
        "I don't have a lawyer",
        "No lawyer needed, I'll pay",
        "I won't dispute the balance, but I will pay Friday",
        "I'm not disputing the debt but I'll need a payment plan",
        "I'm not disputing this, I just can't pay yet",
        "I never disputed it yet you reported me to the bureau",
        "I am not disputing anything yet you keep calling me",
        "I dont dispute it yet i cant afford it right now",
        "I don't need a lawyer and yet you keep harassing me",
        "I don't need a lawyer, but I will do it",
        "I don't need a lawyer and I have not paid it yet",
    ],
)
def test_a_dispute_or_lawyer_the_debtor_says_they_do_not_have_is_not_one(text: str) -> None:
    """A dispute or an attorney puts a hold on the account that blocks the agent's answer
    too: a debtor who says they are not disputing must not be held for saying so."""
    intents = classify(text, "sms").intents
    assert Intent.DISPUTE not in intents and Intent.ATTORNEY not in intents


@pytest.mark.parametrize(
    ("text", "intent"),
    [
        ("I dispute this", Intent.DISPUTE),
        ("I'm disputing the charge", Intent.DISPUTE),
        ("No, I dispute this", Intent.DISPUTE),
        ("I want to dispute", Intent.DISPUTE),
        ("Not disputing the fee, but this is not my debt", Intent.DISPUTE),
        ("I don't dispute the debt but the amount is wrong", Intent.DISPUTE),
        ("I can't afford a lawyer", Intent.ATTORNEY),
        ("I don't want you to call my lawyer", Intent.ATTORNEY),
        ("I have no money, my lawyer will call you", Intent.ATTORNEY),
    ],
)  # fmt: skip
def test_a_negation_elsewhere_leaves_a_dispute_or_lawyer_as_said(text: str, intent: Intent) -> None:
    """Only a negation right before the word, in its sentence, undoes it: when in doubt,
    the debtor is protected."""
    assert classify(text, "sms").intent is intent


@pytest.mark.parametrize(
    ("text", "intent"),
    [
        # A leading "No" (texts rarely have its comma) answers something else.
        ("No I'm disputing this", Intent.DISPUTE),
        ("no im going to dispute this", Intent.DISPUTE),
        ("No I'm going to get a lawyer", Intent.ATTORNEY),
        ("no im getting a lawyer", Intent.ATTORNEY),
        # A dispute or a lawyer spoken of after a negation, not denied.
        ("There is no dispute on my account? I filed one in May", Intent.DISPUTE),
        ("I never got the dispute form you promised", Intent.DISPUTE),
        ("You don't have the dispute I mailed you?", Intent.DISPUTE),
        ("I didn't get a dispute reference number", Intent.DISPUTE),
        ("You didn't get the attorney letter? He represents me", Intent.ATTORNEY),
        ("I won't discuss this without a lawyer", Intent.ATTORNEY),
        ("I don't want to get a lawyer involved but I will", Intent.ATTORNEY),
        # A denial that is only "not yet".
        ("I haven't disputed it yet but I will", Intent.DISPUTE),
        ("I haven't disputed it, but I will", Intent.DISPUTE),
        ("I'm not disputing it yet", Intent.DISPUTE),
        ("I don't have a lawyer yet", Intent.ATTORNEY),
        ("I don't have a lawyer but I'm going to get one", Intent.ATTORNEY),
        ("I have no lawyer yet", Intent.ATTORNEY),
        ("No dispute yet, I will file one", Intent.DISPUTE),
        ("I'm not disputing it yet.", Intent.DISPUTE),
    ],
)  # fmt: skip
def test_only_a_denial_undoes_a_dispute_or_lawyer(text: str, intent: Intent) -> None:
    """A negation undoes the word only in a denial: a negation and a verb of disputing or
    needing ("not disputing", "don't need a lawyer"), or "no dispute" as a short clause.
    Missing a dispute or a lawyer is the expensive direction."""
    assert intent in classify(text, "sms").intents


@pytest.mark.parametrize(
    ("subject", "words"),
    [
        ("Re: Your balance", "Your balance"),
        ("RE: Fwd: stop emailing me", "stop emailing me"),
        ("AW: Ihre Rechnung", "Ihre Rechnung"),
        ("RV: Su mensaje", "Su mensaje"),
        ("Re[2]: I dispute this", "I dispute this"),
        ("Please stop", "Please stop"),
        ("Regarding my bill", "Regarding my bill"),
        ("回复: Debt validation notice", "Debt validation notice"),
        ("回复：Your balance", "Your balance"),
        ("Odp: Your balance", "Your balance"),
        ("YNT: Your balance", "Your balance"),
        ("[EXTERNAL] RE: Your balance", "Your balance"),
        ("RE: [EXTERNAL] Fwd: Your balance", "Your balance"),
        ("Απ: Your balance", "Your balance"),
        ("답장: Your balance", "Your balance"),
        ("Vá: Your balance", "Your balance"),
        ("Resolved my bill", "Resolved my bill"),
        ("", ""),
    ],
)  # fmt: skip
def test_a_subject_is_read_without_reply_and_forward_prefixes(subject: str, words: str) -> None:
    assert subject_words(subject) == words


def test_curly_apostrophes_read_as_straight_ones() -> None:
    assert classify("I don\u2019t owe this", "sms").intent is Intent.DISPUTE
    assert stop_request("Don\u2019t text me", "sms") is not None


@pytest.mark.parametrize(
    ("body", "text"),
    [
        ("I paid\n\nOn Mon, Nov 2, 2026 at 10:00 AM Billing <b@example.com> wrote:\n> STOP",
         "I paid"),
        ("Thanks\n-----Original Message-----\nFrom: Billing\nReply STOP to opt out", "Thanks"),
        ("Call me\n\nSent from my iPhone", "Call me"),
        ("> quoted first\nmy answer\n> quoted again", "my answer"),
        ("no quote at all", "no quote at all"),
        ("Hello\n-- \nPat Doe\nUnsubscribe", "Hello"),
        # Outlook's unquoted original: our own words, never the debtor's STOP.
        ("Thanks\n\n" + OUTLOOK, "Thanks"),
        ("Thanks\n\n________________________________\n" + OUTLOOK, "Thanks"),
        ("Thanks\n\nOn Mon, Dec 7, 2026 Northwind wrote:\n\nReply STOP to opt out.", "Thanks"),
        (QUOTE, ""),
    ],
)  # fmt: skip
def test_an_email_reply_is_read_without_its_quoted_history(body: str, text: str) -> None:
    assert reply_text(body) == text


@pytest.mark.parametrize(
    ("body", "text"),
    [
        (QUOTE + "STOP\n", "STOP"),
        (QUOTE + "Please stop emailing me.\nSent from my iPhone", "Please stop emailing me."),
        ("Thanks!\n\n" + QUOTE + "I have a lawyer\n-- \nPat Doe", "Thanks!\n\nI have a lawyer"),
        ("Hi Northwind,\n" + QUOTE + "STOP", "Hi Northwind,\n\nSTOP"),
        ("Hello\n-- \nPat Doe\n\n" + QUOTE + "I dispute this debt", "Hello\n\nI dispute this debt"),
    ],
)  # fmt: skip
def test_an_email_reply_typed_below_the_quote_is_read(body: str, text: str) -> None:
    """Bottom-posting: the words under the quote are the debtor's as much as those above it
    (they were thrown away, and a STOP or "I have a lawyer" with them)."""
    assert reply_text(body) == text


# Our own message as mail clients leave it unquoted under a reply, with our footer's
# "To stop receiving these emails", in the forms each writes.
OURS = "Your balance is due.\nTo stop receiving these emails: https://x.example/u\n"


@pytest.mark.parametrize(
    "body",
    [
        "De: Northwind <b@example.com>\nEnviado: lunes, 7 de diciembre de 2026 9:00\n"
        "Para: Pat\nAsunto: Aviso\n\n" + OURS,
        "Von: Northwind <b@example.com>\nGesendet: Montag, 7. Dezember 2026 09:00\n"
        "An: Pat\nBetreff: Ihr Saldo\n\n" + OURS,
        "De : Northwind <b@example.com>\nEnvoyé : lundi 7 décembre 2026 09:00\n\n" + OURS,
        "Van: Northwind <b@example.com>\nVerzonden: maandag 7 december 2026 09:00\n\n" + OURS,
        "Da: Northwind <b@example.com>\nInviato: lunedì 7 dicembre 2026 09:00\n\n" + OURS,
        "*From:* Northwind <b@example.com>\n*Sent:* Monday\n*To:* Pat\n\n" + OURS,
        "*De:* Northwind <b@example.com>\n*Enviado:* lunes\n\n" + OURS,
        "Am Mo., 7. Dez. 2026 um 09:00 Uhr schrieb Northwind <b@example.com>:\n\n" + OURS,
        "El lun, 7 dic 2026 a las 9:00, Northwind (<b@example.com>) escribió:\n\n" + OURS,
        "Le lun. 7 déc. 2026 à 09:00, Northwind <b@example.com> a écrit :\n\n" + OURS,
        "Op ma 7 dec 2026 om 09:00 schreef Northwind <b@example.com>:\n\n" + OURS,
        "Em seg., 7 de dez. de 2026 às 09:00, Northwind <b@example.com> escreveu:\n\n" + OURS,
        "On Mon, Dec 7, 2026 at 9:00 AM Northwind Customer Care Billing <\n"
        "b@example.com> wrote:\n\n" + OURS,
        "> Your balance is due.\n\nUnsubscribe from these emails\n",
    ],
)
def test_our_own_email_left_unquoted_under_a_reply_is_not_read(body: str) -> None:
    """Outlook's header block in other languages or in bold, an attribution in another
    language or wrapped: what follows is our email, whose footer asks to stop nothing."""
    said = reply_text("Pago el viernes.\n\n" + body)
    assert said.startswith("Pago el viernes.") and "stop" not in said.lower()
    assert stop_request(said, "email") is None


@pytest.mark.parametrize(
    "footer",
    [
        "This email and any attachments are confidential and may be protected by "
        "attorney-client privilege.",
        "Smith & Sons Plumbing | 555-0100\nIf you no longer wish to receive emails from us, "
        "reply UNSUBSCRIBE.",
    ],
)
def test_a_footer_under_the_quote_of_a_top_posted_reply_is_not_read(footer: str) -> None:
    """A mail server appends its footer under the whole message: when the debtor wrote
    above the quote, only that is theirs."""
    said = reply_text("Thanks, I will pay Friday.\n\n" + QUOTE + "\n" + footer + "\n")
    assert said == "Thanks, I will pay Friday."


@pytest.mark.parametrize(
    "text",
    [
        "Unsubscribe from these emails",
        "Unsubscribe from these emails\n\n" + QUOTE,
        "Hi,\n\nUnsubscribe from these emails\n\nThanks,\nJohn",
        # No quote, no header: nothing says it is ours, and a request to stop is read as one.
        "Pago el viernes.\n\nYour balance is due.\nUnsubscribe from these emails\n",
    ],
)
def test_our_footers_words_typed_by_the_debtor_above_any_quote_are_theirs(text: str) -> None:
    """Our HTML footer's link text is dropped below a quote, where it is ours; typed as the
    reply itself it is the debtor's request."""
    said = reply_text(text)
    assert "Unsubscribe from these emails" in said
    assert stop_request(said, "email") is not None


def test_a_long_greeting_above_a_reply_typed_below_the_quote_is_still_a_greeting() -> None:
    said = reply_text("Hello there Northwind Billing Dept,\n\n" + QUOTE + "\nSTOP")
    assert "STOP" in said and stop_request(said, "email") is not None


def test_a_line_that_starts_with_de_is_the_debtors() -> None:
    """Guards against over-correction: "De:" starts an Outlook header only when another
    header follows it."""
    assert reply_text("De: Pat\nYa pagué, no me escriban más") == (
        "De: Pat\nYa pagué, no me escriban más"
    )


@pytest.mark.parametrize(
    "text",
    [
        "Don't call me at work",
        "Please stop calling me at my job",
        "Stop calling my work number",
        "Do not call my office",
        "Don't email my work address",
        "No more calls at work",
        "Stop contacting me at work",  # not a cease: about work only
        "Leave me alone at work",
        "Don’t ever call me at work again",
        "Don't call me at work please!",
        "Do not call my office again.",
        "no me llamen al trabajo por favor",
        "No me llamen al trabajo",
        "No me llamen al número del trabajo",
        "Dejen de llamarme a mi trabajo",
    ],
)
def test_a_request_about_work_only_is_neither_a_stop_nor_a_cease(text: str) -> None:
    assert stop_request(text, "sms") is None
    assert classify(text, "sms").intents == (Intent.NOT_AT_WORK,)


@pytest.mark.parametrize(
    ("text", "intents", "media"),
    [
        # A request that goes on past work is read whole: when in doubt, a stop is a stop.
        ("Don't call me at work or at home", (Intent.OPT_OUT,), {"voice"}),
        ("Stop calling me at work and at home", (Intent.OPT_OUT,), {"voice"}),
        ("No me llamen al trabajo ni a la casa", (Intent.OPT_OUT,), {"voice"}),
        ("Stop calling me at my work number or my cell", (Intent.OPT_OUT,), {"voice"}),
        ("Stop calling my work phone and cell", (Intent.OPT_OUT,), {"voice"}),
        ("Don't email my work email or my personal email", (Intent.OPT_OUT,), {"email"}),
        ("Don't call me at work, home, or cell", (Intent.OPT_OUT,), {"voice"}),
        ("Stop calling me at work/home", (Intent.OPT_OUT,), {"voice"}),
        ("Stop contacting me at work, at home, anywhere", (Intent.CEASE, Intent.OPT_OUT),
         {"sms"}),
        ("Stop contacting me at work & home", (Intent.CEASE, Intent.OPT_OUT), {"sms"}),
        ("Never contact me at work, or elsewhere", (Intent.CEASE, Intent.OPT_OUT), {"sms"}),
        ("Stop contacting me at work too", (Intent.CEASE, Intent.OPT_OUT), {"sms"}),
        ("No me llamen al trabajo, ni a la casa", (Intent.OPT_OUT,), {"voice"}),
        ("No me llamen al trabajo tampoco", (Intent.OPT_OUT,), {"voice"}),
        # "At work" that is not the place, two media named, a formal demand: read whole.
        ("Stop texting me to work out a deal", (Intent.OPT_OUT,), {"sms"}),
        ("Don't call me at work hours", (Intent.OPT_OUT,), {"voice"}),
        ("Stop texting and calling me at work", (Intent.OPT_OUT,), {"sms", "voice"}),
        ("Cease and desist contacting me at work", (Intent.CEASE, Intent.OPT_OUT), {"sms"}),
        ("Don't call me at work, I'll pay Friday", (Intent.PAYMENT_PLAN, Intent.OPT_OUT),
         {"voice"}),
        # Both requests in one message: each is acted on.
        ("STOP. Don't call me at work", (Intent.NOT_AT_WORK, Intent.OPT_OUT), {"sms"}),
        ("Stop texting me. Don't call my office", (Intent.NOT_AT_WORK, Intent.OPT_OUT),
         {"sms"}),
        ("Stop contacting me at work. I'll pay Friday",
         (Intent.PAYMENT_PLAN, Intent.NOT_AT_WORK), None),
        ("Do not contact me at work. Leave me alone", (Intent.CEASE, Intent.NOT_AT_WORK,
                                                       Intent.OPT_OUT), {"sms"}),
    ],
)  # fmt: skip
def test_work_requests_beside_other_words(
    text: str, intents: tuple[Intent, ...], media: set[str] | None
) -> None:
    assert classify(text, "sms").intents == intents
    found = stop_request(text, "sms")
    assert (found.media if found else None) == media


def test_being_at_work_is_not_a_request() -> None:
    for text in ("I can't talk at work", "I'm at work, call me later", "I work nights",
                 "at work. stop"):  # fmt: skip
        assert Intent.NOT_AT_WORK not in classify(text, "sms").intents


@pytest.mark.parametrize(
    ("text", "channel"),
    [
        ("I do not consent to this call being recorded", "voice"),
        ("I never consented to this email address being used for the loan", "email"),
        ("I withdraw my consent to being recorded", "voice"),
    ],
)
def test_a_consent_about_recording_or_using_an_address_is_no_stop(text: str, channel: str) -> None:
    """Consent to a recording, or to an address being used, is not consent to be contacted:
    refusing it on the medium it names stops nothing."""
    assert stop_request(text, channel) is None


@pytest.mark.parametrize(
    ("text", "media"),
    [
        ("I do not consent to my phone being used to call me", {"voice"}),
        ("I do not consent to payment reminders by text", {"sms"}),
        ("I withdraw my consent to payment reminders", {"sms"}),
    ],
)
def test_a_consent_to_being_contacted_about_payments_is_a_stop(text: str, media: set[str]) -> None:
    found = stop_request(text, "sms")
    assert found is not None and found.media == media
