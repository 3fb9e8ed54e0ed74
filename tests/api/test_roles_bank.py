"""The bank's roles (examples/bank/roles.json) through the REST API: per role, which records,
tasks, instances, fields and reports it sees and what it may change. A record outside a
caller's scope answers exactly like an id that does not exist, on every ``{id}`` route."""
from __future__ import annotations

import csv
import io
import json
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import pytest

from engine import Engine
from engine.jsoncodec import loads
from engine.security import SYSTEM, Principal

API = "/api/v1"
BANK = Path(__file__).resolve().parents[2] / "examples" / "bank"
USCC = "91350100M000100Y43"
PHONE = "+86 591 8765 4321"


@dataclass
class World:
    c1: str  # managed by mgr-01, branch FZ01
    c2: str  # managed by mgr-02, branch XM02
    a1: str  # credit application for c1, submitted by the customer cust-01
    a2: str  # credit application for c2
    k1: str  # complaint about c1 by cust-01
    k2: str  # complaint about c2 by cust-02
    a1_instance: str
    a2_instance: str
    a1_task: str
    a2_task: str
    k1_instance: str
    k2_instance: str


PEOPLE: dict[str, tuple[str, tuple[str, ...], dict[str, str]]] = {
    "am1": ("mgr-01", ("account_manager",), {"branch": "FZ01"}),
    "am2": ("mgr-02", ("account_manager",), {"branch": "XM02"}),
    "credit": ("bco-01", ("branch_credit_reviewer",), {"branch": "FZ01"}),
    "risk": ("risk-01", ("risk_officer",), {}),
    "head": ("head-01", ("branch_head",), {"branch": "FZ01"}),
    "cs": ("cs-01", ("customer_service",), {}),
    "analyst": ("an-01", ("analyst",), {}),
    "auditor": ("aud-01", ("auditor",), {}),
    "admin": ("adm-01", ("admin",), {}),
    "modeler": ("mod-01", ("modeler",), {}),
    "cust1": ("cust-01", ("customer",), {}),
    "cust2": ("cust-02", ("customer",), {}),
}


def principal(name: str) -> Principal:
    user, roles, attributes = PEOPLE[name]
    return Principal(user, frozenset(roles), attributes)


@pytest.fixture
def world(bank_roles: Engine) -> World:
    engine = bank_roles
    c1 = engine.submit("customer", {"company_name": "Fuzhou Tea Co., Ltd.", "uscc": USCC, "contact_phone": PHONE,
                                    "account_manager": "mgr-01", "branch": "FZ01", "region": "Fujian"}, SYSTEM)["id"]
    c2 = engine.submit("customer", {"company_name": "Xiamen Port Ltd.", "uscc": "91350200M000200Y21",
                                    "account_manager": "mgr-02", "branch": "XM02", "region": "Fujian"}, SYSTEM)["id"]
    a1 = engine.submit("credit_limit_adjustment", {"customer_id": c1, "current_limit": 1000000, "requested_limit": 1500000,
                                                   "reason": "Harvest season"}, principal("cust1"))
    a2 = engine.submit("credit_limit_adjustment", {"customer_id": c2, "current_limit": 2000000, "requested_limit": 3000000,
                                                   "reason": "New berth"}, principal("cust2"))
    complaint = {"channel": "web", "product": "loan", "issue": "fees", "received_on": "2026-11-30"}
    k1 = engine.submit("complaint", {**complaint, "customer_id": c1, "narrative": "Charged twice"}, principal("cust1"))
    k2 = engine.submit("complaint", {**complaint, "customer_id": c2, "narrative": "Late statement"}, principal("cust2"))

    def task_of(instance_id: str) -> str:
        tasks = engine.instance(instance_id)["tasks"]
        return str([task for task in tasks if task["status"] == "open"][0]["id"])

    return World(c1, c2, a1["id"], a2["id"], k1["id"], k2["id"], a1["instances"][0]["id"], a2["instances"][0]["id"],
                 task_of(a1["instances"][0]["id"]), task_of(a2["instances"][0]["id"]),
                 k1["instances"][0]["id"], k2["instances"][0]["id"])


