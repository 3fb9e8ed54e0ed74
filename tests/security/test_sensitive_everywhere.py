"""No plaintext of a sensitive field lands in any table, whatever path wrote it: submission,
PATCH, import, a trigger that updates a record, a trigger that starts a process (its rule
decisions record ``[sensitive]``), a task action; a reference fill copies a sensitive value
only into a sensitive field; a notification addressed from a sensitive field is refused at
upload. SQLite and (when configured) PostgreSQL."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from engine import Engine, Principal
from engine.errors import DefinitionInvalid
from tests.security.test_field_encryption import _dump_every_table, _engine, key_file  # noqa: F401

SECRETS = {"income": 9876543, "phone": "13811112222", "patched": "13733334444", "imported": "13655556666",
           "via_trigger": "13599990000"}
CLERK = Principal("clerk-1", frozenset({"clerk"}))
OFFICER = Principal("officer-1", frozenset({"officer"}))

LEAD = {"kind": "form", "key": "lead", "title": "Lead", "schema": {"type": "object", "properties": {
    "name": {"type": "string"}, "income": {"type": "integer", "sensitive": True},
    "phone": {"type": "string", "sensitive": True}, "region": {"type": "string"},
    "owner": {"type": "string"}}}, "refs": {"owner": {"form": "owner"}}}
OWNER = {"kind": "form", "key": "owner", "title": "Owner", "schema": {"type": "object", "properties": {
    "name": {"type": "string"}, "hotline": {"type": "string", "sensitive": True},
    "flag": {"type": "string"}}}}
VET = {"kind": "process", "key": "vet", "form": "lead", "title": "Vet", "start": "check",
       "states": {"check": {"type": "auto", "transitions": [
           {"when": {">": [{"var": "income"}, 1000]}, "to": "review"}, {"to": "done"}]},
           "review": {"type": "task", "title": "Review", "assignee": {"role": "officer"},
                      "actions": {"ok": {"title": "OK", "transitions": [
                          {"when": {"==": [{"var": "phone"}, "0"]}, "to": "done"},
                          {"to": "done"}]}}},
           "done": {"type": "end", "outcome": "vetted"}}}
START = {"kind": "trigger", "key": "vet_leads", "title": "Vet leads", "on": "record.created", "form": "lead",
         "when": {"==": [{"var": "region"}, "Fujian"]}, "start": "vet"}
UPDATE = {"kind": "trigger", "key": "flag_owner", "title": "Flag owner", "on": "record.updated", "form": "lead",
          "when": {"==": [{"var": "region"}, "Zhejiang"]}, "update": {"ref": "owner", "set": {"flag": "moved"}}}


@pytest.fixture
def sealed(database_url: str, key_file: Path) -> Any:  # noqa: F811
    eng = _engine(database_url, key_file)
    eng.migrate()
    for definition in (OWNER, LEAD, VET, START, UPDATE):
        eng.upload(definition)
    yield eng
    eng.close()


def test_a_trigger_started_process_records_sensitive_inputs_as_placeholders(sealed: Engine) -> None:
    lead = sealed.submit("lead", {"name": "A", "income": SECRETS["income"], "phone": SECRETS["phone"],
                                  "region": "Fujian"}, CLERK)
    [instance] = sealed.record(lead["id"])["instances"]
    history = sealed.instance(instance["id"])["history"]
    decided = [event["detail"]["inputs"] for event in history if event["detail"] and "inputs" in event["detail"]]
    assert decided == [{"income": "[sensitive]"}]  # the rule saw the value: it went to review
    assert instance["state"] == "review"


def test_no_path_writes_a_sensitive_plaintext_into_any_table(sealed: Engine, tmp_path: Path) -> None:
    owner = sealed.submit("owner", {"name": "O", "hotline": SECRETS["via_trigger"]}, CLERK)
    lead = sealed.submit("lead", {"name": "A", "income": SECRETS["income"], "phone": SECRETS["phone"],
                                  "region": "Fujian", "owner": owner["id"]}, CLERK)
    [task] = sealed.tasks(role="officer")["items"]  # started by the trigger
    sealed.act(task["id"], "ok", OFFICER, None)
    other = sealed.submit("lead", {"name": "C", "phone": SECRETS["phone"], "region": "Hubei", "owner": owner["id"]},
                          CLERK)  # no process: it may be patched
    sealed.update(other["id"], {"phone": SECRETS["patched"], "region": "Zhejiang"}, CLERK, 1)  # fires flag_owner
    assert sealed.record(owner["id"])["data"] == {"name": "O", "hotline": SECRETS["via_trigger"], "flag": "moved"}
    source = tmp_path / "leads.jsonl"
    source.write_text(json.dumps({"name": "B", "income": 5555, "phone": SECRETS["imported"], "region": "Fujian"})
                      + "\n", encoding="utf-8")
    assert sealed.run_import("lead", source).imported == 1
    [task] = sealed.tasks(role="officer")["items"]  # the imported lead's, started by the trigger
    sealed.act(task["id"], "ok", OFFICER, None)
    everything = _dump_every_table(sealed)
    assert "[sensitive]" in everything
    for secret in SECRETS.values():
        assert str(secret) not in everything, secret


def _callback(key: str, *, sensitive: bool) -> dict[str, Any]:
    return {"kind": "form", "key": key, "title": "Callback", "schema": {"type": "object", "properties": {
        "owner": {"type": "string"}, "callback_phone": {"type": "string", **({"sensitive": True} if sensitive else {})}}},
        "refs": {"owner": {"form": "owner", "fill": {"callback_phone": "hotline"}}}}


def test_a_fill_from_a_sensitive_field_into_a_plain_one_is_refused_at_upload(sealed: Engine) -> None:
    with pytest.raises(DefinitionInvalid) as caught:
        sealed.upload(_callback("leaky_callback", sensitive=False))
    assert [(issue.path, issue.code) for issue in caught.value.issues] == [
        ("/refs/owner/fill/callback_phone", "definition.sensitive_fill")]


def test_a_fill_opens_the_sensitive_source_and_seals_it_again(sealed: Engine, tmp_path: Path) -> None:
    sealed.upload(_callback("callback", sensitive=True))
    owner = sealed.submit("owner", {"name": "O", "hotline": SECRETS["via_trigger"]}, CLERK)
    submitted = sealed.submit("callback", {"owner": owner["id"]}, CLERK)
    assert submitted["data"]["callback_phone"] == SECRETS["via_trigger"]
    source = tmp_path / "callbacks.jsonl"
    source.write_text(json.dumps({"owner": owner["id"]}) + "\n", encoding="utf-8")
    assert sealed.run_import("callback", source).imported == 1
    records = sealed.records("callback")["items"]
    assert [sealed.record(item["id"])["data"]["callback_phone"] for item in records] == [SECRETS["via_trigger"]] * 2
    assert SECRETS["via_trigger"] not in _dump_every_table(sealed)


def _notifying(key: str, to: Any, template: str) -> dict[str, Any]:
    return {**VET, "key": key, "notify": [{"on": "enter", "to": to, "channel": "sms",
                                           "template": {"en": template, "zh-CN": template}}]}


@pytest.mark.parametrize(("to", "template", "path", "code"), [
    ({"field": "phone"}, "Lead {name}: {state}", "/notify/0/to/field", "definition.sensitive_recipient"),
    ({"field": "region"}, "Lead {name} earns {income}", "/notify/0/template/en", "definition.sensitive_placeholder"),
])
def test_a_notification_cannot_put_a_sensitive_value_in_the_outbox(sealed: Engine, to: Any, template: str,
                                                                   path: str, code: str) -> None:
    with pytest.raises(DefinitionInvalid) as caught:
        sealed.upload(_notifying("vet_notifying", to, template))
    assert (caught.value.issues[0].path, caught.value.issues[0].code) == (path, code)


def test_a_notification_from_plain_fields_is_written(sealed: Engine) -> None:
    sealed.upload(_notifying("vet", {"field": "region"}, "Lead {name}: {state}"))  # a new version of vet
    sealed.submit("lead", {"name": "Ann", "income": SECRETS["income"], "phone": SECRETS["phone"],
                           "region": "Fujian"}, CLERK)
    everything = _dump_every_table(sealed)
    assert "address:Fujian" in everything and "Lead Ann" in everything
    assert str(SECRETS["income"]) not in everything and SECRETS["phone"] not in everything


BANK_SECRETS = ("350102198001011234", "13800001111", "8765 4321", "8123 4567", "8555 0101")


def test_the_bank_writes_no_sensitive_plaintext_on_any_path(engine: Engine, tmp_path: Path) -> None:
    engine.load_dir(Path(__file__).resolve().parents[2] / "examples" / "bank",
                    kinds=("form", "process", "profile", "tag", "trigger"))
    person = engine.submit("person", {"full_name": "Wang Fang", "id_number": BANK_SECRETS[0],
                                      "phone": BANK_SECRETS[1]})
    customer = engine.submit("customer", {"company_name": "Acme Trading", "risk_level": "low",
                                          "contact_phone": "+86 591 " + BANK_SECRETS[2],
                                          "legal_representative": person["id"]})["id"]
    engine.update(customer, {"contact_phone": "+86 591 " + BANK_SECRETS[3]}, Principal("mgr-01", frozenset({"admin"})), 1)
    source = tmp_path / "customers.jsonl"
    source.write_text(json.dumps({"company_name": "Beta Ltd", "contact_phone": "+86 591 " + BANK_SECRETS[4]}) + "\n",
                      encoding="utf-8")
    assert engine.run_import("customer", source).imported == 1
    engine.submit("account_flow_alert", {"customer_id": customer, "amount": 1000000, "observed_on": "2024-05-01"})
    [task] = engine.tasks(role="risk_officer")["items"]  # started by the trigger large_flow_review
    engine.act(task["id"], "confirm", Principal("risk-01", frozenset({"risk_officer"})), "confirmed")
    record = engine.record(customer)
    assert (record["data"]["risk_level"], record["data"]["contact_phone"]) == ("high", "+86 591 " + BANK_SECRETS[3])
    everything = _dump_every_table(engine)
    for secret in BANK_SECRETS:
        assert secret not in everything, secret
