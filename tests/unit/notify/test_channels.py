"""Channels and the dispatcher: what each channel sends, and which failures are whose."""
from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

import pytest

from engine.clock import FakeClock
from engine.jsoncodec import dumps, loads
from engine.notify import (
    AdapterChannel,
    Dispatcher,
    EventWebhookChannel,
    LogChannel,
    NothingToSend,
    NotifyConfigError,
    OutboundPolicy,
    OutboxMessage,
    OutboxSettings,
    PermanentDeliveryError,
    RetryableDeliveryError,
    Subscription,
)
from engine.notify.outbound import Endpoint
from engine.notify.signing import sign

POLICY = OutboundPolicy.parse(["hooks.test", "sms.test", "10.0.0.0/8"])
CLOCK = FakeClock(datetime(2026, 1, 5, 1, 0, tzinfo=timezone.utc))
TEXT = {"zh-CN": "您的申请已进入审批", "en": "Your application is under review"}


class RecordingPoster:
    def __init__(self, failures: Mapping[str, Exception] | None = None) -> None:
        self.posts: list[tuple[str, bytes, dict[str, str]]] = []
        self.failures = dict(failures or {})

    def post(self, endpoint: Endpoint, body: bytes, headers: Mapping[str, str]) -> None:
        self.posts.append((endpoint.url, body, dict(headers)))
        if endpoint.url in self.failures:
            raise self.failures[endpoint.url]


def message(channel: str = "sms", recipient: str | None = "address:+8613800000000", **payload: Any) -> OutboxMessage:
    document = payload or {"instance": "i-1", "state": "review", "amount": Decimal("1200.50"), "text": TEXT}
    body = dumps(document).encode()
    return OutboxMessage(id=1, topic="instance.state_changed", dedup_key="notify:i-1:review", channel=channel,
                         recipient=recipient, body=body, payload=loads(body), attempts=0, created_at=CLOCK.now())


def adapter(poster: RecordingPoster, language: str = "en") -> AdapterChannel:
    return AdapterChannel("sms", POLICY.check_url("https://sms.test/send"), poster, "s3cret", CLOCK, language=language)


def test_adapter_posts_address_text_language_and_dedup_key() -> None:
    poster = RecordingPoster()
    adapter(poster, language="zh-CN").send(message())
    [(url, body, headers)] = poster.posts
    document = loads(body)
    assert url == "https://sms.test/send"
    assert document["to"] == "+8613800000000"
    assert (document["text"], document["language"]) == ("您的申请已进入审批", "zh-CN")
    assert document["dedup_key"] == "notify:i-1:review"
    assert document["payload"] == {"instance": "i-1", "state": "review", "amount": Decimal("1200.50")}
    assert b'"amount": 1200.50' in body or b'"amount":1200.50' in body
    assert headers["X-Lowcode-Signature"] == sign("s3cret", int(CLOCK.now().timestamp()), body)


def test_adapter_prefers_the_messages_own_language() -> None:
    poster = RecordingPoster()
    adapter(poster, language="zh-CN").send(message(text=TEXT, language="en"))
    assert loads(poster.posts[0][1])["text"] == "Your application is under review"


def test_adapter_passes_user_and_role_recipients_for_the_adapter_to_resolve() -> None:
    poster = RecordingPoster()
    adapter(poster).send(message(recipient="role:branch_head@branch=SZ01"))
    assert loads(poster.posts[0][1])["to"] == "role:branch_head@branch=SZ01"


@pytest.mark.parametrize("recipient", [None, "", "phone:123", "address:"])
def test_adapter_without_a_usable_recipient_fails_for_good(recipient: str | None) -> None:
    with pytest.raises(PermanentDeliveryError) as caught:
        adapter(RecordingPoster()).send(message(recipient=recipient))
    assert caught.value.code == "outbox.bad_recipient"


def test_adapter_without_text_fails_for_good() -> None:
    with pytest.raises(PermanentDeliveryError) as caught:
        adapter(RecordingPoster()).send(message(instance="i-1"))
    assert caught.value.params == {"reason": "text"}


def test_event_goes_as_stored_to_every_subscriber_that_wants_its_topic() -> None:
    poster = RecordingPoster()
    channel = EventWebhookChannel([
        Subscription(POLICY.check_url("https://hooks.test/all")),
        Subscription(POLICY.check_url("https://hooks.test/tasks"), ("task.*",)),
        Subscription(POLICY.check_url("https://hooks.test/instances"), ("instance.*",)),
    ], poster, "s3cret", CLOCK)
    sent = message(channel="event", recipient=None)
    channel.send(sent)
    assert [url for url, _, _ in poster.posts] == ["https://hooks.test/all", "https://hooks.test/instances"]
    assert all(body == sent.body for _, body, _ in poster.posts)
    assert poster.posts[0][2]["X-Lowcode-Topic"] == "instance.state_changed"


