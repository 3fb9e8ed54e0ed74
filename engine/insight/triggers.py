"""Triggers: when a record is created or updated, or an instance completes, and the trigger's
rule holds, start a process over the record or set fields of the record a reference points at.

Everything runs in the transaction of the write that fired it. A field update goes through the
form pipeline of the target record's own form version (so it is validated and recomputed like a
PATCH), and is itself a ``record.updated`` write: its tags are recomputed and its triggers run,
up to :data:`MAX_CHAIN` levels deep (a trigger chain that loops stops there)."""
from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.errors import ValidationFailed
from engine.forms.pipeline import run as run_pipeline
from engine.insight.catalog import Catalog
from engine.insight.compiler import PROCESS_VAR
from engine.insight.spec import TriggerSpec
from engine.jsoncodec import dumps, loads
from engine.mergepatch import changed_fields
from engine.rules import RuleError
from engine.security import Principal
from engine.store import records as record_store
from engine.store.models import AuditRow, ChangeRow, InstanceRow, OutboxRow, RecordRow

MAX_CHAIN = 3

OnWrite = Callable[[Session, str, str, str, Mapping[str, Any], Mapping[str, Any] | None, Principal, int], None]
"""``(session, event, form, record id, data, data before, actor, depth)``: what to do after a write."""


def matching(catalog: Catalog, event: str, form_key: str, process_key: str | None = None) -> list[TriggerSpec]:
    return [trigger for trigger in catalog.triggers
            if trigger.on == event and trigger.form == form_key and (process_key is None or trigger.process == process_key)]


def holds(trigger: TriggerSpec, context: Mapping[str, Any]) -> bool:
    if trigger.when is None:
        return True
    try:
        return trigger.when.holds(dict(context))
    except RuleError:
        return False


def fire(session: Session, trigger: TriggerSpec, record_id: str, data: Mapping[str, Any], *, actor: Principal,
         now: datetime, registry: Any, supervisors: frozenset[str], on_write: OnWrite, depth: int,
         vault: Any = None) -> None:
    """Perform ``trigger``'s action for the record (its rule has held). ``vault``
    (engine.security.vault) opens and seals the sensitive fields of a record it updates."""
    if trigger.start is not None:
        _start(session, trigger.start, record_id, _marked(session, record_id, data, registry, vault), actor, now,
               registry, supervisors)
    if trigger.update_ref is not None:
        target = data.get(trigger.update_ref)
        if isinstance(target, str):
            _update(session, trigger, target, actor, now, registry, on_write, depth, vault)


def lock_targets(session: Session, catalog: Catalog, event: str, form_key: str,
                 items: Iterable[Mapping[str, Any]], process_key: str | None = None) -> list[str]:
    """Lock (``FOR UPDATE``, in id order) the records the ``event`` triggers of these records'
    data may update, and those the ``record.updated`` triggers of those may update in turn (down
    to :data:`MAX_CHAIN`; their ``when`` not judged: the data they will see is not known yet).
    Called by the triggering write before anything else, so its transaction takes the row locks
    before the audit/feed append lock, as a plain PATCH does: a trigger's update and a PATCH of
    the same record queue instead of deadlocking. ``process_key``: for ``instance.completed``,
    whose ``when`` (the outcome) is not known before the operation either. Returns the ids."""
    level: set[str] = set()
    for data in items:
        for trigger in matching(catalog, event, form_key, process_key):
            target = data.get(trigger.update_ref) if trigger.update_ref is not None else None
            if isinstance(target, str) and (event == "instance.completed" or holds(trigger, data)):
                level.add(target)
    locked: list[str] = []
    for _ in range(MAX_CHAIN + 1):
        todo = sorted(level - set(locked))
        if not todo:
            break
        level = set()
        for start in range(0, len(todo), 500):
            for row in session.scalars(select(RecordRow).where(RecordRow.id.in_(todo[start:start + 500]))
                                       .order_by(RecordRow.id).with_for_update()):
                locked.append(row.id)
                chained = [trigger.update_ref for trigger in matching(catalog, "record.updated", row.form_key)
                           if trigger.update_ref is not None]
                if chained:
                    data = loads(row.data)
                    level |= {data[field] for field in chained if isinstance(data.get(field), str)}
    return locked


