"""``deliver_due``: claiming, outcomes, back-off from the injected clock, leases."""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import update

from engine import Engine, FakeClock
from engine.jsoncodec import loads
from engine.notify import (
    Dispatcher,
    MemoryChannel,
    OutboxMessage,
    OutboxSettings,
    PermanentDeliveryError,
    RetryableDeliveryError,
    backoff_delay,
    deliver_due,
)
from engine.notify.channels import EventWebhookChannel
from engine.store.models import OutboxRow
from tests.unit.notify.outbox_support import add_message, outbox_row

SETTINGS = OutboxSettings(max_attempts=3)
SECOND = timedelta(seconds=1)


def retryable(status: int = 503) -> RetryableDeliveryError:
    return RetryableDeliveryError("outbox.http_status", params={"status": status})


@pytest.fixture
def memory() -> MemoryChannel:
    return MemoryChannel()


@pytest.fixture
def dispatcher(memory: MemoryChannel) -> Dispatcher:
    return Dispatcher({"event": memory, "sms": memory}, send_budget=timedelta(seconds=10))


def run(engine: Engine, dispatcher: Dispatcher, *, limit: int = 100, draw: float = 0.0, settings: OutboxSettings = SETTINGS):  # type: ignore[no-untyped-def]
    return deliver_due(engine.db, engine.clock, settings, limit=limit, dispatcher=dispatcher, draw=lambda: draw)


@pytest.mark.parametrize(("attempt", "draw", "seconds"), [
    (1, 0.0, 30), (2, 0.0, 60), (3, 0.0, 120), (7, 0.0, 1920), (8, 0.0, 3600), (40, 0.0, 3600),
    (1, 0.5, 22.5), (3, 0.999, 60.06), (8, 0.5, 2700),
])
def test_backoff_doubles_up_to_the_cap_less_up_to_half_jitter(attempt: int, draw: float, seconds: float) -> None:
    delay = backoff_delay(attempt, timedelta(seconds=30), timedelta(hours=1), draw)
    assert delay.total_seconds() == pytest.approx(seconds)


def test_due_messages_are_sent_oldest_first_up_to_the_limit(engine: Engine, memory: MemoryChannel, dispatcher: Dispatcher) -> None:
    ids = [add_message(engine, dedup_key=f"k-{n}") for n in range(5)]
    stats = run(engine, dispatcher, limit=3)
    assert [message.id for message in memory.sent] == ids[:3]
    assert (stats.claimed, stats.delivered) == (3, 3)
    assert run(engine, dispatcher).delivered == 2
    assert [message.dedup_key for message in memory.sent] == [f"k-{n}" for n in range(5)]


def test_delivered_row_records_time_and_attempt(engine: Engine, clock: FakeClock, dispatcher: Dispatcher) -> None:
    message_id = add_message(engine)
    run(engine, dispatcher)
    row = outbox_row(engine, message_id)
    assert (row.status, row.attempts, row.delivered_at, row.next_attempt_at, row.last_error) == (
        "delivered", 1, clock.now(), None, None)


def test_future_messages_wait_for_their_time(engine: Engine, clock: FakeClock, memory: MemoryChannel, dispatcher: Dispatcher) -> None:
    add_message(engine, next_attempt_at=clock.now() + timedelta(minutes=5))
    assert run(engine, dispatcher).claimed == 0
    clock.advance(timedelta(minutes=5))
    assert run(engine, dispatcher).delivered == 1


def test_retryable_failure_backs_off_on_the_injected_clock(engine: Engine, clock: FakeClock, memory: MemoryChannel,
                                                           dispatcher: Dispatcher) -> None:
    message_id = add_message(engine, dedup_key="k-retry")
    start = clock.now()
    memory.fail_next(retryable(503))
    assert run(engine, dispatcher).retrying == 1
    row = outbox_row(engine, message_id)
    assert (row.status, row.attempts, row.next_attempt_at) == ("pending", 1, start + timedelta(seconds=30))
    assert loads(row.last_error or "") == {"code": "outbox.http_status", "params": {"status": 503}}
    clock.advance(29 * SECOND)
    assert run(engine, dispatcher).claimed == 0
    clock.advance(SECOND)
    assert run(engine, dispatcher).delivered == 1
    assert [message.dedup_key for message in memory.sent] == ["k-retry"]
    assert outbox_row(engine, message_id).attempts == 2


