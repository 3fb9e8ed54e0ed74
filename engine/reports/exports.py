"""One report result ``{columns, rows, meta}`` in every output format.

    format  media type                                                          what
    json    application/json                                                    the result as is (exact decimals)
    csv     text/csv; charset=utf-8                                             UTF-8 with BOM, CRLF, exact decimals
    xlsx    application/vnd.openxmlformats-officedocument.spreadsheetml.sheet   one sheet (more past 1,048,576 rows)
    vega    application/vnd.vegalite.v5+json                                    Vega-Lite spec, data inlined
    png     image/png                                                           rendered offline (vl-convert)
    svg     image/svg+xml                                                       rendered offline (vl-convert)

Decisions (see README.md, "Outputs"):

- **CSV** starts with a UTF-8 byte-order mark: Excel opens a BOM-less UTF-8 file in the
  system's ANSI code page (GBK on Chinese Windows) and shows Chinese as mojibake; with the BOM
  it reads UTF-8. Python reads it with ``encoding="utf-8-sig"``. Decimals are written with all
  their digits in plain notation, never ``1E+3``.
- **Formula injection** (OWASP "CSV injection"): a *text* value whose first character is
  ``= + - @``, a tab, CR or LF, or the full-width ``＝ ＋ － ＠`` (an IME can turn these into
  formulas) is written to CSV with a leading ``'``; numbers are never altered (``-5`` stays a
  number). In XLSX such text is written with ``write_string`` (``strings_to_formulas`` is off
  anyway) in a cell with the *quote prefix* style, so it stays text even when a user edits the
  cell, and the value itself is unchanged.
- **XLSX numbers**: Excel holds numbers as doubles (15 significant digits). Integers and
  decimals with at most 15 significant digits are numbers with a format showing their scale
  (``#,##0.00``); a value with more digits (money over a trillion with cents...) is written as
  exact text, right-aligned, rather than silently losing digits. Dates are Excel dates;
  date-times stay ISO 8601 text with their offset (Excel has no time zones).
- **Chart limit**: ``vega``, ``png`` and ``svg`` are drawn from at most
  ``LOWCODE_REPORT_CHART_MAX_ROWS`` rows (default 1000); a longer result is 422
  ``report.too_many_rows_for_chart``. Every string of a chart spec is cleaned of the characters
  XML cannot hold (``charts.xml_safe``): vl-convert aborts the process on one.
- **Sheet limit**: a sheet holds 1,048,576 rows; a longer result continues on further sheets
  (``<name> (2)``...), each with the header row, never cut silently.
"""
from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from engine.errors import BadRequest, EngineError
from engine.jsoncodec import dumps

FORMATS = ("json", "csv", "xlsx", "vega", "png", "svg")
MEDIA_TYPES = {
    "json": "application/json",
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "vega": "application/vnd.vegalite.v5+json",
    "png": "image/png",
    "svg": "image/svg+xml",
}
EXTENSIONS = {"json": "json", "csv": "csv", "xlsx": "xlsx", "vega": "vl.json", "png": "png", "svg": "svg"}
XLSX_MAX_ROWS = 1_048_576
"""Rows of one Excel sheet, header included."""
EXCEL_DIGITS = 15
"""Significant digits a spreadsheet number (an IEEE double) keeps exactly."""
CHART_FORMATS = frozenset({"vega", "png", "svg"})
CHART_MAX_ROWS = 1000
"""Default of ``LOWCODE_REPORT_CHART_MAX_ROWS``: the most rows a chart is drawn from."""
FORMULA_LEADS = frozenset("=+-@\t\r\n\uff1d\uff0b\uff0d\uff20")
_SHEET_FORBIDDEN = re.compile(r"[\[\]:*?/\\]")


class UnknownFormat(BadRequest):
    """``format`` names none of :data:`FORMATS`."""

    def __init__(self, requested: str) -> None:
        super().__init__("report.unknown_format", path="format",
                         params={"format": requested[:32], "expected": list(FORMATS)})


class TooManyRowsForChart(EngineError):
    """A chart (vega, png, svg) of more rows than ``LOWCODE_REPORT_CHART_MAX_ROWS``: drawing it
    would take the server seconds to minutes, and nobody reads such a chart."""

    status = 422

    def __init__(self, rows: int, limit: int) -> None:
        super().__init__("report.too_many_rows_for_chart", path="format", params={"rows": rows, "limit": limit})


@dataclass(frozen=True)
class ReportExport:
    """What :meth:`engine.Engine.export_report` returns."""

    content: bytes
    media_type: str
    filename: str
    format: str


def check_format(requested: str | None) -> str:
    name = (requested or "json").strip().lower()
    if name not in FORMATS:
        raise UnknownFormat(requested or "")
    return name


def export_result(spec: Any, result: Mapping[str, Any], requested: str | None, language: str = "en", *,
                  sheet_rows: int = XLSX_MAX_ROWS, chart_max_rows: int = CHART_MAX_ROWS) -> ReportExport:
    """``result`` of report ``spec`` in ``requested`` format (default json). A chart format of a
    result with more than ``chart_max_rows`` rows raises :class:`TooManyRowsForChart` (422)."""
    name = check_format(requested)
    if name in CHART_FORMATS and len(result["rows"]) > chart_max_rows:
        raise TooManyRowsForChart(len(result["rows"]), chart_max_rows)
    key = str(result.get("meta", {}).get("report") or getattr(spec, "key", "report"))
    if name == "json":
        content = dumps(result).encode("utf-8")
    elif name == "csv":
        content = to_csv(result)
    elif name == "xlsx":
        content = to_xlsx(result, sheet_name=key, sheet_rows=sheet_rows)
    else:
        from engine.reports import charts

        vl_spec = charts.vega_lite(spec, result, language)
        if name == "vega":
            content = dumps(vl_spec).encode("utf-8")
        elif name == "png":
            content = charts.render_png(vl_spec)
        else:
            content = charts.render_svg(vl_spec)
    return ReportExport(content, MEDIA_TYPES[name], f"{key}.{EXTENSIONS[name]}", name)


