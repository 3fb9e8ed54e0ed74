"""The REST routes. Each translates HTTP to one engine call and back; nothing else."""
from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request, Response
from fastapi.concurrency import run_in_threadpool

from engine.api.context import JSON_BODY, OPTIONAL_JSON_BODY, actor_of, engine_of, int_query, json_body, language_of
from engine.api.context import unique_query_params
from engine.api.responses import ExactJSONResponse, export_headers
from engine.api.workflow_routes import unknown_fields
from engine.errors import Issue, ValidationFailed, negotiate_language
from engine.reports.exports import MEDIA_TYPES

router = APIRouter(prefix="/api/v1", default_response_class=ExactJSONResponse)

_PAGING = {"offset", "limit"}
MERGE_PATCH_BODY = {"requestBody": {"required": True, "content": {
    "application/merge-patch+json": {"schema": {"type": "object"}},
    "application/json": {"schema": {"type": "object"}}}}}


@router.post("/definitions", openapi_extra=JSON_BODY, tags=["definitions"])
async def upload_definition(request: Request) -> ExactJSONResponse:
    document = await json_body(request)
    result = await run_in_threadpool(engine_of(request).upload, document, actor_of(request))
    return ExactJSONResponse(result, status_code=201 if result["created"] else 200)


@router.get("/definitions", tags=["definitions"])
def list_definitions(request: Request) -> ExactJSONResponse:
    return ExactJSONResponse({"items": engine_of(request).definitions()})


@router.get("/definitions/{kind}/{key}", tags=["definitions"])
def get_definition(request: Request, kind: str, key: str) -> ExactJSONResponse:
    return ExactJSONResponse(engine_of(request).definition(kind, key))


@router.get("/definitions/{kind}/{key}/versions/{version}", tags=["definitions"])
def get_definition_version(request: Request, kind: str, key: str, version: int) -> ExactJSONResponse:
    return ExactJSONResponse(engine_of(request).definition(kind, key, version))


@router.post("/forms/{key}/records", openapi_extra=JSON_BODY, tags=["records"], status_code=201)
async def submit_record(request: Request, key: str,
                        idempotency_key: Annotated[str | None, Header()] = None) -> ExactJSONResponse:
    data = await json_body(request)
    result = await run_in_threadpool(lambda: engine_of(request).submit_replayable(
        key, data, actor_of(request), idempotency_key=idempotency_key))
    headers = {"Idempotent-Replayed": "true"} if result.replayed else {}
    return _record_response(result.record, 201, headers)


@router.get("/forms/{key}/schema", tags=["records"])
def form_schema(request: Request, key: str, lang: str | None = None) -> ExactJSONResponse:
    language = negotiate_language(lang) if lang else language_of(request)
    return ExactJSONResponse(engine_of(request).form_schema(key, language))


@router.post("/forms/{key}/evaluate", openapi_extra=JSON_BODY, tags=["records"])
async def evaluate_record(request: Request, key: str) -> ExactJSONResponse:
    data = await json_body(request)
    result = await run_in_threadpool(engine_of(request).evaluate, key, data, actor_of(request))
    language = language_of(request)
    return ExactJSONResponse({"data": result["data"], "errors": [issue.to_dict(language) for issue in result["issues"]],
                              "visible": result["visible"], "required": result["required"]})


@router.get("/forms/{key}/records", tags=["records"])
def list_records(request: Request, key: str) -> ExactJSONResponse:
    filters = unique_query_params(request, _PAGING)
    tag = filters.pop("tag", None)  # records carrying this tag now (engine.insight)
    page = engine_of(request).records(key, filters=filters, offset=int_query(request, "offset", 0),
                                      limit=int_query(request, "limit", 50), actor=actor_of(request), tag=tag)
    return ExactJSONResponse(page)


@router.get("/records/{record_id}", tags=["records"])
def get_record(request: Request, record_id: str) -> ExactJSONResponse:
    return _record_response(engine_of(request).record(record_id, actor_of(request)))


@router.patch("/records/{record_id}", openapi_extra=MERGE_PATCH_BODY, tags=["records"])
async def update_record(request: Request, record_id: str,
                        if_match: Annotated[str | None, Header()] = None) -> ExactJSONResponse:
    changes = await json_body(request)
    record = await run_in_threadpool(engine_of(request).update, record_id, changes, actor_of(request),
                                     _expected_version(if_match))
    return _record_response(record)


def _paging_parameters(default_limit: int, most: int) -> dict[str, Any]:
    """``offset`` and ``limit`` for the OpenAPI document; read by :func:`_int` and checked by
    the engine, so that a bad one is 400 ``request.bad_parameter`` at ``offset``/``limit``
    as for every list."""
    return {"parameters": [
        {"name": "offset", "in": "query", "required": False, "description": "Items to skip (0 to 1000000000).",
         "schema": {"type": "integer", "minimum": 0, "maximum": 1_000_000_000, "default": 0}},
        {"name": "limit", "in": "query", "required": False, "description": f"Items per page (1 to {most}).",
         "schema": {"type": "integer", "minimum": 1, "maximum": most, "default": default_limit}}]}


