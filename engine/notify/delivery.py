"""``deliver_due``: claim due outbox rows, send each, record the outcome.

No database transaction stays open while a message is sent. A round is:

1. **Claim** (one short transaction): select the due rows — ``pending`` and
   ``next_attempt_at`` null or past — oldest first, ``FOR UPDATE SKIP LOCKED`` on PostgreSQL
   (SQLite's ``BEGIN IMMEDIATE`` lets one writer in at a time), and set their
   ``next_attempt_at`` to ``now + lease``. Until the lease runs out no other worker sees them.
2. **Send** each, outside any transaction, while the lease still covers the longest a send may
   take; rows the lease no longer covers are handed back untouched.
3. **Record** each outcome in its own short transaction, *only if the row still carries our
   lease* (``status = 'pending' AND next_attempt_at = <our lease>``). If our lease expired and
   another worker claimed the row, its lease differs and our write changes nothing.

A crash between 2 and 3 leaves the row pending; it is sent again when the lease runs out.
Delivery is therefore at least once, and every attempt carries the row's dedup key.
"""
from __future__ import annotations

import logging
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import or_, select, update

from engine.clock import Clock
from engine.errors import EngineError
from engine.jsoncodec import dumps, loads
from engine.notify.dispatcher import Dispatcher
from engine.notify.errors import (
    DeliveryError,
    NothingToSend,
    PermanentDeliveryError,
    RetryableDeliveryError,
)
from engine.notify.message import OutboxMessage
from engine.notify.settings import OutboxSettings
from engine.store.database import Database
from engine.store.models import OutboxRow

if TYPE_CHECKING:
    from engine.config import Settings

log = logging.getLogger("engine.notify")

PENDING, DELIVERED, DEAD = "pending", "delivered", "dead"


@dataclass(frozen=True)
class DeliveryStats:
    """What one :func:`deliver_due` round did."""

    claimed: int = 0
    delivered: int = 0
    """Accepted by the receiver."""
    skipped: int = 0
    """Marked delivered with nothing to send (no subscriber); ``last_error`` holds the note."""
    retrying: int = 0
    """Failed, scheduled for another attempt."""
    dead: int = 0
    released: int = 0
    """Claimed but not sent: the lease no longer covered a send; due again at once."""
    lost: int = 0
    """Sent, but the lease had passed to another worker; the outcome was not recorded."""


def deliver_due(db: Database, clock: Clock, settings: Settings | OutboxSettings, *, limit: int = 100,
                dispatcher: Dispatcher | None = None, draw: Callable[[], float] = random.random,
                on_outcome: Callable[[str, str], None] | None = None) -> DeliveryStats:
    """Send up to ``limit`` due messages once each; see the module docstring for the protocol.

    ``dispatcher`` defaults to one built from ``settings`` (URLs checked, raising
    :class:`NotifyConfigError`); ``draw`` gives the jitter in [0, 1); ``on_outcome(channel,
    outcome)`` hears of every attempt (``delivered``, ``skipped``, ``retrying``, ``dead``), for
    metrics.
    """
    outbox = settings if isinstance(settings, OutboxSettings) else settings.outbox
    dispatcher = dispatcher or Dispatcher.from_settings(outbox, clock)
    now = clock.now()
    lease = now + max(outbox.lease, dispatcher.send_budget + timedelta(seconds=1))
    claimed = _claim(db, now, lease, limit)
    counts = {"delivered": 0, "skipped": 0, "retrying": 0, "dead": 0, "released": 0, "lost": 0}
    for message, previous in claimed:
        if clock.now() + dispatcher.send_budget > lease:
            counts["released"] += _write(db, message.id, lease, {"next_attempt_at": previous})
            continue
        kind, values = _attempt(dispatcher, message, clock, outbox, draw)
        if on_outcome is not None:
            on_outcome(message.channel, kind)
        if _write(db, message.id, lease, values):
            counts[kind] += 1
        else:
            counts["lost"] += 1
            log.warning("outbox message %s: lease lost before its outcome (%s) was recorded", message.id, kind)
    return DeliveryStats(claimed=len(claimed), **counts)


