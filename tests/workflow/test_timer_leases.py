"""Timer leases: a worker claims due timers for a lease and fires each only while the row still
carries its claim's token. A worker that stalled past its lease (another worker claimed and
fired the timer meanwhile) commits nothing; one that stalls while it holds the row lock keeps
every other worker off the timer; claims of a crashed worker come due again when the lease
ends. The stalls are real: the first worker runs in a thread that waits on an event, against
the same database as the second (on PostgreSQL their transactions overlap)."""
from __future__ import annotations

import os
import threading
from datetime import timedelta
from typing import Any

import pytest
from workflow_support import end, event_count, install, outbox_count, start, task, timer_rows

from engine import Engine, FakeClock
from engine.workflow.timers import TimerStats, claim_due_timers, fire_claimed, fire_one

LEASE = timedelta(seconds=60)
WAIT = 60.0
"""Seconds a thread may take to reach its next step before the test fails (never a sleep)."""


def _reminded_case(engine: Engine, clock: FakeClock) -> str:
    """One open task whose reminder is due now."""
    install(engine, {"check": task("reviewer", sla={"due": "PT4H", "remind": [{"after": "PT1H"}]}, approve="done"),
                     "done": end("approved")}, start="check")
    instance_id = start(engine)
    clock.advance(timedelta(hours=1))
    return instance_id


def _in_thread(target: Any) -> tuple[threading.Thread, list[Any]]:
    result: list[Any] = []

    def run() -> None:
        try:
            result.append(target())
        except BaseException as exc:  # noqa: BLE001 - re-raised by the test through the result
            result.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, result


def _finished(thread: threading.Thread, result: list[Any]) -> Any:
    thread.join(WAIT)
    assert not thread.is_alive(), "the stalled worker never finished"
    (value,) = result
    if isinstance(value, BaseException):
        raise value
    return value


def test_a_worker_that_stalled_past_its_lease_commits_nothing(engine: Engine, clock: FakeClock) -> None:
    instance_id = _reminded_case(engine, clock)
    claimed, resume = threading.Event(), threading.Event()

    def stalled_worker() -> TimerStats:
        now = clock.now()
        claims = claim_due_timers(engine.db, now, lease=LEASE)
        assert len(claims) == 1
        claimed.set()
        assert resume.wait(WAIT)  # the stall: a GC pause, a frozen VM, a slow network
        return fire_claimed(engine.db, claims, now, engine.registry.process, engine.settings.supervisor_roles)

    thread, result = _in_thread(stalled_worker)
    assert claimed.wait(WAIT)
    assert engine.run_timers()["fired"] == 0  # the lease holds: nobody else takes the timer
    clock.advance(LEASE + timedelta(seconds=1))
    second = engine.run_timers()  # the lease has ended: a second worker claims and fires
    assert (second["fired"], second["lost"]) == (1, 0)
    resume.set()
    first = _finished(thread, result)

    assert (first.fired, first.cancelled, first.lost) == (0, 0, 1)
    assert event_count(engine, instance_id, "reminded") == 1
    assert outbox_count(engine, "notify.remind", instance_id) == 1
    (reminder,) = [row for row in timer_rows(engine, instance_id) if row.kind == "remind"]
    assert (reminder.status, reminder.lease_token, reminder.leased_until) == ("fired", None, None)


@pytest.mark.skipif(not os.environ.get("LOWCODE_TEST_DATABASE_URL"),
                    reason="needs PostgreSQL: on SQLite the second worker's transaction waits for the first's "
                           "(one writer at a time), so the stall cannot overlap it")
