"""The OpenAPI document states the refusals every operation can answer.

Every refusal is ``{errors: [{path, code, message, params?}]}`` with a 4xx status (engine.errors,
engine.api.app). FastAPI documents only the 200 and, for operations with parameters, a 422 in
its own ``{detail: [...]}`` shape, which the engine never sends. :func:`document_refusals`
rewrites the generated document once: each operation gets a ``4XX`` response with the real
body, FastAPI's 422 (and its ``HTTPValidationError`` schemas) go, and operations that can be
stopped by a limit (report queries, readiness) keep or get their 503.
"""
from __future__ import annotations

from typing import Any, Callable

from fastapi import FastAPI

ERROR_BODY: dict[str, Any] = {
    "type": "object",
    "required": ["errors"],
    "properties": {"errors": {"type": "array", "minItems": 1, "items": {
        "type": "object",
        "required": ["path", "code", "message"],
        "properties": {
            "path": {"type": "string", "description": "JSON pointer (body) or parameter name of the problem"},
            "code": {"type": "string", "description": "stable error code, e.g. record.required"},
            "message": {"type": "string", "description": "in the request's language (en or zh-CN)"},
            "params": {"type": "object"},
        },
    }}},
}
REFUSED = {"description": "Refused: `{errors: [{path, code, message}]}` (400 input, 401 no or bad credentials, "
                          "403 not allowed, 404 not found or not visible, 409/412/428 versions, 413 too large, "
                          "422 invalid)",
           "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Errors"}}}}
UNAVAILABLE = {"description": "A limit stopped the work (report time or memory, database not ready): "
                              "`{errors: [{path, code, message}]}`",
               "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Errors"}}}}
_FASTAPI_VALIDATION = ("HTTPValidationError", "ValidationError")


def document_refusals(app: FastAPI) -> None:
    """Make ``app.openapi()`` document the engine's refusals (see the module docstring)."""
    generate: Callable[[], dict[str, Any]] = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        document = generate()
        for methods in document.get("paths", {}).values():
            for operation in methods.values():
                if not isinstance(operation, dict) or "responses" not in operation:
                    continue
                responses = operation["responses"]
                if _is_fastapi_validation(responses.get("422")):
                    del responses["422"]
                responses.setdefault("4XX", REFUSED)
                if "503" in responses or "/reports/" in str(operation.get("operationId", "")) or \
                        "reports" in operation.get("tags", []):
                    responses["503"] = UNAVAILABLE
        schemas = document.setdefault("components", {}).setdefault("schemas", {})
        for name in _FASTAPI_VALIDATION:
            schemas.pop(name, None)
        schemas["Errors"] = ERROR_BODY
        app.openapi_schema = document
        return document

    app.openapi = openapi  # type: ignore[method-assign]


def _is_fastapi_validation(response: Any) -> bool:
    return isinstance(response, dict) and "HTTPValidationError" in str(response.get("content", ""))


__all__ = ["ERROR_BODY", "document_refusals"]
