"""The record graph: records that refer to a record (through the lookup index of reference
fields), children of a record, and the latest process instance of each record."""
from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from sqlalchemy import and_, inspect, or_, select
from sqlalchemy.orm import Session
from sqlalchemy.orm.util import identity_key

from engine.jsoncodec import loads
from engine.store.models import InstanceRow, RecordRow, RecordValueRow

_CHUNK = 500
MAX_DEPTH = 5
"""How many parent levels are followed (a company, its parent, ... ; cycles stop there too)."""


def _chunks(values: list[str]) -> Iterable[list[str]]:
    for start in range(0, len(values), _CHUNK):
        yield values[start:start + _CHUNK]


def referring_ids(session: Session, form_key: str, field: str, targets: Iterable[str]) -> list[str]:
    """Ids of the records of ``form_key`` whose reference ``field`` holds one of ``targets``."""
    found: list[str] = []
    for chunk in _chunks(sorted(set(targets))):
        found += session.scalars(select(RecordValueRow.record_id).where(
            RecordValueRow.form_key == form_key, RecordValueRow.field == field,
            RecordValueRow.value.in_(chunk)).order_by(RecordValueRow.id)).all()
    return list(dict.fromkeys(found))


def referring_many(session: Session, form_key: str, field: str,
                   groups: Mapping[str, Iterable[str]]) -> dict[str, list[str]]:
    """For each key of ``groups``, what :func:`referring_ids` gives for its targets (same ids, same
    order), in one query per :data:`_CHUNK` distinct targets of all groups together."""
    wanted = {key: sorted(set(targets)) for key, targets in groups.items()}
    by_value: dict[str, list[tuple[int, str]]] = {}
    for chunk in _chunks(sorted({target for targets in wanted.values() for target in targets})):
        for row_id, value, record_id in session.execute(
                select(RecordValueRow.id, RecordValueRow.value, RecordValueRow.record_id).where(
                    RecordValueRow.form_key == form_key, RecordValueRow.field == field,
                    RecordValueRow.value.in_(chunk))):
            by_value.setdefault(value, []).append((row_id, record_id))
    found: dict[str, list[str]] = {}
    for key, targets in wanted.items():
        hits: list[str] = []
        for chunk in _chunks(targets):  # as referring_ids: chunk by chunk, each in index order
            hits += [record_id for _row_id, record_id in sorted(hit for target in chunk for hit in by_value.get(target, ()))]
        found[key] = list(dict.fromkeys(hits))
    return found


def children_many(session: Session, form_key: str, field: str | None, record_ids: Iterable[str]) -> dict[str, list[str]]:
    """:func:`children` of each of ``record_ids``, one query per level (per chunk) for them all."""
    roots = list(dict.fromkeys(record_ids))
    seen: dict[str, list[str]] = {root: [] for root in roots}
    if field is None:
        return seen
    level: dict[str, list[str]] = {root: [root] for root in roots}
    for _ in range(MAX_DEPTH):
        level = {root: items for root, items in level.items() if items}
        if not level:
            break
        found = referring_many(session, form_key, field, level)
        for root in list(level):
            level[root] = [item for item in found[root] if item != root and item not in seen[root]]
            seen[root] += level[root]
    return seen


