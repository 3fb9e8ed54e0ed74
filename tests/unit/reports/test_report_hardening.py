"""Hostile inputs to reports: chart text XML cannot hold, charts of too many rows, totals over
38 digits, filter values finer than their decimal column, reserved and ill-written parameters."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from decimal import Decimal
from pathlib import Path

import pytest

from engine.errors import DefinitionInvalid, EngineError, ValidationFailed
from engine.jsoncodec import loads
from engine.reports import run_report
from engine.reports.charts import xml_safe
from engine.reports.dashboard import DashboardItem, DashboardSpec, run_dashboard
from engine.reports.exports import TooManyRowsForChart, export_result
from engine.reports.safety import ReportOverflow
from engine.reports.settings import ReportSettings

ROOT = Path(__file__).resolve().parents[3]
BAD_CHARACTERS = [chr(c) for c in [*range(0x01, 0x09), 0x0B, 0x0C, *range(0x0E, 0x20), 0xFFFE, 0xFFFF, 0xD800, 0xDFFF]]
HUGE = Decimal("999999999999999999999999999999999999.99")


# -- 1. control characters in chart text ------------------------------------------------------

_RENDER = textwrap.dedent("""
    import sys
    from engine.forms.spec import ColumnSpec, FormSpec
    from engine.reports import compile_report
    from engine.reports.exports import export_result

    BAD = [chr(c) for c in [*range(0x01, 0x09), 0x0B, 0x0C, *range(0x0E, 0x20), 0xFFFE, 0xFFFF, 0xD800, 0xDFFF]]
    form = FormSpec(key="ticket", version=1, title="t", schema={"type": "object", "properties": {}}, validator=None,
                    columns=(ColumnSpec("product", "string"),), computed=(), rules=(), refs={}, decimals=(), process=None)
    spec = compile_report({"kind": "report", "key": "bad_text", "title": "T\\x01itle\\ud800",
                           "source": {"form": "ticket"}, "dimensions": [{"name": "product", "field": "product",
                           "title": "P\\x1f"}], "measures": [{"name": "rows", "agg": "count", "title": "R\\uffff"}]},
                          form, 1)
    result = {"columns": [{"name": "product", "type": "string"}, {"name": "rows", "type": "integer"}],
              "rows": [[f"item{c}{index}", index + 1] for index, c in enumerate(BAD)],
              "meta": {"report": "bad_text", "version": 1}}
    fmt = sys.argv[1]
    content = export_result(spec, result, fmt).content
    assert content.startswith(b"\\x89PNG" if fmt == "png" else b"<svg"), content[:20]
    print("OK", len(content))
