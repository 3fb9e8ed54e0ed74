"""A tag reading an aggregate whose ``where`` reads ``_process`` (the customer profile's
``total_approved_limit``: credit applications whose instance ended approved) must follow the
task action that completes the instance, as a from-scratch ``recompute_tags`` decides
(ae97fcb: only the aggregates the tags read are computed, latest instances only when a where
reads _process). Passes when no bug."""
from __future__ import annotations

from pathlib import Path

from sqlalchemy import select

from engine import Engine
from engine.definitions.metaschema import KINDS
from engine.security import Principal
from engine.store.models import RecordTagRow

BANK = Path(__file__).resolve().parents[2] / "examples" / "bank"
TAG = {"kind": "tag", "key": "approved_limit_holder", "profile": "customer_360", "title": "Approved limit holder",
       "rule": {">=": [{"var": "agg.total_approved_limit"}, 100]}}


def _tags(engine: Engine) -> set[tuple[str, str]]:
    with engine.db.read() as session:
        return {(row.record_id, row.tag) for row in session.scalars(select(RecordTagRow))}


def test_a_completed_approval_tags_the_customer(engine: Engine) -> None:
    engine.load_dir(BANK, kinds=tuple(kind for kind in KINDS if kind != "roles"))
    engine.upload(TAG)
    customer = engine.submit("customer", {"company_name": "Acme", "account_manager": "mgr-01"})["id"]
    application = engine.submit("credit_limit_adjustment", {"customer_id": customer, "current_limit": 100,
                                                            "requested_limit": 110, "reason": "growth"},
                                Principal("cust-01", frozenset({"customer"})))
    instance = application["instances"][0]["id"]
    for round_ in range(8):
        view = engine.instance(instance)
        if view["status"] != "active":
            break
        for k, task in enumerate(t for t in view["tasks"] if t["status"] == "open"):
            engine.act(task["id"], "approve", Principal(f"u{round_}{k}", frozenset({task["assignee_role"] or "admin"})))
    assert engine.instance(instance)["outcome"] == "approved"
    live = _tags(engine)
    engine.recompute_tags()
    assert live == _tags(engine)
    assert (customer, "approved_limit_holder") in live
