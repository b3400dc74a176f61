"""Reading an import file: CSV or XLSX into numbered rows of text cells.

Everything that makes a file unusable as a whole is refused here, while the request is
made, with the status and words a person can act on: a file that is not CSV or XLSX,
that cannot be read, that lacks a required column or has one we do not know, that
holds a formula, or that has more rows than allowed. Per-row problems (a bad date, a
title too long) are the job's business and end up in its report.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
import zipfile
from dataclasses import dataclass
from typing import Any

import falcon

from shared.http import ApiError

CSV_TYPES = ("text/csv", "application/csv")
XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
REQUIRED_COLUMNS = ("title", "policy_type")
OPTIONAL_COLUMNS = (
    "id",
    "content",
    "owner",
    "review_frequency",
    "next_review_date",
    "effective_date",
    "tags",
)
#: Columns of an export (``POST /exports``) that the api sets itself: a file exported,
#: edited and imported again may keep them; their cells are ignored. ``version`` is
#: kept: a row naming a policy changed since the export is refused, not applied.
EXPORT_COLUMNS = ("version", "status", "created_by", "created_at", "updated_by", "updated_at")
IGNORED_COLUMNS = EXPORT_COLUMNS[1:]
COLUMNS = (*REQUIRED_COLUMNS, *OPTIONAL_COLUMNS, *EXPORT_COLUMNS)
#: More columns than this in the header is not a policy file (and bounds the work).
MAX_COLUMNS = 64
#: Longest cell kept (the api's content limit is 100,000 characters).
MAX_CELL_CHARS = 100_000

# A cell that a spreadsheet runs: "=..." always; "+", "-" or "@" followed by a function
# call, a DDE command ("cmd|..."), a cell reference or a sum, e.g. "-2+3", "+A1",
# "@SUM(A1:A2)", "+cmd|' /C calc'!A0". Plain text such as "- first point" or a number
# such as "-12.5" is not one.
_SIGNED_FORMULA = re.compile(
    r"""^[+\-@]\s*(?:
        [A-Za-z_][\w.]*\s*[(|!]       # function call, DDE, sheet reference
      | \$?[A-Za-z]{1,3}\$?\d+\b     # cell reference
      | [\d.]+\s*[-+*/^&<>=]          # arithmetic
      | [-+=@]                        # another operator
    )""",
    re.VERBOSE,
)
_LEADING_BLANKS = "\t\r\n "


def is_formula(value: str) -> bool:
    text = value.lstrip(_LEADING_BLANKS)
    if not text:
        return False
    if text[0] == "=":
        return len(text) > 1
    return bool(_SIGNED_FORMULA.match(text))


@dataclass
class ParsedFile:
    file_format: str  # "csv" or "xlsx"
    columns: list[str]
    #: (row number in the file, {column: text or None}); the header is row 1.
    rows: list[tuple[int, dict[str, str | None]]]


class FileRefused(ApiError):
    pass


def refuse(status: str, title: str, description: str) -> FileRefused:
    return FileRefused(status, title, description)


def format_of(content_type: str | None, file_name: str | None = None) -> str:
    """``csv`` or ``xlsx`` from a Content-Type (or, without one, a file name); 415 else."""
    kind = (content_type or "").split(";")[0].strip().lower()
    if kind in CSV_TYPES:
        return "csv"
    if kind == XLSX_TYPE:
        return "xlsx"
    if not kind and file_name:
        lowered = file_name.lower()
        if lowered.endswith(".csv"):
            return "csv"
        if lowered.endswith(".xlsx"):
            return "xlsx"
    shown = kind or (f"a file named {file_name!r}" if file_name else "no type")
    raise refuse(
        falcon.HTTP_415,
        "Unsupported file type",
        f"Imports take CSV (text/csv) or Excel (.xlsx, {XLSX_TYPE}) files, not {shown}.",
    )


def parse(data: bytes, file_format: str, max_rows: int) -> ParsedFile:
    if not data.strip():
        raise refuse(
            falcon.HTTP_400, "Empty file", "The file is empty; send a header row and rows."
        )
    raw_rows = _csv_rows(data) if file_format == "csv" else _xlsx_rows(data, max_rows)
    try:
        header_number, header = next(raw_rows)
    except StopIteration:
        raise refuse(
            falcon.HTTP_400, "Empty file", "The file has no header row; send one naming columns."
        ) from None
    columns = _columns(header)
    rows: list[tuple[int, dict[str, str | None]]] = []
    for number, cells in raw_rows:
        values = [_text(c, number, i, columns) for i, c in enumerate(cells[: len(columns)])]
        if not any(values):
            continue  # blank lines between rows
        if any(v for v in cells[len(columns) :] if v not in (None, "")):
            raise refuse(
                falcon.HTTP_422,
                "Cell outside the columns",
                f"Row {number} has a value beyond the header's {len(columns)} columns; "
                "name every column in the header row.",
            )
        if len(rows) >= max_rows:
            raise refuse(
                falcon.HTTP_413,
                "Too many rows",
                f"An import takes at most {max_rows} rows; split the file.",
            )
        values += [None] * (len(columns) - len(values))
        row = dict(zip(columns, values, strict=True))
        rows.append((number, {k: v for k, v in row.items() if k not in IGNORED_COLUMNS}))
    if not rows:
        raise refuse(falcon.HTTP_400, "No rows", "The file has a header row but no rows.")
    return ParsedFile(file_format, columns, rows)


def _columns(header: list[Any]) -> list[str]:
    names = [str(c).strip().lower() if c is not None else "" for c in header]
    while names and not names[-1]:
        names.pop()
    if len(names) > MAX_COLUMNS:
        raise refuse(falcon.HTTP_422, "Too many columns", f"The header names {len(names)} columns.")
    if "" in names:
        raise refuse(
            falcon.HTTP_422,
            "Unnamed column",
            f"Column {names.index('') + 1} of the header row has no name.",
        )
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise refuse(
            falcon.HTTP_422, "Duplicate columns", f"Columns named twice: {', '.join(duplicates)}."
        )
    missing = [c for c in REQUIRED_COLUMNS if c not in names]
    if missing:
        raise refuse(
            falcon.HTTP_422,
            "Missing required columns",
            f"The header lacks the required column(s): {', '.join(missing)}. Required: "
            f"{', '.join(REQUIRED_COLUMNS)}; optional: {', '.join(OPTIONAL_COLUMNS)}.",
        )
    unknown = [n for n in names if n not in COLUMNS]
    if unknown:
        raise refuse(
            falcon.HTTP_422,
            "Unknown columns",
            f"The header names column(s) a policy does not have: {', '.join(unknown)}. "
            f"Columns: {', '.join(COLUMNS)} (an export's status, created_* and updated_* "
            "are ignored).",
        )
    return names


def _text(value: Any, row: int, index: int, columns: list[str]) -> str | None:
    if value is None:
        return None
    if isinstance(value, _Formula):
        raise _formula_refusal(row, columns[index])
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, dt.datetime):
        text = value.date().isoformat() if value.time() == dt.time() else value.isoformat()
    elif isinstance(value, dt.date):
        text = value.isoformat()
    elif isinstance(value, float) and value.is_integer():
        text = str(int(value))
    else:
        text = str(value)
    if is_formula(text):
        raise _formula_refusal(row, columns[index])
    text = text.strip()
    if len(text) > MAX_CELL_CHARS:
        raise refuse(
            falcon.HTTP_422,
            "Cell too long",
            f"Row {row}, column {columns[index]} holds more than {MAX_CELL_CHARS} characters.",
        )
    return text or None


def _formula_refusal(row: int, column: str) -> FileRefused:
    return refuse(
        falcon.HTTP_422,
        "Formula in a cell",
        f"Row {row}, column {column} holds a formula (it begins with =, +, - or @). "
        "Formulas are refused (CSV/Excel injection): enter the value itself, or put a "
        "' before text that must begin with one of these characters.",
    )


class _Formula(str):
    """An XLSX cell holding a formula."""


def _csv_rows(data: bytes):
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise refuse(
            falcon.HTTP_400,
            "Unreadable file",
            "The CSV file is not UTF-8 text; save it as CSV UTF-8.",
        ) from None
    if "\x00" in text:
        raise refuse(falcon.HTTP_400, "Unreadable file", "The CSV file holds NUL characters.")
    # Spreadsheets set to a comma-decimal locale save CSV with semicolons.
    first_line = text.split("\n", 1)[0]
    delimiter = ";" if ";" in first_line and "," not in first_line else ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    try:
        for cells in reader:
            yield reader.line_num, cells
    except csv.Error as exc:
        raise refuse(
            falcon.HTTP_400,
            "Unreadable file",
            f"The CSV file cannot be read near line {reader.line_num}: {exc}.",
        ) from None


def _xlsx_rows(data: bytes, max_rows: int):
    from openpyxl import load_workbook

    try:
        workbook = load_workbook(io.BytesIO(data), read_only=True, data_only=False)
        sheet = workbook.worksheets[0]
        number = 0
        # One row past the limit is enough to refuse the file; blank rows count too so
        # a sheet of a million empty rows costs no more than the limit.
        budget = max_rows * 2 + 100
        for number, row in enumerate(sheet.iter_rows(max_col=MAX_COLUMNS + 1), start=1):
            if number > budget:
                raise refuse(
                    falcon.HTTP_413,
                    "Too many rows",
                    f"An import takes at most {max_rows} rows; split the file.",
                )
            yield number, [_xlsx_value(cell) for cell in row]
        workbook.close()
    except FileRefused:
        raise
    except (zipfile.BadZipFile, KeyError, ValueError, TypeError, OSError, IndexError) as exc:
        raise refuse(
            falcon.HTTP_400,
            "Unreadable file",
            f"The file is not a readable Excel workbook (.xlsx): {type(exc).__name__}.",
        ) from None
    except Exception as exc:  # noqa: BLE001 - openpyxl raises many kinds on bad input
        raise refuse(
            falcon.HTTP_400,
            "Unreadable file",
            f"The file is not a readable Excel workbook (.xlsx): {type(exc).__name__}.",
        ) from None


def _xlsx_value(cell: Any) -> Any:
    value = getattr(cell, "value", None)
    if getattr(cell, "data_type", None) == "f" and value is not None:
        return _Formula(str(value))
    return value
