"""The report mirror: an in-process DuckDB copy of the records, one typed table per form family,
fed incrementally from the analytic change sequence (``changes``).

One mirror per process (see README.md). Every method takes the same lock, so one catch-up or one
query runs at a time on the single DuckDB connection.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import duckdb
from sqlalchemy import and_, or_, select, text

from engine.clock import Clock, SystemClock
from engine.errors import EngineError
from engine.forms.spec import FormSpec
from engine.jsoncodec import loads
from engine.reports._columns import (
    METADATA_COLUMNS,
    MirrorColumn,
    quote,
    table_name,
    to_column_value,
    union_columns,
)
from engine.reports.safety import duckdb_config, guarded
from engine.reports.settings import ReportSettings
from engine.reports.sources import (
    INSTANCE_COLUMNS,
    INSTANCE_ENTITY,
    TAGS_ENTITY,
    TAGS_TABLE,
    INSTANCES_TABLE,
    TASK_COLUMNS,
    TASK_ENTITY,
    TASKS_TABLE,
)
from engine.store.database import Database
from engine.security.crypto import strip_sealed
from engine.store.models import ChangeRow, InstanceRow, RecordRow, RecordTagRow, TaskRow

RECORD_ENTITY = "record"
DEFAULT_GAP_GRACE = timedelta(minutes=10)
HISTORY_HORIZON = timedelta(hours=1)
"""A hole under a change older than this (by its ``at``) is history, not an open transaction
(SQLite and other databases without transaction-id watermarks)."""
_ID_CHUNK = 500
_GAP_CHUNK = 100
_RELOAD_CHUNK = 5000

FormVersions = Callable[[str], list[FormSpec]]
"""``forms(key)``: every compiled version of a form (empty when there is none)."""


def connect_duckdb(settings: ReportSettings | None = None) -> duckdb.DuckDBPyConnection:
    """A locked-down in-memory DuckDB: no file or network access, no extension installing or
    loading, no Python replacement scans, bounded memory and threads (engine.reports.safety),
    then the configuration is locked so that no statement can loosen it again."""
    connection = duckdb.connect(":memory:", config=duckdb_config(settings or ReportSettings()))
    # TimeZone only exists once the (built-in) ICU extension is up, so it cannot go in the
    # connect config; it is pinned before the lock. Every query converts zones explicitly, UTC
    # just keeps anything implicit independent of the host's TZ.
    connection.execute("SET TimeZone = 'UTC'")
    connection.execute("SET lock_configuration = true")
    return connection


@dataclass(frozen=True, slots=True)
class _Change:
    seq: int
    entity: str
    entity_id: str
    scope: str
    at: datetime


@dataclass(frozen=True, slots=True)
class Gap:
    """Sequence numbers ``low..high`` (inclusive) not yet seen although a later one was.

    On PostgreSQL a sequence number is taken when the row is inserted but becomes visible only at
    commit, so a transaction that started earlier may still commit a lower number. ``born`` is
    when the mirror noticed the gap (its own clock, so skew between application servers cannot
    shorten the wait), unless the change seen after the gap is older than
    :data:`HISTORY_HORIZON`: then the hole is history (a rolled-back transaction) and ``born`` is
    that change's ``at``, so a process starting on a long history does not poll every old hole.

    ``watermark`` (PostgreSQL only): a transaction id assigned to the mirror itself after the
    catch-up that noticed the gap had read the change above it. Every transaction that could hold
    a number of the gap got its id before taking the number (see README.md, "Late commits"), so
    before the watermark; once the oldest running transaction id (``pg_snapshot_xmin``) is past
    it, all of them have ended and a number still missing was rolled back. On PostgreSQL the gap
    is given up then, never by the clock.
    """

    low: int
    high: int
    born: datetime
    watermark: int | None = None


@dataclass(frozen=True, slots=True)
class _Record:
    id: str
    form_key: str
    form_version: int
    data: dict[str, Any]
    created_at: datetime
    updated_at: datetime


class ReportMirror:
    """Typed DuckDB tables ``form_<key>`` that follow the ``records`` table.

    ``catch_up()`` applies every change committed since the last call; ``rebuild()`` starts over.
    ``columns()`` and ``execute()`` serve the query compiler. Thread-safe.
    """

    def __init__(
        self,
        database: Database,
        forms: FormVersions,
        *,
        clock: Clock | None = None,
        gap_grace: timedelta = DEFAULT_GAP_GRACE,
        batch_size: int = 1000,
        settings: ReportSettings | None = None,
    ) -> None:
        self._database = database
        self._forms = forms
        self._clock: Clock = clock or SystemClock()
        self._grace = gap_grace
        self._batch_size = batch_size
        self._lock = threading.RLock()
        self._settings = settings or ReportSettings()
        self._connection = connect_duckdb(self._settings)
        self._last_seq = 0
        self._gaps: list[Gap] = []
        self._tables: dict[str, tuple[MirrorColumn, ...]] = {}
        """The form columns (metadata excluded) of every mirror table that exists."""
        self._calendar_years: dict[str, set[int]] = {}
        """Business calendars loaded (``calendar_table``): their key -> the years loaded."""
        self._watermarks = database.dialect == "postgresql"
        """Gaps end by transaction-id watermarks (exact) rather than by the grace window."""
        self._create_process_tables()

    # -- state --------------------------------------------------------------------------------

    @property
    def last_seq(self) -> int:
        """The highest change sequence number applied."""
        with self._lock:
            return self._last_seq

    @property
    def gaps(self) -> tuple[Gap, ...]:
        """Sequence numbers below :attr:`last_seq` still awaited: on PostgreSQL until every
        transaction that could commit one has ended, elsewhere within the grace window."""
        with self._lock:
            return tuple(self._gaps)

    def close(self) -> None:
        with self._lock:
            self._connection.close()

    # -- feeding ------------------------------------------------------------------------------

    def catch_up(self) -> int:
        """Apply every change committed since the last call; returns how many changes were read.

        Late commits below :attr:`last_seq` (gaps) are looked for first, then new changes in
        batches of ``batch_size``; each batch is applied in one DuckDB transaction and only then
        counted as seen. A rolled-back transaction leaves a hole in the sequence for ever, so gaps
        are given up: on PostgreSQL once every transaction that could still commit a number of the
        gap has ended (transaction-id watermarks, exact); elsewhere after ``gap_grace``.
        """
        with self._lock:
            count = 0
            oldest_running: int | None = None
            if self._gaps and self._watermarks:
                # Read before the gaps are: a transaction older than this has ended, so its
                # change (if it committed) is visible to the gap read below.
                oldest_running = self._oldest_running_xid()
            if self._gaps:
                late = self._read_gap_changes()
                if late:
                    self._apply(late)
                    self._gaps = _without(self._gaps, {change.seq for change in late})
                    count += len(late)
            while True:
                batch = self._read_changes_after(self._last_seq)
                if not batch:
                    break
                self._apply(batch)
                self._gaps.extend(self._new_gaps(batch))
                self._last_seq = batch[-1].seq
                count += len(batch)
                if len(batch) < self._batch_size:
                    break
            if self._watermarks:
                self._expire_by_watermark(oldest_running)
            else:
                horizon = self._clock.now() - self._grace
                self._gaps = [gap for gap in self._gaps if gap.born >= horizon]
            return count

    def _expire_by_watermark(self, oldest_running: int | None) -> None:
        """Give up the gaps whose every possible holder has ended (PostgreSQL); stamp the gaps
        noticed by this catch-up with a watermark taken now, after their changes were read."""
        if oldest_running is not None:
            self._gaps = [
                gap for gap in self._gaps
                if gap.watermark is None or oldest_running <= gap.watermark
            ]
        if any(gap.watermark is None for gap in self._gaps):
            watermark = self._own_xid()
            self._gaps = [
                gap if gap.watermark is not None else
                Gap(gap.low, gap.high, gap.born, watermark)
                for gap in self._gaps
            ]

    def _oldest_running_xid(self) -> int:
        """``pg_snapshot_xmin`` of a fresh snapshot: every transaction id below it has ended."""
        with self._database.read() as session:
            value = session.execute(
                text("SELECT CAST(pg_snapshot_xmin(pg_current_snapshot()) AS TEXT)")
            ).scalar_one()
        return int(value)

    def _own_xid(self) -> int:
        """A transaction id assigned now, to a transaction of the mirror's own that ends at once:
        every id assigned before this call is lower. (``pg_snapshot_xmax`` is not enough: it is
        one past the newest *completed* id, and a running transaction may hold a higher one.)"""
        with self._database.engine.connect() as connection:
            value = connection.execute(
                text("SELECT CAST(pg_current_xact_id() AS TEXT)")
            ).scalar_one()
            connection.commit()
        return int(value)

    def rebuild(self) -> int:
        """Drop every mirror table and replay the whole change sequence."""
        with self._lock:
            for key in list(self._tables):
                self._connection.execute(f"DROP TABLE IF EXISTS {table_name(key)}")
            self._tables.clear()
            self._create_process_tables()
            self._last_seq = 0
            self._gaps = []
            return self.catch_up()

    # -- serving queries ----------------------------------------------------------------------

    def calendar_table(self, key: str, calendar: Any, first_year: int, last_year: int) -> str:
        """The table ``"_calendar_<key>"`` (``iv_start``, ``iv_end``: UTC microseconds) of the
        working intervals of ``calendar`` (an ``engine.calendars.BusinessCalendar``), with every
        local year ``first_year..last_year`` loaded; years loaded once stay (a cache)."""
        if not key.isalnum():
            raise ValueError(f"not a calendar key: {key!r}")
        table = quote(f"_calendar_{key}")
        with self._lock:
            loaded = self._calendar_years.get(key)
            missing = [
                year for year in range(first_year, last_year + 1)
                if loaded is None or year not in loaded
            ]
            if loaded is not None and not missing:
                return table
            starts: list[int] = []
            ends: list[int] = []
            for year in missing:
                for start, end in calendar.working_spans(year):
                    starts.append(start)
                    ends.append(end)

            def write() -> None:
                self._connection.execute(
                    f"CREATE TABLE IF NOT EXISTS {table} (iv_start BIGINT, iv_end BIGINT)"
                )
                if starts:
                    self._connection.execute(
                        f"INSERT INTO {table} SELECT unnest(CAST(? AS BIGINT[])), "
                        "unnest(CAST(? AS BIGINT[]))",
                        [starts, ends],
                    )

            self._in_transaction(write)
            self._calendar_years[key] = (loaded or set()) | set(missing)
            return table

    def columns(self, form_key: str) -> dict[str, MirrorColumn]:
        """The columns of ``form_key``'s table by name (metadata included), creating the table or
        adding the columns of a newer form version first."""
        with self._lock:
            self._in_transaction(lambda: self._sync_table(form_key))
            if form_key not in self._tables:
                raise ValueError(f"not a form key: {form_key!r}")
            columns = {column.name: column for column in METADATA_COLUMNS}
            columns.update((column.name, column) for column in self._tables[form_key])
            return columns

    def execute(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        """Run one SELECT built by the query compiler (identifiers quoted, values bound)."""
        with self._lock:
            return guarded(self._connection, self._settings,
                           lambda: self._connection.execute(sql, list(params)).fetchall())

    # -- reading the OLTP store ---------------------------------------------------------------

    def _read_changes_after(self, seq: int) -> list[_Change]:
        query = (
            select(
                ChangeRow.seq, ChangeRow.entity, ChangeRow.entity_id, ChangeRow.scope, ChangeRow.at
            )
            .where(ChangeRow.seq > seq)
            .order_by(ChangeRow.seq)
            .limit(self._batch_size)
        )
        with self._database.read() as session:
            return [_Change(*row) for row in session.execute(query)]

    def _read_gap_changes(self) -> list[_Change]:
        found: list[_Change] = []
        with self._database.read() as session:
            for start in range(0, len(self._gaps), _GAP_CHUNK):
                chunk = self._gaps[start : start + _GAP_CHUNK]
                condition = or_(
                    *(and_(ChangeRow.seq >= gap.low, ChangeRow.seq <= gap.high) for gap in chunk)
                )
                query = (
                    select(
                        ChangeRow.seq,
                        ChangeRow.entity,
                        ChangeRow.entity_id,
                        ChangeRow.scope,
                        ChangeRow.at,
                    )
                    .where(condition)
                    .order_by(ChangeRow.seq)
                )
                found.extend(_Change(*row) for row in session.execute(query))
        return found

    def _new_gaps(self, batch: list[_Change]) -> Iterable[Gap]:
        now = self._clock.now()
        previous = self._last_seq
        for change in batch:
            if change.seq > previous + 1:
                recent = self._watermarks or change.at >= now - HISTORY_HORIZON
                born = now if recent else change.at
                yield Gap(previous + 1, change.seq - 1, born)
            previous = change.seq

    def _load_records(self, ids: list[str]) -> list[_Record]:
        records: list[_Record] = []
        with self._database.read() as session:
            for start in range(0, len(ids), _ID_CHUNK):
                chunk = ids[start : start + _ID_CHUNK]
                rows = session.execute(_record_columns().where(RecordRow.id.in_(chunk)))
                records.extend(_record(row) for row in rows)
        return records

    def _load_form_records(self, form_key: str) -> Iterable[list[_Record]]:
        last_id = ""
        while True:
            with self._database.read() as session:
                rows = session.execute(
                    _record_columns()
                    .where(RecordRow.form_key == form_key, RecordRow.id > last_id)
                    .order_by(RecordRow.id)
                    .limit(_RELOAD_CHUNK)
                ).all()
            if not rows:
                return
            yield [_record(row) for row in rows]
            last_id = rows[-1].id

    # -- writing the mirror -------------------------------------------------------------------

    def _apply(self, changes: list[_Change]) -> None:
        scopes: dict[str, str] = {}
        instance_ids: set[str] = set()
        task_ids: set[str] = set()
        tagged: set[str] = set()
        for change in changes:
            if change.entity == RECORD_ENTITY:
                scopes[change.entity_id] = change.scope
            elif change.entity == INSTANCE_ENTITY:
                instance_ids.add(change.entity_id)
            elif change.entity == TASK_ENTITY:
                task_ids.add(change.entity_id)
            elif change.entity == TAGS_ENTITY:
                tagged.add(change.entity_id)
        if tagged:
            self._apply_tags(sorted(tagged))
        if instance_ids or task_ids:
            self._apply_process_rows(sorted(instance_ids), sorted(task_ids))
        if not scopes:
            return
        records = self._load_records(list(scopes))
        by_form: dict[str, list[_Record]] = {}
        for record in records:
            by_form.setdefault(record.form_key, []).append(record)
        found = {record.id for record in records}
        removed: dict[str, list[str]] = {}
        for record_id, scope in scopes.items():
            if record_id not in found:
                removed.setdefault(scope, []).append(record_id)

        def write() -> None:
            for form_key, form_records in by_form.items():
                if self._sync_table(form_key):
                    self._upsert(form_key, form_records)
            for form_key, record_ids in removed.items():
                if form_key in self._tables:
                    self._delete(form_key, record_ids)

        self._in_transaction(write)

    def _create_process_tables(self) -> None:
        for table, columns in ((INSTANCES_TABLE, INSTANCE_COLUMNS), (TASKS_TABLE, TASK_COLUMNS)):
            definitions = ", ".join(
                f"{quote(column.name)} {column.sql_type}"
                + (" PRIMARY KEY" if column.name == "_id" else "")
                for column in columns
            )
            self._connection.execute(f"DROP TABLE IF EXISTS {table}")
            self._connection.execute(f"CREATE TABLE {table} ({definitions})")
        self._connection.execute(f"DROP TABLE IF EXISTS {TAGS_TABLE}")
        self._connection.execute(f'CREATE TABLE {TAGS_TABLE} ("record_id" VARCHAR, "tag" VARCHAR)')

    def _apply_tags(self, record_ids: list[str]) -> None:
        """Replace the mirrored tags of ``record_ids`` with the ones they carry now."""
        rows: list[tuple[str, str]] = []
        with self._database.read() as session:
            for start in range(0, len(record_ids), _ID_CHUNK):
                chunk = record_ids[start : start + _ID_CHUNK]
                rows += [(row[0], row[1]) for row in session.execute(
                    select(RecordTagRow.record_id, RecordTagRow.tag).where(RecordTagRow.record_id.in_(chunk)))]

        def write() -> None:
            self._connection.execute(
                f'DELETE FROM {TAGS_TABLE} WHERE "record_id" IN (SELECT unnest(CAST(? AS VARCHAR[])))', [record_ids])
            if rows:
                self._connection.execute(
                    f'INSERT INTO {TAGS_TABLE} SELECT unnest(CAST(? AS VARCHAR[])), unnest(CAST(? AS VARCHAR[]))',
                    [[row[0] for row in rows], [row[1] for row in rows]])

        self._in_transaction(write)

    def _apply_process_rows(self, instance_ids: list[str], task_ids: list[str]) -> None:
        """Replace the mirrored instances and tasks named by changes (rows gone are deleted)."""
        instances: list[list[Any]] = []
        tasks: list[list[Any]] = []
        with self._database.read() as session:
            for start in range(0, len(instance_ids), _ID_CHUNK):
                chunk = instance_ids[start : start + _ID_CHUNK]
                for row in session.scalars(select(InstanceRow).where(InstanceRow.id.in_(chunk))):
                    instances.append(
                        [row.id, row.process_key, row.process_version, row.record_id, row.state,
                         row.status, row.outcome, row.started_by, row.started_at, row.ended_at]
                    )
            for start in range(0, len(task_ids), _ID_CHUNK):
                chunk = task_ids[start : start + _ID_CHUNK]
                query = (
                    select(TaskRow, InstanceRow.process_key, InstanceRow.process_version,
                           InstanceRow.record_id)
                    .join(InstanceRow, InstanceRow.id == TaskRow.instance_id)
                    .where(TaskRow.id.in_(chunk))
                )
                for task, process_key, process_version, record_id in session.execute(query):
                    assignee = task.acted_by or task.claimed_by or task.assignee_user
                    tasks.append(
                        [task.id, process_key, process_version, task.instance_id, record_id,
                         task.state, task.entry, task.status, assignee, task.assignee_role,
                         task.assignee_user, task.claimed_by, task.acted_by, task.action,
                         task.origin, task.created_at, task.completed_at, task.due_at]
                    )

        def write() -> None:
            for table, columns, ids, rows in (
                (INSTANCES_TABLE, INSTANCE_COLUMNS, instance_ids, instances),
                (TASKS_TABLE, TASK_COLUMNS, task_ids, tasks),
            ):
                if not ids:
                    continue
                self._connection.execute(
                    f'DELETE FROM {table} WHERE "_id" IN (SELECT unnest(CAST(? AS VARCHAR[])))',
                    [ids],
                )
                if not rows:
                    continue
                values = [[row[index] for row in rows] for index in range(len(columns))]
                selects = ", ".join(f"unnest(CAST(? AS {c.sql_type}[]))" for c in columns)
                names = ", ".join(quote(c.name) for c in columns)
                self._connection.execute(
                    f"INSERT INTO {table} ({names}) SELECT {selects}", values
                )

        self._in_transaction(write)

    def _in_transaction(self, work: Callable[[], Any]) -> None:
        # DuckDB DDL is transactional, so the table cache is restored with it on failure.
        saved = dict(self._tables)
        self._connection.execute("BEGIN TRANSACTION")
        try:
            work()
            self._connection.execute("COMMIT")
        except BaseException:
            self._connection.execute("ROLLBACK")
            self._tables = saved
            raise

    def _sync_table(self, form_key: str) -> bool:
        """Make ``form_key``'s table match the union of its form versions; False (and no table
        change) when the key is not a form key that can name a table."""
        try:
            table = table_name(form_key)
        except ValueError:
            return False
        wanted = union_columns(self._forms(form_key))
        current = self._tables.get(form_key)
        if current is None:
            self._create(form_key, wanted)
            return True
        existing = {column.name.lower(): column for column in current}
        if any(
            (old := existing.get(column.name.lower())) is not None and old != column
            for column in wanted
        ):
            # A column changed type: old values must be converted from the stored JSON again, so
            # the form's table is rebuilt from the records table.
            self._connection.execute(f"DROP TABLE {table}")
            self._create(form_key, wanted)
            for chunk in self._load_form_records(form_key):
                self._upsert(form_key, chunk)
            return True
        added = [column for column in wanted if column.name.lower() not in existing]
        for column in added:
            # Rows written before the column existed read NULL, which is what they hold.
            self._connection.execute(
                f"ALTER TABLE {table} ADD COLUMN {quote(column.name)} {column.sql_type}"
            )
        if added:
            self._tables[form_key] = current + tuple(added)
        return True

    def _create(self, form_key: str, columns: tuple[MirrorColumn, ...]) -> None:
        definitions = ", ".join(
            [
                '"_id" VARCHAR PRIMARY KEY',
                '"_form_version" INTEGER',
                '"_created_at" TIMESTAMPTZ',
                '"_updated_at" TIMESTAMPTZ',
            ]
            + [f"{quote(column.name)} {column.sql_type}" for column in columns]
        )
        self._connection.execute(f"DROP TABLE IF EXISTS {table_name(form_key)}")
        self._connection.execute(f"CREATE TABLE {table_name(form_key)} ({definitions})")
        self._tables[form_key] = columns

    def _upsert(self, form_key: str, records: list[_Record]) -> None:
        """Replace the rows of ``records`` (delete, then insert), column by column.

        Each column goes to DuckDB as one list parameter that ``unnest`` turns back into rows:
        one statement per batch instead of one per row (``executemany`` is two orders of
        magnitude slower). Decimals travel as text and are cast to ``DECIMAL(38, s)`` exactly.
        """
        records = list({record.id: record for record in records}.values())
        columns = self._tables[form_key]
        values: list[list[Any]] = [
            [record.id for record in records],
            [record.form_version for record in records],
            [record.created_at for record in records],
            [record.updated_at for record in records],
        ]
        for column in columns:
            values.append(
                [to_column_value(record.data.get(column.name), column) for record in records]
            )
        names = ["_id", "_form_version", "_created_at", "_updated_at"] + [
            column.name for column in columns
        ]
        types = ["VARCHAR", "INTEGER", "TIMESTAMPTZ", "TIMESTAMPTZ"] + [
            column.sql_type for column in columns
        ]
        selects = []
        for sql_type in types:
            if sql_type.startswith("DECIMAL"):
                selects.append(f"CAST(unnest(CAST(? AS VARCHAR[])) AS {sql_type})")
            else:
                selects.append(f"unnest(CAST(? AS {sql_type}[]))")
        self._delete(form_key, values[0])
        self._connection.execute(
            f"INSERT INTO {table_name(form_key)} ({', '.join(quote(name) for name in names)}) "
            f"SELECT {', '.join(selects)}",
            values,
        )

    def _delete(self, form_key: str, record_ids: list[str]) -> None:
        self._connection.execute(
            f"DELETE FROM {table_name(form_key)} "
            'WHERE "_id" IN (SELECT unnest(CAST(? AS VARCHAR[])))',
            [record_ids],
        )


def _record_columns() -> Any:
    return select(
        RecordRow.id,
        RecordRow.form_key,
        RecordRow.form_version,
        RecordRow.data,
        RecordRow.created_at,
        RecordRow.updated_at,
    )


def _record(row: Any) -> _Record:
    try:
        data = strip_sealed(loads(row.data))  # sensitive values never reach the mirror
    except EngineError:
        data = None
    return _Record(
        row.id,
        row.form_key,
        row.form_version,
        data if isinstance(data, dict) else {},
        row.created_at,
        row.updated_at,
    )


def _without(gaps: list[Gap], seen: set[int]) -> list[Gap]:
    """``gaps`` minus the sequence numbers in ``seen`` (a range splits around each one)."""
    result: list[Gap] = []
    for gap in gaps:
        low = gap.low
        for seq in sorted(s for s in seen if gap.low <= s <= gap.high):
            if seq > low:
                result.append(Gap(low, seq - 1, gap.born, gap.watermark))
            low = seq + 1
        if low <= gap.high:
            result.append(Gap(low, gap.high, gap.born, gap.watermark))
    return result
