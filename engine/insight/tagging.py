"""Tags of records: evaluate each tag's rule over the record and its profile's aggregates, keep
the tags that hold in ``record_tags``, write every on/off to ``tag_history`` and announce it as
a ``tag.changed`` event, all in the caller's transaction.

Which records to recompute after a write: the record itself, the records its references point
at, and their parents (a parent's aggregates include its children's related records)."""
from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from engine.insight import aggregates as aggregate_values
from engine.insight import graph
from engine.insight.catalog import Catalog
from engine.insight.compiler import AGG_VAR
from engine.jsoncodec import dumps
from engine.rules import RuleError
from engine.store.models import ChangeRow, OutboxRow, RecordRow, RecordTagRow, RecordValueRow, TagChangeRow

log = logging.getLogger(__name__)
MAX_CAUSE = 160


@dataclass(frozen=True)
class TagChange:
    record_id: str
    tag: str
    on: bool


def affected(session: Session, catalog: Catalog, form_key: str, record_id: str,
             data: Mapping[str, Any], before: Mapping[str, Any] | None = None,
             data_of: Callable[[RecordRow], Mapping[str, Any]] = graph.record_data,
             held: dict[str, RecordRow] | None = None) -> list[str]:
    """The records whose tags a write of ``record_id`` may change (tagged forms only).
    ``data_of`` gives a record's stored data, for following its parents (default: parsed);
    ``held`` receives the records read on the way, for :func:`recompute` to find them in the
    session instead of reading them again."""
    ids: list[str] = []
    tagged = {tag.form for tag in catalog.tags}

    def get(item: str) -> RecordRow | None:
        row = session.get(RecordRow, item)
        if held is not None and row is not None:
            held[row.id] = row
        return row

    if form_key in tagged:
        ids.append(record_id)
        profile = catalog.profile_of(form_key)
        if profile is not None:
            ids += graph.parents(session, profile.children, get(record_id), data_of, held)
    for field, target in catalog.refs.get(form_key, {}).items():
        if target not in tagged:
            continue
        profile = catalog.profile_of(target)
        for value in {(data or {}).get(field), (before or {}).get(field)}:
            if isinstance(value, str):
                ids.append(value)
                if profile is not None:
                    ids += graph.parents(session, profile.children, get(value), data_of, held)
    return list(dict.fromkeys(ids))


def followed_fields(catalog: Catalog, form_key: str) -> list[str]:
    """The fields of ``form_key`` whose values :func:`affected` follows: its references to
    tagged forms, and its profile's parent field when the form is tagged."""
    tagged = {tag.form for tag in catalog.tags}
    fields = [field for field, target in catalog.refs.get(form_key, {}).items() if target in tagged]
    profile = catalog.profile_of(form_key) if form_key in tagged else None
    if profile is not None and profile.children is not None and profile.children not in fields:
        fields.append(profile.children)
    return fields


def naming(session: Session, form_key: str, record_ids: Iterable[str], fields: list[str]) -> set[str]:
    """Which of these records of ``form_key`` hold a text in one of ``fields``, by their lookup
    rows (every top-level text of up to MAX_LOOKUP_VALUE characters has one; a longer text is no
    record id). For the others :func:`affected` gives the record alone (if its form is tagged)
    without their data being read."""
    ids = sorted(set(record_ids))
    found: set[str] = set()
    if not fields:
        return found
    for start in range(0, len(ids), BATCH):
        found.update(session.scalars(select(RecordValueRow.record_id).where(
            RecordValueRow.record_id.in_(ids[start:start + BATCH]), RecordValueRow.form_key == form_key,
            RecordValueRow.field.in_(fields), RecordValueRow.key_id.is_(None))))
    return found


def prefetch_affected(session: Session, catalog: Catalog, form_key: str, rows: Iterable[RecordRow],
                      data_of: Callable[[RecordRow], Mapping[str, Any]]) -> list[RecordRow]:
    """Read, one query per level (per chunk of ids), the records :func:`affected` will look up
    for these stored records of ``form_key`` (the records their references point at, and the
    parents of those and of them), so that its lookups find them in the session while the
    caller holds the list returned. Only reads: what it misses, :func:`affected` reads itself."""
    tagged = {tag.form for tag in catalog.tags}
    refs = [(field, target) for field, target in catalog.refs.get(form_key, {}).items() if target in tagged]
    own = catalog.profile_of(form_key) if form_key in tagged else None
    level: list[RecordRow] = list(rows)
    wanted: set[str] = set()
    for row in level:
        data = data_of(row)
        wanted.update(value for field, _target in refs if isinstance(value := data.get(field), str))
        if own is not None and own.children is not None:
            parent = data.get(own.children)
            if isinstance(parent, str):
                wanted.add(parent)
    held: list[RecordRow] = []
    for _ in range(graph.MAX_DEPTH):
        if not wanted:
            break
        found = graph.load_records(session, wanted, reuse=True)
        held += found.values()
        wanted = set()
        for row in found.values():
            profile = catalog.profile_of(row.form_key)
            if profile is not None and profile.children is not None:
                parent = data_of(row).get(profile.children)
                if isinstance(parent, str) and parent not in found:
                    wanted.add(parent)
    return held


