"""Authentication over HTTP with identity headers NOT trusted (the default of a deployment):
every route but /health and /ready needs a real API token or JWT; each refusal is a 401
``{errors: [{path, code, message}]}`` with ``WWW-Authenticate: Bearer`` and a code per reason."""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi.testclient import TestClient
from sqlalchemy import select

from engine import Engine, FakeClock
from engine.api.app import create_app
from engine.security.jwt import JWTSettings
from engine.security.startup import StartupRefused
from engine.store.models import ApiTokenRow

SECRET = "k" + "0123456789abcdefghijklmnopqrstuvwxyz-ABCDEFGH"
PROTECTED = "/api/v1/definitions"
PUBLIC = {"/health", "/ready"}
DOCS = {"/docs", "/redoc", "/docs/oauth2-redirect", "/openapi.json"}
SOME_ID = "00000000-0000-4000-8000-000000000000"


@pytest.fixture(scope="module")
def rsa_keys() -> tuple[bytes, bytes, bytes]:
    """(private PEM, public PEM, another private PEM)."""
    def private() -> rsa.RSAPrivateKey:
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)

    key, other = private(), private()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    public = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    other_pem = other.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())
    return pem, public, other_pem


def untrusting(engine: Engine, **jwt_settings: Any) -> Engine:
    """The engine as deployed without a gateway: X-User / X-Roles ignored, JWT as given."""
    settings = JWTSettings(**({"algorithm": "HS256", "secret": SECRET} | jwt_settings))
    engine.settings = replace(engine.settings, trust_identity_headers=False, jwt=settings)
    return engine


@pytest.fixture
def strict(engine: Engine) -> Iterator[TestClient]:
    with TestClient(create_app(untrusting(engine))) as client:
        yield client


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def claims(clock: FakeClock, **extra: Any) -> dict[str, Any]:
    now = int(clock.now().timestamp())
    return {"sub": "jwt-user", "roles": ["admin"], "attributes": {"region": "east"}, "iat": now, "exp": now + 600} | extra


def refused(response: Any, code: str, challenge: str | None = None) -> None:
    assert response.status_code == 401, response.text
    (error,) = response.json()["errors"]
    assert (error["path"], error["code"]) == ("", code), error
    assert isinstance(error["message"], str) and error["message"], error
    header = response.headers["www-authenticate"]
    assert header.startswith('Bearer realm="lowcode"'), header
    if challenge is not None:
        assert f'error="{challenge}"' in header, header


# -- every route ---------------------------------------------------------------------------------

def every_route(app: Any) -> set[tuple[str, str]]:
    """(method, concrete path) of every route the app serves, nested routers and mounts included,
    and of every operation in its OpenAPI document."""
    found: set[tuple[str, str]] = set()

    def add(path: str, methods: Any) -> None:
        concrete = re.sub(r"\{[^}:]+:path\}", "x", path)
        concrete = re.sub(r"\{[^}]+\}", SOME_ID, concrete)
        for method in methods or ("GET",):
            found.add((method, concrete))

    for route in app.routes:
        contexts = getattr(route, "effective_route_contexts", None)
        if contexts is not None:
            for context in contexts():
                add(context.path, context.methods)
        elif hasattr(route, "methods") and route.methods:
            add(route.path, route.methods)
        else:  # a Mount: the docs assets
            add(route.path.rstrip("/") + "/swagger-ui.css", ("GET",))
    for path, operations in app.openapi()["paths"].items():
        add(path, [method.upper() for method in operations if method in ("get", "post", "put", "patch", "delete")])
    return found


def test_every_route_but_health_and_ready_needs_a_principal(engine: Engine, strict: TestClient) -> None:
    routes = every_route(strict.app)
    protected = {(method, path) for method, path in routes if path not in PUBLIC | DOCS and not path.startswith("/docs/")}
    assert len(protected) >= 25, sorted(routes)  # the walk found the API, not just the docs
    assert {("GET", PROTECTED), ("GET", "/metrics"), ("POST", f"/api/v1/forms/{SOME_ID}/records")} <= protected
    for method, path in sorted(protected):
        response = strict.request(method, path)
        assert response.status_code == 401, (method, path, response.status_code, response.text[:200])
        if method != "HEAD":
            assert response.json()["errors"][0]["code"] == "auth.required", (method, path)
        assert response.headers["www-authenticate"] == 'Bearer realm="lowcode"', (method, path)
    for path in PUBLIC:
        assert strict.get(path).status_code in (200, 503), path  # probes answer without credentials


