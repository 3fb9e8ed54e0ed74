"""Running an import: the rows of a file become submissions to the mapping's form, in batches.

The file is streamed: rows are read, converted and submitted `batch_size` at a time, so memory
does not grow with the file (the report keeps at most `keep_rejected` rejected rows; the rejects
file gets all of them). Rows are independent: a row whose cells do not convert, whose lookup finds
nothing or whose submission fails validation is rejected with its issues, and the import goes on.

Where rows go is an `ImportTarget`:

- a *batch* target (`BatchImportTarget`, the engine) opens an `ImportSession` that checks each
  row as a submission would, sees the rows accepted before it, and writes a whole batch at once
  (`flush`); with `all_or_nothing` the session is one transaction, committed only if no row was
  rejected;
- a plain target (`submit` / `find_record_id`, e.g. an in-memory fake) gets one `submit` per row.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from types import MappingProxyType
from typing import IO, Any, Final, NamedTuple, Protocol, Self, runtime_checkable

from engine.imports._pointer import pointer
from engine.imports.convert import BadCell, convert_cell, convert_value, json_text
from engine.imports.mapping import (
    ColumnField,
    ConstantField,
    ImportMapping,
    LookupField,
    MappingError,
    MappingIssue,
)
from engine.imports.reader import SourceError, SourceRow, open_source, read_header

__all__ = [
    "BAD_ROW",
    "BAD_VALUE",
    "DEFAULT_BATCH_SIZE",
    "DEFAULT_KEEP_REJECTED",
    "IMPORT_ERROR",
    "REF_NOT_FOUND",
    "BatchImportTarget",
    "ImportIssue",
    "ImportProgress",
    "ImportReport",
    "ImportSession",
    "ImportTarget",
    "RejectedRow",
    "run_import",
]

BAD_VALUE: Final = "import.bad_value"
"""A cell cannot be converted to the field's type (or is not in the field's `map`)."""
REF_NOT_FOUND: Final = "import.ref_not_found"
"""A lookup cell names no record of the looked-up form."""
REF_AMBIGUOUS: Final = "import.ref_ambiguous"
AMBIGUOUS: Final = "\x00ambiguous"
"""What `ImportTarget.find_record_id` returns when several records match: a lookup must name
exactly one record, never silently the first of several."""
BAD_ROW: Final = "import.bad_row"
"""The record has more cells than the header, or a JSON Lines line is not an object."""
IMPORT_ERROR: Final = "import.error"
"""The submission failed for a reason other than validation."""

DEFAULT_BATCH_SIZE: Final = 1000
DEFAULT_KEEP_REJECTED: Final = 10_000

_NO_PARAMS: Final[Mapping[str, Any]] = MappingProxyType({})
_IMMUTABLE: Final = (str, int, float, bool, Decimal, type(None))


class ImportTarget(Protocol):
    """Where imported rows go one by one: an in-memory fake in tests, or any simple sink."""

    def submit(self, form_key: str, data: dict[str, Any]) -> dict[str, Any]:
        """Validate and store one record; return it (with "id").

        Raises an exception with an `issues` attribute (objects with `path`, `code` and
        `message`) when the data is invalid.
        """
        ...

    def find_record_id(self, form_key: str, field: str, value: Any) -> str | None:
        """The id of a record of `form_key` whose `field` equals `value`, None, or `AMBIGUOUS`."""
        ...


class ImportSession(Protocol):
    """One import's view of the store (see `engine.forms.bulk.BulkSession`)."""

    def prefetch(self, lookups: Mapping[tuple[str, str], Iterable[Any]],
                 records: Iterable[Mapping[str, Any]]) -> None:
        """Hint: the lookups and records the next `add` calls of this batch will need."""
        ...

    def find_ids(self, form: str, field: str, value: Any) -> Sequence[str]:
        """Up to two ids of records whose `field` is `value`, counting rows accepted before."""
        ...

    def add(self, data: dict[str, Any]) -> tuple[Any, Sequence[Any]]:
        """Check one record and keep it for `flush`: (id, []) or (None, issues)."""
        ...

    def flush(self) -> Any:
        """Store what was added since the last flush. Returns the rows that failed after all
        (position among the accepted ones, reason), or an object with `earlier` (failures of a
        batch written in the background, None if none), `current` (this batch's failures, None
        while it is written in the background) and `redo` (this batch was dropped: add it
        again), like `engine.forms.bulk.Flushed`."""
        ...

    def drain(self) -> Sequence[tuple[int, BaseException]] | None:
        """Wait for a batch written in the background: its failures (None: there was none)."""
        ...

    def finish(self, commit: bool) -> None:
        """All or nothing: commit, or roll back, everything flushed."""
        ...


