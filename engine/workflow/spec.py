"""The compiled, immutable process. One spec serves every instance started on its version;
runtime state lives in the store."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from enum import StrEnum
from typing import Any, Mapping

from engine.rules import CompiledRule


class StateType(StrEnum):
    TASK = "task"
    """One human task (for a person, or for a role whose holders may claim it)."""
    COUNTERSIGN = "countersign"
    """One task per signer, each signed by a different person; each action has a quorum."""
    AUTO = "auto"
    """Decided by rules alone, no human."""
    PARALLEL = "parallel"
    """Splits into branches that run at once and meet again at the join."""
    END = "end"
    """Finished, with an outcome."""


class InstanceStatus(StrEnum):
    ACTIVE = "active"
    COMPLETED = "completed"
    WITHDRAWN = "withdrawn"
    """The applicant took the request back before anyone decided on it."""
    CANCELLED = "cancelled"
    """Stopped by staff (cancel case)."""


class TaskStatus(StrEnum):
    OPEN = "open"
    WAITING = "waiting"
    """Created by "add approver" and opened once the task it waits for is done (or, for the
    task that makes room for an approver added before it, once that approver is done)."""
    COMPLETED = "completed"
    CANCELLED = "cancelled"
    """Closed without an action of its own: a sibling decided, a branch lost, the case ended."""


class TimerKind(StrEnum):
    REMIND = "remind"
    ESCALATE = "escalate"
    TIMEOUT = "timeout"
    DUE = "due"
    """Marks the SLA breach (the task is overdue) and announces it."""


@dataclass(frozen=True)
class Quorum:
    """How many signers of a countersign must choose an action for it to decide: ``all``,
    ``one``, at least ``minimum`` people, or at least ``percent`` % of the signers."""

    mode: str
    value: int = 0

    def needed(self, signers: int) -> int:
        if self.mode == "all":
            return signers
        if self.mode == "one":
            return 1
        if self.mode == "min":
            return max(1, min(self.value, signers))
        return max(1, -(-signers * self.value // 100))  # ceiling of a percentage, in integers

    def describe(self) -> Any:
        return self.mode if self.mode in ("all", "one") else {self.mode if self.mode == "min" else "percent": self.value}


@dataclass(frozen=True)
class Transition:
    to: str
    when: CompiledRule | None
    """None is the default: it always holds."""
    index: int = 0


@dataclass(frozen=True)
class Scope:
    """A role means "of this ...": the task goes to holders of the role whose principal
    attribute ``attribute`` equals the record's ``field``."""

    attribute: str
    field: str


@dataclass(frozen=True)
class Assignee:
    role: str | None = None
    field: str | None = None
    """A record field holding a user id, or a list of user ids (one task each)."""
    rule: CompiledRule | None = None
    """A rule answering a user id or a list of user ids."""
    user: str | None = None
    scope: Scope | None = None


@dataclass(frozen=True)
class ActionSpec:
    name: str
    title: Any
    transitions: tuple[Transition, ...]
    quorum: Quorum = Quorum("one")
    comment_required: bool = False


@dataclass(frozen=True)
class Recipient:
    """Whom a notification goes to."""

    kind: str
    """``applicant``, ``assignees``, ``role``, ``user`` or ``field``."""
    value: str | None = None


@dataclass(frozen=True)
class Notification:
    on: str
    """``enter``, ``leave``, ``remind``, ``escalate``, ``overdue``, ``urge``, ``cc``."""
    to: Recipient
    channel: str
    template: Mapping[str, str]
    """Text per language with ``{name}`` placeholders."""


@dataclass(frozen=True)
class Step:
    """A remind or escalate step of an SLA."""

    after: timedelta
    business: bool
    every: timedelta | None = None
    """Reminders only: repeat at this interval while the task stays open."""
    do: str = "notify"
    """Escalations: ``notify``, ``reassign`` or ``add_approver``."""
    role: str | None = None
    user: str | None = None
    to: Recipient | None = None


@dataclass(frozen=True)
class Sla:
    due: timedelta
    business: bool
    remind: tuple[Step, ...] = ()
    escalate: tuple[Step, ...] = ()
    timeout_after: timedelta | None = None
    timeout_action: str | None = None


@dataclass(frozen=True)
class Branch:
    start: str
    when: CompiledRule | None = None


@dataclass(frozen=True)
class StateSpec:
    name: str
    type: StateType
    title: Any
    assignees: tuple[Assignee, ...] = ()
    actions: Mapping[str, ActionSpec] | None = None
    transitions: tuple[Transition, ...] = ()
    outcome: str | None = None
    sla: Sla | None = None
    notify: tuple[Notification, ...] = ()
    branches: tuple[Branch, ...] = ()
    join: str | None = None
    four_eyes: bool = True
    """Whether the applicant is barred from acting on this state's tasks."""
    join_policy: str = "all"
    """``all``: wait for every branch that started (structured synchronizing merge);
    ``first``: the first branch to arrive continues and the others are cancelled."""

    @property
    def is_human(self) -> bool:
        return self.type in (StateType.TASK, StateType.COUNTERSIGN)

    def title_in(self, language: str) -> str:
        return text_in(self.title, language)


@dataclass(frozen=True)
class Tracking:
    """What the applicant sees on the timeline."""

    show_comments: bool = False
    show_staff: bool = False


@dataclass(frozen=True, eq=False)
class ProcessSpec:
    key: str
    version: int
    title: Any
    form: str
    start: str
    states: Mapping[str, StateSpec]
    notify: tuple[Notification, ...] = ()
    calendar: Any = None
    """The business calendar for SLAs counted in business hours (``engine.calendars``)."""
    max_send_backs: int = 3
    tracking: Tracking = Tracking()
    staff_roles: frozenset[str] = field(default_factory=frozenset)
    """Every role named by an assignment or an escalation: its holders see the full history."""

    branch_members: Mapping[str, str] = field(default_factory=dict)
    """State name -> the parallel state whose branches contain it (worked out at compile)."""


def text_in(text: Any, language: str) -> str:
    """A localized text in ``language`` (falling back to English, then any)."""
    if isinstance(text, str):
        return text
    if isinstance(text, Mapping):
        for candidate in (language, "en", "zh-CN"):
            if candidate in text:
                return str(text[candidate])
        return str(next(iter(text.values()), ""))
    return ""