_TASK_STATUSES = ["open", "waiting", "completed", "cancelled", "all"]


@router.get("/tasks", tags=["tasks"], openapi_extra=_paging_parameters(100, 500))
def list_tasks(request: Request,
               role: Annotated[str | None, Query(description="Only tasks offered to this role.")] = None,
               user: Annotated[str | None, Query(description="Only tasks assigned to this user.")] = None,
               status: Annotated[str, Query(description="Task status, or all; anything else is 422 at status.",
                                            json_schema_extra={"enum": _TASK_STATUSES})] = "open") -> ExactJSONResponse:
    """The caller's inbox, newest first: ``{items, total, offset, limit}``. Only tasks of cases
    the caller takes part in: staff of the case see each task in full, the applicant the
    public view of their own case's tasks."""
    inbox = engine_of(request).tasks(role=role, user=user, status=status, offset=int_query(request, "offset", 0),
                                     limit=int_query(request, "limit", 100), actor=actor_of(request))
    return ExactJSONResponse(inbox)


@router.get("/tasks/{task_id}", tags=["tasks"])
def get_task(request: Request, task_id: str) -> ExactJSONResponse:
    """One task as the caller may see it (staff: everything; the applicant: the public view;
    anybody else: 404)."""
    return ExactJSONResponse(engine_of(request).task(task_id, actor_of(request)))


@router.post("/tasks/{task_id}/{action}", openapi_extra=OPTIONAL_JSON_BODY, tags=["tasks"])
async def act_on_task(request: Request, task_id: str, action: str) -> ExactJSONResponse:
    body = await json_body(request, optional=True)
    comment = None
    if body is not None:
        if not isinstance(body, dict):
            raise ValidationFailed([_issue("", "request.not_object")])
        comment = body.get("comment")
        issues = unknown_fields(body, ["comment"])
        if comment is not None and not isinstance(comment, str):
            issues.append(_issue("/comment", "record.type", {"expected": "string"}))
        if issues:
            raise ValidationFailed(issues)
    key = request.headers.get("idempotency-key")
    return ExactJSONResponse(await run_in_threadpool(lambda: engine_of(request).act(
        task_id, action, actor_of(request), comment, idempotency_key=key)))


@router.get("/instances/{instance_id}", tags=["instances"])
def get_instance(request: Request, instance_id: str) -> ExactJSONResponse:
    return ExactJSONResponse(engine_of(request).instance(instance_id, actor_of(request)))


_OUTPUT_PARAMS = {"format", "lang"}
_REPORT_FORMATS: dict[int | str, dict[str, Any]] = {200: {"content": {media_type: {} for media_type in MEDIA_TYPES.values()}}}


@router.get("/reports/{key}", tags=["reports"], response_class=Response, responses=_REPORT_FORMATS)
def get_report(request: Request, key: str, format: str = "json", lang: str | None = None) -> Response:
    """The result as json (default), csv, xlsx, vega, png or svg; other query parameters are the
    report's own."""
    params = _query_params(request, _OUTPUT_PARAMS)
    language = negotiate_language(lang) if lang else language_of(request)
    export = engine_of(request).export_report(key, format, params, language=language, actor=actor_of(request))
    return Response(export.content, media_type=export.media_type, headers=export_headers(export))


@router.get("/dashboards/{key}", tags=["reports"])
def get_dashboard(request: Request, key: str, lang: str | None = None) -> ExactJSONResponse:
    """Each report's result, in the dashboard's order; query parameters are the shared ones."""
    language = negotiate_language(lang) if lang else language_of(request)
    params = _query_params(request, {"lang"})
    return ExactJSONResponse(engine_of(request).run_dashboard(key, params, language=language, actor=actor_of(request)))



def _query_params(request: Request, skip: set[str]) -> dict[str, Any]:
    """Query parameters by name; a repeated name (``drill`` one level per value) as a list."""
    params: dict[str, Any] = {}
    for name in request.query_params:
        if name not in skip and name not in params:
            values = request.query_params.getlist(name)
            params[name] = values[0] if len(values) == 1 else values
    return params


def _issue(path: str, code: str, params: dict[str, Any] | None = None) -> Issue:
    return Issue(path, code, params or {})


_ETAG = re.compile(r'\s*"([0-9]{1,10})"\s*')


def _expected_version(if_match: str | None) -> int | None:
    """The row version an ``If-Match`` names. Absent, empty or ``*`` is None (a wildcard would
    not protect against lost updates: the engine answers 428). Anything but one strong ETag
    ``"<n>"`` (weak, a list, garbage) is 0, a version no record has: 412."""
    if if_match is None or if_match.strip() in ("", "*"):
        return None
    match = _ETAG.fullmatch(if_match)
    return int(match.group(1)) if match else 0


def _record_response(record: dict[str, Any], status_code: int = 200,
                     headers: dict[str, str] | None = None) -> ExactJSONResponse:
    """A record with its strong ETag, the quoted row version."""
    return ExactJSONResponse(record, status_code=status_code,
                             headers={"ETag": f'"{record["row_version"]}"', **(headers or {})})
