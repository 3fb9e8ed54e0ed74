"""Scale-out on PostgreSQL: two ``lowcode serve`` and two ``lowcode worker`` processes on one
database drive 200 credit-limit applications of the bank example through submission, approvals
(each step on the other server) and the 24-business-hour SLA (reminder at 20 h, escalation to
the branch head and the breach at 24 h), on a file clock all four processes read. Afterwards:
every case is in its expected end state with exactly the expected transitions and completed
tasks, each timer fired once, and every notification reached the receiver, deduplicated by its
key."""
from __future__ import annotations

import os
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from fleet_support import NEEDS_PG, PG_URL, Receiver, Stopwatch, fresh_database, load_bank, poll, running_fleet
from sqlalchemy import func, select

import httpx2 as httpx
from engine import Engine
from engine.clock import FileClock
from engine.store.models import InstanceEventRow, InstanceRow, OutboxRow, RecordRow, TaskRow, TimerRow

pytestmark = pytest.mark.skipif(not PG_URL, reason=NEEDS_PG)

API = "/api/v1"
APPLICATIONS = 200
CONCURRENCY = 8
T0 = datetime(2026, 3, 2, 1, 0, tzinfo=timezone.utc)  # Monday 2 March 2026, 09:00 in Shanghai
ROUTES = ("auto", "branch", "countersign", "rejected", "sla")
"""Application i takes route ``ROUTES[i % 5]``."""
STAFF = {"mgr": ("mgr-01", "account_manager"), "reviewer": ("rev-01", "branch_credit_reviewer"),
         "risk1": ("risk-01", "risk_officer"), "risk2": ("risk-02", "risk_officer"), "head": ("head-01", "branch_head")}
EXPECTED = {
    "auto": ([("triage", "approved")], 0),
    "branch": ([("triage", "manager_review"), ("manager_review", "branch_credit_review"),
                ("branch_credit_review", "approved")], 2),
    "countersign": ([("triage", "manager_review"), ("manager_review", "risk_countersign"),
                     ("risk_countersign", "approved")], 3),
    "rejected": ([("triage", "manager_review"), ("manager_review", "rejected")], 1),
    "sla": ([("triage", "manager_review"), ("manager_review", "branch_credit_review"),
             ("branch_credit_review", "approved")], 2),
}
"""Per route: the transitions (from, to) in order, and how many tasks end ``completed``."""
HTTP_CHANNELS = ("event", "sms", "app", "webhook")


def _application(index: int, customer: str) -> dict[str, Any]:
    route = ROUTES[index % len(ROUTES)]
    current = 1_000_000 + 1000 * index
    rise = {"auto": 5, "branch": 15, "countersign": 25, "rejected": 15, "sla": 15}[route]
    return {"customer_id": customer, "current_limit": current, "requested_limit": current * (100 + rise) // 100,
            "risk_rating": "low" if route == "auto" else "medium", "reason": f"scale-out {index}"}


class Client:
    """One HTTP connection per thread and server."""

    def __init__(self, servers: list[str]) -> None:
        self.servers = servers
        self.local = threading.local()
        self.opened: list[httpx.Client] = []
        self.lock = threading.Lock()

    def _http(self, server: int) -> httpx.Client:
        clients = self.local.__dict__.setdefault("clients", {})
        if server not in clients:
            clients[server] = httpx.Client(base_url=self.servers[server], timeout=60)
            with self.lock:
                self.opened.append(clients[server])
        return clients[server]

    def close(self) -> None:
        for client in self.opened:
            client.close()

    def call(self, server: int, method: str, path: str, who: tuple[str, str], body: Any = None) -> Any:
        headers = {"X-User": who[0], "X-Roles": who[1]}
        response = self._http(server % len(self.servers)).request(method, f"{API}{path}", json=body, headers=headers)
        assert response.status_code in (200, 201), (method, path, who, response.status_code, response.text[:500])
        return response.json()

    def act(self, server: int, instance_id: str, staff: str, action: str, pick: int = 0) -> Any:
        """``staff`` finds their open task of the case (the ``pick``-th) and acts on it."""
        who = STAFF[staff]
        view = self.call(server, "GET", f"/instances/{instance_id}", who)
        mine = [t for t in view["tasks"] if t["status"] == "open" and t["assignee_role"] == who[1]]
        assert len(mine) > pick, (instance_id, staff, view["state"], view["tasks"])
        return self.call(server + 1, "POST", f"/tasks/{mine[pick]['id']}/{action}", who,
                         {"comment": f"{action} by {who[0]}"})


