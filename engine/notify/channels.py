"""Channels: where a message goes. Each is one ``send(message)`` that returns when the receiver
accepted it and raises a :class:`DeliveryError` (retryable or permanent) when it did not.

- ``LogChannel``: a structured log line (development).
- ``EventWebhookChannel``: integration events, POSTed as stored to every subscribed URL.
- ``AdapterChannel``: notifications (``sms``, ``app``, ``webhook``) as ``{to, text, ...}`` to
  one adapter endpoint.
- ``MemoryChannel``: records what it is given, and fails on request (tests).
"""
from __future__ import annotations

import fnmatch
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Mapping, Protocol

from engine.clock import Clock
from engine.jsoncodec import dumps
from engine.notify.errors import DeliveryError, NothingToSend, PermanentDeliveryError
from engine.notify.message import OutboxMessage
from engine.notify.outbound import Endpoint
from engine.notify.signing import signed_headers
from engine.notify.transport import Poster

log = logging.getLogger("engine.notify")


class Channel(Protocol):
    def send(self, message: OutboxMessage) -> None:
        """Deliver ``message`` or raise :class:`DeliveryError` (or :class:`NothingToSend`)."""
        ...


class LogChannel:
    """Writes one structured line per message to the ``engine.notify`` logger."""

    def __init__(self, language: str = "en") -> None:
        self.language = language

    def send(self, message: OutboxMessage) -> None:
        text, language = pick_text(message.payload.get("text"), message.payload.get("language"), self.language)
        log.info("%s", dumps({"event": "outbox.delivered", "channel": message.channel, "topic": message.topic,
                               "dedup_key": message.dedup_key, "recipient": message.recipient,
                               "language": language, "text": text}))


class MemoryChannel:
    """Keeps every message it accepts in :attr:`sent`; :meth:`fail_next` queues failures."""

    def __init__(self) -> None:
        self.sent: list[OutboxMessage] = []
        self._failures: list[DeliveryError] = []

    def fail_next(self, *errors: DeliveryError) -> None:
        self._failures.extend(errors)

    def send(self, message: OutboxMessage) -> None:
        if self._failures:
            raise self._failures.pop(0)
        self.sent.append(message)


@dataclass(frozen=True)
class Subscription:
    endpoint: Endpoint
    topics: tuple[str, ...] = ("*",)
    """``fnmatch`` patterns."""

    def wants(self, topic: str) -> bool:
        return any(fnmatch.fnmatchcase(topic, pattern) for pattern in self.topics)


class EventWebhookChannel:
    """POSTs an event's stored payload, signed, to every subscription that wants its topic.

    All subscribers must accept in the same attempt; a retry goes to all of them again (they
    drop the duplicate by ``X-Lowcode-Delivery``). One permanent refusal makes the attempt
    permanent, so one broken subscriber shows up as a dead letter rather than retrying forever.
    """

    def __init__(self, subscriptions: Iterable[Subscription], poster: Poster, secret: str, clock: Clock) -> None:
        self.subscriptions = tuple(subscriptions)
        self.poster = poster
        self.secret = secret
        self.clock = clock

    def send(self, message: OutboxMessage) -> None:
        targets = [subscription for subscription in self.subscriptions if subscription.wants(message.topic)]
        if not targets:
            raise NothingToSend("outbox.no_subscriber", params={"topic": message.topic})
        failures: list[DeliveryError] = []
        for subscription in targets:
            headers = signed_headers(self.secret, _unix(self.clock), message.body, delivery=message.dedup_key,
                                     topic=message.topic)
            try:
                self.poster.post(subscription.endpoint, message.body, headers)
            except DeliveryError as exc:
                failures.append(exc)
        if failures:
            permanent = [failure for failure in failures if isinstance(failure, PermanentDeliveryError)]
            raise (permanent or failures)[0]


class AdapterChannel:
    """Sends a notification to an adapter endpoint (an SMS gateway bridge, an app-push service,
    a staff webhook) as ``{to, recipient, text, language, texts, dedup_key, topic, channel,
    payload}``, signed like events."""

    def __init__(self, name: str, endpoint: Endpoint, poster: Poster, secret: str, clock: Clock, *,
                 language: str = "en") -> None:
        self.name = name
        self.endpoint = endpoint
        self.poster = poster
        self.secret = secret
        self.clock = clock
        self.language = language

    def send(self, message: OutboxMessage) -> None:
        body = adapter_body(message, self.language)
        headers = signed_headers(self.secret, _unix(self.clock), body, delivery=message.dedup_key, topic=message.topic)
        self.poster.post(self.endpoint, body, headers)


def adapter_body(message: OutboxMessage, default_language: str) -> bytes:
    """The JSON an adapter receives. ``to`` is the address of an ``address:`` recipient, else
    the recipient as written (``user:<id>``, ``role:<name>...``) for the adapter to resolve."""
    if not message.recipient:
        raise PermanentDeliveryError("outbox.bad_recipient", params={"channel": message.channel})
    kind, _, value = message.recipient.partition(":")
    if kind not in ("user", "role", "address") or not value:
        raise PermanentDeliveryError("outbox.bad_recipient", params={"channel": message.channel})
    texts = message.payload.get("text")
    text, language = pick_text(texts, message.payload.get("language"), default_language)
    if text is None:
        raise PermanentDeliveryError("outbox.bad_payload", params={"reason": "text"})
    document: dict[str, Any] = {
        "to": value if kind == "address" else message.recipient, "recipient": message.recipient,
        "text": text, "dedup_key": message.dedup_key, "topic": message.topic, "channel": message.channel,
        "payload": {key: item for key, item in message.payload.items() if key != "text"},
    }
    if language is not None:
        document["language"] = language
    if isinstance(texts, Mapping):
        document["texts"] = dict(texts)
    return dumps(document).encode("utf-8")


def pick_text(texts: Any, wanted: Any, default_language: str) -> tuple[str | None, str | None]:
    """``(text, language)`` from a ``{language: text}`` map: the message's language, else the
    default, else en, else the first; a plain string has no language."""
    if isinstance(texts, str):
        return texts, None
    if not isinstance(texts, Mapping) or not texts:
        return None, None
    for language in (wanted, default_language, "en"):
        if isinstance(language, str) and isinstance(texts.get(language), str):
            return texts[language], language
    language, text = next(iter(texts.items()))
    return (text, str(language)) if isinstance(text, str) else (None, None)


def _unix(clock: Clock) -> int:
    return int(clock.now().timestamp())


__all__ = ["AdapterChannel", "Channel", "EventWebhookChannel", "LogChannel", "MemoryChannel", "Subscription",
           "adapter_body", "pick_text"]
