"""The compiled, immutable form: what the submission pipeline and the report mirror use."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Mapping

from engine.rules import CompiledRule

ColumnType = Literal["string", "integer", "decimal", "number", "boolean", "date", "datetime", "json"]


@dataclass(frozen=True)
class ColumnSpec:
    """A top-level property of a form as a typed column (for reports and lookups)."""

    name: str
    type: ColumnType
    scale: int | None = None
    """Fraction digits of a ``decimal`` column."""
    title: Any = None


@dataclass(frozen=True)
class ComputedField:
    name: str
    rule: CompiledRule
    rounding: str
    scale: int | None
    """Fraction digits the result is rounded to; 0 for integer fields, None to keep as is."""


@dataclass(frozen=True)
class CrossFieldRule:
    code: str
    path: str
    rule: CompiledRule
    messages: Mapping[str, str]


@dataclass(frozen=True)
class FieldCondition:
    """When a top-level field is shown and when it must be filled."""

    field: str
    visible_when: CompiledRule | None = None
    """None: always visible. A hidden field is cleared before computing and validating."""
    required_when: CompiledRule | None = None
    """None: required only if the schema says so."""


@dataclass(frozen=True)
class DecimalField:
    """A number field that must be an exact decimal with at most ``scale`` fraction digits."""

    pointer_parts: tuple[str, ...]
    """Property names from the root; ``*`` stands for every item of an array."""
    scale: int


@dataclass(frozen=True, eq=False)
class FormSpec:
    key: str
    version: int
    title: Any
    schema: Mapping[str, Any]
    validator: Any
    """A jsonschema-rs validator built offline (no remote or file refs)."""
    columns: tuple[ColumnSpec, ...]
    computed: tuple[ComputedField, ...]
    rules: tuple[CrossFieldRule, ...]
    refs: Mapping[str, str]
    """Field name -> key of the form whose record id it holds."""
    decimals: tuple[DecimalField, ...]
    process: str | None
    ui: Mapping[str, Any] = field(default_factory=dict)
    conditions: tuple[FieldCondition, ...] = ()
    description: Any = None
    ref_fills: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    """Reference field -> {this form's field: the referenced record's field} copied at creation
    (engine.forms.fills)."""
    sensitive: tuple[tuple[str, ...], ...] = ()
    """Paths (property names; ``*`` for every array item) of the fields marked ``"sensitive":
    true``: sealed at rest (engine.security.crypto), every read of one audited."""

    def column(self, name: str) -> ColumnSpec | None:
        for column in self.columns:
            if column.name == name:
                return column
        return None
