"""Report sources beyond records (process instances and tasks, with SLA breaches), joins through
references, query-time parameters, drill and dashboards over HTTP, on the bank example."""
from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest

from engine import Engine, FakeClock
from engine.errors import DefinitionInvalid
from engine.security import Principal

AGENT = Principal("cs-01", frozenset({"customer_service"}))
OTHER_AGENT = Principal("cs-02", frozenset({"customer_service"}))
CUSTOMER = Principal("cust-42", frozenset({"customer"}))


def complaint(bank: Engine, **extra: Any) -> dict[str, Any]:
    data = {"received_on": "2026-01-05", "product": "Checking account", "issue": "Fees",
            "channel": "web", **extra}
    return bank.submit("complaint", data, CUSTOMER)


def open_task(bank: Engine, record: dict[str, Any]) -> str:
    (task,) = [t for t in bank.instance(record["instances"][0]["id"])["tasks"] if t["status"] == "open"]
    return str(task["id"])


@pytest.fixture
def handled(bank: Engine, clock: FakeClock) -> Engine:
    """Three complaints at 2026-01-05 01:00Z: one resolved after 2 h, one after 50 h (past its
    48 h SLA), one still open at 50 h (past due too)."""
    first, second, third = complaint(bank), complaint(bank), complaint(bank)
    tasks = [open_task(bank, record) for record in (first, second, third)]
    clock.advance(timedelta(hours=2))
    bank.act(tasks[0], "resolve", AGENT, "Refunded")
    clock.advance(timedelta(hours=48))
    bank.act(tasks[1], "resolve", OTHER_AGENT, "Explained the fee")
    return bank


def test_tasks_by_step_with_durations_and_overdue_rate(handled: Engine) -> None:
    result = handled.run_report("service_efficiency_by_step")

    names = [c["name"] for c in result["columns"]]
    rows = [dict(zip(names, row, strict=True)) for row in result["rows"]]
    assert result["meta"]["source"] == {"process": "complaint_handling", "of": "tasks"}
    assert rows == [
        {"step": "Handling", "tasks": 3, "completed": 2, "avg_hours": Decimal("26"),
         "median_hours": Decimal("26"), "p90_hours": Decimal("45.2"),  # 2 + 0.9 * 48
         "overdue_rate": Decimal("0.6666666667")},  # the late one and the open one
        # The two resolved complaints wait for the customer (7 days): open, not overdue.
        {"step": "Customer confirmation", "tasks": 2, "completed": 0, "avg_hours": None,
         "median_hours": None, "p90_hours": None, "overdue_rate": Decimal("0")},
    ]
    zh = handled.run_report("service_efficiency_by_step", language="zh-CN")
    assert [row[0] for row in zh["rows"]] == ["客服处理", "客户确认"]


def test_drill_from_step_into_assignees(handled: Engine) -> None:
    result = handled.run_report("service_efficiency_by_step", {"drill": "step:Handling"})

    assert [c["name"] for c in result["columns"]][:3] == ["assignee", "tasks", "completed"]
    assert [row[:3] for row in result["rows"]] == [["cs-01", 1, 1], ["cs-02", 1, 1], [None, 1, 0]]
    assert result["meta"]["drill"]["path"] == [{"dimension": "step", "value": "Handling"}]
    by_key = handled.run_report("service_efficiency_by_step", {"drill": "step:handle"})
    assert by_key["rows"] == result["rows"]  # the raw value works as well as its label


def test_created_period_parameter_on_tasks(handled: Engine) -> None:
    # All tasks were created on 2026-01-05 (Shanghai) or, for confirmations, later that week.
    none = handled.run_report("service_efficiency_by_step", {"period": "2025-12-01..2025-12-31"})
    assert none["rows"] == []
    some = handled.run_report("service_efficiency_by_step", {"period": "2026-01-05..2026-01-05"})
    assert [row[:2] for row in some["rows"]] == [["Handling", 3], ["Customer confirmation", 1]]


def test_instances_source_with_outcome_and_duration(handled: Engine, clock: FakeClock) -> None:
    archived = complaint(handled, handled_on="2026-01-06", timely=True)
    assert archived["instances"][0]["status"] == "completed"
    handled.upload({
        "kind": "report", "key": "complaint_cases", "title": "Cases",
        "source": {"process": "complaint_handling"},
        "dimensions": [{"name": "status", "field": "status"}, {"name": "state", "field": "state"},
                       {"name": "outcome", "field": "outcome"}],
        "measures": [{"name": "cases", "agg": "count"},
                     {"name": "products", "agg": "count_distinct", "field": "record.product"},
                     {"name": "max_hours", "agg": "max",
                      "duration": {"from": "started_at", "to": "ended_at", "unit": "hours"}}],
    })

    result = handled.run_report("complaint_cases")

    assert result["rows"] == [
        ["active", "customer_confirmation", None, 2, 1, None],
        ["active", "handle", None, 1, 1, None],
        ["completed", "archived", "imported_closed", 1, 1, Decimal("0")],
    ]


