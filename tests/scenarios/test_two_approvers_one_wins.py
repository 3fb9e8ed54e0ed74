"""Two people act on the same task at the same moment: exactly one step happens."""
from __future__ import annotations

import threading
from decimal import Decimal
from typing import Any

from engine import Conflict, Engine, Principal
from engine.store.models import InstanceEventRow, TaskRow

MANAGERS = [Principal(f"mgr-{n}", frozenset({"account_manager"})) for n in range(2)]


def _pending_task(bank: Engine) -> str:
    customer = bank.submit("customer", {"company_name": "Race Co", "region": "Fujian"})
    record = bank.submit("credit_limit_adjustment", {
        "customer_id": customer["id"], "current_limit": Decimal("1000000.00"),
        "requested_limit": Decimal("1500000.00"), "reason": "Working capital", "risk_rating": "medium"})
    return str(bank.tasks(role="account_manager")["items"][0]["id"]) if record else ""


def test_second_approver_gets_conflict(bank: Engine) -> None:
    for round_number in range(5):
        task_id = _pending_task(bank)
        barrier = threading.Barrier(2)
        outcomes: list[str] = []

        def act(actor: Principal, action: str) -> None:
            barrier.wait()
            try:
                bank.act(task_id, action, actor)
                outcomes.append("ok")
            except Conflict:
                outcomes.append("conflict")

        threads = [threading.Thread(target=act, args=(MANAGERS[0], "approve")),
                   threading.Thread(target=act, args=(MANAGERS[1], "reject"))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(outcomes) == ["conflict", "ok"], (round_number, outcomes)
        with bank.db.read() as session:
            task = session.get(TaskRow, task_id)
            assert task is not None and task.status == "completed"
            completions = session.query(InstanceEventRow).filter(
                InstanceEventRow.task_id == task_id, InstanceEventRow.event == "task_completed").count()
            assert completions == 1
        instance = bank.instance(bank.task(task_id)["instance_id"])
        expected = "risk_countersign" if task.action == "approve" else "rejected"
        assert instance["state"] == expected
        # the instance left manager_review exactly once
        assert sum(1 for step in instance["history"] if step["from"] == "manager_review" and step["event"] == "transition") == 1


def test_concurrent_countersign_approvals_both_count(bank: Engine) -> None:
    task_id = _pending_task(bank)
    bank.act(task_id, "approve", MANAGERS[0])
    instance_id = bank.task(task_id)["instance_id"]
    sign = [t for t in bank.instance(instance_id)["tasks"] if t["state"] == "risk_countersign"]
    actors = {task["id"]: Principal(f"r{index}", frozenset({"risk_officer"})) for index, task in enumerate(sign)}
    barrier = threading.Barrier(2)
    failures: list[Exception] = []

    def approve(task: dict[str, Any]) -> None:
        barrier.wait()
        try:
            bank.act(task["id"], "approve", actors[task["id"]])
        except Exception as exc:  # noqa: BLE001
            failures.append(exc)

    threads = [threading.Thread(target=approve, args=(task,)) for task in sign]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    final = bank.instance(instance_id)
    assert (final["state"], final["outcome"]) == ("approved", "approved")
