"""Outbox delivery end to end: a real HTTP receiver on 127.0.0.1 gets signed events and
notifications, failures retry on the injected clock, dead letters are listed and retried over
the API, and two workers racing over the same rows never send one twice."""
from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from fastapi.testclient import TestClient

from engine import Engine, FakeClock, Principal
from engine.api.app import create_app
from engine.jsoncodec import dumps, loads
from engine.notify import DeliveryStats, Dispatcher, OutboxSettings, deliver_due, verify_signature
from engine.notify.testing import WebhookReceiver
from engine.store.database import Database
from engine.store.models import OutboxRow

SECRET = "test-signing-secret"
OPERATOR = {"X-User": "ops-1", "X-Roles": "operator"}
STAFF = Principal("ops-1", frozenset({"operator"}))


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver.running() as running:
        yield running


@pytest.fixture
def wired(engine: Engine, receiver: WebhookReceiver) -> Engine:
    """The engine as started with its outbox pointed at the local receiver (allowed by CIDR)."""
    outbox = OutboxSettings(outbound_allow=("127.0.0.1/32",), secret=SECRET, max_attempts=4,
                            event_webhooks=(receiver.url("/events"),), sms_url=receiver.url("/sms"),
                            timeout=timedelta(seconds=2))
    engine.settings = replace(engine.settings, outbox=outbox)
    engine.dispatcher = Dispatcher.from_settings(outbox, engine.clock)
    return engine


def deliver(engine: Engine) -> DeliveryStats:
    return deliver_due(engine.db, engine.clock, engine.settings, dispatcher=engine.dispatcher, draw=lambda: 0.0)


def add(engine: Engine, dedup_key: str, *, topic: str = "instance.state_changed", channel: str = "event",
        recipient: str | None = None, payload: Any = None) -> int:
    with engine.db.transaction() as session:
        row = OutboxRow(topic=topic, dedup_key=dedup_key, payload=dumps(payload or {"instance": dedup_key}),
                        status="pending", attempts=0, created_at=engine.clock.now(), channel=channel, recipient=recipient)
        session.add(row)
        session.flush()
        return row.id


def test_event_arrives_signed_byte_for_byte(wired: Engine, clock: FakeClock, receiver: WebhookReceiver) -> None:
    payload = {"instance": "i-1", "process": "p", "state": "review", "amount": Decimal("1000000.10")}
    add(wired, "instance.state_changed:i-1:1", payload=payload)
    assert deliver(wired).delivered == 1
    [request] = receiver.received
    assert request.path == "/events"
    assert request.body == dumps(payload).encode()
    assert b"1000000.10" in request.body
    assert request.headers["X-Lowcode-Delivery"] == "instance.state_changed:i-1:1"
    assert request.headers["X-Lowcode-Topic"] == "instance.state_changed"
    assert request.headers["X-Lowcode-Timestamp"] == str(int(clock.now().timestamp()))
    assert verify_signature(SECRET, request.headers["X-Lowcode-Signature"], request.headers["X-Lowcode-Timestamp"],
                            request.body, now=clock.now().timestamp()) is True


def test_created_record_is_announced_to_the_event_webhook(wired: Engine, receiver: WebhookReceiver) -> None:
    wired.upload({"kind": "form", "key": "note", "title": "Note",
                  "schema": {"type": "object", "properties": {"text": {"type": "string"}}}})
    record = wired.submit("note", {"text": "hello"})
    deliver(wired)
    created = [request for request in receiver.received if request.headers["X-Lowcode-Topic"] == "record.created"]
    assert [loads(request.body) for request in created] == [{"record": record["id"], "form": "note"}]


def test_server_error_is_retried_after_the_backoff_with_the_same_dedup_key(
        wired: Engine, clock: FakeClock, receiver: WebhookReceiver) -> None:
    receiver.answer_in_turn(500, 503)
    message_id = add(wired, "task.created:i-2:1", topic="task.created")
    first_at = clock.now()
    assert deliver(wired).retrying == 1
    clock.advance(timedelta(seconds=29))
    assert deliver(wired).claimed == 0
    clock.advance(timedelta(seconds=1))
    assert deliver(wired).retrying == 1  # second failure: now 60 s
    with wired.db.read() as session:
        row = session.get(OutboxRow, message_id)
        assert row is not None
        assert (row.attempts, row.next_attempt_at) == (2, first_at + timedelta(seconds=30 + 60))
    clock.advance(timedelta(seconds=60))
    assert deliver(wired).delivered == 1
    assert receiver.counts_by_delivery() == {"task.created:i-2:1": 3}
    stamps = [request.headers["X-Lowcode-Timestamp"] for request in receiver.received]
    assert stamps == [str(int((first_at + timedelta(seconds=s)).timestamp())) for s in (0, 30, 90)]
    assert all(verify_signature(SECRET, r.headers["X-Lowcode-Signature"], r.headers["X-Lowcode-Timestamp"], r.body,
                                now=int(r.headers["X-Lowcode-Timestamp"])) for r in receiver.received)


