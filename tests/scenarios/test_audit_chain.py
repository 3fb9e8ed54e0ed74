"""The hash-chained audit log: entries written by submissions, updates, task actions and the
bulk import form one intact chain; an entry edited, deleted or swapped with raw SQL is caught
with its id and the reason; concurrent writers do not fork the chain; `lowcode audit verify`
exits 0 or 4. SQLite and (when configured) PostgreSQL."""
from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from engine import Engine, Principal
from engine.store.audit import GENESIS, canonical_at, entry_hash

FORM = {"kind": "form", "key": "request", "title": "Request", "process": "signoff",
        "schema": {"type": "object", "properties": {"amount": {"type": "integer"}, "note": {"type": "string"}}}}
PROCESS = {"kind": "process", "key": "signoff", "form": "request", "title": "Sign-off", "start": "sign",
           "states": {"sign": {"type": "task", "assignee": {"role": "r1"},
                               "actions": {"approve": {"transitions": [{"to": "yes"}]}}},
                      "yes": {"type": "end", "outcome": "approved"}}}
NOTE = {"kind": "form", "key": "note", "title": "Note",
        "schema": {"type": "object", "properties": {"text": {"type": "string"}, "n": {"type": "integer"}}}}
SIGNER = Principal("user-r1", frozenset({"r1"}))


@pytest.fixture
def busy(engine: Engine, tmp_path: Path) -> Engine:
    """An engine whose audit log holds uploads, submissions, an update, a task action and a
    bulk import (plain and all or nothing)."""
    engine.upload(NOTE)
    engine.upload(FORM)
    engine.upload(PROCESS)
    instance = engine.submit("request", {"amount": 10}, Principal("clerk"))["instances"][0]
    task = next(t["id"] for t in engine.instance(instance["id"])["tasks"] if t["status"] == "open")
    engine.act(task, "approve", SIGNER)
    note = engine.submit("note", {"text": "first"}, Principal("clerk"))
    engine.update(note["id"], {"text": "second"}, Principal("clerk"), 1)
    source = tmp_path / "notes.jsonl"
    source.write_text("".join(json.dumps({"text": f"row {n}", "n": n}) + "\n" for n in range(25)), encoding="utf-8")
    assert engine.run_import("note", source, batch_size=7).imported == 25
    assert engine.run_import("note", source, batch_size=10, all_or_nothing=True).imported == 25
    requests = tmp_path / "requests.jsonl"
    requests.write_text("".join(json.dumps({"amount": n}) + "\n" for n in range(3)), encoding="utf-8")
    assert engine.run_import("request", requests, batch_size=2).imported == 3
    return engine


def _execute(engine: Engine, sql: str, **params: Any) -> None:
    with engine.db.engine.begin() as connection:
        connection.execute(text(sql), params)


def _ids(engine: Engine) -> list[int]:
    with engine.db.engine.connect() as connection:
        return list(connection.execute(text("SELECT id FROM audit_log ORDER BY id")).scalars())


def test_every_writer_chains_its_entries(busy: Engine) -> None:
    ids = _ids(busy)
    assert ids == list(range(1, len(ids) + 1)) and len(ids) > 55
    with busy.db.engine.connect() as connection:
        actions = set(connection.execute(text("SELECT action FROM audit_log")).scalars())
        first = connection.execute(text("SELECT * FROM audit_log WHERE id = 1")).mappings().one()
    assert {"definition.upload", "record.create", "record.update"} <= actions and len(actions) > 3
    assert first["prev_hash"] == GENESIS
    with busy.db.read() as session:
        from engine.store.models import AuditRow

        row = session.get(AuditRow, 1)
        assert row is not None
        assert row.hash == entry_hash(1, canonical_at(row.at), row.actor, row.action, row.object_type, row.object_id,
                                      row.detail, row.request_id, GENESIS)
    result = busy.verify_audit(batch=4)  # several batches
    assert (result.intact, result.count, result.broken_id) == (True, len(ids), None)


def test_an_edited_entry_is_caught(busy: Engine) -> None:
    _execute(busy, "UPDATE audit_log SET detail = :d WHERE id = 5", d='{"forged":true}')
    result = busy.verify_audit(batch=3)
    assert (result.intact, result.broken_id, result.reason, result.count) == (False, 5, "edited", 4)