@runtime_checkable
class BatchImportTarget(Protocol):
    """A target that takes rows in batches, in transactions (the engine)."""

    def open_session(self, form_key: str, *, all_or_nothing: bool) -> AbstractContextManager[ImportSession]:
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

    def as_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"path": self.path, "code": self.code, "message": self.message}
        if self.params:
            body["params"] = dict(self.params)
        return body


@dataclass(frozen=True, slots=True)
class RejectedRow:
    """A row that was not imported, with every issue found in it."""

    row_number: int
    """1 for the first data record after the header (CSV); the line number (JSON Lines)."""
    issues: list[ImportIssue]


@dataclass(frozen=True, slots=True)
class ImportReport:
    """The outcome of one import:
    `imported + withheld + rejected_count + already_present == total`."""

    form: str
    total: int = 0
    """Rows read, not counting skipped empty rows."""
    imported: int = 0
    """Rows stored (committed)."""
    rejected: list[RejectedRow] = field(default_factory=list)
    """The first `keep_rejected` rejected rows (the rejects file has every one)."""
    skipped: int = 0
    """Rows skipped because every cell was empty (with `skip_empty`)."""
    already_present: int = 0
    """Rows not imported because a record with their `key` value exists (counted in `total`)."""
    rejected_count: int = -1
    """Every rejected row (defaults to `len(rejected)`)."""
    withheld: int = 0
    """All or nothing: rows that passed but were not stored because another row was rejected."""
    all_or_nothing: bool = False

    def __post_init__(self) -> None:
        if self.rejected_count < 0:
            object.__setattr__(self, "rejected_count", len(self.rejected))

    @property
    def committed(self) -> bool:
        """False when an all-or-nothing import stored nothing because of rejected rows."""
        return not (self.all_or_nothing and self.rejected_count)


class ImportProgress(NamedTuple):
    """Where an import is: rows handled, and bytes of the file read out of its size."""

    rows: int
    position: int
    size: int


def run_import(target: ImportTarget | BatchImportTarget, mapping: ImportMapping, path: Path,
               progress: Callable[[ImportProgress], None] | None = None, *,
               rejects: Path | IO[str] | None = None, all_or_nothing: bool = False,
               batch_size: int = DEFAULT_BATCH_SIZE,
               keep_rejected: int = DEFAULT_KEEP_REJECTED) -> ImportReport:
    """Submit every row of the file at `path` to `mapping.form` through `target`.

    `progress`, if given, is called after each batch. `rejects` (a path or an open text file)
    receives one JSON line per rejected row: `{"row", "raw", "issues": [{path, code, message}]}`.
    `all_or_nothing` stores the rows only if none is rejected (a batch target is needed).

    Raises `MappingError` (nothing imported) if a CSV file lacks a column the mapping reads, and
    `SourceError` if the file cannot be read; a read error part-way leaves the batches before it
    imported (none, all or nothing).
    """
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    header = read_header(path, mapping.source)
    if mapping.source.format != "jsonl":
        _check_columns(mapping, header)
    fillers = _compile_fields(mapping)
    counts = _Counts()
    kept: list[RejectedRow] = []
    with open_source(path, mapping.source) as source, _open_session(target, mapping.form, all_or_nothing) as session, \
            _RejectsSink(rejects) as sink:
        rows = iter(source)
        failure: SourceError | None = None
        inflight: _Checked | None = None

        def settle(batch: _Checked, failures: Iterable[tuple[int, BaseException]] | None) -> None:
            outcomes = batch.outcomes
            for position, exc in failures or ():
                outcomes[batch.accepted[position]] = _exception_issues(exc)
            for row, issues in zip(batch.rows, outcomes, strict=True):
                counts.total += 1
                if issues is None:
                    counts.present += 1
                elif issues:
                    counts.rejected += 1
                    if len(kept) < keep_rejected:
                        kept.append(RejectedRow(row.row_number, issues))
                    sink.write(row, issues)
                else:
                    counts.imported += 1
            if progress is not None:
                progress(ImportProgress(counts.total, source.position, source.size))

        while failure is None:
            chunk: list[SourceRow] = []
            try:
                for row in rows:
                    if mapping.skip_empty and row.problem is None and row.surplus == 0 and _all_empty(row.cells):
                        counts.skipped += 1
                        continue
                    chunk.append(row)
                    if len(chunk) >= batch_size:
                        break
            except SourceError as exc:
                failure = exc
            if not chunk and failure is None:
                break
            while True:
                checked = _check_batch(session, mapping, fillers, chunk)
                earlier, current, redo = _flushed(session.flush())
                if inflight is not None and earlier is not None:
                    settle(inflight, earlier)
                    inflight = None
                if not redo:
                    break
            if current is None:
                inflight = checked
            else:
                settle(checked, current)
        if inflight is not None:
            settle(inflight, session.drain())
        if failure is not None:
            raise failure
        commit = counts.rejected == 0 or not all_or_nothing
        session.finish(commit)
    withheld = 0
    if not commit:
        withheld, counts.imported = counts.imported, 0
    return ImportReport(form=mapping.form, total=counts.total, imported=counts.imported, rejected=kept,
                        skipped=counts.skipped, already_present=counts.present, rejected_count=counts.rejected,
                        withheld=withheld, all_or_nothing=all_or_nothing)


