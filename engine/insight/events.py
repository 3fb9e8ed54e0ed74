"""The integration event feed: every event outbox message also becomes a numbered ``events`` row.

Whoever writes an outbox row on the ``event`` channel (a record written, an instance moving,
a task overdue, a tag changing) writes its feed entry in the same transaction, without knowing
it: a ``before_flush`` listener notes the session's new event messages and the commit numbers
them (``before_commit``: the lock is held for the last flush and the commit only), and the bulk import
calls :func:`append_raw` for its raw inserts. Numbers are gapless and follow commit order:
appends take the audit chain's PostgreSQL advisory lock (``engine.store.audit.AUDIT_LOCK``,
one lock for both so that the two can never wait on each other in opposite order) before
reading the tail and hold it until the transaction ends; SQLite write transactions are
serialized already (``BEGIN IMMEDIATE``). A puller that saw ``seq`` N has therefore seen every
number below it, for good: a number is only taken once the previous holder has committed or
rolled back (then the number is taken again), so the feed never shows a hole that later fills.
"""
from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import event as sa_event, func, inspect as sa_inspect, select
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from engine.jsoncodec import loads
from engine.store.audit import FINAL, take_append_lock
from engine.store.models import EventRow, OutboxRow

EVENT_CHANNEL = "event"
MAX_PAGE = 1000
_TABLE = EventRow.__table__


def _lock_and_tail(connection: Connection) -> int:
    """Take the append lock (PostgreSQL) and return the last ``seq`` (0 when empty)."""
    take_append_lock(connection)
    return int(connection.execute(select(func.coalesce(func.max(_TABLE.c.seq), 0))).scalar_one())


def is_event(channel: str | None) -> bool:
    """Outbox rows without a channel get the column default, ``event``."""
    return channel is None or channel == EVENT_CHANNEL


_HELD = "lowcode.events.held"
"""``session.info`` key: the transaction's event messages whose feed entries wait for its commit."""
_LAST = "lowcode.events.last"
"""``session.info`` key: the last ``seq`` this transaction gave."""


@sa_event.listens_for(Session, "before_flush")
def _number_new_events(session: Session, _context: Any, _instances: Any) -> None:
    new = [item for item in session.new if isinstance(item, OutboxRow) and is_event(item.channel)]
    if not new:
        return
    new.sort(key=lambda item: sa_inspect(item).insert_order)
    # What the feed entries copy, taken now: by the commit the rows may be expired (an
    # operation that expires its session to answer what was stored would reload each one).
    entries = [(item.topic, item.dedup_key, item.payload, item.created_at) for item in new]
    if not session.in_nested_transaction() and not session.info.get(FINAL):
        # Numbered at commit (below), so the append lock is held only for the last flush and
        # the commit: the outbox rows themselves are written now.
        session.info.setdefault(_HELD, []).extend(entries)
        return
    _number(session, entries)


@sa_event.listens_for(Session, "before_commit")
def _number_held_events(session: Session) -> None:
    if session.in_nested_transaction():
        return
    held = session.info.pop(_HELD, None)
    if held:
        _number(session, held)  # the lock is taken here: the commit's flush follows at once


@sa_event.listens_for(Session, "after_transaction_end")
def _forget_held_events(session: Session, transaction: Any) -> None:
    if transaction.parent is None:
        session.info.pop(_HELD, None)
        session.info.pop(_LAST, None)


def _number(session: Session, new: Sequence[tuple[str, str, str, datetime]]) -> None:
    """Feed entries for ``(topic, dedup_key, payload, at)`` of event outbox rows, numbered on."""
    # The numbers given at commit may not be flushed yet when the commit's flush numbers more.
    seq = max(_lock_and_tail(session.connection()), session.info.get(_LAST, 0))
    for topic, dedup_key, payload, at in new:
        seq += 1
        session.add(EventRow(seq=seq, topic=topic, dedup_key=dedup_key, payload=payload, at=at))
    session.info[_LAST] = seq


def append_raw(connection: Connection, rows: Sequence[tuple[str, str, str, Any]], marker: str) -> None:
    """Feed entries for raw-inserted outbox rows ``(topic, dedup_key, payload, at)`` (``at``
    bound as the database takes it); ``marker`` is the driver's parameter placeholder."""
    if not rows:
        return
    seq = _lock_and_tail(connection)
    numbered = [(seq + index + 1, *row) for index, row in enumerate(rows)]
    connection.exec_driver_sql(
        f"INSERT INTO events (seq, topic, dedup_key, payload, at) VALUES ({', '.join([marker] * 5)})", numbered)


def page(session: Session, after: int, limit: int) -> dict[str, Any]:
    """Events with ``seq > after``, in order: ``{items: [{seq, topic, at, payload}], next}``;
    ``next`` is the cursor to ask with next time (``after`` itself when nothing is new)."""
    rows = session.scalars(select(EventRow).where(EventRow.seq > after).order_by(EventRow.seq).limit(limit)).all()
    items = [{"seq": row.seq, "topic": row.topic, "at": _iso(row.at), "payload": loads(row.payload),
              "id": row.dedup_key} for row in rows]
    return {"items": items, "next": items[-1]["seq"] if items else after}


def _iso(value: datetime) -> str:
    return value.isoformat()


__all__ = ["EVENT_CHANNEL", "MAX_PAGE", "append_raw", "is_event", "page"]
