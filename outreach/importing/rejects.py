"""Writing rejected rows where an operator can fix and re-import them."""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
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

    def __str__(self) -> str:
        return f"row {self.row}: {'; '.join(self.errors)}"


class RejectsWriter:
    """Rejected rows in the input's own format, each with its row number and reasons.

    A CSV gets two extra columns, ``row`` and ``errors``; the import ignores them, so the
    file can be corrected and imported as it is.
    """

    def __init__(self, path: Path, file_format: FileFormat, columns: list[str]) -> None:
        self.path = path
        self.format = file_format
        self.count = 0
        try:
            self._handle: TextIO = path.open("w", encoding="utf-8", newline="")
        except OSError as exc:
            raise DataFileError(f"cannot write rejects to {path}: {exc.strerror}") from None
        self._csv: Any = None
        if file_format == "csv":
            # A rejects file imported with --rejects again keeps one row/errors pair.
            kept = [c for c in columns if c not in ("row", "errors")]
            self._csv = csv.DictWriter(
                self._handle, fieldnames=[*kept, "row", "errors"], extrasaction="ignore"
            )
            self._csv.writeheader()

    def write(self, row_number: int, values: dict[str, Any], errors: list[str]) -> None:
        self.count += 1
        if self._csv is not None:
            cells = {name: spreadsheet_safe(value) for name, value in values.items()}
            self._csv.writerow({**cells, "row": row_number, "errors": "; ".join(errors)})
        else:
            # The row as it came, plus row and errors (which an import ignores): the file
            # can be corrected and imported again as it is.
            record = {**values, "row": row_number, "errors": errors}
            self._handle.write(json.dumps(record, default=str, ensure_ascii=False) + "\n")

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
        problem = RowProblem(raw.number, errors)
        self.count += 1
        if len(self.kept) < self.MAX_KEPT:
            self.kept.append(problem)
        if self.writer is not None:
            self.writer.write(raw.number, raw.values, errors)
        if self.on_problem is not None:
            self.on_problem(problem)
