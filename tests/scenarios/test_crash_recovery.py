"""Crash safety on PostgreSQL: while clients submit credit-limit applications and account
managers reject some of them on two servers, and two workers fire SLA timers and deliver the
outbox, one server and one worker are killed with SIGKILL, then restarted. Afterwards: every
request that was acknowledged (2xx) is in the database, found by its request id in the audit
log; every application that is in the database (acknowledged or not) is whole (record, audit
entry, change entry, process instance with its history, tasks, timers and outbox message; no
row without the others); the audit chain is intact; and the timers and messages the killed
worker held resume and complete once their leases end."""
from __future__ import annotations

import itertools
import os
import threading
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from fleet_support import NEEDS_PG, PG_URL, Receiver, Stopwatch, fresh_database, load_bank, poll, running_fleet
from sqlalchemy import func, select

import httpx2 as httpx
from engine import Engine
from engine.clock import FileClock
from engine.store.models import (AuditRow, ChangeRow, InstanceEventRow, InstanceRow, OutboxRow, RecordRow, TaskRow,
                                 TimerRow)

pytestmark = pytest.mark.skipif(not PG_URL, reason=NEEDS_PG)

API = "/api/v1"
LOADERS = 4
T0 = datetime(2026, 3, 2, 1, 0, tzinfo=timezone.utc)  # Monday 2 March 2026, 09:00 in Shanghai
APPLICANT = {"X-User": "clerk-7", "X-Roles": "teller"}
MANAGER = {"X-User": "mgr-01", "X-Roles": "account_manager"}
HTTP_CHANNELS = ("event", "sms", "app", "webhook")
"""Channels that post to the receiver (``log`` only writes a line)."""


@dataclass
class Ledger:
    """What the clients were told: request id -> kind of request, for 2xx answers and others."""

    acknowledged: dict[str, tuple[str, str]] = field(default_factory=dict)
    """request id -> (``submit`` with the record id | ``reject`` with the instance id)."""
    unacknowledged: dict[str, tuple[str, str]] = field(default_factory=dict)
    """request id -> (``submit`` with the marker | ``reject`` with the instance id)."""
    refused: list[tuple[int, str]] = field(default_factory=list)
    """Answers that were neither 2xx nor a broken connection (none expected)."""
    by_server: Counter[str] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def acks(self, kind: str | None = None, server: str | None = None) -> int:
        with self.lock:
            if server is not None:
                return self.by_server[server]
            return sum(1 for what, _ in self.acknowledged.values() if kind is None or what == kind)


class Load:
    """``LOADERS`` threads, each submitting applications in turn to the servers and rejecting
    every other one it submitted as the account manager, until stopped."""

    def __init__(self, servers: dict[str, str], customer: str, ledger: Ledger) -> None:
        self.servers = servers
        self.customer = customer
        self.ledger = ledger
        self.stop = threading.Event()
        self.numbers = itertools.count()
        self.threads = [threading.Thread(target=self._run, daemon=True) for _ in range(LOADERS)]

    def __enter__(self) -> Load:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=120)

    def _run(self) -> None:
        clients = {name: httpx.Client(base_url=url, timeout=30) for name, url in self.servers.items()}
        names = sorted(clients)
        try:
            while not self.stop.is_set():
                number = next(self.numbers)
                server = names[number % len(names)]
                instance = self._submit(clients[server], server, number)
                if instance is not None and number % 2 == 0:
                    self._reject(clients[names[(number + 1) % len(names)]], instance)
        finally:
            for client in clients.values():
                client.close()

    def _send(self, client: httpx.Client, method: str, path: str, headers: dict[str, str], body: Any,
              what: tuple[str, str], server: str | None = None) -> Any:
        request_id = uuid.uuid4().hex
        try:
            response = client.request(method, f"{API}{path}", json=body, headers={**headers, "X-Request-ID": request_id})
        except httpx.HTTPError:
            with self.ledger.lock:
                self.ledger.unacknowledged[request_id] = what
            self.stop.wait(0.05)  # the server is down: do not spin while it restarts
            return None
        with self.ledger.lock:
            if response.status_code in (200, 201):
                payload = response.json()
                self.ledger.acknowledged[request_id] = (what[0], payload["id"])
                if server is not None:
                    self.ledger.by_server[server] += 1
                return payload
            self.ledger.refused.append((response.status_code, response.text[:300]))
            return None

    def _submit(self, client: httpx.Client, server: str, number: int) -> str | None:
        marker = f"crash-{number}"
        current = 1_000_000 + 1000 * number
        record = self._send(client, "POST", "/forms/credit_limit_adjustment/records", APPLICANT,
                            {"customer_id": self.customer, "current_limit": current, "requested_limit": current * 115 // 100,
                             "risk_rating": "medium", "reason": "crash test", "external_id": marker},
                            ("submit", marker), server)
        return None if record is None else str(record["instances"][0]["id"])

    def _reject(self, client: httpx.Client, instance_id: str) -> None:
        try:
            view = client.get(f"{API}/instances/{instance_id}", headers=MANAGER)
        except httpx.HTTPError:
            return  # nothing was asked of the server yet
        if view.status_code != 200:
            with self.ledger.lock:
                self.ledger.refused.append((view.status_code, view.text[:300]))
            return
        (task,) = [t for t in view.json()["tasks"] if t["status"] == "open" and t["assignee_role"] == "account_manager"]
        self._send(client, "POST", f"/tasks/{task['id']}/reject", MANAGER, {"comment": "not now"},
                   ("reject", instance_id))


