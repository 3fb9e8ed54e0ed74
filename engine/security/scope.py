"""Object scopes as SQL: which records (and so which process instances and tasks) a principal
may see. The condition is part of the query that pages and counts, so a total never counts a
record the caller cannot see, and a record outside the scope is answered exactly like one that
does not exist (404).

A condition compares a record's indexed top-level value (``record_values``), or the record's
submitter (``_created_by``), with the principal's id or attribute, exactly (no case folding);
``via`` follows reference fields (``customer_id``: the referenced customer's value). A scope on
a field that is sensitive (blind-indexed) matches nothing.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Any

from sqlalchemy import and_, false, or_, select
from sqlalchemy.orm import aliased

from engine.security.access import Access, FormAccess
from engine.security.roles import CREATED_BY, ScopeCondition
from engine.store.models import InstanceRow, RecordRow, RecordValueRow
from engine.store.records import lookup_text


def record_condition(view: FormAccess | None, form_key: str, access: Access) -> Any:
    """A condition on :class:`RecordRow` (of ``form_key``) true for the records ``view``
    admits; None when it admits every record."""
    if view is None:
        return false()
    if view.scope is None:
        return None
    clauses = [clause for condition in view.scope
               if (clause := _condition(condition, form_key, access)) is not None]
    return or_(*clauses) if clauses else false()


def _condition(condition: ScopeCondition, form_key: str, access: Access) -> Any:
    wanted = condition.wanted(access.principal)
    if wanted is None:
        return None
    return _condition_for(condition, form_key, wanted)


@lru_cache(maxsize=4096)
def _condition_for(condition: ScopeCondition, form_key: str, wanted: str) -> Any:
    """The SQL of one scope condition for one wanted value. Built once and reused: SQL
    expressions are immutable, and building the nested subqueries cost a tenth of a submission."""
    if condition.field == CREATED_BY and not condition.via:
        return RecordRow.created_by == wanted
    if condition.field == CREATED_BY:
        owner = aliased(RecordRow)
        inner: Any = select(owner.id).where(owner.form_key == condition.form, owner.created_by == wanted)
    else:
        values = aliased(RecordValueRow)
        inner = select(values.record_id).where(values.form_key == condition.form, values.field == condition.field,
                                               values.value == lookup_text(wanted))
    sources = [form_key] + [target for _ref, target in condition.via[:-1]]
    for (ref, _target), source in reversed(list(zip(condition.via, sources))):
        link = aliased(RecordValueRow)
        inner = select(link.record_id).where(link.form_key == source, link.field == ref, link.value.in_(inner))
    return RecordRow.id.in_(inner)


def visible_records(access: Access) -> Any:
    """``SELECT id FROM records`` of every record ``access`` may see (for instances and
    tasks), or None when it may see every record."""
    if not access.restricted:
        return None
    clauses = []
    for form_key, view in sorted(access.forms.items()):
        condition = record_condition(view, form_key, access)
        clauses.append(RecordRow.form_key == form_key if condition is None
                       else and_(RecordRow.form_key == form_key, condition))
    return select(RecordRow.id).where(or_(*clauses) if clauses else false())


def instance_condition(access: Access) -> Any:
    """A condition on :class:`InstanceRow` true for the instances whose record ``access`` may
    see; None: every instance."""
    records = visible_records(access)
    return None if records is None else InstanceRow.record_id.in_(records)


def record_visible(session: Any, access: Access, record_id: str, form_key: str | None = None) -> bool:
    """Whether the record ``record_id`` is one ``access`` may see (False when absent).

    As :func:`visible_records` decides it, but with only the record's own form's condition
    (its form is read first, from the session's identity map when the row is loaded already):
    the condition over every form the principal has a grant on cost most of a submission.
    A caller that knows the record's form (an instance's process names it) passes
    ``form_key``: one query then, a record of another form being answered as absent."""
    if form_key is not None and access.restricted:
        view = access.forms.get(form_key)
        if view is None:
            return False
        condition = record_condition(view, form_key, access)
        query = select(RecordRow.id).where(RecordRow.id == record_id, RecordRow.form_key == form_key)
        return session.scalar(query if condition is None else query.where(condition)) is not None
    row = session.get(RecordRow, record_id)
    if row is None or not access.restricted:
        return row is not None
    if row.form_key not in access.forms:
        return False
    condition = record_condition(access.forms[row.form_key], row.form_key, access)
    if condition is None:
        return True
    return session.scalar(select(RecordRow.id).where(RecordRow.id == record_id, condition)) is not None


def record_views(session: Any, access: Access, form_key: str, record_ids: list[str]) -> dict[str, Access]:
    """Per record of ``form_key``, the access whose field view applies to it: only the grants
    (of the principal's several roles) whose scope admits that record. One query per scoped
    grant, and none when the principal has a single grant on the form or no grant is scoped."""
    view = access.form(form_key)
    if not access.restricted or view is None or len(view.grants) < 2 or all(
            grant.scope is None for grant in view.grants):
        return {record_id: access for record_id in record_ids}
    admitted: dict[str, list[Any]] = {record_id: [] for record_id in record_ids}
    for grant in view.grants:
        if grant.scope is None:
            ids = set(record_ids)
        else:
            condition = record_condition(FormAccess(form_key, grant.scope, (grant,)), form_key, access)
            ids = set(session.scalars(select(RecordRow.id).where(RecordRow.id.in_(record_ids), condition)))
        for record_id in ids:
            admitted[record_id].append(grant)
    return {record_id: access.narrowed(form_key, tuple(grants)) for record_id, grants in admitted.items()}


def visible_events(session: Any, access: Access, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Event feed items (``{seq, topic, at, payload, ...}``) as ``access`` may see them: those
    about a record outside its scope, or of a form it has no grant on, are left out; a payload's
    ``fields`` keep only the names it sees (:func:`engine.security.fields.event_view`)."""
    from engine.security.fields import event_view

    if not access.restricted:
        return items
    shown = []
    for item in items:
        payload = item.get("payload") or {}
        form = payload.get("form") if isinstance(payload, dict) else None
        record = payload.get("record") if isinstance(payload, dict) else None
        if isinstance(record, str) and not record_visible(session, access, record):
            continue
        if isinstance(form, str):
            if access.form(form) is None:
                continue
            item = {**item, "payload": event_view(form, payload, access)}
        shown.append(item)
    return shown


__all__ = ["instance_condition", "record_condition", "record_views", "record_visible", "visible_events", "visible_records"]
