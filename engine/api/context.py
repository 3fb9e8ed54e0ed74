"""Per-request helpers shared by the routers: the engine, the actor, the language, the body."""
from __future__ import annotations

import re
from typing import Any

from fastapi import Request

from engine.errors import BadRequest, negotiate_language
from engine.facade import Engine
from engine.jsoncodec import loads
from engine.security import Principal


def engine_of(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine


def language_of(request: Request) -> str:
    return negotiate_language(request.headers.get("accept-language"))


def actor_of(request: Request) -> Principal:
    """The caller. Until token authentication lands, the development identity comes from the
    ``X-User`` and ``X-Roles`` (comma-separated) headers."""
    user = (request.headers.get("x-user") or "anonymous").strip()[:128] or "anonymous"
    roles = frozenset(role.strip() for role in (request.headers.get("x-roles") or "").split(",") if role.strip())
    return Principal(user, roles)


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
