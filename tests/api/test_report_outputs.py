"""GET /api/v1/reports/{key}?format=...: the same result as JSON, CSV, XLSX, Vega-Lite, PNG, SVG."""
from __future__ import annotations

import copy
import json
from typing import Any

from engine.jsoncodec import loads

from tests.conftest import BANK

REPORT = "customers_by_region_industry"


def _customers(client: Any) -> None:
    for name, region in [("=HYPERLINK(\"http://x.example\")", "浙江"), ("Acme Ltd", "江苏"), ("Beta", "浙江")]:
        response = client.post("/api/v1/forms/customer/records", json={"company_name": name, "region": region})
        assert response.status_code == 201, response.text


def test_json_is_the_default_and_format_is_not_a_report_parameter(bank_client: Any) -> None:
    _customers(bank_client)
    plain = bank_client.get(f"/api/v1/reports/{REPORT}")
    as_json = bank_client.get(f"/api/v1/reports/{REPORT}?format=json")
    assert plain.status_code == as_json.status_code == 200
    assert plain.headers["content-type"].startswith("application/json")
    assert loads(plain.content) == loads(as_json.content)
    assert loads(plain.content)["rows"] == [["江苏", None, 1], ["浙江", None, 2]]


def test_csv_download(bank_client: Any) -> None:
    _customers(bank_client)
    response = bank_client.get(f"/api/v1/reports/{REPORT}?format=csv")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    assert response.headers["content-disposition"] == f'attachment; filename="{REPORT}.csv"'
    assert response.content.startswith(b"\xef\xbb\xbf")
    assert response.content.decode("utf-8-sig").split("\r\n")[:3] == ["region,industry_code,customers", "江苏,,1", "浙江,,2"]


def test_xlsx_download(bank_client: Any) -> None:
    _customers(bank_client)
    response = bank_client.get(f"/api/v1/reports/{REPORT}?format=xlsx")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    assert response.content.startswith(b"PK")


def test_vega_lite_in_the_request_language(bank_client: Any) -> None:
    _customers(bank_client)
    zh = loads(bank_client.get(f"/api/v1/reports/{REPORT}?format=vega", headers={"Accept-Language": "zh-CN"}).content)
    en = loads(bank_client.get(f"/api/v1/reports/{REPORT}?format=vega&lang=en",
                               headers={"Accept-Language": "zh-CN"}).content)
    assert zh["title"] == "分地区、行业客户数" and en["title"] == "Customers by region and industry"
    assert zh["encoding"]["x"] == {"field": "region", "title": "地区", "type": "nominal", "sort": None,
                                   "axis": {"labelAngle": 0}}
    assert en["encoding"]["x"]["title"] == "Region"
    assert zh["data"]["values"][1] == {"region": "浙江", "industry_code": None, "customers": 2}


def test_png_and_svg(bank_client: Any) -> None:
    _customers(bank_client)
    png = bank_client.get(f"/api/v1/reports/{REPORT}?format=png", headers={"Accept-Language": "zh-CN"})
    assert png.status_code == 200 and png.headers["content-type"] == "image/png"
    assert png.content.startswith(b"\x89PNG")
    svg = bank_client.get(f"/api/v1/reports/{REPORT}?format=svg", headers={"Accept-Language": "zh-CN"})
    assert svg.status_code == 200 and svg.headers["content-type"].startswith("image/svg+xml")
    assert "分地区、行业客户数" in svg.text
    assert svg.headers["x-content-type-options"] == "nosniff"
    assert "default-src 'none'" in svg.headers["content-security-policy"]


def test_an_unknown_format_is_400_with_path_code_and_message(bank_client: Any) -> None:
    response = bank_client.get(f"/api/v1/reports/{REPORT}?format=pdf", headers={"Accept-Language": "zh-CN"})
    assert response.status_code == 400
    (error,) = response.json()["errors"]
    assert (error["path"], error["code"]) == ("format", "report.unknown_format")
    assert error["message"].startswith("未知格式 pdf")


