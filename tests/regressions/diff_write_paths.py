"""Differential script (not a pytest module): runs the same bank scenarios through the Engine
and prints one normalised JSON line per step (ids replaced by their order of appearance), so
the output of two checkouts can be diffed:

    PYTHONPATH=/tmp/wt-old python tests/regressions/diff_write_paths.py > old.txt
    PYTHONPATH=/work/main  python tests/regressions/diff_write_paths.py > new.txt
    diff old.txt new.txt

Covers: submit response vs GET of the same record (masks, sensitive values, read_sensitive
audit entries), missing / out-of-scope references with and without other issues, restricted
roles, idempotent replays, task actions on absent/foreign/closed tasks (IDOR answers)."""
from __future__ import annotations

import json
import re
import sys
import tempfile
import traceback
from dataclasses import replace
from pathlib import Path

from engine import Engine, FakeClock
from engine.config import Settings
from engine.definitions.metaschema import KINDS
from engine.security import SYSTEM, Principal
from engine.store.models import AuditRow

BANK = Path(__file__).resolve().parents[2] / "examples" / "bank"
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|\b[0-9a-f]{32}\b")
names: dict[str, str] = {}


def norm(value):
    text = json.dumps(value, sort_keys=True, default=str)
    return UUID.sub(lambda m: names.setdefault(m.group(0), f"<id{len(names)}>"), text)


def P(user, *roles, **attributes):
    return Principal(user, frozenset(roles), attributes)