def test_an_edited_timestamp_is_caught(busy: Engine) -> None:
    _execute(busy, "UPDATE audit_log SET actor = 'someone else' WHERE id = 12")
    assert (busy.verify_audit().broken_id, busy.verify_audit().reason) == (12, "edited")


def test_a_deleted_entry_is_caught(busy: Engine) -> None:
    _execute(busy, "DELETE FROM audit_log WHERE id = 9")
    result = busy.verify_audit(batch=5)
    assert (result.intact, result.broken_id, result.reason) == (False, 9, "deleted")


def test_a_deletion_with_the_ids_closed_up_is_caught(busy: Engine) -> None:
    last = _ids(busy)[-1]
    _execute(busy, "DELETE FROM audit_log WHERE id = 9")
    for entry_id in range(10, last + 1):
        _execute(busy, "UPDATE audit_log SET id = :new WHERE id = :old", new=entry_id - 1, old=entry_id)
    result = busy.verify_audit()
    assert (result.intact, result.broken_id) == (False, 9) and result.reason in ("edited", "reordered")


def test_two_swapped_entries_are_caught(busy: Engine) -> None:
    _swap(busy, 7, 20)
    result = busy.verify_audit(batch=6)
    assert (result.intact, result.broken_id, result.reason) == (False, 7, "reordered")


def test_two_swapped_neighbours_are_caught(busy: Engine) -> None:
    _swap(busy, 30, 31)
    result = busy.verify_audit()
    assert (result.intact, result.broken_id, result.reason) == (False, 30, "reordered")


def _swap(engine: Engine, a: int, b: int) -> None:
    """Exchange every column but the id of entries ``a`` and ``b``."""
    columns = ["at", "actor", "action", "object_type", "object_id", "detail", "request_id", "prev_hash", "hash"]
    with engine.db.engine.begin() as connection:
        rows = {row["id"]: row for row in connection.execute(
            text("SELECT * FROM audit_log WHERE id IN (:a, :b)"), {"a": a, "b": b}).mappings()}
        for target, source in ((a, b), (b, a)):
            sets = ", ".join(f"{column} = :{column}" for column in columns)
            connection.execute(text(f"UPDATE audit_log SET {sets} WHERE id = :id"),
                               {**{column: rows[source][column] for column in columns}, "id": target})


def test_an_empty_log_is_intact(engine: Engine) -> None:
    result = engine.verify_audit()
    assert (result.intact, result.count, result.head) == (True, 0, GENESIS)


def test_concurrent_writers_do_not_fork_the_chain(engine: Engine) -> None:
    engine.upload(NOTE)
    threads_count, each = 8, 6
    barrier = threading.Barrier(threads_count, timeout=30)
    failures: list[BaseException] = []

    def write(n: int) -> None:
        try:
            barrier.wait()
            for k in range(each):
                record = engine.submit("note", {"text": f"{n}-{k}"}, Principal(f"clerk-{n}"))
                if k % 2:
                    engine.update(record["id"], {"n": k}, Principal(f"clerk-{n}"), 1)
        except BaseException as exc:  # noqa: BLE001 - asserted below
            failures.append(exc)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(threads_count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert failures == []
    expected = 1 + threads_count * each + threads_count * (each // 2)
    with engine.db.engine.connect() as connection:
        hashes = connection.execute(text("SELECT count(DISTINCT prev_hash), count(*) FROM audit_log")).one()
    assert tuple(hashes) == (expected, expected)  # no two entries follow the same one
    result = engine.verify_audit(batch=10)
    assert (result.intact, result.count) == (True, expected)


def test_the_command_exits_0_when_intact_and_4_when_broken(busy: Engine) -> None:
    from engine.cli import app

    runner = CliRunner()
    url = busy.db.url
    count = len(_ids(busy))
    intact = runner.invoke(app, ["audit", "verify", "--database-url", url])
    assert intact.exit_code == 0, intact.output
    assert f"{count} entries" in intact.output
    _execute(busy, "DELETE FROM audit_log WHERE id = 3")
    broken = runner.invoke(app, ["audit", "verify", "--database-url", url, "--batch", "2"])
    assert broken.exit_code == 4
    assert "id=3" in broken.output and "deleted" in broken.output and "audit.entry_deleted" in broken.output
    zh = runner.invoke(app, ["audit", "verify", "--database-url", url, "--language", "zh-CN"])
    assert zh.exit_code == 4 and "被删除" in zh.output
