"""The outbound allow-list: URLs refused by their text, and addresses refused after DNS."""
from __future__ import annotations

import ipaddress

import pytest

from engine.notify import NotifyConfigError, OutboundPolicy, OutboundRefused, RetryableDeliveryError
from engine.notify.outbound import _legacy_ipv4, is_special

POLICY = OutboundPolicy.parse(["hooks.example.com", "*.partners.example.org", "203.0.113.7", "10.20.0.0/16"])


@pytest.mark.parametrize(("spelling", "address"), [
    ("2130706433", "127.0.0.1"),
    ("0x7f.0.0.1", "127.0.0.1"),
    ("0x7f000001", "127.0.0.1"),
    ("0177.0.0.1", "127.0.0.1"),
    ("017700000001", "127.0.0.1"),
    ("127.1", "127.0.0.1"),
    ("127.0.1", "127.0.0.1"),
    ("10.20.258", "10.20.1.2"),
    ("0xa9fea9fe", "169.254.169.254"),
])
def test_legacy_ipv4_spellings_are_read_as_resolvers_read_them(spelling: str, address: str) -> None:
    assert _legacy_ipv4(spelling) == ipaddress.IPv4Address(address)


@pytest.mark.parametrize("name", ["cafe.face", "1e100.net", "256.256.256.256.256", "0x1g"])
def test_host_names_that_only_look_numeric_are_not_addresses(name: str) -> None:
    assert _legacy_ipv4(name) is None


@pytest.mark.parametrize(("url", "code"), [
    ("http://2130706433/", "outbox.address_not_allowed"),
    ("http://0x7f.0.0.1/", "outbox.address_not_allowed"),
    ("http://0177.0.0.1/hook", "outbox.address_not_allowed"),
    ("http://127.1/", "outbox.address_not_allowed"),
    ("http://127.0.0.1:8080/", "outbox.address_not_allowed"),
    ("http://[::1]/", "outbox.address_not_allowed"),
    ("http://[::ffff:127.0.0.1]/", "outbox.address_not_allowed"),
    ("http://[::ffff:7f00:1]/", "outbox.address_not_allowed"),
    ("http://[::ffff:203.0.113.7]/", "outbox.address_not_allowed"),
    ("http://169.254.169.254/latest/meta-data/", "outbox.address_not_allowed"),
    ("http://[fd00:ec2::254]/", "outbox.address_not_allowed"),
    ("http://0.0.0.0/", "outbox.address_not_allowed"),
    ("http://0/", "outbox.address_not_allowed"),
    ("http://192.168.1.1/", "outbox.address_not_allowed"),
    ("http://10.21.0.1/", "outbox.address_not_allowed"),
    ("http://224.0.0.1/", "outbox.address_not_allowed"),
    ("http://198.51.100.9/", "outbox.address_not_allowed"),
    ("http://[fe80::1]/", "outbox.address_not_allowed"),
    ("http://evil.example.net/", "outbox.host_not_allowed"),
    ("http://hooks.example.com.evil.net/", "outbox.host_not_allowed"),
    ("http://partners.example.org/", "outbox.host_not_allowed"),
    ("http://xpartners.example.org/", "outbox.host_not_allowed"),
    ("http://user:secret@hooks.example.com/", "outbox.url_credentials"),
    ("http://hooks.example.com@evil.example.net/", "outbox.url_credentials"),
    ("http://hooks.example.com\\@evil.example.net/", "outbox.url_credentials"),
    ("ftp://hooks.example.com/", "outbox.url_scheme"),
    ("file:///etc/passwd", "outbox.url_scheme"),
    ("gopher://hooks.example.com:70/", "outbox.url_scheme"),
    ("http://hooks.example.com:99999/", "outbox.url_invalid"),
    ("http://hooks.example.com /", "outbox.url_invalid"),
    ("http:///path-only", "outbox.url_invalid"),
])
def test_urls_refused_by_their_text(url: str, code: str) -> None:
    with pytest.raises(OutboundRefused) as caught:
        POLICY.check_url(url)
    assert caught.value.code == code


def test_allowed_url_is_split_for_the_client() -> None:
    endpoint = POLICY.check_url("https://Hooks.Example.COM./v1/events?tenant=a")
    assert (endpoint.scheme, endpoint.host, endpoint.port, endpoint.target) == (
        "https", "hooks.example.com", 443, "/v1/events?tenant=a")
    assert endpoint.literal is None


def test_wildcard_allows_sub_domains_only() -> None:
    assert POLICY.check_url("http://sms.partners.example.org:8080/send").port == 8080


def test_literal_address_inside_a_listed_cidr_or_address_is_allowed() -> None:
    assert POLICY.check_url("http://10.20.3.4/hook").literal == ipaddress.ip_address("10.20.3.4")
    assert POLICY.check_url("http://203.0.113.7/").host == "203.0.113.7"


def test_decimal_spelling_of_an_allowed_address_is_allowed_in_canonical_form() -> None:
    endpoint = POLICY.check_url("http://169083652/hook")  # 10.20.3.4, inside 10.20.0.0/16
    assert (endpoint.host, endpoint.literal) == ("10.20.3.4", ipaddress.ip_address("10.20.3.4"))


