"""The hash-chained audit log: every entry carries the hash of the one before it.

``hash = SHA-256(canonical JSON of [id, at, actor, action, object_type, object_id, detail,
request_id, prev_hash])``, ``at`` as UTC ISO-8601 with microseconds and a ``Z``; the first
entry's ``prev_hash`` is 64 zeros. Ids are handed out here, gapless (tail id + 1), so a missing
id means a deleted entry.

Every writer goes through one of two places:

- the ORM: a ``before_flush`` listener on every :class:`~sqlalchemy.orm.Session` keeps the
  session's new :class:`AuditRow` objects out of its flushes until the transaction commits; the
  commit's own flush numbers and hashes them (in the order they were added). The lock below is
  thus held only for that last flush and the commit, never while the transaction still reads;
- raw inserts (the bulk import): :func:`chain_rows` turns its tuples into chained ones.

Appends are serialized so the chain cannot fork: on PostgreSQL both take
``pg_advisory_xact_lock(AUDIT_LOCK)`` before reading the tail, held until the transaction
ends; SQLite write transactions are already serialized (``BEGIN IMMEDIATE``). The tail is read
again at each flush (cheap: the last row by primary key), so a rolled-back savepoint cannot
leave the chain pointing at entries that are gone.

:func:`verify` walks the chain in id order, in batches (constant memory).
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import event, inspect as sa_inspect, select, text
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from engine.store.models import AuditRow

GENESIS = "0" * 64
"""The ``prev_hash`` of the first entry."""

AUDIT_LOCK = 0x6C6F77636F6465
"""The PostgreSQL advisory lock key that serializes audit appends ("lowcode" in hex)."""

_TABLE = AuditRow.__table__
_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
_sha256 = hashlib.sha256


def canonical_at(value: Any) -> str:
    """An instant as the chain hashes it: UTC, ISO-8601, microseconds, ``Z``. Takes an aware
    datetime, a naive UTC one, or the text SQLite binds (``YYYY-MM-DD HH:MM:SS.ffffff``)."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if value.tzinfo is not None:
        value = value.astimezone(timezone.utc).replace(tzinfo=None)
    return value.isoformat(sep="T", timespec="microseconds") + "Z"


def entry_hash(entry_id: int, at: str, actor: str, action: str, object_type: str, object_id: str,
               detail: str, request_id: str | None, prev_hash: str) -> str:
    """The SHA-256 (hex) of one entry; ``at`` as :func:`canonical_at` gives it."""
    payload = _dumps([entry_id, at, actor, action, object_type, object_id, detail, request_id, prev_hash])
    return _sha256(payload.encode("utf-8", "surrogatepass")).hexdigest()


_APPEND_LOCKED = "lowcode.append_locked"
"""``Connection.info`` key: the transaction of that connection that holds the append lock."""


def take_append_lock(connection: Connection) -> None:
    """Take the append lock (audit chain and event feed, PostgreSQL) for the rest of the
    connection's transaction; once per transaction (the lock is held until it ends anyway)."""
    if connection.dialect.name != "postgresql":
        return
    transaction = connection.get_transaction()
    if transaction is not None and connection.info.get(_APPEND_LOCKED) is transaction:
        return
    connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": AUDIT_LOCK})
    connection.info[_APPEND_LOCKED] = transaction


def tail(connection: Connection) -> tuple[int, str]:
    """Lock the chain for this transaction (PostgreSQL) and return the last entry's id and hash
    (``(0, GENESIS)`` when the log is empty)."""
    take_append_lock(connection)
    row = connection.execute(select(_TABLE.c.id, _TABLE.c.hash).order_by(_TABLE.c.id.desc()).limit(1)).first()
    return (0, GENESIS) if row is None else (int(row[0]), row[1])


def chain_rows(connection: Connection, rows: Sequence[Sequence[Any]]) -> list[tuple[Any, ...]]:
    """Raw-insert tuples ``(at, actor, action, object_type, object_id, detail)`` (``at`` bound as
    the database takes it) as chained tuples ``(id, at, actor, action, object_type, object_id,
    detail, request_id, prev_hash, hash)``, continuing the chain of ``connection``'s
    transaction. ``request_id`` is None (raw inserts come from the command line or the worker).
    """
    last_id, prev = tail(connection)
    chained: list[tuple[Any, ...]] = []
    append = chained.append
    stamps: dict[Any, str] = {}  # a batch shares few instants
    for at, actor, action, object_type, object_id, detail in rows:
        last_id += 1
        stamp = stamps.get(at)
        if stamp is None:
            stamp = stamps[at] = canonical_at(at)
        digest = _sha256(_dumps([last_id, stamp, actor, action, object_type, object_id, detail, None, prev])
                         .encode("utf-8", "surrogatepass")).hexdigest()
        append((last_id, at, actor, action, object_type, object_id, detail, None, prev, digest))
        prev = digest
    return chained


_HELD = "lowcode.audit.held"
"""``session.info`` key: the transaction's audit entries, kept out of its flushes until commit."""
FINAL = "lowcode.chain.final"
"""``session.info`` key, set from the commit on: flushes take the chain lock and append at once."""