def _count(session: Any, model: Any, *where: Any) -> int:
    return int(session.scalar(select(func.count()).select_from(model).where(*where)) or 0)


def test_a_killed_server_and_worker_lose_no_acknowledged_request_and_leave_nothing_half_written(tmp_path: Path) -> None:
    with fresh_database(f"crash{os.getpid()}") as url:
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
    servers = {"server-a": fleet.start_server("server-a"), "server-b": fleet.start_server("server-b")}
    fleet.start_worker("worker-1")
    fleet.start_worker("worker-2")
    with httpx.Client(base_url=servers["server-b"], timeout=30) as setup:
        customer = setup.post(f"{API}/forms/customer/records", headers=APPLICANT, json={
            "company_name": "Crash Test Trading Co., Ltd.", "region": "Fujian", "risk_level": "low"}).json()["id"]
    ledger = Ledger()
    watch = Stopwatch()

    with Load(servers, customer, ledger):
        poll(lambda: ledger.acks("submit") >= 40, timeout=120, what="40 acknowledged submissions")
        # The reminders and escalations of everything submitted so far come due: both workers
        # fire timers and deliver messages while the load goes on.
        watch.lap("first acks")
        fleet.set_time(T0 + timedelta(days=4))
        poll(lambda: _fired(engine) >= 10 and ledger.acks("submit") >= 60, timeout=120,
             what="timers firing under load")
        watch.lap("timers firing")
        # Catch both workers in the middle of a send (each holds a claimed batch), then kill one.
        receiver.hold()
        try:
            # (a worker first fires the timers that came due, which takes a while under load)
            poll(lambda: receiver.waiting >= 2, timeout=120, what="both workers blocked in a send")
            watch.lap("both workers held")
            fleet.kill("server-a")
            fleet.kill("worker-1")
            watch.lap("killed")
        finally:
            receiver.release()
        before = ledger.acks("submit", "server-b")
        poll(lambda: ledger.acks("submit", "server-b") >= before + 20, timeout=120,
             what="submissions to the surviving server")
        port = int(servers["server-a"].rsplit(":", 1)[1])
        assert fleet.start_server("server-a", port) == servers["server-a"]
        fleet.start_worker("worker-1")
        watch.lap("restarted")
        after = ledger.acks("submit", "server-a")
        poll(lambda: ledger.acks("submit", "server-a") >= after + 15, timeout=120,
             what="submissions to the restarted server")
    watch.lap("load stopped")
    fleet.check_alive()
    assert ledger.refused == []
    assert ledger.unacknowledged, "the kill interrupted no request; the test proved nothing"

    # With time standing still, the live workers finish everything due; what stays claimed is
    # what the killed worker held (at least the message it was sending).
    now = T0 + timedelta(days=4)

    def quiet() -> bool:
        fleet.check_alive()
        with engine.db.read() as session:
            return _count(session, OutboxRow, OutboxRow.status == "pending",
                          (OutboxRow.next_attempt_at.is_(None)) | (OutboxRow.next_attempt_at <= now)) == 0 \
                and _count(session, TimerRow, TimerRow.status == "pending", TimerRow.fire_at <= now,
                           (TimerRow.leased_until.is_(None)) | (TimerRow.leased_until <= now)) == 0

    poll(quiet, timeout=120, what="the live workers to finish what is due", every=0.5)
    watch.lap("quiet")
    with engine.db.read() as session:
        held = set(session.scalars(select(OutboxRow.dedup_key).where(
            OutboxRow.status == "pending", OutboxRow.next_attempt_at > now, OutboxRow.last_error.is_(None),
            OutboxRow.channel.in_(HTTP_CHANNELS))).all())
        held_timers = _count(session, TimerRow, TimerRow.status == "pending", TimerRow.leased_until > now)
    assert held, "the killed worker held no claimed message"

    # Workers killed while holding timers: every SLA timer of the cases opened since day 4 comes
    # due at once; the moment the database shows timers claimed and not yet fired, both workers
    # are killed. Their claims stay fenced until the lease ends; then the restarted workers fire
    # each exactly once.
    later = T0 + timedelta(days=20)
    fleet.set_time(later)
    poll(lambda: bool(_claimed_timers(engine, later)), timeout=120, every=0.01, what="a worker holding claimed timers")
    fleet.kill("worker-1")
    fleet.kill("worker-2")
    claimed_timers = _claimed_timers(engine, later)
    assert claimed_timers, "the killed workers held no claimed timer"
    fleet.start_worker("worker-1")
    fleet.start_worker("worker-2")
    watch.lap("workers killed holding timers")

    # Everything still pending comes due, including what the killed workers had claimed.
    end = T0 + timedelta(days=30)
    fleet.set_time(end)

    def settled() -> bool:
        fleet.check_alive()
        with engine.db.read() as session:
            return _count(session, TimerRow, TimerRow.status == "pending", TimerRow.fire_at <= end) == 0 \
                and _count(session, OutboxRow, OutboxRow.status == "pending") == 0

    poll(settled, timeout=120, what="every due timer fired and the outbox drained", every=0.5)
    watch.lap("settled")
    _check(engine, ledger, receiver, end)
    assert held <= set(receiver.keys())  # the killed worker's messages went out after its lease
    with engine.db.read() as session:
        after_lease = Counter(session.scalars(select(TimerRow.status).where(TimerRow.id.in_(claimed_timers))).all())
    assert after_lease["pending"] == 0 and after_lease["fired"] >= 1, after_lease  # (fired once each: see _check)
    print(f"crash: the killed worker held {len(held)} messages and {held_timers} timers; the workers killed later "
          f"held {len(claimed_timers)} timers ({dict(after_lease)} after their lease); all completed later; {watch}")