def test_join_through_a_reference(bank: Engine) -> None:
    fujian = bank.submit("customer", {"company_name": "Fujian Co.", "region": "Fujian"})["id"]
    hubei = bank.submit("customer", {"company_name": "Hubei Co.", "region": "Hubei"})["id"]
    for customer in (fujian, fujian, hubei):
        complaint(bank, customer_id=customer)
    complaint(bank)  # no customer: no region
    bank.upload({
        "kind": "report", "key": "complaints_by_region", "title": "By region",
        "source": {"form": "complaint"},
        "parameters": [{"name": "region", "type": "string"}],
        "dimensions": [{"name": "region", "field": "customer_id.region"}],
        "measures": [{"name": "complaints", "agg": "count"},
                     {"name": "customers", "agg": "count_distinct", "field": "customer_id"}],
        "filters": [{"field": "customer_id.region", "op": "eq", "param": "region"}],
    })

    assert bank.run_report("complaints_by_region")["rows"] == [
        ["Fujian", 2, 1], ["Hubei", 1, 1], [None, 1, 0]]
    assert bank.run_report("complaints_by_region", {"region": "Hubei"})["rows"] == [["Hubei", 1, 1]]


def test_a_join_must_go_through_a_reference_to_a_real_field(bank: Engine) -> None:
    with pytest.raises(DefinitionInvalid) as raised:
        bank.upload({
            "kind": "report", "key": "bad_join", "title": "x", "source": {"form": "complaint"},
            "dimensions": [{"name": "a", "field": "product.region"},
                           {"name": "b", "field": "customer_id.nope"}],
            "measures": [{"name": "n", "agg": "count"}],
        })
    assert [(i.path, i.code) for i in raised.value.issues] == [
        ("/dimensions/0/field", "definition.unknown_ref"),
        ("/dimensions/1/field", "definition.unknown_field")]
    with pytest.raises(DefinitionInvalid) as raised:
        bank.upload({"kind": "report", "key": "bad_process", "title": "x",
                     "source": {"process": "nope", "of": "tasks"},
                     "measures": [{"name": "n", "agg": "count"}]})
    assert [(i.path, i.code) for i in raised.value.issues] == [
        ("/source/process", "definition.unknown_process")]


# -- HTTP -----------------------------------------------------------------------------------------


def test_parameters_and_drill_over_http(handled: Engine, client: Any) -> None:
    ok = client.get("/api/v1/reports/service_efficiency_by_step",
                    params={"period": "2026-01-05..2026-01-05", "drill": "step:handle"})
    assert ok.status_code == 200, ok.text
    assert [row[:2] for row in ok.json()["rows"]] == [["cs-01", 1], ["cs-02", 1], [None, 1]]

    bad = client.get("/api/v1/reports/service_efficiency_by_step",
                     params={"period": "yesterday", "branch": "x"},
                     headers={"Accept-Language": "zh-CN"})
    assert bad.status_code == 422
    errors = sorted(bad.json()["errors"], key=lambda error: error["path"])
    assert [(e["path"], e["code"]) for e in errors] == [
        ("branch", "report.unknown_parameter"), ("period", "report.parameter_type")]
    assert errors[0]["message"] == "报表 service_efficiency_by_step 没有参数 branch"

    past = client.get("/api/v1/reports/service_efficiency_by_step",
                      params=[("drill", "step:handle"), ("drill", "assignee:cs-01")])
    assert past.status_code == 422
    assert past.json()["errors"][0]["code"] == "report.bad_drill"


def test_dashboard_over_http(handled: Engine, client: Any) -> None:
    response = client.get("/api/v1/dashboards/service_efficiency", params={"period": "2026-01-05..2026-01-06"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["dashboard"] == "service_efficiency"
    assert body["parameters"] == {"period": "2026-01-05..2026-01-06"}
    [item] = body["reports"]
    assert item["report"] == "service_efficiency_by_step"
    assert item["result"]["rows"][0][:3] == ["Handling", 3, 2]

    assert client.get("/api/v1/dashboards/nope").status_code == 404
    refused = client.get("/api/v1/dashboards/service_efficiency", params={"region": "x"})
    assert refused.status_code == 422
    assert refused.json()["errors"][0]["path"] == "region"


def test_dashboard_definitions_are_checked(bank: Engine) -> None:
    with pytest.raises(DefinitionInvalid) as raised:
        bank.upload({
            "kind": "dashboard", "key": "bad", "title": "Bad", "parameters": ["period", "region"],
            "reports": [{"report": "nope"}, {"report": "complaints_by_month"},
                        {"report": "customer_value_pyramid", "parameters": ["region", "ghost"]}],
        })
    assert [(i.path, i.code) for i in raised.value.issues] == [
        ("/reports/0/report", "definition.unknown_report"),
        ("/reports/1", "definition.shared_parameter_missing"),  # complaints_by_month: no region
        ("/reports/2/parameters/1", "definition.unknown_parameter"),
    ]
    bank.upload({"kind": "report", "key": "period_as_date", "title": "x", "source": {"form": "complaint"},
                 "parameters": [{"name": "period", "type": "date"}],
                 "measures": [{"name": "n", "agg": "count"}],
                 "filters": [{"field": "received_on", "op": "eq", "param": "period"}]})
    with pytest.raises(DefinitionInvalid) as raised:
        bank.upload({"kind": "dashboard", "key": "mixed", "title": "Mixed", "parameters": ["period"],
                     "reports": [{"report": "complaints_by_month"}, {"report": "period_as_date"}]})
    assert [(i.path, i.code) for i in raised.value.issues] == [
        ("/reports/1", "definition.shared_parameter_mismatch")]
