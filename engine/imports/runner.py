"""Running an import: each row of a file becomes one submission to the mapping's form.

Rows are independent: a row whose cells do not convert, whose lookup finds nothing or whose
submission fails validation is reported in `ImportReport.rejected` with its issues, and the
import goes on. Each accepted row is one `ImportTarget.submit` call, so one transaction.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final, Protocol

from engine.imports._pointer import pointer
from engine.imports.convert import BadCell, convert_cell
from engine.imports.mapping import (
    ColumnField,
    ConstantField,
    ImportMapping,
    LookupField,
    MappingError,
    MappingIssue,
)
from engine.imports.reader import SourceRow, read_header, read_rows

__all__ = [
    "BAD_ROW",
    "BAD_VALUE",
    "IMPORT_ERROR",
    "REF_NOT_FOUND",
    "ImportIssue",
    "ImportReport",
    "ImportTarget",
    "RejectedRow",
    "run_import",
]

BAD_VALUE: Final = "import.bad_value"
"""A cell cannot be converted to the field's type (or is not in the field's `map`)."""
REF_NOT_FOUND: Final = "import.ref_not_found"
REF_AMBIGUOUS: Final = "import.ref_ambiguous"
AMBIGUOUS: Final = "\x00ambiguous"
"""What `ImportTarget.find_record_id` returns when several records match: a lookup must name
exactly one record, never silently the first of several."""
"""A lookup cell names no record of the looked-up form."""
BAD_ROW: Final = "import.bad_row"
"""The record has more cells than the header."""
IMPORT_ERROR: Final = "import.error"
"""The submission failed for a reason other than validation."""

_NO_PARAMS: Final[Mapping[str, Any]] = MappingProxyType({})


class ImportTarget(Protocol):
    """Where imported rows go: the engine, or an in-memory fake in tests."""

    def submit(self, form_key: str, data: dict[str, Any]) -> dict[str, Any]:
        """Validate and store one record; return it (with "id").

        Raises an exception with an `issues` attribute (objects with `path`, `code` and
        `message`) when the data is invalid.
        """
        ...

    def find_record_id(self, form_key: str, field: str, value: Any) -> str | None:
        """The id of a record of `form_key` whose `field` equals `value`, or None."""
        ...


@dataclass(frozen=True, slots=True)
class ImportIssue:
    """Why a row was rejected."""

    path: str
    """JSON pointer into the submitted record ('/employees'), or '' for the whole row."""
    code: str
    message: str
    params: Mapping[str, Any] = field(default_factory=lambda: _NO_PARAMS)
    """Values the message was made from, for rendering it in another language."""


@dataclass(frozen=True, slots=True)
class RejectedRow:
    """A row that was not imported, with every issue found in it."""

    row_number: int
    """1 for the first data record after the header."""
    issues: list[ImportIssue]


@dataclass(frozen=True, slots=True)
class ImportReport:
    """The outcome of one import: `imported + len(rejected) + already_present == total`."""

    form: str
    total: int = 0
    """Rows read, not counting skipped empty rows."""
    imported: int = 0
    rejected: list[RejectedRow] = field(default_factory=list)
    skipped: int = 0
    """Rows skipped because every cell was empty (with `skip_empty`)."""
    already_present: int = 0
    """Rows not imported because a record with their `key` value exists (counted in `total`)."""


def run_import(target: ImportTarget, mapping: ImportMapping, path: Path,
               progress: Callable[[int], None] | None = None) -> ImportReport:
    """Submit every row of the file at `path` to `mapping.form` through `target`.

    `progress`, if given, is called after each row with the number of rows handled so far.
    Raises `MappingError` (nothing imported) if the file lacks a column the mapping reads,
    and `SourceError` if the file cannot be read; a read error part-way leaves the rows before
    it imported.
    """
    _check_columns(mapping, read_header(path, mapping.source))
    resolver = _LookupCache(target, mapping.form)
    total = imported = skipped = present = 0
    rejected: list[RejectedRow] = []
    for row in read_rows(path, mapping.source):
        if mapping.skip_empty and row.surplus == 0 and not any(
                cell.strip() for cell in row.cells.values()):
            skipped += 1
            continue
        total += 1
        issues = _import_row(target, mapping, resolver, row)
        if issues is None:
            present += 1
        elif issues:
            rejected.append(RejectedRow(row.row_number, issues))
        else:
            imported += 1
        if progress is not None:
            progress(total)
    return ImportReport(form=mapping.form, total=total, imported=imported, rejected=rejected,
                        skipped=skipped, already_present=present)


def _import_row(target: ImportTarget, mapping: ImportMapping, resolver: _LookupCache,
                row: SourceRow) -> list[ImportIssue] | None:
    """The row's issues ([] when imported), or None when its key is already present."""
    if row.surplus:
        return [ImportIssue("", BAD_ROW, f"the record has {row.surplus} more cell(s) than the "
                                         "header", MappingProxyType({"surplus": row.surplus}))]
    data, issues = _build_record(mapping, resolver, row.cells)
    if issues:
        return issues
    if mapping.key is not None and data.get(mapping.key) is not None \
            and target.find_record_id(mapping.form, mapping.key, data[mapping.key]) is not None:
        return None
    try:
        target.submit(mapping.form, data)
    except Exception as exc:  # noqa: BLE001 - one bad row must not stop the import
        found = getattr(exc, "issues", None)
        if found is None:
            return [ImportIssue("", IMPORT_ERROR, f"{type(exc).__name__}: {exc}")]
        return [_issue_from(item) for item in _as_list(found)] or [
            ImportIssue("", IMPORT_ERROR, f"{type(exc).__name__}: {exc}")]
    return []


