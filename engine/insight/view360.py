"""The 360 view of a record: its profile, links, children, the records that refer to it or to
its children (grouped by form), their process instances with the current step, its tags, the
profile's aggregates and one interaction timeline, each part as the caller may see it.

Visibility is one seam, ``see(record row) -> data | None``: the caller's field view of a
record (unreadable fields dropped, masked ones masked; None when the record is not visible at
all). Aggregates are shown only to a caller who may read in full every field they are computed
from (reference, field, condition, date field), and count only the
records the view shows (a child or related record outside the caller's scope does not count)."""
from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.insight import aggregates as aggregate_values
from engine.insight import graph, tagging
from engine.insight.catalog import Catalog
from engine.security.definition_access import aggregate_reads
from engine.store.models import AuditRow, InstanceEventRow, InstanceRow, RecordRow

See = Callable[[RecordRow], "dict[str, Any] | None"]
SeesField = Callable[[str, str | None], bool]
MAX_RELATED = 100
"""Records shown per related form (newest first; ``total`` counts them all)."""
MAX_TIMELINE = 200


def _record(row: RecordRow, data: dict[str, Any]) -> dict[str, Any]:
    return {"id": row.id, "form": row.form_key, "form_version": row.form_version, "data": data,
            "created_at": row.created_at.isoformat(), "updated_at": row.updated_at.isoformat()}


def build(session: Session, catalog: Catalog, row: RecordRow, *, now: datetime, see: See,
          sees_field: SeesField, title_of: Callable[[str, str], Any],
          read: Callable[[RecordRow], dict[str, Any]] = graph.record_data) -> dict[str, Any]:
    """The view of ``row`` (already known to be visible). ``read`` gives a record's whole data
    (sensitive values opened) for the aggregates, which only ``sees_field`` then filters."""
    profile = catalog.profile_of(row.form_key)
    own = see(row) or {}
    children_field = profile.children if profile else None
    kids = graph.children(session, row.form_key, children_field, row.id)
    kid_rows = graph.load_records(session, kids)
    children = []
    for kid in kids:
        kid_row = kid_rows.get(kid)
        kid_data = see(kid_row) if kid_row else None
        if kid_row is not None and kid_data is not None:
            children.append(_record(kid_row, kid_data))
    visible_kids = [child["id"] for child in children]

    links: dict[str, Any] = {}
    for field, target in catalog.refs.get(row.form_key, {}).items():
        value = graph.record_data(row).get(field)
        if field not in own or not isinstance(value, str):
            continue
        linked = session.get(RecordRow, value)
        linked_data = see(linked) if linked is not None else None
        if linked is not None and linked_data is not None:
            links[field] = _record(linked, linked_data)

    related: dict[str, Any] = {}
    related_ids: list[str] = []
    owners = [row.id, *visible_kids]
    for form_key, field in catalog.referrers.get(row.form_key, ()):
        ids = graph.referring_ids(session, form_key, field, owners)
        ids = [item for item in ids if item not in owners]
        rows = graph.load_records(session, ids)
        shown = []
        for item in sorted(rows.values(), key=lambda value: (value.created_at, value.id), reverse=True):
            data = see(item)
            if data is None or field not in data:
                continue
            shown.append({**_record(item, data), "via": field, "of": graph.record_data(item).get(field)})
        if not shown:
            continue
        group = related.setdefault(form_key, {"form": form_key, "items": [], "total": 0})
        group["items"] += shown[:MAX_RELATED - len(group["items"])]
        group["total"] += len(shown)
        related_ids += [item["id"] for item in shown]

    subjects = [row.id, *visible_kids, *related_ids]
    instances = list(session.scalars(select(InstanceRow).where(InstanceRow.record_id.in_(subjects[:2000]))
                                     .order_by(InstanceRow.started_at, InstanceRow.id)))
    cases = [{
        "id": instance.id, "process": instance.process_key, "record_id": instance.record_id,
        "state": instance.state, "status": instance.status, "outcome": instance.outcome,
        "current_step": title_of(instance.process_key, instance.state) if instance.status == "active" else None,
        "started_at": instance.started_at.isoformat(),
        "ended_at": instance.ended_at.isoformat() if instance.ended_at else None,
    } for instance in instances]

    tags = [{"tag": item.tag, "title": (catalog.tag(item.tag).title if catalog.tag(item.tag) else None),
             "since": item.since.isoformat()} for item in tagging.tags_of(session, [row.id]).get(row.id, [])]

    figures: dict[str, Any] = {}
    if profile is not None:
        counted = {row.id, *visible_kids, *related_ids}  # only what the caller sees counts
        values = aggregate_values.compute(session, profile, row.id, now, read=read, kids=visible_kids,
                                          keep=counted.__contains__)
        for aggregate in profile.aggregates:  # shown to who reads every field it is computed from
            if all(sees_field(form, field) for _pointer, form, field in aggregate_reads(aggregate)):
                figures[aggregate.name] = {"value": values[aggregate.name], "title": aggregate.title}

    timeline = _timeline(session, row, children, related, instances, subjects)
    return {"record": _record(row, own), "profile": profile.key if profile else None, "links": links,
            "children": children, "related": related, "instances": cases, "tags": tags,
            "aggregates": figures, "timeline": timeline}


