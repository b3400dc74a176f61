"""Rows written to a file as CSV, XLSX or JSON, one row at a time.

Each writer writes straight to the file store's stream (CSV rows, an openpyxl write-only
workbook, which spools rows to disk, or a JSON array written element by element), so a
file's memory does not grow with its size. Text cells of CSV and XLSX go through
:func:`~workflow_service.storage.cells.neutralise` so a title such as
``=HYPERLINK(...)`` cannot run when the file is opened.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from workflow_service.storage.cells import neutralise_row

FORMATS = ("csv", "xlsx", "json")
CONTENT_TYPES = {
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "json": "application/json",
}
#: Excel's limit on a cell's length; longer text (policy content) is cut in XLSX only.
XLSX_MAX_CELL = 32_767


def cell(value: Any) -> Any:
    """A value as a spreadsheet cell: lists joined with "; ", None empty."""
    if value is None:
        return ""
    if isinstance(value, list):
        return "; ".join(str(v) for v in value)
    if isinstance(value, dict):
        return json.dumps(value, separators=(",", ":"))
    return value


class Utf8Out:
    """Text written as UTF-8 to a byte stream (what :func:`csv.writer` needs)."""

    def __init__(self, out: Any):
        self.out = out

    def write(self, text: str) -> int:
        self.out.write(text.encode("utf-8"))
        return len(text)


class CsvWriter:
    def __init__(self, out: Any, columns: tuple[str, ...], spool_dir: Path | None = None):
        self.writer = csv.writer(Utf8Out(out))
        self.columns = columns
        self.writer.writerow(columns)

    def row(self, item: dict[str, Any]) -> None:
        self.writer.writerow(neutralise_row(cell(item.get(c)) for c in self.columns))

    def close(self) -> None:
        pass

    def discard(self) -> None:
        pass


class XlsxWriter:
    """openpyxl's write-only workbook. Its rows are spooled to a file before the zip is
    written; that file goes to ``spool_dir`` (the file store's volume) rather than
    ``/tmp``, which in the containers is a small in-memory tmpfs: the sheet's XML of a
    large export is larger than the finished file."""

    def __init__(self, out: Any, columns: tuple[str, ...], spool_dir: Path | None = None):
        from openpyxl import Workbook
        from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

        self.out = out
        self.illegal = ILLEGAL_CHARACTERS_RE
        self.workbook = Workbook(write_only=True)
        self.sheet = self.workbook.create_sheet("export")
        self.spool: str | None = None
        if spool_dir is not None:
            self._spool_in(spool_dir)
        self.columns = columns
        self.sheet.append(list(columns))

    def _spool_in(self, spool_dir: Path) -> None:
        # openpyxl takes no directory for its spool file: give the sheet its writer
        # (what its first append would make) with a file of ours, registered where
        # openpyxl's cleanup expects it.
        from openpyxl.worksheet._writer import ALL_TEMP_FILES, WorksheetWriter

        spool_dir.mkdir(parents=True, exist_ok=True)
        fd, self.spool = tempfile.mkstemp(dir=spool_dir, prefix=".xlsx-", suffix=".xml")
        os.close(fd)
        ALL_TEMP_FILES.append(self.spool)
        self.sheet._writer = WorksheetWriter(self.sheet, out=self.spool)
        self.sheet._writer.write_top()

    def _cell(self, value: Any) -> Any:
        value = cell(value)
        if isinstance(value, str):
            value = self.illegal.sub("", value)[:XLSX_MAX_CELL]
        return value

    def row(self, item: dict[str, Any]) -> None:
        self.sheet.append(neutralise_row(self._cell(item.get(c)) for c in self.columns))

    def close(self) -> None:
        self.workbook.save(self.out)  # removes the spool file

    def discard(self) -> None:
        """After a failure: remove the spool file, if any is left."""
        from openpyxl.worksheet._writer import ALL_TEMP_FILES

        if self.spool and self.spool in ALL_TEMP_FILES:
            with contextlib.suppress(Exception):  # end the sheet's XML before its file goes
                if self.sheet._rows is not None:
                    self.sheet._rows.close()
                self.sheet._writer.close()
            ALL_TEMP_FILES.remove(self.spool)
            with contextlib.suppress(FileNotFoundError):
                os.remove(self.spool)


class JsonWriter:
    def __init__(self, out: Any, columns: tuple[str, ...], spool_dir: Path | None = None):
        self.out = out
        self.first = True
        self.out.write(b"[")

    def row(self, item: dict[str, Any]) -> None:
        self.out.write((b"\n" if self.first else b",\n") + json.dumps(item).encode())
        self.first = False

    def close(self) -> None:
        self.out.write(b"\n]\n")

    def discard(self) -> None:
        pass


class Writer(Protocol):
    """What an export writes through: rows, then close() to finish or discard() to drop."""

    def row(self, item: dict[str, Any]) -> None: ...
    def close(self) -> None: ...
    def discard(self) -> None: ...


WRITERS: dict[str, Callable[..., Writer]] = {
    "csv": CsvWriter,
    "xlsx": XlsxWriter,
    "json": JsonWriter,
}
