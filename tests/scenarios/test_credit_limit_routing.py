"""The bank's credit-limit process over REST: instant approval, manager then risk countersign for
rises over 20 %, manager then branch review otherwise."""
from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from engine.jsoncodec import loads


def exact(response: Any) -> Any:
    """The body with decimals parsed exactly (``response.json()`` would go through float)."""
    return loads(response.content)

MANAGER = {"X-User": "mgr-01", "X-Roles": "account_manager"}
RISK_OFFICER = {"X-User": "risk-01", "X-Roles": "risk_officer"}
SECOND_RISK_OFFICER = {"X-User": "risk-02", "X-Roles": "risk_officer"}
BRANCH = {"X-User": "branch-01", "X-Roles": "branch_credit_reviewer"}


def _customer(client: Any) -> str:
    response = client.post("/api/v1/forms/customer/records", json={
        "company_name": "Shenzhen Example Trading Co., Ltd.", "uscc": "91350100M000100Y43",
        "region": "Guangdong", "industry_code": "423840", "employees": 45, "risk_level": "low"})
    assert response.status_code == 201, response.text
    return str(exact(response)["id"])


def _apply(client: Any, customer: str, current: str, requested: str, risk: str = "medium") -> dict[str, Any]:
    body = ('{"customer_id": "%s", "current_limit": %s, "requested_limit": %s, "risk_rating": "%s", '
            '"reason": "Seasonal working capital"}' % (customer, current, requested, risk))
    response = client.post("/api/v1/forms/credit_limit_adjustment/records", content=body,
                           headers={"Content-Type": "application/json"})
    assert response.status_code == 201, response.text
    return dict(exact(response))


def _open_tasks(client: Any, instance_id: str, role: str) -> list[dict[str, Any]]:
    tasks = client.get("/api/v1/tasks", params={"role": role}, headers={"X-User": "inbox", "X-Roles": role}).json()["items"]
    return sorted((task for task in tasks if task["instance_id"] == instance_id), key=lambda task: task["id"])


def _open_task(client: Any, instance_id: str, role: str) -> dict[str, Any]:
    tasks = client.get("/api/v1/tasks", params={"role": role}, headers={"X-User": "inbox", "X-Roles": role}).json()["items"]
    mine = [task for task in tasks if task["instance_id"] == instance_id]
    assert len(mine) == 1, tasks
    return dict(mine[0])


def test_small_low_risk_increase_is_approved_with_no_human_task(bank_client: Any) -> None:
    record = _apply(bank_client, _customer(bank_client), "1000000.00", "1050000.00", risk="low")
    assert record["data"]["increase_pct"] == Decimal("5.00")
    instance = record["instances"][0]
    assert (instance["status"], instance["outcome"], instance["state"]) == ("completed", "approved", "approved")
    detail = bank_client.get(f"/api/v1/instances/{instance['id']}").json()
    assert detail["tasks"] == []
    assert [(step["event"], step["from"], step["to"]) for step in detail["history"]] == [
        ("started", None, "triage"), ("transition", "triage", "approved"), ("ended", "approved", None)]


def test_rise_of_25_percent_goes_manager_then_risk_countersign(bank_client: Any) -> None:
    record = _apply(bank_client, _customer(bank_client), "2000000.00", "2500000.00")
    assert record["data"]["increase_pct"] == Decimal("25.00")
    instance_id = record["instances"][0]["id"]
    assert record["instances"][0]["state"] == "manager_review"

    task = _open_task(bank_client, instance_id, "account_manager")
    after = bank_client.post(f"/api/v1/tasks/{task['id']}/approve", json={"comment": "Good history"}, headers=MANAGER)
    assert after.status_code == 200, after.text
    assert after.json()["state"] == "risk_countersign"

    first, second = _open_tasks(bank_client, instance_id, "risk_officer")  # two officers must sign
    still = bank_client.post(f"/api/v1/tasks/{first['id']}/approve", headers=RISK_OFFICER).json()
    assert (still["state"], still["status"]) == ("risk_countersign", "active")  # countersign waits for all
    again = bank_client.post(f"/api/v1/tasks/{second['id']}/approve", headers=RISK_OFFICER)
    assert (again.status_code, again.json()["errors"][0]["code"]) == (403, "task.already_signed")
    done = bank_client.post(f"/api/v1/tasks/{second['id']}/approve", headers=SECOND_RISK_OFFICER).json()
    assert (done["state"], done["status"], done["outcome"]) == ("approved", "completed", "approved")
    assert [step["to"] for step in done["history"] if step["event"] == "transition"] == [
        "manager_review", "risk_countersign", "approved"]


def test_rise_of_10_percent_goes_manager_then_branch_review(bank_client: Any) -> None:
    record = _apply(bank_client, _customer(bank_client), "3000000.00", "3300000.00", risk="medium")
    assert record["data"]["increase_pct"] == Decimal("10.00")
    instance_id = record["instances"][0]["id"]
    task = _open_task(bank_client, instance_id, "account_manager")
    moved = bank_client.post(f"/api/v1/tasks/{task['id']}/approve", headers=MANAGER).json()
    assert moved["state"] == "branch_credit_review"
    review = _open_task(bank_client, instance_id, "branch_credit_reviewer")
    done = bank_client.post(f"/api/v1/tasks/{review['id']}/reject", json={"comment": "Collateral too thin"}, headers=BRANCH).json()
    assert (done["status"], done["outcome"]) == ("completed", "rejected")