def test_a_worker_stalled_inside_its_firing_keeps_the_timer_from_others(engine: Engine, clock: FakeClock) -> None:
    instance_id = _reminded_case(engine, clock)
    fired, resume = threading.Event(), threading.Event()

    def stalled_worker() -> str:
        now = clock.now()
        (claim,) = claim_due_timers(engine.db, now, lease=LEASE)
        with engine.db.transaction() as session:
            outcome = fire_one(session, claim, now, engine.registry.process, engine.settings.supervisor_roles)
            session.flush()
            fired.set()
            assert resume.wait(WAIT)  # stalled after firing, before its commit, holding the row lock
        return outcome

    thread, result = _in_thread(stalled_worker)
    assert fired.wait(WAIT)
    clock.advance(LEASE + timedelta(seconds=1))
    assert engine.run_timers() == {"fired": 0, "cancelled": 0, "failed": 0, "lost": 0, "errors": []}
    resume.set()
    assert _finished(thread, result) == "fired"

    assert event_count(engine, instance_id, "reminded") == 1
    assert outbox_count(engine, "notify.remind", instance_id) == 1
    assert engine.run_timers()["fired"] == 0


def test_two_workers_claiming_at_once_share_the_timers_without_overlap(engine: Engine, clock: FakeClock) -> None:
    install(engine, {"check": task("reviewer", sla={"due": "PT4H", "remind": [{"after": "PT1H"}]}, approve="done"),
                     "done": end("approved")}, start="check")
    for _ in range(12):
        start(engine)
    clock.advance(timedelta(hours=1))
    now = clock.now()
    barrier = threading.Barrier(2)

    def claim() -> list[int]:
        barrier.wait()
        return [c.timer_id for c in claim_due_timers(engine.db, now, lease=LEASE, limit=5)]

    workers = [_in_thread(claim) for _ in range(2)]
    first, second = (_finished(*worker) for worker in workers)

    # 12 reminders are due (the due markers only at 4 h); each worker took 5, none twice.
    assert (len(first), len(second)) == (5, 5)
    assert set(first).isdisjoint(second)
    assert len(claim_due_timers(engine.db, now, lease=LEASE)) == 12 - 10


def test_claims_of_a_crashed_worker_come_due_when_their_lease_ends(engine: Engine, clock: FakeClock) -> None:
    instance_id = _reminded_case(engine, clock)
    assert len(claim_due_timers(engine.db, clock.now(), lease=LEASE)) == 1  # then the worker died

    clock.advance(LEASE - timedelta(seconds=1))
    assert engine.run_timers()["fired"] == 0
    clock.advance(timedelta(seconds=1))
    assert engine.run_timers()["fired"] == 1
    assert event_count(engine, instance_id, "reminded") == 1


def test_a_repeating_reminder_is_free_for_any_worker_after_each_firing(engine: Engine, clock: FakeClock) -> None:
    install(engine, {"check": task("reviewer", sla={"due": "P2D", "remind": [{"after": "PT1H", "every": "PT1H"}]},
                                   approve="done"), "done": end("approved")}, start="check")
    instance_id = start(engine)
    for hour in range(1, 4):
        clock.advance(timedelta(hours=1))
        assert engine.run_timers()["fired"] == 1, hour
        (reminder,) = [row for row in timer_rows(engine, instance_id) if row.kind == "remind"]
        assert (reminder.status, reminder.repeats, reminder.lease_token) == ("pending", hour, None)
    assert event_count(engine, instance_id, "reminded") == 3


def test_a_round_that_fails_hands_its_unfired_claims_back_at_once(engine: Engine, clock: FakeClock) -> None:
    install(engine, {"check": task("reviewer", sla={"due": "PT4H", "remind": [{"after": "PT1H"}]}, approve="done"),
                     "done": end("approved")}, start="check")
    first, second = start(engine), start(engine)
    clock.advance(timedelta(hours=1))
    claims = claim_due_timers(engine.db, clock.now(), lease=LEASE)
    assert len(claims) == 2

    def database_gone(key: str, version: int) -> Any:
        raise ConnectionError("the database went away")

    with pytest.raises(ConnectionError):
        fire_claimed(engine.db, claims, clock.now(), database_gone, engine.settings.supervisor_roles)
    # Without waiting for the lease: the next round (same instant) fires both, once.
    assert engine.run_timers()["fired"] == 2
    assert [event_count(engine, instance_id, "reminded") for instance_id in (first, second)] == [1, 1]
