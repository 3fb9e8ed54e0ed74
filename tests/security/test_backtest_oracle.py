"""A backtest over stored records is a read: a modeler who sees a person's id number only masked
must not learn it by replaying a candidate whose gate compares it with guesses (each answer
would say whether the guess was right), and records outside a caller's scope are not replayed."""
from __future__ import annotations

from typing import Any

from engine import Engine

ADMIN = {"X-User": "admin-1", "X-Roles": "admin"}
MODELER = {"X-User": "mod-1", "X-Roles": "modeler"}
ID_NUMBER = "350102199001011234"


def _candidate(field: str, value: Any) -> dict[str, Any]:
    return {"kind": "process", "key": "probe_flow", "form": "person", "title": "Probe", "start": "triage", "states": {
        "triage": {"type": "auto", "title": "Triage", "transitions": [
            {"to": "hit", "when": {"==": [{"var": field}, value]}}, {"to": "miss"}]},
        "hit": {"type": "end", "title": "Hit", "outcome": "approved"},
        "miss": {"type": "end", "title": "Miss", "outcome": "rejected"}}}


def _routes(client: Any, field: str, value: Any, headers: dict[str, str]) -> dict[str, int]:
    answer = client.post("/api/v1/definitions/backtest", json={"definition": _candidate(field, value)}, headers=headers)
    assert answer.status_code == 200, answer.text
    return {route["route"]: route["count"] for route in answer.json()["routes"]}


def test_a_masked_field_is_no_oracle_through_a_stored_records_backtest(bank_roles: Engine, client: Any) -> None:
    created = client.post("/api/v1/forms/person/records", headers=ADMIN,
                          json={"full_name": "Zhang San", "id_number": ID_NUMBER, "phone": "13800001111"})
    assert created.status_code == 201, created.text
    assert _routes(client, "id_number", ID_NUMBER, ADMIN) == {"hit": 1}  # the admin reads it in full
    assert _routes(client, "id_number", ID_NUMBER, MODELER) == {"miss": 1}  # the modeler replays it masked
    assert _routes(client, "full_name", "Zhang San", MODELER) == {"miss": 1}


def test_a_stored_records_backtest_replays_only_the_callers_records(bank_roles: Engine, client: Any) -> None:
    bank_roles.upload({"kind": "roles", "key": "probe_roles", "title": "Probe", "roles": {"scoped_modeler": {
        "may": ["definitions.upload"],
        "forms": {"customer": {"scope": [{"field": "account_manager", "equals": "principal.id"}], "read": ["*"]}}}}})
    for name, manager in [("Own One", "sm-1"), ("Own Two", "sm-1"), ("Foreign", "am-b")]:
        assert client.post("/api/v1/forms/customer/records", headers=ADMIN,
                           json={"company_name": name, "account_manager": manager}).status_code == 201
    candidate = {**_candidate("company_name", "Foreign"), "form": "customer"}
    scoped = client.post("/api/v1/definitions/backtest", json={"definition": candidate},
                         headers={"X-User": "sm-1", "X-Roles": "scoped_modeler"})
    assert scoped.status_code == 200, scoped.text
    assert scoped.json()["rows"] == 2 and {r["route"]: r["count"] for r in scoped.json()["routes"]} == {"miss": 2}
    everything = client.post("/api/v1/definitions/backtest", json={"definition": candidate}, headers=ADMIN).json()
    assert everything["rows"] == 3 and {r["route"]: r["count"] for r in everything["routes"]} == {"hit": 1, "miss": 2}
