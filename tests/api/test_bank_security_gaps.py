"""Gaps a new-user trial of the bank's roles found, through the REST API with tokens: uploading
security-bearing definitions needs ``roles.manage``, uploaded insight definitions may refer
only to what their uploader reads, every bank form and step is reachable by some role, and the
risk review chain works end to end."""
from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

from engine import Engine
from engine.jsoncodec import loads
from engine.security import SYSTEM
from test_roles_bank import World, as_, body, codes, world  # noqa: F401 - fixtures

API = "/api/v1"
BANK = Path(__file__).resolve().parents[2] / "examples" / "bank"


def denials(client: Any, as_: Any) -> list[tuple[str, str, str]]:
    page = client.get(f"{API}/audit?action=access.denied", headers=as_("auditor"))
    assert page.status_code == 200, page.text
    return [(item["actor"], item["detail"]["attempted"], item["detail"]["reason"]) for item in body(page)["items"]]


# -- 1. uploading security-bearing definitions ----------------------------------------------


def test_a_modeler_cannot_grant_itself_more_by_uploading_the_roles(client: Any, world: World, as_: Any,
                                                                     bank_roles: Engine) -> None:
    document = json.loads((BANK / "roles.json").read_text())
    document["roles"]["modeler"]["may"] = ["definitions.upload", "audit.read"]
    document["roles"]["modeler"]["forms"]["customer"] = {"read": ["*"]}
    response = client.post(f"{API}/definitions", headers=as_("modeler"), json=document)
    assert response.status_code == 403, response.text
    assert codes(response) == ["access.denied"] and body(response)["errors"][0]["params"]["function"] == "roles.manage"
    assert client.get(f"{API}/audit", headers=as_("modeler")).status_code == 403  # nothing changed
    assert ("mod-01", "definition.upload", "access.denied") in denials(client, as_)
    # a trigger writes referenced records as the system: the same stronger grant
    trigger = {"kind": "trigger", "key": "sneaky", "title": "x", "on": "record.created", "form": "complaint",
               "update": {"ref": "customer_id", "set": {"risk_level": "low"}}}
    refused = client.post(f"{API}/definitions", headers=as_("modeler"), json=trigger)
    assert refused.status_code == 403 and body(refused)["errors"][0]["params"]["function"] == "roles.manage"
    assert client.post(f"{API}/definitions", headers=as_("admin"), json=trigger).status_code == 201
    # the admin holds roles.manage and may change the policy
    assert client.post(f"{API}/definitions", headers=as_("admin"), json=document).status_code == 201
    assert bank_roles.access(SYSTEM).restricted is False


def test_an_uploaded_tag_or_profile_may_read_only_what_its_uploader_reads(client: Any, world: World, as_: Any) -> None:
    tag = {"kind": "tag", "key": "named_tea", "profile": "customer_360", "title": "x",
           "rule": {"==": [{"var": "company_name"}, "Fuzhou Tea Co., Ltd."]}}  # masked for a modeler
    refused = client.post(f"{API}/definitions", headers=as_("modeler"), json=tag)
    assert refused.status_code == 422, refused.text
    assert codes(refused) == ["field.not_readable"] and body(refused)["errors"][0]["params"]["field"] == "company_name"
    assert ("mod-01", "definition.upload", "field.not_readable") in denials(client, as_)
    profile = {"kind": "profile", "key": "narratives", "form": "customer", "title": "x", "aggregates": {
        "charged_twice": {"form": "complaint", "via": "customer_id", "agg": "count",
                          "where": {"==": [{"var": "narrative"}, "Charged twice"]}}}}
    refused = client.post(f"{API}/definitions", headers=as_("modeler"), json=profile)
    assert refused.status_code == 422 and codes(refused) == ["field.not_readable"], refused.text
    assert body(refused)["errors"][0]["params"]["field"] == "narrative"
    # what the modeler reads in full is fine
    ok = {**tag, "key": "fujian", "rule": {"==": [{"var": "region"}, "Fujian"]}}
    assert client.post(f"{API}/definitions", headers=as_("modeler"), json=ok).status_code == 201
    assert client.post(f"{API}/definitions", headers=as_("admin"), json=tag).status_code == 201


