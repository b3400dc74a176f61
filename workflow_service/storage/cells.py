"""Spreadsheet cells that cannot run as formulas (CSV/formula injection).

A spreadsheet program treats a cell that begins with ``=``, ``+``, ``-`` or ``@`` (or a
tab or carriage return before one) as a formula, so a policy title such as
``=HYPERLINK("http://evil", "click")`` would run when a report is opened. Importers may
also trim whitespace and quotes first (" =1+1", a cell ``"=1+1"`` quoted twice), and
Excel reads the full-width signs of East Asian input modes as the ASCII ones. Every
text cell written to CSV or XLSX goes through :func:`neutralise`, which puts a ``'`` in
front of a cell whose first character after whitespace and quotes is one of those;
numbers, dates and booleans are written as values and stay as they are.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

#: Signs that start a formula: ASCII, and the full-width ones Excel reads as them.
SIGNS = ("=", "+", "-", "@", "\uff1d", "\uff0b", "\uff0d", "\uff20")
FORMULA_STARTS = (*SIGNS, "\t", "\r")
#: Quotes and invisible characters an importer may strip too (besides whitespace).
_QUOTES = "\"'\u2018\u2019\u201c\u201d\u200b\ufeff"


def _first_visible(value: str) -> str:
    for char in value:
        if not (char.isspace() or char in _QUOTES):
            return char
    return ""


def neutralise(value: Any) -> Any:
    """``value``, with a ``'`` before a string that a spreadsheet would read as a formula."""
    if not isinstance(value, str):
        return value
    if value.startswith(FORMULA_STARTS) or _first_visible(value) in SIGNS:
        return "'" + value
    return value


def neutralise_row(row: Iterable[Any]) -> list[Any]:
    return [neutralise(v) for v in row]
