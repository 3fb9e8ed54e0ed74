"""Object scope through the customer-insight views: a hostile account manager reading the 360
view of their own customer must not learn anything of a subsidiary managed by someone else —
not its records, and not its records folded into the profile's aggregates."""
from __future__ import annotations

from typing import Any

from engine import Engine

ADMIN = {"X-User": "admin-1", "X-Roles": "admin"}
MANAGER_A = {"X-User": "am-a", "X-Roles": "account_manager"}
RISK = {"X-User": "risk-1", "X-Roles": "risk_officer"}


def _post(client: Any, form: str, data: dict[str, Any]) -> str:
    response = client.post(f"/api/v1/forms/{form}/records", json=data, headers=ADMIN)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def test_a_foreign_subsidiarys_records_do_not_count_in_the_own_customers_aggregates(bank_roles: Engine,
                                                                                     client: Any) -> None:
    parent = _post(client, "customer", {"company_name": "Parent Co", "account_manager": "am-a", "branch": "b1"})
    own_sub = _post(client, "customer", {"company_name": "Own Sub", "account_manager": "am-a", "branch": "b1",
                                         "parent_company": parent})
    foreign_sub = _post(client, "customer", {"company_name": "Foreign Sub", "account_manager": "am-b", "branch": "b2",
                                             "parent_company": parent})
    _post(client, "credit_limit_adjustment", {"customer_id": parent, "current_limit": 100, "requested_limit": 200, "reason": "r"})
    _post(client, "credit_limit_adjustment", {"customer_id": own_sub, "current_limit": 100, "requested_limit": 300, "reason": "r"})
    _post(client, "credit_limit_adjustment", {"customer_id": foreign_sub, "current_limit": 100,
                                              "requested_limit": 777000, "reason": "r"})
    _post(client, "deposit_account", {"customer_id": foreign_sub, "product": "current", "average_balance": 6000000})

    view = client.get(f"/api/v1/records/{parent}/360", headers=MANAGER_A)
    assert view.status_code == 200, view.text
    body = view.json()
    assert [child["id"] for child in body["children"]] == [own_sub]
    assert body["related"]["credit_limit_adjustment"]["total"] == 2
    assert body["aggregates"]["applications"]["value"] == 2  # not 3: the foreign subsidiary's is out of scope
    assert "777000" not in view.text and foreign_sub not in view.text

    unrestricted = client.get(f"/api/v1/records/{parent}/360", headers=RISK).json()
    assert unrestricted["aggregates"]["applications"]["value"] == 3
    assert str(unrestricted["aggregates"]["average_balance"]["value"]) == "6000000"


def test_a_tag_change_caused_by_a_foreign_record_does_not_name_it_in_the_timeline(bank_roles: Engine,
                                                                                  client: Any) -> None:
    parent = _post(client, "customer", {"company_name": "Parent Co", "account_manager": "am-a", "branch": "b1"})
    foreign_sub = _post(client, "customer", {"company_name": "Foreign Sub", "account_manager": "am-b", "branch": "b2",
                                             "parent_company": parent})
    account = _post(client, "deposit_account", {"customer_id": foreign_sub, "product": "current",
                                                "average_balance": 6000000})
    own = _post(client, "deposit_account", {"customer_id": parent, "product": "wealth_management",
                                            "average_balance": 10})

    view = client.get(f"/api/v1/records/{parent}/360", headers=MANAGER_A)
    assert view.status_code == 200, view.text
    causes = [entry["cause"] for entry in view.json()["timeline"] if entry["type"].startswith("tag.")]
    assert causes and "record.created" in causes  # the cause's kind stays, the foreign account's id goes
    assert f"record.created:{own}" in causes  # a record the manager sees is still named
    assert account not in view.text and foreign_sub not in view.text

    unrestricted = client.get(f"/api/v1/records/{parent}/360", headers=RISK)
    assert f"record.created:{account}" in [entry.get("cause") for entry in unrestricted.json()["timeline"]]


def test_an_aggregate_filtered_by_a_field_the_reader_may_not_read_is_not_shown(bank_roles: Engine,
                                                                              client: Any) -> None:
    bank_roles.upload({"kind": "roles", "key": "probe_roles", "title": "Probe", "roles": {"balance_viewer": {
        "forms": {"customer": {"read": ["*"]}, "deposit_account": {"read": ["customer_id", "average_balance"]}}}}})
    customer = _post(client, "customer", {"company_name": "Acme", "account_manager": "am-a"})
    _post(client, "deposit_account", {"customer_id": customer, "product": "time_deposit", "average_balance": 500})
    _post(client, "deposit_account", {"customer_id": customer, "product": "wealth_management", "average_balance": 7})

    view = client.get(f"/api/v1/records/{customer}/360", headers={"X-User": "bv-1", "X-Roles": "balance_viewer"})
    assert view.status_code == 200, view.text
    figures = view.json()["aggregates"]
    assert str(figures["average_balance"]["value"]) == "507"  # reads every field it is computed from
    assert "term_balance" not in figures and "wealth_products" not in figures  # filtered by product, unreadable