def _start(session: Session, process_key: str, record_id: str, data: Mapping[str, Any], actor: Principal,
           now: datetime, registry: Any, supervisors: frozenset[str]) -> None:
    from engine.workflow.runtime import Runner

    running = session.scalar(select(InstanceRow.id).where(InstanceRow.record_id == record_id,
                                                          InstanceRow.process_key == process_key,
                                                          InstanceRow.status == "active").limit(1))
    if running is not None:
        return  # one case per record and process at a time
    process = registry.process(process_key)
    if process is None:
        return
    Runner(session, process, now, supervisors).start(record_id, data, actor)


def _marked(session: Session, record_id: str, data: Mapping[str, Any], registry: Any, vault: Any) -> Mapping[str, Any]:
    """``data`` naming its sensitive fields (engine.security.vault.OpenedData), so the rule
    decisions of the process it starts record ``[sensitive]`` instead of their values."""
    if vault is None:
        return data
    row = session.get(RecordRow, record_id)
    if row is None:
        return data
    plain: Mapping[str, Any] = vault.plain(registry.form(row.form_key, row.form_version), row.form_key, dict(data))
    return plain


def _update(session: Session, trigger: TriggerSpec, target_id: str, actor: Principal, now: datetime, registry: Any,
            on_write: OnWrite, depth: int, vault: Any = None) -> None:
    row = session.scalars(select(RecordRow).where(RecordRow.id == target_id).with_for_update()).one_or_none()
    if row is None or row.form_key != trigger.update_form:
        return
    spec = registry.form(row.form_key, row.form_version)
    if spec is None:
        return
    stored = loads(row.data)
    if vault is not None:  # the pipeline checks plaintext; what is stored is sealed again below
        stored, _revealed = vault.for_reading(spec, row.form_key, row.id, stored)
    outcome = run_pipeline(spec, {**stored, **trigger.update_set})
    if outcome.issues:
        raise ValidationFailed([*outcome.issues])
    data = dict(outcome.data)
    fields = changed_fields(stored, data)
    if not fields:
        return
    version = row.row_version
    sealed, blind, sensitive = vault.for_storage(spec, row.id, data) if vault is not None else (data, [], frozenset())
    if not record_store.update_if_version(session, row.id, version, sealed, now):
        return
    record_store.write_values(session, row.id, row.form_key, data, blind, sensitive)
    session.add(ChangeRow(entity="record", entity_id=row.id, scope=row.form_key, at=now))
    session.add(AuditRow(at=now, actor=actor.id, action="record.update", object_type="record", object_id=row.id,
                         detail=dumps({"form": row.form_key, "version": row.form_version, "row_version": version + 1,
                                       "fields": fields, "trigger": trigger.key})))
    session.add(OutboxRow(topic="record.updated", dedup_key=f"record.updated:{row.id}:{version + 1}",
                          payload=dumps({"record": row.id, "form": row.form_key, "row_version": version + 1,
                                         "fields": fields, "trigger": trigger.key}),
                          status="pending", attempts=0, created_at=now))
    session.expire(row)
    if depth < MAX_CHAIN:
        on_write(session, "record.updated", row.form_key, row.id, data, stored, actor, depth + 1)


def instance_context(data: Mapping[str, Any], instance: InstanceRow) -> dict[str, Any]:
    return {**data, PROCESS_VAR: {"outcome": instance.outcome, "status": instance.status, "state": instance.state}}


__all__ = ["MAX_CHAIN", "OnWrite", "fire", "holds", "instance_context", "lock_targets", "matching"]
