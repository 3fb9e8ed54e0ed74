"""Workflow benchmark: the bank's credit-limit process on this engine against SpiffWorkflow (the same
process written as BPMN, benchmarks/bpmn/credit_limit_adjustment.bpmn), both measured in one run.

    .venv/bin/python benchmarks/workflow_vs_spiff.py [--memory-instances 2000] [--db-instances 150]
                                                    [--repeat 3] [--pg-url URL | --no-pg]

Two request shapes, each completing user tasks with "approve" until the case ends:
  branch path: 15 % rise, medium risk -> manager review -> branch credit review (2 user tasks);
  risk path:   50 % rise, medium risk -> manager review -> risk countersign, two officers (3 user tasks).

(a) The pure transition, in memory, no I/O. The engine's `Runner` works inside a database session
    (it reads sibling tasks, writes rows), so this side is a small in-memory driver
    (`MemoryTransitions` below) over the engine's own compiled `ProcessSpec` that runs what a
    transition decides, calling the engine's code for each decision: `Runner.qualifies` (is the
    actor the task's assignee: role, claim, scope), the four-eyes check, the action lookup, the
    countersign vote count against `Quorum.needed` (the logic of `Runner._decision`, over
    in-memory tasks), `Runner._choose` (guards: `CompiledRule.holds` on the record plus
    `process.*`, first match wins, the decision kept for the audit) through `auto` states, and
    `Runner._resolve` + new task objects (uuid4 ids) when a human state is entered. A second row adds
    the SLA due times each new task gets (`Runner._due`: a business-calendar addition per due,
    remind and escalate step, as `Runner._schedule` computes them; like the engine, the driver
    makes one `Runner` per operation, which works each distinct duration out once). Not included:
    rows, notifications, history.
    SpiffWorkflow side: `BpmnWorkflow` in memory; per user task: find it by id, set its decision
    variable, `task.run()`, `workflow.do_engine_steps()` (gateways, split/join, end events), then
    list the READY manual tasks (what the next actor is offered).
    "start" rows: a new instance up to its first user task (ours: `MemoryTransitions.start`, the
    triage rule and the manager task; Spiff: `BpmnWorkflow(spec)`, the data, `do_engine_steps`).
    The best of --repeat passes is reported for each row.

(b) Durable steps, each action its own committed transaction on SQLite (a file, WAL, as the engine
    sets it) and PostgreSQL. Ours: `Engine.act(task_id, "approve", Principal(...))`, which locks
    the instance, re-reads the task and record, completes the task (conditional update), cancels
    its timers, writes history, change-sequence, audit, outbox (state change, task created,
    notifications) and timer rows for the next tasks, commits, then reads the instance view back
    (its return value). SpiffWorkflow: the workflow stays in memory between steps (a favourable
    assumption for it); per user task: complete it as in (a), `BpmnWorkflowSerializer.serialize_json`,
    and `UPDATE bench_spiff_workflow SET workflow = :json WHERE id = :id` in its own transaction
    through the same SQLAlchemy engine (same pool, pragmas and BEGIN IMMEDIATE on SQLite). A third,
    informational row is a stateless SpiffWorkflow server: per step SELECT the JSON, deserialize,
    complete, serialize, UPDATE, in one transaction. Instances are created before the clock starts
    (ours by `Engine.submit`, Spiff's by an INSERT of the serialized workflow).

PostgreSQL: only the database named by --pg-url (default: env LOWCODE_BENCH_PG_URL, else
postgresql+psycopg://postgres@127.0.0.1:5432/lowcode_bench). Its `public` schema is dropped and
recreated at the start of the run: that database must be used for nothing else. Create it with
`createdb -h 127.0.0.1 -U postgres lowcode_bench`. When it cannot be reached the PostgreSQL rows are
skipped with a message.

Timing is wall-clock (`time.perf_counter`), single process, single thread. Ratios are engine / peer
measured in the same run; absolute figures depend on the machine (printed with the results).
"""
from __future__ import annotations

