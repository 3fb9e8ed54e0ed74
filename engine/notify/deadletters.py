"""Dead letters: messages whose retries ran out or that failed for good. Staff list them and
send one back to the queue once its cause is fixed."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update

from engine.errors import Conflict, NotFound
from engine.jsoncodec import dumps, loads
from engine.messages import render_message
from engine.notify.delivery import DEAD, PENDING
from engine.store.database import Database
from engine.store.models import AuditRow, OutboxRow

MAX_ID = 2**63 - 1


def list_dead_letters(db: Database, offset: int, limit: int, language: str) -> dict[str, Any]:
    """``{items, total, offset, limit}``, most recent first; each error rendered in ``language``."""
    with db.read() as session:
        total = session.scalar(select(func.count()).select_from(OutboxRow).where(OutboxRow.status == DEAD)) or 0
        rows = session.scalars(select(OutboxRow).where(OutboxRow.status == DEAD)
                               .order_by(OutboxRow.id.desc()).offset(offset).limit(limit)).all()
        return {"items": [message_view(row, language) for row in rows], "total": total, "offset": offset, "limit": limit}


def retry_dead_letter(db: Database, message_id: int, actor: str, now: datetime, language: str) -> dict[str, Any]:
    """Put a dead message back in the queue: ``pending``, due now, attempts from zero (its last
    error stays until the next attempt). Audited. Raises :class:`NotFound`
    (``outbox.not_found``) or :class:`Conflict` (``outbox.not_dead``) — also when two staff
    retry the same message at once: the second finds it pending."""
    if not 1 <= message_id <= MAX_ID:
        raise NotFound("outbox.not_found", params={"id": message_id})
    with db.transaction() as session:
        moved = session.execute(
            update(OutboxRow).where(OutboxRow.id == message_id, OutboxRow.status == DEAD)
            .values(status=PENDING, attempts=0, next_attempt_at=None)
            .execution_options(synchronize_session=False)
        )
        if getattr(moved, "rowcount", 0) != 1:
            status = session.scalar(select(OutboxRow.status).where(OutboxRow.id == message_id))
            if status is None:
                raise NotFound("outbox.not_found", params={"id": message_id})
            raise Conflict("outbox.not_dead", params={"id": message_id, "status": status})
        session.add(AuditRow(at=now, actor=actor, action="outbox.retry", object_type="outbox",
                             object_id=str(message_id), detail=dumps({"id": message_id})))
    with db.read() as session:
        row = session.get(OutboxRow, message_id)
        assert row is not None  # rows are never deleted
        return message_view(row, language)


def message_view(row: OutboxRow, language: str) -> dict[str, Any]:
    """An outbox row for staff: its routing, its state, the payload and the last error."""
    try:
        payload: Any = loads(row.payload)
    except Exception:  # noqa: BLE001 - shown as stored
        payload = row.payload
    return {
        "id": row.id, "topic": row.topic, "channel": row.channel, "recipient": row.recipient,
        "dedup_key": row.dedup_key, "status": row.status, "attempts": row.attempts,
        "created_at": row.created_at.isoformat(),
        "next_attempt_at": row.next_attempt_at.isoformat() if row.next_attempt_at else None,
        "delivered_at": row.delivered_at.isoformat() if row.delivered_at else None,
        "last_error": render_note(row.last_error, language), "payload": payload,
    }


def render_note(stored: str | None, language: str) -> dict[str, Any] | None:
    """A stored ``last_error`` as ``{code, message, params}``."""
    if not stored:
        return None
    try:
        note = loads(stored)
        code, params = str(note["code"]), dict(note.get("params") or {})
    except Exception:  # noqa: BLE001 - a note written by hand or by an older version
        return {"code": "outbox.error", "message": stored, "params": {}}
    return {"code": code, "message": render_message(code, params, language), "params": params}


__all__ = ["list_dead_letters", "message_view", "render_note", "retry_dead_letter"]
