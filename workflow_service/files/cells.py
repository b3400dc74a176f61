"""Spreadsheet cells that cannot run as formulas (CSV/formula injection).

A spreadsheet program treats a cell that begins with ``=``, ``+``, ``-`` or ``@`` (or a
tab or carriage return before one) as a formula, so a policy title such as
``=HYPERLINK("http://evil", "click")`` would run when a report is opened. Every text cell
written to CSV or XLSX goes through :func:`neutralise`, which puts a ``'`` in front;
numbers, dates and booleans are written as values and stay as they are.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def neutralise(value: Any) -> Any:
    """``value``, with a ``'`` before a string that a spreadsheet would read as a formula."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def neutralise_row(row: Iterable[Any]) -> list[Any]:
    return [neutralise(v) for v in row]