def test_jitter_shortens_the_wait(engine: Engine, clock: FakeClock, memory: MemoryChannel, dispatcher: Dispatcher) -> None:
    message_id = add_message(engine)
    memory.fail_next(retryable())
    run(engine, dispatcher, draw=0.5)
    assert outbox_row(engine, message_id).next_attempt_at == clock.now() + timedelta(seconds=22.5)


def test_retry_after_from_the_receiver_lengthens_the_wait(engine: Engine, clock: FakeClock, memory: MemoryChannel,
                                                          dispatcher: Dispatcher) -> None:
    message_id = add_message(engine)
    memory.fail_next(RetryableDeliveryError("outbox.http_status", params={"status": 429}, retry_after=timedelta(minutes=10)))
    run(engine, dispatcher)
    assert outbox_row(engine, message_id).next_attempt_at == clock.now() + timedelta(minutes=10)


def test_retries_run_out_into_a_dead_letter(engine: Engine, clock: FakeClock, memory: MemoryChannel,
                                            dispatcher: Dispatcher) -> None:
    message_id = add_message(engine)
    memory.fail_next(retryable(500), retryable(502), retryable(504))
    outcomes = []
    for _ in range(3):
        stats = run(engine, dispatcher)
        outcomes.append((stats.retrying, stats.dead))
        clock.advance(timedelta(hours=1))
    row = outbox_row(engine, message_id)
    assert outcomes == [(1, 0), (1, 0), (0, 1)]
    assert (row.status, row.attempts, row.next_attempt_at) == ("dead", 3, None)
    assert loads(row.last_error or "")["params"] == {"status": 504}
    assert run(engine, dispatcher).claimed == 0


def test_permanent_failure_is_dead_at_once(engine: Engine, memory: MemoryChannel, dispatcher: Dispatcher) -> None:
    message_id = add_message(engine)
    memory.fail_next(PermanentDeliveryError("outbox.http_status", params={"status": 400}))
    assert run(engine, dispatcher).dead == 1
    row = outbox_row(engine, message_id)
    assert (row.status, row.attempts) == ("dead", 1)


def test_unconfigured_channel_is_dead_with_its_reason(engine: Engine, dispatcher: Dispatcher) -> None:
    message_id = add_message(engine, channel="app", recipient="user:u-1", payload={"text": {"en": "hi"}})
    run(engine, dispatcher)
    row = outbox_row(engine, message_id)
    assert row.status == "dead"
    assert loads(row.last_error or "") == {"code": "outbox.channel_not_configured", "params": {"channel": "app"}}


def test_unreadable_payload_is_dead(engine: Engine, memory: MemoryChannel, dispatcher: Dispatcher) -> None:
    message_id = add_message(engine, payload="[1, 2]")
    run(engine, dispatcher)
    assert outbox_row(engine, message_id).status == "dead"
    assert memory.sent == []


def test_event_without_subscriber_is_delivered_with_a_note(engine: Engine, clock: FakeClock) -> None:
    dispatcher = Dispatcher({"event": EventWebhookChannel([], poster=None, secret="", clock=clock)})  # type: ignore[arg-type]
    message_id = add_message(engine, topic="task.created")
    stats = run(engine, dispatcher)
    row = outbox_row(engine, message_id)
    assert (stats.skipped, stats.delivered) == (1, 0)
    assert (row.status, row.attempts, row.delivered_at) == ("delivered", 0, clock.now())
    assert loads(row.last_error or "") == {"code": "outbox.no_subscriber", "params": {"topic": "task.created"}}