def test_a_valid_token_opens_the_same_routes(engine: Engine, strict: TestClient) -> None:
    headers = bearer(engine.create_token("admin-1", ["admin"]).token)
    assert strict.get(PROTECTED, headers=headers).status_code == 200
    assert strict.get("/metrics", headers=headers).status_code == 200
    assert strict.get("/metrics").status_code == 401
    missing = strict.get(f"/api/v1/records/{SOME_ID}", headers=headers)
    assert missing.status_code == 404  # past authentication, the route itself answers


def test_unknown_paths_are_401_not_404_so_routes_cannot_be_enumerated(engine: Engine, strict: TestClient) -> None:
    refused(strict.get("/api/v1/no-such-thing"), "auth.required")
    headers = bearer(engine.create_token("u", []).token)
    assert strict.get("/api/v1/no-such-thing", headers=headers).status_code == 404


def test_docs_are_public_in_development_and_need_a_principal_in_production(engine: Engine) -> None:
    untrusting(engine)
    with TestClient(create_app(engine)) as client:
        for path in ("/docs", "/redoc", "/openapi.json", "/docs/static/swagger/swagger-ui.css"):
            assert client.get(path).status_code == 200, path
    engine.settings = replace(engine.settings, mode="production")
    with TestClient(create_app(engine)) as client:
        for path in ("/docs", "/redoc", "/openapi.json", "/docs/static/swagger/swagger-ui.css"):
            refused(client.get(path), "auth.required")
        headers = bearer(engine.create_token("reader", []).token)
        assert client.get("/openapi.json", headers=headers).status_code == 200
        assert client.get("/health").status_code == 200


def test_the_message_follows_accept_language(strict: TestClient) -> None:
    response = strict.get(PROTECTED, headers={"Accept-Language": "zh-CN"})
    assert response.status_code == 401
    assert "需要身份认证" in response.json()["errors"][0]["message"]


# -- API tokens ----------------------------------------------------------------------------------

def test_an_api_token_names_its_user_roles_and_attributes(engine: Engine, strict: TestClient) -> None:
    issued = engine.create_token("clerk-7", ["clerk", "viewer"], {"region": "east"})
    principal = engine.authenticate(f"Bearer {issued.token}")
    assert (principal.id, principal.roles, dict(principal.attributes)) == (
        "clerk-7", frozenset({"clerk", "viewer"}), {"region": "east"})
    assert re.fullmatch(r"lct_[A-Za-z0-9_-]{43}", issued.token)
    assert strict.get(PROTECTED, headers=bearer(issued.token)).status_code == 200


def test_only_the_hash_of_a_token_is_stored(engine: Engine) -> None:
    issued = engine.create_token("clerk-7", ["clerk"])
    with engine.db.read() as session:
        row = session.scalars(select(ApiTokenRow)).one()
        stored = " ".join(str(value) for value in vars(row).values())
    assert row.token_hash == hashlib.sha256(issued.token.encode()).hexdigest()
    assert issued.token not in stored and issued.token[4:] not in stored
    assert issued.token not in repr(issued)


def test_a_revoked_token_is_refused_at_once(engine: Engine, strict: TestClient) -> None:
    issued = engine.create_token("clerk-7", ["clerk"])
    assert strict.get(PROTECTED, headers=bearer(issued.token)).status_code == 200
    info = engine.revoke_token(issued.info.id)
    assert info.revoked_at == engine.clock.now()
    refused(strict.get(PROTECTED, headers=bearer(issued.token)), "auth.token_revoked", "invalid_token")
    again = engine.revoke_token(issued.info.id)
    assert again.revoked_at == info.revoked_at  # revoking twice keeps the first time


