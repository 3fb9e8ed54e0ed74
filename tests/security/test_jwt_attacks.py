"""Attack class: forged and stale JWT bearer tokens — ``alg: none`` in any spelling, HS/RS
algorithm confusion (an HS256 token signed with the RS256 public key), other algorithms, a
wrong key, tampered payloads and signatures, expired and not-yet-valid tokens (judged by the
engine's clock, with its leeway), missing or malformed claims, wrong issuer or audience, and
``kid``/``jku``/``x5u``/``jwk`` headers pointing at keys elsewhere.

Each is 401 with the reason's code and ``WWW-Authenticate: Bearer ... error="invalid_token"``
over HTTP, and nothing is read. Payloads: 12 HS256 forgeries, 6 RS256 forgeries, 8 time cases,
10 claim cases, 6 key-pointing headers: 42 cases, plus the controls (a valid token works).
"""
from __future__ import annotations

import base64
import dataclasses
import json
from datetime import timedelta
from typing import Any

import pytest

jwt_module = pytest.importorskip("engine.security.jwt", reason="JWT bearer support (engine.security.jwt) has not landed")
pytest.importorskip("engine.security.authentication", reason="bearer authentication (engine.security.authentication) has not landed")

import jwt as pyjwt  # noqa: E402
from cryptography.hazmat.primitives import serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec, rsa  # noqa: E402

from tests.security.conftest import assert_refused  # noqa: E402

SECRET = "s3cret-for-tests-only-" + "0123456789abcdef" * 4  # 86 bytes: enough for HS512 too
PROTECTED = "/api/v1/definitions"
RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
RSA_PUBLIC_PEM = RSA_KEY.public_key().public_bytes(serialization.Encoding.PEM,
                                                   serialization.PublicFormat.SubjectPublicKeyInfo).decode()
OTHER_RSA = rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unsigned(header: dict[str, Any], claims: dict[str, Any], signature: str = "") -> str:
    return f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}.{signature}"


@pytest.fixture(scope="module")
def jwt_app(plain_client: Any) -> Any:
    """The plain engine's app with identity headers not trusted: only a bearer token names a caller."""
    engine = plain_client.app.state.engine
    saved = engine.settings
    engine.settings = dataclasses.replace(saved, trust_identity_headers=False)
    yield engine, plain_client
    engine.settings = saved


def _configure(engine: Any, **jwt: Any) -> None:
    engine.settings = dataclasses.replace(engine.settings, jwt=jwt_module.JWTSettings(**jwt))


def _claims(engine: Any, **extra: Any) -> dict[str, Any]:
    now = int(engine.clock.now().timestamp())
    return {"sub": "admin-1", "roles": ["admin"], "exp": now + 600, **extra}


def _call(client: Any, token: str) -> Any:
    return client.get(PROTECTED, headers={"Authorization": f"Bearer {token}"})


def _assert_invalid(response: Any, code: str) -> None:
    assert_refused(response, 401, code)
    assert response.json()["errors"][0]["code"] == code
    assert response.headers["www-authenticate"] == 'Bearer realm="lowcode", error="invalid_token"'
    assert "items" not in response.json()


def _hs256_forgeries(engine: Any) -> dict[str, tuple[str, str]]:
    claims = _claims(engine)
    good = pyjwt.encode(claims, SECRET, algorithm="HS256")
    head, payload, signature = good.split(".")
    tampered = _b64(json.dumps({**claims, "roles": ["admin", "auditor"]}).encode())
    return {
        "alg none": (_unsigned({"alg": "none", "typ": "JWT"}, claims), "auth.token_algorithm"),
        "alg None": (_unsigned({"alg": "None"}, claims), "auth.token_algorithm"),
        "alg NONE with signature": (_unsigned({"alg": "NONE"}, claims, signature), "auth.token_algorithm"),
        "alg nOnE": (_unsigned({"alg": "nOnE"}, claims), "auth.token_algorithm"),
        "no alg": (_unsigned({"typ": "JWT"}, claims, signature), "auth.token_algorithm"),
        "alg hs256 lower case": (_unsigned({"alg": "hs256"}, claims, signature), "auth.token_algorithm"),
        "HS512 with the secret": (pyjwt.encode(claims, SECRET, algorithm="HS512"), "auth.token_algorithm"),
        "HS384 with the secret": (pyjwt.encode(claims, SECRET, algorithm="HS384"), "auth.token_algorithm"),
        "wrong secret": (pyjwt.encode(claims, SECRET + "x", algorithm="HS256"), "auth.token_invalid"),
        "tampered payload": (f"{head}.{tampered}.{signature}", "auth.token_invalid"),
        "signature stripped": (f"{head}.{payload}.", "auth.token_invalid"),
        "signature of another token": (f"{head}.{payload}.{pyjwt.encode({**claims, 'sub': 'x'}, SECRET).split('.')[2]}",
                                       "auth.token_invalid"),
    }


