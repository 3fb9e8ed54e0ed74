"""A modeler (``definitions.upload`` without ``roles.manage``) cannot widen what it sees by
uploading a form or a process: dropping ``"sensitive": true`` of a field needs
``roles.manage`` (403 ``access.denied``); a form's reference fill, a process's rules and its
notifications may read only fields the uploader reads in full (422 ``field.not_readable`` at
the place)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from test_roles_bank import World, as_, body, codes, world  # noqa: F401 - fixtures

API = "/api/v1"
BANK = Path(__file__).resolve().parents[2] / "examples" / "bank"


def bank(name: str) -> dict[str, Any]:
    return json.loads((BANK / name).read_text())


def test_dropping_sensitive_of_a_form_field_needs_roles_manage(client: Any, world: World, as_: Any) -> None:
    form = bank("forms/customer.json")
    assert form["schema"]["properties"]["contact_phone"]["sensitive"] is True
    del form["schema"]["properties"]["contact_phone"]["sensitive"]
    refused = client.post(f"{API}/definitions", headers=as_("modeler"), json=form)
    assert refused.status_code == 403, refused.text
    assert codes(refused) == ["access.denied"] and body(refused)["errors"][0]["params"]["function"] == "roles.manage"
    assert client.get(f"{API}/definitions/form/customer", headers=as_("admin")).json()["version"] == 1
    # a change that keeps every seal is still the modeler's to make
    kept = bank("forms/customer.json")
    kept["title"] = "Customer (renamed)"
    assert client.post(f"{API}/definitions", headers=as_("modeler"), json=kept).status_code == 201
    # the admin holds roles.manage
    assert client.post(f"{API}/definitions", headers=as_("admin"), json=form).status_code == 201


def test_a_form_fill_may_copy_only_fields_its_uploader_reads(client: Any, world: World, as_: Any) -> None:
    form = bank("forms/credit_limit_adjustment.json")
    form["refs"]["customer_id"]["fill"]["customer_risk_level"] = "company_name"  # masked for a modeler
    refused = client.post(f"{API}/definitions", headers=as_("modeler"), json=form)
    assert refused.status_code == 422, refused.text
    assert codes(refused) == ["field.not_readable"]
    error = body(refused)["errors"][0]
    assert error["path"] == "/refs/customer_id/fill/customer_risk_level" and error["params"]["field"] == "company_name"
    assert client.post(f"{API}/definitions", headers=as_("admin"), json=form).status_code == 201


def test_a_process_may_route_and_notify_only_on_fields_its_uploader_reads(client: Any, world: World, as_: Any) -> None:
    process = bank("processes/credit_limit_adjustment.json")
    harmless = json.loads(json.dumps(process))
    harmless["max_send_backs"] = 4
    assert client.post(f"{API}/definitions", headers=as_("modeler"), json=harmless).status_code == 201, "over-refused"

    routed = json.loads(json.dumps(process))
    routed["states"]["triage"]["transitions"][0]["when"] = {"==": [{"var": "reason"}, "expansion"]}  # masked
    refused = client.post(f"{API}/definitions", headers=as_("modeler"), json=routed)
    assert refused.status_code == 422, refused.text
    assert codes(refused) == ["field.not_readable"]
    assert body(refused)["errors"][0]["path"] == "/states/triage/transitions/0/when/==/0/var"
    assert body(refused)["errors"][0]["params"]["field"] == "reason"

    told = json.loads(json.dumps(process))
    told["notify"][0]["template"]["en"] = "Reason: {reason}"
    refused = client.post(f"{API}/definitions", headers=as_("modeler"), json=told)
    assert refused.status_code == 422, refused.text
    assert codes(refused) == ["field.not_readable"]
    assert body(refused)["errors"][0]["path"] == "/notify/0/template/en"
    assert client.post(f"{API}/definitions", headers=as_("admin"), json=told).status_code == 201
