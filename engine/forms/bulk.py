"""Many submissions at once: `Engine.submit`'s pipeline for every record, with batched writes.

`Engine.submit` stores one record per transaction with a handful of round trips; a file of a
million rows cannot go that way. A :class:`BulkSession` runs the same steps for each record, in
Python, against the compiled form (reused for the whole batch):

    check_document -> the form pipeline -> check_document(computed) -> refs -> process binding
    -> process start (the workflow `Runner`, collecting its rows instead of writing them)

and keeps the accepted records' rows (record, record_values, change, audit, outbox, process
instance, events, tasks) in memory until :meth:`BulkSession.flush` writes the batch with one
`executemany` per table in one transaction. The verdicts, the stored data and the rows written
are those `Engine.submit` would give for the same records submitted one by one, in order:

- a record sees the records accepted before it in the same batch (refs, and `find_ids` for
  lookups and import keys), exactly as if they had been committed;
- reference checks are answered from one query per batch (`prefetch`) and checked again inside
  the writing transaction;
- rows of one table are inserted in the order `Engine.submit` would have added them, so ids and
  the change sequence follow the records' order.

In `all_or_nothing` mode the whole session is one transaction (each batch under a savepoint) that
:meth:`BulkSession.finish` commits or rolls back; its change-sequence rows are staged and only
appended to `changes` at commit, so a long import never holds open a low sequence number that the
report mirror would give up waiting for.

Memory is bounded by one batch: nothing is cached across batches.
"""
from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import AbstractContextManager, contextmanager
from datetime import datetime
from decimal import Decimal
from json.encoder import encode_basestring
from typing import Any, NamedTuple, cast

from sqlalchemy import Column, Connection, Integer, MetaData, String, Table, select
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.orm import Mapper, Session

from engine.clock import Clock
from engine.errors import EngineError, Issue, NotFound, ValidationFailed
from engine.forms.fills import apply_fills
from engine.forms.pipeline import run as run_pipeline
from engine.forms.spec import FormSpec
from engine.jsoncodec import MAX_NUMBER_DIGITS, MAX_NUMBER_EXPONENT, check_document, dumps
from engine.security import SYSTEM, Principal
from engine.store import Database
from engine.store.audit import chain_rows
from engine.store.models import (
    AuditRow,
    ChangeRow,
    InstanceEventRow,
    InstanceRow,
    OutboxRow,
    RecordRow,
    RecordValueRow,
    TaskRow,
    TimerRow,
)
from engine.store.records import MAX_LOOKUP_VALUE, lookup_text
from engine.store.types import UTCDateTime
from engine.workflow.notices import WITHHELD
from engine.workflow.runtime import ProcessStuck, Runner
from engine.workflow.spec import ProcessSpec

__all__ = ["BulkSession", "BulkSubmitter", "Flushed", "fast_dumps", "plainly_storable", "prepare_submission"]

_INT_LIMIT = 10**MAX_NUMBER_DIGITS
_EXACT_INT = 10**27
"""Integers below this many digits are looked up by their plain digits (`lookup_text` rounds
longer ones to the decimal context's 28 digits, so those go through it)."""
_QUERY_CHUNK = 500
"""Values per `IN (...)` list: far below every database's bind-parameter limit."""


def prepare_submission(spec: FormSpec, data: Any) -> tuple[dict[str, Any], list[Issue]]:
    """The part of a submission before the database is read, for one record: ``(computed data,
    issues)``. `Engine.submit` and the bulk path both call this, so they cannot drift apart.

    Raises `ValidationFailed` (``request.not_object``) when ``data`` is not an object and
    `BadRequest` when it, or the computed record, holds a value that cannot be stored; the
    caller adds the reference and process checks, reported with these issues.
    """
    if not isinstance(data, dict):
        raise ValidationFailed([Issue("", "request.not_object")])
    plain = plainly_storable(data)
    if not plain:
        check_document(data)
    outcome = run_pipeline(spec, data)
    computed, issues = outcome.data, list(outcome.issues)
    if not plainly_storable(computed, data if plain else None):
        check_document(computed)
    return computed, issues


class BulkSubmitter:
    """Opens bulk sessions on one database for one actor."""

    def __init__(self, db: Database, registry: Any, clock: Clock, actor: Principal = SYSTEM, *,
                 vault: Any = None) -> None:
        self._db = db
        self._registry = registry
        self._clock = clock
        self._actor = actor
        self._tables = _Tables(db)
        self._vault = vault
        """Seals sensitive fields (engine.security.vault.Vault); None only for forms without any."""

    @contextmanager
    def session(self, form_key: str, *, all_or_nothing: bool = False,
                background: bool = True, notify: bool = True) -> Iterator[BulkSession]:
        """A session adding records of ``form_key``; rolled back unless it was flushed (or, all or
        nothing, finished with ``commit=True``). ``background`` writes each batch in a thread
        while the next one is checked (not with ``all_or_nothing``). Without ``notify`` the
        notifications of the processes it starts are stored ``withheld`` (never sent)."""
        session = BulkSession(self._db, self._registry, self._clock, self._actor, self._tables, form_key,
                              all_or_nothing=all_or_nothing, background=background, vault=self._vault,
                              notify=notify)
        try:
            yield session
        finally:
            session.close()