import argparse
import os
import sqlite3
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any, Callable

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from sqlalchemy import Column, MetaData, String, Table, Text, create_engine, insert, select, text, update

from _machine import describe  # noqa: E402 (benchmarks/ is this script's folder)
from engine import Engine, Principal
from engine.security import SYSTEM
from engine.errors import Conflict, Forbidden, NotFound
from engine.forms.bulk import prepare_submission
from engine.jsoncodec import dumps, loads
from engine.workflow.runtime import Runner
from engine.workflow.spec import InstanceStatus, ProcessSpec, StateSpec, StateType, TaskStatus

BANK = REPO / "examples" / "bank"
BPMN = Path(__file__).resolve().parent / "bpmn" / "credit_limit_adjustment.bpmn"
PROCESS = "credit_limit_adjustment"
DEFAULT_PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/lowcode_bench"

APPLICANT = Principal("clerk-7", frozenset({"teller"}))
# With the bank's roles loaded, each officer sees only their customers (the account manager:
# those they manage; the branch reviewer: those of their branch), so (b) files the customer
# under mgr-01 and branch FJ-01, and submits the applications as the system (not mgr-01: no one
# approves their own request).
DURABLE_APPLICANT = SYSTEM
ACTORS = {
    "manager_review": [Principal("mgr-01", frozenset({"account_manager"}))],
    "branch_credit_review": [Principal("bcr-01", frozenset({"branch_credit_reviewer"}), {"branch": "FJ-01"})],
    "risk_countersign": [Principal("risk-01", frozenset({"risk_officer"})),
                         Principal("risk-02", frozenset({"risk_officer"}))],
}
"""Who acts on each state's tasks (the countersign's two tasks go to two different officers)."""

SPIFF_DECISION = {"manager_review": "manager_decision", "branch_credit_review": "branch_decision",
                  "risk_officer_1": "risk_decision_1", "risk_officer_2": "risk_decision_2"}
"""The variable each BPMN user task writes its decision to."""


@dataclass(frozen=True)
class Scenario:
    name: str
    request: dict[str, Any]
    user_tasks: int
    outcome: str


SCENARIOS = (
    Scenario("branch path (manager, branch review)",
             {"current_limit": Decimal("1000000.00"), "requested_limit": Decimal("1150000.00"),
              "risk_rating": "medium", "reason": "Seasonal working capital"}, 2, "approved"),
    Scenario("risk path (manager, 2-officer countersign)",
             {"current_limit": Decimal("1000000.00"), "requested_limit": Decimal("1500000.00"),
              "risk_rating": "medium", "reason": "Plant expansion"}, 3, "approved"),
)


# -- (a) our side: the transition decisions, in memory ------------------------------------------


@dataclass(eq=False)
class MemoryTask:
    """The fields of a task row that the decisions read (`Runner.qualifies` reads these names)."""

    state: str
    entry: int
    assignee_role: str | None
    assignee_user: str | None
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    claimed_by: str | None = None
    scope_attribute: str | None = None
    scope_value: str | None = None
    status: str = TaskStatus.OPEN.value
    action: str | None = None
    acted_by: str | None = None
    origin: str | None = None
    due_at: datetime | None = None
    timers: tuple[datetime, ...] = ()


@dataclass(eq=False)
class MemoryInstance:
    """The fields of an instance row that the decisions read (`Runner._context` reads
    ``variables`` and ``started_by``), its tasks by id, and its position."""

    started_by: str
    record: dict[str, Any]
    state: str = ""
    status: str = InstanceStatus.ACTIVE.value
    outcome: str | None = None
    variables: str = "{}"
    tasks: dict[str, MemoryTask] = field(default_factory=dict)
    entries: dict[str, int] = field(default_factory=dict)
    decisions: list[dict[str, Any]] = field(default_factory=list)


