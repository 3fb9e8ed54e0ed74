"""Records going to and coming from storage with their sensitive fields sealed.

The one place that knows which fields of a form are sensitive and what that means for a
record's row, its lookup rows and the audit log:

1. :meth:`Vault.for_storage` -- before a record is written (submission, update, bulk import):
   refuse envelope-shaped input, seal the sensitive values, and give the blind-index entries
   of the top-level ones (their plain lookup rows are never written);
2. :meth:`Vault.for_reading` -- after a row is read: open every sealed value, and say which
   sensitive fields are now in plaintext (the caller audits that read, :func:`read_entry`);
3. :meth:`Vault.lookup` -- a filter or lookup value for a sensitive field becomes a
   :class:`~engine.store.records.Blind` of its digests, compared without decrypting.

A field is sensitive when its form version marks it ``"sensitive": true`` (``FormSpec.sensitive``)
or when the roles definitions name it (``extra``: form key -> top-level field names).
"""
from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from engine.errors import ValidationFailed
from engine.forms.spec import FormSpec
from engine.jsoncodec import dumps
from engine.security.crypto import FieldCipher, SensitivePath
from engine.store.models import AuditRow
from engine.store.records import Blind

READ_ACTION = "record.read_sensitive"
"""The audit action of a read that returned sensitive values in plaintext."""


class OpenedData(dict[str, Any]):
    """A record's data with its sensitive values in plaintext, knowing which top-level fields
    those are (``sensitive``): whatever records what a rule saw (the workflow's decisions)
    writes a placeholder for them instead of the value."""

    sensitive: frozenset[str] = frozenset()


def opened_data(data: dict[str, Any], sensitive: frozenset[str]) -> dict[str, Any]:
    """``data`` as :class:`OpenedData` when it has sensitive fields (else as is)."""
    if not sensitive:
        return data
    opened = OpenedData(data)
    opened.sensitive = sensitive
    return opened


def _no_extra(_form_key: str) -> frozenset[str]:
    return frozenset()


class Vault:
    """Seals, opens and indexes the sensitive fields of records with one :class:`FieldCipher`."""

    def __init__(self, cipher: FieldCipher, extra: Callable[[str], frozenset[str]] = _no_extra) -> None:
        self.cipher = cipher
        self.extra = extra
        """Form key -> top-level fields the roles definitions declare sensitive."""

    def paths(self, spec: FormSpec | None, form_key: str) -> tuple[SensitivePath, ...]:
        """The sensitive paths of a form version (and of the form, by the roles definitions)."""
        own = spec.sensitive if spec is not None else ()
        extra = tuple((name,) for name in sorted(self.extra(form_key)) if (name,) not in own)
        return (*own, *extra)

    def top_fields(self, spec: FormSpec | None, form_key: str) -> frozenset[str]:
        """The top-level sensitive fields (blind-indexed instead of looked up by value)."""
        return frozenset(path[0] for path in self.paths(spec, form_key) if len(path) == 1)

    def has_sensitive(self, spec: FormSpec | None, form_key: str) -> bool:
        return bool(self.paths(spec, form_key))

    def check_input(self, data: Any) -> None:
        """``record.reserved_value`` (422) at every envelope-shaped object of an input."""
        issues = FieldCipher.check_input(data)
        if issues:
            raise ValidationFailed(issues)

    def for_storage(self, spec: FormSpec, record_id: str,
                    data: dict[str, Any]) -> tuple[dict[str, Any], list[tuple[str, str, str]], frozenset[str]]:
        """``(data with the sensitive values sealed, blind-index entries (field, key id, digest),
        the top-level sensitive fields)``; ``data`` is returned as is for a form without any."""
        self.check_input(data)
        paths = self.paths(spec, spec.key)
        if not paths:
            return data, [], frozenset()
        top = frozenset(path[0] for path in paths if len(path) == 1)
        blind: list[tuple[str, str, str]] = []
        for field in sorted(top):
            entry = self.cipher.index_entry(spec.key, field, data.get(field))
            if entry is not None:
                blind.append((field, *entry))
        return self.cipher.seal(spec.key, record_id, paths, data), blind, top

    def for_reading(self, spec: FormSpec | None, form_key: str, record_id: str,
                    data: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
        """``(data with every sealed value opened, pointers of the sensitive values in it)``; the
        data is an :class:`OpenedData` naming its sensitive fields."""
        opened, revealed = self.cipher.open(form_key, record_id, self.paths(spec, form_key), data)
        return self.plain(spec, form_key, opened), revealed

    def plain(self, spec: FormSpec | None, form_key: str, data: dict[str, Any]) -> dict[str, Any]:
        """Plaintext ``data`` of the form marked with its sensitive fields (:class:`OpenedData`)."""
        return opened_data(data, self.top_fields(spec, form_key))

    def lookup(self, spec: FormSpec | None, form_key: str, field: str, value: Any) -> Any:
        """``value`` as a lookup on ``field`` compares it: a :class:`Blind` for a sensitive one."""
        if field in self.top_fields(spec, form_key):
            return Blind(self.cipher.index_digests(form_key, field, value))
        return value


def read_entry(actor: str, form_key: str, record_id: str, fields: list[str], now: datetime) -> AuditRow:
    """The audit entry of one read that returned ``fields`` (pointers) of a record in plaintext."""
    return AuditRow(at=now, actor=actor, action=READ_ACTION, object_type="record", object_id=record_id,
                    detail=dumps({"form": form_key, "fields": fields}))


def shown_plaintext(revealed: list[str], opened: dict[str, Any], shown: dict[str, Any]) -> list[str]:
    """The pointers of ``revealed`` whose values an output still shows in plaintext: their
    top-level field is in ``shown`` unchanged (not left out or masked by field permissions)."""
    kept = []
    for pointer in revealed:
        top = pointer.split("/")[1].replace("~1", "/").replace("~0", "~")
        if top in shown and shown[top] == opened.get(top):
            kept.append(pointer)
    return kept


__all__ = ["OpenedData", "READ_ACTION", "Vault", "opened_data", "read_entry", "shown_plaintext"]