class BulkSession:
    """Adds records of one form: :meth:`prefetch`, :meth:`add` each record, :meth:`flush`."""

    def __init__(self, db: Database, registry: Any, clock: Clock, actor: Principal, tables: _Tables,
                 form_key: str, *, all_or_nothing: bool, background: bool = True, vault: Any = None,
                 notify: bool = True) -> None:
        self._vault = vault
        self._notify = notify
        self.issued: list[str] = []
        """Every record id this session handed out, in order (those written are in the database)."""
        self._db = db
        self._registry = registry
        self._clock = clock
        self._actor = actor
        self._tables = tables
        self.form_key = form_key
        self.all_or_nothing = all_or_nothing
        self._ids = _Uuid7s()
        self._read: Session | None = None
        self._read_scope: Any = None
        self._write: Session | None = None
        self._write_scope: Any = None
        self._staged_changes = False
        self._finished = False
        self._spec: FormSpec | None = None
        self._process: ProcessSpec | None = None
        self._process_issue: Issue | None = None
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="bulk-writer") if background and not all_or_nothing \
            else None
        self._inflight: Future[list[tuple[int, BaseException]]] | None = None
        self._inflight_batch: _Batch | None = None
        self._inflight_index: dict[str, dict[str, list[str]]] = {}
        self._reset_batch()

    # -- reading ----------------------------------------------------------------------------

    def _reset_batch(self) -> None:
        self._rows: dict[str, list[tuple[Any, ...]]] = {name: [] for name in self._tables.names}
        self._marks: list[tuple[int, ...]] = []
        """Per accepted record, where its rows start in each table list (for a row-by-row retry)."""
        self._accepted: list[str] = []
        self._pending_ids: set[str] = set()
        self._pending_values: dict[str, dict[str, list[str]]] = {}
        """field -> lookup text -> ids of this batch's records (only for fields asked about)."""
        self._found: dict[tuple[str, str, str], list[str]] = {}
        self._known: dict[str, set[str]] = {}
        self._missing: dict[str, set[str]] = {}
        self._db_refs: dict[str, set[str]] = {}
        """Referenced records outside the batch, by form: checked again before writing."""
        self._batch_open = False
        self._sensitive_of: dict[str, frozenset[str]] = {}
        """Form -> its top-level sensitive fields, asked once per batch (as the form spec is)."""

    def _begin_batch(self) -> None:
        if self._batch_open:
            return
        self._batch_open = True
        spec = self._registry.form(self.form_key)
        if spec is None:
            raise NotFound("definition.not_found", params={"kind": "form", "key": self.form_key})
        self._spec = spec
        self._process = None
        self._process_issue = None
        if spec.process is not None:
            process = self._registry.process(spec.process)
            if process is None or process.form != self.form_key:
                self._process_issue = Issue("", "record.no_process", {"form": self.form_key, "process": spec.process})
            else:
                self._process = process

    def _reader(self) -> Session:
        """Where this batch's queries run: the open transaction (all or nothing), else a snapshot."""
        if self.all_or_nothing:
            return self._writer()
        if self._read is None:
            self._read_scope = self._db.read()
            self._read = self._read_scope.__enter__()
        return self._read

    def _close_reader(self) -> None:
        if self._read_scope is not None:
            scope, self._read_scope, self._read = self._read_scope, None, None
            scope.__exit__(None, None, None)

    def _writer(self) -> Session:
        if self._write is None:
            self._write_scope = self._db.transaction()
            self._write = self._write_scope.__enter__()
            if self.all_or_nothing:
                connection = self._write.connection()
                self._tables.staging.drop(connection, checkfirst=True)
                self._tables.staging.create(connection)
                self._staged_changes = True
        return self._write

    @property
    def spec(self) -> FormSpec:
        self._begin_batch()
        assert self._spec is not None
        return self._spec

    def prefetch(self, lookups: Mapping[tuple[str, str], Iterable[Any]] = {},
                 records: Iterable[Mapping[str, Any]] = ()) -> None:
        """Answer, with one query each, the lookups ``{(form, field): values}`` and the references
        of ``records`` the next :meth:`add` calls of this batch will ask about. Optional: what is
        not prefetched is asked when needed."""
        self._begin_batch()
        for (form, field), values in lookups.items():
            if field in self._sensitive(form):
                continue  # looked up by blind index in find_ids
            texts = {text for text in map(lookup_text, values)
                     if text is not None and (form, field, text) not in self._found}
            if texts:
                self._query_values(form, field, texts)
        refs = self.spec.refs
        if refs:
            wanted: dict[str, set[str]] = {}
            for record in records:
                for field, target in refs.items():
                    value = record.get(field)
                    if isinstance(value, str):
                        wanted.setdefault(target, set()).add(value)
            for target, ids in wanted.items():
                self._query_records(target, ids)

    def _query_values(self, form: str, field: str, texts: set[str]) -> None:
        session = self._reader()
        ordered = sorted(texts)
        found: dict[str, list[str]] = {text: [] for text in ordered}
        for start in range(0, len(ordered), _QUERY_CHUNK):
            chunk = ordered[start:start + _QUERY_CHUNK]
            rows = session.execute(
                select(RecordValueRow.value, RecordValueRow.record_id)
                .where(RecordValueRow.form_key == form, RecordValueRow.field == field, RecordValueRow.value.in_(chunk))
                .order_by(RecordValueRow.id)
            )
            for value, record_id in rows:
                ids = found[value]
                if len(ids) < 2:
                    ids.append(record_id)
        known = self._known.setdefault(form, set())
        for text, ids in found.items():
            self._found[(form, field, text)] = ids
            known.update(ids)

    def _query_records(self, form: str, ids: set[str]) -> None:
        known = self._known.setdefault(form, set())
        missing = self._missing.setdefault(form, set())
        asked = set(ids - known - missing)
        if form == self.form_key:
            asked -= self._pending_ids
            if self._inflight_batch is not None:
                asked -= self._inflight_batch.ids
        ordered = sorted(asked)
        session = self._reader()
        for start in range(0, len(ordered), _QUERY_CHUNK):
            chunk = ordered[start:start + _QUERY_CHUNK]
            present = set(session.scalars(select(RecordRow.id).where(RecordRow.form_key == form, RecordRow.id.in_(chunk))))
            known.update(present)
            missing.update(set(chunk) - present)

    def find_ids(self, form: str, field: str, value: Any) -> list[str]:
        """Up to two ids of records of ``form`` whose top-level ``field`` equals ``value`` (as
        `Engine.find_record_id` compares), oldest first, counting records added in this batch."""
        self._begin_batch()
        if field in self._sensitive(form):
            return self._find_sensitive(form, field, value)
        text = lookup_text(value)
        if text is None:
            return []
        key = (form, field, text)
        if key not in self._found:
            self._query_values(form, field, {text})
        ids = list(self._found[key])
        if form == self.form_key and len(ids) < 2:
            for record_id in (*self._inflight_ids(field, text), *self._pending_index(field).get(text, ())):
                if record_id not in ids:
                    ids.append(record_id)
                    if len(ids) == 2:
                        break
        return ids

    def _sensitive(self, form: str) -> frozenset[str]:
        """The top-level sensitive fields of ``form`` (blind-indexed), once per batch."""
        if self._vault is None:
            return frozenset()
        fields = self._sensitive_of.get(form)
        if fields is None:
            spec = self.spec if form == self.form_key else self._registry.form(form)
            fields = self._sensitive_of[form] = self._vault.top_fields(spec, form)
        return fields

    def _find_sensitive(self, form: str, field: str, value: Any) -> list[str]:
        """`find_ids` on a sensitive field: by its digests under every key, and in the batches not
        written yet by the active key's digest (the one `add` indexes them under)."""
        digests = self._vault.cipher.index_digests(form, field, value)
        if not digests:
            return []
        ids = list(self._reader().scalars(
            select(RecordValueRow.record_id).where(RecordValueRow.form_key == form, RecordValueRow.field == field,
                                                   RecordValueRow.key_id.is_not(None), RecordValueRow.value.in_(digests))
            .order_by(RecordValueRow.id).limit(2)))
        if form == self.form_key and len(ids) < 2:
            for record_id in (*self._inflight_ids(field, digests[0]), *self._pending_index(field).get(digests[0], ())):
                if record_id not in ids:
                    ids.append(record_id)
                    if len(ids) == 2:
                        break
        return ids

    def _inflight_ids(self, field: str, text: str) -> list[str]:
        """Ids of the batch being written in the background whose ``field`` has this lookup text."""
        batch = self._inflight_batch
        if batch is None:
            return []
        index = self._inflight_index.get(field)
        if index is None:
            index = {}
            for record_id, _, name, value, _kid in batch.rows["record_values"]:
                if name == field:
                    index.setdefault(value, []).append(record_id)
            self._inflight_index[field] = index
        return index.get(text, [])

    def _pending_index(self, field: str) -> dict[str, list[str]]:
        """Lookup text -> ids of this batch's records, for one field; built when first asked,
        then kept up to date by `add`."""
        index = self._pending_values.get(field)
        if index is None:
            index = {}
            for record_id, _, name, text, _kid in self._rows["record_values"]:
                if name == field:
                    index.setdefault(text, []).append(record_id)
            self._pending_values[field] = index
        return index

    def _ref_exists(self, form: str, value: Any) -> bool:
        if not isinstance(value, str):
            return False
        if form == self.form_key and (value in self._pending_ids or (
                self._inflight_batch is not None and value in self._inflight_batch.ids)):
            return True
        if value not in self._known.get(form, ()) and value not in self._missing.get(form, ()):
            self._query_records(form, {value})
        return value in self._known.get(form, ())

    def _fill_source(self, form: str, record_id: str) -> dict[str, Any] | None:
        """The data of a referenced record for `apply_fills`: committed, or accepted earlier in
        this batch (as if committed, like every other check of the batch)."""
        from engine.jsoncodec import loads

        if record_id in self._pending_ids:
            for row in self._rows["records"]:
                if row[0] == record_id and row[1] == form:
                    return self._opened(form, row[2], record_id, loads(row[3]))
        stored = self._reader().get(RecordRow, record_id)
        if stored is None or stored.form_key != form:
            return None
        return self._opened(form, stored.form_version, record_id, loads(stored.data))

    def _opened(self, form: str, version: int, record_id: str, data: dict[str, Any]) -> dict[str, Any]:
        """A referenced record's stored data with its sealed values opened (the record being
        imported seals again what it copies into a sensitive field)."""
        if self._vault is None:
            return data
        opened: dict[str, Any] = self._vault.for_reading(self._registry.form(form, version), form, record_id, data)[0]
        return opened

    # -- adding -----------------------------------------------------------------------------

    def add(self, data: Any) -> tuple[str | None, list[Issue]]:
        """Check one record as `Engine.submit` would and keep it for the next :meth:`flush`:
        ``(record id, [])``, or ``(None, issues)`` and nothing is kept."""
        self._begin_batch()
        spec = self.spec
        if spec.ref_fills:  # as Engine.submit: copied from the referenced records first
            data = apply_fills(spec, data, self._fill_source)
        try:
            computed, issues = prepare_submission(spec, data)
        except EngineError as exc:  # not an object, or a value that cannot be stored
            return None, list(exc.issues)
        outside: list[tuple[str, str]] = []
        """References to records written before this batch: checked again when it is written."""
        for field, target in spec.refs.items():
            value = computed.get(field)
            if value is None:
                continue
            if not self._ref_exists(target, value):
                issues.append(Issue(f"/{field}", "record.ref_not_found", {"form": target}))
            elif not (target == self.form_key and value in self._pending_ids):
                outside.append((target, value))
        if self._process_issue is not None:
            issues.append(self._process_issue)
        if issues:
            return None, issues

        now = self._clock.now()
        record_id = self._ids.next()
        process_rows: list[Any] = []
        if self._process is not None:
            collector = _Collector()
            try:
                started = computed if self._vault is None else self._vault.plain(spec, self.form_key, computed)
                _StartRunner(collector, self._process, now).start(record_id, started, self._actor)  # type: ignore[arg-type]
            except ProcessStuck as exc:
                return None, [Issue("", "process.stuck", {"reason": str(exc)})]
            process_rows = collector.added

        stored, blind, sensitive = computed, [], frozenset()
        if self._vault is not None:
            try:
                stored, blind, sensitive = self._vault.for_storage(spec, record_id, computed)
            except EngineError as exc:  # an envelope-shaped input
                return None, list(exc.issues)
        tables = self._tables
        rows = self._rows
        self._marks.append(tuple(map(len, rows.values())))
        at = tables.timestamp(now)
        form_key = self.form_key
        actor = self._actor.id
        rows["records"].append((record_id, form_key, spec.version, fast_dumps(stored), 1, at, at, actor))
        values = rows["record_values"]
        for field, value in computed.items():
            if sensitive and field in sensitive:
                continue
            cls = value.__class__
            if cls is str:
                if len(value) <= MAX_LOOKUP_VALUE:
                    values.append((record_id, form_key, field, value, None))
                continue
            text = str(value) if cls is int and -_EXACT_INT < value < _EXACT_INT else lookup_text(value)
            if text is not None:
                values.append((record_id, form_key, field, text, None))
        for field, kid, digest in blind:
            values.append((record_id, form_key, field, digest, kid))
        indexed = self._pending_values
        if indexed:
            digests = {field: digest for field, _kid, digest in blind}
            for field, by_text in indexed.items():
                if field in sensitive:
                    text = digests.get(field)
                    if text is not None:
                        by_text.setdefault(text, []).append(record_id)
                    continue
                value = computed.get(field)
                if value is not None:
                    text = lookup_text(value)
                    if text is not None:
                        by_text.setdefault(text, []).append(record_id)
        rows["changes"].append(("record", record_id, form_key, at))
        rows["audit_log"].append((at, actor, "record.create", "record", record_id,
                                  '{"form":' + encode_basestring(form_key) + ',"version":' + str(int(spec.version)) + "}"))
        rows["outbox"].append(("record.created", "record.created:" + record_id,
                               '{"record":' + encode_basestring(record_id) + ',"form":' + encode_basestring(form_key) + "}",
                               "pending", 0, at, "event"))
        for item in process_rows:
            if not self._notify and isinstance(item, OutboxRow) and item.channel != "event":
                item.status = WITHHELD
            name, row = tables.from_object(item)
            rows[name].append(row)
        self._pending_ids.add(record_id)
        self._accepted.append(record_id)
        self.issued.append(record_id)
        for target, value in outside:
            self._db_refs.setdefault(target, set()).add(value)
        return record_id, []

    @property
    def pending(self) -> int:
        """Records added since the last flush."""
        return len(self._accepted)

    # -- writing ----------------------------------------------------------------------------

    def flush(self) -> Flushed:
        """Write the records added since the last flush, in one transaction.

        All or nothing (or ``background=False``): written now, inside the session's transaction
        under a savepoint (or in a transaction of its own); ``Flushed.current`` lists the records
        that could not be written after all, as ``(position among them, reason)``.

        Otherwise the batch is written by a background thread while the caller checks the next
        one (``current`` is None; call :meth:`drain`, or read ``earlier`` at the next flush). Rows
        of a batch that fails as a whole are retried one per transaction. If the batch written
        in the background lost records, the batch being flushed — checked as if they existed —
        is dropped and ``redo`` asks for it again.
        """
        self._close_reader()
        earlier = self.drain()
        if earlier:
            self._reset_batch()
            return Flushed(earlier, None, redo=True)
        if not self._accepted:
            self._reset_batch()
            return Flushed(earlier, [])
        batch = _Batch(self._rows, self._marks, list(self._accepted), self._db_refs, dict(self.spec.refs),
                       self._tables, staged=self.all_or_nothing)
        if self.all_or_nothing:
            connection = self._writer().connection()
            failures = batch.write(lambda: _savepoint(connection))
        elif self._executor is None:
            failures = batch.write(lambda: _transaction(self._db))
        else:
            self._inflight = self._executor.submit(batch.write, lambda: _transaction(self._db))
            self._inflight_batch = batch
            self._reset_batch()
            return Flushed(earlier, None)
        self._reset_batch()
        return Flushed(earlier, failures)

    def drain(self) -> list[tuple[int, BaseException]] | None:
        """Wait for the batch being written in the background: its failures, or None if none
        was being written."""
        if self._inflight is None:
            return None
        future, self._inflight = self._inflight, None
        self._inflight_batch = None
        self._inflight_index = {}
        return future.result()

    def finish(self, commit: bool) -> None:
        """End the session: commit everything flushed (all or nothing), or roll it back."""
        if self._finished:
            return
        self._finished = True
        self._close_reader()
        if commit and self._staged_changes and self._write is not None:
            connection = self._write.connection()
            connection.exec_driver_sql(self._tables.unstage_sql)
            self._tables.staging.drop(connection)
        self._staged_changes = False  # rolled back with everything else otherwise
        self._end_write(commit=commit)

    def _end_write(self, commit: bool) -> None:
        scope, self._write_scope, self._write = self._write_scope, None, None
        if scope is None:
            return
        if commit:
            scope.__exit__(None, None, None)
        else:
            try:
                raise _Rollback
            except _Rollback as exc:
                scope.__exit__(type(exc), exc, exc.__traceback__)

    def close(self) -> None:
        """Let a background write finish, and roll back whatever was not committed."""
        self._close_reader()
        try:
            if self._inflight is not None:
                self._inflight.exception()  # wait; its outcome was not asked for
                self._inflight = None
        finally:
            if self._executor is not None:
                self._executor.shutdown(wait=True)
                self._executor = None
            self._staged_changes = False  # the temporary table goes with the rollback
            self._end_write(commit=False)