def _drive(client: Client, index: int, instance_id: str) -> None:
    """The approvals of application ``index`` before any SLA runs out, each on the other server."""
    route = ROUTES[index % len(ROUTES)]
    if route == "branch":
        assert client.act(index, instance_id, "mgr", "approve")["state"] == "branch_credit_review"
        assert client.act(index + 1, instance_id, "reviewer", "approve")["state"] == "approved"
    elif route == "countersign":
        assert client.act(index, instance_id, "mgr", "approve")["state"] == "risk_countersign"
        client.act(index + 1, instance_id, "risk1", "approve")
        assert client.act(index, instance_id, "risk2", "approve")["state"] == "approved"
    elif route == "rejected":
        assert client.act(index, instance_id, "mgr", "reject")["state"] == "rejected"


def _count(session: Any, model: Any, *where: Any) -> int:
    return int(session.scalar(select(func.count()).select_from(model).where(*where)) or 0)


def test_two_servers_and_two_workers_lose_no_transition_and_fire_each_timer_once(tmp_path: Path) -> None:
    with fresh_database(f"scale{os.getpid()}") as url:
        (tmp_path / "clock").write_text(T0.isoformat())
        clock = FileClock(tmp_path / "clock")
        with Receiver(clock) as receiver, running_fleet(url, tmp_path, receiver.port) as fleet:
            engine = Engine(url, clock=clock)
            try:
                engine.migrate()
                load_bank(engine)
                _scenario(engine, fleet, receiver)
            finally:
                engine.close()


def _scenario(engine: Engine, fleet: Any, receiver: Receiver) -> None:
    servers = [fleet.start_server("server-a"), fleet.start_server("server-b")]
    fleet.start_worker("worker-1")
    fleet.start_worker("worker-2")
    client = Client(servers)
    try:
        _drive_all(engine, fleet, receiver, client)
    finally:
        client.close()


def _drive_all(engine: Engine, fleet: Any, receiver: Receiver, client: Client) -> None:
    watch = Stopwatch()
    applicant = ("clerk-7", "teller")
    customers = [client.call(i, "POST", "/forms/customer/records", applicant,
                             {"company_name": f"Example Trading {i} Co., Ltd.", "region": "Fujian", "risk_level": "low"})["id"]
                 for i in range(10)]

    # 1. Submissions, alternating servers, 8 at a time.
    def submit(index: int) -> str:
        record = client.call(index, "POST", "/forms/credit_limit_adjustment/records", applicant,
                             _application(index, customers[index % len(customers)]))
        return str(record["instances"][0]["id"])

    with ThreadPoolExecutor(CONCURRENCY) as pool:
        instances = list(pool.map(submit, range(APPLICATIONS)))
        watch.lap("submissions")
        # 2. Approvals of the cases that do not wait for their SLA.
        list(pool.map(lambda pair: _drive(client, *pair), enumerate(instances)))
    fleet.check_alive()
    watch.lap("approvals")

    # 3. The SLA cases: the reminder after 20 business hours, then escalation and breach at 24.
    waiting = [instance for index, instance in enumerate(instances) if ROUTES[index % 5] == "sla"]
    with engine.db.read() as session:
        fire_at = dict(session.execute(
            select(TimerRow.kind, func.max(TimerRow.fire_at)).where(TimerRow.instance_id.in_(waiting))
            .group_by(TimerRow.kind)).all())
        assert _count(session, TimerRow, TimerRow.status == "pending") == 3 * len(waiting)  # nothing else is open
    assert fire_at["remind"] < fire_at["escalate"] == fire_at["due"]
    _advance_and_wait(engine, fleet, fire_at["remind"], {"reminded": len(waiting)})
    _advance_and_wait(engine, fleet, fire_at["escalate"], {"reminded": len(waiting), "escalated": len(waiting),
                                                           "overdue": len(waiting)})
    watch.lap("sla timers")

    # 4. The branch head, added by the escalation, approves; then the branch review.
    def decide(pair: tuple[int, str]) -> None:
        index, instance_id = pair
        assert client.act(index, instance_id, "head", "approve")["state"] == "branch_credit_review"
        assert client.act(index + 1, instance_id, "reviewer", "approve")["state"] == "approved"

    with ThreadPoolExecutor(CONCURRENCY) as pool:
        list(pool.map(decide, enumerate(waiting)))
    watch.lap("escalated decisions")

    # 5. Every notification goes out.
    def drained() -> bool:
        fleet.check_alive()
        with engine.db.read() as session:
            return _count(session, OutboxRow, OutboxRow.status == "pending") == 0

    poll(drained, timeout=120, what="the outbox to drain", every=0.5)
    watch.lap("outbox drained")
    _check(engine, instances, receiver)
    print(f"scale-out: {watch}")


