"""Helpers for outbox tests: an engine whose outbox settings a test chooses, and rows written
straight into ``outbox`` as the workflow engine writes them."""
from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import datetime
from typing import Any

from engine import Engine
from engine.jsoncodec import dumps
from engine.notify import Dispatcher, OutboxSettings
from engine.store.models import OutboxRow


def configure(engine: Engine, outbox: OutboxSettings) -> Engine:
    """Give ``engine`` these outbox settings, as if it had started with them."""
    engine.settings = replace(engine.settings, outbox=outbox)
    engine.dispatcher = Dispatcher.from_settings(outbox, engine.clock)
    return engine


def add_message(engine: Engine, *, topic: str = "instance.state_changed", channel: str = "event",
                recipient: str | None = None, payload: Any = None, dedup_key: str | None = None,
                next_attempt_at: datetime | None = None, status: str = "pending", attempts: int = 0) -> int:
    with engine.db.transaction() as session:
        row = OutboxRow(topic=topic, dedup_key=dedup_key or f"{topic}:{uuid.uuid4().hex}",
                        payload=payload if isinstance(payload, str) else dumps(payload or {"instance": "i-1"}),
                        status=status, attempts=attempts, created_at=engine.clock.now(), channel=channel,
                        recipient=recipient, next_attempt_at=next_attempt_at)
        session.add(row)
        session.flush()
        return row.id


def outbox_row(engine: Engine, message_id: int) -> OutboxRow:
    with engine.db.read() as session:
        row = session.get(OutboxRow, message_id)
        assert row is not None
        return row

