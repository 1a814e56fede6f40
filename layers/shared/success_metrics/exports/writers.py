"""Streaming format writers for exports: CSV, JSON (one array), NDJSON and XLSX.

Text writers produce bytes chunk by chunk and hold no more than the current row, so memory stays
flat whatever the row count. Every writer can report its state after any row, and a writer
rebuilt from that state continues with exactly the bytes an uninterrupted run would produce (the
export worker checkpoints it with the S3 multipart upload). Gzip, when asked for, is applied per
part by the worker as independent gzip members, which concatenate into one valid gzip file.

Cells that a spreadsheet would run as a formula (text starting with =, +, -, @, tab or carriage
return) are neutralised with a leading apostrophe in CSV, and stored as plain strings in XLSX.
"""

from __future__ import annotations

import csv
import json
import operator
import os
import re
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Protocol

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
# The control characters XML 1.0 cannot hold (openpyxl's ILLEGAL_CHARACTERS_RE): one of them in
# any cell makes the whole workbook unwritable. CSV quotes them and JSON escapes them.
XML_ILLEGAL = re.compile(r"[\000-\010]|[\013-\014]|[\016-\037]")
SHEET_ROWS = 1_000_000


def xml_safe(text: str) -> str:
    """`text` without the control characters a spreadsheet's XML cannot carry."""
    return XML_ILLEGAL.sub("", text)


def neutralise(value: Any) -> Any:
    """A text cell that cannot run as a formula in Excel, Sheets or LibreOffice."""
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
        return "'" + value
    return value


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


# One encoder for every cell and line: json.dumps with options builds a new one per call.
_COMPACT = json.JSONEncoder(ensure_ascii=False, default=_json_default, separators=(",", ":"))


class Writer(Protocol):
    columns: list[str]
    rows: int

    def write(self, row: dict[str, Any]) -> bytes: ...

    def finish(self) -> bytes: ...

    def state(self) -> dict[str, Any]: ...


class _Chunks:
    """A write-only text sink that keeps what csv.writer wrote since the last take."""

    __slots__ = ("chunks", "write")

    def __init__(self) -> None:
        self.chunks: list[str] = []
        self.write = self.chunks.append

    def take(self) -> bytes:
        data = "".join(self.chunks).encode("utf-8")
        self.chunks.clear()
        return data


class CsvWriter:
    """RFC 4180 CSV with a header row (unless `framed` is false: a slice of a larger file)."""

    def __init__(self, columns: Sequence[str], rows: int = 0, framed: bool = True) -> None:
        self.columns = list(columns)
        self.rows = rows
        self.framed = framed
        self._sink = _Chunks()
        self._csv = csv.writer(self._sink, lineterminator="\r\n")
        self._values = _values(self.columns)

    def write(self, row: dict[str, Any]) -> bytes:
        if self.rows == 0 and self.framed:
            self._csv.writerow(self.columns)
        self._csv.writerow(map(_csv_cell, self._values(row)))
        self.rows += 1
        return self._sink.take()

    def finish(self) -> bytes:
        if self.rows == 0 and self.framed:
            self._csv.writerow(self.columns)
            return self._sink.take()
        return b""

    def state(self) -> dict[str, Any]:
        return {"format": "csv", "columns": self.columns, "rows": self.rows}


_FORMULA_FIRST = frozenset(FORMULA_PREFIXES)


def _values(columns: Sequence[str]) -> Any:
    """row -> its values in column order (None for a missing column), fast for full rows."""
    names = list(columns)
    many = operator.itemgetter(*names) if len(names) > 1 else None

    def values(row: dict[str, Any]) -> Sequence[Any]:
        if many is not None:
            try:
                found: Sequence[Any] = many(row)
                return found
            except KeyError:
                pass
        return [row.get(c) for c in names]

    return values


def _csv_cell(value: Any) -> Any:
    """One CSV cell: text neutralised, booleans as true/false, dates ISO 8601, objects JSON.

    Dispatches on the exact type first: this runs for every cell of every row.
    """
    kind = type(value)
    if kind is str:
        return "'" + value if value and value[0] in _FORMULA_FIRST else value
    if value is None:
        return ""
    if kind is int or kind is float or kind is Decimal:
        return value
    if kind is datetime:
        return value.isoformat()
    if kind is bool:
        return "true" if value else "false"
    if kind is dict:
        return _COMPACT.encode(value)
    return _text(neutralise(value))


