"""Real races: threads released together by a barrier against one database. On PostgreSQL the
transactions truly overlap (the instance row lock serialises them); on SQLite ``BEGIN
IMMEDIATE`` queues the writers, so the same interleavings happen one after the other. Either
way there is exactly one outcome per race, and the loser of an exclusive race gets 409."""
from __future__ import annotations

import random
import threading
from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from functools import partial
from typing import Any

import pytest
from sqlalchemy import select
from workflow_support import (
    CLERK,
    by_user,
    countersign,
    end,
    event_count,
    install,
    only_task,
    outbox_count,
    person,
    start,
    task,
    timer_rows,
    transitions,
)

from engine import Conflict, Engine, FakeClock
from engine.errors import EngineError
from engine.store.models import InstanceEventRow

ROUNDS = 20
_ORDER = random.Random(20260105)
"""Threads are started in a shuffled (but reproducible) order: the last one to reach the
barrier runs on without being woken, which would otherwise favour one side every round."""
REVIEWER = person("rev", "reviewer")


def race(*calls: Callable[[], Any]) -> list[tuple[str, Any]]:
    """Run ``calls`` at once; each ends as ``("ok", result)``, ``("conflict", code)`` or
    ``("error", exception)`` (in the order given)."""
    barrier = threading.Barrier(len(calls))
    outcomes: list[tuple[str, Any]] = [("error", None)] * len(calls)

    def run(index: int, call: Callable[[], Any]) -> None:
        barrier.wait()
        try:
            outcomes[index] = ("ok", call())
        except Conflict as exc:
            outcomes[index] = ("conflict", exc.code)
        except Exception as exc:  # noqa: BLE001 - reported by the assertions
            outcomes[index] = ("error", exc)

    threads = [threading.Thread(target=run, args=(index, call)) for index, call in enumerate(calls)]
    _ORDER.shuffle(threads)
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return outcomes


def _countersign(engine: Engine, approve: Any, reject: Any) -> None:
    install(engine, {"sign": countersign([{"field": "approvers"}], approve=(approve, "yes"), reject=(reject, "no")),
                     "yes": end("approved"), "no": end("rejected")}, start="sign")


# -- (a) the last two signatures at once -----------------------------------------------------------

def test_last_two_countersign_approvals_at_once_both_count_and_step_once(engine: Engine, race_tally: Counter[str]) -> None:
    """``all``: the two signatures are serialised by the instance lock, both succeed, and the
    second of them takes the step, exactly once."""
    _countersign(engine, "all", "one")
    for round_number in range(ROUNDS):
        instance_id = start(engine, {"approvers": ["u1", "u2", "u3"]})
        tasks = by_user(engine, instance_id)
        engine.act(tasks["u1"], "approve", person("u1"))
        outcomes = race(partial(engine.act, tasks["u2"], "approve", person("u2")),
                        partial(engine.act, tasks["u3"], "approve", person("u3")))
        race_tally["rounds"] += 1
        race_tally.update(kind for kind, _ in outcomes)
        assert [kind for kind, _ in outcomes] == ["ok", "ok"], (round_number, outcomes)
        assert sorted(result["status"] for _, result in outcomes) == ["active", "completed"], round_number
        view = engine.instance(instance_id)
        assert (view["status"], view["outcome"]) == ("completed", "approved")
        assert transitions(engine, instance_id) == [("sign", "yes", "approve")]
        assert outbox_count(engine, "instance.state_changed", instance_id) == 1
        assert outbox_count(engine, "instance.completed", instance_id) == 1
        assert event_count(engine, instance_id, "task_completed") == 3
        assert event_count(engine, instance_id, "ended") == 1


def test_last_two_signers_of_an_any_countersign_one_wins_the_other_gets_409(engine: Engine,
                                                                           race_tally: Counter[str]) -> None:
    _countersign(engine, "one", "all")
    for round_number in range(ROUNDS):
        instance_id = start(engine, {"approvers": ["u1", "u2"]})
        tasks = by_user(engine, instance_id)
        outcomes = race(partial(engine.act, tasks["u1"], "approve", person("u1")),
                        partial(engine.act, tasks["u2"], "approve", person("u2")))
        race_tally["rounds"] += 1
        race_tally.update(kind if kind == "ok" else f"409 {detail}" for kind, detail in outcomes)
        assert sorted(kind for kind, _ in outcomes) == ["conflict", "ok"], (round_number, outcomes)
        assert [detail for kind, detail in outcomes if kind == "conflict"] == ["task.not_open"]
        view = engine.instance(instance_id)
        assert sorted(t["status"] for t in view["tasks"]) == ["cancelled", "completed"]
        assert outbox_count(engine, "instance.state_changed", instance_id) == 1
        assert event_count(engine, instance_id, "task_completed") == 1