@dataclass
class _Counts:
    total: int = 0
    imported: int = 0
    rejected: int = 0
    present: int = 0
    skipped: int = 0


def _all_empty(cells: Mapping[str, Any]) -> bool:
    for cell in cells.values():
        if cell is None:
            continue
        if cell.__class__ is not str or cell.strip():
            return False
    return True


# -- one batch -----------------------------------------------------------------------------------


class _Lookup(NamedTuple):
    position: int
    """Position of the field in the mapping (issues are reported in field order)."""
    spec: LookupField
    value: Any


_PENDING: Final = object()
"""Placeholder for a lookup's id until it is resolved (keeps the field's place in the record)."""


@dataclass
class _Checked:
    """A batch whose rows were checked and added: each row's issues ([] when accepted, None when
    its key is already present), and the positions of the accepted rows, in the order added."""

    rows: Sequence[SourceRow]
    outcomes: list[list[ImportIssue] | None]
    accepted: list[int]


def _flushed(result: Any) -> tuple[Any, Any, bool]:
    """(earlier, current, redo) from what `ImportSession.flush` returned."""
    if isinstance(result, (list, tuple)) and not hasattr(result, "current"):
        return None, result, False
    return result.earlier, result.current, bool(result.redo)


def _check_batch(session: ImportSession, mapping: ImportMapping, fillers: Sequence[_Filler],
                 chunk: Sequence[SourceRow]) -> _Checked:
    """Convert, resolve and add every row of the chunk (the session writes them at `flush`)."""
    converted: list[tuple[dict[str, Any], list[tuple[int, ImportIssue]], list[_Lookup]] | list[ImportIssue]] = []
    lookups: dict[tuple[str, str], list[Any]] = {}
    keys: list[Any] = []
    key = mapping.key
    for row in chunk:
        if row.problem is not None:
            problem = row.problem
            converted.append([ImportIssue("", problem.code, problem.message,
                                          MappingProxyType(dict(problem.params)) if problem.params else _NO_PARAMS)])
            continue
        if row.surplus:
            converted.append([ImportIssue("", BAD_ROW, f"the record has {row.surplus} more cell(s) than the "
                                                       "header", MappingProxyType({"surplus": row.surplus}))])
            continue
        data: dict[str, Any] = {}
        issues: list[tuple[int, ImportIssue]] = []
        pending: list[_Lookup] = []
        cells = row.cells
        for index, fill in enumerate(fillers):
            found = fill(cells, data)
            if found is not None:
                if found.__class__ is ImportIssue:
                    issues.append((index, found))
                else:
                    pending.append(_Lookup(index, found[0], found[1]))
                    lookups.setdefault((found[0].form, found[0].field), []).append(found[1])
        if key is not None and not issues:
            value = data.get(key)
            if value is not None and value is not _PENDING:
                keys.append(value)
        converted.append((data, issues, pending))
    if key is not None and keys:
        lookups.setdefault((mapping.form, key), []).extend(keys)
    session.prefetch(lookups, [item[0] for item in converted if isinstance(item, tuple) and not item[1]])

    outcomes: list[list[ImportIssue] | None] = []
    accepted: list[int] = []
    for item in converted:
        if isinstance(item, list):
            outcomes.append(item)
            continue
        data, issues, pending = item
        for lookup in pending:
            found_issue = _resolve(session, lookup, data)
            if found_issue is not None:
                issues.append((lookup.position, found_issue))
        if issues:
            issues.sort(key=lambda pair: pair[0])
            outcomes.append([issue for _, issue in issues])
            continue
        if key is not None and data.get(key) is not None and session.find_ids(mapping.form, key, data[key]):
            outcomes.append(None)
            continue
        try:
            _, problems = session.add(data)
        except Exception as exc:  # noqa: BLE001 - one bad row must not stop the import
            outcomes.append(_exception_issues(exc))
            continue
        if problems:
            outcomes.append([_issue_from(problem) for problem in problems])
        else:
            accepted.append(len(outcomes))
            outcomes.append([])
    return _Checked(chunk, outcomes, accepted)


