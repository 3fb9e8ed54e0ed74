"""``POST /api/v1/definitions/backtest``: replay a candidate process definition's rule gates over
history (``Engine.backtest``). Nothing is stored. The history is the ``rows`` of the body, or
else the stored records of the process's form; a server file is never read from a request."""
from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool

from engine.api.context import actor_of, engine_of, json_body
from engine.api.responses import ExactJSONResponse
from engine.api.workflow_routes import unknown_fields
from engine.errors import Issue, ValidationFailed

router = APIRouter(prefix="/api/v1", default_response_class=ExactJSONResponse)

_OBJECT = {"type": "object"}
BACKTEST_BODY = {"requestBody": {"required": True, "content": {"application/json": {"schema": {
    "type": "object", "required": ["definition"], "additionalProperties": False, "properties": {
        "definition": _OBJECT, "form": _OBJECT,
        "rows": {"type": "array", "items": {"type": "object", "required": ["data"], "properties": {
            "data": _OBJECT, "actual": {"type": ["string", "null"]}}}}}}}}}}
_ALLOWED = ["definition", "form", "rows"]


@router.post("/definitions/backtest", openapi_extra=BACKTEST_BODY, tags=["definitions"])
async def backtest_definition(request: Request) -> ExactJSONResponse:
    body = await json_body(request)
    if not isinstance(body, dict):
        raise ValidationFailed([Issue("", "request.not_object")])
    issues = unknown_fields(body, _ALLOWED)
    if "definition" not in body:
        issues.append(Issue("/definition", "definition.required", {"field": "definition"}))
    if issues:
        raise ValidationFailed(issues)
    result = await run_in_threadpool(lambda: engine_of(request).backtest(
        body["definition"], form=body.get("form"), rows=body.get("rows"), actor=actor_of(request)))
    return ExactJSONResponse(result)