def test_an_approval_and_a_rejection_as_the_last_two_signatures(engine: Engine, race_tally: Counter[str]) -> None:
    """``all`` / reject ``one``: the rejection decides whatever the order; the approval either
    counted first (both succeed) or came too late (409)."""
    _countersign(engine, "all", "one")
    for round_number in range(ROUNDS):
        instance_id = start(engine, {"approvers": ["u1", "u2", "u3"]})
        tasks = by_user(engine, instance_id)
        engine.act(tasks["u1"], "approve", person("u1"))
        approval, rejection = race(partial(engine.act, tasks["u2"], "approve", person("u2")),
                                   partial(engine.act, tasks["u3"], "reject", person("u3")))
        race_tally["rounds"] += 1
        race_tally[f"approval {approval[0]}"] += 1
        assert rejection[0] == "ok", (round_number, rejection)
        assert approval in (("conflict", "task.not_open"),) or approval[0] == "ok", (round_number, approval)
        view = engine.instance(instance_id)
        assert (view["status"], view["outcome"]) == ("completed", "rejected")
        expected = ["completed", "completed", "completed"] if approval[0] == "ok" else ["cancelled", "completed", "completed"]
        assert sorted(t["status"] for t in view["tasks"]) == expected
        assert outbox_count(engine, "instance.state_changed", instance_id) == 1


# -- (b) an approval, the reminder timer and a withdrawal --------------------------------------------

def test_approval_reminder_and_withdraw_race_to_one_outcome(engine: Engine, clock: FakeClock,
                                                            race_tally: Counter[str]) -> None:
    install(engine, {"check": task("reviewer", sla={"due": "PT4H", "remind": [{"after": "PT1H"}]}, approve="second"),
                     "second": task("lead", approve="done"), "done": end("approved")}, start="check")
    for round_number in range(ROUNDS):
        instance_id = start(engine)
        check = only_task(engine, instance_id)["id"]
        clock.advance(timedelta(hours=1, minutes=30))  # this instance's reminder is due
        # odd rounds: a worker that listed the due timers just before the others started
        worker = engine.run_timers if round_number % 2 == 0 else _worker_that_already_listed(engine)
        approval, timers, withdrawal = race(partial(engine.act, check, "approve", REVIEWER), worker,
                                            partial(engine.withdraw, instance_id, CLERK))
        race_tally["rounds"] += 1
        assert timers[0] == "ok", (round_number, timers)
        fired = timers[1]["fired"]
        race_tally[f"reminder fired {fired}"] += 1
        assert (timers[1]["cancelled"], timers[1]["failed"]) == (0, 0)
        assert sorted((approval[0], withdrawal[0])) == ["conflict", "ok"], (round_number, approval, withdrawal)
        view = engine.instance(instance_id)
        if approval[0] == "ok":
            race_tally["approval won"] += 1
            assert withdrawal == ("conflict", "instance.already_decided")
            assert (view["status"], view["state"]) == ("active", "second")
            decisive = "task_completed"
        else:
            race_tally["withdraw won"] += 1
            assert approval == ("conflict", "task.not_open")
            assert (view["status"], view["state"]) == ("withdrawn", "check")
            assert event_count(engine, instance_id, "task_completed") == 0
            decisive = "withdrawn"
        (reminder,) = [row for row in timer_rows(engine, instance_id, check) if row.kind == "remind"]
        assert reminder.status == ("fired" if fired else "cancelled")
        assert event_count(engine, instance_id, "reminded") == fired
        assert outbox_count(engine, "notify.remind", instance_id) == fired
        with engine.db.read() as session:
            order = [row.event for row in session.scalars(select(InstanceEventRow).where(
                InstanceEventRow.instance_id == instance_id, InstanceEventRow.event.in_(["reminded", decisive]))
                .order_by(InstanceEventRow.id)).all()]
        assert order == (["reminded", decisive] if fired else [decisive])  # never a reminder after the end
        assert outbox_count(engine, "instance.state_changed", instance_id) == 1


def _worker_that_already_listed(engine: Engine) -> Callable[[], dict[str, int]]:
    """A worker round split where a real worker may be preempted: the due timers are claimed
    now, each is fired (in its own transaction, as ``fire_due_timers`` does) when called."""
    from engine.workflow.timers import claim_due_timers, fire_one

    now = engine.clock.now()
    due = claim_due_timers(engine.db, now, limit=200)

    def fire() -> dict[str, int]:
        counts = {"fired": 0, "cancelled": 0, "failed": 0}
        for claim in due:
            with engine.db.transaction() as session:
                outcome = fire_one(session, claim, now, engine.registry.process, engine.settings.supervisor_roles)
            if outcome in counts:
                counts[outcome] += 1
        return counts

    return fire


