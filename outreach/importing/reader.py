"""Streaming rows out of CSV and JSON Lines files, each with the row number a person sees.

Rows are yielded one at a time so memory stays flat whatever the file size. A file that
cannot be read as a whole (not UTF-8, no header, a required column missing) raises
DataFileError before any row is yielded, so nothing from it is imported.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, BinaryIO, Literal

from outreach.errors import DataFileError
from outreach.importing.cells import as_written

FileFormat = Literal["csv", "jsonl"]
_CHUNK = 1 << 20


@dataclass(frozen=True)
class RawRow:
    """One record as read: its row number and its cells.

    In a CSV the row number is the one a spreadsheet shows: the header is row 1 and each
    record (a blank line too) one row, whatever line breaks its quoted cells hold. In JSON
    Lines it is the line number.
    """

    number: int
    values: dict[str, Any]
    error: str | None = None  # set when the record itself could not be parsed
    # The line of the file the record starts on, where that is not its row number.
    line: int | None = None
    # Cells past the header's last column (a CSV row with too many cells).
    extra: tuple[str, ...] = ()
    # A CSV row's cells under the header's columns, by position: ``values`` keeps one cell
    # per name, so the cells of unnamed columns are only here.
    cells: tuple[str, ...] = ()
    # The record as written, where it could not be read into ``values`` at all.
    text: str | None = None


@dataclass
class RowSource:
    """An open file of rows; iterate it once."""

    path: Path
    format: FileFormat
    columns: list[str]  # as found in the header (CSV) or empty (JSON Lines: per row)
    unknown_columns: set[str] = field(default_factory=set)
    delimiter: str = ","
    bytes_total: int = 0
    _binary: BinaryIO | None = None
    _rows: Iterator[RawRow] | None = None

    def __iter__(self) -> Iterator[RawRow]:
        assert self._rows is not None, "RowSource is iterated once"
        rows, self._rows = self._rows, None
        return rows

    def bytes_read(self) -> int:
        return self._binary.tell() if self._binary and not self._binary.closed else 0

    def close(self) -> None:
        if self._binary is not None:
            self._binary.close()

    def __enter__(self) -> RowSource:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def detect_format(path: Path, explicit: str | None) -> FileFormat:
    choice = (explicit or path.suffix.lstrip(".")).lower()
    if choice in ("csv", "tsv", "txt"):
        return "csv"
    if choice in ("jsonl", "ndjson", "json"):
        return "jsonl"
    if explicit is not None:
        raise DataFileError(f"--format {explicit!r}: use csv or jsonl")
    raise DataFileError(
        f"{path}: cannot tell the format from the name; use a .csv or .jsonl file "
        "or pass --format csv|jsonl"
    )


def normalize_header(name: str) -> str:
    return name.strip().lower().replace(" ", "_").replace("-", "_")


def check_utf8(path: Path) -> None:
    """Refuse a file that is not UTF-8 before reading any row, naming the first bad line.

    Latin-1 and Windows-1252 files would otherwise import with garbled names; refusing
    them whole is safer than guessing the encoding.
    """
    decoder = codecs.getincrementaldecoder("utf-8")()
    line = 1
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            # Bytes of a character split across reads wait in the decoder; an error's offset
            # counts from them. They hold no newline, so only the chunk's newlines count.
            pending: bytes = decoder.getstate()[0]
            try:
                decoder.decode(chunk)
            except UnicodeDecodeError as exc:
                data = pending + chunk
                bad_line = line + chunk.count(b"\n", 0, max(0, exc.start - len(pending)))
                raise DataFileError(
                    f"{path}: line {bad_line} is not UTF-8 (byte 0x{data[exc.start]:02X}); "
                    "the file looks like Latin-1 or Windows-1252. Save it as UTF-8 "
                    "(in Excel: 'CSV UTF-8') and import it again. Nothing was imported."
                ) from None
            line += chunk.count(b"\n")
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            raise DataFileError(
                f"{path}: the file ends in the middle of a UTF-8 character (truncated?). "
                "Nothing was imported."
            ) from None


def open_rows(
    path: Path,
    file_format: FileFormat,
    *,
    required: frozenset[str],
    known: frozenset[str],
) -> RowSource:
    """Open ``path`` for streaming after checking its encoding and (for CSV) its header."""
    if not path.is_file():
        raise DataFileError(f"{path}: no such file")
    check_utf8(path)
    binary = path.open("rb")
    # A CSV reads its own line ends (a quoted cell may hold one); in JSON Lines only "\n"
    # ends a line, as a lone "\r" is whitespace inside a JSON object.
    newline = "" if file_format == "csv" else "\n"
    text = io.TextIOWrapper(binary, encoding="utf-8-sig", newline=newline)
    source = RowSource(path, file_format, [], bytes_total=path.stat().st_size, _binary=binary)
    try:
        if file_format == "csv":
            source._rows = _csv_rows(source, text, required, known)
        else:
            source._rows = _jsonl_rows(source, text, known)
    except BaseException:
        binary.close()
        raise
    return source


def _csv_rows(
    source: RowSource, text: io.TextIOWrapper, required: frozenset[str], known: frozenset[str]
) -> Iterator[RawRow]:
    header_line = text.readline()
    header_at = 1
    # Blank lines are skipped before the header as after it; they still count as rows.
    while header_line and not header_line.strip():
        header_line = text.readline()
        header_at += 1
    if not header_line.strip():
        raise DataFileError(f"{source.path}: the file is empty; the first line must be a header")
    delimiter = _delimiter(header_line)
    header = [
        normalize_header(name) for name in next(csv.reader([header_line], delimiter=delimiter))
    ]
    missing = sorted(required - set(header))
    if missing:
        raise DataFileError(
            f"{source.path}: the header lacks required column(s) {', '.join(missing)}; "
            f"found {', '.join(header)}. Nothing was imported."
        )
    # Spreadsheets often save trailing empty columns: unnamed columns are ignored.
    duplicated = sorted({name for name in header if name and header.count(name) > 1})
    if duplicated:
        raise DataFileError(
            f"{source.path}: column(s) {', '.join(duplicated)} appear more than once in the header"
        )
    source.columns = header
    source.delimiter = delimiter
    source.unknown_columns = {name for name in header if name and name not in known}
    return _csv_records(text, header, delimiter, header_at)


class _Lines:
    """The lines of a file as the CSV reader takes them, keeping those of the current record."""

    def __init__(self, text: io.TextIOWrapper) -> None:
        self._text = text
        self.taken: list[str] = []
        # The file ended inside a record: only a quote left open asks for a line past the
        # last one, as a record otherwise ends with its line.
        self.ended_in_record = False

    def __iter__(self) -> _Lines:
        return self

    def __next__(self) -> str:
        try:
            line = next(self._text)
        except StopIteration:
            self.ended_in_record = bool(self.taken)
            raise
        self.taken.append(line)
        return line


def _csv_records(
    text: io.TextIOWrapper, header: list[str], delimiter: str, header_at: int
) -> Iterator[RawRow]:
    """``header_at``: the header's line (and row), after the blank lines before it."""
    lines = _Lines(text)
    reader = csv.reader(lines, delimiter=delimiter)
    number = header_at
    last_line = header_at
    while True:
        start = last_line + 1
        lines.taken.clear()
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            # A cell past the size limit: in practice a quote left open, which swallowed
            # the lines after it. The reader starts afresh on the next line.
            number += 1
            last_line = reader.line_num + header_at
            problem = f"cannot be read as CSV ({exc})"
            if last_line > start:
                problem += (
                    f"; it runs from line {start} to line {last_line} (a quote left open?), "
                    "and none of these lines is imported"
                )
            text_read = "".join(lines.taken)
            yield RawRow(number, {}, problem, _line(start, number), text=text_read)
            continue
        number += 1
        end = reader.line_num + header_at  # the physical line the record ends on
        last_line = end
        text_read = "".join(lines.taken)
        if lines.ended_in_record:
            # The quoted cell took every line to the end of the file: with its cell count
            # right it would land whole, and the rows it swallowed vanish unreported.
            problem = (
                f"has a quote left open: it runs from line {start} to the end of the file "
                f"(line {end}), and none of these lines is imported"
            )
            yield RawRow(number, {}, problem, _line(start, number), text=text_read)
            continue
        if not cells or all(not cell.strip() for cell in cells):
            continue  # blank lines are not rows
        written = tuple(map(as_written, cells[: len(header)]))
        values = dict(zip(header, written, strict=False))
        if len(cells) != len(header):
            problem = f"has {len(cells)} cells where the header has {len(header)} columns"
            if end > start:
                # A quote left open swallows the lines after it: say which, so none is lost.
                problem += f"; it runs from line {start} to line {end} (a quote left open?)"
            extra = tuple(cells[len(header) :])
            yield RawRow(number, values, problem, _line(start, number), extra, written)
            continue
        yield RawRow(number, values, line=_line(start, number), cells=written)