def test_an_unknown_report_is_404_in_every_format(bank_client: Any) -> None:
    assert bank_client.get("/api/v1/reports/nothing?format=png").status_code == 404


def test_the_python_api_returns_bytes_and_a_media_type(bank: Any) -> None:
    bank.submit("customer", {"company_name": "Acme Ltd", "region": "浙江"})
    export = bank.export_report(REPORT, "csv")
    assert export.media_type == "text/csv; charset=utf-8"
    assert export.filename == f"{REPORT}.csv"
    assert export.content.decode("utf-8-sig").startswith("region,industry_code,customers\r\n浙江,,1")


def _bank_report() -> dict[str, Any]:
    return json.loads((BANK / "reports" / f"{REPORT}.json").read_text(encoding="utf-8"))


def test_a_chart_naming_an_unknown_member_is_refused_at_upload(bank_client: Any) -> None:
    document = copy.deepcopy(_bank_report())
    document["chart"] = {"mark": "line", "x": "region", "y": "nobody"}
    response = bank_client.post("/api/v1/definitions", json=document, headers={"X-Roles": "admin"})
    assert response.status_code == 422, response.text
    assert [(e["path"], e["code"]) for e in response.json()["errors"]] == [("/chart/y", "definition.unknown_member")]


def test_a_chart_with_an_unknown_mark_breaks_the_meta_schema(bank_client: Any) -> None:
    document = copy.deepcopy(_bank_report())
    document["chart"] = {"mark": "pie3d"}
    response = bank_client.post("/api/v1/definitions", json=document, headers={"X-Roles": "admin"})
    assert response.status_code == 422
    assert response.json()["errors"][0]["code"] == "definition.schema"


def test_a_chart_section_is_used(bank_client: Any) -> None:
    _customers(bank_client)
    document = copy.deepcopy(_bank_report())
    document["chart"] = {"mark": "arc", "x": "region", "y": {"member": "customers", "title": {"zh-CN": "客户数"}},
                         "title": {"zh-CN": "客户分布", "en": "Customers"}}
    response = bank_client.post("/api/v1/definitions", json=document, headers={"X-Roles": "admin"})
    assert response.status_code in (200, 201), response.text
    chart = loads(bank_client.get(f"/api/v1/reports/{REPORT}?format=vega&lang=zh-CN").content)
    assert chart["title"] == "客户分布"
    assert chart["encoding"]["theta"]["title"] == "客户数"
    assert chart["encoding"]["color"]["field"] == "region"


def test_a_chart_of_too_many_rows_is_422_and_rendering_stays_off_the_event_loop(bank_client: Any, bank: Any) -> None:
    import dataclasses
    import inspect

    from engine.api import routes

    _customers(bank_client)
    bank.settings = dataclasses.replace(bank.settings, reports=dataclasses.replace(bank.settings.reports, chart_max_rows=1))
    for fmt in ("vega", "png", "svg"):
        response = bank_client.get(f"/api/v1/reports/{REPORT}?format={fmt}", headers={"Accept-Language": "zh-CN"})
        assert response.status_code == 422, response.text
        (error,) = response.json()["errors"]
        assert (error["path"], error["code"], error["params"]) == ("format", "report.too_many_rows_for_chart",
                                                                    {"rows": 2, "limit": 1})
        assert "下钻" in error["message"]
    assert bank_client.get(f"/api/v1/reports/{REPORT}?format=csv").status_code == 200
    # plain ``def`` routes: Starlette runs them in its thread pool, so a slow render never blocks /health
    assert not inspect.iscoroutinefunction(routes.get_report)
    assert not inspect.iscoroutinefunction(routes.get_dashboard)


def test_the_vega_lite_spec_names_no_outside_host(bank_client: Any) -> None:
    # Banks run isolated networks: nothing in a served spec may point a renderer at the internet.
    _customers(bank_client)
    spec = bank_client.get(f"/api/v1/reports/{REPORT}?format=vega").content
    assert b"http://" not in spec and b"https://" not in spec
    assert "$schema" not in loads(spec)
