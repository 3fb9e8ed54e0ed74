"""The audit log over HTTP: filtered pages and a JSON Lines export (auditors only)."""
from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse

from engine.api.context import actor_of, engine_of, int_query, unique_query_params
from engine.api.responses import ExactJSONResponse

router = APIRouter(prefix="/api/v1", default_response_class=ExactJSONResponse, tags=["audit"])

_FILTERS = {"actor", "object", "action", "since", "until"}
_Text = Annotated[str | None, Query(max_length=200)]


@router.get("/audit")
def list_audit(request: Request, actor: _Text = None, object: _Text = None, action: _Text = None,
               since: _Text = None, until: _Text = None) -> ExactJSONResponse:
    """Audit entries in chain order: ``{items, next_after}``. ``object`` is ``type:id`` or an id,
    ``action`` exact or a prefix (``record.*``), ``since``/``until`` ISO-8601 instants with a
    zone, ``after`` the last id seen, ``limit`` 1-1000. Needs an auditor role."""
    unique_query_params(request)
    page = engine_of(request).audit_entries(actor_of(request), actor_filter=actor, object=object, action=action,
                                            since=since, until=until, after=int_query(request, "after", 0),
                                            limit=int_query(request, "limit", 100))
    return ExactJSONResponse(page)


@router.get("/audit/export", response_class=StreamingResponse,
            responses={200: {"content": {"application/x-ndjson": {}}}})
def export_audit(request: Request, actor: _Text = None, object: _Text = None, action: _Text = None,
                 since: _Text = None, until: _Text = None) -> StreamingResponse:
    """Every matching entry as JSON Lines, streamed; unfiltered, the file holds the whole chain
    and can be verified on its own. Needs an auditor role."""
    unique_query_params(request)
    lines = engine_of(request).export_audit(actor_of(request), actor_filter=actor, object=object, action=action,
                                            since=since, until=until)
    return StreamingResponse((line.encode("utf-8") for line in lines), media_type="application/x-ndjson",
                             headers={"Content-Disposition": 'attachment; filename="audit.jsonl"'})