@pytest.fixture
def as_(client: Any, token_for: Callable[..., dict[str, str]]) -> Callable[[str], dict[str, str]]:
    cache: dict[str, dict[str, str]] = {}

    def headers(name: str) -> dict[str, str]:
        if name not in cache:
            user, roles, attributes = PEOPLE[name]
            cache[name] = token_for(user, roles, attributes)
        return cache[name]

    return headers


def body(response: Any) -> Any:
    return loads(response.content)


def codes(response: Any) -> list[str]:
    return [error["code"] for error in body(response)["errors"]]


def listed(client: Any, headers: dict[str, str], form: str, query: str = "") -> tuple[int, set[str]]:
    response = client.get(f"{API}/forms/{form}/records{query}", headers=headers)
    assert response.status_code == 200, response.text
    page = body(response)
    return page["total"], {item["id"] for item in page["items"]}


# -- object scope ------------------------------------------------------------------------------


def test_an_account_manager_sees_only_the_customers_they_manage_and_their_cases(client: Any, world: World, as_: Any) -> None:
    am1 = as_("am1")
    assert listed(client, am1, "customer") == (1, {world.c1})
    assert listed(client, am1, "credit_limit_adjustment") == (1, {world.a1})
    assert listed(client, am1, "complaint") == (1, {world.k1})
    assert client.get(f"{API}/records/{world.c1}", headers=am1).status_code == 200
    for record in (world.c2, world.a2, world.k2):
        assert client.get(f"{API}/records/{record}", headers=am1).status_code == 404
    inbox = body(client.get(f"{API}/tasks", headers=am1))
    assert inbox["total"] == 1 and [task["id"] for task in inbox["items"]] == [world.a1_task]
    assert listed(client, as_("am2"), "customer") == (1, {world.c2})


def test_a_paged_list_counts_only_records_in_scope(client: Any, world: World, as_: Any, bank_roles: Engine) -> None:
    for index in range(3):
        bank_roles.submit("customer", {"company_name": f"Other {index}", "account_manager": "mgr-02", "branch": "XM02"}, SYSTEM)
    response = body(client.get(f"{API}/forms/customer/records?limit=1", headers=as_("am1")))
    assert (response["total"], len(response["items"]), response["items"][0]["id"]) == (1, 1, world.c1)
    assert body(client.get(f"{API}/forms/customer/records?limit=1&offset=1", headers=as_("am1")))["items"] == []
    assert body(client.get(f"{API}/forms/customer/records?limit=1", headers=as_("am2")))["total"] == 4


def test_branch_roles_see_their_own_branch_through_the_customer_reference(client: Any, world: World, as_: Any) -> None:
    assert listed(client, as_("credit"), "customer") == (1, {world.c1})
    assert listed(client, as_("credit"), "credit_limit_adjustment") == (1, {world.a1})
    assert client.get(f"{API}/forms/complaint/records", headers=as_("credit")).status_code == 403
    assert listed(client, as_("head"), "complaint") == (1, {world.k1})
    assert client.get(f"{API}/records/{world.k2}", headers=as_("head")).status_code == 404
    assert client.get(f"{API}/instances/{world.a2_instance}", headers=as_("head")).status_code == 404


def test_a_branch_role_without_a_branch_attribute_sees_nothing(client: Any, world: World, token_for: Any) -> None:
    headers = token_for("head-99", ["branch_head"])
    assert listed(client, headers, "customer") == (0, set())
    assert client.get(f"{API}/records/{world.c1}", headers=headers).status_code == 404


def test_the_risk_officer_sees_every_customer_and_application_but_no_complaint(client: Any, world: World, as_: Any) -> None:
    assert listed(client, as_("risk"), "customer")[0] == 2
    assert listed(client, as_("risk"), "credit_limit_adjustment")[0] == 2
    assert client.get(f"{API}/records/{world.k1}", headers=as_("risk")).status_code == 404


