"""Import mappings: load a mapping file, check it, compile it into a frozen `ImportMapping`.

A mapping says how each row of a tabular file becomes one submission to a form. It is checked
against `metadata/import-mapping.schema.json` first and then for meaning (date formats, the
target form); every problem is collected and raised once as a `MappingError`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from functools import cache
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final, TypeAlias

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

from engine.imports._pointer import pointer

__all__ = [
    "CellType",
    "ColumnField",
    "ConstantField",
    "FieldMapping",
    "ImportMapping",
    "LookupField",
    "MappingError",
    "MappingIssue",
    "SourceOptions",
    "check_mapping_fields",
    "compile_mapping",
    "load_mapping",
]

SCHEMA_FILE: Final = "import-mapping.schema.json"

DEFAULT_TRUE: Final = frozenset({"true", "yes", "y", "1"})
DEFAULT_FALSE: Final = frozenset({"false", "no", "n", "0"})


class CellType(StrEnum):
    """How a cell's text is converted before it is submitted."""

    STRING = "string"
    INTEGER = "integer"
    DECIMAL = "decimal"
    BOOLEAN = "boolean"
    DATE = "date"
    JSON = "json"
    """Any JSON value: a CSV cell is parsed as JSON (exact decimals), a JSON Lines value is taken as is."""


@dataclass(frozen=True, slots=True)
class MappingIssue:
    """One problem in a mapping file, pointing into it."""

    path: str
    """JSON pointer into the mapping document ('' is the whole document)."""
    code: str
    """Stable code such as `import.mapping.required`."""
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"path": self.path, "code": self.code, "message": self.message}


class MappingError(ValueError):
    """The mapping file is not a valid mapping; `issues` lists every problem found."""

    def __init__(self, issues: Iterable[MappingIssue]) -> None:
        self.issues: tuple[MappingIssue, ...] = tuple(issues)
        summary = "; ".join(f"{i.path or '/'}: {i.message}" for i in self.issues[:5])
        super().__init__(f"invalid import mapping ({len(self.issues)} issue(s)): {summary}")

    @property
    def errors(self) -> list[dict[str, str]]:
        """The issues as `{path, code, message}` dicts, ready for an API body."""
        return [issue.as_dict() for issue in self.issues]


@dataclass(frozen=True, slots=True)
class SourceOptions:
    """How to read the file."""

    format: str = "csv"
    """'csv' (a header record, then one record per row) or 'jsonl' (one JSON object per line)."""
    encoding: str = "utf-8"
    delimiter: str = ","
    quotechar: str = '"'


@dataclass(frozen=True, slots=True)
class ColumnField:
    """Fill `target` from one column of the file."""

    target: str
    column: str
    type: CellType = CellType.STRING
    date_format: str = "iso"
    """'iso', 'sas' (days since 1960-01-01) or a strptime pattern; only for `type` date."""
    true_values: frozenset[str] = DEFAULT_TRUE
    """Case-folded cell values meaning true."""
    false_values: frozenset[str] = DEFAULT_FALSE
    value_map: Mapping[str, Any] | None = None
    """Exact (trimmed) cell value -> stored value; replaces `type` conversion when present."""
    has_default: bool = False
    default: Any = None
    null_values: frozenset[str] = frozenset()
    """Case-folded cell values meaning 'no value' (the empty string always does)."""


@dataclass(frozen=True, slots=True)
class ConstantField:
    """Fill `target` with the same value in every row."""

    target: str
    value: Any


@dataclass(frozen=True, slots=True)
class LookupField:
    """Fill `target` with the id of the `form` record whose `field` equals the cell of `column`."""

    target: str
    form: str
    field: str
    column: str
    null_values: frozenset[str] = frozenset()


FieldMapping: TypeAlias = ColumnField | ConstantField | LookupField


@dataclass(frozen=True, slots=True)
class ImportMapping:
    """A compiled mapping: everything `run_import` needs, checked and frozen."""

    form: str
    """Key of the form rows are submitted to."""
    fields: tuple[FieldMapping, ...]
    source: SourceOptions = field(default_factory=SourceOptions)
    description: str = ""
    null_values: frozenset[str] = frozenset({""})
    """Case-folded cell values meaning 'no value' in every column."""
    skip_empty: bool = True
    key: str | None = None
    """A field identifying a row's record; rows whose key already exists are skipped."""

    @property
    def columns(self) -> tuple[str, ...]:
        """The file columns the mapping reads, in field order, without repeats."""
        seen: dict[str, None] = {}
        for spec in self.fields:
            if isinstance(spec, (ColumnField, LookupField)):
                seen.setdefault(spec.column, None)
        return tuple(seen)