def test_permanent_refusal_goes_dead_then_is_listed_retried_and_delivered(
        wired: Engine, receiver: WebhookReceiver) -> None:
    receiver.answer_in_turn(400)
    message_id = add(wired, "notify:i-3:approved", channel="sms", recipient="address:+8613800000000",
                     payload={"instance": "i-3", "state": "approved",
                              "text": {"zh-CN": "您的申请已批准", "en": "Your application was approved"}})
    assert deliver(wired).dead == 1
    with TestClient(create_app(wired)) as api:
        listed = api.get("/api/v1/outbox/dead-letters", headers=OPERATOR).json()
        assert [(item["id"], item["attempts"], item["last_error"]["code"], item["last_error"]["params"])
                for item in listed["items"]] == [(message_id, 1, "outbox.http_status", {"status": 400})]
        assert api.post(f"/api/v1/outbox/{message_id}/retry", headers={"X-User": "u", "X-Roles": "clerk"}).status_code == 403
        assert api.post(f"/api/v1/outbox/{message_id}/retry", headers=OPERATOR).json()["status"] == "pending"
    assert deliver(wired).delivered == 1
    assert receiver.counts_by_delivery() == {"notify:i-3:approved": 2}
    sms = loads(receiver.received[-1].body)
    assert receiver.received[-1].path == "/sms"
    assert (sms["to"], sms["text"], sms["language"], sms["dedup_key"]) == (
        "+8613800000000", "Your application was approved", "en", "notify:i-3:approved")
    assert wired.dead_letters(actor=STAFF)["total"] == 0


def test_retries_run_out_into_the_dead_letter_list(wired: Engine, clock: FakeClock, receiver: WebhookReceiver) -> None:
    receiver.answer_in_turn(then=502)
    add(wired, "instance.completed:i-4", topic="instance.completed")
    verdicts = []
    for _ in range(4):
        stats = deliver(wired)
        verdicts.append("dead" if stats.dead else "retrying" if stats.retrying else "?")
        clock.advance(timedelta(hours=1))
    assert verdicts == ["retrying", "retrying", "retrying", "dead"]
    assert receiver.counts_by_delivery() == {"instance.completed:i-4": 4}
    assert wired.dead_letters(actor=STAFF)["items"][0]["last_error"]["message"] == "The receiver answered HTTP 502"


def test_two_workers_never_send_one_message_twice(wired: Engine, receiver: WebhookReceiver) -> None:
    keys = [f"race:{n}" for n in range(60)]
    for key in keys:
        add(wired, key)
    start = threading.Barrier(2)
    results: list[list[DeliveryStats]] = [[], []]
    failures: list[BaseException] = []

    def worker(index: int) -> None:
        db = Database(wired.db.url)  # a worker of its own: its own pool, like a second process
        try:
            start.wait(timeout=10)
            while True:
                stats = deliver_due(db, wired.clock, wired.settings, limit=7, dispatcher=wired.dispatcher)
                results[index].append(stats)
                if stats.claimed == 0:
                    return
        except BaseException as exc:  # noqa: BLE001 - reported below
            failures.append(exc)
        finally:
            db.dispose()

    threads = [threading.Thread(target=worker, args=(index,)) for index in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert failures == []
    counts = receiver.counts_by_delivery()
    assert sorted(counts) == sorted(keys)
    assert set(counts.values()) == {1}
    assert sum(stats.delivered for mine in results for stats in mine) == 60
    assert sum(stats.lost + stats.released for mine in results for stats in mine) == 0
    assert all(mine for mine in results)
    assert all(sum(stats.claimed for stats in mine) > 0 for mine in results)  # both really raced
