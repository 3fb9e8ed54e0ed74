"""The compiled insight definitions: profiles (360 views and their aggregates), tags, triggers."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Mapping

from engine.rules import CompiledRule

Aggregation = Literal["count", "sum", "avg", "min", "max"]
TriggerEvent = Literal["record.created", "record.updated", "instance.completed"]


@dataclass(frozen=True, slots=True)
class AggregateSpec:
    """A named figure over the records of ``form`` whose ``via`` field points at the profile's record."""

    name: str
    form: str
    via: str
    agg: Aggregation
    field: str | None = None
    """The related form's field (None for ``count``)."""
    where: CompiledRule | None = None
    within_field: str | None = None
    """A date or date-time field that must lie within ``within_days`` before now."""
    within_days: int | None = None
    include_children: bool = True
    title: Any = None


@dataclass(frozen=True, slots=True)
class ProfileSpec:
    key: str
    version: int
    title: Any
    form: str
    children: str | None
    """The form's reference field to its parent record (same form), or None."""
    aggregates: tuple[AggregateSpec, ...] = ()


@dataclass(frozen=True, slots=True)
class TagSpec:
    key: str
    version: int
    title: Any
    profile: str
    form: str
    rule: CompiledRule
    reads_aggregates: bool


@dataclass(frozen=True, slots=True)
class TriggerSpec:
    key: str
    version: int
    title: Any
    on: TriggerEvent
    form: str
    """The form of the record the trigger looks at (for instance events: the process's form)."""
    process: str | None
    when: CompiledRule | None
    start: str | None
    update_ref: str | None = None
    update_form: str | None = None
    update_set: Mapping[str, Any] = field(default_factory=dict)


__all__ = ["AggregateSpec", "Aggregation", "ProfileSpec", "TagSpec", "TriggerEvent", "TriggerSpec"]
