"""Record rows and their lookup values."""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Mapping

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from engine.jsoncodec import dumps
from engine.store.models import RecordRow, RecordValueRow

MAX_LOOKUP_VALUE = 255


def lookup_text(value: Any) -> str | None:
    """The text a scalar is indexed under, or None for values that are not looked up."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, Decimal)):
        # One text per number, whatever its written scale: 100, 100.0 and 100.00 match.
        text = dumps(Decimal(value).normalize()) if Decimal(value) != 0 else "0"
    elif isinstance(value, str):
        text = value
    else:
        return None
    return text if len(text) <= MAX_LOOKUP_VALUE else None


@dataclass(frozen=True)
class Blind:
    """A lookup of a sensitive field: the blind-index digests its value may be stored under
    (one per master key), compared instead of the value (engine.security.crypto)."""

    digests: tuple[str, ...]


def write_values(session: Session, record_id: str, form_key: str, data: Mapping[str, Any],
                 blind: Iterable[tuple[str, str, str]] = (), sensitive: frozenset[str] = frozenset(), *,
                 new: bool = False) -> None:
    """Replace the record's lookup rows: the plain lookup text of each top-level scalar not in
    ``sensitive``, and the ``blind`` entries ``(field, key id, digest)`` of the sensitive ones.
    ``new``: the record is being created in this transaction, so it has none to delete yet."""
    if not new:
        session.execute(delete(RecordValueRow).where(RecordValueRow.record_id == record_id))
    for field, value in data.items():
        text = lookup_text(value) if field not in sensitive else None
        if text is not None:
            session.add(RecordValueRow(record_id=record_id, form_key=form_key, field=field, value=text))
    for field, kid, digest in blind:
        session.add(RecordValueRow(record_id=record_id, form_key=form_key, field=field, value=digest, key_id=kid))


def _matches(value: Any) -> Any:
    """The condition on ``record_values`` of a lookup by plain value or by blind index."""
    if isinstance(value, Blind):
        return RecordValueRow.key_id.is_not(None) & RecordValueRow.value.in_(value.digests or ("",))
    return RecordValueRow.key_id.is_(None) & (RecordValueRow.value == lookup_text(value))


def find_ids(session: Session, form_key: str, field: str, value: Any, limit: int = 2) -> list[str]:
    if isinstance(value, Blind):
        return list(session.scalars(
            select(RecordValueRow.record_id).where(RecordValueRow.form_key == form_key, RecordValueRow.field == field,
                                                    _matches(value)).order_by(RecordValueRow.id).limit(limit)))
    text = lookup_text(value)
    if text is None:
        return []
    return list(session.scalars(
        select(RecordValueRow.record_id).where(RecordValueRow.form_key == form_key, RecordValueRow.field == field,
                                                RecordValueRow.value == text).order_by(RecordValueRow.id).limit(limit)
    ))


def record_exists(session: Session, form_key: str, record_id: Any, *, where: Any = None) -> bool:
    """Whether ``record_id`` is a record of ``form_key`` (and meets ``where``, a condition on
    :class:`RecordRow` such as the caller's object scope, when given)."""
    if not isinstance(record_id, str):
        return False
    query = select(RecordRow.id).where(RecordRow.id == record_id, RecordRow.form_key == form_key)
    if where is not None:
        query = query.where(where)
    return session.scalar(query) is not None


def page(session: Session, form_key: str, filters: Mapping[str, Any], offset: int, limit: int, *,
         where: Any = None) -> tuple[list[RecordRow], int]:
    """A page of ``form_key``'s records and their total, both under ``where`` (a condition on
    :class:`RecordRow`, e.g. the caller's object scope) when given."""
    query = select(RecordRow).where(RecordRow.form_key == form_key)
    if where is not None:
        query = query.where(where)

    for field, value in filters.items():
        matching = select(RecordValueRow.record_id).where(
            RecordValueRow.form_key == form_key, RecordValueRow.field == field, _matches(value))
        query = query.where(RecordRow.id.in_(matching))
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = session.scalars(query.order_by(RecordRow.created_at, RecordRow.id).offset(offset).limit(limit)).all()
    return list(rows), total


def update_if_version(session: Session, record_id: str, expected: int, data: Mapping[str, Any], now: Any) -> bool:
    """Write ``data`` as the record's new content if its row version is still ``expected``;
    the version becomes ``expected + 1``. One conditional ``UPDATE``: of two concurrent writers
    based on the same version exactly one matches (on PostgreSQL the second waits for the
    first's row lock and then finds the new version). False when nothing matched."""
    result = session.execute(
        update(RecordRow)
        .where(RecordRow.id == record_id, RecordRow.row_version == expected)
        .values(data=dumps(data), row_version=expected + 1, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    return bool(getattr(result, "rowcount", 0) == 1)
