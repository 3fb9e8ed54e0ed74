"""Routes of the process runtime: task operations besides actions, instance operations and the
timeline. Included before the generic ``POST /tasks/{id}/{action}`` route, so ``claim`` and
``transfer`` (names a definition may not give an action) reach these."""
from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool

from engine.api.context import actor_of, engine_of, json_body, language_of
from engine.api.responses import ExactJSONResponse
from engine.errors import Issue, ValidationFailed
from engine.jsonpointer import escape

router = APIRouter(prefix="/api/v1", default_response_class=ExactJSONResponse)


def _body_schema(properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {"requestBody": {"required": bool(required), "content": {"application/json": {"schema": {
        "type": "object", "properties": properties, "required": required, "additionalProperties": False}}}}}


_TEXT = {"type": "string"}
COMMENT_BODY = _body_schema({"comment": _TEXT}, [])
NO_BODY = _body_schema({}, [])
MAX_UNKNOWN_REPORTED = 50


async def _fields(request: Request, required: dict[str, type], optional: dict[str, type]) -> dict[str, Any]:
    """The JSON body's named fields, type-checked; every problem reported at once. A member
    the operation does not take is refused (``request.unknown_field`` at its pointer): a typo
    such as ``comentt`` must not pass for an operation without a comment."""
    body = await json_body(request, optional=not required)
    body = {} if body is None else body
    if not isinstance(body, dict):
        raise ValidationFailed([Issue("", "request.not_object", {})])
    allowed = sorted({**required, **optional})
    issues = unknown_fields(body, allowed)
    values: dict[str, Any] = {}
    for name, kind in {**required, **optional}.items():
        value = body.get(name)
        if value is None:
            if name in required:
                issues.append(Issue(f"/{name}", "record.required", {"field": name}))
            values[name] = None
            continue
        if not isinstance(value, kind) or isinstance(value, bool) != (kind is bool):
            issues.append(Issue(f"/{name}", "record.type", {"expected": {str: "string", list: "array", bool: "boolean"}[kind]}))
        values[name] = value
    if issues:
        raise ValidationFailed(issues)
    return values


def unknown_fields(body: dict[str, Any], allowed: list[str]) -> list[Issue]:
    """``request.unknown_field`` for each member of ``body`` not in ``allowed`` (the first 50)."""
    unknown = [name for name in body if name not in allowed][:MAX_UNKNOWN_REPORTED]
    return [Issue(f"/{escape(name)}", "request.unknown_field", {"field": name[:64], "allowed": allowed}) for name in unknown]


@router.post("/tasks/{task_id}/claim", openapi_extra=NO_BODY, tags=["tasks"])
async def claim_task(request: Request, task_id: str) -> ExactJSONResponse:
    await _fields(request, {}, {})  # no body, or an empty object
    return ExactJSONResponse(await run_in_threadpool(engine_of(request).claim_task, task_id, actor_of(request)))


@router.post("/tasks/{task_id}/transfer", openapi_extra=_body_schema({"to": _TEXT, "comment": _TEXT}, ["to"]), tags=["tasks"])
async def transfer_task(request: Request, task_id: str) -> ExactJSONResponse:
    body = await _fields(request, {"to": str}, {"comment": str})
    return ExactJSONResponse(await run_in_threadpool(engine_of(request).transfer_task, task_id, body["to"],
                                                     actor_of(request), body["comment"]))


@router.post("/tasks/{task_id}/add-approver", tags=["tasks"], openapi_extra=_body_schema(
    {"user": _TEXT, "mode": {"enum": ["before", "after", "parallel"]}, "comment": _TEXT}, ["user", "mode"]))
async def add_approver(request: Request, task_id: str) -> ExactJSONResponse:
    body = await _fields(request, {"user": str, "mode": str}, {"comment": str})
    return ExactJSONResponse(await run_in_threadpool(engine_of(request).add_approver, task_id, body["user"], body["mode"],
                                                     actor_of(request), body["comment"]))


@router.post("/tasks/{task_id}/send-back", openapi_extra=_body_schema({"to": _TEXT, "comment": _TEXT}, ["to"]), tags=["tasks"])
async def send_back(request: Request, task_id: str) -> ExactJSONResponse:
    body = await _fields(request, {"to": str}, {"comment": str})
    return ExactJSONResponse(await run_in_threadpool(engine_of(request).send_back, task_id, body["to"],
                                                     actor_of(request), body["comment"]))


@router.post("/instances/{instance_id}/withdraw", openapi_extra=COMMENT_BODY, tags=["instances"])
async def withdraw(request: Request, instance_id: str) -> ExactJSONResponse:
    body = await _fields(request, {}, {"comment": str})
    return ExactJSONResponse(await run_in_threadpool(engine_of(request).withdraw, instance_id, actor_of(request), body["comment"]))


@router.post("/instances/{instance_id}/cancel", openapi_extra=COMMENT_BODY, tags=["instances"])
async def cancel(request: Request, instance_id: str) -> ExactJSONResponse:
    body = await _fields(request, {}, {"comment": str})
    return ExactJSONResponse(await run_in_threadpool(engine_of(request).cancel_instance, instance_id, actor_of(request),
                                                     body["comment"]))


@router.post("/instances/{instance_id}/urge", openapi_extra=COMMENT_BODY, tags=["instances"])
async def urge(request: Request, instance_id: str) -> ExactJSONResponse:
    body = await _fields(request, {}, {"comment": str})
    return ExactJSONResponse(await run_in_threadpool(engine_of(request).urge, instance_id, actor_of(request), body["comment"]))


@router.post("/instances/{instance_id}/cc", tags=["instances"], openapi_extra=_body_schema(
    {"users": {"type": "array", "items": _TEXT}, "comment": _TEXT}, ["users"]))
async def cc(request: Request, instance_id: str) -> ExactJSONResponse:
    body = await _fields(request, {"users": list}, {"comment": str})
    return ExactJSONResponse(await run_in_threadpool(engine_of(request).cc, instance_id, body["users"], actor_of(request),
                                                     body["comment"]))


@router.post("/instances/{instance_id}/comments", tags=["instances"], openapi_extra=_body_schema(
    {"text": _TEXT, "internal": {"type": "boolean"}}, ["text"]))
async def add_comment(request: Request, instance_id: str) -> ExactJSONResponse:
    body = await _fields(request, {"text": str}, {"internal": bool})
    return ExactJSONResponse(await run_in_threadpool(engine_of(request).comment, instance_id, body["text"],
                                                     actor_of(request), internal=bool(body["internal"])))


@router.get("/instances/{instance_id}/timeline", tags=["instances"])
def timeline(request: Request, instance_id: str) -> ExactJSONResponse:
    return ExactJSONResponse(engine_of(request).timeline(instance_id, actor_of(request), language_of(request)))
