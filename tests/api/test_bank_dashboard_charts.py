"""Every report of every bank dashboard can be fetched as a chart (PNG and SVG, in both
languages) once the bank has a few records of each kind, and the chart draws the same rows the
JSON result has."""
from __future__ import annotations

import json
from typing import Any

import pytest

from engine.jsoncodec import loads

from tests.conftest import BANK

DASHBOARDS = sorted(path.stem for path in (BANK / "dashboards").glob("*.json"))
STAFF = {"X-User": "mgr-01", "X-Roles": "account_manager"}


def _reports_of(dashboard: str) -> list[str]:
    document = json.loads((BANK / "dashboards" / f"{dashboard}.json").read_text(encoding="utf-8"))
    return [entry["report"] for entry in document["reports"]]


@pytest.fixture
def bank_with_records(bank_client: Any) -> Any:
    customer = bank_client.post("/api/v1/forms/customer/records", json={
        "company_name": "Fujian Example Trading Co., Ltd.", "uscc": "91350100M000100Y43", "region": "Fujian",
        "industry_code": "423840", "employees": 45, "risk_level": "low"}).json()["id"]
    for requested in ("2500000.00", "2200000.00"):
        response = bank_client.post("/api/v1/forms/credit_limit_adjustment/records", headers={"X-User": "applicant-1"},
                                    content=f'{{"customer_id": "{customer}", "current_limit": 2000000.00, '
                                            f'"requested_limit": {requested}, "risk_rating": "medium", '
                                            f'"reason": "Seasonal working capital"}}')
        assert response.status_code == 201, response.text
    tasks = bank_client.get("/api/v1/tasks", params={"role": "account_manager"}, headers=STAFF).json()["items"]
    assert bank_client.post(f"/api/v1/tasks/{tasks[0]['id']}/approve", headers=STAFF, json={}).status_code == 200
    for day, score in (("2024-03-01", 9), ("2024-03-02", 4), ("2024-04-10", 10)):
        response = bank_client.post("/api/v1/forms/complaint/records", json={
            "customer_id": customer, "received_on": day, "channel": "web", "product": "Checking account",
            "issue": "Fee charged twice", "satisfaction": score})
        assert response.status_code == 201, response.text
    return bank_client


def test_the_bank_has_dashboards_to_draw() -> None:
    assert DASHBOARDS == ["complaints", "customer_value", "satisfaction", "service_efficiency"]


@pytest.mark.parametrize("dashboard", DASHBOARDS)
def test_every_dashboard_report_draws_as_png_and_svg(bank_with_records: Any, dashboard: str) -> None:
    client = bank_with_records
    assert client.get(f"/api/v1/dashboards/{dashboard}", headers=STAFF).status_code == 200
    drawn = 0
    for report in _reports_of(dashboard):
        rows = loads(client.get(f"/api/v1/reports/{report}", headers=STAFF).content)["rows"]
        drawn += len(rows)
        spec = loads(client.get(f"/api/v1/reports/{report}?format=vega", headers=STAFF).content)
        assert len(spec["data"]["values"]) == len(rows), report
        for language in ("zh-CN", "en"):
            png = client.get(f"/api/v1/reports/{report}?format=png", headers={**STAFF, "Accept-Language": language})
            assert png.status_code == 200, (report, png.text[:300])
            assert png.headers["content-type"] == "image/png" and png.content.startswith(b"\x89PNG\r\n\x1a\n")
        svg = client.get(f"/api/v1/reports/{report}?format=svg", headers={**STAFF, "Accept-Language": "zh-CN"})
        assert svg.status_code == 200 and svg.headers["content-type"].startswith("image/svg+xml")
        assert b"<svg" in svg.content[:500]
    assert drawn > 0, f"{dashboard}: no report had a row to draw"
