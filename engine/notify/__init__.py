"""Notifications and integration events: the outbox, its channels and the delivery worker.

Rows are written by the workflow engine in the transaction of the change they announce;
:func:`deliver_due` sends them later, at least once, through the :class:`Dispatcher`.
"""
from __future__ import annotations

from engine.notify.channels import (
    AdapterChannel,
    Channel,
    EventWebhookChannel,
    LogChannel,
    MemoryChannel,
    Subscription,
)
from engine.notify.deadletters import list_dead_letters, retry_dead_letter
from engine.notify.delivery import DeliveryStats, backoff_delay, deliver_due
from engine.notify.dispatcher import Dispatcher
from engine.notify.errors import (
    DeliveryError,
    NothingToSend,
    NotifyConfigError,
    OutboundRefused,
    PermanentDeliveryError,
    RetryableDeliveryError,
)
from engine.notify.message import OutboxMessage
from engine.notify.outbound import Endpoint, OutboundPolicy
from engine.notify.settings import OutboxSettings
from engine.notify.signing import sign, verify_signature
from engine.notify.transport import OutboundHttp

__all__ = [
    "AdapterChannel",
    "Channel",
    "DeliveryError",
    "DeliveryStats",
    "Dispatcher",
    "Endpoint",
    "EventWebhookChannel",
    "LogChannel",
    "MemoryChannel",
    "NothingToSend",
    "NotifyConfigError",
    "OutboundHttp",
    "OutboundPolicy",
    "OutboundRefused",
    "OutboxMessage",
    "OutboxSettings",
    "PermanentDeliveryError",
    "RetryableDeliveryError",
    "Subscription",
    "backoff_delay",
    "deliver_due",
    "list_dead_letters",
    "retry_dead_letter",
    "sign",
    "verify_signature",
]