def test_the_applicant_sees_only_their_own_requests_and_tracks_them(client: Any, world: World, as_: Any) -> None:
    cust1 = as_("cust1")
    assert listed(client, cust1, "complaint") == (1, {world.k1})
    assert listed(client, cust1, "credit_limit_adjustment") == (1, {world.a1})
    assert client.get(f"{API}/forms/customer/records", headers=cust1).status_code == 403
    assert client.get(f"{API}/records/{world.c1}", headers=cust1).status_code == 404
    own = body(client.get(f"{API}/records/{world.a1}", headers=cust1))
    assert set(own["data"]) == {"customer_id", "current_limit", "requested_limit", "increase_pct", "reason"}
    timeline = client.get(f"{API}/instances/{world.a1_instance}/timeline", headers=cust1)
    assert timeline.status_code == 200
    assert client.get(f"{API}/instances/{world.a2_instance}/timeline", headers=cust1).status_code == 404
    assert body(client.get(f"{API}/instances/{world.a1_instance}", headers=cust1))["view"] == "applicant"


def _id_routes(world: World) -> list[tuple[str, str, Any]]:
    """(method, path, body) of every {id} route, on records, tasks and instances of c2/a2/k2."""
    return [
        ("GET", f"/records/{world.a2}", None),
        ("PATCH", f"/records/{world.c2}", {"city": "Xiamen"}),
        ("GET", f"/tasks/{world.a2_task}", None),
        ("POST", f"/tasks/{world.a2_task}/approve", {"comment": "ok"}),
        ("POST", f"/tasks/{world.a2_task}/claim", None),
        ("POST", f"/tasks/{world.a2_task}/transfer", {"to": "mgr-01"}),
        ("POST", f"/tasks/{world.a2_task}/add-approver", {"user": "mgr-09", "mode": "after"}),
        ("POST", f"/tasks/{world.a2_task}/send-back", {"to": "manager_review"}),
        ("GET", f"/instances/{world.a2_instance}", None),
        ("GET", f"/instances/{world.a2_instance}/timeline", None),
        ("POST", f"/instances/{world.a2_instance}/withdraw", {"comment": "no"}),
        ("POST", f"/instances/{world.a2_instance}/cancel", {"comment": "no"}),
        ("POST", f"/instances/{world.a2_instance}/urge", {"comment": "hurry"}),
        ("POST", f"/instances/{world.a2_instance}/cc", {"users": ["mgr-01"]}),
        ("POST", f"/instances/{world.a2_instance}/comments", {"text": "hello"}),
    ]


@pytest.mark.parametrize("who", ["am1", "credit", "head", "cust1"])
def test_every_id_route_answers_out_of_scope_as_not_found(client: Any, world: World, as_: Any, who: str) -> None:
    """The answer for an existing id outside the scope equals the answer for an id that does
    not exist, apart from the id itself."""
    headers = {**as_(who), "If-Match": '"1"'}
    for method, path, payload in _id_routes(world):
        real = client.request(method, API + path, headers=headers, json=payload)
        target = path.split("/")[2]
        ghost_id = str(uuid.uuid4())
        ghost = client.request(method, API + path.replace(target, ghost_id), headers=headers, json=payload)
        assert real.status_code == 404, (who, method, path, real.text)
        assert real.text.replace(target, "ID") == ghost.text.replace(ghost_id, "ID"), (who, method, path)


def test_acting_on_a_step_needs_a_grant_for_it(client: Any, world: World, as_: Any, token_for: Any) -> None:
    # a risk officer sees the application (no scope) but may act only on the countersign
    response = client.post(f"{API}/tasks/{world.a1_task}/approve", headers=as_("risk"), json={"comment": "fine"})
    assert response.status_code == 403 and codes(response) == ["access.act_denied"]
    approved = client.post(f"{API}/tasks/{world.a1_task}/approve", headers=as_("am1"), json={"comment": "fine"})
    assert approved.status_code == 200, approved.text


# -- function grants ---------------------------------------------------------------------------


def test_submitting_needs_a_grant_for_the_form(client: Any, world: World, as_: Any) -> None:
    data = {"company_name": "New Co", "account_manager": "mgr-01", "branch": "FZ01"}
    for who in ("risk", "analyst", "auditor", "cust1", "modeler"):
        response = client.post(f"{API}/forms/customer/records", headers=as_(who), json=data)
        assert response.status_code == 403 and codes(response) == ["access.submit_denied"], who
    assert client.post(f"{API}/forms/customer/records", headers=as_("am1"), json=data).status_code == 201