def test_an_expired_token_is_refused(engine: Engine, clock: FakeClock, strict: TestClient) -> None:
    issued = engine.create_token("clerk-7", ["clerk"], expires_at=clock.now() + timedelta(hours=1))
    clock.advance(timedelta(minutes=59, seconds=59))
    assert strict.get(PROTECTED, headers=bearer(issued.token)).status_code == 200
    clock.advance(timedelta(seconds=1))
    refused(strict.get(PROTECTED, headers=bearer(issued.token)), "auth.token_expired", "invalid_token")


def test_an_unknown_token_of_the_right_shape_is_refused(strict: TestClient) -> None:
    refused(strict.get(PROTECTED, headers=bearer("lct_" + "A" * 43)), "auth.token_unknown", "invalid_token")


def test_last_used_is_written_at_most_once_a_minute(engine: Engine, clock: FakeClock, strict: TestClient) -> None:
    issued = engine.create_token("clerk-7", [])
    first = clock.now()
    strict.get(PROTECTED, headers=bearer(issued.token))
    clock.advance(timedelta(seconds=30))
    strict.get(PROTECTED, headers=bearer(issued.token))
    assert engine.tokens()[0].last_used_at == first
    clock.advance(timedelta(seconds=30))
    strict.get(PROTECTED, headers=bearer(issued.token))
    assert engine.tokens()[0].last_used_at == first + timedelta(seconds=60)


def test_creating_and_revoking_a_token_is_audited(engine: Engine) -> None:
    issued = engine.create_token("clerk-7", ["clerk"])
    engine.revoke_token(issued.info.id)
    from engine.store.models import AuditRow

    with engine.db.read() as session:
        rows = session.scalars(select(AuditRow).where(AuditRow.object_type == "api_token").order_by(AuditRow.id)).all()
    assert [(row.action, row.object_id) for row in rows] == [("token.create", issued.info.id), ("token.revoke", issued.info.id)]
    assert issued.token not in " ".join(row.detail for row in rows)
    assert engine.verify_audit().intact


# -- JWT -----------------------------------------------------------------------------------------

def test_a_jwt_names_its_subject_roles_and_attributes(engine: Engine, clock: FakeClock, strict: TestClient) -> None:
    token = jwt.encode(claims(clock), SECRET, algorithm="HS256")
    principal = engine.authenticate(f"Bearer {token}")
    assert (principal.id, principal.roles, dict(principal.attributes)) == ("jwt-user", frozenset({"admin"}), {"region": "east"})
    assert strict.get(PROTECTED, headers=bearer(token)).status_code == 200


def test_alg_none_is_refused(engine: Engine, clock: FakeClock, strict: TestClient) -> None:
    for alg in ("none", "None", "NONE"):
        header = base64.urlsafe_b64encode(json.dumps({"alg": alg, "typ": "JWT"}).encode()).rstrip(b"=").decode()
        body = base64.urlsafe_b64encode(json.dumps(claims(clock)).encode()).rstrip(b"=").decode()
        for token in (f"{header}.{body}.", f"{header}.{body}.c2ln"):
            refused(strict.get(PROTECTED, headers=bearer(token)), "auth.token_algorithm", "invalid_token")


def _sign_hs256(header: dict[str, Any], payload: dict[str, Any], key: bytes) -> str:
    def part(value: dict[str, Any]) -> bytes:
        return base64.urlsafe_b64encode(json.dumps(value, separators=(",", ":")).encode()).rstrip(b"=")

    signing_input = part(header) + b"." + part(payload)
    signature = base64.urlsafe_b64encode(hmac.new(key, signing_input, hashlib.sha256).digest()).rstrip(b"=")
    return (signing_input + b"." + signature).decode()


