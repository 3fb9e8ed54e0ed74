"""Scope SQL cached per (condition, form, wanted value) (6662be8, lru_cache in
engine/security/scope.py) and record_visible given the instance's form: principals of one role
whose attributes differ, asked alternately in one process (the cache warm for the other), must
each see only their own branch, on every route (list, record, 360, instance, task, act, via a
reference scope), through API tokens carrying the attributes too; a principal without the
attribute, or with it empty, sees nothing. Passes when no bug."""
from __future__ import annotations

from typing import Any, Callable

import pytest

from engine import Engine
from engine.errors import NotFound
from engine.security import SYSTEM, Principal

API = "/api/v1"


def _head(branch: str | None, user: str = "head") -> Principal:
    return Principal(f"{user}-{branch}", frozenset({"branch_head"}), {} if branch is None else {"branch": branch})


@pytest.fixture
def world(bank_roles: Engine) -> dict[str, Any]:
    engine = bank_roles
    out: dict[str, Any] = {}
    for branch in ("FZ01", "XM02"):
        customer = engine.submit("customer", {"company_name": f"C {branch}", "branch": branch})["id"]
        application = engine.submit("credit_limit_adjustment", {"customer_id": customer, "current_limit": 100,
                                    "requested_limit": 150, "reason": "growth"},
                                    Principal(f"cust-{branch}", frozenset({"customer"}), {}))
        instance = application["instances"][0]["id"]
        task = [t["id"] for t in engine.instance(instance)["tasks"] if t["status"] == "open"][0]
        out[branch] = {"customer": customer, "application": application["id"], "instance": instance, "task": task}
    return out


def test_alternating_principals_see_only_their_branch(bank_roles: Engine, world: dict[str, Any]) -> None:
    engine = bank_roles
    for _ in range(2):
        for mine, theirs in (("FZ01", "XM02"), ("XM02", "FZ01")):
            me = _head(mine)
            page = engine.records("credit_limit_adjustment", actor=me)
            assert {item["id"] for item in page["items"]} == {world[mine]["application"]} and page["total"] == 1
            assert engine.record(world[mine]["application"], me)["id"] == world[mine]["application"]
            assert engine.instance(world[mine]["instance"], me)["id"] == world[mine]["instance"]
            assert engine.task(world[mine]["task"], me)["id"] == world[mine]["task"]
            for call in (lambda: engine.record(world[theirs]["application"], me),
                         lambda: engine.record(world[theirs]["customer"], me),
                         lambda: engine.record_360(world[theirs]["customer"], me),
                         lambda: engine.instance(world[theirs]["instance"], me),
                         lambda: engine.task(world[theirs]["task"], me),
                         lambda: engine.act(world[theirs]["task"], "approve", me),
                         lambda: engine.claim_task(world[theirs]["task"], me)):
                with pytest.raises(NotFound):
                    call()
            inbox = engine.tasks(actor=me)
            assert {item["id"] for item in inbox["items"]} <= {world[mine]["task"]}


@pytest.mark.parametrize("attributes", [None, ""])
def test_no_or_empty_attribute_sees_nothing(bank_roles: Engine, world: dict[str, Any], attributes: Any) -> None:
    engine = bank_roles
    _head("FZ01").id  # warm the cache with a real branch first
    engine.records("credit_limit_adjustment", actor=_head("FZ01"))
    me = _head(None) if attributes is None else Principal("head-empty", frozenset({"branch_head"}), {"branch": ""})
    assert engine.records("credit_limit_adjustment", actor=me)["total"] == 0
    with pytest.raises(NotFound):
        engine.instance(world["FZ01"]["instance"], me)
    with pytest.raises(NotFound):
        engine.act(world["FZ01"]["task"], "approve", me)


def test_tokens_with_attributes_through_the_api(bank_roles: Engine, world: dict[str, Any], client: Any,
                                               token_for: Callable[..., dict[str, str]]) -> None:
    fz = token_for("head-fz", ["branch_head"], {"branch": "FZ01"})
    xm = token_for("head-xm", ["branch_head"], {"branch": "XM02"})
    for headers, mine, theirs in ((fz, "FZ01", "XM02"), (xm, "XM02", "FZ01"), (fz, "FZ01", "XM02")):
        assert client.get(f"{API}/records/{world[mine]['application']}", headers=headers).status_code == 200
        assert client.get(f"{API}/instances/{world[mine]['instance']}", headers=headers).status_code == 200
        for path in (f"/records/{world[theirs]['application']}", f"/instances/{world[theirs]['instance']}",
                     f"/tasks/{world[theirs]['task']}"):
            assert client.get(f"{API}{path}", headers=headers).status_code == 404, path
        acted = client.post(f"{API}/tasks/{world[theirs]['task']}/approve", headers=headers, json={})
        assert acted.status_code == 404, acted.text