def test_a_trigger_update_outside_the_uploader_s_write_grant_is_refused(bank_roles: Engine, world: World) -> None:
    from engine.errors import ValidationFailed
    from engine.security.access import resolve
    from engine.security.definition_access import check_definition
    from engine.security.principal import Principal

    spec = bank_roles.registry.spec("trigger", "risk_confirmed_raises_customer_risk")
    access = resolve(bank_roles.registry.roles(), Principal("x", frozenset({"risk_officer"}), {}))
    try:
        check_definition("trigger", spec, access, lambda key: None)
    except ValidationFailed as exc:
        assert [(issue.path, issue.code) for issue in exc.issues] == [("/update/set/risk_level", "field.write_denied")]
    else:
        raise AssertionError("a trigger setting a field its uploader may not write was accepted")
    admin = resolve(bank_roles.registry.roles(), Principal("a", frozenset({"admin"}), {}))
    check_definition("trigger", spec, admin, lambda key: None)


# -- 2. every bank form and step is reachable ------------------------------------------------


def test_every_bank_form_and_process_step_is_reachable_by_some_role(bank_roles: Engine) -> None:
    (policy,) = bank_roles.registry.roles()
    forms = [loads(path.read_bytes())["key"] for path in sorted((BANK / "forms").glob("*.json"))]
    for form in forms:
        readers = [name for name, role in policy.roles.items() if form in role.forms]
        writers = [name for name, role in policy.roles.items()
                   if form in role.forms and role.forms[form].write != frozenset()
                   and ("*" in role.submit or form in role.submit)]
        assert readers, f"no role sees form {form}"
        assert writers, f"no role may submit form {form}"
    for path in sorted((BANK / "processes").glob("*.json")):
        process = loads(path.read_bytes())
        for state, body_ in process["states"].items():
            if body_.get("type") != "task":
                continue
            actors = [name for name, role in policy.roles.items()
                      if any(state in role.act.get(key, ()) or "*" in role.act.get(key, ())
                             for key in (process["key"], "*"))
                      and process["form"] in role.forms]
            assert actors, f"no role may act on {process['key']}.{state} and see its record"
            assignee = body_.get("assignee", {}).get("role")
            if assignee is not None:
                assert assignee in actors, f"{process['key']}.{state} is assigned to {assignee}, who may not act on it"


def test_the_risk_review_chain_over_the_api(client: Any, world: World, as_: Any, bank_roles: Engine) -> None:
    alert = bank_roles.submit("account_flow_alert", {"customer_id": world.c1, "amount": 2500000, "pattern": "rapid_in_out",
                                                     "observed_on": "2026-11-30"}, SYSTEM)
    for who in ("risk", "admin"):
        tasks = client.get(f"{API}/tasks", headers=as_(who))
        assert tasks.status_code == 200, tasks.text
        assert [task["record_id"] for task in body(tasks)["items"] if task["process"] == "risk_review"] == [alert["id"]], who
    task_id = [task["id"] for task in body(client.get(f"{API}/tasks", headers=as_("risk")))["items"]
               if task["process"] == "risk_review"][0]
    assert client.get(f"{API}/tasks/{task_id}", headers=as_("risk")).status_code == 200
    assert client.get(f"{API}/records/{alert['id']}", headers=as_("risk")).status_code == 200
    done = client.post(f"{API}/tasks/{task_id}/confirm", headers=as_("risk"), json={"comment": "round-tripping"})
    assert done.status_code == 200, done.text
    customer = client.get(f"{API}/records/{world.c1}", headers=as_("admin"))
    assert body(customer)["data"]["risk_level"] == "high"
    other = client.get(f"{API}/records/{world.c2}", headers=as_("admin"))
    assert body(other)["data"].get("risk_level") != "high"
    for form, data in (("deposit_account", {"customer_id": world.c1, "product": "current", "average_balance": 10}),
                       ("person", {"full_name": "Li Lei", "id_number": "350102199001011234"}),
                       ("account_flow_alert", {"customer_id": world.c1, "amount": 5, "observed_on": "2026-11-30"})):
        created = client.post(f"{API}/forms/{form}/records", headers=as_("admin"), json=data)
        assert created.status_code == 201, (form, created.text)


# -- 5. an unknown field is unknown for everyone ---------------------------------------------