BATCH = 500
"""Records whose tags are evaluated together: their aggregates, current tags and related records
are read in one query per kind per batch."""


def recompute(session: Session, catalog: Catalog, record_ids: Iterable[str], now: datetime, cause: str,
              read: Callable[[RecordRow], dict[str, Any]] = graph.record_data) -> list[TagChange]:
    """Evaluate the tags of ``record_ids`` and store what changed; returns the changes. ``read``
    gives a record's data with its sensitive values opened. Batched: per :data:`BATCH` records,
    one read of the records (those this session holds already are not read again), of their
    current tags and of each profile's aggregates that the batch's tags read
    (aggregates.compute_many); the outcome is that of :func:`recompute_each`."""
    changes: list[TagChange] = []
    ordered = list(dict.fromkeys(record_ids))
    for start in range(0, len(ordered), BATCH):
        chunk = ordered[start:start + BATCH]
        rows = graph.load_records(session, chunk, reuse=True)
        tagged_forms: dict[str, bool] = {}
        tagged = []
        for item in chunk:
            row = rows.get(item)
            if row is not None:
                form = row.form_key
                if form not in tagged_forms:
                    tagged_forms[form] = bool(catalog.tags_of(form))
                if tagged_forms[form]:
                    tagged.append(row)
        if not tagged:
            continue
        plans: dict[str, _Plan] = {}
        needs: dict[str, list[str]] = {}
        names: dict[str, set[str] | None] = {}
        for row in tagged:
            plan = plans.get(row.form_key)
            if plan is None:
                plan = plans[row.form_key] = _plan(catalog, row.form_key)
                for profile, wanted in plan.aggregates.items():
                    known = names.setdefault(profile, set())
                    names[profile] = None if known is None or wanted is None else known | wanted
            for profile in plan.aggregates:
                needs.setdefault(profile, []).append(row.id)
        figures = {name: aggregate_values.compute_many(session, catalog.profiles[name], ids, now, read=read,
                                                       names=names[name])
                   for name, ids in needs.items()}
        current = tags_of(session, [row.id for row in tagged])
        for row in tagged:
            plan = plans[row.form_key]
            changes += _store(session, plan.tags, row, read(row) if plan.reads_data else {},
                              {name: found[row.id] for name, found in figures.items() if row.id in found},
                              {item.tag: item for item in current.get(row.id, [])}, now, cause)
    return changes


@dataclass(frozen=True)
class _Plan:
    """What evaluating the tags of one form's records takes."""

    tags: tuple[Any, ...]
    aggregates: dict[str, frozenset[str] | None]
    """Profile -> the names of its aggregates the tags read (None: all)."""
    reads_data: bool
    """Whether a tag reads the record's own data (not only ``agg``): else it is not opened."""


def _plan(catalog: Catalog, form_key: str) -> _Plan:
    tags = catalog.tags_of(form_key)
    wanted: dict[str, frozenset[str] | None] = {}
    for tag in tags:
        if tag.reads_aggregates and tag.profile in catalog.profiles:
            here = aggregates_read(tag, catalog.profiles[tag.profile])
            known = wanted.get(tag.profile, frozenset())
            wanted[tag.profile] = None if known is None or here is None else known | here
    return _Plan(tags, wanted, any(_reads_data(tag) for tag in tags))


def _reads_data(tag: Any) -> bool:
    """Whether ``tag``'s rule may read anything but ``agg`` (which the tag's context sets over
    any ``agg`` field of the record): a rule reading only ``agg.*`` gives the same verdict
    whatever the record holds."""
    reads = getattr(tag.rule, "_reads", None)
    if reads is None:
        return True
    return any(name.split(".", 1)[0] != AGG_VAR for name in reads) or any(
        use.name.split(".", 1)[0] != AGG_VAR for use in tag.rule.variables)


