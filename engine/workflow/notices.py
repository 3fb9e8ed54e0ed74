"""Notifications a process declares (``notify``), turned into outbox rows in the transaction of
the step that caused them. Delivery is the outbox worker's business (:mod:`engine.notify`).

Templates were checked at upload: only ``{name}`` placeholders of known names or record
fields, no format specs, so rendering cannot run code or allocate without bound."""
from __future__ import annotations

import hashlib
import re
from datetime import datetime
from decimal import Decimal
from typing import Any, Iterable, Mapping

from sqlalchemy import event
from sqlalchemy.orm import Session

from engine.jsoncodec import dumps
from engine.store.models import InstanceRow, OutboxRow, TaskRow
from engine.workflow.spec import Notification, ProcessSpec, Recipient, StateSpec, text_in

LANGUAGES = ("zh-CN", "en")
SENSITIVE_TEXT = "[sensitive]"
"""What a notification text shows for a sensitive field (one the roles definitions declare)."""

DEFAULT_NOTICES = {
    "remind": Notification("remind", Recipient("assignees"), "log", {
        "en": "Reminder: {process} - {state} is waiting for you (due {due_at}).",
        "zh-CN": "催办提醒：{process} - {state} 待您处理（到期时间 {due_at}）。"}),
    "escalate": Notification("escalate", Recipient("assignees"), "log", {
        "en": "Escalation: {process} - {state} is overdue (due {due_at}).",
        "zh-CN": "超时升级：{process} - {state} 已超时（到期时间 {due_at}）。"}),
    "overdue": Notification("overdue", Recipient("assignees"), "log", {
        "en": "Overdue: {process} - {state} was due {due_at}.",
        "zh-CN": "已超时：{process} - {state} 应于 {due_at} 前处理。"}),
    "urge": Notification("urge", Recipient("assignees"), "log", {
        "en": "Please handle {process} - {state}: the applicant is waiting.",
        "zh-CN": "催办：{process} - {state}，申请人正在等待处理。"}),
    "cc": Notification("cc", Recipient("assignees"), "log", {
        "en": "For your information: {process} - {state}.",
        "zh-CN": "抄送：{process} - {state}。"}),
}
"""What reminders, escalations, urges and copies say when the process declares nothing."""

WITHHELD = "withheld"
"""Outbox status of a notification recorded but never sent: one caused by an import (history
loaded into the engine is no news to tell people about), unless the import asks to notify."""


def withhold(session: Session) -> None:
    """From now on, store the notifications (not the feed's events) added to ``session`` as
    :data:`WITHHELD` instead of pending (marked as each flush writes them)."""

    def mark(flushing: Session, _context: Any, _instances: Any) -> None:
        for item in flushing.new:
            if isinstance(item, OutboxRow) and item.channel not in (None, "event") and item.status == "pending":
                item.status = WITHHELD

    event.listen(session, "before_flush", mark)


_PLACEHOLDER = re.compile(r"\{\{|\}\}|\{([A-Za-z_][A-Za-z0-9_]*)\}")


def render(template: str, values: Mapping[str, Any]) -> str:
    def substitute(match: re.Match[str]) -> str:
        token = match.group(0)
        if token == "{{":
            return "{"
        if token == "}}":
            return "}"
        return _text(values.get(match.group(1)))

    return _PLACEHOLDER.sub(substitute, template)


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, (dict, list)):
        return ""
    return str(value)[:500]


def task_recipient(task: TaskRow) -> str:
    if task.assignee_user:
        return f"user:{task.assignee_user}"
    if task.claimed_by:
        return f"user:{task.claimed_by}"
    if task.scope_attribute:
        return f"role:{task.assignee_role}@{task.scope_attribute}={task.scope_value}"
    return f"role:{task.assignee_role}"


