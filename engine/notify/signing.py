"""Request signing: an HMAC-SHA256 over ``<timestamp>.<body>`` that receivers verify.

A receiver recomputes the signature with the shared secret, compares it in constant time,
refuses timestamps outside a few minutes (replays), and drops a ``X-Lowcode-Delivery`` it has
already processed (delivery is at least once)::

    ok = verify_signature(secret, headers["X-Lowcode-Signature"],
                          headers["X-Lowcode-Timestamp"], body, now=time.time())
"""
from __future__ import annotations

import hashlib
import hmac

SIGNATURE_HEADER = "X-Lowcode-Signature"
TIMESTAMP_HEADER = "X-Lowcode-Timestamp"
DELIVERY_HEADER = "X-Lowcode-Delivery"
TOPIC_HEADER = "X-Lowcode-Topic"
DEFAULT_TOLERANCE_SECONDS = 300


def sign(secret: str | bytes, timestamp: int, body: bytes) -> str:
    """``sha256=<hex>`` of HMAC-SHA256(secret, ``f"{timestamp}."`` + body)."""
    key = secret.encode("utf-8") if isinstance(secret, str) else secret
    digest = hmac.new(key, str(timestamp).encode("ascii") + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def signed_headers(secret: str | bytes, timestamp: int, body: bytes, *, delivery: str, topic: str) -> dict[str, str]:
    """The headers every outgoing request carries."""
    return {
        "Content-Type": "application/json; charset=utf-8",
        SIGNATURE_HEADER: sign(secret, timestamp, body),
        TIMESTAMP_HEADER: str(timestamp),
        DELIVERY_HEADER: delivery,
        TOPIC_HEADER: topic,
    }


def verify_signature(secret: str | bytes, signature: str | None, timestamp: str | None, body: bytes, *,
                     now: float, tolerance_seconds: int = DEFAULT_TOLERANCE_SECONDS) -> bool:
    """Whether ``signature`` signs ``body`` at ``timestamp`` and the timestamp is within
    ``tolerance_seconds`` of ``now`` (Unix seconds)."""
    if not signature or not timestamp or not timestamp.isdigit():
        return False
    if abs(now - int(timestamp)) > tolerance_seconds:
        return False
    return hmac.compare_digest(sign(secret, int(timestamp), body), signature)


__all__ = ["DELIVERY_HEADER", "SIGNATURE_HEADER", "TIMESTAMP_HEADER", "TOPIC_HEADER", "sign", "signed_headers",
           "verify_signature"]
