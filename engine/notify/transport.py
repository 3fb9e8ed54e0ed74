"""``OutboundHttp``: one signed POST to an allow-listed endpoint, pinned to the checked address,
never following a redirect, with short timeouts; the answer becomes a verdict.

    2xx                                   delivered
    408, 429, 5xx, timeouts, DNS/connect  RetryableDeliveryError
    3xx (not followed), other 4xx         PermanentDeliveryError
"""
from __future__ import annotations

import http.client
import socket
import ssl
from datetime import timedelta
from typing import Mapping, Protocol

from engine.notify.errors import PermanentDeliveryError, RetryableDeliveryError
from engine.notify.outbound import Endpoint, OutboundPolicy, Resolver, system_resolver

MAX_RESPONSE_BYTES = 65_536
"""Read at most this much of an answer: only the status matters."""
_RETRYABLE_4XX = frozenset({408, 425, 429})


class Poster(Protocol):
    """The seam between channels and the network."""

    def post(self, endpoint: Endpoint, body: bytes, headers: Mapping[str, str]) -> None:
        """Send; return on 2xx, raise a :class:`DeliveryError` otherwise."""
        ...


class OutboundHttp:
    """Posts with :mod:`http.client` (no extra dependency), through the allow-list."""

    def __init__(self, policy: OutboundPolicy, *, timeout: timedelta, resolver: Resolver = system_resolver,
                 ca_file: str | None = None) -> None:
        self.policy = policy
        self.timeout = timeout.total_seconds()
        self.resolver = resolver
        self._tls = ssl.create_default_context(cafile=ca_file)

    def post(self, endpoint: Endpoint, body: bytes, headers: Mapping[str, str]) -> None:
        address = self.policy.pin(endpoint, self.resolver)  # checked again, after resolution
        connection = _PinnedConnection(endpoint, address, self.timeout, self._tls)
        try:
            connection.request("POST", endpoint.target, body=body, headers={**headers, "Connection": "close"})
            response = connection.getresponse()
            response.read(MAX_RESPONSE_BYTES)
            status, retry_after = response.status, response.getheader("Retry-After")
        except TimeoutError:
            raise RetryableDeliveryError("outbox.timeout", params={"seconds": self.timeout}) from None
        except (OSError, http.client.HTTPException) as exc:
            raise RetryableDeliveryError("outbox.connection_failed", params={"reason": type(exc).__name__}) from None
        finally:
            connection.close()
        raise_for_status(status, retry_after)


def raise_for_status(status: int, retry_after: str | None = None) -> None:
    """Return on 2xx; otherwise raise the verdict for ``status``."""
    if 200 <= status < 300:
        return
    if 300 <= status < 400:
        raise PermanentDeliveryError("outbox.redirect_refused", params={"status": status})
    if 400 <= status < 500 and status not in _RETRYABLE_4XX:
        raise PermanentDeliveryError("outbox.http_status", params={"status": status})
    raise RetryableDeliveryError("outbox.http_status", params={"status": status}, retry_after=_retry_after(retry_after))


def _retry_after(value: str | None) -> timedelta | None:
    """``Retry-After`` in seconds (dates are ignored: the worker's clock is the only clock)."""
    if value is None or not value.strip().isdigit():
        return None
    return timedelta(seconds=min(int(value.strip()), 86_400))


class _PinnedConnection(http.client.HTTPSConnection):
    """Connects to a given address while naming the URL's host (Host header, TLS SNI and
    certificate check), so that no second DNS answer is ever used."""

    def __init__(self, endpoint: Endpoint, address: str, timeout: float, tls: ssl.SSLContext) -> None:
        super().__init__(endpoint.host, endpoint.port, timeout=timeout, context=tls)
        self._address = address
        self.default_port = 443 if endpoint.scheme == "https" else 80  # Host header omits it then
        self._tls_on = endpoint.scheme == "https"
        self._tls_context = tls

    def connect(self) -> None:
        sock = socket.create_connection((self._address, self.port), self.timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock = self._tls_context.wrap_socket(sock, server_hostname=self.host) if self._tls_on else sock


__all__ = ["MAX_RESPONSE_BYTES", "OutboundHttp", "Poster", "raise_for_status"]
