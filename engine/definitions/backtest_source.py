"""Where a backtest's history comes from: a CSV / JSON Lines / Parquet file read through an import mapping
(``engine/imports``) with an optional ``outcome`` section, or the stored records of a form with
the route their process instances actually took.

A backtest mapping is an import mapping plus::

    "outcome": {"column": "approve", "values": {"1": "approved", "0": "rejected"},
                "predicts": {"approved": "approved", "underwriting": "rejected"}}

``values`` turns the outcome cell into a label (cells not listed are unknown and not compared);
``predicts`` says which label each route of the candidate predicts (see
:func:`engine.definitions.backtest.run_backtest`). Lookup fields (record ids found through
another form) are not resolved: a backtest writes and reads no records for them.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.definitions.backtest import HistoryRow
from engine.errors import Issue, ValidationFailed
from engine.forms.pipeline import run as run_pipeline
from engine.forms.spec import FormSpec
from engine.imports import (BadCell, ColumnField, ConstantField, ImportMapping, MappingError, SourceError,
                            compile_mapping, convert_cell, convert_value, open_source)
from engine.store.models import InstanceEventRow, InstanceRow, RecordRow
from engine.workflow.spec import ProcessSpec, StateType


@dataclass(frozen=True)
class OutcomeSpec:
    column: str
    values: Mapping[str, str]
    predicts: Mapping[str, str] | None = None


@dataclass(frozen=True)
class BacktestMapping:
    mapping: ImportMapping
    outcome: OutcomeSpec | None


def compile_backtest_mapping(document: Any) -> BacktestMapping:
    """Check a backtest mapping; raises :class:`ValidationFailed` with every issue."""
    if not isinstance(document, dict):
        raise ValidationFailed([Issue("", "request.not_object")])
    body = {key: value for key, value in document.items() if key != "outcome"}
    try:
        mapping = compile_mapping(body)
    except MappingError as exc:
        raise ValidationFailed([Issue(issue.path, "import.bad_mapping", {"detail": issue.message})
                                for issue in exc.issues]) from None
    raw = document.get("outcome")
    if raw is None:
        return BacktestMapping(mapping, None)
    issues: list[Issue] = []
    if not isinstance(raw, dict) or set(raw) - {"column", "values", "predicts"}:
        issues.append(Issue("/outcome", "backtest.bad_outcome", {"detail": "an object with column, values, predicts"}))
    else:
        if not isinstance(raw.get("column"), str) or not raw["column"]:
            issues.append(Issue("/outcome/column", "backtest.bad_outcome", {"detail": "a column name"}))
        for part in ("values", "predicts"):
            value = raw.get(part)
            if (part == "values" or value is not None) and not (
                    isinstance(value, dict) and value and all(isinstance(item, str) for item in value.values())):
                issues.append(Issue(f"/outcome/{part}", "backtest.bad_outcome", {"detail": "an object of labels"}))
    if issues:
        raise ValidationFailed(issues)
    return BacktestMapping(mapping, OutcomeSpec(raw["column"], dict(raw["values"]), raw.get("predicts")))


def read_history(path: Path, mapping: BacktestMapping, form: FormSpec, *, max_rows: int) -> tuple[list[HistoryRow], int]:
    """The rows of ``path`` as ``HistoryRow``s (data run through the form's pipeline) and how
    many of them the form would have refused as they are."""
    import_mapping = mapping.mapping
    if import_mapping.form != form.key:
        raise ValidationFailed([Issue("/form", "import.bad_mapping",
                                      {"detail": f"the mapping is for form {import_mapping.form}, not {form.key}"})])
    parquet = path.suffix.lower() == ".parquet"
    fill = [_filler(spec, import_mapping.null_values, import_mapping.source.format == "jsonl" and not parquet)
            for spec in import_mapping.fields]
    outcome = mapping.outcome
    rows: list[HistoryRow] = []
    with_issues = 0
    try:
        for cells in (_parquet_cells(path) if parquet else _source_cells(path, import_mapping)):
            if cells is None:  # a JSON Lines line that is not an object
                with_issues += 1
                continue
            if len(rows) >= max_rows:
                raise ValidationFailed([Issue("", "backtest.too_many_rows", {"limit": max_rows})])
            data: dict[str, Any] = {}
            filled = [step(cells, data) for step in fill]  # every field, even after a bad cell
            computed = run_pipeline(form, data)
            with_issues += bool(not all(filled) or computed.issues)
            actual = None
            if outcome is not None:
                cell = cells.get(outcome.column)
                actual = outcome.values.get(cell.strip() if isinstance(cell, str) else str(cell))
            rows.append(HistoryRow(computed.data, actual))
    except SourceError as exc:
        raise ValidationFailed([Issue("", "import.bad_source", {"detail": str(exc)})]) from None
    return rows, with_issues


def _source_cells(path: Path, mapping: ImportMapping) -> Iterator[Mapping[str, Any] | None]:
    with open_source(path, mapping.source) as source:
        for row in source:
            yield None if row.problem is not None else row.cells


def _parquet_cells(path: Path) -> Iterator[Mapping[str, Any]]:
    """A Parquet file's rows with each cell as text (a number as its shortest round-trip text,
    a boolean as ``true``/``false``, null as no cell), then converted as CSV cells are. Read by
    DuckDB's built-in Parquet reader on a connection of its own that loads no extension; only
    from the Python API and the command line, never from a request."""
    config = {"autoload_known_extensions": False, "autoinstall_known_extensions": False,
              "allow_community_extensions": False, "allow_unsigned_extensions": False,
              "python_enable_replacements": False, "threads": 1}
    connection = duckdb.connect(":memory:", config=config)
    try:
        result = connection.execute("SELECT * FROM read_parquet($path)", {"path": str(path)})
        names = [column[0] for column in result.description]
        while batch := result.fetchmany(1000):
            for values in batch:
                yield {name: _text(value) for name, value in zip(names, values) if value is not None}
    except duckdb.Error as exc:
        raise SourceError(f"{path.name}: not a readable Parquet file ({type(exc).__name__})") from None
    finally:
        connection.close()


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    return str(value)


def inline_history(rows: Any, form: FormSpec, *, max_rows: int) -> tuple[list[HistoryRow], int]:
    """``rows`` given in a request: a list of ``{"data": {...}, "actual": "label"?}``, each data
    run through the form's pipeline like a file row."""
    if not isinstance(rows, list):
        raise ValidationFailed([Issue("/rows", "backtest.bad_rows", {"detail": "a list of {data, actual}"})])
    if len(rows) > max_rows:
        raise ValidationFailed([Issue("/rows", "backtest.too_many_rows", {"limit": max_rows})])
    issues = [Issue(f"/rows/{index}", "backtest.bad_rows", {"detail": "an object {data, actual} with an object data"})
              for index, row in enumerate(rows)
              if not isinstance(row, dict) or set(row) - {"data", "actual"} or not isinstance(row.get("data"), dict)
              or not isinstance(row.get("actual", ""), (str, type(None)))]
    if issues:
        raise ValidationFailed(issues[:50])
    history: list[HistoryRow] = []
    with_issues = 0
    for row in rows:
        computed = run_pipeline(form, row["data"])
        with_issues += bool(computed.issues)
        history.append(HistoryRow(computed.data, row.get("actual")))
    return history, with_issues