def _text(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return _COMPACT.encode(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


class NdjsonWriter:
    """One JSON object per line."""

    def __init__(self, columns: Sequence[str], rows: int = 0, framed: bool = True) -> None:
        self.columns = list(columns)
        self.rows = rows
        self.framed = framed

    def write(self, row: dict[str, Any]) -> bytes:
        self.rows += 1
        line = _COMPACT.encode({c: row.get(c) for c in self.columns})
        return (line + "\n").encode("utf-8")

    def finish(self) -> bytes:
        return b""

    def state(self) -> dict[str, Any]:
        return {"format": "ndjson", "columns": self.columns, "rows": self.rows}


class JsonWriter(NdjsonWriter):
    """One valid JSON array, written element by element (unframed: the elements only, joined
    by commas, for a slice that `glue` joins into the array)."""

    def write(self, row: dict[str, Any]) -> bytes:
        opening = (b"[\n" if self.framed else b"") if self.rows == 0 else b",\n"
        return opening + super().write(row)[:-1]

    def finish(self) -> bytes:
        if not self.framed:
            return b""
        return b"\n]\n" if self.rows else b"[]\n"

    def state(self) -> dict[str, Any]:
        return {"format": "json", "columns": self.columns, "rows": self.rows}


class XlsxWriter:
    """openpyxl write-only workbook in a temporary file; a new sheet every `sheet_rows` rows.

    XLSX is a zip, so it cannot be streamed part by part like text: the worker writes rows
    here and uploads the file in parts when it is finished. A checkpoint keeps the rows written
    so far (resume replays them from the source), and the finished file holds identical cells.
    """

    def __init__(
        self,
        columns: Sequence[str],
        sheet_rows: int = SHEET_ROWS,
        title: str = "Data",
        kinds: Sequence[str] | None = None,
    ) -> None:
        # openpyxl loads only for XLSX work (cold start)
        from openpyxl import Workbook

        self.columns = list(columns)
        self.kinds = list(kinds or ["auto"] * len(self.columns))
        self.rows = 0
        self.sheet_rows = sheet_rows
        self.title = title
        self._workbook = Workbook(write_only=True)
        self._sheet: Any = None
        self._sheets = 0
        fd, self.path = tempfile.mkstemp(prefix="export-", suffix=".xlsx")
        os.close(fd)

    def add_sheet(self, title: str, rows: Iterable[Sequence[Any]]) -> Any:
        """An extra sheet (the Summary), written before the data sheets."""
        sheet = self._workbook.create_sheet(title[:31])
        for row in rows:
            sheet.append([neutralise(xml_safe(v)) if isinstance(v, str) else v for v in row])
        return sheet

    def write(self, row: dict[str, Any]) -> bytes:
        if self._sheet is None or self.rows % self.sheet_rows == 0:
            self._sheets += 1
            name = self.title if self._sheets == 1 else f"{self.title} {self._sheets}"
            self._sheet = self._data_sheet(name)
        self._sheet.append(
            [
                _typed(self._sheet, row.get(c), kind)
                for c, kind in zip(self.columns, self.kinds, strict=True)
            ]
        )
        self.rows += 1
        return b""

    def _data_sheet(self, name: str) -> Any:
        """A data sheet with its bold header row frozen, widths for its columns' kinds and a
        print layout one page wide (set before the first row: the sheet is write-only)."""
        # openpyxl loads only for XLSX work (cold start)
        from openpyxl.cell import WriteOnlyCell
        from openpyxl.styles import Font
        from openpyxl.utils import get_column_letter

        sheet = self._workbook.create_sheet(name)
        for index, (column, kind) in enumerate(zip(self.columns, self.kinds, strict=True), 1):
            wanted = max(len(column), KIND_WIDTHS.get(kind, KIND_WIDTHS["text"]))
            sheet.column_dimensions[get_column_letter(index)].width = column_width(wanted, True)
        sheet.freeze_panes = "A2"
        print_one_page_wide(sheet, "1:1")
        bold = Font(bold=True)
        header = []
        for column in self.columns:
            cell = WriteOnlyCell(sheet, value=column)
            cell.font = bold
            header.append(cell)
        sheet.append(header)
        return sheet

    def finish(self) -> bytes:
        if self._sheet is None:
            self._data_sheet(self.title)
        self._workbook.save(self.path)
        return b""

    @property
    def workbook(self) -> Any:
        return self._workbook

    def chunks(self, size: int = 8 * 1024 * 1024) -> Iterator[bytes]:
        with open(self.path, "rb") as handle:
            while block := handle.read(size):
                yield block

    def close(self) -> None:
        if os.path.exists(self.path):
            os.unlink(self.path)

    def state(self) -> dict[str, Any]:
        return {"format": "xlsx", "columns": self.columns, "rows": self.rows}


def _cell(value: Any) -> Any:
    """Typed cells: numbers as numbers, dates as dates, everything else as neutralised text."""
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, datetime):
        return value.replace(tzinfo=None)
    if isinstance(value, date):
        return value
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False, default=_json_default)
    return neutralise(xml_safe(str(value)))