def _resolve(session: ImportSession, lookup: _Lookup, data: dict[str, Any]) -> ImportIssue | None:
    spec = lookup.spec
    ids = session.find_ids(spec.form, spec.field, lookup.value)
    if len(ids) == 1:
        data[spec.target] = ids[0]
        return None
    del data[spec.target]
    params = MappingProxyType({"form": spec.form, "field": spec.field, "column": spec.column})
    if ids:
        return ImportIssue(pointer(spec.target), REF_AMBIGUOUS,
                           f"several {spec.form} records have this {spec.field} (column '{spec.column}')", params)
    return ImportIssue(pointer(spec.target), REF_NOT_FOUND,
                       f"no {spec.form} record has this {spec.field} (column '{spec.column}')", params)


# -- cells to values -----------------------------------------------------------------------------

_Filler = Callable[[Mapping[str, Any], dict[str, Any]], Any]
"""Fills one field of the record from a row's cells; returns None, an `ImportIssue`, or
(LookupField, value) for a lookup still to resolve."""


def _compile_fields(mapping: ImportMapping) -> list[_Filler]:
    jsonl = mapping.source.format == "jsonl"
    return [_filler(spec, mapping.null_values, jsonl) for spec in mapping.fields]


def _copier(value: Any) -> Callable[[], Any]:
    # A copy, so that a target which changes the data cannot change the next row.
    if isinstance(value, _IMMUTABLE):
        return lambda: value
    return lambda: copy.deepcopy(value)


def _filler(spec: ColumnField | ConstantField | LookupField, mapping_nulls: frozenset[str],
            jsonl: bool = False) -> _Filler:
    target = spec.target
    if isinstance(spec, ConstantField):
        constant = _copier(spec.value)

        def fill_constant(cells: Mapping[str, Any], data: dict[str, Any]) -> Any:
            data[target] = constant()
            return None

        return fill_constant

    nulls = mapping_nulls | spec.null_values
    column = spec.column
    path = pointer(target)

    def bad(expected: str) -> ImportIssue:
        return ImportIssue(path, BAD_VALUE, f"column '{column}' is not a valid {expected}",
                           MappingProxyType({"column": column, "expected": expected}))

    if isinstance(spec, LookupField):
        def fill_lookup(cells: Mapping[str, Any], data: dict[str, Any]) -> Any:
            raw = cells.get(column)
            if raw is None:
                return None
            if raw.__class__ is str:
                raw = raw.strip()
                if raw.casefold() in nulls:
                    return None
            elif isinstance(raw, (dict, list)):
                return bad("lookup value (a string or a number)")
            data[target] = _PENDING
            return (spec, raw)

        return fill_lookup

    has_default = spec.has_default
    default = _copier(spec.default)
    value_map = spec.value_map
    mapped = {key: _copier(value) for key, value in value_map.items()} if value_map is not None else None
    convert = _text_converter(spec, jsonl)

    def fill_text(cells: Mapping[str, Any], data: dict[str, Any]) -> Any:
        # The common case, kept short: a text column whose only null value is the empty cell.
        raw = cells.get(column)
        if raw.__class__ is str:
            text = raw.strip()
            if text:
                data[target] = text
            elif has_default:
                data[target] = default()
            return None
        return fill_column(cells, data)

    def fill_column(cells: Mapping[str, Any], data: dict[str, Any]) -> Any:
        raw = cells.get(column)
        if raw.__class__ is str:
            text = raw.strip()
            empty = text.casefold() in nulls
        elif raw is None:
            text, empty = "", True
        else:
            text, empty = "", False
        if empty:
            if has_default:
                data[target] = default()
            return None
        try:
            if mapped is not None:
                if raw.__class__ is not str:
                    if isinstance(raw, (dict, list)):
                        raise BadCell("value of the mapping's 'map'")
                    text = json_text(raw)
                if text in mapped:
                    data[target] = mapped[text]()
                elif has_default:
                    data[target] = default()
                else:
                    raise BadCell("value of the mapping's 'map'")
            elif raw.__class__ is str:
                data[target] = convert(text)
            else:
                data[target] = convert_value(raw, spec)
        except BadCell as exc:
            return bad(exc.expected)
        return None

    if nulls == frozenset({""}) and mapped is None and spec.type == "string":
        return fill_text
    return fill_column