class Flushed(NamedTuple):
    """What :meth:`BulkSession.flush` did."""

    earlier: list[tuple[int, BaseException]] | None
    """Failures of the batch that was being written in the background (None: there was none)."""
    current: list[tuple[int, BaseException]] | None
    """Failures of the batch just flushed, or None while it is written in the background."""
    redo: bool = False
    """The earlier batch lost records, so the one just flushed was dropped: check it again."""


@contextmanager
def _transaction(db: Database) -> Iterator[Connection]:
    with db.transaction() as session:
        yield session.connection()


@contextmanager
def _savepoint(connection: Connection) -> Iterator[Connection]:
    with connection.begin_nested():
        yield connection


class _Batch:
    """The rows of one flushed batch, written in one go (or, failing that, record by record)."""

    def __init__(self, rows: dict[str, list[tuple[Any, ...]]], marks: list[tuple[int, ...]], accepted: list[str],
                 db_refs: dict[str, set[str]], refs: dict[str, str], tables: _Tables, *, staged: bool) -> None:
        self.rows = rows
        self.marks = marks
        self.accepted = accepted
        self.ids = set(accepted)
        self.db_refs = db_refs
        self.refs = refs
        self.tables = tables
        self.staged = staged

    def write(self, scope: Callable[[], AbstractContextManager[Connection]]) -> list[tuple[int, BaseException]]:
        failures: list[tuple[int, BaseException]] = []
        try:
            with scope() as connection:
                gone = self._recheck_refs(connection)
                skip: set[str] = set()
                if gone:
                    skip = self._dependants(gone)
                    failures = [(index, _RefGone(self._ref_issues(index, gone | skip)))
                                for index, record_id in enumerate(self.accepted) if record_id in skip]
                self._insert(connection, self._without(skip) if skip else self.rows)
            return failures
        except Exception:  # noqa: BLE001 - isolate the record(s) that cannot be stored, below
            failures = []
        for index in range(len(self.accepted)):
            try:
                with scope() as connection:
                    self._insert_one(connection, index)
            except Exception as exc:  # noqa: BLE001 - reported for this record only
                failures.append((index, exc))
        return failures

    def _recheck_refs(self, connection: Connection) -> set[str]:
        """Referenced records (outside the batch) that are gone since they were checked, asked
        inside the writing transaction, as `Engine.submit` checks again before it writes."""
        gone: set[str] = set()
        for form, ids in self.db_refs.items():
            ordered = sorted(ids)
            for start in range(0, len(ordered), _QUERY_CHUNK):
                chunk = ordered[start:start + _QUERY_CHUNK]
                present = set(connection.scalars(select(RecordRow.id).where(RecordRow.form_key == form,
                                                                            RecordRow.id.in_(chunk))))
                gone.update(set(chunk) - present)
        return gone

    def _dependants(self, gone: set[str]) -> set[str]:
        """Records of the batch that refer to a gone record, or to such a record, transitively."""
        skip: set[str] = set()
        changed = True
        while changed:
            changed = False
            for index, record_id in enumerate(self.accepted):
                if record_id in skip:
                    continue
                data = self._record_data(index)
                if any(data.get(field) in gone or data.get(field) in skip for field in self.refs):
                    skip.add(record_id)
                    changed = True
        return skip

    def _record_data(self, index: int) -> dict[str, Any]:
        from engine.jsoncodec import loads

        start = self.marks[index][self.tables.names.index("records")]
        data: dict[str, Any] = loads(self.rows["records"][start][3])
        return data

    def _ref_issues(self, index: int, gone: set[str]) -> list[Issue]:
        data = self._record_data(index)
        return [Issue(f"/{field}", "record.ref_not_found", {"form": target})
                for field, target in self.refs.items() if data.get(field) in gone]

    def _slices(self, index: int) -> dict[str, list[tuple[Any, ...]]]:
        names = self.tables.names
        start = self.marks[index]
        end = self.marks[index + 1] if index + 1 < len(self.marks) else tuple(len(self.rows[name]) for name in names)
        return {name: self.rows[name][start[i]:end[i]] for i, name in enumerate(names)}

    def _without(self, skip: set[str]) -> dict[str, list[tuple[Any, ...]]]:
        rows: dict[str, list[tuple[Any, ...]]] = {name: [] for name in self.tables.names}
        for index, record_id in enumerate(self.accepted):
            if record_id not in skip:
                for name, part in self._slices(index).items():
                    rows[name].extend(part)
        return rows

    def _insert_one(self, connection: Connection, index: int) -> None:
        data = self._record_data(index)
        for field, target in self.refs.items():  # it may refer to a record that failed just before
            value = data.get(field)
            if isinstance(value, str) and connection.scalar(
                    select(RecordRow.id).where(RecordRow.form_key == target, RecordRow.id == value)) is None:
                raise _RefGone([Issue(f"/{field}", "record.ref_not_found", {"form": target})])
        self._insert(connection, self._slices(index))

    def _insert(self, connection: Connection, rows: Mapping[str, list[tuple[Any, ...]]]) -> None:
        tables = self.tables
        for name in tables.names:
            batch = rows[name]
            if not batch:
                continue
            if name == "changes" and self.staged:
                connection.exec_driver_sql(tables.staging_sql, batch)
            elif name == "audit_log":  # numbered and hash-chained under the chain's lock
                connection.exec_driver_sql(tables.sql[name], chain_rows(connection, batch))
            else:
                connection.exec_driver_sql(tables.sql[name], batch)
            if name == "outbox":  # the event feed numbers them under the same lock (engine.insight.events)
                from engine.insight.events import append_raw, is_event

                append_raw(connection, [(row[0], row[1], row[2], row[5]) for row in batch if is_event(row[6])],
                           "?" if connection.dialect.paramstyle == "qmark" else "%s")


