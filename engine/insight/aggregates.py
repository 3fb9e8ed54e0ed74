"""Named aggregates of a profile: count, sum, avg, min and max over the records that refer to a
record (and to its children), filtered by a rule and a time window. Exact: decimals stay decimals."""
from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from sqlalchemy.orm import Session

from engine.insight import graph
from engine.insight.compiler import PROCESS_VAR
from engine.insight.spec import AggregateSpec, ProfileSpec
from engine.rules import RuleError

AVG_PLACES = Decimal("0.01")
"""Averages are rounded half up to two places."""


def _day(value: Any) -> date | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).date() if "T" in value else date.fromisoformat(value)
    except ValueError:
        return None


def _process_context(instance: Any) -> dict[str, Any]:
    if instance is None:
        return {"status": None, "outcome": None, "state": None}
    return {"status": instance.status, "outcome": instance.outcome, "state": instance.state}


def compute(session: Session, profile: ProfileSpec, record_id: str, now: datetime,
            names: set[str] | None = None, read: Callable[[Any], dict[str, Any]] = graph.record_data,
            kids: list[str] | None = None, keep: Callable[[str], bool] | None = None) -> dict[str, Any]:
    """Every aggregate of ``profile`` (or those in ``names``) for ``record_id``; ``read`` gives a
    related record's data (its sensitive values opened). ``kids`` (default: every child) are the
    children whose records count; ``keep`` (default: all) says which related record ids count, so
    a caller's figures cover only the records the caller may see."""
    if kids is None:
        kids = graph.children(session, profile.form, profile.children, record_id)
    results: dict[str, Any] = {}
    cache: dict[tuple[str, str, bool], list[tuple[dict[str, Any], Any]]] = {}
    for aggregate in profile.aggregates:
        if names is not None and aggregate.name not in names:
            continue
        include = aggregate.include_children and bool(kids)
        key = (aggregate.form, aggregate.via, include)
        if key not in cache:
            ids = graph.referring_ids(session, aggregate.form, aggregate.via, [record_id, *(kids if include else [])])
            if keep is not None:
                ids = [item for item in ids if keep(item)]
            rows = graph.load_records(session, ids)
            instances = graph.latest_instances(session, ids) if ids else {}
            cache[key] = [(read(rows[item]), instances.get(item)) for item in ids if item in rows]
        results[aggregate.name] = evaluate(aggregate, cache[key], now)
    return results


def compute_many(session: Session, profile: ProfileSpec, record_ids: list[str], now: datetime,
                 read: Callable[[Any], dict[str, Any]] = graph.record_data,
                 names: frozenset[str] | set[str] | None = None) -> dict[str, dict[str, Any]]:
    """:func:`compute` (every aggregate, or those in ``names``; every child, every related
    record) for each of ``record_ids`` at once. The children and the related records of all the
    aggregates' ``(form, via)`` pairs are read together, one query per level of children (per
    chunk of ids) for the whole batch, records included (graph.RelatedIndex); the latest
    instances only when an aggregate's ``where`` may read them. Each record's figures are then
    evaluated exactly as :func:`compute` evaluates them."""
    roots = list(dict.fromkeys(record_ids))
    wanted = [aggregate for aggregate in profile.aggregates if names is None or aggregate.name in names]
    if not wanted:
        return {root: {} for root in roots}
    child_pair = (profile.form, profile.children) if profile.children is not None else None
    pairs = {(aggregate.form, aggregate.via) for aggregate in wanted}
    index = graph.RelatedIndex(session, pairs | ({child_pair} if child_pair is not None else set()))
    index.fetch(roots)
    kids: dict[str, list[str]] = {root: [] for root in roots}
    if child_pair is not None:  # as graph.children_many, level by level
        seen: dict[str, set[str]] = {root: set() for root in roots}
        level: dict[str, list[str]] = {root: [root] for root in roots}
        for _ in range(graph.MAX_DEPTH):
            level = {root: items for root, items in level.items() if items}
            if not level:
                break
            for root in list(level):
                level[root] = [item for item in index.referring(child_pair, level[root])
                               if item != root and item not in seen[root]]
                seen[root].update(level[root])
                kids[root] += level[root]
            index.fetch(item for items in level.values() for item in items)
    related: dict[tuple[str, str, bool], list[str]] = {}
    for aggregate in wanted:
        for root in roots:
            include = aggregate.include_children and bool(kids[root])
            key = (root, aggregate.form + "\x00" + aggregate.via, include)
            if key not in related:
                related[key] = index.referring((aggregate.form, aggregate.via), [root, *(kids[root] if include else [])])
    rows = index.records
    every = {item for ids in related.values() for item in ids if item in rows}
    instances = graph.latest_instances(session, every) if every and any(map(_reads_process, wanted)) else {}
    opened: dict[str, dict[str, Any]] = {}

    def pair(item: str) -> tuple[dict[str, Any], Any]:
        if item not in opened:
            opened[item] = read(rows[item])
        return opened[item], instances.get(item)

    results: dict[str, dict[str, Any]] = {}
    for root in roots:
        figures: dict[str, Any] = {}
        for aggregate in wanted:
            include = aggregate.include_children and bool(kids[root])
            ids = related[(root, aggregate.form + "\x00" + aggregate.via, include)]
            figures[aggregate.name] = evaluate(aggregate, [pair(item) for item in ids if item in rows], now)
        results[root] = figures
    return results


def _reads_process(aggregate: AggregateSpec) -> bool:
    """Whether the aggregate's ``where`` may read the latest instance (``_process``)."""
    if aggregate.where is None:
        return False
    reads = getattr(aggregate.where, "_reads", None)
    return reads is None or PROCESS_VAR in reads


def evaluate(aggregate: AggregateSpec, rows: list[tuple[dict[str, Any], Any]], now: datetime) -> Any:
    """The aggregate over ``(record data, latest instance)`` pairs."""
    since = (now - timedelta(days=aggregate.within_days)).date() if aggregate.within_days else None
    values: list[Any] = []
    for data, instance in rows:
        if since is not None:
            day = _day(data.get(aggregate.within_field or ""))
            if day is None or day < since or day > now.date():
                continue
        if aggregate.where is not None:
            try:
                if not aggregate.where.holds({**data, PROCESS_VAR: _process_context(instance)}):
                    continue
            except RuleError:
                continue  # a row the rule cannot judge does not count
        if aggregate.agg == "count":
            values.append(1)
            continue
        value = data.get(aggregate.field or "")
        if value is not None and not isinstance(value, bool):
            values.append(value)
    if aggregate.agg == "count":
        return len(values)
    if aggregate.agg == "sum":
        return sum((Decimal(value) for value in values), Decimal(0))
    if not values:
        return None
    if aggregate.agg == "avg":
        total = sum((Decimal(value) for value in values), Decimal(0))
        return (total / len(values)).quantize(AVG_PLACES, rounding=ROUND_HALF_UP)
    try:
        return min(values) if aggregate.agg == "min" else max(values)
    except TypeError:
        return None


__all__ = ["AVG_PLACES", "compute", "compute_many", "evaluate"]
