"""Per-request helpers shared by the routers: the engine, the actor, the language, the body."""
from __future__ import annotations

import re
from typing import Any

from fastapi import Request

from engine.errors import BadRequest, Unauthenticated, negotiate_language
from engine.facade import Engine
from engine.jsoncodec import loads
from engine.security import Principal


def engine_of(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine


def language_of(request: Request) -> str:
    return negotiate_language(request.headers.get("accept-language"))


def actor_of(request: Request) -> Principal:
    """The caller, as the authentication middleware found it (engine.api.authentication: a
    bearer token, or the gateway's X-User / X-Roles when trusted). 401 ``auth.required`` when
    the request carries none (a public path, or an app built without the middleware)."""
    principal = request.scope.get("lowcode.principal")
    if not isinstance(principal, Principal):
        raise Unauthenticated("auth.required")
    return principal


def utf8_header(request: Request, name: str) -> str | None:
    """A header's value read as UTF-8 (``request.headers`` reads latin-1, which turns ``中`` into
    ``ä¸­``), or None when absent; 400 ``request.bad_header`` when it is not UTF-8."""
    wanted = name.lower().encode("ascii")
    for key, raw in request.headers.raw:
        if key.lower() == wanted:
            try:
                return raw.decode("utf-8")
            except UnicodeDecodeError:
                raise BadRequest("request.bad_header", path=name, params={"name": name, "reason": "not UTF-8"}) from None
    return None


def unique_query_params(request: Request, skip: frozenset[str] | set[str] = frozenset()) -> dict[str, str]:
    """The query parameters not in ``skip``, each given once: 400 ``request.bad_parameter`` at a
    parameter named twice (``?region=A&region=B``), which a list would otherwise silently read as
    one of its values. ``skip`` names are checked too."""
    seen: dict[str, str] = {}
    for name, value in request.query_params.multi_items():
        if name in seen:
            raise BadRequest("request.bad_parameter", path=name, params={"name": name, "reason": "given more than once"})
        seen[name] = value
    return {name: value for name, value in seen.items() if name not in skip}


async def json_body(request: Request, *, optional: bool = False) -> Any:
    """The body parsed with exact decimals; an empty body is None when ``optional``."""
    raw = await request.body()
    if optional and not raw.strip():
        return None
    return loads(raw)


JSON_BODY = {"requestBody": {"required": True, "content": {"application/json": {"schema": {"type": "object"}}}}}
OPTIONAL_JSON_BODY = {"requestBody": {"required": False, "content": {"application/json": {"schema": {
    "type": "object", "properties": {"comment": {"type": "string"}}, "additionalProperties": False}}}}}


def int_query(request: Request, name: str, default: int) -> int:
    """A whole-number query parameter (``offset``, ``limit``), or 400 ``request.bad_parameter``
    naming it; the engine checks the range."""
    raw = request.query_params.get(name)
    if raw is None:
        return default
    # ASCII digits only: int() would also take "1_000", full-width and other scripts' digits
    if _WHOLE_NUMBER.fullmatch(raw) is None:
        raise BadRequest("request.bad_parameter", path=name, params={"name": name, "reason": "not an integer"})
    return int(raw)


_WHOLE_NUMBER = re.compile(r"-?[0-9]{1,18}")