class MemoryTransitions:
    """Compiled spec + instance state + action -> outcome, with the engine's decision code and
    no session. Covers task, countersign, auto and end states (the bank process has no parallel
    state); tasks added by "add approver" (waiting tasks) do not occur here."""

    def __init__(self, spec: ProcessSpec, now: datetime, *, with_sla: bool) -> None:
        self.spec = spec
        self.now = now
        self.with_sla = with_sla
        self.runner = self._runner()

    def _runner(self) -> Runner:
        """The engine's Runner, used only for its session-free decision methods; a new one per
        operation, as the engine makes (what it works out once per operation, such as the SLA
        due times, is not carried over to the next)."""
        return Runner(None, self.spec, self.now)  # type: ignore[arg-type]

    def start(self, record: dict[str, Any], actor: Principal) -> MemoryInstance:
        instance = MemoryInstance(started_by=actor.id, record=record)
        self.runner = self._runner()
        self._run(instance, self.spec.start)
        return instance

    def act(self, instance: MemoryInstance, task_id: str, action: str, actor: Principal) -> list[MemoryTask]:
        """Complete the task; return the tasks opened by the move (empty while a countersign
        waits for more signers, or when the case ended)."""
        task = instance.tasks.get(task_id)
        if task is None:
            raise NotFound("task.not_found")
        if task.status != TaskStatus.OPEN.value or instance.status != InstanceStatus.ACTIVE.value:
            raise Conflict("task.not_open")
        runner = self.runner = self._runner()
        if not runner.qualifies(task, actor):  # type: ignore[arg-type]
            raise Forbidden("task.not_assignee")
        state = self.spec.states[task.state]
        if state.four_eyes and actor.id == instance.started_by:
            raise Forbidden("task.own_request")
        actions = state.actions or {}
        if action not in actions:
            raise NotFound("task.unknown_action")
        entry = [t for t in instance.tasks.values() if t.state == task.state and t.entry == task.entry]
        if state.type is StateType.COUNTERSIGN and any(t.acted_by == actor.id for t in entry):
            raise Forbidden("task.already_signed")
        task.status, task.action, task.acted_by = TaskStatus.COMPLETED.value, action, actor.id
        decision = self._decision(state, entry, action)
        if decision is None:
            return []
        for sibling in entry:
            if sibling.status == TaskStatus.OPEN.value:
                sibling.status = TaskStatus.CANCELLED.value
        runner._data = instance.record
        target = runner._choose(actions[decision].transitions, f"{state.name}.{decision}", instance)  # type: ignore[arg-type]
        return self._run(instance, target)

    def _decision(self, state: StateSpec, entry: list[MemoryTask], action: str) -> str | None:
        """`Runner._decision` for tasks without "add approver": a task decides at once; a
        countersign when an action has its quorum of the signers' votes."""
        if state.type is not StateType.COUNTERSIGN:
            return action
        signers = [t for t in entry if t.status != TaskStatus.CANCELLED.value]
        votes: dict[str, int] = {}
        for signer in signers:
            if signer.status == TaskStatus.COMPLETED.value and signer.action is not None:
                votes[signer.action] = votes.get(signer.action, 0) + 1
        actions = state.actions or {}
        if votes.get(action, 0) >= actions[action].quorum.needed(len(signers)):
            return action
        for name, spec in actions.items():
            if votes.get(name, 0) >= spec.quorum.needed(len(signers)):
                return name
        if all(s.status == TaskStatus.COMPLETED.value for s in signers):
            return max(actions, key=lambda name: (votes.get(name, 0), -list(actions).index(name)))
        return None

    def _run(self, instance: MemoryInstance, target: str) -> list[MemoryTask]:
        runner = self.runner
        runner._data = instance.record
        while True:
            state = self.spec.states[target]
            instance.state = target
            if state.type is StateType.AUTO:
                target = runner._choose(state.transitions, target, instance, record_decision=True)  # type: ignore[arg-type]
                instance.decisions.append(runner._last_decision or {})
                runner._last_decision = None
                continue
            if state.type is StateType.END:
                instance.status, instance.outcome = InstanceStatus.COMPLETED.value, state.outcome
                return []
            if state.type is StateType.PARALLEL:
                raise NotImplementedError("parallel states are not driven in memory")
            return self._open(instance, state)

    def _open(self, instance: MemoryInstance, state: StateSpec) -> list[MemoryTask]:
        entry = instance.entries.get(state.name, 0) + 1
        instance.entries[state.name] = entry
        opened = []
        seen_users: set[str] = set()
        for assignee in state.assignees:
            for role, user, scope in self.runner._resolve(assignee, state.name, instance):  # type: ignore[arg-type]
                if user is not None:
                    if user in seen_users:
                        continue
                    seen_users.add(user)
                task = MemoryTask(state.name, entry, role, user)
                if scope is not None:
                    task.scope_attribute, task.scope_value = scope
                if self.with_sla and state.sla is not None:
                    sla, due = state.sla, self.runner._due
                    task.due_at = due(sla.due, sla.business)
                    task.timers = (task.due_at, *(due(s.after, s.business) for s in sla.remind),
                                   *(due(s.after, s.business) for s in sla.escalate))
                instance.tasks[task.id] = task
                opened.append(task)
        return opened