""")


@pytest.mark.parametrize("fmt", ["png", "svg"])
def test_control_characters_in_chart_text_render_instead_of_aborting(fmt: str) -> None:
    """vl-convert panics (and aborts the whole process) on text XML cannot hold: the render runs
    in a child process so the test sees the abort as a failure, not as pytest dying."""
    done = subprocess.run([sys.executable, "-c", _RENDER, fmt], cwd=ROOT, capture_output=True, text=True,
                          timeout=180)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.startswith("OK")


def test_xml_safe_replaces_every_character_xml_cannot_hold() -> None:
    for character in BAD_CHARACTERS:
        assert xml_safe({f"k{character}": [f"a{character}b", (1, Decimal("2.5"))]}) == {
            "k\ufffd": ["a\ufffdb", [1, Decimal("2.5")]]}
    assert xml_safe("tab\tlf\ncr\r 中文 \U0001F600") == "tab\tlf\ncr\r 中文 \U0001F600"


def test_the_vega_output_is_clean_too(forms, report) -> None:
    form = forms.add("ticket", [("product", "string")])
    spec = report(form, title="Bad\x07", dimensions=[{"name": "product", "field": "product"}])
    result = {"columns": [{"name": "product", "type": "string"}, {"name": "rows", "type": "integer"}],
              "rows": [["a\x01b", 1]], "meta": {"report": "test_report", "version": 1}}
    document = loads(export_result(spec, result, "vega").content)
    assert document["data"]["values"] == [{"product": "a\ufffdb", "rows": 1}]
    assert document["title"] == "Bad\ufffd"
    assert loads(export_result(spec, result, "json").content)["rows"] == [["a\x01b", 1]]  # json stays exact


# -- 2. chart row cap -----------------------------------------------------------------------


def test_a_chart_of_more_rows_than_the_limit_is_refused(forms, report) -> None:
    form = forms.add("ticket", [("product", "string")])
    spec = report(form, dimensions=[{"name": "product", "field": "product"}])
    result = {"columns": [{"name": "product", "type": "string"}, {"name": "rows", "type": "integer"}],
              "rows": [[f"p{i}", i] for i in range(11)], "meta": {"report": "test_report", "version": 1}}
    for fmt in ("vega", "png", "svg"):
        with pytest.raises(TooManyRowsForChart) as caught:
            export_result(spec, result, fmt, chart_max_rows=10)
        assert caught.value.status == 422
        assert (caught.value.code, dict(caught.value.params)) == ("report.too_many_rows_for_chart",
                                                                  {"rows": 11, "limit": 10})
        assert "limit" in caught.value.issues[0].message("en") and "下钻" in caught.value.issues[0].message("zh-CN")
    assert export_result(spec, result, "csv", chart_max_rows=10).content  # tables have no such cap
    assert export_result(spec, {**result, "rows": result["rows"][:10]}, "vega", chart_max_rows=10).content


def test_the_chart_row_limit_setting() -> None:
    assert ReportSettings().chart_max_rows == 1000
    assert ReportSettings.from_environ({"LOWCODE_REPORT_CHART_MAX_ROWS": "250"}).chart_max_rows == 250
    for bad in ("0", "ten", "1e3", "\u0661\u0660"):
        with pytest.raises(ValueError, match="LOWCODE_REPORT_CHART_MAX_ROWS"):
            ReportSettings.from_environ({"LOWCODE_REPORT_CHART_MAX_ROWS": bad})


# -- 3. totals over 38 digits -------------------------------------------------------------------


def test_a_sum_over_38_digits_is_a_clear_422(forms, writer, mirror, report) -> None:
    form = forms.add("payment", [("amount", "decimal", 2)])
    writer.add("payment", {"amount": HUGE})
    writer.add("payment", {"amount": HUGE})
    for agg in ("sum", "avg"):
        spec = report(form, measures=[{"name": "total", "agg": agg, "field": "amount"}])
        with pytest.raises(ReportOverflow) as caught:
            run_report(mirror, spec)
        assert caught.value.status == 422 and caught.value.code == "report.overflow"
        assert caught.value.params["report"] == "test_report"
        assert "38" in caught.value.issues[0].message("en") and "38" in caught.value.issues[0].message("zh-CN")
    # the mirror still answers afterwards
    assert run_report(mirror, report(form))["rows"] == [[2]]


def test_a_dashboard_fails_with_the_error_naming_the_failing_report() -> None:
    spec = DashboardSpec("board", 1, "Board", (), (DashboardItem("fine"), DashboardItem("broken")))

    def run(key, _params):
        if key == "broken":
            raise ReportOverflow()
        return {"rows": []}

    with pytest.raises(EngineError) as caught:
        run_dashboard(spec, run)
    assert caught.value.code == "report.overflow" and caught.value.params["report"] == "broken"


# -- 4. filter values finer than the decimal column --------------------------------------------


def test_a_literal_filter_finer_than_the_column_is_refused_at_upload(forms, report) -> None:
    form = forms.add("payment", [("amount", "decimal", 2)])
    with pytest.raises(DefinitionInvalid) as caught:
        report(form, filters=[{"field": "amount", "op": "gt", "value": 0.125},
                              {"field": "amount", "op": "in", "value": [1, 0.001]}])
    issues = {(issue.path, issue.code) for issue in caught.value.issues}
    assert issues == {("/filters/0/value", "definition.bad_value"), ("/filters/1/value/1", "definition.bad_value")}
    assert "at most 2 fraction digits" in caught.value.issues[0].message("en")


def test_a_tier_bound_finer_than_the_column_is_refused_at_upload(forms, report) -> None:
    form = forms.add("payment", [("amount", "decimal", 2)])
    with pytest.raises(DefinitionInvalid) as caught:
        report(form, dimensions=[{"name": "size", "field": "amount",
                                  "tiers": [{"below": 0.005, "label": "tiny"}, {"label": "rest"}]}])
    assert [(i.path, i.code) for i in caught.value.issues] == [("/dimensions/0/tiers/0/below", "definition.bad_value")]


def test_values_at_the_column_scale_compare_exactly_with_huge_stored_values(forms, writer, mirror, report) -> None:
    form = forms.add("payment", [("amount", "decimal", 2)])
    writer.add("payment", {"amount": HUGE})
    writer.add("payment", {"amount": Decimal("0.12")})
    writer.add("payment", {"amount": Decimal("0.13")})
    literal = report(form, filters=[{"field": "amount", "op": "gt", "value": 0.120}])  # 0.120 is 0.12: fits
    assert run_report(mirror, literal)["rows"] == [[2]]
    tiers = report(form, dimensions=[{"name": "size", "field": "amount",
                                      "tiers": [{"below": 0.13, "label": "small"}, {"label": "big"}]}])
    assert run_report(mirror, tiers)["rows"] == [["small", 1], ["big", 2]]


def test_a_number_parameter_finer_than_the_column_is_422_at_the_parameter(forms, writer, mirror, report) -> None:
    form = forms.add("payment", [("amount", "decimal", 2)])
    writer.add("payment", {"amount": HUGE})
    writer.add("payment", {"amount": Decimal("0.13")})
    spec = report(form, parameters=[{"name": "above", "type": "number"}],
                  filters=[{"field": "amount", "op": "gt", "param": "above"}])
    with pytest.raises(ValidationFailed) as caught:
        run_report(mirror, spec, {"above": "0.125"})
    (issue,) = caught.value.issues
    assert (issue.path, issue.code, issue.params["scale"]) == ("above", "report.bad_parameter", 2)
    assert "中" not in issue.message("en") and "2" in issue.message("zh-CN")
    assert run_report(mirror, spec, {"above": "0.120"})["rows"] == [[2]]
    assert run_report(mirror, spec, {"above": "0.13"})["rows"] == [[1]]


# -- 5. reserved parameter names ----------------------------------------------------------------


@pytest.mark.parametrize("name", ["format", "drill", "lang", "language"])
def test_a_reserved_parameter_name_is_refused_at_upload(forms, report, name: str) -> None:
    form = forms.add("ticket", [("product", "string")])
    with pytest.raises(DefinitionInvalid) as caught:
        report(form, parameters=[{"name": "fine", "type": "string"}, {"name": name, "type": "string"}])
    assert [(i.path, i.code) for i in caught.value.issues] == [("/parameters/1/name", "definition.reserved_name")]
    assert name in caught.value.issues[0].message("zh-CN")


# -- 6. strict numbers and single values ------------------------------------------------------


@pytest.mark.parametrize("text", ["\u0661", "\uff11", "1_0", "1e3", "+1", "0x1", "١.٥", "1.\uff15", "", " "])
def test_query_string_numbers_are_ascii_digits_only(forms, writer, mirror, report, text: str) -> None:
    form = forms.add("payment", [("count", "integer"), ("amount", "decimal", 2)])
    writer.add("payment", {"count": 1, "amount": Decimal("1.50")})
    spec = report(form, parameters=[{"name": "n", "type": "integer"}, {"name": "x", "type": "number"}],
                  filters=[{"field": "count", "op": "eq", "param": "n"}, {"field": "amount", "op": "gte", "param": "x"}])
    for name in ("n", "x"):
        with pytest.raises(ValidationFailed) as caught:
            run_report(mirror, spec, {name: text})
        assert [(i.path, i.code) for i in caught.value.issues] == [(name, "report.parameter_type")]
    assert run_report(mirror, spec, {"n": "1", "x": "-1.5"})["rows"] == [[1]]


def test_a_repeated_single_value_parameter_is_422(forms, writer, mirror, report) -> None:
    form = forms.add("ticket", [("product", "string")])
    writer.add("ticket", {"product": "a"})
    writer.add("ticket", {"product": "b"})
    spec = report(form, parameters=[{"name": "product", "type": "string"},
                                    {"name": "products", "type": "string", "multiple": True}],
                  filters=[{"field": "product", "op": "eq", "param": "product"},
                           {"field": "product", "op": "in", "param": "products"}])
    with pytest.raises(ValidationFailed) as caught:
        run_report(mirror, spec, {"product": ["a", "b"]})
    (issue,) = caught.value.issues
    assert (issue.path, issue.code, issue.params["count"]) == ("product", "report.repeated_parameter", 2)
    # a multiple parameter takes repeated values as one list
    assert run_report(mirror, spec, {"products": ["a", "b"]})["rows"] == [[2]]


def test_a_drill_value_is_ascii_digits_only(forms, writer, mirror, report) -> None:
    form = forms.add("payment", [("region", "string"), ("count", "integer")])
    writer.add("payment", {"region": "east", "count": 1})
    spec = report(form, dimensions=[{"name": "count", "field": "count"}, {"name": "region", "field": "region"}],
                  drill=["count", "region"])
    assert run_report(mirror, spec, {"drill": "count:1"})["rows"] == [["east", 1]]
    with pytest.raises(ValidationFailed):
        run_report(mirror, spec, {"drill": "count:\u0661"})
