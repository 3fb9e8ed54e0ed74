"""The outbound allow-list: which URLs outgoing HTTP may reach (the SSRF guard).

A URL is checked twice. At start-up, :meth:`OutboundPolicy.check_url` looks at its text: http or
https only, no user name or password, and a host on the allow-list — a listed name, or a literal
address inside a listed CIDR (``2130706433``, ``0x7f.1`` and other legacy IPv4 spellings are
read the way resolvers read them first). At send time, :meth:`OutboundPolicy.pin` resolves the
host and checks every address it resolves to; the request then connects to that checked address
and never resolves the name again, so a DNS answer that changes in between (rebinding) cannot
move the request elsewhere.

Special addresses — private, loopback, link-local, multicast, reserved, unspecified, shared
(100.64/10), IPv4-mapped and IPv4-embedding IPv6 (``::ffff:0:0/96``, NAT64, 6to4, Teredo) — are
refused unless a listed CIDR contains them. Cloud metadata addresses are refused unless the
list names that very address (``169.254.169.254/32``). CIDRs broader than /8 (IPv4) or /16
(IPv6) are refused at start-up: they would switch the guard off.
"""
from __future__ import annotations

import ipaddress
import re
import socket
from dataclasses import dataclass
from typing import Callable, Iterable, Union
from urllib.parse import urlsplit

from engine.notify.errors import NotifyConfigError, OutboundRefused, RetryableDeliveryError

IPAddress = Union[ipaddress.IPv4Address, ipaddress.IPv6Address]
IPNetwork = Union[ipaddress.IPv4Network, ipaddress.IPv6Network]
Resolver = Callable[[str, int], list[str]]
"""``(host, port) -> addresses``; :func:`system_resolver` in production, a table in tests."""

METADATA_ADDRESSES = frozenset(ipaddress.ip_address(text) for text in (
    "169.254.169.254", "169.254.170.2", "100.100.100.200", "fd00:ec2::254"))
"""Instance metadata services (AWS/GCP/Azure/OpenStack, AWS ECS, Alibaba Cloud, AWS IPv6)."""

_SPECIAL_NETWORKS: tuple[IPNetwork, ...] = tuple(ipaddress.ip_network(text) for text in (
    "0.0.0.0/8", "100.64.0.0/10", "192.0.0.0/24", "198.18.0.0/15", "240.0.0.0/4",
    "::ffff:0:0/96", "::/96", "64:ff9b::/96", "64:ff9b:1::/48", "2002::/16", "2001::/32", "fc00::/7", "fe80::/10",
))
"""Ranges refused on top of what :mod:`ipaddress` calls non-global, written out because its
answers for IPv4-mapped IPv6 changed between Python patch releases."""

_HOST_NAME = re.compile(r"^(?=.{1,253}$)([a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?)(\.[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?)*$")
_NUMERIC_LOOKING = re.compile(r"^[0-9a-fx.]+$")
_MIN_PREFIX = {4: 8, 6: 16}


@dataclass(frozen=True)
class Endpoint:
    """A checked URL, split into what the HTTP client needs."""

    url: str
    scheme: str
    host: str
    """Lower-case, IDNA-encoded, without a trailing dot; a literal address in canonical form."""
    port: int
    target: str
    """Path and query, as sent on the request line."""
    literal: IPAddress | None
    """The address when the URL names one instead of a host name."""