def main(url: str) -> None:
    engine = Engine(url, clock=FakeClock(), settings=replace(Settings.from_env(), trust_identity_headers=True))
    engine.migrate()
    engine.load_dir(BANK, kinds=tuple(kind for kind in KINDS if kind != "roles"))
    engine.load_dir(BANK, kinds=("roles",))
    seen_audit = [0]

    def audit_since():
        with engine.db.read() as session:
            rows = session.query(AuditRow).order_by(AuditRow.id).all()
        new = rows[seen_audit[0]:]
        seen_audit[0] = len(rows)
        return [(r.actor, r.action, r.object_type, r.object_id, r.detail) for r in new]

    def step(label, call):
        try:
            out = {"ok": call()}
        except Exception as exc:  # noqa: BLE001
            out = {"error": type(exc).__name__, "status": getattr(exc, "status", None),
                   "body": exc.to_body() if hasattr(exc, "to_body") else traceback.format_exc(limit=2)}
        out["audit"] = audit_since()
        print(label, norm(out))
        return out.get("ok")

    am1, am2 = P("mgr-01", "account_manager", branch="FZ01"), P("mgr-02", "account_manager", branch="XM02")
    cs, analyst = P("cs-01", "customer_service"), P("an-01", "analyst")
    cust1, cust2 = P("cust-01", "customer"), P("cust-02", "customer")
    head, credit = P("head-01", "branch_head", branch="FZ01"), P("bco-01", "branch_credit_reviewer", branch="FZ01")
    admin, risk = P("adm-01", "admin"), P("risk-01", "risk_officer")
    audit_since()
    c1 = step("c1", lambda: engine.submit("customer", {"company_name": "Fuzhou Tea", "uscc": "91350100M000100Y43",
              "contact_phone": "+86 591 8765 4321", "account_manager": "mgr-01", "branch": "FZ01"}, am1))
    c1id = c1["id"]
    c2 = step("c2", lambda: engine.submit("customer", {"company_name": "Xiamen Port", "contact_phone": "+86 592 1",
              "account_manager": "mgr-02", "branch": "XM02"}, SYSTEM))
    c2id = c2["id"]
    for name, who in (("am1", am1), ("am2", am2), ("cs", cs), ("analyst", analyst), ("head", head), ("sys", SYSTEM)):
        step(f"get-c1-{name}", lambda who=who: engine.record(c1id, who))
    step("c-out-of-scope", lambda: engine.submit("customer", {"company_name": "X", "account_manager": "mgr-02",
                                                              "branch": "XM02"}, am1))
    step("person-admin", lambda: engine.submit("person", {"full_name": "Li Lei", "id_number": "350102199001011234",
                                                          "phone": "13800000000"}, admin))
    step("person-sys", lambda: engine.submit("person", {"full_name": "Han Mei", "id_number": "350102199001011235"}))
    good = {"current_limit": 1000000, "requested_limit": 1500000, "reason": "Harvest"}
    a1 = step("a1-cust1", lambda: engine.submit("credit_limit_adjustment", {**good, "customer_id": c1id}, cust1))
    step("a1-get-cust1", lambda: engine.record(a1["id"], cust1))
    step("a1-get-cust2", lambda: engine.record(a1["id"], cust2))
    a2 = step("a2-am1", lambda: engine.submit("credit_limit_adjustment", {**good, "customer_id": c1id}, am1))
    step("a2-get-am1", lambda: engine.record(a2["id"], am1))
    missing = "00000000-0000-4000-8000-000000000000"
    for who_name, who in (("sys", SYSTEM), ("am1", am1), ("cust1", cust1)):
        step(f"ref-missing-{who_name}", lambda who=who: engine.submit("credit_limit_adjustment",
                                                                     {**good, "customer_id": missing}, who))
        step(f"ref-missing+issue-{who_name}", lambda who=who: engine.submit("credit_limit_adjustment",
             {"current_limit": 1, "customer_id": missing}, who))
        step(f"ref-other-scope-{who_name}", lambda who=who: engine.submit("credit_limit_adjustment",
                                                                         {**good, "customer_id": c2id}, who))
        step(f"ref-other-scope+issue-{who_name}", lambda who=who: engine.submit("credit_limit_adjustment",
             {"current_limit": 1, "customer_id": c2id}, who))
        step(f"ref-other-form-{who_name}", lambda who=who: engine.submit("credit_limit_adjustment",
                                                                        {**good, "customer_id": a1["id"]}, who))
        step(f"evaluate-missing-{who_name}", lambda who=who: engine.evaluate("credit_limit_adjustment",
                                                                            {**good, "customer_id": missing}, who))
    first = step("idem-1", lambda: engine.submit_replayable("customer", {"company_name": "Idem", "contact_phone": "+86 591 8765 4321",
                 "account_manager": "mgr-01", "branch": "FZ01"}, am1, idempotency_key="k-1").__dict__)
    step("idem-2", lambda: engine.submit_replayable("customer", {"company_name": "Idem", "contact_phone": "+86 591 8765 4321",
         "account_manager": "mgr-01", "branch": "FZ01"}, am1, idempotency_key="k-1").__dict__)
    step("idem-3-other-body", lambda: engine.submit_replayable("customer", {"company_name": "Idem2",
         "account_manager": "mgr-01", "branch": "FZ01"}, am1, idempotency_key="k-1").__dict__)
    step("idem-get", lambda: engine.record(first["record"]["id"], cs))
    # tasks
    inst = a1["instances"][0]["id"]
    tasks = step("a1-instance-sys", lambda: engine.instance(inst))
    open_tasks = [t["id"] for t in tasks["tasks"] if t["status"] == "open"]
    step("inst-cust2", lambda: engine.instance(inst, cust2))
    step("inst-am2", lambda: engine.instance(inst, am2))
    for tid in open_tasks:
        step("task-am2", lambda tid=tid: engine.task(tid, am2))
        step("act-am2", lambda tid=tid: engine.act(tid, "approve", am2))
        step("act-cust2", lambda tid=tid: engine.act(tid, "approve", cust2))
        step("claim-am2", lambda tid=tid: engine.claim_task(tid, am2))
        step("act-bad-action", lambda tid=tid: engine.act(tid, "nonsense", am1))
    step("act-absent", lambda: engine.act(missing, "approve", am1))
    step("act-absent-sys", lambda: engine.act(missing, "approve", SYSTEM))
    step("act-garbage", lambda: engine.act("not-a-uuid", "approve", am1))
    step("act-record-id", lambda: engine.act(c1id, "approve", am1))
    step("withdraw-am2", lambda: engine.withdraw(inst, am2))
    step("cancel", lambda: engine.cancel_instance(inst, SYSTEM, "stop"))
    for tid in open_tasks:
        step("act-closed", lambda tid=tid: engine.act(tid, "approve", SYSTEM))
        step("act-closed-am1", lambda tid=tid: engine.act(tid, "approve", am1))
        step("task-closed", lambda tid=tid: engine.task(tid, am1))
    step("instance-of-record-id", lambda: engine.instance(c1id, am1))
    step("verify", lambda: engine.verify_audit() if hasattr(engine, "verify_audit") else None)
    # a full approval path with comments, then the stored rows of the workflow tables
    boss = P("boss-01", "admin")
    app3 = step("a3", lambda: engine.submit("credit_limit_adjustment", {**good, "customer_id": c1id,
                                                                       "requested_limit": 9000000}, cust1))
    inst3 = app3["instances"][0]["id"]
    for round_ in range(6):
        view = engine.instance(inst3)
        open_ = [t for t in view["tasks"] if t["status"] == "open"]
        if not open_:
            break
        for k, t in enumerate(open_):
            who = P("mgr-01" if t["assignee_role"] == "account_manager" else f"u{k}-{t['assignee_role']}", t["assignee_role"] or "admin", branch="FZ01")
            step(f"a3-act-{round_}", lambda t=t, who=who: engine.act(t["id"], "approve", who, comment=f"ok {round_}"))
            step(f"a3-task-{round_}", lambda t=t: engine.task(t["id"]))
    step("a3-final", lambda: engine.instance(inst3))
    step("a3-record", lambda: engine.record(app3["id"]))
    from sqlalchemy import text
    with engine.db.engine.connect() as connection:
        for table in ("tasks", "timers", "instance_events", "instances", "outbox", "changes", "record_values",
                      "record_tags", "events"):
            try:
                rows = connection.execute(text(f"SELECT * FROM {table}")).mappings().all()
            except Exception as exc:  # noqa: BLE001
                print("table", table, "absent", type(exc).__name__)
                continue
            skip = {"id", "seq"}
            shown = sorted(norm({k: v for k, v in row.items() if k not in skip}) for row in rows)
            print("table", table, len(rows))
            for line in shown:
                print("  ", line)
    engine.close()


if __name__ == "__main__":
    url = sys.argv[1] if len(sys.argv) > 1 else f"sqlite:///{tempfile.mkdtemp()}/diff.db"
    main(url)