def test_an_account_manager_cannot_create_or_move_a_customer_outside_their_scope(client: Any, world: World, as_: Any,
                                                                                 bank_roles: Engine) -> None:
    before = listed(client, as_("admin"), "customer")[0]
    response = client.post(f"{API}/forms/customer/records", headers=as_("am1"),
                           json={"company_name": "Not mine", "account_manager": "mgr-02"})
    assert response.status_code == 403 and codes(response) == ["access.out_of_scope"]
    assert listed(client, as_("admin"), "customer")[0] == before  # nothing written
    moved = client.patch(f"{API}/records/{world.c1}", headers={**as_("am1"), "If-Match": '"1"'},
                         json={"account_manager": "mgr-02"})
    assert moved.status_code == 403 and codes(moved) == ["access.out_of_scope"]
    assert bank_roles.record(world.c1)["data"]["account_manager"] == "mgr-01"


def test_uploading_definitions_needs_the_grant(client: Any, world: World, as_: Any) -> None:
    form = {"kind": "form", "key": "visit_note", "title": "Visit note",
            "schema": {"type": "object", "properties": {"summary": {"type": "string"}}}}
    for who in ("am1", "auditor", "analyst"):
        response = client.post(f"{API}/definitions", headers=as_(who), json=form)
        assert response.status_code == 403 and codes(response) == ["access.denied"], who
    assert client.post(f"{API}/definitions", headers=as_("modeler"), json=form).status_code == 201


def test_function_grants_for_audit_and_tokens(bank_roles: Engine, world: World) -> None:
    readers = {name for name in PEOPLE if bank_roles.access(principal(name)).may("audit.read")}
    managers = {name for name in PEOPLE if bank_roles.access(principal(name)).may("tokens.manage")}
    assert readers == {"auditor", "admin"}
    assert managers == {"admin"}


def test_no_object_scoped_role_is_granted_a_report() -> None:
    """Report rows are not object-scoped (engine.security.report_access): a role that sees only
    some records of a form (an account manager, a branch, a customer) would read every record's
    figures in a report, so the bank grants such a role no report."""
    roles = json.loads((BANK / "roles.json").read_text())["roles"]
    scoped = {name for name, role in roles.items() if any("scope" in grant for grant in role.get("forms", {}).values())}
    assert {"account_manager", "branch_credit_reviewer", "branch_head", "customer"} <= scoped
    assert {name: roles[name]["reports"] for name in scoped if roles[name].get("reports")} == {}


def test_reports_need_a_grant(client: Any, world: World, as_: Any) -> None:
    assert client.get(f"{API}/reports/customers_by_region_industry", headers=as_("analyst")).status_code == 200
    scoped = client.get(f"{API}/reports/customers_by_region_industry", headers=as_("am1"))
    assert scoped.status_code == 403 and codes(scoped) == ["access.report_denied"]
    denied = client.get(f"{API}/reports/complaints_by_month", headers=as_("am1"))
    assert denied.status_code == 403 and codes(denied) == ["access.report_denied"]
    assert client.get(f"{API}/reports/complaints_by_month", headers=as_("cs")).status_code == 200
    assert client.get(f"{API}/reports/customers_by_region_industry", headers=as_("cs")).status_code == 403
    assert client.get(f"{API}/reports/customers_by_region_industry?format=csv", headers=as_("cust1")).status_code == 403
    assert client.get(f"{API}/dashboards/complaints", headers=as_("am1")).status_code == 403
    assert client.get(f"{API}/dashboards/complaints", headers=as_("analyst")).status_code == 200


# -- field permissions -------------------------------------------------------------------------