def test_an_unknown_field_is_answered_422_for_every_caller_and_a_known_one_403(client: Any, world: World,
                                                                                as_: Any) -> None:
    data = {"company_name": "Fuzhou Rice Co.", "account_manager": "mgr-01", "branch": "FZ01", "companyname": "typo"}
    for who in ("am1", "admin"):
        response = client.post(f"{API}/forms/customer/records", headers=as_(who), json=data)
        assert response.status_code == 422, (who, response.text)
        assert [(e["path"], e["code"]) for e in body(response)["errors"]] == [("/companyname", "record.additional_properties")]
    patched = client.patch(f"{API}/records/{world.c1}", headers={**as_("am1"), "If-Match": '"1"'}, json={"companyname": "typo"})
    assert patched.status_code == 422 and codes(patched) == ["record.additional_properties"], patched.text
    # a known field the caller may not write is still refused naming it
    denied = client.post(f"{API}/forms/complaint/records", headers=as_("cust1"),
                         json={"customer_id": world.c1, "channel": "web", "product": "loan", "issue": "fees",
                               "received_on": "2026-11-30", "response": "closed", "companyname": "typo"})
    assert denied.status_code == 403 and codes(denied) == ["field.write_denied"], denied.text
    assert [e["path"] for e in body(denied)["errors"]] == ["/response"]


# -- 6. one answer for a field one may not read ----------------------------------------------


def test_a_report_on_a_sealed_field_one_may_not_read_is_answered_as_any_unreadable_field(client: Any, world: World,
                                                                                          as_: Any) -> None:
    def report(field: str) -> dict[str, Any]:
        return {"kind": "report", "key": f"by_{field}", "title": "x", "source": {"form": "customer"},
                "dimensions": [{"name": "d", "field": field}], "measures": [{"name": "n", "agg": "count"}]}

    answers = {}
    for field in ("contact_phone", "company_name"):  # sealed at rest / only masked, for a modeler
        response = client.post(f"{API}/definitions", headers=as_("modeler"), json=report(field))
        assert response.status_code == 422, response.text
        answers[field] = [(e["path"], e["code"]) for e in body(response)["errors"]]
    assert answers == {"contact_phone": [("/dimensions/0/field", "field.not_readable")],
                       "company_name": [("/dimensions/0/field", "field.not_readable")]}
    admin = client.post(f"{API}/definitions", headers=as_("admin"), json=report("contact_phone"))
    assert admin.status_code == 422 and codes(admin) == ["definition.sensitive_field"]  # who may read it is told why


# -- 4. every refusal is audited, a made-up id is not ----------------------------------------


def test_refused_instance_reads_and_task_actions_are_audited(client: Any, world: World, as_: Any) -> None:
    for who, path in (("cust1", f"/instances/{world.a2_instance}"), ("cust1", f"/instances/{world.a2_instance}/timeline"),
                      ("cs", f"/instances/{world.a1_instance}"), ("cs", f"/instances/{world.a1_instance}/timeline")):
        assert client.get(f"{API}{path}", headers=as_(who)).status_code == 404, (who, path)
    ghost = str(uuid.uuid4())
    assert client.get(f"{API}/instances/{ghost}", headers=as_("cs")).status_code == 404
    assert client.get(f"{API}/instances/{ghost}/timeline", headers=as_("cs")).status_code == 404
    entries = denials(client, as_)
    assert entries == [("cust-01", "instance.read", "instance.not_found")] * 2 + [
        ("cs-01", "instance.read", "instance.not_found")] * 2
    # four eyes: a manager may not approve the request they submitted
    own = client.post(f"{API}/forms/credit_limit_adjustment/records", headers=as_("am1"), json={
        "customer_id": world.c1, "current_limit": 100, "requested_limit": 200, "reason": "mine"})
    assert own.status_code == 201, own.text
    case = client.get(f"{API}/instances/{body(own)['instances'][0]['id']}", headers=as_("am1"))
    task = [t for t in body(case)["tasks"] if t["status"] == "open"][0]
    refused = client.post(f"{API}/tasks/{task['id']}/approve", headers=as_("am1"), json={})
    assert refused.status_code == 403 and codes(refused) == ["task.own_request"], refused.text
    # a countersign: the same risk officer may not sign twice
    assert client.post(f"{API}/tasks/{world.a2_task}/approve", headers=as_("am2"), json={}).status_code == 200
    countersign = [t for t in body(client.get(f"{API}/instances/{world.a2_instance}", headers=as_("risk")))["tasks"]
                   if t["status"] == "open"]
    assert [t["state"] for t in countersign] == ["risk_countersign"] * 2  # two different risk officers
    assert client.post(f"{API}/tasks/{countersign[0]['id']}/approve", headers=as_("risk"), json={}).status_code == 200
    again = [t for t in body(client.get(f"{API}/instances/{world.a2_instance}", headers=as_("risk")))["tasks"]
             if t["status"] == "open"]
    twice = client.post(f"{API}/tasks/{again[0]['id']}/approve", headers=as_("risk"), json={})
    assert twice.status_code == 403 and codes(twice) == ["task.already_signed"], twice.text
    assert denials(client, as_)[len(entries):] == [("mgr-01", "task.act", "task.own_request"),
                                                   ("risk-01", "task.act", "task.already_signed")]


