"""Writing rejected rows where an operator can fix and re-import them."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterable
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


class RejectsWriter:
    """Rejected rows in the input's own format, each with its row number and reasons.

    A CSV gets two extra columns, ``row`` and ``errors``, and the input's delimiter; the
    import ignores them, so the file can be corrected and imported as it is. Nothing of a
    rejected row is lost: cells past the header's last column follow ``errors``, and a
    record that could not be read at all is written as it was.
    """

    def __init__(
        self, path: Path, file_format: FileFormat, columns: list[str], *, delimiter: str = ","
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
        # A rejects file imported with --rejects again keeps one row/errors pair.
        self._kept = [c for c in columns if c not in ("row", "errors")]
        if file_format == "csv":
            self._csv = csv.writer(self._handle, delimiter=delimiter)
            self._csv.writerow([*self._kept, "row", "errors"])

    def write(self, raw: RawRow, errors: list[str]) -> None:
        self.count += 1
        if self._csv is not None:
            if raw.text is not None and not raw.values:
                self._write_unread_csv(raw.number, raw.text, errors)
            else:
                self._write_csv(raw.number, raw.values, raw.extra, errors)
        elif raw.text is not None and not raw.values:
            # Not a JSON object: written as it was, to be corrected where it stands (its
            # row number and reasons are in the import's report).
            self._handle.write(raw.text + "\n")
        else:
            # The row as it came, plus row and errors (which an import ignores): the file
            # can be corrected and imported again as it is.
            record = {**raw.values, "row": raw.number, "errors": errors}
            self._handle.write(json.dumps(record, default=str, ensure_ascii=False) + "\n")

    def _write_csv(
        self, number: int, values: dict[str, Any], extra: Iterable[Any], errors: list[str]
    ) -> None:
        cells = [spreadsheet_safe(values.get(name)) for name in self._kept]
        extras = [spreadsheet_safe(value) for value in extra]
        self._csv.writerow([*cells, number, "; ".join(errors), *extras])

    def _write_unread_csv(self, number: int, text: str, errors: list[str]) -> None:
        # A record that could not be read (a quote left open past the size of a cell): each
        # of its lines becomes a row of its own, split at the delimiter as written, so the
        # lines the quote swallowed can be imported again once the quote is corrected.
        for line in io.StringIO(text, newline=""):
            line = line.rstrip("\r\n")
            if not line.strip():
                continue
            cells = next(csv.reader([line], delimiter=self.delimiter, quoting=csv.QUOTE_NONE))
            values = dict(zip(self._header, cells, strict=False))
            self._write_csv(number, values, cells[len(self._header) :], errors)

    def close(self) -> None:
        self._handle.close()


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
