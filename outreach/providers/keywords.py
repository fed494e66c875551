"""What a debtor's reply asks for: opt-out, opt-in, help, or a reply for an agent.

Twilio acts on the standard keywords itself (it answers and blocks further messages) and,
on a Messaging Service with Advanced Opt-Out, says so in ``OptOutType``; we record the same
intent either way, so that a STOP is honoured even when the provider did not catch it.
Twilio catches only a message that is one word of its list (``PROVIDER_KEYWORDS``): "Opt
out" or "opt-out" is a keyword to us, not to Twilio, and Twilio does not answer it.
"""

from __future__ import annotations

import re

from outreach.providers.base import EventType

# A reply is a keyword only when it is the whole message ("stop", "STOP.", " Stop! ").
OPT_OUT = frozenset(
    {"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "OPTOUT", "OPT OUT", "REVOKE"}
)
OPT_IN = frozenset({"START", "YES", "UNSTOP"})
HELP = frozenset({"HELP", "INFO"})
# The keywords Twilio acts on itself, each the whole message: STOP, STOPALL, UNSUBSCRIBE,
# CANCEL, END, QUIT, REVOKE and OPTOUT; START, YES and UNSTOP; HELP and INFO. Its keywords
# are single words ("OPTOUT" is one, "OPT OUT" is not: Twilio matches none with a space).
PROVIDER_KEYWORDS = frozenset(word for word in OPT_OUT | OPT_IN | HELP if " " not in word)

_NOT_WORD = re.compile(r"[^\w ]+")
_SPACES = re.compile(r"\s+")

# Twilio's OptOutType values (Advanced Opt-Out) in our words.
OPT_OUT_TYPES = {
    "STOP": EventType.OPTED_OUT,
    "START": EventType.OPTED_IN,
    "HELP": EventType.HELP_REQUESTED,
}


def normalize(text: str) -> str:
    return _SPACES.sub(" ", _NOT_WORD.sub(" ", text)).strip().upper()


def reply_intent(text: str) -> EventType:
    """OPTED_OUT, OPTED_IN or HELP_REQUESTED for a keyword reply, else REPLIED."""
    word = normalize(text)
    if word in OPT_OUT:
        return EventType.OPTED_OUT
    if word in OPT_IN:
        return EventType.OPTED_IN
    if word in HELP:
        return EventType.HELP_REQUESTED
    return EventType.REPLIED


def provider_intent(text: str) -> EventType:
    """``reply_intent`` of a message the provider acts on itself (one word of its list,
    ``PROVIDER_KEYWORDS``); REPLIED for any other, which outreach reads on its own."""
    return reply_intent(text) if normalize(text) in PROVIDER_KEYWORDS else EventType.REPLIED