def backoff_delay(attempt: int, base: timedelta, cap: timedelta, draw: float) -> timedelta:
    """The wait after failed attempt number ``attempt`` (1, 2, ...): ``base · 2^(attempt-1)``,
    at most ``cap``, less up to half of it at random (``draw`` in [0, 1)) so that messages
    that failed together do not all come back together.

    >>> backoff_delay(3, timedelta(seconds=30), timedelta(hours=1), 0.0)
    datetime.timedelta(seconds=120)
    """
    doublings: int = min(max(attempt, 1) - 1, 32)
    full: timedelta = min(cap, base * (1 << doublings))
    factor: float = 1.0 - min(max(draw, 0.0), 1.0) / 2
    return full * factor


def error_note(error: EngineError) -> str:
    """How a failure is stored in ``last_error``: ``{"code", "params"}`` as JSON, rendered in
    the reader's language when listed."""
    return dumps({"code": error.code, "params": dict(error.params)})


def _claim(db: Database, now: datetime, lease: datetime, limit: int) -> list[tuple[OutboxMessage, datetime | None]]:
    with db.transaction() as session:
        rows = session.scalars(
            select(OutboxRow)
            .where(OutboxRow.status == PENDING,
                   or_(OutboxRow.next_attempt_at.is_(None), OutboxRow.next_attempt_at <= now))
            .order_by(OutboxRow.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        ).all()
        claimed = []
        for row in rows:
            claimed.append((_message(row), row.next_attempt_at))
            row.next_attempt_at = lease
        return claimed


def _message(row: OutboxRow) -> OutboxMessage:
    try:
        payload = loads(row.payload)
    except EngineError:
        payload = None
    return OutboxMessage(id=row.id, topic=row.topic, dedup_key=row.dedup_key, channel=row.channel,
                         recipient=row.recipient, body=row.payload.encode("utf-8"),
                         payload=payload if isinstance(payload, dict) else {}, attempts=row.attempts,
                         created_at=row.created_at)


def _attempt(dispatcher: Dispatcher, message: OutboxMessage, clock: Clock, settings: OutboxSettings,
             draw: Callable[[], float]) -> tuple[str, dict[str, Any]]:
    """Send once; the outcome's name and the column values that record it."""
    attempts = message.attempts + 1
    try:
        if not message.payload:
            raise PermanentDeliveryError("outbox.bad_payload", params={"reason": "not a JSON object"})
        dispatcher.send(message)
    except NothingToSend as note:
        return "skipped", {"status": DELIVERED, "delivered_at": clock.now(), "next_attempt_at": None,
                           "last_error": error_note(note)}
    except DeliveryError as exc:
        error = exc
    except Exception as exc:  # noqa: BLE001 - a channel bug must not stall the row forever
        log.exception("outbox message %s: channel %s failed unexpectedly", message.id, message.channel)
        error = RetryableDeliveryError("outbox.unexpected", params={"type": type(exc).__name__})
    else:
        return "delivered", {"status": DELIVERED, "attempts": attempts, "delivered_at": clock.now(),
                             "next_attempt_at": None, "last_error": None}
    if isinstance(error, RetryableDeliveryError) and attempts < settings.max_attempts:
        delay = backoff_delay(attempts, settings.backoff_base, settings.backoff_cap, draw())
        if error.retry_after is not None:
            delay = max(delay, min(error.retry_after, settings.backoff_cap))
        return "retrying", {"attempts": attempts, "next_attempt_at": clock.now() + delay,
                            "last_error": error_note(error)}
    return "dead", {"status": DEAD, "attempts": attempts, "next_attempt_at": None, "last_error": error_note(error)}


def _write(db: Database, message_id: int, lease: datetime, values: dict[str, Any]) -> int:
    """Apply ``values`` if the row still carries our lease; 1 if it did, else 0."""
    with db.transaction() as session:
        result = session.execute(
            update(OutboxRow)
            .where(OutboxRow.id == message_id, OutboxRow.status == PENDING, OutboxRow.next_attempt_at == lease)
            .values(**values)
            .execution_options(synchronize_session=False)
        )
        return 1 if getattr(result, "rowcount", 0) == 1 else 0


__all__ = ["DEAD", "DELIVERED", "PENDING", "DeliveryStats", "backoff_delay", "deliver_due", "error_note"]