# -- CSV -----------------------------------------------------------------------------------------


def is_formula_like(text: str) -> bool:
    """Whether a spreadsheet could read ``text`` as a formula (or DDE command)."""
    return bool(text) and text[0] in FORMULA_LEADS


def csv_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Decimal):
        text = format(value, "f")
        return "0" if text in ("-0", "") else text
    if isinstance(value, (int, float)):
        return repr(value) if isinstance(value, float) else str(value)
    text = value if isinstance(value, str) else dumps(value)
    return "'" + text if is_formula_like(text) else text


def to_csv(result: Mapping[str, Any]) -> bytes:
    """RFC 4180 CSV (CRLF, fields quoted when needed) in UTF-8 with a BOM; header = the column
    names."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow([str(column["name"]) for column in result["columns"]])
    for row in result["rows"]:
        writer.writerow([csv_cell(value) for value in row])
    return ("\ufeff" + buffer.getvalue()).encode("utf-8")


# -- XLSX ----------------------------------------------------------------------------------------


def _significant_digits(value: Decimal | int) -> int:
    if isinstance(value, int):
        return len(str(abs(value))) if value else 1
    digits = value.normalize().as_tuple().digits
    return max(len(digits), 1)


def _sheet_names(base: str, count: int) -> list[str]:
    clean = _SHEET_FORBIDDEN.sub("_", base).strip("'") or "report"
    names = []
    for index in range(count):
        suffix = "" if index == 0 else f" ({index + 1})"
        names.append(clean[: 31 - len(suffix)] + suffix)
    return names


def _chunks(rows: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    if not rows:
        yield rows
        return
    for start in range(0, len(rows), size):
        yield rows[start:start + size]


def to_xlsx(result: Mapping[str, Any], *, sheet_name: str = "report", sheet_rows: int = XLSX_MAX_ROWS) -> bytes:
    """The result as an XLSX workbook; ``sheet_rows`` (header included) is Excel's limit, lower
    in tests."""
    import xlsxwriter

    if sheet_rows < 2:
        raise ValueError("a sheet needs room for the header and one row")
    columns = [(str(column["name"]), str(column["type"])) for column in result["columns"]]
    rows: Sequence[Sequence[Any]] = result["rows"]
    buffer = io.BytesIO()
    workbook = xlsxwriter.Workbook(buffer, {
        "in_memory": True,
        "strings_to_formulas": False,
        "strings_to_urls": False,
        "strings_to_numbers": False,
        "nan_inf_to_errors": True,
    })
    header = workbook.add_format({"bold": True})
    as_text = workbook.add_format({"quote_prefix": True})
    exact_text = workbook.add_format({"quote_prefix": True, "align": "right"})
    a_date = workbook.add_format({"num_format": "yyyy-mm-dd"})
    scaled: dict[int, Any] = {}

    def number_format(scale: int) -> Any:
        if scale not in scaled:
            pattern = "#,##0" + ("." + "0" * scale if scale > 0 else "")
            scaled[scale] = workbook.add_format({"num_format": pattern})
        return scaled[scale]

    per_sheet = sheet_rows - 1
    chunks = list(_chunks(rows, per_sheet))
    for sheet_title, chunk in zip(_sheet_names(sheet_name, len(chunks)), chunks):
        sheet = workbook.add_worksheet(sheet_title)
        for col, (name, _type) in enumerate(columns):
            sheet.write_string(0, col, name, header)
            sheet.set_column(col, col, max(10, min(40, len(name) + 2)))
        sheet.freeze_panes(1, 0)
        for offset, row in enumerate(chunk, start=1):
            for col, value in enumerate(row):
                kind = columns[col][1] if col < len(columns) else "string"
                _write(sheet, offset, col, value, kind, as_text, exact_text, a_date, number_format)
    workbook.close()
    return buffer.getvalue()


def _write(sheet: Any, row: int, col: int, value: Any, kind: str, as_text: Any, exact_text: Any,
           a_date: Any, number_format: Any) -> None:
    if value is None:
        return
    if isinstance(value, bool):
        sheet.write_boolean(row, col, value)
    elif isinstance(value, (int, Decimal)):
        exact = Decimal(value)
        if not exact.is_finite():
            sheet.write_string(row, col, str(value), exact_text)
        elif _significant_digits(value) > EXCEL_DIGITS:
            text = format(exact, "f")
            sheet.write_string(row, col, "0" if text in ("-0", "") else text, exact_text)
        else:
            scale = max(0, -exact.as_tuple().exponent) if isinstance(value, Decimal) else 0  # type: ignore[operator]
            sheet.write_number(row, col, float(exact), number_format(min(scale, 30)))
    elif isinstance(value, float):
        sheet.write_number(row, col, value)
    elif isinstance(value, str):
        if kind == "date":
            try:
                sheet.write_datetime(row, col, date.fromisoformat(value), a_date)
                return
            except ValueError:
                pass
        sheet.write_string(row, col, value, as_text if is_formula_like(value) else None)
    else:
        text = dumps(value)
        sheet.write_string(row, col, text, as_text if is_formula_like(text) else None)


__all__ = ["CHART_FORMATS", "CHART_MAX_ROWS", "EXCEL_DIGITS", "FORMATS", "MEDIA_TYPES", "ReportExport",
           "TooManyRowsForChart", "UnknownFormat", "XLSX_MAX_ROWS",
           "check_format", "csv_cell", "export_result", "is_formula_like", "to_csv", "to_xlsx"]