def test_customer_service_sees_the_credit_code_and_phone_masked_in_get_and_list(client: Any, world: World, as_: Any) -> None:
    record = body(client.get(f"{API}/records/{world.c1}", headers=as_("cs")))["data"]
    assert (record["uscc"], record["contact_phone"]) == ("****0Y43", "****4321")
    assert record["company_name"] == "Fuzhou Tea Co., Ltd."
    items = body(client.get(f"{API}/forms/customer/records", headers=as_("cs")))["items"]
    assert {item["data"]["uscc"] for item in items} == {"****0Y43", "****0Y21"}
    assert USCC not in client.get(f"{API}/forms/customer/records", headers=as_("cs")).text
    full = body(client.get(f"{API}/records/{world.c1}", headers=as_("am1")))["data"]
    assert (full["uscc"], full["contact_phone"]) == (USCC, PHONE)


def test_the_analyst_sees_no_personal_data(client: Any, world: World, as_: Any) -> None:
    data = body(client.get(f"{API}/records/{world.c1}", headers=as_("analyst")))["data"]
    assert data == {"company_name": "Fu****", "uscc": "****", "contact_phone": "****", "branch": "FZ01", "region": "Fujian"}
    complaint = body(client.get(f"{API}/records/{world.k1}", headers=as_("analyst")))["data"]
    assert complaint["narrative"] == "****" and complaint["product"] == "loan"


@pytest.mark.parametrize("query", ["?uscc=" + USCC, "?uscc=****0Y43", "?no_such_field=1", "?account_manager=mgr-01"])
def test_filtering_on_a_field_one_may_not_read_in_full_is_refused_like_an_unknown_one(
        client: Any, world: World, as_: Any, query: str) -> None:
    who = "analyst" if "account_manager" in query else "cs"
    response = client.get(f"{API}/forms/customer/records{query}", headers=as_(who))
    assert response.status_code == 422
    field = query[1:].split("=")[0]
    assert body(response)["errors"][0]["code"] == "field.not_readable"
    assert body(response)["errors"][0]["path"] == f"/{field}"
    assert USCC not in response.text


def test_the_masked_field_is_no_oracle(client: Any, world: World, as_: Any) -> None:
    """Right and wrong guesses of a masked value get the same answer."""
    right = client.get(f"{API}/forms/customer/records?uscc={USCC}", headers=as_("cs"))
    wrong = client.get(f"{API}/forms/customer/records?uscc=91350100M000100Y99", headers=as_("cs"))
    assert right.status_code == wrong.status_code == 422
    assert right.text.replace(USCC, "X") == wrong.text.replace("91350100M000100Y99", "X")


def test_writing_a_field_one_may_not_write_is_refused_naming_it(client: Any, world: World, as_: Any) -> None:
    response = client.post(f"{API}/forms/complaint/records", headers=as_("cust1"), json={
        "channel": "web", "product": "loan", "issue": "fees", "received_on": "2026-12-01", "response": "Refunded",
        "timely": True})
    assert response.status_code == 403
    assert [(error["path"], error["code"]) for error in body(response)["errors"]] == [
        ("/response", "field.write_denied"), ("/timely", "field.write_denied")]
    patch = client.patch(f"{API}/records/{world.c1}", headers={**as_("am1"), "If-Match": '"1"'},
                         json={"external_id": "X-1", "city": "Fuzhou"})
    assert patch.status_code == 403 and [e["path"] for e in body(patch)["errors"]] == ["/external_id"]
    ok = client.patch(f"{API}/records/{world.c1}", headers={**as_("am1"), "If-Match": '"1"'}, json={"city": "Fuzhou"})
    assert ok.status_code == 200 and body(ok)["data"]["city"] == "Fuzhou"
    auditor = client.patch(f"{API}/records/{world.c1}", headers={**as_("auditor"), "If-Match": '"2"'}, json={"city": "X"})
    assert auditor.status_code == 403 and codes(auditor) == ["field.write_denied"]


def _report_by_manager(engine: Engine) -> None:
    engine.upload({"kind": "report", "key": "customers_by_manager", "title": "Customers by manager",
                   "source": {"form": "customer"},
                   "dimensions": [{"name": "company", "field": "company_name"}, {"name": "region", "field": "region"}],
                   "measures": [{"name": "customers", "agg": "count"},
                                {"name": "managers", "agg": "count_distinct", "field": "account_manager"}]})


