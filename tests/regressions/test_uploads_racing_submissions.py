"""Uploads racing with submissions (threads; real overlap on PostgreSQL), across two Engine
objects (two processes' caches): one engine uploads form versions (each adds a field) and a
roles definition, the other submits all along. Proves (passes when no bug) that no call fails
with anything but the documented refusals, every record names a stored form version whose
fields it holds, and after the last upload the very next submission uses the last version
(c554764: cached catalog snapshot keyed by (row count, max id), pinned per operation)."""
from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

from engine import Engine, FakeClock
from engine.errors import EngineError

BANK = Path(__file__).resolve().parents[2] / "examples" / "bank"
VERSIONS = 8


def test_submissions_during_uploads(bank: Engine, database_url: str, clock: FakeClock) -> None:
    other = Engine(database_url, clock=clock)
    try:
        form = json.loads((BANK / "forms" / "customer.json").read_text())
        failures: list[Any] = []
        created: list[dict[str, Any]] = []
        stop = threading.Event()

        def upload() -> None:
            try:
                for n in range(VERSIONS):
                    form["schema"]["properties"][f"extra_{n}"] = {"type": "string", "title": f"Extra {n}"}
                    bank.upload(json.loads(json.dumps(form)))
            except BaseException as exc:  # noqa: BLE001
                failures.append(("upload", repr(exc)))
            finally:
                stop.set()

        def submit(k: int) -> None:
            i = 0
            while not stop.is_set() or i < 3:
                i += 1
                try:
                    created.append(other.submit("customer", {"company_name": f"C{k}-{i}"}))
                except EngineError as exc:
                    failures.append(("submit", exc.code))
                except BaseException as exc:  # noqa: BLE001
                    failures.append(("submit", repr(exc)))

        threads = [threading.Thread(target=upload)] + [threading.Thread(target=submit, args=(k,)) for k in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(180)
        assert failures == []
        versions = {record["form_version"] for record in created}
        assert versions <= set(range(1, VERSIONS + 2))
        for record in created[:: max(1, len(created) // 20)]:
            assert other.record(record["id"])["form_version"] == record["form_version"]
        last = other.submit("customer", {"company_name": "Last", f"extra_{VERSIONS - 1}": "x"})
        assert last["form_version"] == VERSIONS + 1 and last["data"][f"extra_{VERSIONS - 1}"] == "x"
    finally:
        other.close()
