"""A name in a URL's path: an account's reference or a user's name, as one segment.

``path_segment`` writes it, for links, forms and redirects alike (the UI's templates have
it as the ``segment`` filter); a route takes the segment as Starlette decodes it and reads
the name back with ``from_segment``.
"""

from __future__ import annotations

import re
from urllib.parse import quote

# "." and "..", and each of them behind "!"s: the names written with one "!" more.
_DOTS = re.compile(r"!*\.\.?")


def path_segment(value: object) -> str:
    """``value`` as one path segment that every browser requests as it is written.

    Everything but letters, digits and ``_.-~`` is percent-encoded, "/" included, so the
    name stays one segment. A segment "." or ".." would be resolved away by the browser,
    opening another page, and so would "%2E" or "%2E%2E" (the URL standard reads them as
    dots): such a name is written behind a "!" ("%21.."), and so that this stays
    unambiguous, a name of "!"s and then one or two dots gets one "!" more."""
    text = str(value)
    if _DOTS.fullmatch(text):
        text = "!" + text
    return quote(text, safe="")


def from_segment(segment: str) -> str:
    """The name ``path_segment`` wrote, from its segment as routing decodes it."""
    if segment.startswith("!") and _DOTS.fullmatch(segment):
        return segment[1:]
    return segment
