"""Attack class: authentication bypass through the path and the query string — trailing
slashes, case, doubled and encoded slashes, dot segments (sent raw, not normalised by a client),
NUL and ``;`` suffixes, fragments, public-path prefixes (``/health``, ``/docs/static/``),
credentials in the query string, identity and URL-rewrite headers a gateway would strip, every
HTTP method, and malformed ``Authorization`` headers.

With identity headers not trusted (the default), every request without a valid bearer token is
401 ``{errors: [{path, code, message}]}`` with ``WWW-Authenticate: Bearer ...`` — or, for a
path inside the docs' static mount, 404 — and never carries data. Payloads: 27 raw paths, 7
methods, 6 headers, 9 malformed credentials, 3 query-string credentials, 7 docs paths in production
mode: 59 cases.
"""
from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import pytest

pytest.importorskip("engine.security.authentication", reason="bearer authentication (engine.security.authentication) has not landed")

from tests.security.conftest import MODELER, assert_refused  # noqa: E402

PROTECTED = "/api/v1/definitions"


@pytest.fixture(scope="module")
def untrusting(plain_client: Any) -> Any:
    """The plain engine's app with one form and record, then with X-User/X-Roles *not* trusted,
    as a deployment without a gateway; and an admin API token."""
    engine = plain_client.app.state.engine
    assert plain_client.post("/api/v1/definitions", headers=MODELER, json=NOTE).status_code in (200, 201)
    record = plain_client.post("/api/v1/forms/note/records", json={"text": "hello"}).json()
    trusted = engine.settings
    engine.settings = dataclasses.replace(trusted, trust_identity_headers=False)
    token = engine.create_token("admin-1", ["admin"]).token
    yield plain_client, record["id"], token
    engine.settings = trusted


NOTE = {"kind": "form", "key": "note", "title": "Note",
        "schema": {"type": "object", "properties": {"text": {"type": "string"}}}}


def _raw(app: Any, method: str, path: str, query: bytes = b"", headers: list[tuple[bytes, bytes]] | None = None
         ) -> tuple[int, dict[str, str], bytes]:
    """Call the ASGI app with ``path`` exactly as given (a client would normalise dot segments)."""
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    raw_path = path.encode("latin-1")
    from urllib.parse import unquote

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method, "scheme": "http",
             "path": unquote(path), "raw_path": raw_path, "query_string": query, "root_path": "",
             "headers": [(b"host", b"testserver"), *(headers or [])], "client": ("127.0.0.1", 1), "server": ("testserver", 80)}
    asyncio.run(app(scope, receive, send))
    start = next(message for message in sent if message["type"] == "http.response.start")
    body = b"".join(message.get("body", b"") for message in sent if message["type"] == "http.response.body")
    return start["status"], {k.decode().lower(): v.decode() for k, v in start["headers"]}, body


def _assert_unauthenticated(status: int, headers: dict[str, str], body: bytes, allow_404: bool = False) -> None:
    import json

    assert status == 401 or (allow_404 and status == 404), (status, body[:300])
    errors = json.loads(body)["errors"]
    assert [set(error) >= {"path", "code", "message"} for error in errors] == [True]
    if status == 401:
        assert errors[0]["code"].startswith("auth."), errors
        assert headers["www-authenticate"].startswith('Bearer realm="lowcode"')
    assert b"items" not in body and b"hello" not in body


RAW_PATHS = [
    PROTECTED, PROTECTED + "/", "/API/v1/definitions", "/Api/V1/Definitions", "/api/v1//definitions",
    "//api/v1/definitions", "/api/v1/./definitions", "/api/v1/x/../definitions", "/api/v1/%64efinitions",
    "/api%2fv1%2fdefinitions", "/api/v1/definitions%2f", "/api/v1/definitions;/health", "/api/v1/definitions%00",
    "/api/v1/definitions%20", "/health/", "/HEALTH", "//health", "/health/../api/v1/definitions",
    "/health%2f..%2fapi/v1/definitions", "/health;x", "/ready/..", "/openapi.json/../api/v1/definitions",
    "/docs/../api/v1/definitions", "/docs/static/../../api/v1/definitions", "/docs/static/%2e%2e/%2e%2e/api/v1/definitions",
    "/docs/static/swagger/..%2f..%2f..%2fapi/v1/definitions", "/metrics",
]