HS256_CASES = ["alg none", "alg None", "alg NONE with signature", "alg nOnE", "no alg", "alg hs256 lower case",
               "HS512 with the secret", "HS384 with the secret", "wrong secret", "tampered payload",
               "signature stripped", "signature of another token"]


def test_a_valid_hs256_token_is_accepted(jwt_app: Any) -> None:
    engine, client = jwt_app
    _configure(engine, algorithm="HS256", secret=SECRET)
    assert _call(client, pyjwt.encode(_claims(engine), SECRET, algorithm="HS256")).status_code == 200


@pytest.mark.parametrize("case", HS256_CASES)
def test_hs256_forgeries_are_refused(jwt_app: Any, case: str) -> None:
    engine, client = jwt_app
    _configure(engine, algorithm="HS256", secret=SECRET)
    token, code = _hs256_forgeries(engine)[case]
    _assert_invalid(_call(client, token), code)


def _hmac_with_public_key(claims: dict[str, Any]) -> str:
    """HS256 signed with the RS256 public key's PEM text as the HMAC secret (PyJWT itself
    refuses to do this, so the token is assembled by hand)."""
    import hashlib
    import hmac

    signing_input = f"{_b64(json.dumps({'alg': 'HS256', 'typ': 'JWT'}).encode())}.{_b64(json.dumps(claims).encode())}"
    signature = hmac.new(RSA_PUBLIC_PEM.encode(), signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(signature)}"


def _rs256_forgeries(engine: Any) -> dict[str, tuple[str, str]]:
    claims = _claims(engine)
    ec_key = ec.generate_private_key(ec.SECP256R1())
    return {
        "HS256 signed with the public key": (_hmac_with_public_key(claims), "auth.token_algorithm"),
        "alg none": (_unsigned({"alg": "none"}, claims), "auth.token_algorithm"),
        "RS256 with another key": (pyjwt.encode(claims, OTHER_RSA, algorithm="RS256"), "auth.token_invalid"),
        "RS512 with the key": (pyjwt.encode(claims, RSA_KEY, algorithm="RS512"), "auth.token_algorithm"),
        "PS256 with the key": (pyjwt.encode(claims, RSA_KEY, algorithm="PS256"), "auth.token_algorithm"),
        "ES256": (pyjwt.encode(claims, ec_key, algorithm="ES256"), "auth.token_algorithm"),
    }


RS256_CASES = ["HS256 signed with the public key", "alg none", "RS256 with another key", "RS512 with the key",
               "PS256 with the key", "ES256"]


def test_a_valid_rs256_token_is_accepted(jwt_app: Any) -> None:
    engine, client = jwt_app
    _configure(engine, algorithm="RS256", public_key=RSA_PUBLIC_PEM)
    assert _call(client, pyjwt.encode(_claims(engine), RSA_KEY, algorithm="RS256")).status_code == 200


@pytest.mark.parametrize("case", RS256_CASES)
def test_rs256_forgeries_are_refused(jwt_app: Any, case: str) -> None:
    engine, client = jwt_app
    _configure(engine, algorithm="RS256", public_key=RSA_PUBLIC_PEM)
    token, code = _rs256_forgeries(engine)[case]
    _assert_invalid(_call(client, token), code)


