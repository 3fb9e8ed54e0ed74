"""Tags after a trigger chain: an account-flow alert of 1,000,000 starts risk_review (trigger
large_flow_review); confirming the risk completes it and the trigger
risk_confirmed_raises_customer_risk sets the customer's risk_level to high in the same
transaction. A tag reading the customer's own field (risk_level) and one reading an aggregate
must then be what a from-scratch ``recompute_tags`` gives (ae97fcb/2906eeb: records the hook
already read are not read again; a record whose tags read only agg.* is not opened). Passes
when no bug."""
from __future__ import annotations

from pathlib import Path

from sqlalchemy import select

from engine import Engine
from engine.definitions.metaschema import KINDS
from engine.security import Principal
from engine.store.models import RecordTagRow

BANK = Path(__file__).resolve().parents[2] / "examples" / "bank"


def _tags(engine: Engine) -> set[tuple[str, str]]:
    with engine.db.read() as session:
        return {(row.record_id, row.tag) for row in session.scalars(select(RecordTagRow))}


def test_tags_follow_a_trigger_update_in_the_completing_transaction(engine: Engine) -> None:
    engine.load_dir(BANK, kinds=tuple(kind for kind in KINDS if kind != "roles"))
    engine.upload({"kind": "tag", "key": "high_risk", "profile": "customer_360", "title": "High risk",
                   "rule": {"==": [{"var": "risk_level"}, "high"]}})
    engine.upload({"kind": "tag", "key": "high_risk_with_money", "profile": "customer_360", "title": "High risk, money",
                   "rule": {"and": [{"==": [{"var": "risk_level"}, "high"]}, {">": [{"var": "agg.average_balance"}, 0]}]}})
    customer = engine.submit("customer", {"company_name": "Acme", "risk_level": "low"})["id"]
    engine.submit("deposit_account", {"customer_id": customer, "product": "current", "average_balance": 5})
    alert = engine.submit("account_flow_alert", {"customer_id": customer, "amount": 1000000,
                                                 "observed_on": "2026-01-01"})
    assert alert["instances"], alert
    instance = alert["instances"][0]["id"]
    view = engine.instance(instance)
    task = [t for t in view["tasks"] if t["status"] == "open"][0]
    actions = engine.task(task["id"]).get("actions") or []
    action = next((a for a in ("confirm", "risk_confirmed", "approve") if a in str(actions)), "confirm")
    engine.act(task["id"], action, Principal("risk-01", frozenset({task["assignee_role"] or "risk_officer"})),
               comment="confirmed")
    assert engine.record(customer)["data"]["risk_level"] == "high"
    live = _tags(engine)
    engine.recompute_tags()
    assert live == _tags(engine)
    assert {(customer, "high_risk"), (customer, "high_risk_with_money")} <= live
