"""Two clerks save the same record at the same moment, and a client retries a submission while
the first attempt is still in flight: no lost update, no duplicate record. Real threads, on
SQLite and (when configured) PostgreSQL."""
from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import func, select

from engine import Engine, Principal
from engine.errors import PreconditionFailed
from engine.store import idempotency
from engine.store import records as record_store
from engine.store.models import AuditRow, IdempotencyKeyRow, OutboxRow, RecordRow

FORM = {"kind": "form", "key": "ledger_note", "title": "Ledger note",
        "schema": {"type": "object", "required": ["text"], "additionalProperties": False,
                   "properties": {"text": {"type": "string"}, "amount": {"type": "integer"}}}}
CLERKS = [Principal(f"clerk-{n}") for n in range(8)]


def _run_together(work: list[Callable[[], Any]]) -> list[Any]:
    """Start every callable at once; each outcome is its result or the exception it raised."""
    barrier = threading.Barrier(len(work), timeout=30)
    outcomes: list[Any] = [None] * len(work)

    def run(index: int) -> None:
        try:
            barrier.wait()
            outcomes[index] = work[index]()
        except Exception as exc:  # noqa: BLE001 - compared by the test
            outcomes[index] = exc

    threads = [threading.Thread(target=run, args=(index,)) for index in range(len(work))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return outcomes


def _count(engine: Engine, model: Any, *where: Any) -> int:
    with engine.db.read() as session:
        return int(session.scalar(select(func.count()).select_from(model).where(*where)) or 0)


@pytest.fixture
def notes(engine: Engine) -> Engine:
    engine.upload(FORM)
    return engine


def test_of_two_patches_with_the_same_if_match_one_wins(notes: Engine) -> None:
    for round_number in range(6):
        record = notes.submit("ledger_note", {"text": "start"})
        outcomes = _run_together([
            lambda record_id=record["id"]: notes.update(record_id, {"text": "from clerk 0"}, CLERKS[0], 1),
            lambda record_id=record["id"]: notes.update(record_id, {"text": "from clerk 1"}, CLERKS[1], 1),
        ])
        winners = [outcome for outcome in outcomes if isinstance(outcome, dict)]
        losers = [outcome for outcome in outcomes if isinstance(outcome, PreconditionFailed)]
        assert (len(winners), len(losers)) == (1, 1), (round_number, outcomes)
        stored = notes.record(record["id"])
        assert stored["row_version"] == 2 and stored["data"] == winners[0]["data"]
        assert _count(notes, AuditRow, AuditRow.action == "record.update", AuditRow.object_id == record["id"]) == 1
        assert _count(notes, OutboxRow, OutboxRow.dedup_key.like(f"record.updated:{record['id']}:%")) == 1


def test_the_version_check_is_in_the_update_itself(notes: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    """Both writers have read version 1 and passed validation before either writes; only the
    conditional UPDATE can tell them apart."""
    record = notes.submit("ledger_note", {"text": "start", "amount": 1})
    both_read = threading.Barrier(2, timeout=30)
    original = record_store.update_if_version

    def after_both_read(*args: Any, **kwargs: Any) -> bool:
        both_read.wait()
        return original(*args, **kwargs)

    monkeypatch.setattr(record_store, "update_if_version", after_both_read)
    outcomes = _run_together([
        lambda: notes.update(record["id"], {"amount": 2}, CLERKS[0], 1),
        lambda: notes.update(record["id"], {"text": "other"}, CLERKS[1], 1),
    ])
    assert sorted(type(outcome).__name__ for outcome in outcomes) == ["PreconditionFailed", "dict"], outcomes
    loser = next(outcome for outcome in outcomes if isinstance(outcome, PreconditionFailed))
    assert loser.params == {"current": 2}
    stored = notes.record(record["id"])
    # no lost update merged in: exactly one writer's change is there
    assert stored["data"] in ({"text": "start", "amount": 2}, {"text": "other", "amount": 1})
    assert stored["row_version"] == 2


def test_concurrent_first_attempts_with_one_key_create_one_record(notes: Engine) -> None:
    actor = Principal("teller-1")
    for round_number in range(4):
        key = f"payment-{round_number}"
        outcomes = _run_together([
            (lambda key=key: notes.submit_replayable("ledger_note", {"text": "pay"}, actor, idempotency_key=key))
            for _ in range(6)
        ])
        assert all(not isinstance(outcome, Exception) for outcome in outcomes), outcomes
        assert len({outcome.record["id"] for outcome in outcomes}) == 1
        assert sum(not outcome.replayed for outcome in outcomes) == 1
    assert _count(notes, RecordRow, RecordRow.form_key == "ledger_note") == 4
    assert _count(notes, IdempotencyKeyRow) == 4
    assert _count(notes, AuditRow, AuditRow.action == "record.create") == 4


def test_a_racing_twin_waits_for_the_first_attempt_and_replays_it(notes: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    """Both attempts found no key and validated before either stored it: the unique (actor,
    key) decides, and the loser returns the winner's record instead of an error."""
    actor = Principal("teller-2")
    both_checked = threading.Barrier(2, timeout=30)
    original = idempotency.remember

    def after_both_checked(*args: Any, **kwargs: Any) -> None:
        both_checked.wait()
        original(*args, **kwargs)

    monkeypatch.setattr(idempotency, "remember", after_both_checked)
    outcomes = _run_together([
        lambda: notes.submit_replayable("ledger_note", {"text": "pay"}, actor, idempotency_key="twin"),
        lambda: notes.submit_replayable("ledger_note", {"text": "pay"}, actor, idempotency_key="twin"),
    ])
    assert all(not isinstance(outcome, Exception) for outcome in outcomes), outcomes
    assert outcomes[0].record["id"] == outcomes[1].record["id"]
    assert sorted(outcome.replayed for outcome in outcomes) == [False, True]
    assert _count(notes, RecordRow) == 1


def test_a_racing_twin_with_another_body_is_refused(notes: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    actor = Principal("teller-3")
    both_checked = threading.Barrier(2, timeout=30)
    original = idempotency.remember

    def after_both_checked(*args: Any, **kwargs: Any) -> None:
        both_checked.wait()
        original(*args, **kwargs)

    monkeypatch.setattr(idempotency, "remember", after_both_checked)
    outcomes = _run_together([
        lambda: notes.submit_replayable("ledger_note", {"text": "pay 1"}, actor, idempotency_key="twin"),
        lambda: notes.submit_replayable("ledger_note", {"text": "pay 2"}, actor, idempotency_key="twin"),
    ])
    refused = [outcome for outcome in outcomes if isinstance(outcome, Exception)]
    assert len(refused) == 1 and refused[0].code == "record.idempotency_key_reused", outcomes
    assert _count(notes, RecordRow) == 1


def test_over_http_the_loser_of_a_patch_race_gets_412(notes: Engine, client: Any) -> None:
    for _ in range(3):
        record_id = client.post("/api/v1/forms/ledger_note/records", json={"text": "start"}).json()["id"]
        responses = _run_together([
            lambda text=text, url=f"/api/v1/records/{record_id}": client.patch(
                url, json={"text": text}, headers={"If-Match": '"1"'})
            for text in ("a", "b")
        ])
        assert sorted(response.status_code for response in responses) == [200, 412], responses
        loser = next(response for response in responses if response.status_code == 412)
        assert loser.json()["errors"][0]["code"] == "record.version_mismatch"
        assert client.get(f"/api/v1/records/{record_id}").headers["ETag"] == '"2"'


def test_over_http_concurrent_retries_make_one_record(notes: Engine, client: Any) -> None:
    responses = _run_together([
        lambda: client.post("/api/v1/forms/ledger_note/records", json={"text": "pay"},
                            headers={"Idempotency-Key": "http-twin", "X-User": "teller-9"})
        for _ in range(4)
    ])
    assert [response.status_code for response in responses] == [201] * 4, responses
    assert len({response.json()["id"] for response in responses}) == 1
    assert sorted(response.headers.get("Idempotent-Replayed", "") for response in responses) == ["", "true", "true", "true"]
    assert _count(notes, RecordRow) == 1
