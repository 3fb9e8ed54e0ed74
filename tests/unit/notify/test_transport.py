"""``OutboundHttp`` against a real local server: verdicts by status, no redirects followed, the
address pinned after the allow-list check."""
from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from datetime import timedelta

import pytest

from engine.notify import (
    OutboundHttp,
    OutboundPolicy,
    OutboundRefused,
    PermanentDeliveryError,
    RetryableDeliveryError,
)
from engine.notify.testing import Answer, WebhookReceiver
from engine.notify.transport import raise_for_status

LOCAL = OutboundPolicy.parse(["127.0.0.1/32", "hooks.test"])


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver.running() as running:
        yield running


def client(resolver=lambda host, port: ["127.0.0.1"], timeout: float = 2.0) -> OutboundHttp:  # type: ignore[no-untyped-def]
    return OutboundHttp(LOCAL, timeout=timedelta(seconds=timeout), resolver=resolver)


@pytest.mark.parametrize(("status", "verdict", "code"), [
    (200, None, None), (202, None, None), (204, None, None),
    (301, PermanentDeliveryError, "outbox.redirect_refused"), (307, PermanentDeliveryError, "outbox.redirect_refused"),
    (400, PermanentDeliveryError, "outbox.http_status"), (401, PermanentDeliveryError, "outbox.http_status"),
    (404, PermanentDeliveryError, "outbox.http_status"), (410, PermanentDeliveryError, "outbox.http_status"),
    (408, RetryableDeliveryError, "outbox.http_status"), (429, RetryableDeliveryError, "outbox.http_status"),
    (500, RetryableDeliveryError, "outbox.http_status"), (503, RetryableDeliveryError, "outbox.http_status"),
])
def test_status_verdicts(status: int, verdict: type[Exception] | None, code: str | None) -> None:
    if verdict is None:
        raise_for_status(status)
        return
    with pytest.raises(verdict) as caught:
        raise_for_status(status)
    assert caught.value.code == code  # type: ignore[attr-defined]
    assert caught.value.params == {"status": status}  # type: ignore[attr-defined]


def test_retry_after_seconds_are_kept() -> None:
    with pytest.raises(RetryableDeliveryError) as caught:
        raise_for_status(429, "120")
    assert caught.value.retry_after == timedelta(seconds=120)


def test_post_sends_body_and_headers_to_the_path(receiver: WebhookReceiver) -> None:
    endpoint = LOCAL.check_url(receiver.url("/hooks/in?x=1"))
    client().post(endpoint, b'{"a":1.10}', {"X-Lowcode-Delivery": "k-1", "Content-Type": "application/json"})
    [request] = receiver.received
    assert (request.path, request.body, request.headers["X-Lowcode-Delivery"]) == ("/hooks/in?x=1", b'{"a":1.10}', "k-1")


def test_redirect_is_not_followed(receiver: WebhookReceiver) -> None:
    receiver.script = lambda request: Answer(302, {"Location": "http://169.254.169.254/latest/meta-data/"})
    with pytest.raises(PermanentDeliveryError) as caught:
        client().post(LOCAL.check_url(receiver.url("/hook")), b"{}", {})
    assert caught.value.code == "outbox.redirect_refused"
    assert len(receiver.received) == 1


def test_server_error_is_retryable(receiver: WebhookReceiver) -> None:
    receiver.answer_in_turn(500)
    with pytest.raises(RetryableDeliveryError) as caught:
        client().post(LOCAL.check_url(receiver.url("/hook")), b"{}", {})
    assert caught.value.params == {"status": 500}


def test_listed_name_is_connected_to_the_checked_address_with_its_host_header(receiver: WebhookReceiver) -> None:
    endpoint = LOCAL.check_url(f"http://hooks.test:{receiver.port}/in")
    client(resolver=lambda host, port: ["127.0.0.1"]).post(endpoint, b"{}", {})
    assert receiver.received[0].headers["Host"] == f"hooks.test:{receiver.port}"


def test_name_rebound_to_a_refused_address_sends_nothing(receiver: WebhookReceiver) -> None:
    endpoint = LOCAL.check_url(f"http://hooks.test:{receiver.port}/in")  # allowed by name at start-up
    with pytest.raises(OutboundRefused) as caught:
        client(resolver=lambda host, port: ["127.0.0.2"]).post(endpoint, b"{}", {})
    assert caught.value.params == {"host": "hooks.test", "address": "127.0.0.2"}
    assert receiver.received == []


def test_closed_port_is_retryable() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(RetryableDeliveryError) as caught:
        client().post(LOCAL.check_url(f"http://127.0.0.1:{port}/"), b"{}", {})
    assert caught.value.code == "outbox.connection_failed"


def test_silent_receiver_times_out_as_retryable() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        accepted: list[socket.socket] = []
        thread = threading.Thread(target=lambda: accepted.append(server.accept()[0]), daemon=True)
        thread.start()
        with pytest.raises(RetryableDeliveryError) as caught:
            client(timeout=0.2).post(LOCAL.check_url(f"http://127.0.0.1:{server.getsockname()[1]}/"), b"{}", {})
        thread.join(timeout=2)
        for connection in accepted:
            connection.close()
    assert caught.value.code == "outbox.timeout"
