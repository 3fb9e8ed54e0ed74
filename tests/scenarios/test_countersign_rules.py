"""Countersign semantics that do not depend on how the definition orders its actions, distinct
signers, four eyes, and a process bound to its own form only."""
from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from engine import Engine, Forbidden, Principal, ValidationFailed

FORM = {"kind": "form", "key": "request", "title": "Request", "process": "signoff",
        "schema": {"type": "object", "properties": {"amount": {"type": "number", "x-decimal": {"scale": 2}}}}}


def _process(actions: dict[str, Any]) -> dict[str, Any]:
    return {"kind": "process", "key": "signoff", "form": "request", "title": "Sign-off", "start": "sign",
            "states": {"sign": {"type": "countersign", "policy": "all",
                                "assignees": [{"role": "r1"}, {"role": "r2"}, {"role": "r3"}], "actions": actions},
                       "yes": {"type": "end", "outcome": "approved"}, "no": {"type": "end", "outcome": "rejected"}}}


REJECT_FIRST = {"reject": {"quorum": "one", "transitions": [{"to": "no"}]},
                "approve": {"quorum": "all", "transitions": [{"to": "yes"}]}}
SIGNERS = {role: Principal(f"user-{role}", frozenset({role})) for role in ("r1", "r2", "r3")}


@pytest.fixture
def signoff(engine: Engine) -> Engine:
    engine.upload(FORM)
    engine.upload(_process(REJECT_FIRST))
    return engine


def _tasks(engine: Engine, instance_id: str) -> dict[str, str]:
    return {t["assignee_role"]: t["id"] for t in engine.instance(instance_id)["tasks"] if t["status"] == "open"}


def test_approval_needs_every_signer_even_when_reject_is_declared_first(signoff: Engine) -> None:
    instance_id = signoff.submit("request", {"amount": Decimal("10.00")}, Principal("clerk"))["instances"][0]["id"]
    tasks = _tasks(signoff, instance_id)
    assert signoff.act(tasks["r1"], "approve", SIGNERS["r1"])["state"] == "sign"
    assert signoff.act(tasks["r2"], "approve", SIGNERS["r2"])["state"] == "sign"
    final = signoff.act(tasks["r3"], "approve", SIGNERS["r3"])
    assert (final["state"], final["outcome"]) == ("yes", "approved")


def test_one_person_holding_two_signer_roles_cannot_sign_twice(signoff: Engine) -> None:
    instance_id = signoff.submit("request", {"amount": Decimal("10.00")}, Principal("clerk"))["instances"][0]["id"]
    tasks = _tasks(signoff, instance_id)
    both = Principal("busy", frozenset({"r1", "r2"}))
    signoff.act(tasks["r1"], "approve", both)
    with pytest.raises(Forbidden) as caught:
        signoff.act(tasks["r2"], "approve", both)
    assert caught.value.code == "task.already_signed"
    assert _tasks(signoff, instance_id).keys() == {"r2", "r3"}


def test_submitter_cannot_approve_their_own_request(signoff: Engine) -> None:
    clerk = Principal("clerk", frozenset({"r1"}))
    instance_id = signoff.submit("request", {"amount": Decimal("10.00")}, clerk)["instances"][0]["id"]
    with pytest.raises(Forbidden) as caught:
        signoff.act(_tasks(signoff, instance_id)["r1"], "approve", clerk)
    assert caught.value.code == "task.own_request"


def test_a_form_cannot_borrow_another_forms_process(signoff: Engine) -> None:
    from engine import DefinitionInvalid

    with pytest.raises(DefinitionInvalid) as refused:
        signoff.upload({**FORM, "key": "intruder", "title": "Intruder"})
    assert refused.value.issues[0].path == "/process"
    # uploaded before the process existed, then the process was bound to another form
    signoff.upload({**FORM, "key": "intruder", "title": "Intruder", "process": "later"})
    signoff.upload({**_process(REJECT_FIRST), "key": "later"})
    with pytest.raises(ValidationFailed) as caught:
        signoff.submit("intruder", {"amount": Decimal("1.00")}, Principal("clerk"))
    assert caught.value.issues[0].code == "record.no_process"
    assert signoff.records("intruder")["total"] == 0


def test_countersign_actions_must_declare_their_quorum(engine: Engine) -> None:
    engine.upload(FORM)
    from engine import DefinitionInvalid

    with pytest.raises(DefinitionInvalid) as caught:
        engine.upload(_process({"approve": {"transitions": [{"to": "yes"}]}, "reject": {"quorum": "one", "transitions": [{"to": "no"}]}}))
    assert any(issue.path.startswith("/states/sign/actions/approve") for issue in caught.value.issues)
