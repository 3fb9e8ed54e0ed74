"""``OutboxMessage``: one outbox row as the channels see it."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Mapping


@dataclass(frozen=True)
class OutboxMessage:
    id: int
    topic: str
    dedup_key: str
    """Sent with every attempt (``X-Lowcode-Delivery``) so receivers can drop duplicates."""
    channel: str
    """``event`` for integration events; ``log``, ``sms``, ``app`` or ``webhook`` for
    notifications."""
    recipient: str | None
    """``user:<id>``, ``role:<name>[@<attr>=<value>]`` or ``address:<value>``."""
    body: bytes
    """The stored payload, byte for byte (exact decimals, identical on every attempt)."""
    payload: Mapping[str, Any]
    """The same payload, parsed (decimals as ``Decimal``)."""
    attempts: int
    """Attempts made before this one."""
    created_at: datetime


__all__ = ["OutboxMessage"]