def test_hs256_signed_with_the_rs256_public_key_is_refused(engine: Engine, clock: FakeClock,
                                                            rsa_keys: tuple[bytes, bytes, bytes]) -> None:
    private, public, _ = rsa_keys
    untrusting(engine, algorithm="RS256", secret=None, public_key=public.decode())
    with TestClient(create_app(engine)) as client:
        good = jwt.encode(claims(clock), private, algorithm="RS256")
        assert client.get(PROTECTED, headers=bearer(good)).status_code == 200
        for key in (public, public.strip(), public.replace(b"\n", b"")):  # the confusion attack's usual variants
            forged = _sign_hs256({"alg": "HS256", "typ": "JWT"}, claims(clock, roles=["admin", "auditor"]), key)
            refused(client.get(PROTECTED, headers=bearer(forged)), "auth.token_algorithm", "invalid_token")
        other_size = jwt.encode(claims(clock), private, algorithm="RS512")
        refused(client.get(PROTECTED, headers=bearer(other_size)), "auth.token_algorithm")


def test_a_token_signed_with_another_key_is_refused(engine: Engine, clock: FakeClock, strict: TestClient,
                                                    rsa_keys: tuple[bytes, bytes, bytes]) -> None:
    wrong = jwt.encode(claims(clock), SECRET + "x", algorithm="HS256")
    refused(strict.get(PROTECTED, headers=bearer(wrong)), "auth.token_invalid", "invalid_token")
    private, public, other = rsa_keys
    untrusting(engine, algorithm="RS256", secret=None, public_key=public.decode())
    refused(strict.get(PROTECTED, headers=bearer(jwt.encode(claims(clock), other, algorithm="RS256"))), "auth.token_invalid")


def test_a_tampered_payload_is_refused(engine: Engine, clock: FakeClock, strict: TestClient) -> None:
    header, _, signature = jwt.encode(claims(clock), SECRET, algorithm="HS256").split(".")
    elevated = base64.urlsafe_b64encode(json.dumps(claims(clock, sub="admin-1", roles=["admin", "auditor"])).encode())
    forged = f"{header}.{elevated.rstrip(b'=').decode()}.{signature}"
    refused(strict.get(PROTECTED, headers=bearer(forged)), "auth.token_invalid")
    refused(strict.get(PROTECTED, headers=bearer(forged[:-2])), "auth.token_invalid")


def test_exp_is_required_and_checked_with_the_engine_clock(engine: Engine, clock: FakeClock, strict: TestClient) -> None:
    no_exp = claims(clock)
    del no_exp["exp"]
    response = strict.get(PROTECTED, headers=bearer(jwt.encode(no_exp, SECRET, algorithm="HS256")))
    refused(response, "auth.claims_invalid")
    assert "exp" in response.json()["errors"][0]["message"]
    now = int(clock.now().timestamp())
    token = jwt.encode(claims(clock, exp=now + 60), SECRET, algorithm="HS256")
    clock.advance(timedelta(seconds=60 + 30))  # the 30 s leeway still admits it
    assert strict.get(PROTECTED, headers=bearer(token)).status_code == 200
    clock.advance(timedelta(seconds=1))
    refused(strict.get(PROTECTED, headers=bearer(token)), "auth.token_expired", "invalid_token")
    for bad in ("soon", True, None, [1]):
        refused(strict.get(PROTECTED, headers=bearer(jwt.encode(claims(clock, exp=bad), SECRET, algorithm="HS256"))),
                "auth.claims_invalid")


def test_a_token_before_its_nbf_is_refused(engine: Engine, clock: FakeClock, strict: TestClient) -> None:
    now = int(clock.now().timestamp())
    token = jwt.encode(claims(clock, nbf=now + 120), SECRET, algorithm="HS256")
    refused(strict.get(PROTECTED, headers=bearer(token)), "auth.token_not_yet_valid")
    clock.advance(timedelta(seconds=90))  # within the leeway of nbf
    assert strict.get(PROTECTED, headers=bearer(token)).status_code == 200


