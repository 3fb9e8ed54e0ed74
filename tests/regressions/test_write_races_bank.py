"""Mixed writers racing on the bank example (threads; real overlap on PostgreSQL): submissions
with sensitive values (read back and audited in their transaction), credit applications
starting processes, two actions racing on one task, actions on absent tasks and on tasks of a
closed instance, submissions rolled back inside their transaction (a reference gone), and
definition uploads. Proves (passes when no bug) that after it all:
- the audit chain verifies (one append lock per transaction: 2c1ca88),
- the event feed read page by page has no gap and no duplicate,
- of two actions on one task exactly one wins and the other gets 409 task.not_open.
Covers a mix no existing race test has (tests/workflow/test_races.py uses one small process)."""
from __future__ import annotations

import threading
from collections import Counter
from typing import Any, Callable

from engine import Conflict, Engine
from engine.errors import EngineError, NotFound, ValidationFailed
from engine.security import SYSTEM, Principal

CUST = Principal("cust-01", frozenset({"customer"}), {})
AM1 = Principal("mgr-01", frozenset({"account_manager"}), {"branch": "FZ01"})
ADMIN = Principal("adm-01", frozenset({"admin"}), {})
MISSING = "00000000-0000-4000-8000-000000000000"


def _run(calls: list[Callable[[], Any]]) -> list[tuple[str, Any]]:
    barrier = threading.Barrier(len(calls), timeout=60)
    out: list[tuple[str, Any]] = [("none", None)] * len(calls)

    def go(index: int, call: Callable[[], Any]) -> None:
        barrier.wait()
        try:
            out[index] = ("ok", call())
        except Conflict as exc:
            out[index] = ("conflict", exc.code)
        except EngineError as exc:
            out[index] = (type(exc).__name__, exc.code)
        except BaseException as exc:  # noqa: BLE001
            out[index] = ("crash", repr(exc))

    threads = [threading.Thread(target=go, args=item) for item in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(180)
    return out


def _open_task(engine: Engine, instance_id: str) -> str:
    return [task["id"] for task in engine.instance(instance_id)["tasks"] if task["status"] == "open"][0]


def test_mixed_writers_keep_chain_feed_and_task_outcomes(bank_roles: Engine) -> None:
    engine = bank_roles
    customer = engine.submit("customer", {"company_name": "Acme", "account_manager": "mgr-01", "branch": "FZ01"})["id"]
    body = {"customer_id": customer, "current_limit": 100, "requested_limit": 150, "reason": "growth"}
    applications = [engine.submit("credit_limit_adjustment", body, CUST)["instances"][0]["id"] for _ in range(4)]
    tasks = [_open_task(engine, instance) for instance in applications]
    engine.cancel_instance(applications[3], ADMIN, "stop")  # a closed instance's task
    calls: list[Callable[[], Any]] = []
    for n in range(3):
        calls.append(lambda n=n: engine.submit("customer", {"company_name": f"C{n}", "contact_phone": "+86 591 8765 4321",
                                                            "account_manager": "mgr-01", "branch": "FZ01"}, AM1))
        calls.append(lambda: engine.submit("credit_limit_adjustment", body, CUST))
        calls.append(lambda: engine.submit("credit_limit_adjustment", {**body, "customer_id": MISSING}, CUST))
    for task in tasks[:3]:
        calls.append(lambda task=task: engine.act(task, "approve", AM1))
        calls.append(lambda task=task: engine.act(task, "reject", AM1))
    calls.append(lambda: engine.act(tasks[3], "approve", AM1))
    calls.append(lambda: engine.act(MISSING, "approve", AM1))
    calls.append(lambda: engine.upload({"kind": "tag", "key": "race_tag", "profile": "customer_360", "title": "Race",
                                        "rule": {">": [{"var": "agg.average_balance"}, 1]}}))
    out = _run(calls)
    assert [item for item in out if item[0] == "crash"] == []
    kinds = Counter(item[0] if item[0] != "ValidationFailed" else "invalid" for item in out)
    assert kinds["invalid"] == 3, out
    acts = out[9:15]
    for pair in (acts[0:2], acts[2:4], acts[4:6]):
        assert sorted(kind for kind, _ in pair) == ["conflict", "ok"], pair
        assert [code for kind, code in pair if kind == "conflict"] == ["task.not_open"]
    assert out[15] == ("conflict", "task.not_open"), out[15]  # cancelling closed its tasks (as before d56ac48)
    assert out[16] == ("NotFound", "task.not_found"), out[16]

    verified = engine.verify_audit()
    assert verified.intact, verified
    seqs: list[int] = []
    after = 0
    while True:
        page = engine.events(after=after, limit=7)
        seqs += [item["seq"] for item in page["items"]]
        if not page["items"]:
            break
        after = page["next"]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), seqs
    assert len(set(seqs)) == len(seqs)
