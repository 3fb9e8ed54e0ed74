"""Reading the audit log (auditors only), exporting it, and recording permission denials.

- :func:`query` -- a page of entries in chain order filtered by actor, object, action and time,
  with a keyset cursor (``after`` = the last id seen), so paging stays exact while entries are
  appended;
- :func:`export` -- every matching entry as JSON Lines, streamed in batches (constant memory),
  each line carrying the chain fields (``prev_hash``, ``hash``) so that an exported file can be
  checked on its own (:func:`verify_lines`);
- :func:`audit_denial` -- the entry of a permission denial. A denial rolls back the operation's
  transaction, so the caller writes it in a transaction of its own (``Engine.audit_denial``).
"""
from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.errors import BadRequest
from engine.jsoncodec import dumps
from engine.security.principal import Principal
from engine.store.audit import GENESIS, canonical_at, entry_hash
from engine.store.database import Database
from engine.store.models import AuditRow

MAX_LIMIT = 1000
EXPORT_BATCH = 1000
DENIAL_ACTION = "access.denied"


@dataclass(frozen=True)
class AuditFilter:
    """What :func:`query` and :func:`export` select; every part optional."""

    actor: str | None = None
    object_type: str | None = None
    object_id: str | None = None
    action: str | None = None
    since: datetime | None = None
    """Entries at or after this instant."""
    until: datetime | None = None
    """Entries before this instant."""


def parse_filter(actor: str | None = None, object: str | None = None, action: str | None = None,
                 since: str | None = None, until: str | None = None) -> AuditFilter:
    """The filter of the query string: ``object`` is ``type:id`` (``record:<uuid>``,
    ``form:customer@2``) or an id alone; times are ISO-8601 with a zone (``Z`` or an offset).
    400 ``request.bad_parameter`` naming the parameter otherwise."""
    object_type = object_id = None
    if object:
        if ":" in object:
            object_type, object_id = object.split(":", 1)
        else:
            object_id = object
    return AuditFilter(actor=actor or None, object_type=object_type or None, object_id=object_id or None,
                       action=action or None, since=_instant(since, "since"), until=_instant(until, "until"))


def _instant(text: str | None, name: str) -> datetime | None:
    if not text:
        return None
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise BadRequest("request.bad_parameter", path=name,
                         params={"name": name, "reason": "an ISO-8601 instant such as 2026-12-04T08:00:00Z"}) from None
    if value.tzinfo is None:
        raise BadRequest("request.bad_parameter", path=name,
                         params={"name": name, "reason": "give a time zone (Z or +08:00)"})
    return value.astimezone(timezone.utc)


def _select(where: AuditFilter, after: int) -> Any:
    query = select(AuditRow).where(AuditRow.id > after)
    if where.actor is not None:
        query = query.where(AuditRow.actor == where.actor)
    if where.object_type is not None:
        query = query.where(AuditRow.object_type == where.object_type)
    if where.object_id is not None:
        query = query.where(AuditRow.object_id == where.object_id)
    if where.action is not None:
        if where.action.endswith(".*"):
            prefix = where.action[:-1].replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            query = query.where(AuditRow.action.like(prefix + "%", escape="\\"))
        else:
            query = query.where(AuditRow.action == where.action)
    if where.since is not None:
        query = query.where(AuditRow.at >= where.since)
    if where.until is not None:
        query = query.where(AuditRow.at < where.until)
    return query.order_by(AuditRow.id)


def entry_view(row: AuditRow) -> dict[str, Any]:
    """An entry as the API and the export give it: every column, ``detail`` parsed, ``at`` as
    the chain hashes it."""
    try:
        detail: Any = json.loads(row.detail)
    except ValueError:
        detail = row.detail
    return {"id": row.id, "at": canonical_at(row.at), "actor": row.actor, "action": row.action,
            "object_type": row.object_type, "object_id": row.object_id, "detail": detail,
            "detail_text": row.detail, "request_id": row.request_id, "prev_hash": row.prev_hash, "hash": row.hash}


def query(db: Database, where: AuditFilter, after: int = 0, limit: int = 100) -> dict[str, Any]:
    """``{items, next_after}``: up to ``limit`` entries after id ``after``; ``next_after`` is the
    cursor of the next page (None when this one is the last)."""
    if not 1 <= limit <= MAX_LIMIT:
        raise BadRequest("request.bad_parameter", path="limit", params={"name": "limit", "reason": f"must be 1 to {MAX_LIMIT}"})
    if after < 0:
        raise BadRequest("request.bad_parameter", path="after", params={"name": "after", "reason": "must be 0 or more"})
    with db.read() as session:
        rows = session.scalars(_select(where, after).limit(limit + 1)).all()
    items = [entry_view(row) for row in rows[:limit]]
    return {"items": items, "next_after": items[-1]["id"] if len(rows) > limit else None}


def export(db: Database, where: AuditFilter, batch: int = EXPORT_BATCH) -> Iterator[str]:
    """Every matching entry as one JSON line each (``\\n``-terminated), in id order."""
    after = 0
    while True:
        with db.read() as session:
            rows = session.scalars(_select(where, after).limit(batch)).all()
        if not rows:
            return
        for row in rows:
            yield dumps(entry_view(row)) + "\n"
        after = rows[-1].id


def verify_lines(lines: Iterable[str]) -> tuple[bool, int, int | None]:
    """Check an unfiltered export on its own: ``(intact, entries, first broken id)``. Each
    line's hash is recomputed from its content and must name the previous line's hash."""
    prev, count = GENESIS, 0
    for line in lines:
        if not line.strip():
            continue
        entry = json.loads(line)
        digest = entry_hash(entry["id"], entry["at"], entry["actor"], entry["action"], entry["object_type"],
                            entry["object_id"], entry["detail_text"], entry["request_id"], entry["prev_hash"])
        if digest != entry["hash"] or entry["prev_hash"] != prev or entry["id"] != count + 1:
            return False, count, entry["id"]
        prev = entry["hash"]
        count += 1
    return True, count, None


def audit_denial(session: Session, principal: Principal, action: str, object: str, reason: str,
                 now: datetime) -> AuditRow:
    """Append the entry of a permission denial to ``session``: who (``principal``), what they
    tried (``action``, e.g. ``record.read``), on what (``object``: ``type:id``) and why
    (``reason``: the error code). Call it in a transaction that commits although the operation
    was refused."""
    object_type, _, object_id = object.partition(":")
    row = AuditRow(at=now, actor=principal.id, action=DENIAL_ACTION, object_type=(object_type or "unknown")[:32],
                   object_id=(object_id or "-")[:64],
                   detail=dumps({"attempted": action[:200], "reason": reason[:200], "roles": sorted(principal.roles)}))
    session.add(row)
    return row


__all__ = ["AuditFilter", "DENIAL_ACTION", "audit_denial", "entry_view", "export", "parse_filter", "query",
           "verify_lines"]