class _Rollback(Exception):
    """Raised into a transaction scope to make it roll back."""


class _RefGone(Exception):
    """A referenced record disappeared between the check and the write."""

    def __init__(self, issues: list[Issue]) -> None:
        super().__init__("record.ref_not_found")
        self.issues = issues


# -- process start without a session -----------------------------------------------------------


class _Collector:
    """Stands in for the ORM session while `Runner.start` runs: keeps what it adds, in order."""

    def __init__(self) -> None:
        self.added: list[Any] = []

    def add(self, obj: Any) -> None:
        self.added.append(obj)

    def flush(self) -> None:
        """Nothing to flush: the rows are written with the batch."""


class _StartRunner(Runner):
    """`Runner` for a new instance: its tasks are the only ones, so the next entry of a state is
    counted from what this start has added instead of queried."""

    def _next_entry(self, instance_id: str, state: str) -> int:
        entries = [item.entry for item in self.session.added  # type: ignore[attr-defined]
                   if isinstance(item, TaskRow) and item.instance_id == instance_id and item.state == state]
        return max(entries, default=0) + 1

    def _visit(self, instance: InstanceRow, state: str) -> int:
        return sum(1 for item in self.session.added  # type: ignore[attr-defined]
                   if isinstance(item, InstanceEventRow) and item.instance_id == instance.id and item.to_state == state)


