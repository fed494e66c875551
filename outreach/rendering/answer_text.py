"""Whether a rendered answer shows the agent's words whole.

An answer template wraps the words with what every message must carry; it must not drop
or cut them (a ``{{ answer[:50] }}``, a forgotten ``{{ answer }}``): the debtor would get
something other than what the agent wrote, and the conversation would show words that
were never sent. Lint refuses such a template at save
time with the samples' answers, and an answer whose words do not come out whole is
refused before it is queued.
"""

from __future__ import annotations

import html
import re

from outreach.rendering.render import Rendered

_TAG = re.compile(r"<[^>]*>")


def bodies_missing_answer(rendered: Rendered, answer: str) -> list[str]:
    """The bodies of ``rendered`` ("text", "html") that do not show ``answer`` whole, its
    spacing aside (an email's paragraphs are laid out afresh in HTML)."""
    wanted = _flat(answer)
    missing = [] if wanted in _flat(rendered.text) else ["text"]
    if rendered.html is not None:
        shown = html.unescape(_TAG.sub(" ", rendered.html))  # what a mail reader shows
        if wanted not in _flat(shown):
            missing.append("html")
    return missing


def _flat(text: str) -> str:
    return " ".join(text.split())