MONEY_FORMAT = "#,##0.00"
DATETIME_FORMAT = "yyyy-mm-dd hh:mm:ss"
DATE_FORMAT = "yyyy-mm-dd"
# Characters a data column's values take, by kind (a write-only sheet's widths are set before
# its first row, so they come from the column's kind and header, not from its values).
KIND_WIDTHS = {
    "datetime": 20,
    "date": 11,
    "money": 14,
    "number": 14,
    "int": 10,
    "bool": 7,
    "json": 50,
    "text": 16,
    "auto": 16,
}
MAX_WIDTH = 60


def shown_width(value: Any, number_format: str | None = None) -> int:
    """Roughly how many characters a cell shows: what a column must be wide enough for."""
    if value is None:
        return 0
    if isinstance(value, bool):
        return 5
    if isinstance(value, int | float | Decimal):
        number = float(value)
        if number_format and number_format.endswith("%"):
            decimals = number_format.count("0") - 1
            return len(f"{number * 100:.{decimals}f}%")
        if number_format == MONEY_FORMAT:
            return len(f"{number:,.2f}")
        if number_format and "." in number_format:
            return len(f"{number:.{len(number_format.split('.')[1])}f}")
        return len(f"{number:g}" if isinstance(value, float) else str(value))
    if isinstance(value, datetime):
        return 19
    if isinstance(value, date):
        return 10
    return max((len(part) for part in str(value).splitlines()), default=0)


def column_width(characters: int, bold: bool = False) -> float:
    """A column width (in Excel's character units) that shows `characters` without cutting:
    a little padding, bold text being wider."""
    return float(min(MAX_WIDTH, round(characters * (1.1 if bold else 1.0)) + 2))


def print_one_page_wide(sheet: Any, title_rows: str | None = None) -> None:
    """Landscape, scaled to one page wide (as many pages down as it takes), the header rows
    repeated on every printed page."""
    sheet.page_setup.orientation = "landscape"
    sheet.page_setup.fitToWidth = 1
    sheet.page_setup.fitToHeight = 0
    sheet.sheet_properties.pageSetUpPr.fitToPage = True
    if title_rows:
        sheet.print_title_rows = title_rows


def _typed(sheet: Any, value: Any, kind: str) -> Any:
    """A cell of a column's kind: values read back from a spool arrive as JSON text."""
    if value is None:
        return None
    if kind in ("money", "number") and isinstance(value, str):
        value = Decimal(value)
    elif kind == "datetime" and isinstance(value, str):
        value = datetime.fromisoformat(value.replace("Z", "+00:00"))
    elif kind == "date" and isinstance(value, str):
        value = date.fromisoformat(value)
    formats = {"money": MONEY_FORMAT, "datetime": DATETIME_FORMAT, "date": DATE_FORMAT}
    if kind in formats:
        # openpyxl loads only for XLSX work (cold start)
        from openpyxl.cell import WriteOnlyCell

        cell = WriteOnlyCell(sheet, value=float(value) if kind == "money" else _cell(value))
        cell.number_format = formats[kind]
        return cell
    return _cell(value)


def text_writer(fmt: str, columns: Sequence[str], rows: int = 0, framed: bool = True) -> Writer:
    """A text writer, possibly resumed after `rows` rows (its output continues seamlessly).

    Unframed writers produce a slice of a file: no CSV header, no JSON brackets; `glue` gives
    the bytes that join such slices into one file.
    """
    writers: dict[str, type[CsvWriter] | type[NdjsonWriter] | type[JsonWriter]] = {
        "csv": CsvWriter,
        "ndjson": NdjsonWriter,
        "json": JsonWriter,
    }
    if fmt not in writers:
        raise ValueError(f"{fmt!r} is not a text format")
    return writers[fmt](columns, rows, framed)


def glue(fmt: str, columns: Sequence[str], nonempty: Sequence[bool]) -> list[bytes]:
    """The bytes before each unframed slice, and after the last: len(nonempty) + 1 pieces.

    Concatenating glue[0], slice 0, glue[1], slice 1, ..., glue[-1] gives exactly the file one
    framed writer would have written for all rows.
    """
    pieces = [b""] * (len(nonempty) + 1)
    if fmt == "csv":
        header = CsvWriter(columns).finish()
        pieces[0] = header
    elif fmt == "json":
        seen = False
        for index, has_rows in enumerate(nonempty):
            if has_rows:
                pieces[index] = b",\n" if seen else b"[\n"
                seen = True
        pieces[-1] = b"\n]\n" if seen else b"[]\n"
    return pieces