# -- tables ------------------------------------------------------------------------------------


_OWN_COLUMNS: dict[str, tuple[str, ...]] = {
    "records": ("id", "form_key", "form_version", "data", "row_version", "created_at", "updated_at", "created_by"),
    "record_values": ("record_id", "form_key", "field", "value", "key_id"),
    "changes": ("entity", "entity_id", "scope", "at"),
    "audit_log": ("at", "actor", "action", "object_type", "object_id", "detail"),
    "outbox": ("topic", "dedup_key", "payload", "status", "attempts", "created_at", "channel"),
}
"""The columns `add` fills itself, in the order of its tuples."""

_CHAINED = ("id", "request_id", "prev_hash", "hash")
"""The audit columns `engine.store.audit.chain_rows` adds to those tuples when they are written."""

_MODELS = (RecordRow, RecordValueRow, ChangeRow, AuditRow, OutboxRow, InstanceRow, InstanceEventRow, TaskRow, TimerRow)


class _Tables:
    """Insert statements for one database, with the columns and value conversions they need."""

    def __init__(self, db: Database) -> None:
        dialect = db.engine.dialect
        tables: list[Table] = [cast(Table, model.__table__) for model in _MODELS]
        self.names: tuple[str, ...] = tuple(table.name for table in tables)
        self.sql: dict[str, str] = {}
        self._by_class: dict[type, tuple[str, list[tuple[str, Any, Callable[[Any], Any] | None]]]] = {}
        quote = dialect.identifier_preparer.quote
        marker = "?" if dialect.paramstyle == "qmark" else "%s"
        if dialect.paramstyle not in ("qmark", "format", "pyformat"):
            raise NotImplementedError(f"bulk insert does not support paramstyle {dialect.paramstyle}")
        timestamp: Callable[[Any], Any] | None = None
        for model, table in zip(_MODELS, tables, strict=True):
            columns = [column for column in table.columns if column.autoincrement is not True]
            own = _OWN_COLUMNS.get(table.name)
            if own is not None:
                for column in columns:
                    if column.name not in own and not column.nullable and column.server_default is None \
                            and not (table.name == "audit_log" and column.name in _CHAINED):
                        raise NotImplementedError(f"bulk insert does not fill {table.name}.{column.name}")
                    if column.name not in own and column.default is not None:
                        raise NotImplementedError(f"bulk insert does not apply the default of {table.name}.{column.name}")
                names = list(own)
            else:
                names = [column.name for column in columns]
            converters: list[tuple[str, Any, Callable[[Any], Any] | None]] = []
            mapper: Mapper[Any] = sa_inspect(model)
            for name in names:
                column = table.columns[name]
                processor = column.type.dialect_impl(dialect).bind_processor(dialect)
                if own is not None and processor is not None:
                    # `add` binds its own tuples: only the UTC timestamps need converting there.
                    if not isinstance(column.type, UTCDateTime):
                        raise NotImplementedError(f"bulk insert cannot convert {table.name}.{name}")
                    timestamp = processor
                arg = getattr(column.default, "arg", None)
                default = None if callable(arg) else arg
                attribute = mapper.get_property_by_column(column).key
                converters.append((attribute, default, processor))
            self._by_class[model] = (table.name, converters)
            self.sql[table.name] = (f"INSERT INTO {quote(table.name)} ({', '.join(quote(n) for n in names)}) "
                                    f"VALUES ({', '.join([marker] * len(names))})")
        audit = ("id", *_OWN_COLUMNS["audit_log"], *_CHAINED[1:])  # as chain_rows gives them
        self.sql["audit_log"] = (f"INSERT INTO {quote('audit_log')} ({', '.join(quote(n) for n in audit)}) "
                                 f"VALUES ({', '.join([marker] * len(audit))})")
        self._timestamp: Callable[[Any], Any] = timestamp or _unchanged
        # Change rows of an all-or-nothing session wait here until it commits.
        self.staging_name = quote("bulk_changes_staged")
        self.staging = Table("bulk_changes_staged", MetaData(),
                             Column("ord", Integer, primary_key=True, autoincrement=True),
                             Column("entity", String(16)), Column("entity_id", String(36)),
                             Column("scope", String(64)), Column("at", UTCDateTime()),
                             prefixes=["TEMPORARY"])
        cols = ", ".join(quote(n) for n in _OWN_COLUMNS["changes"])
        self.staging_sql = f"INSERT INTO {self.staging_name} ({cols}) VALUES ({', '.join([marker] * 4)})"
        self.unstage_sql = (f"INSERT INTO {quote('changes')} ({cols}) "
                            f"SELECT {cols} FROM {self.staging_name} ORDER BY {quote('ord')}")

    def timestamp(self, value: datetime) -> Any:
        """A datetime as the UTC timestamp columns bind it on this database."""
        return self._timestamp(value)

    def from_object(self, item: Any) -> tuple[str, tuple[Any, ...]]:
        """The table and insert tuple of an ORM object the workflow runner added."""
        name, converters = self._by_class[type(item)]
        values = []
        state = item.__dict__  # a new, never flushed object: what was set is here, the rest is None
        for attribute, default, processor in converters:
            value = state.get(attribute)
            if value is None:
                value = default
            if processor is not None and value is not None:
                value = processor(value)
            values.append(value)
        return name, tuple(values)