def _outermost(session: Session) -> bool:
    return not session.in_nested_transaction()


@event.listens_for(Session, "before_flush")
def _chain_new_entries(session: Session, _context: Any, _instances: Any) -> None:
    new = [item for item in session.new if isinstance(item, AuditRow)]
    if not new:
        return
    new.sort(key=lambda item: sa_inspect(item).insert_order)
    if _outermost(session) and not session.info.get(FINAL):
        # The lock is taken as late as possible: the entries wait out of the session (nothing
        # reads a transaction's own audit entries before it commits) and are chained by the
        # commit's own flush, so the lock is held for that last flush and the commit only.
        held = session.info.setdefault(_HELD, [])
        for item in new:
            session.expunge(item)
            held.append(item)
        return
    _chain(session, new)


@event.listens_for(Session, "before_commit")
def _chain_held_entries(session: Session) -> None:
    if not _outermost(session):
        return
    session.info[FINAL] = True
    held = session.info.pop(_HELD, None)
    if held:
        # Chained by the commit's flush (before_flush above), in the order they were added:
        # the held ones first, then any added since the last flush (they go back in after).
        pending = sorted((item for item in session.new if isinstance(item, AuditRow)),
                         key=lambda item: sa_inspect(item).insert_order)
        for item in pending:
            session.expunge(item)
        session.add_all(held + pending)


@event.listens_for(Session, "after_transaction_end")
def _forget_held_entries(session: Session, transaction: Any) -> None:
    if transaction.parent is None:  # committed or rolled back: the next transaction starts clean
        session.info.pop(_HELD, None)
        session.info.pop(FINAL, None)


def _chain(session: Session, new: list[AuditRow]) -> None:
    last_id, prev = tail(session.connection())
    for item in new:
        last_id += 1
        item.id = last_id
        item.prev_hash = prev
        item.hash = prev = entry_hash(last_id, canonical_at(item.at), item.actor, item.action, item.object_type,
                                      item.object_id, item.detail, item.request_id, prev)


# -- verification ----------------------------------------------------------------------------


@dataclass(frozen=True)
class AuditVerification:
    """What :func:`verify` found."""

    intact: bool
    count: int
    """Entries checked (up to the first broken one)."""
    head: str
    """The hash of the last intact entry (GENESIS for an empty log): record it elsewhere to
    also detect a truncated tail or a rewritten chain."""
    broken_id: int | None = None
    """The first entry found edited, deleted (the missing id) or moved."""
    reason: str | None = None
    """``edited``, ``deleted`` or ``reordered``."""
    code: str | None = None
    """The message code (engine.messages) that explains ``reason``."""


_COLUMNS = (_TABLE.c.id, _TABLE.c.at, _TABLE.c.actor, _TABLE.c.action, _TABLE.c.object_type, _TABLE.c.object_id,
            _TABLE.c.detail, _TABLE.c.request_id, _TABLE.c.prev_hash, _TABLE.c.hash)


def _own_hash(entry_id: int, row: Any) -> str:
    return entry_hash(entry_id, canonical_at(row.at), row.actor, row.action, row.object_type, row.object_id,
                      row.detail, row.request_id, row.prev_hash)


def _moved_from(connection: Connection, row: Any, depth: int = 0) -> int | None:
    """The id an entry's content was hashed for, if it is another position of the chain: one
    past the original position of the entry whose hash it names as ``prev_hash``."""
    if row.prev_hash == GENESIS:
        candidates: list[int] = [1]
    elif depth >= 3:
        return None
    else:
        candidates = []
        for holder in connection.execute(select(*_COLUMNS).where(_TABLE.c.hash == row.prev_hash)).all():
            origin = holder.id if _own_hash(holder.id, holder) == holder.hash \
                else _moved_from(connection, holder, depth + 1)
            if origin is not None:
                candidates.append(origin + 1)
    for candidate in candidates:
        if candidate != row.id and _own_hash(candidate, row) == row.hash:
            return candidate
    return None


def verify(connection: Connection, batch: int = 1000) -> AuditVerification:
    """Walk the chain in id order, ``batch`` entries per query; stop at the first broken entry."""
    expected_id, prev, count = 1, GENESIS, 0
    last = 0
    while True:
        rows = connection.execute(select(*_COLUMNS).where(_TABLE.c.id > last).order_by(_TABLE.c.id).limit(batch)).all()
        if not rows:
            return AuditVerification(True, count, prev)
        for row in rows:
            if row.id != expected_id:
                return AuditVerification(False, count, prev, expected_id, "deleted", "audit.entry_deleted")
            if _own_hash(row.id, row) != row.hash:
                moved = _moved_from(connection, row)
                if moved is not None:
                    return AuditVerification(False, count, prev, row.id, "reordered", "audit.entry_reordered")
                return AuditVerification(False, count, prev, row.id, "edited", "audit.entry_edited")
            if row.prev_hash != prev:
                # Self-consistent but not linked to its predecessor: entries before it were
                # removed (and the ids closed up) or the predecessor was rewritten.
                return AuditVerification(False, count, prev, row.id, "deleted", "audit.entry_unlinked")
            prev = row.hash
            expected_id += 1
            count += 1
        last = rows[-1].id