def aggregates_read(tag: Any, profile: Any) -> frozenset[str] | None:
    """The names of ``profile``'s aggregates that ``tag``'s rule may read (``agg.<name>``), or
    None when it may read them all (the whole ``agg`` object, the whole data, a computed name).
    A rule sees the figures it reads, so computing only these changes no verdict."""
    if getattr(tag.rule, "_reads", None) is None:
        return None  # the rule engine could not list what the rule reads
    names = [aggregate.name for aggregate in profile.aggregates]
    found: set[str] = set()
    for use in tag.rule.variables:
        head, dot, rest = use.name.partition(".")
        if use.name == "" or (head == AGG_VAR and not (dot and rest)):
            return None
        if head != AGG_VAR:
            continue
        found.update(name for name in names
                     if rest == name or rest.startswith(name + ".") or name.startswith(rest + "."))
    return frozenset(found)


def recompute_each(session: Session, catalog: Catalog, record_ids: Iterable[str], now: datetime, cause: str,
                   read: Callable[[RecordRow], dict[str, Any]] = graph.record_data) -> list[TagChange]:
    """:func:`recompute` one record at a time (a few queries per record and aggregate): the
    reference the batched path is tested against."""
    changes: list[TagChange] = []
    rows = graph.load_records(session, record_ids)
    for record_id in dict.fromkeys(record_ids):
        row = rows.get(record_id)
        if row is None:
            continue
        tags = catalog.tags_of(row.form_key)
        if not tags:
            continue
        changes += _recompute_one(session, catalog, row, tags, now, cause, read)
    return changes


def _recompute_one(session: Session, catalog: Catalog, row: RecordRow, tags: tuple[Any, ...], now: datetime,
                   cause: str, read: Callable[[RecordRow], dict[str, Any]]) -> list[TagChange]:
    data = read(row)
    figures: dict[str, dict[str, Any]] = {}
    for tag in tags:
        profile = catalog.profiles.get(tag.profile)
        if tag.reads_aggregates and profile is not None and tag.profile not in figures:
            figures[tag.profile] = aggregate_values.compute(session, profile, row.id, now, read=read)
    current = {item.tag: item for item in session.scalars(select(RecordTagRow).where(RecordTagRow.record_id == row.id))}
    return _store(session, tags, row, data, figures, current, now, cause)


def _store(session: Session, tags: tuple[Any, ...], row: RecordRow, data: dict[str, Any],
           figures: Mapping[str, dict[str, Any]], current: Mapping[str, RecordTagRow], now: datetime,
           cause: str) -> list[TagChange]:
    """Evaluate ``tags`` over the record's data and figures; store and announce what changed."""
    changes: list[TagChange] = []
    for tag in tags:
        context = {**data, AGG_VAR: figures.get(tag.profile, {})}
        try:
            on = tag.rule.holds(context)
        except RuleError as exc:
            log.warning("tag %s could not be evaluated for record %s: %s", tag.key, row.id, exc)
            on = False
        if on and tag.key not in current:
            session.add(RecordTagRow(record_id=row.id, form_key=row.form_key, tag=tag.key, since=now))
        elif not on and tag.key in current:
            session.execute(delete(RecordTagRow).where(RecordTagRow.id == current[tag.key].id))
        else:
            continue
        changes.append(TagChange(row.id, tag.key, on))
        session.add(TagChangeRow(record_id=row.id, form_key=row.form_key, tag=tag.key, on=on, at=now, cause=cause[:MAX_CAUSE]))
        session.add(OutboxRow(topic="tag.changed", dedup_key=f"tag.changed:{row.id}:{tag.key}:{uuid.uuid4().hex}",
                              payload=dumps({"record": row.id, "form": row.form_key, "tag": tag.key, "on": on,
                                             "cause": cause[:MAX_CAUSE]}),
                              status="pending", attempts=0, created_at=now, channel="event"))
    if changes:  # the report mirror follows tags through the change sequence (``_tags.<tag>``)
        session.add(ChangeRow(entity="tags", entity_id=row.id, scope=row.form_key, at=now))
    return changes


def tags_of(session: Session, record_ids: Iterable[str]) -> dict[str, list[RecordTagRow]]:
    found: dict[str, list[RecordTagRow]] = {}
    ids = sorted(set(record_ids))
    for start in range(0, len(ids), 500):
        for item in session.scalars(select(RecordTagRow).where(RecordTagRow.record_id.in_(ids[start:start + 500]))
                                    .order_by(RecordTagRow.tag)):
            found.setdefault(item.record_id, []).append(item)
    return found


def history(session: Session, record_ids: Iterable[str], limit: int = 200) -> list[TagChangeRow]:
    ids = sorted(set(record_ids))
    if not ids:
        return []
    return list(session.scalars(select(TagChangeRow).where(TagChangeRow.record_id.in_(ids[:500]))
                                .order_by(TagChangeRow.id.desc()).limit(limit)))


__all__ = ["BATCH", "TagChange", "affected", "aggregates_read", "followed_fields", "history", "naming", "prefetch_affected", "recompute", "recompute_each", "tags_of"]
