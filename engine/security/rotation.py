"""Key rotation: every sensitive value re-sealed under the active master key, batch by batch.

1. Records that may hold sensitive values (of a form with sensitive fields, or whose data holds
   an envelope) are read in id order, ``batch`` at a time;
2. each value sealed under another key (or a plaintext value of a field that became sensitive)
   is opened and sealed again under the active key; the record's blind-index rows are rewritten
   under the active key;
3. each batch commits on its own with one ``keys.rotate`` audit entry; the row's version and
   update time do not change (nothing the record says changed). A record updated meanwhile is
   skipped: its update sealed it under the active key already.

Interrupted, it resumes by running again: records already under the active key are skipped.
:func:`status` counts the values and index rows per key id.
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import delete, func, or_, select, update

from engine.clock import Clock
from engine.jsoncodec import dumps, loads
from engine.security.crypto import envelope_kids, is_envelope, values_at
from engine.security.vault import Vault
from engine.store.database import Database
from engine.store.models import AuditRow, RecordRow, RecordValueRow

FormLookup = Callable[[str, int], Any]
"""(form key, version) -> its compiled FormSpec, or None."""


@dataclass(frozen=True)
class RotationResult:
    """What :func:`rotate` did."""

    kid: str
    """The active key everything is now sealed under."""
    records: int
    """Records re-sealed (or re-indexed)."""
    batches: int
    """Batches that changed something (one transaction and one audit entry each)."""
    skipped: int = 0
    """Records changed by somebody else meanwhile (they were sealed under the active key then)."""


@dataclass(frozen=True)
class KeyStatus:
    """Sealed values and blind-index rows per key id."""

    active: str
    keys: tuple[str, ...]
    values: dict[str, int] = field(default_factory=dict)
    index: dict[str, int] = field(default_factory=dict)
    plaintext: int = 0
    """Values of sensitive fields not sealed (written before the field became sensitive)."""


def _candidates(sensitive_forms: set[str]) -> Any:
    """Records that may hold sensitive values: with an envelope, or of a form with sensitive fields."""
    condition = RecordRow.data.like('%"$sealed"%')
    if sensitive_forms:
        condition = or_(condition, RecordRow.form_key.in_(sorted(sensitive_forms)))
    return condition


def _plaintext_count(vault: Vault, spec: Any, form_key: str, data: dict[str, Any]) -> int:
    count = 0
    for path in vault.paths(spec, form_key):
        for container, key, _pointer in values_at(data, path):
            value = container[key]
            if value is not None and not is_envelope(value):
                count += 1
    return count


def status(db: Database, vault: Vault, form: FormLookup, sensitive_forms: set[str], batch: int = 1000) -> KeyStatus:
    """Count the sealed values per key id (reading the candidate records in batches), the
    plaintext values of sensitive fields and the blind-index rows per key id."""
    ring = vault.cipher.keys.keyring()
    values: Counter[str] = Counter()
    plaintext = 0
    last = ""
    while True:
        with db.read() as session:
            rows = session.execute(select(RecordRow.id, RecordRow.form_key, RecordRow.form_version, RecordRow.data)
                                   .where(RecordRow.id > last, _candidates(sensitive_forms))
                                   .order_by(RecordRow.id).limit(batch)).all()
        if not rows:
            break
        last = rows[-1].id
        for row in rows:
            data = loads(row.data)
            values.update(envelope_kids(data))
            plaintext += _plaintext_count(vault, form(row.form_key, row.form_version), row.form_key, data)
    with db.read() as session:
        index = dict(session.execute(select(RecordValueRow.key_id, func.count()).where(RecordValueRow.key_id.is_not(None))
                                     .group_by(RecordValueRow.key_id)).all())
    return KeyStatus(ring.active, ring.key_ids, dict(values), {str(k): int(v) for k, v in index.items()}, plaintext)


def rotate(db: Database, vault: Vault, form: FormLookup, sensitive_forms: set[str], clock: Clock, actor: str,
           batch: int = 500) -> RotationResult:
    """Re-seal every sensitive value under the active key (see the module docstring)."""
    cipher = vault.cipher
    active = cipher.keys.keyring().active
    last = ""
    records = batches = skipped = 0
    while True:
        with db.read() as session:
            rows = session.execute(select(RecordRow.id, RecordRow.form_key, RecordRow.form_version, RecordRow.data,
                                          RecordRow.row_version)
                                   .where(RecordRow.id > last, _candidates(sensitive_forms))
                                   .order_by(RecordRow.id).limit(batch)).all()
            if not rows:
                break
            ids = [row.id for row in rows]
            stale_index = set(session.scalars(select(RecordValueRow.record_id).where(
                RecordValueRow.record_id.in_(ids), RecordValueRow.key_id.is_not(None), RecordValueRow.key_id != active)))
        last = rows[-1].id
        changes: list[tuple[Any, dict[str, Any] | None, list[tuple[str, str, str]]]] = []
        for row in rows:
            spec = form(row.form_key, row.form_version)
            paths = vault.paths(spec, row.form_key)
            data = loads(row.data)
            resealed = cipher.reseal(row.form_key, row.id, paths, data)
            if resealed is None and row.id not in stale_index:
                continue
            plain, _ = cipher.open(row.form_key, row.id, paths, resealed if resealed is not None else data)
            blind = []
            for name in sorted(vault.top_fields(spec, row.form_key)):
                entry = cipher.index_entry(row.form_key, name, plain.get(name))
                if entry is not None:
                    blind.append((name, *entry))
            changes.append((row, resealed, blind))
        if not changes:
            continue
        done = 0
        with db.transaction() as session:
            for row, resealed, blind in changes:
                if resealed is not None:
                    result = session.execute(update(RecordRow).where(RecordRow.id == row.id,
                                                                     RecordRow.row_version == row.row_version)
                                             .values(data=dumps(resealed)).execution_options(synchronize_session=False))
                    if getattr(result, "rowcount", 0) != 1:
                        skipped += 1
                        continue
                session.execute(delete(RecordValueRow).where(RecordValueRow.record_id == row.id,
                                                             RecordValueRow.key_id.is_not(None)))
                session.add_all(RecordValueRow(record_id=row.id, form_key=row.form_key, field=name, value=digest,
                                               key_id=kid) for name, kid, digest in blind)
                done += 1
            if done:
                session.add(AuditRow(at=clock.now(), actor=actor, action="keys.rotate", object_type="keyring",
                                     object_id=active, detail=dumps({"records": done, "to": active})))
        if done:
            records += done
            batches += 1
    return RotationResult(active, records, batches, skipped)


__all__ = ["KeyStatus", "RotationResult", "rotate", "status"]