def test_ipv4_mapped_ipv6_needs_an_ipv6_cidr() -> None:
    loopback_v4 = OutboundPolicy.parse(["127.0.0.0/8"])
    assert loopback_v4.check_url("http://127.0.0.1/").port == 80
    with pytest.raises(OutboundRefused):
        loopback_v4.check_url("http://[::ffff:127.0.0.1]/")
    mapped = OutboundPolicy.parse(["::ffff:127.0.0.0/104"])
    assert mapped.check_url("http://[::ffff:127.0.0.1]/").host == "::ffff:7f00:1"


def test_metadata_address_needs_its_exact_address_listed() -> None:
    with pytest.raises(OutboundRefused):
        OutboundPolicy.parse(["169.254.0.0/16"]).check_url("http://169.254.169.254/")
    assert OutboundPolicy.parse(["169.254.0.0/16"]).check_url("http://169.254.1.1/").port == 80
    exact = OutboundPolicy.parse(["169.254.169.254/32"])
    assert exact.check_url("http://169.254.169.254/").host == "169.254.169.254"


@pytest.mark.parametrize("entry", ["0.0.0.0/0", "::/0", "10.0.0.0/7", "not a host!", "2130706433", "*.", ""])
def test_allow_list_entries_that_would_disable_the_guard_are_refused(entry: str) -> None:
    with pytest.raises(NotifyConfigError) as caught:
        OutboundPolicy.parse([entry])
    assert caught.value.code == "outbox.bad_config"
    assert caught.value.params["setting"] == "LOWCODE_OUTBOUND_ALLOW"


@pytest.mark.parametrize("address", ["127.0.0.1", "10.0.0.1", "100.64.0.1", "169.254.1.1", "::1", "fc00::1",
                                     "::ffff:8.8.8.8", "2002:7f00:1::1", "64:ff9b::7f00:1", "255.255.255.255", "240.0.0.1"])
def test_special_addresses(address: str) -> None:
    assert is_special(ipaddress.ip_address(address)) is True


@pytest.mark.parametrize("address", ["8.8.8.8", "203.0.114.1", "2606:4700::1111"])
def test_public_addresses_are_not_special(address: str) -> None:
    assert is_special(ipaddress.ip_address(address)) is False


def test_pin_refuses_a_listed_name_that_resolves_to_loopback() -> None:
    endpoint = POLICY.check_url("https://hooks.example.com/")
    with pytest.raises(OutboundRefused) as caught:
        POLICY.pin(endpoint, lambda host, port: ["127.0.0.1"])
    assert caught.value.params == {"host": "hooks.example.com", "address": "127.0.0.1"}


def test_pin_checks_every_resolved_address_not_only_the_first() -> None:
    endpoint = POLICY.check_url("https://hooks.example.com/")
    with pytest.raises(OutboundRefused) as caught:
        POLICY.pin(endpoint, lambda host, port: ["93.184.216.34", "169.254.169.254"])
    assert caught.value.params["address"] == "169.254.169.254"


def test_pin_returns_the_first_checked_address() -> None:
    endpoint = POLICY.check_url("https://hooks.example.com/")
    assert POLICY.pin(endpoint, lambda host, port: ["93.184.216.34", "10.20.0.9"]) == "93.184.216.34"


def test_pin_allows_a_private_address_inside_a_listed_cidr() -> None:
    endpoint = POLICY.check_url("https://hooks.example.com/")
    assert POLICY.pin(endpoint, lambda host, port: ["10.20.0.9"]) == "10.20.0.9"


def test_pin_refuses_an_ipv4_mapped_answer() -> None:
    endpoint = POLICY.check_url("https://hooks.example.com/")
    with pytest.raises(OutboundRefused):
        POLICY.pin(endpoint, lambda host, port: ["::ffff:10.20.0.9"])


def test_unresolvable_name_is_retryable() -> None:
    def fail(host: str, port: int) -> list[str]:
        raise OSError("no such host")

    with pytest.raises(RetryableDeliveryError) as caught:
        POLICY.pin(POLICY.check_url("https://hooks.example.com/"), fail)
    assert caught.value.code == "outbox.dns_failed"


def test_a_refused_webhook_address_is_explained_in_words_in_both_languages() -> None:
    from engine.notify import Dispatcher, NotifyConfigError, OutboxSettings
    from engine import FakeClock

    settings = OutboxSettings.from_environ({"LOWCODE_EVENT_WEBHOOKS": "http://127.0.0.1:9000/hooks",
                                            "LOWCODE_OUTBOX_SECRET": "s"})
    with pytest.raises(NotifyConfigError) as refused:
        Dispatcher.from_settings(settings, FakeClock())
    issue = refused.value.issues[0]
    assert issue.message() == ("Setting LOWCODE_EVENT_WEBHOOKS[0] cannot be used: "
                               "Host 127.0.0.1 leads to address 127.0.0.1, which outgoing requests may not reach")
    assert issue.message("zh-CN") == "配置项 LOWCODE_EVENT_WEBHOOKS[0] 无法使用：主机 127.0.0.1 指向地址 127.0.0.1，出站请求不允许访问该地址"