def test_event_without_subscriber_is_nothing_to_send() -> None:
    channel = EventWebhookChannel([Subscription(POLICY.check_url("https://hooks.test/t"), ("task.*",))],
                                  RecordingPoster(), "s3cret", CLOCK)
    with pytest.raises(NothingToSend) as caught:
        channel.send(message(channel="event"))
    assert caught.value.params == {"topic": "instance.state_changed"}


def test_one_permanent_refusal_among_subscribers_makes_the_attempt_permanent() -> None:
    poster = RecordingPoster({"https://hooks.test/a": RetryableDeliveryError("outbox.http_status", params={"status": 503}),
                              "https://hooks.test/b": PermanentDeliveryError("outbox.http_status", params={"status": 410})})
    channel = EventWebhookChannel([Subscription(POLICY.check_url("https://hooks.test/a")),
                                   Subscription(POLICY.check_url("https://hooks.test/b"))], poster, "s3cret", CLOCK)
    with pytest.raises(PermanentDeliveryError) as caught:
        channel.send(message(channel="event"))
    assert caught.value.params == {"status": 410}
    assert len(poster.posts) == 2


def test_log_channel_writes_one_structured_line(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="engine.notify"):
        LogChannel("zh-CN").send(message(channel="log", recipient="user:u-7"))
    [record] = caplog.records
    line = json.loads(record.getMessage())
    assert line == {"event": "outbox.delivered", "channel": "log", "topic": "instance.state_changed",
                    "dedup_key": "notify:i-1:review", "recipient": "user:u-7", "language": "zh-CN",
                    "text": "您的申请已进入审批"}


def test_dispatcher_refuses_channels_it_does_not_have() -> None:
    dispatcher = Dispatcher.from_settings(OutboxSettings(), CLOCK)
    with pytest.raises(PermanentDeliveryError) as unconfigured:
        dispatcher.send(message(channel="sms"))
    with pytest.raises(PermanentDeliveryError) as unknown:
        dispatcher.send(message(channel="fax"))
    assert (unconfigured.value.code, unknown.value.code) == ("outbox.channel_not_configured", "outbox.unknown_channel")


def test_start_up_names_the_setting_whose_url_is_refused() -> None:
    settings = OutboxSettings(outbound_allow=("hooks.test",), secret="s", sms_url="http://2130706433/send")
    with pytest.raises(NotifyConfigError) as caught:
        Dispatcher.from_settings(settings, CLOCK)
    # The reason carries its own code and parameters, so the message can name the address.
    assert caught.value.params == {"setting": "LOWCODE_SMS_URL", "reason": {
        "code": "outbox.address_not_allowed", "params": {"host": "2130706433", "address": "127.0.0.1"}}}


def test_start_up_refuses_endpoints_without_a_secret() -> None:
    settings = OutboxSettings(outbound_allow=("hooks.test",), event_webhooks=("https://hooks.test/e",))
    with pytest.raises(NotifyConfigError) as caught:
        Dispatcher.from_settings(settings, CLOCK)
    assert caught.value.params == {"setting": "LOWCODE_OUTBOX_SECRET", "reason": "missing"}


def test_settings_from_environment() -> None:
    settings = OutboxSettings.from_environ({
        "LOWCODE_OUTBOUND_ALLOW": "hooks.test, 10.1.0.0/16", "LOWCODE_EVENT_WEBHOOKS": "https://hooks.test/a,https://hooks.test/b",
        "LOWCODE_EVENT_TOPICS": "instance.*", "LOWCODE_SMS_URL": "https://hooks.test/sms", "LOWCODE_OUTBOX_SECRET": "zz-top-secret",
        "LOWCODE_OUTBOX_MAX_ATTEMPTS": "3", "LOWCODE_OUTBOX_BACKOFF_BASE_SECONDS": "10", "LOWCODE_OUTBOX_ROLES": "ops"})
    assert settings.outbound_allow == ("hooks.test", "10.1.0.0/16")
    assert settings.event_webhooks == ("https://hooks.test/a", "https://hooks.test/b")
    assert (settings.event_topics, settings.max_attempts, settings.backoff_base.total_seconds()) == (("instance.*",), 3, 10.0)
    assert settings.staff_roles == frozenset({"ops"})
    assert settings.secret == "zz-top-secret"
    assert "zz-top-secret" not in repr(settings)


@pytest.mark.parametrize(("name", "value"), [("LOWCODE_OUTBOX_MAX_ATTEMPTS", "0"), ("LOWCODE_OUTBOX_MAX_ATTEMPTS", "x"),
                                             ("LOWCODE_OUTBOX_LEASE_SECONDS", "-5"), ("LOWCODE_OUTBOUND_TIMEOUT_SECONDS", "soon")])
def test_malformed_numbers_in_the_environment_are_refused(name: str, value: str) -> None:
    with pytest.raises(NotifyConfigError) as caught:
        OutboxSettings.from_environ({name: value})
    assert caught.value.params["setting"] == name