def test_report_columns_from_unreadable_or_masked_fields_are_left_out_of_rows_and_exports(
        client: Any, world: World, as_: Any, bank_roles: Engine) -> None:
    _report_by_manager(bank_roles)
    analyst = body(client.get(f"{API}/reports/customers_by_manager", headers=as_("analyst")))
    assert [column["name"] for column in analyst["columns"]] == ["region", "customers"]
    assert analyst["meta"]["hidden"] == ["company", "managers"]
    assert "Fuzhou Tea" not in str(analyst["rows"])
    text = client.get(f"{API}/reports/customers_by_manager?format=csv", headers=as_("analyst")).content.decode("utf-8-sig")
    assert next(csv.reader(io.StringIO(text))) == ["region", "customers"]
    assert "Fuzhou Tea" not in text
    admin = body(client.get(f"{API}/reports/customers_by_manager", headers=as_("admin")))
    assert [column["name"] for column in admin["columns"]] == ["company", "region", "customers", "managers"]


def test_an_error_does_not_echo_a_value_one_may_not_read(bank_roles: Engine, world: World) -> None:
    from engine.errors import Issue
    from engine.security.fields import redact_issues

    issues = [Issue("/uscc", "record.pattern", {"detail": USCC, "field": "uscc"}), Issue("/city", "record.type", {"detail": "x"})]
    shown = redact_issues("customer", issues, bank_roles.access(principal("cs")))
    assert shown[0].params == {"field": "uscc"} and USCC not in shown[0].message()
    assert shown[1].params == {"detail": "x"}


def test_without_roles_everything_is_as_before(bank: Engine) -> None:
    customer = bank.submit("customer", {"company_name": "Open Co", "uscc": USCC}, Principal("anyone"))
    assert bank.record(customer["id"], Principal("anyone"))["data"]["uscc"] == USCC
    assert bank.records("customer", actor=Principal("anyone"), filters={"uscc": USCC})["total"] == 1


def test_every_denial_is_in_the_audit_log_and_only_the_auditor_reads_it(client: Any, world: World, as_: Any) -> None:
    assert client.get(f"{API}/records/{world.c2}", headers=as_("am1")).status_code == 404
    assert client.get(f"{API}/records/{uuid.uuid4()}", headers=as_("am1")).status_code == 404  # no such record: no entry
    assert client.post(f"{API}/tasks/{world.a1_task}/approve", headers=as_("risk"), json={}).status_code == 403
    assert client.get(f"{API}/reports/complaints_by_month", headers=as_("am1")).status_code == 403
    denied = client.get(f"{API}/audit?action=access.denied", headers=as_("am1"))
    assert denied.status_code == 403 and codes(denied) == ["access.denied"]
    page = client.get(f"{API}/audit?action=access.denied", headers=as_("auditor"))
    assert page.status_code == 200, page.text
    entries = [(item["actor"], item["detail"]["attempted"], item["detail"]["reason"]) for item in body(page)["items"]]
    assert entries == [("mgr-01", "record.read", "record.not_found"), ("risk-01", "task.act", "access.act_denied"),
                       ("mgr-01", "report.read", "access.report_denied"), ("mgr-01", "audit.read", "access.denied")]


def test_the_event_feed_shows_a_restricted_reader_only_records_in_its_scope(bank_roles: Engine, world: World) -> None:
    from engine.security.scope import visible_events

    items = [{"seq": 1, "payload": {"record": world.c1, "form": "customer", "fields": ["uscc", "city"]}},
             {"seq": 2, "payload": {"record": world.c2, "form": "customer", "fields": ["city"]}},
             {"seq": 3, "payload": {"record": world.k1, "form": "complaint", "fields": ["narrative"]}}]
    with bank_roles.db.read() as session:
        shown = visible_events(session, bank_roles.access(principal("am1")), items)
        analyst = visible_events(session, bank_roles.access(principal("analyst")), items[:1])
    assert [item["seq"] for item in shown] == [1, 3]
    assert analyst[0]["payload"]["fields"] == ["uscc", "city"]  # masked fields are seen (masked), so named
    with bank_roles.db.read() as session:
        risk = visible_events(session, bank_roles.access(principal("risk")), items)
    assert [item["seq"] for item in risk] == [1, 2]