# -- fast twins of engine functions (same output, fewer Python calls) ---------------------------


def _unchanged(value: Any) -> Any:
    return value


def plainly_storable(document: Any, checked: Mapping[str, Any] | None = None) -> bool:
    """True when `engine.jsoncodec.check_document` certainly accepts ``document``: a flat object
    of texts without NUL or unpaired surrogates, integers and decimals within the bounds,
    booleans and nulls. False means "ask check_document" (which raises the precise error).
    Entries that are the very same key and value objects as in ``checked`` (a document that
    passed already) are not looked at again."""
    if document.__class__ is not dict:
        return False
    for key, value in document.items():
        if checked is not None and key in checked and checked[key] is value:
            continue
        if key.__class__ is not str or "\x00" in key or not (key.isascii() or _encodes(key)):
            return False
        cls = value.__class__
        if cls is str:
            if "\x00" in value or not (value.isascii() or _encodes(value)):
                return False
        elif cls is int:
            if not -_INT_LIMIT < value < _INT_LIMIT:
                return False
        elif cls is Decimal:
            if not value.is_finite() or len(value.as_tuple().digits) > MAX_NUMBER_DIGITS \
                    or abs(value.adjusted()) > MAX_NUMBER_EXPONENT:
                return False
        elif cls is not bool and value is not None:
            return False
    return True


