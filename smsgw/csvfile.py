"""CSV the gateway writes is opened in spreadsheets: no cell may start a formula.

A cell starting with `=`, `+`, `-`, `@`, tab or carriage return is taken for a formula by Excel
and LibreOffice (`=2+5`, `@SUM(1+1)`, `=HYPERLINK(…)`, DDE payloads).  Text from outside (an
alphanumeric sender id, a plate, a note) can start that way, so, as OWASP recommends for CSV
injection, such a cell gets a leading single quote: the spreadsheet shows the text, starts no
formula, and the `'` tells a reader the cell was neutralised.  Numbers are written as numbers
(a negative net amount stays -500); the csv module quotes separators and quotes inside cells, so
a cell cannot end early and start another.  Every CSV writer of the gateway goes through
`writer` here.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from typing import Any, Protocol

__all__ = ["FORMULA_STARTS", "SafeWriter", "neutralise", "writer"]

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def neutralise(cell: Any) -> Any:
    """`cell` as it may be written: text that would start a formula gets a leading `'`."""
    if isinstance(cell, str) and cell.startswith(FORMULA_STARTS):
        return "'" + cell
    return cell


class _Writable(Protocol):
    def write(self, s: str, /) -> object: ...


class SafeWriter:
    """csv.writer whose rows are neutralised cell by cell."""

    def __init__(self, f: _Writable, **fmt: Any) -> None:
        self._out = csv.writer(f, **fmt)

    def writerow(self, row: Iterable[Any]) -> None:
        self._out.writerow([neutralise(cell) for cell in row])

    def writerows(self, rows: Iterable[Iterable[Any]]) -> None:
        for row in rows:
            self.writerow(row)


def writer(f: _Writable, **fmt: Any) -> SafeWriter:
    return SafeWriter(f, **fmt)