def _build_record(mapping: ImportMapping, resolver: _LookupCache,
                  cells: Mapping[str, str]) -> tuple[dict[str, Any], list[ImportIssue]]:
    """The record a row submits, and the issues that stop it from being submitted."""
    data: dict[str, Any] = {}
    issues: list[ImportIssue] = []
    for spec in mapping.fields:
        path = pointer(spec.target)
        if isinstance(spec, ConstantField):
            # A copy, so that a target which changes the data cannot change the next row.
            data[spec.target] = copy.deepcopy(spec.value)
            continue
        text = cells[spec.column].strip()
        empty = text.casefold() in mapping.null_values or text.casefold() in spec.null_values
        if isinstance(spec, LookupField):
            if empty:
                continue
            record_id = resolver.find(spec, text)
            if record_id is AMBIGUOUS:
                issues.append(ImportIssue(
                    path, REF_AMBIGUOUS,
                    f"several {spec.form} records have this {spec.field} (column '{spec.column}')",
                    MappingProxyType({"form": spec.form, "field": spec.field, "column": spec.column})))
            elif record_id is None:
                issues.append(ImportIssue(
                    path, REF_NOT_FOUND,
                    f"no {spec.form} record has this {spec.field} (column '{spec.column}')",
                    MappingProxyType({"form": spec.form, "field": spec.field,
                                      "column": spec.column})))
            else:
                data[spec.target] = record_id
            continue
        try:
            value, present = _column_value(spec, text, empty)
        except BadCell as exc:
            issues.append(ImportIssue(
                path, BAD_VALUE,
                f"column '{spec.column}' is not a valid {exc.expected}",
                MappingProxyType({"column": spec.column, "expected": exc.expected})))
            continue
        if present:
            data[spec.target] = value
    return data, issues


def _column_value(spec: ColumnField, text: str, empty: bool) -> tuple[Any, bool]:
    """(value, present) for one cell; an empty cell without a default leaves the field out."""
    if empty:
        return copy.deepcopy(spec.default), spec.has_default
    if spec.value_map is not None:
        if text in spec.value_map:
            return copy.deepcopy(spec.value_map[text]), True
        if spec.has_default:
            return copy.deepcopy(spec.default), True
        raise BadCell("value of the mapping's 'map'")
    return convert_cell(text, spec), True


class _LookupCache:
    """Lookups by (form, field, cell), each asked of the target once per import.

    Misses are remembered too, except for lookups into the form being imported: a later row
    may create the record an earlier row looked for.
    """

    def __init__(self, target: ImportTarget, importing_form: str) -> None:
        self._target = target
        self._importing_form = importing_form
        self._found: dict[tuple[str, str, str], str | None] = {}

    def find(self, spec: LookupField, text: str) -> str | None:
        key = (spec.form, spec.field, text)
        if key in self._found:
            return self._found[key]
        record_id = self._target.find_record_id(spec.form, spec.field, text)
        if record_id is not None or spec.form != self._importing_form:
            self._found[key] = record_id
        return record_id


def _check_columns(mapping: ImportMapping, header: Iterable[str]) -> None:
    present = set(header)
    issues = []
    for spec in mapping.fields:
        if isinstance(spec, (ColumnField, LookupField)) and spec.column not in present:
            where = "/lookup/column" if isinstance(spec, LookupField) else "/column"
            issues.append(MappingIssue(
                pointer("fields", spec.target) + where,
                "import.missing_column", f"the file has no column '{spec.column}'"))
    if issues:
        raise MappingError(issues)


def _as_list(items: Any) -> list[Any]:
    if isinstance(items, (str, bytes)) or not isinstance(items, Iterable):
        return [items]
    return list(items)


def _issue_from(item: Any) -> ImportIssue:
    """An `ImportIssue` from an engine issue object (or a `{path, code, message}` dict)."""
    def attribute(name: str) -> Any:
        return item.get(name) if isinstance(item, Mapping) else getattr(item, name, None)

    code = attribute("code")
    message = attribute("message")
    if callable(message):
        # The engine's issues render their message on demand, in a language (default English).
        message = message()
    params = attribute("params")
    return ImportIssue(
        path=str(attribute("path") or ""),
        code=str(code) if code else IMPORT_ERROR,
        message=str(message) if message is not None else str(code or item),
        params=MappingProxyType(dict(params)) if isinstance(params, Mapping) else _NO_PARAMS,
    )