def test_countersign_reject_by_one_decides_at_once_and_cancels_the_other(bank_client: Any) -> None:
    record = _apply(bank_client, _customer(bank_client), "1000000.00", "1500000.00")
    instance_id = record["instances"][0]["id"]
    task = _open_task(bank_client, instance_id, "account_manager")
    bank_client.post(f"/api/v1/tasks/{task['id']}/approve", headers=MANAGER)
    officer = _open_tasks(bank_client, instance_id, "risk_officer")[0]
    done = bank_client.post(f"/api/v1/tasks/{officer['id']}/reject", headers=RISK_OFFICER).json()
    assert done["outcome"] == "rejected"
    statuses = sorted((t["state"], t["status"]) for t in done["tasks"])
    assert statuses == [("manager_review", "completed"), ("risk_countersign", "cancelled"), ("risk_countersign", "completed")]


def test_acting_without_the_role_is_forbidden_and_changes_nothing(bank_client: Any) -> None:
    record = _apply(bank_client, _customer(bank_client), "1000000.00", "1300000.00")
    task = _open_task(bank_client, record["instances"][0]["id"], "account_manager")
    response = bank_client.post(f"/api/v1/tasks/{task['id']}/approve", headers=BRANCH)
    assert response.status_code == 403
    assert response.json()["errors"][0]["code"] == "task.not_assignee"
    assert bank_client.get(f"/api/v1/tasks/{task['id']}").json()["status"] == "open"


def test_exactly_20_005_percent_rounds_to_20_01_and_needs_the_risk_countersign(bank_client: Any) -> None:
    record = _apply(bank_client, _customer(bank_client), "103000.00", "123605.15")
    assert record["data"]["increase_pct"] == Decimal("20.01")
    task = _open_task(bank_client, record["instances"][0]["id"], "account_manager")
    moved = bank_client.post(f"/api/v1/tasks/{task['id']}/approve", headers=MANAGER).json()
    assert moved["state"] == "risk_countersign"


def test_unknown_action_is_404_with_the_available_ones(bank_client: Any) -> None:
    record = _apply(bank_client, _customer(bank_client), "1000000.00", "1300000.00")
    task = _open_task(bank_client, record["instances"][0]["id"], "account_manager")
    response = bank_client.post(f"/api/v1/tasks/{task['id']}/escalate", headers=MANAGER)
    assert response.status_code == 404
    assert response.json()["errors"][0]["code"] == "task.unknown_action"


def test_acting_twice_on_one_task_gets_409(bank_client: Any) -> None:
    record = _apply(bank_client, _customer(bank_client), "1000000.00", "1300000.00")
    task = _open_task(bank_client, record["instances"][0]["id"], "account_manager")
    assert bank_client.post(f"/api/v1/tasks/{task['id']}/approve", headers=MANAGER).status_code == 200
    again = bank_client.post(f"/api/v1/tasks/{task['id']}/reject", headers=MANAGER)
    assert again.status_code == 409
    assert again.json()["errors"][0]["code"] == "task.not_open"


@pytest.mark.parametrize("current,requested,expected_state", [
    ("0", "500000.00", "manager_review"),          # a new limit is never auto-approved
    ("1000000.00", "1100000.00", "approved"),      # exactly 10 %, low risk
    ("1000000.00", "1100000.01", "approved"),      # 10.000001 % is stored rounded: 10.00
    ("1000000.00", "1100100.00", "manager_review"),  # 10.01 %
    ("1000000.00", "1010000.00", "manager_review"),  # not low risk below
    ("103000.00", "113305.15", "manager_review"),    # exactly 10.005 %: rounds half up to 10.01
])
def test_auto_approval_edges(bank_client: Any, current: str, requested: str, expected_state: str) -> None:
    risk = "medium" if requested == "1010000.00" else "low"
    record = _apply(bank_client, _customer(bank_client), current, requested, risk=risk)
    assert record["instances"][0]["state"] == expected_state


def test_an_auto_approved_request_cannot_be_rewritten_afterwards(bank_client: Any) -> None:
    """A 5 % rise is approved by the rules at once; a PATCH to 90,000,000 must not leave an
    "approved" record that says 89,900 %."""
    record = _apply(bank_client, _customer(bank_client), "100000.00", "105000.00", risk="low")
    assert (record["instances"][0]["outcome"], record["data"]["increase_pct"]) == ("approved", Decimal("5.00"))
    response = bank_client.patch(f"/api/v1/records/{record['id']}", json={"requested_limit": 90000000},
                                 headers={"If-Match": '"1"', "Content-Type": "application/merge-patch+json"})
    assert response.status_code == 409, response.text
    assert [(e["path"], e["code"]) for e in response.json()["errors"]] == [("", "record.in_process")]
    stored = exact(bank_client.get(f"/api/v1/records/{record['id']}"))
    assert (stored["row_version"], stored["data"]["requested_limit"], stored["data"]["increase_pct"]) == (
        1, Decimal("105000.00"), Decimal("5.00"))
    assert stored["instances"][0]["outcome"] == "approved"


def test_a_request_under_review_cannot_be_rewritten_either(bank_client: Any) -> None:
    record = _apply(bank_client, _customer(bank_client), "1000000.00", "1100000.00")
    assert record["instances"][0]["status"] == "active"
    response = bank_client.patch(f"/api/v1/records/{record['id']}", json={"requested_limit": 1000001},
                                 headers={"If-Match": '"1"', "Content-Type": "application/merge-patch+json"})
    assert (response.status_code, response.json()["errors"][0]["code"]) == (409, "record.in_process")
    assert exact(bank_client.get(f"/api/v1/records/{record['id']}"))["row_version"] == 1