def test_issuer_audience_and_claim_shapes_are_checked(engine: Engine, clock: FakeClock) -> None:
    untrusting(engine, issuer="https://idp.example", audience="lowcode")
    with TestClient(create_app(engine)) as client:
        def code(**extra: Any) -> Any:
            response = client.get(PROTECTED, headers=bearer(jwt.encode(claims(clock, **extra), SECRET, algorithm="HS256")))
            return response.status_code if response.status_code == 200 else response.json()["errors"][0]["code"]

        assert code(iss="https://idp.example", aud="lowcode") == 200
        assert code(iss="https://idp.example", aud=["other", "lowcode"]) == 200
        assert code(iss="https://evil.example", aud="lowcode") == "auth.claims_invalid"
        assert code(aud="lowcode") == "auth.claims_invalid"  # no iss
        assert code(iss="https://idp.example", aud="other") == "auth.claims_invalid"
        assert code(iss="https://idp.example") == "auth.claims_invalid"  # no aud
        assert code(iss="https://idp.example", aud="lowcode", sub="") == "auth.claims_invalid"
        assert code(iss="https://idp.example", aud="lowcode", sub=7) == "auth.claims_invalid"
        assert code(iss="https://idp.example", aud="lowcode", roles="admin") == "auth.claims_invalid"
        assert code(iss="https://idp.example", aud="lowcode", attributes={"region": 1}) == "auth.claims_invalid"
    untrusting(engine)  # no audience configured: a token meant for another service is refused
    with TestClient(create_app(engine)) as client:
        other = jwt.encode(claims(clock, aud="another-service"), SECRET, algorithm="HS256")
        refused(client.get(PROTECTED, headers=bearer(other)), "auth.claims_invalid")


def test_jwt_off_refuses_every_jwt(engine: Engine, clock: FakeClock) -> None:
    untrusting(engine, algorithm="off")
    with TestClient(create_app(engine)) as client:
        refused(client.get(PROTECTED, headers=bearer(jwt.encode(claims(clock), SECRET, algorithm="HS256"))),
                "auth.token_invalid")
        assert client.get(PROTECTED, headers=bearer(engine.create_token("u", []).token)).status_code == 200


# -- bypass tricks -------------------------------------------------------------------------------

@pytest.mark.parametrize("path", [PROTECTED + "/", "/API/v1/definitions", "/Api/V1/Definitions", "//api/v1/definitions",
                                  "/api/v1//definitions", "/health/", "/HEALTH", "//health", "/ready/", "/health/x"])
def test_path_variants_are_not_public(strict: TestClient, path: str) -> None:
    refused(strict.get(path), "auth.required")


@pytest.mark.parametrize("name", ["token", "access_token", "api_key", "authorization", "bearer"])
def test_a_token_in_the_query_string_is_not_read(engine: Engine, strict: TestClient, name: str) -> None:
    token = engine.create_token("admin-1", ["admin"]).token
    refused(strict.get(PROTECTED, params={name: token}), "auth.required")
    refused(strict.get(PROTECTED, params={name: f"Bearer {token}"}), "auth.required")


def test_identity_headers_are_ignored_unless_trusted(engine: Engine, strict: TestClient) -> None:
    refused(strict.get(PROTECTED, headers={"X-User": "admin-1", "X-Roles": "admin"}), "auth.required")
    refused(strict.get(PROTECTED, headers={"x-user": "admin-1"}), "auth.required")
    engine.settings = replace(engine.settings, trust_identity_headers=True)  # read at each request
    assert strict.get(PROTECTED, headers={"X-User": "admin-1", "X-Roles": "admin"}).status_code == 200


def test_a_bearer_token_wins_over_trusted_identity_headers(engine: Engine, strict: TestClient) -> None:
    engine.settings = replace(engine.settings, trust_identity_headers=True)
    headers = {"X-User": "admin-1", "X-Roles": "admin", "Authorization": "Bearer lct_" + "B" * 43}
    refused(strict.get(PROTECTED, headers=headers), "auth.token_unknown")


def test_the_scheme_is_case_insensitive_but_still_checks_the_token(engine: Engine, strict: TestClient) -> None:
    token = engine.create_token("u", []).token
    for scheme in ("bearer", "BEARER", "BeArEr"):
        assert strict.get(PROTECTED, headers={"Authorization": f"{scheme} {token}"}).status_code == 200, scheme
        refused(strict.get(PROTECTED, headers={"Authorization": f"{scheme} {token[:-1]}x"}), "auth.token_unknown")