def actor_for(state: str, signed: int) -> Principal:
    """The person acting on the next task of ``state`` (the countersign's second task goes to the
    second officer)."""
    people = ACTORS[state]
    return people[min(signed, len(people) - 1)]


# -- SpiffWorkflow side ------------------------------------------------------------------------


class Spiff:
    """The BPMN process, parsed once; helpers to start and advance workflows."""

    def __init__(self) -> None:
        from SpiffWorkflow.bpmn.parser import BpmnParser
        from SpiffWorkflow.bpmn.serializer import BpmnWorkflowSerializer
        from SpiffWorkflow.bpmn.workflow import BpmnWorkflow
        from SpiffWorkflow.util.task import TaskState

        parser = BpmnParser()
        parser.add_bpmn_file(str(BPMN))
        self.spec = parser.get_spec(PROCESS)
        self.workflow_class = BpmnWorkflow
        self.ready = TaskState.READY
        self.completed = TaskState.COMPLETED
        self.serializer = BpmnWorkflowSerializer()

    def start(self, data: dict[str, Any]) -> tuple[Any, list[Any]]:
        workflow = self.workflow_class(self.spec)
        workflow.get_next_task(state=self.ready).data.update(data)
        workflow.do_engine_steps()
        return workflow, workflow.get_tasks(state=self.ready, manual=True)

    def outcome(self, workflow: Any) -> str | None:
        """"approved" or "rejected" by the end event reached; None while running."""
        if not workflow.is_completed():
            return None
        ends = [t.task_spec.name for t in workflow.get_tasks(state=self.completed) if t.task_spec.name.startswith(
            ("approved", "auto_approved", "rejected"))]
        return "approved" if any(name.startswith(("approved", "auto_approved")) for name in ends) else "rejected"

    def complete(self, workflow: Any, task_id: uuid.UUID, decision: str) -> list[Any]:
        """Complete a user task by id; return the user tasks now ready."""
        task = workflow.get_task_from_id(task_id)
        task.data[SPIFF_DECISION[task.task_spec.name]] = decision
        task.run()
        workflow.do_engine_steps()
        return workflow.get_tasks(state=self.ready, manual=True)


def spiff_data(record: dict[str, Any]) -> dict[str, Any]:
    """The record as a SpiffWorkflow deployment holds it: plain floats (its default serializer
    has no Decimal converter)."""
    return {key: float(value) if isinstance(value, Decimal) else value for key, value in record.items()}


# -- measuring ---------------------------------------------------------------------------------


@dataclass
class Row:
    part: str
    scenario: str
    database: str
    ours_what: str
    ours_ops: int
    ours_seconds: float
    peer_what: str
    peer_ops: int
    peer_seconds: float

    @property
    def ours_rate(self) -> float:
        return self.ours_ops / self.ours_seconds

    @property
    def peer_rate(self) -> float:
        return self.peer_ops / self.peer_seconds


