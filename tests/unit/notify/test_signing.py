"""Request signing: the signature a receiver recomputes, and what it refuses."""
from __future__ import annotations

from engine.notify.signing import sign, signed_headers, verify_signature

BODY = b'{"amount":1.10,"instance":"i-1"}'


def test_signature_is_hmac_sha256_of_timestamp_dot_body() -> None:
    # echo -n '1767574800.{"amount":1.10,"instance":"i-1"}' | openssl dgst -sha256 -hmac s3cret
    assert sign("s3cret", 1767574800, BODY) == (
        "sha256=2ad48b431a30d25d680e614fd8a59fadd6f7af664295662d8c7370ab7333e737")


def test_headers_carry_delivery_topic_and_timestamp() -> None:
    headers = signed_headers("s3cret", 1767574800, BODY, delivery="task.created:i-1:7", topic="task.created")
    assert headers["X-Lowcode-Delivery"] == "task.created:i-1:7"
    assert headers["X-Lowcode-Topic"] == "task.created"
    assert headers["X-Lowcode-Timestamp"] == "1767574800"
    assert headers["X-Lowcode-Signature"] == sign("s3cret", 1767574800, BODY)


def test_verify_accepts_a_fresh_signature() -> None:
    assert verify_signature("s3cret", sign("s3cret", 1000, BODY), "1000", BODY, now=1200) is True


def test_verify_refuses_a_changed_body() -> None:
    assert verify_signature("s3cret", sign("s3cret", 1000, BODY), "1000", BODY.replace(b"1.10", b"1.1"), now=1000) is False


def test_verify_refuses_a_moved_timestamp() -> None:
    assert verify_signature("s3cret", sign("s3cret", 1000, BODY), "1001", BODY, now=1000) is False


def test_verify_refuses_a_replay_outside_the_window() -> None:
    assert verify_signature("s3cret", sign("s3cret", 1000, BODY), "1000", BODY, now=1301) is False


def test_verify_refuses_another_secret() -> None:
    assert verify_signature("other", sign("s3cret", 1000, BODY), "1000", BODY, now=1000) is False