def _advance_and_wait(engine: Engine, fleet: Any, instant: datetime, events: dict[str, int]) -> None:
    fleet.set_time(instant)

    def fired() -> bool:
        fleet.check_alive()
        with engine.db.read() as session:
            return all(_count(session, InstanceEventRow, InstanceEventRow.event == event) >= count
                       for event, count in events.items()) \
                and _count(session, TimerRow, TimerRow.status == "pending", TimerRow.fire_at <= instant) == 0

    poll(fired, timeout=90, what=f"the timers due at {instant.isoformat()} to fire", every=0.25)


def _check(engine: Engine, instances: list[str], receiver: Receiver) -> None:
    with engine.db.read() as session:
        rows = {row.id: row for row in session.scalars(select(InstanceRow)).all()}
        assert sorted(rows) == sorted(instances)
        assert _count(session, RecordRow, RecordRow.form_key == "credit_limit_adjustment") == len(instances)
        transitions: dict[str, list[tuple[str | None, str | None]]] = {i: [] for i in instances}
        for event in session.scalars(select(InstanceEventRow).where(InstanceEventRow.event == "transition")
                                     .order_by(InstanceEventRow.id)).all():
            transitions[event.instance_id].append((event.from_state, event.to_state))
        completed = Counter(session.scalars(select(TaskRow.instance_id).where(TaskRow.status == "completed")).all())
        timed = Counter((event.instance_id, event.event) for event in session.scalars(
            select(InstanceEventRow).where(InstanceEventRow.event.in_(["reminded", "escalated", "overdue"]))).all())
        timers = Counter(session.execute(select(TimerRow.status, TimerRow.kind)).all())
        outbox = session.execute(select(OutboxRow.dedup_key, OutboxRow.status, OutboxRow.channel, OutboxRow.last_error,
                                        OutboxRow.topic, OutboxRow.recipient, OutboxRow.attempts)).all()

    # No transition lost: every case ended where its route leads, by exactly the expected steps.
    for index, instance_id in enumerate(instances):
        route = ROUTES[index % 5]
        steps, tasks_done = EXPECTED[route]
        row = rows[instance_id]
        assert (row.state, row.status) == (steps[-1][1], "completed"), (index, route)
        assert transitions[instance_id] == steps, (index, route)
        assert completed[instance_id] == tasks_done, (index, route)
        expected_timed = 1 if route == "sla" else 0
        for event in ("reminded", "escalated", "overdue"):
            assert timed[(instance_id, event)] == expected_timed, (index, route, event)  # no timer fired twice
    sla_cases = APPLICATIONS // 5
    assert timers[("fired", "remind")] == timers[("fired", "escalate")] == timers[("fired", "due")] == sla_cases
    assert not [key for key in timers if key[0] in ("pending", "failed")], timers

    # Every notification delivered, each dedup key at least once, and the same content each time.
    assert [row for row in outbox if row.status != "delivered"] == []
    over_http = [row for row in outbox if row.channel in HTTP_CHANNELS]
    assert {row.channel for row in outbox} - set(HTTP_CHANNELS) <= {"log"}  # the log channel only writes a line
    sent = {row.dedup_key for row in over_http if row.last_error is None}  # else no event subscriber: a note
    received = receiver.keys()
    assert receiver.refused == 0
    missing = [row for row in over_http if row.dedup_key in sent - set(received)]
    assert missing == [] and set(received) <= sent, (len(missing), missing[:5], set(received) - sent)
    channels = Counter(row.channel for row in outbox)
    assert channels["sms"] >= 3 * APPLICATIONS and channels["app"] >= 2 * sla_cases  # entries, reminders, escalations
    bodies: dict[str, Any] = {}
    for delivery in receiver.deliveries:
        assert bodies.setdefault(delivery.key, delivery.body) == delivery.body, delivery.key
    print(f"scale-out: {len(instances)} cases, {len(outbox)} outbox rows, {len(sent)} sent, "
          f"{sum(received.values()) - len(received)} redelivered (dropped by key), timers {dict(timers)}")