def test_a_channel_bug_is_retried_not_lost(engine: Engine, dispatcher: Dispatcher, memory: MemoryChannel) -> None:
    class Broken:
        def send(self, message: OutboxMessage) -> None:
            raise KeyError("oops")

    message_id = add_message(engine)
    run(engine, Dispatcher({"event": Broken()}))
    row = outbox_row(engine, message_id)
    assert (row.status, row.attempts) == ("pending", 1)
    assert loads(row.last_error or "") == {"code": "outbox.unexpected", "params": {"type": "KeyError"}}


def test_claimed_message_is_invisible_to_another_worker_until_the_lease_ends(engine: Engine, clock: FakeClock) -> None:
    seen: list[int] = []
    settings = OutboxSettings(lease=timedelta(minutes=5))

    class Nested:
        """While the first worker sends, a second worker runs a round of its own."""

        def send(self, message: OutboxMessage) -> None:
            seen.append(message.id)
            inner = deliver_due(engine.db, clock, settings, dispatcher=Dispatcher({"event": MemoryChannel()}))
            assert inner.claimed == 0

    add_message(engine)
    stats = deliver_due(engine.db, clock, settings, dispatcher=Dispatcher({"event": Nested()}, send_budget=SECOND))
    assert (stats.claimed, stats.delivered, len(seen)) == (1, 1, 1)


def test_outcome_is_not_recorded_once_the_lease_passed_to_another_worker(engine: Engine, clock: FakeClock) -> None:
    settings = OutboxSettings(lease=timedelta(minutes=5))
    message_id = add_message(engine)
    second = MemoryChannel()

    class Slow:
        """Takes longer than the lease; meanwhile another worker claims and delivers the row."""

        def send(self, message: OutboxMessage) -> None:
            clock.advance(timedelta(minutes=6))
            assert deliver_due(engine.db, clock, settings, dispatcher=Dispatcher({"event": second})).delivered == 1
            raise RetryableDeliveryError("outbox.timeout", params={"seconds": 5})

    stats = deliver_due(engine.db, clock, settings, dispatcher=Dispatcher({"event": Slow()}, send_budget=SECOND))
    row = outbox_row(engine, message_id)
    assert (stats.lost, stats.retrying) == (1, 0)
    assert (row.status, row.attempts, row.last_error) == ("delivered", 1, None)
    assert len(second.sent) == 1


def test_messages_the_lease_no_longer_covers_are_handed_back(engine: Engine, clock: FakeClock) -> None:
    settings = OutboxSettings(lease=timedelta(minutes=5))
    first, second = add_message(engine), add_message(engine, next_attempt_at=clock.now() - SECOND)
    before = outbox_row(engine, second).next_attempt_at

    class Slow:
        def send(self, message: OutboxMessage) -> None:
            clock.advance(timedelta(minutes=4, seconds=55))

    stats = deliver_due(engine.db, clock, settings, dispatcher=Dispatcher({"event": Slow()}, send_budget=timedelta(seconds=10)))
    assert (stats.claimed, stats.delivered, stats.released) == (2, 1, 1)
    assert outbox_row(engine, first).status == "delivered"
    assert (outbox_row(engine, second).status, outbox_row(engine, second).next_attempt_at) == ("pending", before)


def test_a_row_changed_under_the_lease_is_left_alone(engine: Engine, clock: FakeClock) -> None:
    message_id = add_message(engine)

    class Meddler:
        """An operator (or a bug) rewrites the row while it is being sent."""

        def send(self, message: OutboxMessage) -> None:
            with engine.db.transaction() as session:
                session.execute(update(OutboxRow).where(OutboxRow.id == message.id).values(status="dead"))

    assert deliver_due(engine.db, clock, SETTINGS, dispatcher=Dispatcher({"event": Meddler()})).lost == 1
    assert outbox_row(engine, message_id).status == "dead"

