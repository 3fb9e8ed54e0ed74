"""JSON responses written with exact decimals, and the error body every failure uses."""
from __future__ import annotations

from typing import Any

from starlette.responses import JSONResponse

from engine.jsoncodec import dumps


class ExactJSONResponse(JSONResponse):
    """Renders ``Decimal`` with its exact digits (the standard encoder would refuse or round)."""

    def render(self, content: Any) -> bytes:
        return dumps(content).encode("utf-8")


def error_body(path: str, code: str, message: str) -> dict[str, Any]:
    return {"errors": [{"path": path, "code": code, "message": message}]}