def test_a_report_parameter_or_drill_on_a_field_one_may_not_read_is_refused(client: Any, world: World, as_: Any,
                                                                            bank_roles: Engine) -> None:
    bank_roles.upload({"kind": "report", "key": "customers_of_manager", "title": "Customers of a manager",
                       "source": {"form": "customer"},
                       "parameters": [{"name": "manager", "type": "string"}],
                       "filters": [{"field": "account_manager", "op": "eq", "param": "manager"}],
                       "dimensions": [{"name": "region", "field": "region"}, {"name": "company", "field": "company_name"}],
                       "drill": ["region", "company"],
                       "measures": [{"name": "customers", "agg": "count"}]})
    url = f"{API}/reports/customers_of_manager"
    refused = client.get(f"{url}?manager=mgr-01", headers=as_("analyst"))
    assert refused.status_code == 422 and [(e["path"], e["code"]) for e in body(refused)["errors"]] == [
        ("manager", "field.not_readable")]
    drilled = client.get(f"{url}?drill=region:Fujian&drill=company:Fuzhou", headers=as_("analyst"))
    assert drilled.status_code == 422 and codes(drilled) == ["field.not_readable"]
    assert client.get(url, headers=as_("analyst")).status_code == 200
    admin = client.get(f"{url}?manager=mgr-01", headers=as_("admin"))
    assert admin.status_code == 200 and body(admin)["rows"] == [["Fujian", 1]]


def test_a_report_may_use_only_fields_its_author_may_read(client: Any, world: World, as_: Any) -> None:
    report = {"kind": "report", "key": "by_manager", "title": "By manager", "source": {"form": "customer"},
              "dimensions": [{"name": "region", "field": "region"}], "measures": [{"name": "customers", "agg": "count"}]}
    assert client.post(f"{API}/definitions", headers=as_("modeler"), json=report).status_code == 201
    leaky = {**report, "key": "by_manager_2", "filters": [{"field": "uscc", "op": "eq", "value": USCC}],
             "dimensions": [{"name": "manager", "field": "account_manager"}]}
    refused = client.post(f"{API}/definitions", headers=as_("modeler"), json=leaky)
    assert refused.status_code == 422
    assert [(e["path"], e["code"]) for e in body(refused)["errors"]] == [
        ("/dimensions/0/field", "field.not_readable"), ("/filters/0/field", "field.not_readable")]
    assert client.post(f"{API}/definitions", headers=as_("admin"), json=leaky).status_code == 201


def test_two_roles_with_different_scopes_show_each_record_the_fields_of_the_roles_that_admit_it(
        client: Any, world: World, token_for: Any) -> None:
    """An account manager who is also an analyst: their own customer in full, the others as
    the analyst sees them."""
    headers = token_for("mgr-01", ["account_manager", "analyst"], {"branch": "FZ01"})
    own = body(client.get(f"{API}/records/{world.c1}", headers=headers))["data"]
    other = body(client.get(f"{API}/records/{world.c2}", headers=headers))["data"]
    assert (own["company_name"], own["uscc"], own["account_manager"]) == ("Fuzhou Tea Co., Ltd.", USCC, "mgr-01")
    assert (other["company_name"], other["uscc"], "account_manager" in other) == ("Xi****", "****", False)
    items = {item["id"]: item["data"] for item in body(client.get(f"{API}/forms/customer/records", headers=headers))["items"]}
    assert items[world.c1]["uscc"] == USCC and items[world.c2]["uscc"] == "****"


def test_the_event_feed_needs_its_grant_once_roles_are_loaded(client: Any, world: World, as_: Any) -> None:
    denied = client.get(f"{API}/events", headers=as_("am1"))
    assert denied.status_code == 403 and codes(denied) == ["access.denied"]
    feed = client.get(f"{API}/events?limit=500", headers=as_("admin"))
    assert feed.status_code == 200
    records = {item["payload"].get("record") for item in body(feed)["items"]}
    assert {world.c1, world.c2, world.a1, world.k2} <= records