def _filler(spec: Any, nulls: frozenset[str], jsonl: bool) -> Callable[[Mapping[str, Any], dict[str, Any]], bool]:
    """Fill one field from a row's cells as the importer converts it; False when the cell does
    not convert (the field is left out). Lookups fill nothing."""
    if isinstance(spec, ConstantField):
        def constant(cells: Mapping[str, Any], data: dict[str, Any]) -> bool:
            data[spec.target] = spec.value
            return True
        return constant
    if not isinstance(spec, ColumnField):
        return lambda cells, data: True
    field_nulls = nulls | spec.null_values

    def column(cells: Mapping[str, Any], data: dict[str, Any]) -> bool:
        raw = cells.get(spec.column)
        text = raw.strip() if isinstance(raw, str) else None
        if raw is None or (text is not None and text.casefold() in field_nulls):
            if spec.has_default:
                data[spec.target] = spec.default
            return True
        try:
            if spec.value_map is not None:
                key = text if text is not None else str(raw)
                if key not in spec.value_map:
                    if spec.has_default:
                        data[spec.target] = spec.default
                        return True
                    return False
                data[spec.target] = spec.value_map[key]
            elif text is not None:
                data[spec.target] = text if spec.type == "string" else convert_cell(text, spec)
            else:
                data[spec.target] = convert_value(raw, spec)
        except BadCell:
            return False
        return True

    return column


def stored_history(session: Session, form_key: str, process_key: str,
                   process_for: Callable[[str, int], ProcessSpec | None],
                   open_record: Callable[[RecordRow], dict[str, Any]], *, max_rows: int,
                   visible: Callable[[RecordRow], bool] | None = None) -> list[HistoryRow]:
    """The stored records of ``form_key``, each with the route its latest ``process_key``
    instance actually took (the first state it reached that is not ``auto`` in its own version)
    as the actual label; records without an instance have none. ``open_record`` gives a
    record's data as rules see it (as the caller may read it); ``visible`` (default: all) says
    which records are replayed."""
    records = session.execute(select(RecordRow).where(RecordRow.form_key == form_key)
                              .order_by(RecordRow.created_at, RecordRow.id).limit(max_rows + 1)).scalars().all()
    if len(records) > max_rows:
        raise ValidationFailed([Issue("", "backtest.too_many_rows", {"limit": max_rows})])
    instances: dict[str, InstanceRow] = {}
    for instance in session.execute(select(InstanceRow).where(InstanceRow.process_key == process_key)
                                    .order_by(InstanceRow.started_at, InstanceRow.id)).scalars():
        instances[instance.record_id] = instance  # the latest one wins
    wanted = {instance.id for instance in instances.values()}
    events: dict[str, list[str]] = {}
    steps = (select(InstanceEventRow.instance_id, InstanceEventRow.to_state)
             .join(InstanceRow, InstanceRow.id == InstanceEventRow.instance_id)
             .where(InstanceRow.process_key == process_key).order_by(InstanceEventRow.id))
    for instance_id, to_state in session.execute(steps):
        if instance_id in wanted and to_state:
            events.setdefault(instance_id, []).append(to_state)
    rows = []
    for record in records:
        if visible is not None and not visible(record):
            continue
        instance = instances.get(record.id)
        actual = None
        if instance is not None:
            spec = process_for(instance.process_key, instance.process_version)
            reached = events.get(instance.id, []) + [instance.state]
            actual = next((state for state in reached if spec is None or state not in spec.states
                           or spec.states[state].type is not StateType.AUTO), instance.state)
        rows.append(HistoryRow(open_record(record), actual, instance.started_by if instance else record.created_by))
    return rows