def _line(line: int, number: int) -> int | None:
    return line if line != number else None


def _delimiter(header_line: str) -> str:
    # Spreadsheets in many locales save with ";" and some exports use tabs.
    counts = {sep: header_line.count(sep) for sep in (",", ";", "\t")}
    best = max(counts, key=lambda sep: counts[sep])
    return best if counts[best] else ","


def _jsonl_rows(
    source: RowSource, text: io.TextIOWrapper, known: frozenset[str]
) -> Iterator[RawRow]:
    for number, line in enumerate(text, start=1):
        content = line.removesuffix("\n").removesuffix("\r")
        if not content.strip():
            continue
        try:
            # Decimal keeps amounts exact: 19.99 must not become 19.989999...
            value = json.loads(content, parse_float=Decimal)
        except json.JSONDecodeError as exc:
            problem = f"is not valid JSON ({exc.msg} at column {exc.colno})"
            yield RawRow(number, {}, problem, text=content)
            continue
        except (ValueError, RecursionError) as exc:  # a 5,000-digit number, deep nesting
            problem = f"cannot be read ({type(exc).__name__}: {str(exc)[:80]})"
            yield RawRow(number, {}, problem, text=content)
            continue
        if not isinstance(value, dict):
            yield RawRow(number, {}, "is not a JSON object", text=content)
            continue
        values = {normalize_header(str(key)): cell for key, cell in value.items()}
        if len(source.unknown_columns) < 100:
            source.unknown_columns.update(key for key in values if key not in known)
        yield RawRow(number, values)


ProgressCallback = Callable[[int], None]