def _encodes(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


_COMPACT = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode


def fast_dumps(value: Any) -> str:
    """`engine.jsoncodec.dumps` for a record: the same text, faster. Without decimals the
    standard library's C encoder writes exactly what `dumps` writes (compact, non-ASCII kept);
    a flat object with decimals is written key by key; anything else goes to `dumps`."""
    try:
        return _COMPACT(value)
    except (TypeError, ValueError):
        pass
    if value.__class__ is not dict:
        return dumps(value)
    parts = []
    for key, item in value.items():
        if key.__class__ is not str:
            return dumps(value)
        cls = item.__class__
        if cls is str:
            text = encode_basestring(item)
        elif cls is int:
            text = int.__repr__(item)
        elif cls is bool:
            text = "true" if item else "false"
        elif item is None:
            text = "null"
        else:
            text = dumps(item)
        parts.append(encode_basestring(key) + ":" + text)
    return "{" + ",".join(parts) + "}"


class _Uuid7s:
    """Time-ordered (version 7) UUIDs: ids of one import sort in creation order, so index inserts
    append instead of scattering over the B-trees."""

    def __init__(self) -> None:
        self._last = 0
        self._counter = 0
        self._hex = ""
        self._at = 0

    def next(self) -> str:
        ms = time.time_ns() // 1_000_000
        if ms <= self._last:
            self._counter += 1
            if self._counter > 0xFFF:  # 4,096 ids in one millisecond: borrow the next one
                self._last += 1
                self._counter = 0
            ms = self._last
        else:
            self._counter = 0
            self._last = ms
        if self._at >= len(self._hex):
            self._hex = os.urandom(8 * 1024).hex()
            self._at = 0
        rand = self._hex[self._at:self._at + 16]
        self._at += 16
        stamp = f"{ms:012x}"
        return (f"{stamp[:8]}-{stamp[8:]}-7{self._counter:03x}-{'89ab'[int(rand[0], 16) & 3]}{rand[1:4]}-"
                f"{rand[4:16]}")


class _Uuid4s:
    """Random (version 4) UUIDs as `str(uuid.uuid4())` gives them, from one `os.urandom` call per
    thousand ids instead of one per id."""

    def __init__(self) -> None:
        self._hex = ""
        self._at = 0

    def next(self) -> str:
        if self._at >= len(self._hex):
            self._hex = os.urandom(16 * 1024).hex()
            self._at = 0
        h = self._hex[self._at:self._at + 32]
        self._at += 32
        return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{'89ab'[int(h[16], 16) & 3]}{h[17:20]}-{h[20:]}"
