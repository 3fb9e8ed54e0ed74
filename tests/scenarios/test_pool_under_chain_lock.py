"""Many more concurrent submissions than pooled connections, on PostgreSQL, must all complete.

A write transaction holds the audit chain's advisory lock (also the event feed's) until it
commits. If, while holding it, it checked out a second pooled connection (a definition, roles or
insight lookup of its own), the other writers - each holding a connection while queued on that
lock - could hold the whole pool: the lock holder waits for a connection, the others for the
lock, and the server wedges (the HTTP benchmark did at 32 concurrent requests). Here a pool of 3
connections (no overflow, a short checkout timeout) takes 9 threads submitting at once, from
cold definition caches (a freshly started engine), as a restricted account manager with the
bank's roles in force.
"""
from __future__ import annotations

import os
import threading
import time
from dataclasses import replace
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import create_engine, func, select

from engine import Engine, Principal
from engine.config import Settings
from engine.store import audit
from engine.store.models import EventRow, RecordRow

pytestmark = pytest.mark.skipif(not os.environ.get("LOWCODE_TEST_DATABASE_URL"),
                                reason="the chain lock is PostgreSQL's (SQLite serializes writers itself)")

POOL, THREADS, DEADLINE_S = 3, 9, 90.0
MANAGER = Principal("am-race", frozenset({"account_manager"}))


def _small_pool_engine(url: str, clock: Any) -> Engine:
    """A freshly started engine (cold caches) on a pool of POOL connections, no overflow."""
    fresh = Engine(url, clock=clock, settings=replace(Settings.from_env(), trust_identity_headers=True))
    small = create_engine(url, future=True, pool_size=POOL, max_overflow=0, pool_timeout=10, pool_pre_ping=True)
    fresh.db.engine.dispose()
    fresh.db.engine = fresh.db._read_engine = small
    fresh.db._sessions.configure(bind=small)
    fresh.db._read_sessions.configure(bind=small)
    return fresh


def _application(customer: str, number: int) -> dict[str, Any]:
    base = Decimal(500_000 + 1_000 * number)
    return {"customer_id": customer, "account_manager": MANAGER.id, "applied_on": "2026-12-04",
            "current_limit": base, "requested_limit": base * 2, "risk_rating": "medium",
            "reason": "Seasonal working capital for a new production line"}


def test_three_times_the_pool_in_concurrent_submissions_all_complete(bank_roles: Engine) -> None:
    customer = bank_roles.submit("customer", {"company_name": "RACE CO LLC", "region": "CA",
                                              "account_manager": MANAGER.id})["id"]
    with bank_roles.db.read() as session:
        records_before = session.scalar(select(func.count()).select_from(RecordRow))
    racing = _small_pool_engine(bank_roles.db.url, bank_roles.clock)
    try:
        barrier = threading.Barrier(THREADS, timeout=30)
        outcomes: list[Any] = [None] * THREADS

        def submit(index: int) -> None:
            try:
                barrier.wait()
                outcomes[index] = racing.submit("credit_limit_adjustment", _application(customer, index), MANAGER)
            except Exception as exc:  # noqa: BLE001 - reported by the assertion below
                outcomes[index] = exc

        threads = [threading.Thread(target=submit, args=(index,), daemon=True) for index in range(THREADS)]
        started = time.monotonic()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(max(0.0, DEADLINE_S - (time.monotonic() - started)))
        stuck = [index for index, thread in enumerate(threads) if thread.is_alive()]
        assert not stuck, f"{len(stuck)} of {THREADS} submissions still waiting after {DEADLINE_S:g} s"
        failures = [outcome for outcome in outcomes if isinstance(outcome, BaseException)]
        assert not failures, f"{len(failures)} of {THREADS} failed, first: {failures[0]!r}"
        assert len({outcome["id"] for outcome in outcomes}) == THREADS
    finally:
        racing.close()

    with bank_roles.db.read() as session:
        assert session.scalar(select(func.count()).select_from(RecordRow)) == records_before + THREADS
        seqs = list(session.scalars(select(EventRow.seq).order_by(EventRow.seq)))
        assert seqs == list(range(1, len(seqs) + 1))  # the feed: no gap, no duplicate
        verification = audit.verify(session.connection())
    assert verification.intact and verification.count > THREADS
