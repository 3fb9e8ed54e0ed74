"""The compiled, immutable process. One spec serves every instance started on its version;
runtime state lives in the store."""
from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Mapping

from engine.rules import CompiledRule


class StateType(StrEnum):
    TASK = "task"
    """One human task for one assignee."""
    COUNTERSIGN = "countersign"
    """One task per assignee, each signed by a different person. An action with quorum ``all``
    takes effect once every signer chose it; one with quorum ``one`` decides at once and
    cancels the other signatures."""
    AUTO = "auto"
    """Decided by rules alone, no human."""
    END = "end"
    """Finished, with an outcome."""


class InstanceStatus(StrEnum):
    ACTIVE = "active"
    COMPLETED = "completed"


class TaskStatus(StrEnum):
    OPEN = "open"
    COMPLETED = "completed"
    CANCELLED = "cancelled"
    """Closed without an action of its own (a sibling decided the countersign)."""


@dataclass(frozen=True)
class Transition:
    to: str
    when: CompiledRule | None
    """None is the default: it always holds."""


@dataclass(frozen=True)
class Assignee:
    role: str | None = None
    field: str | None = None
    """A record field holding the user id to assign."""


@dataclass(frozen=True)
class ActionSpec:
    name: str
    title: Any
    transitions: tuple[Transition, ...]
    quorum: str = "one"
    """In a countersign: ``all`` signers must choose this action, or ``one`` suffices."""


@dataclass(frozen=True)
class StateSpec:
    name: str
    type: StateType
    title: Any
    assignees: tuple[Assignee, ...] = ()
    actions: Mapping[str, ActionSpec] | None = None
    transitions: tuple[Transition, ...] = ()
    outcome: str | None = None

    @property
    def is_human(self) -> bool:
        return self.type in (StateType.TASK, StateType.COUNTERSIGN)


@dataclass(frozen=True, eq=False)
class ProcessSpec:
    key: str
    version: int
    title: Any
    form: str
    start: str
    states: Mapping[str, StateSpec]