def _timeline(session: Session, row: RecordRow, children: list[dict[str, Any]], related: dict[str, Any],
              instances: list[InstanceRow], subjects: list[str]) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = [{"at": row.created_at.isoformat(), "type": "record.created", "record": row.id,
                                      "form": row.form_key}]
    forms = {row.id: row.form_key}
    for child in children:
        entries.append({"at": child["created_at"], "type": "record.created", "record": child["id"], "form": child["form"]})
        forms[child["id"]] = child["form"]
    for group in related.values():
        for item in group["items"]:
            entries.append({"at": item["created_at"], "type": "record.created", "record": item["id"], "form": item["form"]})
            forms[item["id"]] = item["form"]
    shown = list(forms)
    for audit in session.scalars(select(AuditRow).where(AuditRow.action == "record.update", AuditRow.object_type == "record",
                                                        AuditRow.object_id.in_(shown[:2000]))):
        entries.append({"at": audit.at.isoformat(), "type": "record.updated", "record": audit.object_id,
                        "form": forms.get(audit.object_id)})
    by_instance = {instance.id: instance for instance in instances if instance.record_id in forms}
    if by_instance:
        for event in session.scalars(select(InstanceEventRow).where(InstanceEventRow.instance_id.in_(list(by_instance)),
                                                                    InstanceEventRow.internal.is_(False))):
            instance = by_instance[event.instance_id]
            entries.append({"at": event.at.isoformat(), "type": f"instance.{event.event}", "record": instance.record_id,
                            "instance": instance.id, "process": instance.process_key, "from": event.from_state,
                            "to": event.to_state, "action": event.action})
    seen = {*forms, *by_instance}
    for change in tagging.history(session, [row.id]):
        entries.append({"at": change.at.isoformat(), "type": "tag.on" if change.on else "tag.off", "record": change.record_id,
                        "tag": change.tag, "cause": _cause(change.cause, seen)})
    entries.sort(key=lambda entry: entry["at"])
    return entries[-MAX_TIMELINE:]


def _cause(cause: str, seen: set[str]) -> str:
    """A tag change's cause (``record.created:<id>``, ``instance.completed:<id>``, ...) without
    the id of a record or instance the view does not show (it is outside the caller's scope)."""
    kind, _, subject = cause.partition(":")
    if subject and kind.startswith(("record.", "instance.")) and subject not in seen:
        return kind
    return cause


__all__ = ["MAX_RELATED", "MAX_TIMELINE", "build"]