def _claimed_timers(engine: Engine, now: datetime) -> set[int]:
    """Timers a worker has claimed (leased past ``now``) and not fired yet."""
    with engine.db.read() as session:
        return set(session.scalars(select(TimerRow.id).where(
            TimerRow.status == "pending", TimerRow.lease_token.is_not(None), TimerRow.leased_until > now)).all())


def _fired(engine: Engine) -> int:
    with engine.db.read() as session:
        return _count(session, TimerRow, TimerRow.status == "fired")


def _check(engine: Engine, ledger: Ledger, receiver: Receiver, end: datetime) -> None:
    with engine.db.read() as session:
        records = {row.id: row for row in session.scalars(
            select(RecordRow).where(RecordRow.form_key == "credit_limit_adjustment")).all()}
        instances = {row.id: row for row in session.scalars(select(InstanceRow)).all()}
        by_record = Counter(row.record_id for row in instances.values())
        audits = session.execute(select(AuditRow.action, AuditRow.object_id, AuditRow.request_id)).all()
        changes = set(session.scalars(select(ChangeRow.entity_id).where(ChangeRow.entity == "record")).all())
        started = Counter(session.scalars(select(InstanceEventRow.instance_id)
                                          .where(InstanceEventRow.event == "started")).all())
        event_instances = set(session.scalars(select(InstanceEventRow.instance_id)).all())
        tasks = session.execute(select(TaskRow.instance_id, TaskRow.state, TaskRow.status, TaskRow.action)).all()
        timer_instances = set(session.scalars(select(TimerRow.instance_id)).all())
        timer_rows = session.execute(select(TimerRow.instance_id, TimerRow.kind, TimerRow.status, TimerRow.fire_at)).all()
        timers = Counter((row.status, row.kind) for row in timer_rows)
        timed = Counter(session.execute(select(InstanceEventRow.task_id, InstanceEventRow.event)
                                        .where(InstanceEventRow.event.in_(["reminded", "escalated", "overdue"]))).all())
        outbox = session.execute(select(OutboxRow.dedup_key, OutboxRow.status, OutboxRow.channel,
                                        OutboxRow.last_error)).all()
    audit_requests = {row.request_id for row in audits}
    created = Counter(row.object_id for row in audits if row.action == "record.create")
    outbox_keys = {row.dedup_key for row in outbox}
    markers = {row.id: loads_marker(row) for row in records.values()}

    # 1. Every acknowledged request is in the database, under its request id.
    for request_id, (kind, target) in ledger.acknowledged.items():
        assert request_id in audit_requests, (kind, target)
        if kind == "submit":
            assert target in records
        else:
            instance = instances[target]
            assert (instance.state, instance.status) == ("rejected", "completed")
            assert [t.action for t in tasks if t.instance_id == target and t.state == "manager_review"
                    and t.status == "completed"] == ["reject"]

    # 2. Nothing half-written: every application present, acknowledged or not, is whole.
    for record_id in records:
        assert created[record_id] == 1 and record_id in changes, record_id
        assert by_record[record_id] == 1, record_id
        assert f"record.created:{record_id}" in outbox_keys, record_id
    for instance_id, instance in instances.items():
        assert instance.record_id in records, instance_id
        assert started[instance_id] == 1, instance_id
        assert any(t.instance_id == instance_id and t.state == "manager_review" for t in tasks), instance_id
    assert {t.instance_id for t in tasks} <= set(instances)
    assert event_instances <= set(instances) and timer_instances <= set(instances)
    unacknowledged_submissions = {target for kind, target in ledger.unacknowledged.values() if kind == "submit"}
    acknowledged_records = {target for kind, target in ledger.acknowledged.values() if kind == "submit"}
    written_anyway = {marker for record_id, marker in markers.items() if record_id not in acknowledged_records}
    assert written_anyway <= unacknowledged_submissions  # a record nobody asked for is a bug
    assert engine.verify_audit().intact

    # 3. Timers and messages resumed: none left due, none fired twice, every message delivered.
    assert [key for key in timers if key[0] == "failed"] == []
    still_open = {instance_id for instance_id, row in instances.items() if row.status == "active"}
    assert still_open and {row.kind for row in timer_rows if row.instance_id in still_open and row.status == "pending"
                           and row.fire_at <= end} == set()
    fired_on_open = Counter((row.instance_id, row.kind) for row in timer_rows
                            if row.instance_id in still_open and row.status == "fired")
    assert all(fired_on_open[(instance_id, kind)] >= 1 for instance_id in still_open
               for kind in ("remind", "escalate", "due")), "an open case's SLA timers did not all fire"
    assert all(count == 1 for count in timed.values()), [key for key, count in timed.items() if count > 1]
    assert [row for row in outbox if row.status != "delivered"] == []
    sent = {row.dedup_key for row in outbox if row.channel in HTTP_CHANNELS and row.last_error is None}
    received = receiver.keys()
    assert sent <= set(received) and receiver.refused == 0
    print(f"crash: {len(ledger.acknowledged)} acknowledged, {len(ledger.unacknowledged)} not "
          f"({len(written_anyway)} of those committed before the kill, whole), {len(records)} applications, "
          f"{len(outbox)} messages, {sum(received.values()) - len(received)} redelivered, timers {dict(timers)}")


def loads_marker(row: RecordRow) -> str:
    from engine.jsoncodec import loads

    return str(loads(row.data)["external_id"])