@pytest.mark.parametrize(("value", "code"), [
    ("Basic YWRtaW46YWRtaW4=", "auth.unsupported_scheme"), ("Bearer", "auth.malformed"), ("Bearer ", "auth.malformed"),
    ("Bearer a b", "auth.malformed"), ("Bearer\ttoken", "auth.malformed"), ("Bearer " + "a" * 9000, "auth.malformed"),
    ("Bearer \"lct_x\"", "auth.malformed"), ("Bearer lct_short", "auth.token_unknown"), ("Bearer abc", "auth.token_invalid"),
])
def test_malformed_credentials_have_their_own_codes(strict: TestClient, value: str, code: str) -> None:
    refused(strict.get(PROTECTED, headers={"Authorization": value}), code)


def test_two_authorization_headers_are_refused_even_if_one_is_valid(engine: Engine, strict: TestClient) -> None:
    token = engine.create_token("u", []).token
    for pair in ([f"Bearer {token}", "Bearer lct_" + "C" * 43], [f"Bearer {token}", f"Bearer {token}"]):
        response = strict.get(PROTECTED, headers=[("Authorization", pair[0]), ("Authorization", pair[1])])
        refused(response, "auth.multiple_credentials", "invalid_request")
    combined = strict.get(PROTECTED, headers={"Authorization": f"Bearer {token}, Bearer {token}"})
    refused(combined, "auth.malformed")


def test_non_ascii_authorization_is_malformed_not_a_crash(strict: TestClient) -> None:
    response = strict.get(PROTECTED, headers=[(b"Authorization", "Bearer lct_令牌".encode())])
    refused(response, "auth.malformed")


# -- production start --------------------------------------------------------------------------

def test_create_app_refuses_an_unsafe_production_configuration(engine: Engine) -> None:
    engine.settings = replace(engine.settings, mode="production", trust_identity_headers=False,
                              jwt=JWTSettings(secret="changeme"))
    with pytest.raises(StartupRefused) as refusal:
        create_app(engine)
    assert [issue.code for issue in refusal.value.issues] == ["startup.jwt_secret_default"]
    engine.settings = replace(engine.settings, jwt=JWTSettings(secret=SECRET))
    with TestClient(create_app(engine)) as client:
        refused(client.get(PROTECTED), "auth.required")


def test_the_openapi_document_declares_bearer_authentication(engine: Engine, token_for: Any) -> None:
    with TestClient(create_app(untrusting(engine))) as client:
        schema = client.get("/openapi.json").json()  # public in development
    assert schema["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    assert schema["security"] == [{"bearer": []}]
    assert schema["paths"]["/health"]["get"]["security"] == [] and schema["paths"]["/ready"]["get"]["security"] == []
    assert "401" in schema["paths"][PROTECTED]["get"]["responses"]
    assert "security" not in schema["paths"][PROTECTED]["get"]  # the document-wide requirement applies


def test_the_token_for_fixture_gives_working_headers(engine: Engine, strict: TestClient, token_for: Any) -> None:
    headers = token_for("mgr-9", ["account_manager"], {"region": "east"})
    assert strict.get(PROTECTED, headers=headers).status_code == 200
    principal = engine.authenticate(headers["Authorization"])
    assert (principal.id, principal.roles, dict(principal.attributes)) == ("mgr-9", frozenset({"account_manager"}),
                                                                          {"region": "east"})


def test_configured_top_level_claims_become_attributes(engine: Engine, clock: FakeClock) -> None:
    untrusting(engine, attribute_claims=("branch", "desk"))
    with TestClient(create_app(engine)) as client:
        token = jwt.encode(claims(clock, branch="SH01", team="x"), SECRET, algorithm="HS256")
        assert client.get(PROTECTED, headers=bearer(token)).status_code == 200
        principal = engine.authenticate(f"Bearer {token}")
        assert dict(principal.attributes) == {"region": "east", "branch": "SH01"}  # team is not configured
        bad = jwt.encode(claims(clock, branch=["SH01", "SH02"]), SECRET, algorithm="HS256")
        refused(client.get(PROTECTED, headers=bearer(bad)), "auth.claims_invalid")