def load_mapping(path: Path, *, form: str | None = None) -> ImportMapping:
    """Read, check and compile the mapping file at `path`.

    If `form` is given, the mapping must target that form. Numbers in the file are read
    exactly (`Decimal` for fractions). Raises `MappingError` listing every problem, including
    an unreadable file or invalid JSON.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise MappingError([MappingIssue("", "import.mapping.unreadable", str(exc))]) from exc
    try:
        document = json.loads(text, parse_float=Decimal, parse_constant=_reject_constant)
    except ValueError as exc:
        raise MappingError([MappingIssue("", "import.mapping.invalid_json", str(exc))]) from exc
    return compile_mapping(document, form=form)


def compile_mapping(document: Any, *, form: str | None = None) -> ImportMapping:
    """Check a parsed mapping document and compile it; raises `MappingError`."""
    issues = _without_echoes([_schema_issue(e) for e in _validator().iter_errors(document)])
    if issues:
        raise MappingError(sorted(issues, key=lambda issue: issue.path))
    if form is not None and document["form"] != form:
        issues.append(MappingIssue(
            "/form", "import.mapping.form_mismatch",
            f"the mapping is for form '{document['form']}', not '{form}'"))
    fields: list[FieldMapping] = []
    for target, spec in document["fields"].items():
        compiled = _compile_field(target, spec, issues)
        if compiled is not None:
            fields.append(compiled)
    if "key" in document and document["key"] not in document["fields"]:
        issues.append(MappingIssue("/key", "import.mapping.unknown_key",
                                   f"the key {document['key']!r} is not one of the mapped fields"))
    if issues:
        raise MappingError(issues)
    source = document["source"]
    return ImportMapping(
        form=document["form"],
        fields=tuple(fields),
        source=SourceOptions(
            format=source["format"],
            encoding=source.get("encoding", "utf-8"),
            delimiter=source.get("delimiter", ","),
            quotechar=source.get("quotechar", '"'),
        ),
        description=document.get("description", ""),
        key=document.get("key"),
        null_values=frozenset({""}) | _folded(document.get("null_values", ())),
        skip_empty=document.get("skip_empty", True),
    )


def check_mapping_fields(mapping: ImportMapping, form_fields: Iterable[str]) -> None:
    """Raise `MappingError` if the mapping fills a field the target form does not declare.

    The runner cannot know the form's fields; a caller holding the form spec should call this
    before `run_import`, so an author's typo fails once instead of once per row.
    """
    known = set(form_fields)
    issues = [
        MappingIssue(pointer("fields", spec.target), "import.mapping.unknown_field",
                     f"form '{mapping.form}' has no field '{spec.target}'")
        for spec in mapping.fields if spec.target not in known
    ]
    if issues:
        raise MappingError(issues)


def _compile_field(target: str, spec: Mapping[str, Any],
                   issues: list[MappingIssue]) -> FieldMapping | None:
    at = pointer("fields", target)
    if "value" in spec:
        return ConstantField(target=target, value=spec["value"])
    null_values = _folded(spec.get("null_values", ()))
    if "lookup" in spec:
        lookup = spec["lookup"]
        return LookupField(target=target, form=lookup["form"], field=lookup["field"],
                           column=lookup["column"], null_values=null_values)
    cell_type = CellType(spec.get("type", CellType.STRING))
    date_format = spec.get("date_format", "iso")
    if cell_type is CellType.DATE and date_format not in ("iso", "sas") and (
            not _is_strptime_pattern(date_format)):
        issues.append(MappingIssue(
            f"{at}/date_format", "import.mapping.bad_date_format",
            "date_format must be 'iso', 'sas' or a strptime pattern with %Y, %m and %d"))
        return None
    true_values = _folded(spec["true"]) if "true" in spec else DEFAULT_TRUE
    false_values = _folded(spec["false"]) if "false" in spec else DEFAULT_FALSE
    if true_values & false_values:
        issues.append(MappingIssue(
            at, "import.mapping.ambiguous_boolean",
            "a cell value cannot mean both true and false"))
        return None
    value_map = spec.get("map")
    return ColumnField(
        target=target,
        column=spec["column"],
        type=cell_type,
        date_format=date_format,
        true_values=true_values,
        false_values=false_values,
        value_map=MappingProxyType(dict(value_map)) if value_map is not None else None,
        has_default="default" in spec,
        default=spec.get("default"),
        null_values=null_values,
    )


_DIRECTIVE = re.compile(r"%(.)")


def _is_strptime_pattern(pattern: str) -> bool:
    # A date needs a year, a month (number or name) and a day; anything finer is not a date.
    directives = set(_DIRECTIVE.findall(pattern))
    return ({"Y", "y"} & directives != set() and {"m", "b", "B"} & directives != set()
            and "d" in directives and not directives & {"H", "I", "M", "S", "f", "p", "z", "Z"})


def _folded(values: Iterable[str]) -> frozenset[str]:
    return frozenset(value.strip().casefold() for value in values)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number")


def _schema_issue(error: ValidationError) -> MappingIssue:
    path = pointer(*(str(part) for part in error.absolute_path))
    keyword = str(error.validator)
    if keyword == "oneOf":
        message = "give exactly one of 'column', 'value' or 'lookup'"
    else:
        message = error.message
    return MappingIssue(path, f"import.mapping.{_snake(keyword)}", message)


def _without_echoes(issues: list[MappingIssue]) -> list[MappingIssue]:
    # A field with two sources also breaks the shape of each; once "give exactly one" is said,
    # the other messages about that field are noise.
    ambiguous = {issue.path for issue in issues if issue.code == "import.mapping.one_of"}
    return [issue for issue in issues if issue.code == "import.mapping.one_of" or not any(
        issue.path == path or issue.path.startswith(path + "/") for path in ambiguous)]


def _snake(keyword: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", keyword).lower()


def _schema_path() -> Path:
    # engine/metadata/ is what an installed package carries (package data); in a checkout it
    # points at the repository's metadata/ folder, which is also tried directly.
    here = Path(__file__).resolve()
    candidates = (here.parents[1] / "metadata" / SCHEMA_FILE,
                  here.parents[2] / "metadata" / SCHEMA_FILE)
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"{SCHEMA_FILE} not found in {[str(c) for c in candidates]}")


@cache
def _validator() -> Draft202012Validator:
    schema = json.loads(_schema_path().read_text(encoding="utf-8"))
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)
