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
