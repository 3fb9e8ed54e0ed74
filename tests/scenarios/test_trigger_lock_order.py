"""A PATCH of a record racing a trigger that updates the same record (PostgreSQL): the trigger's
write locks the record it will update before it takes the audit/feed append lock, the order a
PATCH takes them in (row, then append lock), so the two queue instead of deadlocking. The race is
forced: each side waits for the other at the point where, in the old order, each held one lock and
was about to ask for the other."""
from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import pytest

from engine import Engine
from engine.errors import PreconditionFailed
from engine.insight import triggers
from engine.store import records as record_store

BANK = Path(__file__).resolve().parents[2] / "examples" / "bank"
KINDS = ("form", "process", "profile", "tag", "trigger")
TRIGGER = {"kind": "trigger", "key": "account_marks_customer", "title": {"en": "An account marks its customer", "zh-CN": "开户标记客户"},
           "on": "record.created", "form": "deposit_account",
           "update": {"ref": "customer_id", "set": {"risk_level": "high"}}}

pytestmark = pytest.mark.skipif(not os.environ.get("LOWCODE_TEST_DATABASE_URL"), reason="row and advisory locks: PostgreSQL")


def test_a_patch_racing_a_trigger_on_the_same_record_does_not_deadlock(engine: Engine, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    engine.load_dir(BANK, kinds=KINDS)
    engine.upload(TRIGGER)
    customer = engine.submit("customer", {"company_name": "Raced Co"})
    meet = threading.Barrier(2, timeout=5)
    patcher: dict[str, Any] = {}

    def wait() -> None:
        try:
            meet.wait()
        except threading.BrokenBarrierError:  # the other side is (rightly) waiting for our lock
            pass

    real_update, real_write = triggers._update, record_store.update_if_version

    def trigger_update(*args: Any, **kwargs: Any) -> None:  # the append lock is held by now
        wait()
        real_update(*args, **kwargs)

    def update_if_version(session: Any, record_id: str, *args: Any, **kwargs: Any) -> bool:
        done = real_write(session, record_id, *args, **kwargs)
        if threading.current_thread().name == "patch":  # the row is locked, the audit flush comes next
            wait()
        return done

    monkeypatch.setattr(triggers, "_update", trigger_update)
    monkeypatch.setattr(record_store, "update_if_version", update_if_version)
    errors: list[BaseException] = []

    def run(name: str) -> None:
        try:
            if name == "patch":
                patcher["result"] = engine.update(customer["id"], {"city": "Fuzhou"}, if_match=1)
            else:
                engine.submit("deposit_account", {"customer_id": customer["id"], "product": "current", "average_balance": 5})
        except PreconditionFailed as exc:  # the trigger's write came first: the PATCH's If-Match is stale
            patcher["stale"] = exc
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(name,), name=name) for name in ("patch", "submit")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []  # before the fix: psycopg.errors.DeadlockDetected in one of the two
    stored = engine.record(customer["id"])
    assert stored["data"]["risk_level"] == "high"
    if "result" in patcher:  # the PATCH went first, the trigger updated its outcome
        assert stored["data"]["city"] == "Fuzhou" and stored["row_version"] == 3
    else:
        assert patcher["stale"].code == "record.version_mismatch" and stored["row_version"] == 2
