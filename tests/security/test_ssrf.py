"""Attack class: server-side request forgery through webhook and notification URLs — loopback,
private, link-local and cloud-metadata addresses, IPv6 loopback and IPv4-mapped IPv6, decimal,
octal, hex and shortened IPv4 spellings, credentials and fragments that hide the host, other
schemes, host names that resolve to private addresses (including one bad answer among good
ones), and redirects.

Every URL is checked when the engine starts (a refused one stops it, naming the setting) and
again after DNS at every send; redirects are never followed. Payloads: 30 refused URLs at
start-up, 12 hostile DNS answers, 3 redirects: 45 cases.
"""
from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from engine import FakeClock
from engine.notify import NotifyConfigError, OutboundPolicy, OutboundRefused, PermanentDeliveryError
from engine.notify.dispatcher import Dispatcher
from engine.notify.settings import OutboxSettings
from engine.notify.transport import OutboundHttp

ALLOW = "hooks.example.com,*.partners.example.org"

# (URL, the refusal's reason code)
REFUSED_URLS = [
    ("http://127.0.0.1/hook", "outbox.address_not_allowed"),
    ("http://127.1/hook", "outbox.address_not_allowed"),
    ("http://2130706433/hook", "outbox.address_not_allowed"),
    ("http://0x7f000001/hook", "outbox.address_not_allowed"),
    ("http://0177.0.0.1/hook", "outbox.address_not_allowed"),
    ("http://0x7f.0.0.1/hook", "outbox.address_not_allowed"),
    ("http://0/hook", "outbox.address_not_allowed"),
    ("http://0.0.0.0/hook", "outbox.address_not_allowed"),
    ("http://10.0.0.1/hook", "outbox.address_not_allowed"),
    ("http://172.16.5.4/hook", "outbox.address_not_allowed"),
    ("http://192.168.1.1/hook", "outbox.address_not_allowed"),
    ("http://100.64.0.1/hook", "outbox.address_not_allowed"),
    ("http://169.254.169.254/latest/meta-data/", "outbox.address_not_allowed"),
    ("http://0xa9fea9fe/latest/meta-data/", "outbox.address_not_allowed"),
    ("http://169.254.170.2/v2/credentials", "outbox.address_not_allowed"),
    ("http://100.100.100.200/latest/meta-data/", "outbox.address_not_allowed"),
    ("http://[::1]/hook", "outbox.address_not_allowed"),
    ("http://[::]/hook", "outbox.address_not_allowed"),
    ("http://[::ffff:127.0.0.1]/hook", "outbox.address_not_allowed"),
    ("http://[::ffff:a9fe:a9fe]/hook", "outbox.address_not_allowed"),
    ("http://[fe80::1%25eth0]/hook", "outbox.address_not_allowed"),
    ("http://[fd00:ec2::254]/latest/", "outbox.address_not_allowed"),
    ("http://[64:ff9b::7f00:1]/hook", "outbox.address_not_allowed"),
    ("http://localhost/hook", "outbox.host_not_allowed"),
    ("http://evil.example/hook", "outbox.host_not_allowed"),
    ("http://hooks.example.com.evil.example/hook", "outbox.host_not_allowed"),
    ("http://hooks.example.com@127.0.0.1/hook", "outbox.url_credentials"),
    ("http://127.0.0.1#@hooks.example.com/hook", "outbox.address_not_allowed"),
    ("file:///etc/passwd", "outbox.url_scheme"),
    ("gopher://hooks.example.com:70/_x", "outbox.url_scheme"),
]


