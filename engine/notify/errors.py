"""Why a message was not delivered this time, split by what the worker should do next.

    EngineError
    ├── DeliveryError                 this attempt failed; ``code`` + ``params`` are stored
    │   ├── RetryableDeliveryError        5xx, 408, 429, timeouts, DNS and connection failures
    │   └── PermanentDeliveryError        other 4xx, redirects, unusable recipient or channel
    │       └── OutboundRefused               the URL or its address fails the allow-list
    ├── NothingToSend                 not a failure: no subscriber wants this message
    └── NotifyConfigError             a setting is unusable; raised at start-up
"""
from __future__ import annotations

from datetime import timedelta
from typing import Any, Mapping

from engine.errors import EngineError


class DeliveryError(EngineError):
    """One attempt to send a message failed."""

    status = 502


class RetryableDeliveryError(DeliveryError):
    """The receiver may accept the message later: try again after a back-off."""

    def __init__(self, code: str, *, params: Mapping[str, Any] | None = None,
                 retry_after: timedelta | None = None) -> None:
        super().__init__(code, params=params)
        self.retry_after = retry_after
        """The receiver's own ``Retry-After``, if it sent one (still bounded by the cap)."""


class PermanentDeliveryError(DeliveryError):
    """Sending again will not help until someone changes something: the message goes dead."""


class OutboundRefused(PermanentDeliveryError):
    """The endpoint URL, or an address its host resolves to, is not allowed (SSRF guard)."""


class NothingToSend(EngineError):
    """The message has no receiver (no event webhook subscribes to its topic)."""

    status = 200


class NotifyConfigError(EngineError):
    """An outbox setting cannot be used (bad URL, host not allowed, missing secret)."""

    status = 500


__all__ = ["DeliveryError", "NothingToSend", "NotifyConfigError", "OutboundRefused", "PermanentDeliveryError",
           "RetryableDeliveryError"]