class Notices:
    """Writes the notifications of one operation."""

    def __init__(self, session: Session, spec: ProcessSpec, now: datetime) -> None:
        self.session = session
        self.spec = spec
        self.now = now

    def declares(self, on: str, state: StateSpec | None) -> bool:
        """Whether :meth:`emit` for ``on`` at ``state`` would write anything at all (a
        declaration or a default notice): callers skip working out an occasion otherwise."""
        return (on in DEFAULT_NOTICES or any(n.on == on for n in self.spec.notify)
                or (state is not None and any(n.on == on for n in state.notify)))

    def emit(self, on: str, instance: InstanceRow, state: StateSpec | None, data: Mapping[str, Any], *,
             occasion: str, tasks: Iterable[TaskRow] = (), values: Mapping[str, Any] | None = None,
             recipients: Iterable[Recipient] | None = None) -> int:
        """Write a row per recipient of every notification declared for ``on`` at process level
        and on ``state``. ``occasion`` makes the dedup key of this emission unique and stable.
        Returns how many rows were written."""
        declared = [n for n in self.spec.notify if n.on == on]
        if state is not None:
            declared += [n for n in state.notify if n.on == on]
        if not declared and on in DEFAULT_NOTICES:
            declared = [DEFAULT_NOTICES[on]]
        written = 0
        task_list = list(tasks)
        for index, notification in enumerate(declared):
            targets = list(recipients) if recipients is not None and notification.to.kind == "assignees" else [notification.to]
            for recipient in targets:
                for address in self._addresses(recipient, instance, task_list, data):
                    self._write(notification, instance, state, data, address, f"{occasion}:{index}", values or {})
                    written += 1
        return written

    def _addresses(self, recipient: Recipient, instance: InstanceRow, tasks: list[TaskRow],
                   data: Mapping[str, Any]) -> list[str]:
        if recipient.kind == "applicant":
            return [f"user:{instance.started_by}"]
        if recipient.kind == "assignees":
            return sorted({task_recipient(task) for task in tasks})
        if recipient.kind == "role":
            return [f"role:{recipient.value}"]
        if recipient.kind == "user":
            return [f"user:{recipient.value}"]
        if recipient.kind == "field" and recipient.value:
            if recipient.value in getattr(data, "sensitive", ()):  # sensitive by the roles: never in plaintext
                return []
            value = data.get(recipient.value)
            return [f"address:{_text(value)}"] if value not in (None, "") and not isinstance(value, (dict, list)) else []
        return []

    def _write(self, notification: Notification, instance: InstanceRow, state: StateSpec | None,
               data: Mapping[str, Any], address: str, occasion: str, values: Mapping[str, Any]) -> None:
        texts = {}
        hidden = getattr(data, "sensitive", frozenset())  # engine.security.vault.OpenedData
        fields = {key: SENSITIVE_TEXT if key in hidden else value
                  for key, value in data.items() if not isinstance(value, (dict, list))}
        for language in LANGUAGES:
            template = notification.template.get(language) or next(iter(notification.template.values()))
            scope = dict(fields)
            scope.update({
                "process": text_in(self.spec.title, language),
                "state": state.title_in(language) if state is not None else "",
                "instance": instance.id, "record": instance.record_id,
            })
            scope.update({key: _localized(value, language) for key, value in values.items()})
            texts[language] = render(template, scope)
        digest = hashlib.sha256(f"{occasion}:{address}".encode()).hexdigest()[:40]
        payload = {
            "instance": instance.id, "process": self.spec.key, "record": instance.record_id,
            "state": state.name if state is not None else None, "event": notification.on, "text": texts,
        }
        self.session.add(OutboxRow(
            topic=f"notify.{notification.on}", channel=notification.channel, recipient=address[:255],
            dedup_key=f"notify:{instance.id}:{digest}", payload=dumps(payload), status="pending", attempts=0, created_at=self.now,
        ))


def _localized(value: Any, language: str) -> Any:
    if isinstance(value, Mapping):
        return text_in(value, language)
    return value