def test_a_timeout_and_a_person_race_to_one_completion(engine: Engine, clock: FakeClock,
                                                       race_tally: Counter[str]) -> None:
    """Deferred choice under a real race: the task is completed once, by whoever came first."""
    install(engine, {"offer": task("reviewer", sla={"due": "PT4H", "timeout": {"after": "PT1H", "action": "expire"}},
                                   accept="yes", expire="lapsed"),
                     "yes": end("accepted"), "lapsed": end("lapsed")}, start="offer")
    for round_number in range(ROUNDS):
        instance_id = start(engine)
        offer = only_task(engine, instance_id)["id"]
        clock.advance(timedelta(hours=1))
        worker = engine.run_timers if round_number % 2 == 0 else _worker_that_already_listed(engine)
        person_call, timers = race(partial(engine.act, offer, "accept", REVIEWER), worker)
        race_tally["rounds"] += 1
        assert timers[0] == "ok", (round_number, timers)
        view = engine.instance(instance_id)
        if person_call[0] == "ok":
            race_tally["person won"] += 1
            assert (timers[1]["fired"], view["outcome"]) == (0, "accepted")
        else:
            race_tally["timeout won"] += 1
            assert person_call == ("conflict", "task.not_open"), (round_number, person_call)
            assert (timers[1]["fired"], view["outcome"]) == (1, "lapsed")
        assert event_count(engine, instance_id, "task_completed") == 1
        assert outbox_count(engine, "instance.completed", instance_id) == 1


# -- (c) one action sent twice with one idempotency key ---------------------------------------------

def _twice_with_one_key(engine: Engine, race_tally: Counter[str]) -> list[str]:
    _countersign(engine, "all", "one")
    failures = []
    for round_number in range(ROUNDS):
        instance_id = start(engine, {"approvers": ["u1", "u2"]})
        task_id = by_user(engine, instance_id)["u1"]
        key = f"retry-{round_number}"
        twin = partial(engine.act, task_id, "approve", person("u1"), idempotency_key=key)
        outcomes = race(twin, twin)
        race_tally["rounds"] += 1
        race_tally.update(kind if kind == "ok" else f"{kind} {detail}" for kind, detail in outcomes)
        assert event_count(engine, instance_id, "task_completed") == 1
        assert outbox_count(engine, "task.created", instance_id) == 2  # nothing opened twice
        if [kind for kind, _ in outcomes] != ["ok", "ok"]:
            failures.append(f"round {round_number}: {outcomes}")
            continue
        first, second = (result for _, result in outcomes)
        assert (first["state"], first["status"]) == (second["state"], second["status"]) == ("sign", "active")
        assert first["tasks"] == second["tasks"]
    return failures


def test_the_same_action_twice_at_once_with_one_key_steps_once_and_answers_twice(engine: Engine,
                                                                                race_tally: Counter[str]) -> None:
    failures = _twice_with_one_key(engine, race_tally)
    assert failures == []


def test_a_retry_after_the_first_call_committed_replays_it(engine: Engine) -> None:
    _countersign(engine, "all", "one")
    instance_id = start(engine, {"approvers": ["u1", "u2"]})
    task_id = by_user(engine, instance_id)["u1"]
    first = engine.act(task_id, "approve", person("u1"), idempotency_key="k-1")
    again = engine.act(task_id, "approve", person("u1"), idempotency_key="k-1")
    assert again == first
    assert event_count(engine, instance_id, "task_completed") == 1
    with pytest.raises(Conflict):  # without the key the same request is a new one, and too late
        engine.act(task_id, "approve", person("u1"))


def test_one_key_for_another_request_is_refused(engine: Engine) -> None:
    _countersign(engine, "all", "one")
    instance_id = start(engine, {"approvers": ["u1", "u2"]})
    tasks = by_user(engine, instance_id)
    engine.act(tasks["u1"], "approve", person("u1"), idempotency_key="k-2")
    with pytest.raises(EngineError) as caught:
        engine.act(tasks["u1"], "reject", person("u1"), idempotency_key="k-2")
    assert (caught.value.status, caught.value.code) == (422, "record.idempotency_key_reused")
    with pytest.raises(EngineError) as other_task:
        engine.act(tasks["u2"], "approve", person("u1"), idempotency_key="k-2")
    assert other_task.value.code == "record.idempotency_key_reused"


def test_a_late_retry_replays_the_first_answer_not_the_current_state(engine: Engine) -> None:
    _countersign(engine, "all", "one")
    instance_id = start(engine, {"approvers": ["u1", "u2"]})
    tasks = by_user(engine, instance_id)
    first = engine.act(tasks["u1"], "approve", person("u1"), idempotency_key="k-3")
    engine.act(tasks["u2"], "approve", person("u2"))
    assert engine.act(tasks["u1"], "approve", person("u1"), idempotency_key="k-3") == first