@pytest.mark.parametrize("path", RAW_PATHS)
def test_path_tricks_do_not_reach_a_protected_route(untrusting: Any, path: str) -> None:
    client, _, _ = untrusting
    status, headers, body = _raw(client.app, "GET", path)
    _assert_unauthenticated(status, headers, body, allow_404=path.startswith("/docs/static/"))


def test_the_record_route_needs_a_principal_and_the_token_opens_it(untrusting: Any) -> None:
    client, record_id, token = untrusting
    _assert_unauthenticated(*_raw(client.app, "GET", f"/api/v1/records/{record_id}"))
    _assert_unauthenticated(*_raw(client.app, "GET", f"/api/v1/records/{record_id.upper()}"))
    opened = client.get(f"/api/v1/records/{record_id}", headers={"Authorization": f"Bearer {token}"})
    assert opened.status_code == 200, opened.text  # the control: the same route with a credential


@pytest.mark.parametrize("method", ["GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE", "POST"])
def test_every_method_needs_a_principal(untrusting: Any, method: str) -> None:
    client, _, _ = untrusting
    response = client.request(method, PROTECTED)
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    if method != "HEAD":
        assert_refused(response, 401, "auth.required")


@pytest.mark.parametrize("headers", [
    {"X-User": "admin-1", "X-Roles": "admin"},
    {"X-Original-URL": "/health"},
    {"X-Rewrite-URL": "/health"},
    {"X-Forwarded-Prefix": "/health"},
    {"X-Forwarded-Path": "/health"},
    {"X-HTTP-Method-Override": "HEAD"},
], ids=lambda headers: next(iter(headers)))
def test_identity_and_rewrite_headers_are_not_credentials(untrusting: Any, headers: dict[str, str]) -> None:
    client, _, _ = untrusting
    assert_refused(client.get(PROTECTED, headers=headers), 401, "auth.required")


@pytest.mark.parametrize(("authorization", "code"), [
    ("Basic YWRtaW46YWRtaW4=", "auth.unsupported_scheme"),
    ("Bearer", "auth.malformed"),
    ("Bearer ", "auth.malformed"),
    ("Bearer lct_", "auth.token_unknown"),
    ("Bearer lct_" + "A" * 43, "auth.token_unknown"),
    ("Bearer lct_ and more", "auth.malformed"),
    ("Bearer \"quoted\"", "auth.malformed"),
    ("Token abc", "auth.unsupported_scheme"),
    ("Bearer " + "a" * 9000, "auth.malformed"),
])
def test_malformed_and_unknown_credentials_are_refused(untrusting: Any, authorization: str, code: str) -> None:
    client, _, _ = untrusting
    response = client.get(PROTECTED, headers={"Authorization": authorization})
    assert_refused(response, 401, (code, "auth.token_invalid", "auth.malformed", "auth.token_unknown"))
    assert response.json()["errors"][0]["code"] == code


@pytest.mark.parametrize("name", ["token", "access_token", "authorization"])
def test_a_valid_token_in_the_query_string_is_not_read(untrusting: Any, name: str) -> None:
    client, _, token = untrusting
    assert_refused(client.get(PROTECTED, params={name: token}), 401, "auth.required")


@pytest.mark.parametrize("path", ["/docs", "/redoc", "/openapi.json", "/docs/oauth2-redirect",
                                  "/docs/static/swagger/swagger-ui-bundle.js", "/DOCS", "/openapi.json/"])
def test_in_production_the_docs_need_a_principal_too(untrusting: Any, path: str) -> None:
    client, _, token = untrusting
    engine = client.app.state.engine
    development = engine.settings
    engine.settings = dataclasses.replace(development, mode="production")  # read at each request
    try:
        _assert_unauthenticated(*_raw(client.app, "GET", path))
        if path in ("/docs", "/openapi.json"):
            assert client.get(path, headers={"Authorization": f"Bearer {token}"}).status_code == 200
    finally:
        engine.settings = development
    assert client.get("/health").status_code == 200
