"""SMS length in segments, as carriers bill it.

GSM-7 (3GPP TS 23.038) fits 160 characters in one segment and 153 in each part of a longer
message; its extension characters (``^{}\\[~]|€`` and form feed) take two septets each. One
character outside GSM-7 makes the whole message UCS-2: 70 code units in one segment, 67 per
part, and a character outside the Basic Multilingual Plane (most emoji) takes two units.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENSION = frozenset("^{}\\[~]|€\f")

GSM7_SINGLE, GSM7_PART = 160, 153
UCS2_SINGLE, UCS2_PART = 70, 67


# What a formatter (Babel's CLDR data) writes that GSM-7 lacks but that has a plain
# equivalent in it: the no-break and narrow spaces amounts and dates are written with
# (de_DE ``1.234,56\xa0€``, fr_FR ``1\u202f234,56\xa0€``), minus signs and hyphens, the
# typographic apostrophe (ca ``15 d’octubre``), and the invisible direction and joining
# marks (he_IL, ar, fa_IR, pt_CV). One of them would make the whole text UCS-2.
_FORMATTED_TO_GSM7 = str.maketrans(
    {
        **dict.fromkeys("\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006", " "),
        **dict.fromkeys("\u2007\u2008\u2009\u200a\u202f\u205f\u3000", " "),
        **dict.fromkeys("\u2010\u2011\u2012\u2013\u2212\ufe63\uff0d", "-"),
        **dict.fromkeys("\u2019\u02bc", "'"),
        **dict.fromkeys("\u061c\u180e\u200b\u200c\u200d\u200e\u200f\u2060\ufeff"),
        **dict.fromkeys("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"),
    }
)


def plain_for_sms(formatted: str) -> str:
    """A formatted amount or date with GSM-7's plain space, hyphen and apostrophe in place
    of the typographic ones, and without invisible marks (letters and symbols are kept)."""
    return formatted.translate(_FORMATTED_TO_GSM7)


@dataclass(frozen=True)
class SmsLength:
    encoding: Literal["GSM-7", "UCS-2"]
    units: int  # septets for GSM-7, UTF-16 code units for UCS-2
    segments: int
    # The characters that forced UCS-2, so an editor can point at them.
    non_gsm: tuple[str, ...] = ()

    def describe(self) -> str:
        plural = "s" if self.segments != 1 else ""
        text = f"{self.segments} segment{plural}, {self.encoding}, {self.units} units"
        if self.non_gsm:
            text += f" (UCS-2 because of {' '.join(repr(c) for c in self.non_gsm)})"
        return text


def sms_length(text: str) -> SmsLength:
    non_gsm = tuple(
        dict.fromkeys(c for c in text if c not in GSM7_BASIC and c not in GSM7_EXTENSION)
    )
    if not non_gsm:
        costs = [2 if c in GSM7_EXTENSION else 1 for c in text]
        return SmsLength("GSM-7", sum(costs), _segments(costs, GSM7_SINGLE, GSM7_PART))
    costs = [2 if ord(c) > 0xFFFF else 1 for c in text]  # outside the BMP: a surrogate pair
    return SmsLength("UCS-2", sum(costs), _segments(costs, UCS2_SINGLE, UCS2_PART), non_gsm[:10])


def _segments(costs: list[int], single: int, part: int) -> int:
    """Parts as a phone fills them: a character (an escape pair, a surrogate pair) is never
    split across two parts, so a part may end one unit short."""
    total = sum(costs)
    if total == 0:
        return 0
    if total <= single:
        return 1
    parts, used = 1, 0
    for cost in costs:
        if used + cost > part:
            parts, used = parts + 1, 0
        used += cost
    return parts