def _text_converter(spec: ColumnField, jsonl: bool) -> Callable[[str], Any]:
    if spec.type == "string" or (jsonl and spec.type == "json"):
        return lambda text: text  # a JSON Lines string for a json field is that string
    return lambda text: convert_cell(text, spec)


# -- sessions --------------------------------------------------------------------------------------


@contextmanager
def _open_session(target: ImportTarget | BatchImportTarget, form: str,
                  all_or_nothing: bool) -> Iterator[ImportSession]:
    if isinstance(target, BatchImportTarget):
        with target.open_session(form, all_or_nothing=all_or_nothing) as session:
            yield session
        return
    if all_or_nothing:
        raise ValueError("all_or_nothing needs a target that writes in transactions (open_session)")
    yield _OneByOne(target, form)


class _OneByOne:
    """An `ImportSession` over a plain target: each row is one `submit`. Lookups are asked once
    per value for the whole import; a miss into the form being imported is asked again (a later
    row may create the record)."""

    def __init__(self, target: ImportTarget, form: str) -> None:
        self._target = target
        self._form = form
        self._found: dict[tuple[str, str, Any], list[str]] = {}

    def prefetch(self, lookups: Mapping[tuple[str, str], Iterable[Any]],
                 records: Iterable[Mapping[str, Any]]) -> None:
        """Nothing: a plain target is asked when a value is needed."""

    def find_ids(self, form: str, field: str, value: Any) -> list[str]:
        key = (form, field, value)
        if key in self._found:
            return self._found[key]
        record_id = self._target.find_record_id(form, field, value)
        ids: list[str] = [] if record_id is None else [record_id, record_id] if record_id == AMBIGUOUS else [record_id]
        if ids or form != self._form:
            self._found[key] = ids
        return ids

    def add(self, data: dict[str, Any]) -> tuple[Any, Sequence[Any]]:
        try:
            record = self._target.submit(self._form, data)
        except Exception as exc:  # noqa: BLE001 - the row's issues, or import.error
            return None, _exception_issues(exc)
        return record.get("id") if isinstance(record, Mapping) else None, []

    def flush(self) -> Sequence[tuple[int, BaseException]]:
        return []

    def drain(self) -> None:
        return None

    def finish(self, commit: bool) -> None:
        """Every row was stored when it was submitted."""


# -- rejects -----------------------------------------------------------------------------------------


class _RejectsSink:
    """Writes rejected rows as JSON lines: `{"row": N, "raw": ..., "issues": [...]}`."""

    def __init__(self, rejects: Path | IO[str] | None) -> None:
        self._target = rejects
        self._handle: IO[str] | None = None
        self._owned = False

    def __enter__(self) -> Self:
        if isinstance(self._target, (str, Path)):
            try:
                self._handle = Path(self._target).open("w", encoding="utf-8", newline="\n")
            except OSError as exc:
                raise SourceError(f"cannot write the rejects file {self._target}: {exc}") from exc
            self._owned = True
        elif self._target is not None:
            self._handle = self._target
        return self

    def write(self, row: SourceRow, issues: Sequence[ImportIssue]) -> None:
        if self._handle is None:
            return
        from engine.jsoncodec import dumps

        line: dict[str, Any] = {"row": row.row_number, "raw": row.raw if row.problem is not None else row.cells}
        if row.extra:
            line["extra_cells"] = list(row.extra)
        line["issues"] = [issue.as_dict() for issue in issues]
        self._handle.write(dumps(line) + "\n")

    def __exit__(self, *exc: object) -> None:
        if self._owned and self._handle is not None:
            self._handle.close()


# -- helpers -------------------------------------------------------------------------------------------


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


def _exception_issues(exc: BaseException) -> list[ImportIssue]:
    found = getattr(exc, "issues", None)
    if found is None:
        return [ImportIssue("", IMPORT_ERROR, f"{type(exc).__name__}: {exc}")]
    return [_issue_from(item) for item in _as_list(found)] or [
        ImportIssue("", IMPORT_ERROR, f"{type(exc).__name__}: {exc}")]


def _as_list(items: Any) -> list[Any]:
    if isinstance(items, (str, bytes)) or not isinstance(items, Iterable):
        return [items]
    return list(items)


def _issue_from(item: Any) -> ImportIssue:
    """An `ImportIssue` from an engine issue object (or a `{path, code, message}` dict)."""
    if isinstance(item, ImportIssue):
        return item

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