# -- 3. a tag computed from data one may not read is not shown --------------------------------


def test_a_tag_from_deposit_balances_is_hidden_from_who_may_not_read_deposit_accounts(
        client: Any, world: World, as_: Any, bank_roles: Engine) -> None:
    bank_roles.submit("deposit_account", {"customer_id": world.c1, "product": "current", "average_balance": 6000000}, SYSTEM)
    bank_roles.submit("complaint", {"customer_id": world.c1, "channel": "web", "product": "loan", "issue": "fees",
                                    "received_on": bank_roles.clock.now().date().isoformat()}, SYSTEM)

    def tagged(who: str, tag: str) -> Any:
        return client.get(f"{API}/forms/customer/records?tag={tag}", headers=as_(who))

    assert [item["id"] for item in body(tagged("admin", "cash_rich"))["items"]] == [world.c1]
    hidden, unknown = tagged("cs", "cash_rich"), tagged("cs", "no_such_tag")
    assert hidden.status_code == unknown.status_code == 422
    assert hidden.text.replace("cash_rich", "T") == unknown.text.replace("no_such_tag", "T")  # as for an unknown tag
    assert [e["code"] for e in body(hidden)["errors"]] == ["record.unknown_tag"]

    def tags_in_360(who: str) -> tuple[set[str], set[str]]:
        view = client.get(f"{API}/records/{world.c1}/360", headers=as_(who))
        assert view.status_code == 200, view.text
        return ({item["tag"] for item in body(view)["tags"]},
                {entry["tag"] for entry in body(view)["timeline"] if entry["type"].startswith("tag.")})

    assert tags_in_360("admin") == ({"cash_rich", "cross_sell", "complained_recently"},) * 2
    # customer service reads complaints, not deposit accounts
    assert tags_in_360("cs") == ({"complained_recently"},) * 2


# -- 7. the inbox follows object scopes and step grants ---------------------------------------


def test_the_inbox_lists_only_tasks_one_could_act_on_in_one_s_scope(client: Any, world: World, as_: Any) -> None:
    def inbox(who: str, query: str = "") -> set[tuple[str, str]]:
        response = client.get(f"{API}/tasks{query}", headers=as_(who))
        assert response.status_code == 200, response.text
        page = body(response)
        assert page["total"] == len(page["items"])
        return {(item.get("id") or item["instance_id"], item["view"]) for item in page["items"]
                if item["process"] == "credit_limit_adjustment"}

    assert inbox("risk") == set()  # reads every application, acts only on the countersign
    assert inbox("credit") == set()  # the branch credit review, not the manager's
    assert inbox("am1") == {(world.a1_task, "staff")}
    assert inbox("head") == {(world.a1_task, "staff")}  # every credit step, of the own branch
    assert inbox("cust1") == {(world.a1_instance, "applicant")}  # the public view of the own case
    assert client.post(f"{API}/tasks/{world.a2_task}/approve", headers=as_("am2"), json={}).status_code == 200
    assert {state for _id, state in inbox("risk")} == {"staff"} and len(inbox("risk")) == 2  # the countersign
    assert (world.a2_task, "staff") in inbox("am2", "?status=all")  # what one acted on stays listed