def test_a_large_flow_alert_is_reviewed_by_a_risk_officer_and_seen_by_its_customer_s_manager_only(
        client: Any, world: World, as_: Any, bank_roles: Engine) -> None:
    alert = bank_roles.submit("account_flow_alert", {"customer_id": world.c1, "amount": 2500000, "pattern": "structuring",
                                                     "observed_on": "2026-12-01"}, SYSTEM)
    inbox = body(client.get(f"{API}/tasks?role=risk_officer", headers=as_("risk")))
    task = [item for item in inbox["items"] if item["record_id"] == alert["id"]]
    assert len(task) == 1
    assert listed(client, as_("am1"), "account_flow_alert") == (1, {alert["id"]})
    assert listed(client, as_("am2"), "account_flow_alert") == (0, set())
    assert client.get(f"{API}/tasks/{task[0]['id']}", headers=as_("am2")).status_code == 404
    done = client.post(f"{API}/tasks/{task[0]['id']}/dismiss", headers=as_("risk"), json={"comment": "payroll"})
    assert done.status_code == 200, done.text
    assert body(done)["state"] == "dismissed"


def test_referring_to_a_record_outside_one_s_scope_is_answered_as_a_missing_one(client: Any, world: World, as_: Any) -> None:
    def submit(customer_id: str) -> Any:
        return client.post(f"{API}/forms/credit_limit_adjustment/records", headers=as_("am1"), json={
            "customer_id": customer_id, "current_limit": 100, "requested_limit": 120, "reason": "x"})

    ghost = str(uuid.uuid4())
    other, missing = submit(world.c2), submit(ghost)
    assert other.status_code == missing.status_code == 422
    assert other.text.replace(world.c2, "ID") == missing.text.replace(ghost, "ID")
    assert [(e["path"], e["code"]) for e in body(other)["errors"]] == [("/customer_id", "record.ref_not_found")]
    assert submit(world.c1).status_code == 201


def test_evaluate_checks_references_as_submitting_does(client: Any, world: World, as_: Any) -> None:
    def evaluate(customer_id: str) -> Any:
        return client.post(f"{API}/forms/credit_limit_adjustment/evaluate", headers=as_("am1"), json={
            "customer_id": customer_id, "current_limit": 100, "requested_limit": 120, "reason": "x"})

    ghost = str(uuid.uuid4())
    other, missing, own = evaluate(world.c2), evaluate(ghost), evaluate(world.c1)
    assert other.status_code == missing.status_code == own.status_code == 200
    assert [(e["path"], e["code"]) for e in body(missing)["errors"]] == [("/customer_id", "record.ref_not_found")]
    assert body(other)["errors"] == body(missing)["errors"]  # outside one's scope: as no record at all
    assert body(own)["errors"] == []


def test_the_360_view_shows_a_related_record_with_the_fields_of_the_roles_that_admit_it(
        client: Any, world: World, token_for: Any, bank_roles: Engine) -> None:
    """mgr-01, also an analyst, opens their own customer: its subsidiary (managed by mgr-02) is
    visible through the analyst grant only, so it must show as the analyst sees it there too —
    not in full because the manager grant reads every field of the customer form."""
    subsidiary = bank_roles.submit("customer", {"company_name": "Fuzhou Tea Export Ltd.", "uscc": "91350100M000300Y15",
                                                "account_manager": "mgr-02", "branch": "XM02", "region": "Fujian",
                                                "parent_company": world.c1}, SYSTEM)["id"]
    headers = token_for("mgr-01", ["account_manager", "analyst"], {"branch": "FZ01"})
    direct = body(client.get(f"{API}/records/{subsidiary}", headers=headers))["data"]
    assert (direct["uscc"], "account_manager" in direct) == ("****", False)
    view = client.get(f"{API}/records/{world.c1}/360", headers=headers)
    assert view.status_code == 200, view.text
    text = view.text
    assert subsidiary in text  # shown ...
    assert "91350100M000300Y15" not in text and "Fuzhou Tea Export Ltd." not in text  # ... as the analyst sees it
    assert USCC in text  # the caller's own customer in full