@dataclass(frozen=True)
class OutboundPolicy:
    """The parsed allow-list. Build it once with :meth:`parse`."""

    names: frozenset[str] = frozenset()
    """Exact host names."""
    suffixes: tuple[str, ...] = ()
    """``.example.com`` for an entry ``*.example.com`` (sub-domains, not the apex)."""
    networks: tuple[IPNetwork, ...] = ()

    @classmethod
    def parse(cls, entries: Iterable[str]) -> OutboundPolicy:
        """Read host names, ``*.`` wildcards, addresses and CIDRs; raises
        :class:`NotifyConfigError` (``outbox.bad_config``) on anything else."""
        names: set[str] = set()
        suffixes: list[str] = []
        networks: list[IPNetwork] = []
        for raw in entries:
            entry = raw.strip().lower()
            try:
                network = ipaddress.ip_network(entry.strip("[]"), strict=False)
            except ValueError:
                network = None
            if network is not None:
                if network.prefixlen < _MIN_PREFIX[network.version]:
                    raise NotifyConfigError("outbox.bad_config", params={
                        "setting": "LOWCODE_OUTBOUND_ALLOW", "reason": f"{entry} is broader than /{_MIN_PREFIX[network.version]}"})
                networks.append(network)
                continue
            wildcard = entry.startswith("*.")
            name = _normalise_name(entry[2:] if wildcard else entry)
            if name is None or _legacy_ipv4(name) is not None:
                raise NotifyConfigError("outbox.bad_config", params={
                    "setting": "LOWCODE_OUTBOUND_ALLOW", "reason": f"{raw.strip()[:100]} is neither a host name nor a CIDR"})
            if wildcard:
                suffixes.append("." + name)
            else:
                names.add(name)
        return cls(frozenset(names), tuple(suffixes), tuple(networks))

    def check_url(self, url: str) -> Endpoint:
        """The endpoint of ``url`` if its text is allowed; raises :class:`OutboundRefused`."""
        if not isinstance(url, str) or any(ord(char) <= 32 or ord(char) == 127 for char in url):
            raise OutboundRefused("outbox.url_invalid")
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError:
            raise OutboundRefused("outbox.url_invalid") from None
        scheme = parts.scheme.lower()
        if scheme not in ("http", "https"):
            raise OutboundRefused("outbox.url_scheme", params={"scheme": scheme[:20]})
        if parts.username is not None or parts.password is not None or "@" in parts.netloc:
            raise OutboundRefused("outbox.url_credentials")
        raw_host = parts.hostname or ""
        literal = _literal_address(raw_host)
        if literal is not None:
            host = literal.compressed
            self.check_address(raw_host, literal, name_allowed=False)
        else:
            name = _normalise_name(raw_host)
            if name is None:
                raise OutboundRefused("outbox.url_invalid")
            host = name
            if not self.allows_name(host):
                raise OutboundRefused("outbox.host_not_allowed", params={"host": host})
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        return Endpoint(url=url, scheme=scheme, host=host, port=port or (443 if scheme == "https" else 80),
                        target=target, literal=literal)

    def allows_name(self, host: str) -> bool:
        return host in self.names or any(host.endswith(suffix) for suffix in self.suffixes)

    def check_address(self, host: str, address: IPAddress, *, name_allowed: bool) -> None:
        """Raise :class:`OutboundRefused` unless ``address`` (which ``host`` is or resolves to)
        may be reached. ``name_allowed``: the host is a listed name, so a public address needs
        no CIDR of its own."""
        address = _without_scope(address)
        listed = any(address.version == network.version and address in network for network in self.networks)
        if address in METADATA_ADDRESSES:
            exact = any(network.num_addresses == 1 and address in network for network in self.networks
                        if network.version == address.version)
            if not exact:
                raise OutboundRefused("outbox.address_not_allowed", params={"host": host[:253], "address": address.compressed})
            return
        if is_special(address):
            if not listed:
                raise OutboundRefused("outbox.address_not_allowed", params={"host": host[:253], "address": address.compressed})
            return
        if not (listed or name_allowed):
            raise OutboundRefused("outbox.address_not_allowed", params={"host": host[:253], "address": address.compressed})

    def pin(self, endpoint: Endpoint, resolver: Resolver) -> str:
        """The address to connect to: the literal one, or the first the host resolves to, after
        checking every resolved address. Raises :class:`OutboundRefused`, or
        :class:`RetryableDeliveryError` (``outbox.dns_failed``) when the name does not resolve."""
        if endpoint.literal is not None:
            self.check_address(endpoint.host, endpoint.literal, name_allowed=False)
            return endpoint.literal.compressed
        if not self.allows_name(endpoint.host):
            raise OutboundRefused("outbox.host_not_allowed", params={"host": endpoint.host})
        try:
            answers = resolver(endpoint.host, endpoint.port)
        except OSError:
            raise RetryableDeliveryError("outbox.dns_failed", params={"host": endpoint.host}) from None
        if not answers:
            raise RetryableDeliveryError("outbox.dns_failed", params={"host": endpoint.host})
        addresses: list[IPAddress] = []
        for answer in answers:
            try:
                addresses.append(ipaddress.ip_address(answer))
            except ValueError:
                raise OutboundRefused("outbox.address_not_allowed", params={"host": endpoint.host, "address": answer[:64]}) from None
        for address in addresses:  # every answer: a resolver may hand out a bad one next time
            self.check_address(endpoint.host, address, name_allowed=True)
        return str(addresses[0])


def is_special(address: IPAddress) -> bool:
    """Whether ``address`` is anything but an ordinary public unicast address."""
    address = _without_scope(address)
    if (address.is_private or address.is_loopback or address.is_link_local or address.is_multicast
            or address.is_reserved or address.is_unspecified or not address.is_global):
        return True
    if isinstance(address, ipaddress.IPv6Address) and (
            address.ipv4_mapped is not None or address.sixtofour is not None or address.teredo is not None):
        return True
    return any(address.version == network.version and address in network for network in _SPECIAL_NETWORKS)


def system_resolver(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to (TCP), in the resolver's order."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    return [str(info[4][0]) for info in infos]


def _without_scope(address: IPAddress) -> IPAddress:
    if isinstance(address, ipaddress.IPv6Address) and address.scope_id:
        return ipaddress.IPv6Address(address.compressed.split("%", 1)[0])
    return address


def _literal_address(host: str) -> IPAddress | None:
    """The address ``host`` names, in any spelling a resolver would accept, else None."""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    return _legacy_ipv4(host)


def _legacy_ipv4(host: str) -> ipaddress.IPv4Address | None:
    """``2130706433``, ``0x7f.0.0.1``, ``0177.0.0.1``, ``127.1``: inet_aton's spellings."""
    text = host.lower().rstrip(".")
    if not text or not _NUMERIC_LOOKING.match(text):
        return None
    parts = text.split(".")
    if len(parts) > 4:
        return None
    values: list[int] = []
    for part in parts:
        try:
            if part.startswith("0x"):
                values.append(int(part[2:] or "0", 16))
            elif len(part) > 1 and part.startswith("0"):
                values.append(int(part[1:], 8))
            else:
                values.append(int(part, 10))
        except ValueError:
            return None
    # The last part fills every byte the earlier ones leave (a.b.c.d, a.b.c16, a.b24, a32).
    limits = [256] * (len(values) - 1) + [256 ** (5 - len(values))]
    if any(not 0 <= value < limit for value, limit in zip(values, limits, strict=True)):
        return None
    number = 0
    for value in values[:-1]:
        number = number * 256 + value
    number = number * limits[-1] + values[-1]
    return ipaddress.IPv4Address(number)


def _normalise_name(host: str) -> str | None:
    """Lower-case IDNA form of a host name without its trailing dot, or None if it is not one."""
    name = host.strip().rstrip(".").lower()
    if not name:
        return None
    try:
        name = name.encode("idna").decode("ascii")
    except UnicodeError:
        return None
    return name if _HOST_NAME.match(name) else None


__all__ = ["METADATA_ADDRESSES", "Endpoint", "IPAddress", "OutboundPolicy", "Resolver", "is_special", "system_resolver"]