def best_interleaved(plans: dict[str, Callable[[], tuple[int, float]]], repeat: int) -> dict[str, tuple[int, float]]:
    """Run every plan once untimed (warm-up), then ``repeat`` rounds of every plan in turn, so a
    change in the machine's load hits all of them; (ops, seconds) of each plan's fastest pass."""
    for plan in plans.values():
        plan()
    results: dict[str, list[tuple[int, float]]] = {key: [] for key in plans}
    for _ in range(repeat):
        for key, plan in plans.items():
            results[key].append(plan())
    return {key: min(passes, key=lambda result: result[1] / result[0]) for key, passes in results.items()}


def memory_rows(spec: ProcessSpec, records: dict[str, dict[str, Any]], spiff: Spiff, instances: int,
                repeat: int) -> list[Row]:
    now = datetime(2026, 3, 2, 1, 30, tzinfo=timezone.utc)
    plain = MemoryTransitions(spec, now, with_sla=False)
    with_sla = MemoryTransitions(spec, now, with_sla=True)
    rows: list[Row] = []

    def ours_start(driver: MemoryTransitions, record: dict[str, Any]) -> Callable[[], tuple[int, float]]:
        def run() -> tuple[int, float]:
            started = time.perf_counter()
            for _ in range(instances):
                driver.start(record, APPLICANT)
            return instances, time.perf_counter() - started
        return run

    def spiff_start(data: dict[str, Any]) -> Callable[[], tuple[int, float]]:
        def run() -> tuple[int, float]:
            started = time.perf_counter()
            for _ in range(instances):
                spiff.start(data)
            return instances, time.perf_counter() - started
        return run

    def ours_tasks(driver: MemoryTransitions, scenario: Scenario) -> Callable[[], tuple[int, float]]:
        record = records[scenario.name]

        def run() -> tuple[int, float]:
            prepared = []
            for _ in range(instances):
                instance = driver.start(record, APPLICANT)
                prepared.append((instance, [t.id for t in instance.tasks.values()]))
            done = 0
            started = time.perf_counter()
            for instance, open_ids in prepared:
                signed: dict[str, int] = {}
                while open_ids:
                    task_id = open_ids.pop(0)
                    state = instance.tasks[task_id].state
                    actor = actor_for(state, signed.get(state, 0))
                    signed[state] = signed.get(state, 0) + 1
                    open_ids += [t.id for t in driver.act(instance, task_id, "approve", actor)]
                    done += 1
            seconds = time.perf_counter() - started
            check(all(i.outcome == scenario.outcome for i, _ in prepared), f"ours, {scenario.name}: wrong outcome")
            check(done == instances * scenario.user_tasks, f"ours, {scenario.name}: {done} tasks")
            return done, seconds
        return run

    def spiff_tasks(scenario: Scenario) -> Callable[[], tuple[int, float]]:
        data = spiff_data(records[scenario.name])

        def run() -> tuple[int, float]:
            prepared = [spiff.start(data) for _ in range(instances)]
            done = 0
            started = time.perf_counter()
            for workflow, ready in prepared:
                open_ids = [task.id for task in ready]
                while open_ids:
                    task_id = open_ids.pop(0)
                    known = set(open_ids)
                    open_ids += [t.id for t in spiff.complete(workflow, task_id, "approve") if t.id not in known]
                    done += 1
            seconds = time.perf_counter() - started
            check(all(spiff.outcome(w) == scenario.outcome for w, _ in prepared), f"spiff, {scenario.name}: outcome")
            check(done == instances * scenario.user_tasks, f"spiff, {scenario.name}: {done} tasks")
            return done, seconds
        return run

    # Passes alternate between the sides so that a change in the machine's load hits both.
    first = SCENARIOS[0]
    plans: dict[str, Callable[[], tuple[int, float]]] = {
        "start/ours": ours_start(plain, records[first.name]),
        "start/ours+sla": ours_start(with_sla, records[first.name]),
        "start/spiff": spiff_start(spiff_data(records[first.name])),
    }
    for scenario in SCENARIOS:
        plans[f"{scenario.name}/ours"] = ours_tasks(plain, scenario)
        plans[f"{scenario.name}/ours+sla"] = ours_tasks(with_sla, scenario)
        plans[f"{scenario.name}/spiff"] = spiff_tasks(scenario)
    best = best_interleaved(plans, repeat)
    start_label = f"start to the first user task, {first.name.split(' (')[0]}"
    for variant, what in (("ours", "decisions"), ("ours+sla", "decisions + SLA due times")):
        rows.append(Row("a", start_label, "memory", f"{what}: instances", *best[f"start/{variant}"],
                        "BpmnWorkflow + do_engine_steps: instances", *best["start/spiff"]))
    for scenario in SCENARIOS:
        for variant, what in (("ours", "decisions"), ("ours+sla", "decisions + SLA due times")):
            rows.append(Row("a", scenario.name, "memory", f"{what}: user tasks", *best[f"{scenario.name}/{variant}"],
                            "run + do_engine_steps: user tasks", *best[f"{scenario.name}/spiff"]))
    return rows


