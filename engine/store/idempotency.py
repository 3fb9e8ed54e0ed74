"""Idempotency keys: a creation remembered under (actor, key) with the digest of its request,
so that a retry returns the first result instead of writing again.

Only successful creations are remembered (a refused request stores nothing, so its retry runs
again). A task action also keeps the answer it gave (``response``), so that a retry replays that
answer even after the case has moved on. Keys do not expire yet.
"""
from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.errors import BadRequest, Invalid, Issue
from engine.jsoncodec import dumps
from engine.store.models import IdempotencyKeyRow

MAX_KEY_LENGTH = 200


@dataclass(frozen=True)
class IdempotencyClaim:
    """A key as presented with one request: who, which key, and what was asked."""

    key: str
    actor: str
    digest: str


def claim(key: str, actor: str, form_key: str, body: Any) -> IdempotencyClaim:
    """Check ``key`` (1 to 200 printable ASCII characters, else :class:`BadRequest`) and bind
    it to the request's digest."""
    if not 1 <= len(key) <= MAX_KEY_LENGTH or any(not " " <= ch <= "~" for ch in key):
        raise BadRequest("record.idempotency_key_invalid", path="", params={"limit": MAX_KEY_LENGTH})
    return IdempotencyClaim(key, actor, request_digest(form_key, body))


def request_digest(form_key: str, body: Any) -> str:
    """sha256 of the canonical JSON (keys sorted, no spaces, decimals as written) of the form
    key and the body."""
    text = dumps(_canonical({"form": form_key, "body": body}))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def replayed_record(session: Session, claim: IdempotencyClaim) -> str | None:
    """The id of the record an earlier request with this key created, or None if there was
    none. The same key with a different request raises ``record.idempotency_key_reused``."""
    row = earlier(session, claim)
    return None if row is None else row.record_id


def earlier(session: Session, claim: IdempotencyClaim) -> IdempotencyKeyRow | None:
    """The committed (or, in the caller's own transaction, pending) row of an earlier request
    with this key, or None. The same key with a different request raises
    ``record.idempotency_key_reused``."""
    row = session.scalars(select(IdempotencyKeyRow).where(
        IdempotencyKeyRow.actor == claim.actor, IdempotencyKeyRow.key == claim.key)).first()
    if row is not None and row.request_digest != claim.digest:
        raise Invalid([Issue("", "record.idempotency_key_reused")])
    return row


def remember(session: Session, claim: IdempotencyClaim, record_id: str, now: datetime) -> IdempotencyKeyRow:
    """Store the key in the caller's transaction, flushed at once: a concurrent first attempt
    with the same key fails here (on PostgreSQL after waiting for the other to commit) before
    it writes anything else. Set ``response`` on the row returned to have a retry replay it."""
    row = IdempotencyKeyRow(key=claim.key, actor=claim.actor, request_digest=claim.digest,
                            record_id=record_id, created_at=now)
    session.add(row)
    session.flush()
    return row


def _canonical(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {name: _canonical(value[name]) for name in sorted(value)}
    if isinstance(value, (list, tuple)):
        return [_canonical(item) for item in value]
    return value


__all__ = ["MAX_KEY_LENGTH", "IdempotencyClaim", "claim", "earlier", "remember", "replayed_record", "request_digest"]
