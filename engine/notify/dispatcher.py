"""``Dispatcher``: the table from a message's channel name to the :class:`Channel` that sends
it, built once from settings (which checks every endpoint URL at start-up)."""
from __future__ import annotations

from datetime import timedelta
from typing import Mapping

from engine.clock import Clock
from engine.notify.channels import (
    AdapterChannel,
    Channel,
    EventWebhookChannel,
    LogChannel,
    Subscription,
)
from engine.notify.errors import NotifyConfigError, OutboundRefused, PermanentDeliveryError
from engine.notify.message import OutboxMessage
from engine.notify.outbound import Endpoint, OutboundPolicy, Resolver, system_resolver
from engine.notify.settings import OutboxSettings
from engine.notify.transport import OutboundHttp, Poster

KNOWN_CHANNELS = ("event", "log", "sms", "app", "webhook")


class Dispatcher:
    """Sends each message through the channel it names."""

    def __init__(self, channels: Mapping[str, Channel], *, send_budget: timedelta = timedelta(seconds=10)) -> None:
        self.channels = dict(channels)
        self.send_budget = send_budget
        """The longest one ``send`` may take: the worker starts a send only while its lease
        still covers this much time."""

    @classmethod
    def from_settings(cls, settings: OutboxSettings, clock: Clock, *, resolver: Resolver = system_resolver,
                      poster: Poster | None = None) -> Dispatcher:
        """Check every configured URL against the allow-list (no DNS yet) and build the channels.

        Raises :class:`NotifyConfigError` naming the setting when a URL is refused, or when an
        endpoint is configured without ``LOWCODE_OUTBOX_SECRET``.
        """
        policy = OutboundPolicy.parse(settings.outbound_allow)
        endpoints: dict[str, Endpoint] = {}
        for setting, url in settings.endpoints().items():
            try:
                endpoints[setting] = policy.check_url(url)
            except OutboundRefused as exc:
                raise NotifyConfigError("outbox.bad_config", params={
                    "setting": setting, "reason": {"code": exc.code, "params": dict(exc.params)}}) from None
        if endpoints and not settings.secret:
            raise NotifyConfigError("outbox.bad_config", params={"setting": "LOWCODE_OUTBOX_SECRET", "reason": "missing"})
        secret = settings.secret or ""
        poster = poster or OutboundHttp(policy, timeout=settings.timeout, resolver=resolver, ca_file=settings.ca_file)
        subscriptions = [Subscription(endpoints[f"LOWCODE_EVENT_WEBHOOKS[{index}]"], settings.event_topics)
                         for index in range(len(settings.event_webhooks))]
        channels: dict[str, Channel] = {
            "event": EventWebhookChannel(subscriptions, poster, secret, clock),
            "log": LogChannel(settings.language),
        }
        for name, setting in (("sms", "LOWCODE_SMS_URL"), ("app", "LOWCODE_APP_PUSH_URL"),
                              ("webhook", "LOWCODE_NOTIFY_WEBHOOK_URL")):
            if setting in endpoints:
                channels[name] = AdapterChannel(name, endpoints[setting], poster, secret, clock, language=settings.language)
        # A send may resolve, connect and read once per subscriber; leave room for each.
        budget = settings.timeout * 2 * max(1, len(subscriptions))
        return cls(channels, send_budget=budget)

    def send(self, message: OutboxMessage) -> None:
        channel = self.channels.get(message.channel)
        if channel is None:
            code = "outbox.channel_not_configured" if message.channel in KNOWN_CHANNELS else "outbox.unknown_channel"
            raise PermanentDeliveryError(code, params={"channel": message.channel[:32]})
        channel.send(message)


__all__ = ["KNOWN_CHANNELS", "Dispatcher"]
