"""``Insight``: what the engine does after every write (tags, triggers) and what it reads (tags,
the 360 view, the event feed). Held by :class:`engine.Engine`; every write hook runs inside the
caller's transaction."""
from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Callable

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.insight import tagging, triggers
from engine.insight.catalog import Catalog, CatalogSource
from engine.jsoncodec import loads
from engine.security import SYSTEM, Principal
from engine.store.models import InstanceRow, RecordRow

RECOMPUTE_BATCH = 200


class Insight:
    def __init__(self, db: Any, registry: Any, clock: Any, supervisors: frozenset[str], vault: Any = None) -> None:
        self.vault = vault
        """Opens and seals sensitive fields of records a trigger updates (engine.security.vault)."""
        self.db = db
        self.registry = registry
        self.clock = clock
        self.supervisors = supervisors
        self.catalog = CatalogSource(db, registry)

    def read(self, row: RecordRow) -> dict[str, Any]:
        """A record's data as tag rules and aggregates see it: its sensitive values opened."""
        return self._open(row, loads(row.data))

    def _open(self, row: RecordRow, data: dict[str, Any]) -> dict[str, Any]:
        """:meth:`read` of the record's stored ``data`` already parsed (left unchanged)."""
        if self.vault is None:
            return data
        opened: dict[str, Any] = self.vault.for_reading(self.registry.form(row.form_key, row.form_version),
                                                          row.form_key, row.id, data)[0]
        return opened

    def current(self, session: Session | None = None) -> Catalog:
        return self.catalog.current(session)

    # -- write hooks (inside the caller's transaction) -------------------------------------------

    def after_record_write(self, session: Session, event: str, form_key: str, record_id: str,
                           data: Mapping[str, Any], before: Mapping[str, Any] | None, actor: Principal,
                           depth: int = 0) -> None:
        """After a record was created (``record.created``) or updated (``record.updated``): run
        the matching triggers, then recompute the tags the write may change."""
        catalog = self.current(session)
        if not catalog.tags and not catalog.triggers:
            return
        now = self.clock.now()
        session.flush()
        for trigger in triggers.matching(catalog, event, form_key):
            if triggers.holds(trigger, data):
                triggers.fire(session, trigger, record_id, data, actor=actor, now=now, registry=self.registry,
                              supervisors=self.supervisors, on_write=self.after_record_write, depth=depth,
                              vault=self.vault)
        if event == "record.created" and triggers.matching(catalog, "instance.completed", form_key):
            # an instance it started may have completed at once (rule-only steps)
            for instance in session.scalars(select(InstanceRow).where(InstanceRow.record_id == record_id,
                                                                      InstanceRow.status == "completed")):
                self._completed(session, catalog, form_key, record_id, data, instance, actor, now)
        session.flush()
        held: dict[str, RecordRow] = {}  # kept referred to, so recompute finds them in the session
        ids = tagging.affected(session, catalog, form_key, record_id, data, before, held=held)
        tagging.recompute(session, catalog, ids, now, f"{event}:{record_id}", read=self.read)
        session.flush()

    def lock_before_write(self, session: Session, event: str, form_key: str, items: list[Mapping[str, Any]],
                          process_key: str | None = None) -> None:
        """First thing in a write's transaction: lock, in id order, the records its triggers may
        update (triggers.lock_targets), before the write takes the audit/feed append lock."""
        if session.get_bind().dialect.name == "sqlite":
            # One writer at a time (BEGIN IMMEDIATE) and no row locks: no lock order to keep, and
            # a query here would open the write transaction before the write itself needs it.
            return
        with session.no_autoflush:  # the write's pending rows are flushed by the write, not here
            catalog = self.current(session)
            if any(trigger.update_ref is not None for trigger in catalog.triggers):
                triggers.lock_targets(session, catalog, event, form_key, items, process_key)

    def after_import(self, form_key: str, record_ids: list[str], actor: Principal, *, notify: bool = False) -> int:
        """After an import wrote records of ``form_key`` in batches (without the per-record
        hooks): run their ``record.created`` triggers, as :meth:`after_record_write` does for one
        submitted record, one transaction per :data:`RECOMPUTE_BATCH` records; the tags are the
        caller's (recomputed once for the form afterwards). Without ``notify`` the notifications
        the triggered processes write are withheld (engine.workflow.notices). Returns how many
        records had at least one trigger fire."""
        from engine.workflow.notices import withhold

        catalog = self.current()
        created = triggers.matching(catalog, "record.created", form_key)
        completed = triggers.matching(catalog, "instance.completed", form_key)
        if not created and not completed:
            return 0
        fired = 0
        for start in range(0, len(record_ids), RECOMPUTE_BATCH):
            chunk = record_ids[start:start + RECOMPUTE_BATCH]
            with self.db.transaction() as session:
                if not notify:
                    withhold(session)
                now = self.clock.now()
                rows = {row.id: row for row in session.scalars(select(RecordRow).where(RecordRow.id.in_(chunk)))}
                opened = {record_id: self.read(row) for record_id, row in rows.items()}
                self.lock_before_write(session, "record.created", form_key, list(opened.values()))
                for record_id in chunk:  # file order; an id not stored was a rejected or retried row
                    row = rows.get(record_id)
                    if row is None:
                        continue
                    data = opened[record_id]
                    hit = False
                    for trigger in created:
                        if triggers.holds(trigger, data):
                            hit = True
                            triggers.fire(session, trigger, record_id, data, actor=actor, now=now,
                                          registry=self.registry, supervisors=self.supervisors,
                                          on_write=self.after_record_write, depth=0, vault=self.vault)
                    session.flush()
                    if completed:  # else no instance.completed trigger could fire for them
                        for instance in session.scalars(select(InstanceRow).where(InstanceRow.record_id == record_id,
                                                                                  InstanceRow.status == "completed")):
                            self._completed(session, catalog, form_key, record_id, data, instance, actor, now)
                    fired += hit
        return fired

    def after_operation(self, session: Session, instance: InstanceRow, actor: Principal) -> None:
        """After a runtime operation: if it completed the instance, run ``instance.completed``
        triggers; the instance's state may enter aggregates, so its record's tags are recomputed."""
        catalog = self.current(session)
        if not catalog.tags and not catalog.triggers:
            return
        session.flush()
        record = session.get(RecordRow, instance.record_id)
        if record is None:
            return
        data = self.read(record)
        now = self.clock.now()
        if instance.status == "completed":
            self._completed(session, catalog, record.form_key, record.id, data, instance, actor, now)
        session.flush()
        ids = tagging.affected(session, catalog, record.form_key, record.id, data)
        tagging.recompute(session, catalog, ids, now, f"instance.{instance.status}:{instance.id}", read=self.read)
        session.flush()

    def _completed(self, session: Session, catalog: Catalog, form_key: str, record_id: str, data: Mapping[str, Any],
                   instance: InstanceRow, actor: Principal, now: datetime) -> None:
        context = triggers.instance_context(data, instance)
        for trigger in triggers.matching(catalog, "instance.completed", form_key, instance.process_key):
            if triggers.holds(trigger, context):
                triggers.fire(session, trigger, record_id, data, actor=actor, now=now, registry=self.registry,
                              supervisors=self.supervisors, on_write=self.after_record_write, depth=0,
                              vault=self.vault)

    # -- maintenance -------------------------------------------------------------------------

    def recompute_all(self, form_key: str | None = None, progress: Callable[[int], None] | None = None) -> dict[str, int]:
        """Recompute the tags of every record of every tagged form (or of ``form_key``), in
        batches of :data:`tagging.BATCH` records per transaction: ``{records, changes}``."""
        catalog = self.current()
        forms = sorted({tag.form for tag in catalog.tags if form_key is None or tag.form == form_key})
        records = changes = 0
        for form in forms:
            last = ""
            while True:
                with self.db.transaction() as session:
                    ids = list(session.scalars(select(RecordRow.id).where(RecordRow.form_key == form, RecordRow.id > last)
                                               .order_by(RecordRow.id).limit(tagging.BATCH)))
                    if not ids:
                        break
                    changes += len(tagging.recompute(session, catalog, ids, self.clock.now(), "recompute", read=self.read))
                last = ids[-1]
                records += len(ids)
                if progress is not None:
                    progress(records)
        return {"records": records, "changes": changes}

    def recompute_records(self, form_key: str, record_ids: list[str]) -> int:
        """Recompute the tags a write of these records of ``form_key`` may change (used after an
        import, whose rows are written in batches without the per-record hooks). First the
        records the rows may retag (``tagging.affected`` of each, per :data:`tagging.BATCH`
        rows; a stored row is parsed only when a field ``affected`` follows holds a text,
        ``tagging.naming``), each named once however many rows name it; then their tags, per
        :data:`tagging.BATCH` records in a transaction. Nothing is read when no tag is on the
        form or on a form it refers to."""
        ids: list[str] = []
        for start in range(0, len(record_ids), tagging.BATCH):
            with self.db.read() as session:
                catalog = self.current(session)
                followed = tagging.followed_fields(catalog, form_key)
                alone = form_key in {tag.form for tag in catalog.tags}
                if not alone and not followed:
                    return 0  # no tag is on the form or on a form it refers to: none may change
                stored: dict[str, dict[str, Any]] = {}

                def data_of(row: RecordRow) -> dict[str, Any]:
                    if row.id not in stored:
                        stored[row.id] = loads(row.data)
                    return stored[row.id]

                rows = list(session.scalars(select(RecordRow).where(RecordRow.id.in_(record_ids[start:start + tagging.BATCH]))))
                naming = tagging.naming(session, form_key, [row.id for row in rows], followed)
                held = tagging.prefetch_affected(session, catalog, form_key, [row for row in rows if row.id in naming],
                                                 data_of)  # kept: found in the session
                for row in rows:
                    if row.id in naming:
                        ids += tagging.affected(session, catalog, form_key, row.id, data_of(row), data_of=data_of)
                    elif alone:  # what affected gives for a record whose followed fields hold no text
                        ids.append(row.id)
                del held
        ordered = list(dict.fromkeys(ids))
        changes = 0
        for start in range(0, len(ordered), tagging.BATCH):
            with self.db.transaction() as session:
                catalog = self.current(session)
                opened: dict[str, dict[str, Any]] = {}

                def read(row: RecordRow) -> dict[str, Any]:
                    if row.id not in opened:
                        opened[row.id] = self.read(row)
                    return opened[row.id]

                changes += len(tagging.recompute(session, catalog, ordered[start:start + tagging.BATCH], self.clock.now(),
                                                 f"import:{form_key}", read=read))
        return changes

    def now(self) -> datetime:
        now: datetime = self.clock.now()
        return now


__all__ = ["Insight", "SYSTEM"]
