"""An ASGI middleware that authenticates every request before routing, so that no route, added
now or later, can be reached without a principal.

Public without credentials (exact paths, after the ASGI ``root_path``; ``/health/``, ``/HEALTH``
or ``//health`` are not these paths and need a principal like everything else):

- ``/health`` and ``/ready`` (probes);
- in development mode only, the API docs: ``/docs``, ``/redoc``, ``/docs/oauth2-redirect``,
  ``/openapi.json`` and the files under ``/docs/static/``. In production mode
  (``LOWCODE_MODE=production``) they need a principal too: the schema lists every route and
  parameter, which is reconnaissance an outsider should not get for free.

Everything else, unknown paths included (so a 404 does not tell an outsider which routes
exist), is answered 401 ``{errors: [{path, code, message}]}`` with ``WWW-Authenticate: Bearer``
(RFC 6750: ``error="invalid_token"`` when a token was given but refused, ``invalid_request``
when the header is malformed) unless :class:`engine.security.authentication.Authenticator`
finds a principal, which is left in the scope for :func:`engine.api.context.actor_of`.
API tokens are looked up in a worker thread (a database read); JWTs are verified in place.
"""
from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool

from engine.api.limits import ASGIApp, Receive, Scope, Send
from engine.api.responses import ExactJSONResponse
from engine.errors import BadRequest, EngineError, Unauthenticated, Unavailable, negotiate_language
from engine.facade import Engine
from engine.security.tokens import PREFIX

PRINCIPAL = "lowcode.principal"
"""The scope key the authenticated principal is kept under."""
PUBLIC_PATHS = frozenset({"/health", "/ready"})
DOCS_PATHS = frozenset({"/docs", "/redoc", "/docs/oauth2-redirect", "/openapi.json"})
DOCS_ASSETS = "/docs/static/"
REALM = 'Bearer realm="lowcode"'

log = logging.getLogger("engine.security")


def route_path(scope: Scope) -> str:
    """The path routing matches: ``path`` without the ``root_path`` prefix (as Starlette does)."""
    path: str = scope.get("path", "")
    root: str = scope.get("root_path", "")
    if root and path.startswith(root) and (len(path) == len(root) or path[len(root)] == "/"):
        return path[len(root):]
    return path


def is_public(path: str, production: bool) -> bool:
    if path in PUBLIC_PATHS:
        return True
    return not production and (path in DOCS_PATHS or path.startswith(DOCS_ASSETS))


def challenge(exc: EngineError) -> str:
    """The ``WWW-Authenticate`` value for a 401 (RFC 6750 §3)."""
    if exc.code == "auth.required":
        return REALM
    if exc.code in ("auth.malformed", "auth.multiple_credentials", "auth.unsupported_scheme"):
        return f'{REALM}, error="invalid_request"'
    return f'{REALM}, error="invalid_token"'


def document_security(app: FastAPI) -> None:
    """Declare bearer authentication in the app's OpenAPI document: a ``bearer`` security
    scheme required by every operation but ``/health`` and ``/ready``, each documenting its 401
    (Swagger UI then shows its Authorize button; schema-driven clients and fuzzers send the token)."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        schema = build()
        schemes = schema.setdefault("components", {}).setdefault("securitySchemes", {})
        if "bearer" not in schemes:
            schemes["bearer"] = {"type": "http", "scheme": "bearer",
                                 "description": "An API token (`lowcode tokens create`, `lct_...`) or a JWT"}
            schema["security"] = [{"bearer": []}]
            for path, operations in schema.get("paths", {}).items():
                for operation in operations.values():
                    if not isinstance(operation, dict):
                        continue
                    if path in PUBLIC_PATHS:
                        operation["security"] = []
                    else:
                        operation.setdefault("responses", {}).setdefault("401", {
                            "description": "No principal: `{errors: [{path, code, message}]}` (`auth.*`) with "
                                           "`WWW-Authenticate: Bearer`"})
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


class Authentication:
    def __init__(self, app: ASGIApp, engine: Engine) -> None:
        self.app = app
        self.engine = engine

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        if is_public(route_path(scope), self.engine.settings.production):
            await self.app(scope, receive, send)
            return
        headers = list(scope.get("headers") or ())
        authenticator = self.engine.authenticator
        try:
            if any(name.lower() == b"authorization" and PREFIX.encode() in value for name, value in headers):
                principal = await run_in_threadpool(authenticator.principal, headers)  # database read
            else:
                principal = authenticator.principal(headers)
        except (Unauthenticated, BadRequest, Unavailable) as exc:
            await self._refuse(exc, scope, receive, send, headers)
            return
        scope[PRINCIPAL] = principal
        await self.app(scope, receive, send)

    async def _refuse(self, exc: EngineError, scope: Scope, receive: Receive, send: Send,
                      headers: list[tuple[bytes, bytes]]) -> None:
        language = negotiate_language(next((value.decode("latin-1") for name, value in headers
                                            if name.lower() == b"accept-language"), None))
        extra = {"WWW-Authenticate": challenge(exc)} if exc.status == 401 else None
        if exc.status == 401:
            log.info("authentication refused: %s on %s %s", exc.code, scope.get("method", ""), route_path(scope)[:200])
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        response = ExactJSONResponse(exc.to_body(language), status_code=exc.status, headers=extra)
        await response(scope, receive, send)
