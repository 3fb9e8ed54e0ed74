"""The background worker: fires due SLA timers and delivers the outbox, round after round.

Run alone (``lowcode worker``) or as a thread inside ``lowcode serve``. Any number of workers
may run against one PostgreSQL database: timers and outbox rows are claimed for a lease with
``FOR UPDATE SKIP LOCKED`` and each effect commits with its status change only while the row
still carries that claim (``engine.workflow.timers``, ``engine.notify.delivery``), so work is
shared and never done twice, even by a worker that stalled past its lease. State lives only in
the database, so a restarted worker resumes where the last one stopped; timers that came due
while nobody ran fire on the first round."""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from engine.facade import Engine

log = logging.getLogger("lowcode.worker")


@dataclass
class RoundResult:
    timers: dict[str, Any] = field(default_factory=dict)
    deliveries: dict[str, Any] = field(default_factory=dict)

    @property
    def busy(self) -> bool:
        """Whether the round did work (then the next round starts at once)."""
        return bool(self.timers.get("fired") or self.timers.get("cancelled") or self.deliveries.get("claimed"))


def _busy(exc: BaseException) -> bool:
    """Whether ``exc`` says the database was locked by another writer past the busy timeout
    (SQLite's ``database is locked``), which the next round simply retries."""
    from sqlalchemy.exc import OperationalError

    return isinstance(exc, OperationalError) and "database is locked" in str(exc.orig)


class Worker:
    def __init__(self, engine: Engine, *, interval: float = 1.0, batch: int = 200) -> None:
        self.engine = engine
        self.interval = interval
        self.batch = batch
        self._stop = threading.Event()

    def run_once(self) -> RoundResult:
        result = RoundResult()
        result.timers = self.engine.run_timers(limit=self.batch)
        result.deliveries = self.engine.deliver_outbox(limit=self.batch)
        return result

    def run_forever(self) -> None:
        while not self._stop.is_set():
            try:
                result = self.run_once()
            except Exception as exc:  # noqa: BLE001 - a bad round is logged; the next one retries
                if _busy(exc):  # another writer (an import, the server) holds SQLite's lock: no news
                    log.warning("database busy (%s): the round's work is tried again next round", exc.__class__.__name__)
                else:
                    log.exception("worker round failed")
                result = RoundResult()
            if result.timers.get("errors"):
                for error in result.timers["errors"]:
                    log.error("timer failed: %s", error)
            if result.timers.get("lost"):
                log.warning("%s claimed timer(s) passed to another worker before firing (lease ended)",
                            result.timers["lost"])
            if not result.busy:
                self._stop.wait(self.interval)

    def stop(self) -> None:
        self._stop.set()

    def start_thread(self) -> threading.Thread:
        thread = threading.Thread(target=self.run_forever, name="lowcode-worker", daemon=True)
        thread.start()
        return thread
