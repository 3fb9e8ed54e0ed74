"""Fixtures for the report engine alone: hand-built form specs, a fresh OLTP database (a SQLite
file, or the PostgreSQL database named by ``LOWCODE_TEST_DATABASE_URL``), rows written straight
into ``records`` and ``changes``, and a mirror over them."""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete, text, update

from engine.clock import FakeClock
from engine.forms.spec import ColumnSpec, FormSpec
from engine.jsoncodec import dumps
from engine.reports import ReportMirror, ReportSpec, compile_report
from engine.store.database import Database
from engine.store.models import Base, ChangeRow, RecordRow

PG_URL = os.environ.get("LOWCODE_TEST_DATABASE_URL")
START = datetime(2024, 3, 1, 8, 0, tzinfo=UTC)


def make_form(key: str, columns: list[tuple[Any, ...]], version: int = 1) -> FormSpec:
    """A compiled form with only what the report engine reads: ``(name, type[, scale])``."""
    return FormSpec(
        key=key,
        version=version,
        title=key,
        schema={"type": "object", "properties": {}},
        validator=None,
        columns=tuple(ColumnSpec(*column) for column in columns),
        computed=(),
        rules=(),
        refs={},
        decimals=(),
        process=None,
    )


class Forms:
    """The ``forms(key)`` callable a mirror needs, with versions added by tests."""

    def __init__(self) -> None:
        self.versions: dict[str, list[FormSpec]] = {}

    def add(self, key: str, columns: list[tuple[Any, ...]]) -> FormSpec:
        version = len(self.versions.get(key, [])) + 1
        spec = make_form(key, columns, version)
        self.versions.setdefault(key, []).append(spec)
        return spec

    def latest(self, key: str) -> FormSpec | None:
        versions = self.versions.get(key)
        return versions[-1] if versions else None

    def __call__(self, key: str) -> list[FormSpec]:
        return list(self.versions.get(key, []))


class Writer:
    """Writes records and their change rows directly, one transaction per call."""

    def __init__(self, database: Database, clock: FakeClock) -> None:
        self.database = database
        self.clock = clock
        self._ids = itertools.count(1)

    def add(
        self,
        form: str,
        data: dict[str, Any],
        *,
        version: int = 1,
        seq: int | None = None,
        record_id: str | None = None,
        created_at: datetime | None = None,
    ) -> str:
        record_id = record_id or f"r{next(self._ids):05d}"
        at = created_at or self.clock.now()
        with self.database.transaction() as session:
            session.add(
                RecordRow(
                    id=record_id,
                    form_key=form,
                    form_version=version,
                    data=dumps(data),
                    row_version=1,
                    created_at=at,
                    updated_at=at,
                    created_by="test",
                )
            )
            session.add(self._change(record_id, form, seq))
        return record_id

    def add_many(self, form: str, rows: list[dict[str, Any]]) -> None:
        now = self.clock.now()
        with self.database.transaction() as session:
            for data in rows:
                record_id = f"r{next(self._ids):05d}"
                session.add(
                    RecordRow(
                        id=record_id,
                        form_key=form,
                        form_version=1,
                        data=dumps(data),
                        row_version=1,
                        created_at=now,
                        updated_at=now,
                        created_by="test",
                    )
                )
                session.add(self._change(record_id, form, None))

    def update(self, form: str, record_id: str, data: dict[str, Any]) -> None:
        with self.database.transaction() as session:
            session.execute(
                update(RecordRow)
                .where(RecordRow.id == record_id)
                .values(data=dumps(data), updated_at=self.clock.now())
            )
            session.add(self._change(record_id, form, None))

    def delete(self, form: str, record_id: str) -> None:
        with self.database.transaction() as session:
            session.execute(delete(RecordRow).where(RecordRow.id == record_id))
            session.add(self._change(record_id, form, None))

    def change_only(self, form: str, record_id: str, seq: int) -> None:
        """A change row alone (for a record written earlier), with an explicit sequence number."""
        with self.database.transaction() as session:
            session.add(self._change(record_id, form, seq))

    def _change(self, record_id: str, form: str, seq: int | None) -> ChangeRow:
        change = ChangeRow(entity="record", entity_id=record_id, scope=form, at=self.clock.now())
        if seq is not None:
            change.seq = seq
        return change


@pytest.fixture
def database(tmp_path: Path) -> Iterator[Database]:
    if PG_URL:
        db = Database(PG_URL)
        Base.metadata.drop_all(db.engine)
        with db.engine.begin() as connection:
            connection.execute(text("DROP TABLE IF EXISTS alembic_version"))
    else:
        db = Database("sqlite:///" + str(tmp_path / "t.db"))
    db.migrate()
    yield db
    db.dispose()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(START)


@pytest.fixture
def forms() -> Forms:
    return Forms()


@pytest.fixture
def writer(database: Database, clock: FakeClock) -> Writer:
    return Writer(database, clock)


@pytest.fixture
def mirror(database: Database, forms: Forms, clock: FakeClock) -> Iterator[ReportMirror]:
    report_mirror = ReportMirror(database, forms, clock=clock, gap_grace=timedelta(minutes=10))
    yield report_mirror
    report_mirror.close()


def _report(form: FormSpec, **parts: Any) -> ReportSpec:
    document: dict[str, Any] = {
        "kind": "report",
        "key": "test_report",
        "title": "Test",
        "source": {"form": form.key},
    }
    document.update(parts)
    document.setdefault("measures", [{"name": "rows", "agg": "count"}])
    return compile_report(document, form, 1)


@pytest.fixture
def report() -> Any:
    """``report(form, **parts)``: compile a report over ``form`` from parts of its definition."""
    return _report
