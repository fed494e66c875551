"""Writing rejected rows where an operator can fix and re-import them."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any, TextIO

from outreach.importing.reader import FileFormat


class RejectsWriter:
    """Rejected rows in the input's own format, each with its row number and reasons.

    A CSV gets two extra columns, ``row`` and ``errors``; the import ignores them, so the
    file can be corrected and imported as it is.
    """

    def __init__(self, path: Path, file_format: FileFormat, columns: list[str]) -> None:
        self.path = path
        self.format = file_format
        self.count = 0
        self._handle: TextIO = path.open("w", encoding="utf-8", newline="")
        self._csv: Any = None
        if file_format == "csv":
            self._csv = csv.DictWriter(
                self._handle, fieldnames=[*columns, "row", "errors"], extrasaction="ignore"
            )
            self._csv.writeheader()

    def write(self, row_number: int, values: dict[str, Any], errors: list[str]) -> None:
        self.count += 1
        if self._csv is not None:
            self._csv.writerow({**values, "row": row_number, "errors": "; ".join(errors)})
        else:
            record = {"row": row_number, "errors": errors, "data": values}
            self._handle.write(json.dumps(record, default=str, ensure_ascii=False) + "\n")

    def close(self) -> None:
        self._handle.close()
