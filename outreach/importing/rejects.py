"""Writing rejected rows where an operator can fix and re-import them."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from outreach.errors import DataFileError
from outreach.importing.cells import spreadsheet_safe
from outreach.importing.reader import FileFormat, RawRow


@dataclass(frozen=True)
class RowProblem:
    row: int
    errors: list[str]
    # The line of the file the row starts on, where that is not its row number (a CSV
    # whose quoted cells hold line breaks).
    line: int | None = None

    def __str__(self) -> str:
        where = f"row {self.row}" if self.line is None else f"row {self.row} (line {self.line})"
        return f"{where}: {'; '.join(self.errors)}"


def refuse_rejects_over_input(rejects_path: Path | None, path: Path) -> None:
    """Refuse a rejects file that is the input itself (by any name: a link, another
    spelling): opened for writing, it would be emptied while its rows are being read."""
    if rejects_path is None or not rejects_path.exists():
        return
    try:
        same = rejects_path.samefile(path)
    except OSError:
        return  # the input's own problem, said when it is opened
    if same:
        raise DataFileError(
            f"--rejects {rejects_path}: it is the file being imported ({path}); name another "
            "file. Nothing was imported."
        )


class RejectsWriter:
    """Rejected rows in the input's own format, each with its row number and reasons.

    A CSV gets two extra columns, ``row`` and ``errors``, and the input's delimiter; the
    import ignores them, so the file can be corrected and imported as it is. Nothing of a
    rejected row is lost: every cell is written where it stood (under an unnamed column
    too), cells past the header's last column follow ``errors``, and a record that could
    not be read at all is written as it was. ``added`` names columns the importer adds to
    each row (a payment's ``row_key``), written after the input's own.
    """

    def __init__(
        self,
        path: Path,
        file_format: FileFormat,
        columns: list[str],
        *,
        delimiter: str = ",",
        added: Sequence[str] = (),
    ) -> None:
        self.path = path
        self.format = file_format
        self.count = 0
        self.delimiter = delimiter
        try:
            self._handle: TextIO = path.open("w", encoding="utf-8", newline="")
        except OSError as exc:
            raise DataFileError(f"cannot write rejects to {path}: {exc.strerror}") from None
        self._csv: Any = None
        self._header = columns
        # By position: unnamed columns share one name. A rejects file imported with
        # --rejects again keeps one row/errors pair.
        self._kept = [(i, c) for i, c in enumerate(columns) if c not in ("row", "errors")]
        self._added = [c for c in added if c not in columns]
        if file_format == "csv":
            self._csv = csv.writer(self._handle, delimiter=delimiter)
            self._csv.writerow([*(c for _, c in self._kept), *self._added, "row", "errors"])

    def write(self, raw: RawRow, errors: list[str]) -> None:
        self.count += 1
        if self._csv is not None:
            if raw.text is not None:
                self._write_unread_csv(raw.number, raw.text, errors)
            else:
                self._write_csv(raw.number, raw.values, raw.cells, raw.extra, errors)
        elif raw.text is not None:
            # Not a JSON object: written as it was, to be corrected where it stands (its
            # row number and reasons are in the import's report).
            self._handle.write(raw.text + "\n")
        else:
            # The row as it came, plus row and errors (which an import ignores): the file
            # can be corrected and imported again as it is.
            record = {**raw.values, "row": raw.number, "errors": errors}
            self._handle.write(_json_line(record) + "\n")

    def _write_csv(
        self,
        number: int,
        values: dict[str, Any],
        cells: Sequence[str],
        extra: Iterable[Any],
        errors: list[str],
    ) -> None:
        row = [
            values.get(name) if name else (cells[i] if i < len(cells) else None)
            for i, name in self._kept
        ]
        row += [values.get(name) for name in self._added]
        safe = [spreadsheet_safe(value) for value in row]
        extras = [spreadsheet_safe(value) for value in extra]
        self._csv.writerow([*safe, number, "; ".join(errors), *extras])

    def _write_unread_csv(self, number: int, text: str, errors: list[str]) -> None:
        # A record that could not be read (a quote left open past the size of a cell, to the
        # end of the file or over whole rows): each of its lines becomes a row of its own,
        # split at the delimiter as written, so the lines the quote swallowed can be
        # imported again once the quote is corrected.
        width = len(self._header)
        for line in io.StringIO(text, newline=""):
            line = line.rstrip("\r\n")
            if not line.strip():
                continue
            cells = next(csv.reader([line], delimiter=self.delimiter, quoting=csv.QUOTE_NONE))
            values = dict(zip(self._header, cells, strict=False))
            self._write_csv(number, values, cells[:width], cells[width:], errors)

    def close(self) -> None:
        self._handle.close()


def _json_line(record: dict[str, Any]) -> str:
    """``record`` as one JSON line: its text as it is where UTF-8 can hold it, else escaped
    (half of a surrogate pair, ``\\ud800``), which JSON reads back as the same value."""
    line = json.dumps(record, default=str, ensure_ascii=False)
    try:
        line.encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(record, default=str)
    return line


class Rejections:
    """Every rejected row of one import: counted, written to the rejects file, announced
    to ``on_problem``, and the first ``MAX_KEPT`` kept in memory for the summary."""

    MAX_KEPT = 1000

    def __init__(
        self,
        writer: RejectsWriter | None = None,
        on_problem: Callable[[RowProblem], None] | None = None,
    ) -> None:
        self.writer = writer
        self.on_problem = on_problem
        self.count = 0
        self.kept: list[RowProblem] = []

    def reject(self, raw: RawRow, errors: list[str]) -> None:
        problem = RowProblem(raw.number, errors, raw.line)
        self.count += 1
        if len(self.kept) < self.MAX_KEPT:
            self.kept.append(problem)
        if self.writer is not None:
            self.writer.write(raw, errors)
        if self.on_problem is not None:
            self.on_problem(problem)