# (claims relative to the engine clock's now in seconds, accepted?, code when refused); leeway 30 s
TIME_CASES = [
    ({"exp": -31}, False, "auth.token_expired"),
    ({"exp": -3600}, False, "auth.token_expired"),
    ({"exp": -29}, True, None),  # within the leeway
    ({"exp": 600, "nbf": 31}, False, "auth.token_not_yet_valid"),
    ({"exp": 600, "nbf": 3600}, False, "auth.token_not_yet_valid"),
    ({"exp": 600, "nbf": 29}, True, None),
    ({"exp": None}, False, "auth.claims_invalid"),
    ({"exp": "tomorrow"}, False, "auth.claims_invalid"),
]


@pytest.mark.parametrize(("times", "accepted", "code"), TIME_CASES, ids=[str(case[0]) for case in TIME_CASES])
def test_expiry_and_not_before_follow_the_engine_clock(jwt_app: Any, times: dict[str, Any], accepted: bool,
                                                      code: str | None) -> None:
    engine, client = jwt_app
    _configure(engine, algorithm="HS256", secret=SECRET)
    now = int(engine.clock.now().timestamp())
    claims = {"sub": "admin-1", "roles": ["admin"]}
    for name, offset in times.items():
        if offset is not None:
            claims[name] = now + offset if isinstance(offset, int) else offset
    response = _call(client, pyjwt.encode(claims, SECRET, algorithm="HS256"))
    if accepted:
        assert response.status_code == 200, response.text
    else:
        _assert_invalid(response, str(code))


def test_a_token_expires_when_the_engine_clock_moves_past_it(jwt_app: Any) -> None:
    engine, client = jwt_app
    _configure(engine, algorithm="HS256", secret=SECRET)
    token = pyjwt.encode(_claims(engine), SECRET, algorithm="HS256")  # exp = now + 600
    assert _call(client, token).status_code == 200
    engine.clock.advance(timedelta(seconds=631))
    _assert_invalid(_call(client, token), "auth.token_expired")


CLAIM_CASES = [
    ({"sub": None}, {}),
    ({"sub": ""}, {}),
    ({"sub": "x" * 129}, {}),
    ({"sub": " admin-1"}, {}),
    ({"sub": 42}, {}),
    ({"roles": "admin"}, {}),
    ({"roles": ["admin; DROP"]}, {}),
    ({"attributes": ["branch"]}, {}),
    ({"iss": "https://evil.example"}, {"issuer": "https://idp.example"}),
    ({"aud": "other-service"}, {"audience": "lowcode"}),
]


@pytest.mark.parametrize(("claims", "settings"), CLAIM_CASES, ids=[str(case[0])[:30] for case in CLAIM_CASES])
def test_bad_claims_are_refused(jwt_app: Any, claims: dict[str, Any], settings: dict[str, str]) -> None:
    engine, client = jwt_app
    _configure(engine, algorithm="HS256", secret=SECRET, **settings)
    payload = {**_claims(engine), **claims}
    payload = {name: value for name, value in payload.items() if value is not None}
    _assert_invalid(_call(client, pyjwt.encode(payload, SECRET, algorithm="HS256")), "auth.claims_invalid")


@pytest.mark.parametrize("header", [
    {"kid": "../../../../dev/null"},
    {"kid": "' OR '1'='1"},
    {"jku": "http://evil.example/jwks.json"},
    {"x5u": "http://evil.example/cert.pem"},
    {"jwk": {"kty": "oct", "k": _b64(b"attacker-key-attacker-key-attacker")}},
    {"kid": "attacker", "jku": "http://127.0.0.1:9/jwks"},
], ids=lambda header: next(iter(header)))
def test_key_pointing_headers_are_never_followed(jwt_app: Any, header: dict[str, Any]) -> None:
    engine, client = jwt_app
    _configure(engine, algorithm="HS256", secret=SECRET)
    attacker = "attacker-key-attacker-key-attacker"
    forged = pyjwt.encode(_claims(engine), attacker, algorithm="HS256", headers=header)
    _assert_invalid(_call(client, forged), "auth.token_invalid")
    # the same header on a token signed with the configured key changes nothing either way
    assert _call(client, pyjwt.encode(_claims(engine), SECRET, algorithm="HS256", headers=header)).status_code == 200