def check(condition: bool, message: str) -> None:
    if not condition:
        raise SystemExit(f"benchmark sanity check failed: {message}")


# -- (b) durable steps -------------------------------------------------------------------------


def durable_rows(url: str, database: str, spiff: Spiff, instances: int) -> list[Row]:
    engine = Engine(url)
    engine.migrate()
    engine.load_dir(BANK)
    customer = engine.submit("customer", {"company_name": "Fujian Example Trading Co., Ltd.", "region": "Fujian",
                                          "risk_level": "low", "account_manager": "mgr-01", "branch": "FJ-01"},
                             SYSTEM)["id"]
    metadata = MetaData()
    table = Table("bench_spiff_workflow", metadata, Column("id", String(36), primary_key=True),
                  Column("workflow", Text, nullable=False))
    metadata.create_all(engine.db.engine)
    rows: list[Row] = []
    try:
        for scenario in SCENARIOS:
            request = {**scenario.request, "customer_id": customer}
            rows.extend(_durable_scenario(engine, table, spiff, scenario, request, database, instances))
    finally:
        engine.close()
    return rows


def _durable_scenario(engine: Engine, table: Table, spiff: Spiff, scenario: Scenario, request: dict[str, Any],
                      database: str, instances: int, rounds: int = 3) -> list[Row]:
    """Create the instances of all three sides first (untimed), then time them in ``rounds``
    alternating chunks: ours, SpiffWorkflow in memory + write, stateless SpiffWorkflow."""
    db = engine.db
    ours: list[str] = []  # the first open task of each instance
    for _ in range(instances):
        record = engine.submit("credit_limit_adjustment", request, DURABLE_APPLICANT)
        view = engine.instance(record["instances"][0]["id"])
        ours.append(next(t["id"] for t in view["tasks"] if t["status"] == "open"))
    data = spiff_data(loads(dumps(engine.record(record["id"])["data"])))
    kept: list[tuple[str, Any, list[Any]]] = []  # id, workflow kept in memory, first ready tasks
    stateless: list[tuple[str, list[Any]]] = []
    for _ in range(instances):
        for keep in (True, False):
            workflow, ready = spiff.start(data)
            workflow_id = str(uuid.uuid4())
            with db.transaction() as session:
                session.execute(insert(table).values(id=workflow_id, workflow=spiff.serializer.serialize_json(workflow)))
            if keep:
                kept.append((workflow_id, workflow, [task.id for task in ready]))
            else:
                stateless.append((workflow_id, [task.id for task in ready]))
    size = len(spiff.serializer.serialize_json(kept[0][1]))

    def run_ours(chunk: list[str]) -> int:
        done = 0
        for first in chunk:
            open_ids, signed, states = [first], {}, {first: "manager_review"}
            while open_ids:
                task_id = open_ids.pop(0)
                state = states[task_id]
                actor = actor_for(state, signed.get(state, 0))
                signed[state] = signed.get(state, 0) + 1
                view = engine.act(task_id, "approve", actor)
                for task in view["tasks"]:
                    if task["status"] == "open" and task["id"] not in states:
                        states[task["id"]] = task["state"]
                        open_ids.append(task["id"])
                done += 1
            check(view["outcome"] == scenario.outcome, f"Engine.act, {scenario.name}: outcome {view['outcome']}")
        return done

    def run_kept(chunk: list[tuple[str, Any, list[Any]]]) -> int:
        done = 0
        for workflow_id, workflow, first_ready in chunk:
            open_ids = list(first_ready)
            while open_ids:
                task_id = open_ids.pop(0)
                known = set(open_ids)
                open_ids += [t.id for t in spiff.complete(workflow, task_id, "approve") if t.id not in known]
                serialized = spiff.serializer.serialize_json(workflow)
                with db.transaction() as session:
                    session.execute(update(table).where(table.c.id == workflow_id).values(workflow=serialized))
                done += 1
            check(spiff.outcome(workflow) == scenario.outcome, f"spiff durable, {scenario.name}: outcome")
        return done

    def run_stateless(chunk: list[tuple[str, list[Any]]]) -> int:
        done = 0
        for workflow_id, first_ready in chunk:
            open_ids = list(first_ready)
            while open_ids:
                task_id = open_ids.pop(0)
                known = set(open_ids)
                with db.transaction() as session:
                    stored = session.execute(select(table.c.workflow).where(table.c.id == workflow_id)).scalar_one()
                    workflow = spiff.serializer.deserialize_json(stored)
                    open_ids += [t.id for t in spiff.complete(workflow, task_id, "approve") if t.id not in known]
                    session.execute(update(table).where(table.c.id == workflow_id)
                                    .values(workflow=spiff.serializer.serialize_json(workflow)))
                done += 1
            check(spiff.outcome(workflow) == scenario.outcome, f"spiff stateless, {scenario.name}: outcome")
        return done

    totals = {"ours": [0, 0.0], "kept": [0, 0.0], "stateless": [0, 0.0]}
    sides: tuple[tuple[str, list[Any], Callable[[Any], int]], ...] = (
        ("ours", ours, run_ours), ("kept", kept, run_kept), ("stateless", stateless, run_stateless))
    for index in range(rounds):
        for key, items, run in sides:
            chunk = items[index * len(items) // rounds:(index + 1) * len(items) // rounds]
            started = time.perf_counter()
            totals[key][0] += run(chunk)
            totals[key][1] += time.perf_counter() - started
    expected = instances * scenario.user_tasks
    check(all(total[0] == expected for total in totals.values()), f"{scenario.name}: task counts {totals}")
    (done, seconds), (kept_done, kept_seconds), (stateless_done, stateless_seconds) = (
        (int(t[0]), float(t[1])) for t in totals.values())
    return [
        Row("b", scenario.name, database, "Engine.act: user tasks", done, seconds,
            f"complete + serialize ({size / 1024:.0f} KB JSON) + UPDATE: user tasks", kept_done, kept_seconds),
        Row("b", scenario.name, database, "Engine.act: user tasks (as above)", done, seconds,
            "stateless: SELECT + deserialize + complete + serialize + UPDATE", stateless_done, stateless_seconds),
    ]


def reset_postgres(url: str) -> str | None:
    """Empty the benchmark database (drop and recreate ``public``; created first when missing);
    a reason when unreachable."""
    try:
        from sqlalchemy.engine import make_url

        parsed = make_url(url)
        if parsed.database == "lowcode_bench":
            server = create_engine(parsed.set(database="postgres"), isolation_level="AUTOCOMMIT")
            with server.connect() as connection:
                if connection.execute(text("select 1 from pg_database where datname = 'lowcode_bench'")).first() is None:
                    connection.execute(text('create database "lowcode_bench"'))
            server.dispose()
        probe = create_engine(url)
        with probe.begin() as connection:
            name = connection.execute(text("select current_database()")).scalar_one()
            if name != "lowcode_bench" and not os.environ.get("LOWCODE_BENCH_PG_ANY_DATABASE"):
                return f"refusing to empty database {name!r}: only lowcode_bench is used by this benchmark"
            connection.execute(text("drop schema public cascade"))
            connection.execute(text("create schema public"))
            version = connection.execute(text("show server_version")).scalar_one()
        probe.dispose()
    except Exception as exc:  # noqa: BLE001 - any failure means: skip PostgreSQL, say why
        return f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
    os.environ["_BENCH_PG_VERSION"] = str(version)
    return None


# -- report ------------------------------------------------------------------------------------


def print_table(rows: list[Row]) -> None:
    print("| part | scenario | database | ours: what | ours ops/s | SpiffWorkflow: what | Spiff ops/s | ratio |")
    print("| --- | --- | --- | --- | ---: | --- | ---: | ---: |")
    for row in rows:
        print(f"| {row.part} | {row.scenario} | {row.database} | {row.ours_what} ({row.ours_ops:,}) | "
              f"{row.ours_rate:,.0f} | {row.peer_what} ({row.peer_ops:,}) | {row.peer_rate:,.0f} | "
              f"{_ratio(row.ours_rate / row.peer_rate)} |")


def _ratio(value: float) -> str:
    """A ratio to one decimal, or two below 1x (where one decimal hides a change of a third)."""
    return f"{value:.1f}x" if value >= 1 else f"{value:.2f}x"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--memory-instances", type=int, default=2000, help="instances per pass in (a)")
    parser.add_argument("--repeat", type=int, default=3, help="passes in (a); the best is reported")
    parser.add_argument("--db-instances", type=int, default=150, help="instances per scenario and database in (b)")
    parser.add_argument("--pg-url", default=os.environ.get("LOWCODE_BENCH_PG_URL", DEFAULT_PG_URL))
    parser.add_argument("--no-pg", action="store_true", help="skip PostgreSQL")
    args, ignored = parser.parse_known_args(argv)

    from importlib.metadata import version

    facts = describe(SpiffWorkflow=version("SpiffWorkflow"))
    spiff = Spiff()
    rows: list[Row] = []
    notes: list[str] = []
    if ignored:
        notes.append(f"arguments for other scripts ignored: {' '.join(ignored)}")
    with tempfile.TemporaryDirectory(prefix="lowcode-bench-") as folder:
        # (a) needs the compiled spec and the stored form of the record; both come from the engine
        setup = Engine(f"sqlite:///{Path(folder) / 'setup.db'}")
        setup.migrate()
        setup.load_dir(BANK)
        spec = setup.registry.process(PROCESS)
        form = setup.registry.form(PROCESS)
        assert spec is not None and form is not None
        records = {}
        for scenario in SCENARIOS:
            computed, issues = prepare_submission(form, {**scenario.request, "customer_id": "c-1"})
            check(not issues, f"{scenario.name}: {issues}")
            records[scenario.name] = loads(dumps(computed))  # as Runner sees it: read back from JSON text
        setup.close()
        rows += memory_rows(spec, records, spiff, args.memory_instances, args.repeat)
        rows += durable_rows(f"sqlite:///{Path(folder) / 'bench.db'}", f"SQLite {sqlite3.sqlite_version} (file, WAL)",
                             spiff, args.db_instances)
    if args.no_pg:
        notes.append("PostgreSQL skipped (--no-pg)")
    else:
        reason = reset_postgres(args.pg_url)
        if reason is None:
            rows += durable_rows(args.pg_url, f"PostgreSQL {os.environ['_BENCH_PG_VERSION']}", spiff, args.db_instances)
        else:
            notes.append(f"PostgreSQL skipped: {reason}")

    print("# Workflow benchmark: credit-limit process, this engine vs SpiffWorkflow")
    for name, value in facts.items():
        print(f"- {name}: {value}")
    print(f"- (a) {args.memory_instances:,} instances per pass, best of {args.repeat}; "
          f"(b) {args.db_instances:,} instances per scenario and database")
    for note in notes:
        print(f"- {note}")
    print()
    print_table(rows)


if __name__ == "__main__":
    main()