class RelatedIndex:
    """The references of several ``(form, field)`` pairs to a growing set of values, with the
    referring records themselves: :meth:`fetch` reads, for all pairs at once, one query per
    :data:`_CHUNK` values not asked before (record_values joined to their records);
    :meth:`referring` then answers as :func:`referring_many` would, without a query."""

    def __init__(self, session: Session, pairs: Iterable[tuple[str, str]]) -> None:
        self._session = session
        self.pairs = sorted(set(pairs))
        self._hits: dict[tuple[str, str], dict[str, list[tuple[int, str]]]] = {pair: {} for pair in self.pairs}
        self._asked: set[str] = set()
        self.records: dict[str, RecordRow] = {}
        """The referring records read so far, by id (a reference to no record is in no entry)."""

    def fetch(self, values: Iterable[str]) -> None:
        todo = sorted(set(values) - self._asked)
        self._asked.update(todo)
        if not self.pairs or not todo:
            return
        which = or_(*(and_(RecordValueRow.form_key == form, RecordValueRow.field == field) for form, field in self.pairs))
        for chunk in _chunks(todo):
            for row_id, form, field, value, record_id, record in self._session.execute(
                    select(RecordValueRow.id, RecordValueRow.form_key, RecordValueRow.field, RecordValueRow.value,
                           RecordValueRow.record_id, RecordRow)
                    .outerjoin(RecordRow, RecordRow.id == RecordValueRow.record_id)
                    .where(which, RecordValueRow.value.in_(chunk))):
                found = self._hits.get((form, field))
                if found is None:
                    continue
                found.setdefault(value, []).append((row_id, record_id))
                if record is not None:
                    self.records[record_id] = record

    def referring(self, pair: tuple[str, str], targets: Iterable[str]) -> list[str]:
        """What :func:`referring_ids` gives for ``pair`` and ``targets`` (all fetched before)."""
        by_value = self._hits[pair]
        hits: list[str] = []
        for chunk in _chunks(sorted(set(targets))):  # as referring_ids: chunk by chunk, each in index order
            hits += [record_id for _row_id, record_id in sorted(hit for target in chunk for hit in by_value.get(target, ()))]
        return list(dict.fromkeys(hits))


_READ_FIELDS = frozenset({"id", "form_key", "form_version", "data"})


def load_records(session: Session, ids: Iterable[str], *, reuse: bool = False) -> dict[str, RecordRow]:
    """The records of ``ids`` that exist, by id. ``reuse``: a record this session holds already
    (loaded, not expired, not deleted) is taken from it instead of read again; a query would
    give that very object back, unchanged."""
    rows: dict[str, RecordRow] = {}
    wanted = sorted(set(ids))
    if reuse:
        missing = []
        for item in wanted:
            held = session.identity_map.get(identity_key(RecordRow, item))
            state = inspect(held) if held is not None else None
            if state is not None and not state.deleted and not state.was_deleted and not (state.unloaded & _READ_FIELDS):
                rows[item] = held
            else:
                missing.append(item)
        wanted = missing
    for chunk in _chunks(wanted):
        for row in session.scalars(select(RecordRow).where(RecordRow.id.in_(chunk))):
            rows[row.id] = row
    return rows


def record_data(row: RecordRow) -> dict[str, Any]:
    data: dict[str, Any] = loads(row.data)
    return data


def children(session: Session, form_key: str, field: str | None, record_id: str) -> list[str]:
    """The records of ``form_key`` whose ``field`` points at ``record_id``, and theirs, in turn."""
    if field is None:
        return []
    seen: list[str] = []
    level = [record_id]
    for _ in range(MAX_DEPTH):
        level = [item for item in referring_ids(session, form_key, field, level) if item != record_id and item not in seen]
        if not level:
            break
        seen += level
    return seen


def parents(session: Session, field: str | None, row: RecordRow | None,
            data_of: Callable[[RecordRow], Mapping[str, Any]] = record_data,
            held: dict[str, RecordRow] | None = None) -> list[str]:
    """The record ``row``'s ``field`` points at, that one's, and so on (nearest first).
    ``data_of`` gives a record's stored data (default: parsed again); ``held`` receives the
    records read on the way (the session keeps a record only while someone refers to it)."""
    found: list[str] = []
    while field is not None and row is not None and len(found) < MAX_DEPTH:
        parent = data_of(row).get(field)
        if not isinstance(parent, str) or parent in found or parent == row.id:
            break
        found.append(parent)
        row = session.get(RecordRow, parent)
        if held is not None and row is not None:
            held[row.id] = row
    return found


def latest_instances(session: Session, record_ids: Iterable[str]) -> dict[str, InstanceRow]:
    """Each record's most recently started process instance."""
    latest: dict[str, InstanceRow] = {}
    for chunk in _chunks(sorted(set(record_ids))):
        for row in session.scalars(select(InstanceRow).where(InstanceRow.record_id.in_(chunk))
                                   .order_by(InstanceRow.started_at, InstanceRow.id)):
            latest[row.record_id] = row
    return latest


__all__ = ["MAX_DEPTH", "RelatedIndex", "children", "children_many", "latest_instances", "load_records", "parents", "record_data", "referring_ids", "referring_many"]
