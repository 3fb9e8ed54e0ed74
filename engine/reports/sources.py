"""Report sources beyond a form's records: process instances and tasks.

Both are mirrored into fixed DuckDB tables (one for every process), fed by the same change
sequence as the records: the workflow runtime appends an ``instance`` or ``task`` change in the
transaction that writes the row. A report over them names the columns below; ``record.<field>``
reaches the fields of the instance's record (the process's form).
"""

from __future__ import annotations

from engine.reports._columns import MirrorColumn, quote

INSTANCE_ENTITY = "instance"
TASK_ENTITY = "task"
INSTANCES_TABLE = quote("_instances")
TASKS_TABLE = quote("_tasks")

INSTANCE_COLUMNS: tuple[MirrorColumn, ...] = (
    MirrorColumn("_id", "string"),
    MirrorColumn("process", "string"),
    MirrorColumn("process_version", "integer"),
    MirrorColumn("record_id", "string"),
    MirrorColumn("state", "string"),
    MirrorColumn("status", "string"),
    MirrorColumn("outcome", "string"),
    MirrorColumn("started_by", "string"),
    MirrorColumn("started_at", "datetime"),
    MirrorColumn("ended_at", "datetime"),
)
"""``state`` is the current state (the last one for an ended instance); ``status`` is
``active``, ``completed``, ``cancelled`` or ``withdrawn``; ``outcome`` the end state's outcome."""

TASK_COLUMNS: tuple[MirrorColumn, ...] = (
    MirrorColumn("_id", "string"),
    MirrorColumn("process", "string"),
    MirrorColumn("process_version", "integer"),
    MirrorColumn("instance_id", "string"),
    MirrorColumn("record_id", "string"),
    MirrorColumn("state", "string"),
    MirrorColumn("entry", "integer"),
    MirrorColumn("status", "string"),
    MirrorColumn("assignee", "string"),
    MirrorColumn("assignee_role", "string"),
    MirrorColumn("assignee_user", "string"),
    MirrorColumn("claimed_by", "string"),
    MirrorColumn("acted_by", "string"),
    MirrorColumn("action", "string"),
    MirrorColumn("origin", "string"),
    MirrorColumn("created_at", "datetime"),
    MirrorColumn("completed_at", "datetime"),
    MirrorColumn("due_at", "datetime"),
)
"""``assignee`` is who did or holds the task: the actor once acted, else the claimer, else the
assigned user (NULL for an unclaimed role task)."""

TASK_VIRTUAL: tuple[MirrorColumn, ...] = (MirrorColumn("breached", "boolean"),)
"""Computed when the report runs: the task has an SLA due time and was completed after it, or
is still open after it (at the query's clock time)."""

SOURCE_COLUMNS: dict[str, tuple[MirrorColumn, ...]] = {
    "instances": INSTANCE_COLUMNS,
    "tasks": TASK_COLUMNS + TASK_VIRTUAL,
}
TAGS_ENTITY = "tags"
TAGS_TABLE = quote("_record_tags")
TAGS_VIA = "_tags"
"""``_tags.<tag>``: a boolean pseudo field, true for a record that carries the tag now
(engine.insight keeps ``record_tags`` and appends a ``tags`` change whenever a record's tags
change; the mirror follows it into ``_record_tags``). For a process source, the tags of the
instance's record."""
RECORD_VIA = "record"
"""The pseudo reference of a process source: ``record.<field>`` is a field of the instance's
record."""

__all__ = [
    "INSTANCES_TABLE",
    "INSTANCE_COLUMNS",
    "INSTANCE_ENTITY",
    "RECORD_VIA",
    "SOURCE_COLUMNS",
    "TAGS_ENTITY",
    "TAGS_TABLE",
    "TAGS_VIA",
    "TASKS_TABLE",
    "TASK_COLUMNS",
    "TASK_ENTITY",
    "TASK_VIRTUAL",
]