@pytest.mark.parametrize(("url", "reason"), REFUSED_URLS)
@pytest.mark.parametrize("setting", ["LOWCODE_NOTIFY_WEBHOOK_URL", "LOWCODE_EVENT_WEBHOOKS"])
def test_a_hostile_url_stops_the_engine_at_start_up(url: str, reason: str, setting: str) -> None:
    settings = OutboxSettings.from_environ({"LOWCODE_OUTBOUND_ALLOW": ALLOW, setting: url, "LOWCODE_OUTBOX_SECRET": "s"})
    with pytest.raises(NotifyConfigError) as refused:
        Dispatcher.from_settings(settings, FakeClock())
    assert refused.value.code == "outbox.bad_config"
    named = "LOWCODE_EVENT_WEBHOOKS[0]" if setting == "LOWCODE_EVENT_WEBHOOKS" else setting
    assert refused.value.params["setting"] == named and refused.value.params["reason"]["code"] == reason
    message = refused.value.issues[0].message()
    assert message.startswith(f"Setting {named} cannot be used: ") and reason not in message  # the reason, rendered


def test_an_allowed_url_starts() -> None:
    settings = OutboxSettings.from_environ({"LOWCODE_OUTBOUND_ALLOW": ALLOW, "LOWCODE_OUTBOX_SECRET": "s",
                                           "LOWCODE_NOTIFY_WEBHOOK_URL": "https://hooks.example.com/lowcode"})
    assert "webhook" in Dispatcher.from_settings(settings, FakeClock()).channels


POLICY = OutboundPolicy.parse(ALLOW.split(","))
HOSTILE_ANSWERS = [
    ["127.0.0.1"], ["10.1.2.3"], ["192.168.0.10"], ["169.254.169.254"], ["100.100.100.200"], ["0.0.0.0"],
    ["::1"], ["::ffff:127.0.0.1"], ["fe80::1"], ["fc00::5"],
    ["93.184.216.34", "127.0.0.1"],  # one bad answer among good ones: the next connection could take it
    ["not-an-address"],
]


@pytest.mark.parametrize("answers", HOSTILE_ANSWERS, ids=lambda answers: ",".join(answers))
def test_an_allowed_name_that_resolves_to_a_special_address_is_refused_at_send(answers: list[str]) -> None:
    endpoint = POLICY.check_url("https://hooks.example.com/lowcode")  # the text is fine
    asked: list[tuple[str, int]] = []

    def resolver(host: str, port: int) -> list[str]:
        asked.append((host, port))
        return answers

    with pytest.raises(OutboundRefused) as refused:
        POLICY.pin(endpoint, resolver)
    assert refused.value.code == "outbox.address_not_allowed"
    assert asked == [("hooks.example.com", 443)]
    http_client = OutboundHttp(POLICY, timeout=timedelta(seconds=1), resolver=resolver)
    with pytest.raises(OutboundRefused):  # the sender checks again itself, before any connection
        http_client.post(endpoint, b"{}", {})


class _Recorder(http.server.BaseHTTPRequestHandler):
    hits: list[str] = []
    status = 302
    location = ""

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        type(self).hits.append(self.path)
        self.send_response(self.status)
        if self.location:
            self.send_header("Location", self.location)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_GET = do_POST  # noqa: N815

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def servers() -> Iterator[tuple[Any, Any]]:
    """Two local servers: the webhook (answers a redirect) and the target the redirect names."""
    started = []
    for name in ("Hook", "Target"):
        handler = type(name, (_Recorder,), {"hits": []})
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        started.append(server)
    yield started[0], started[1]
    for server in started:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("status", [301, 302, 307])
def test_a_redirect_is_never_followed(servers: tuple[Any, Any], status: int) -> None:
    hook, target = servers
    hook.RequestHandlerClass.status = status
    hook.RequestHandlerClass.location = f"http://127.0.0.1:{target.server_port}/internal/secrets"
    policy = OutboundPolicy.parse(["127.0.0.1/32"])  # the test's own server, listed explicitly
    endpoint = policy.check_url(f"http://127.0.0.1:{hook.server_port}/hook")
    with pytest.raises(PermanentDeliveryError) as refused:
        OutboundHttp(policy, timeout=timedelta(seconds=5)).post(endpoint, b"{}", {"Content-Type": "application/json"})
    assert (refused.value.code, refused.value.params) == ("outbox.redirect_refused", {"status": status})
    assert hook.RequestHandlerClass.hits == ["/hook"]
    assert target.RequestHandlerClass.hits == []
