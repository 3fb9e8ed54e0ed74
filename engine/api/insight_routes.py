"""Routes of engine.insight: the 360 view of a record and the integration event feed."""
from __future__ import annotations

from fastapi import APIRouter, Request

from engine.api.context import actor_of, engine_of, int_query
from engine.api.responses import ExactJSONResponse

router = APIRouter(prefix="/api/v1", default_response_class=ExactJSONResponse)


@router.get("/records/{record_id}/360", tags=["records"])
def record_360(request: Request, record_id: str) -> ExactJSONResponse:
    """Profile, links, children, related records by form, process instances, tags, aggregates
    and one timeline, as the caller may see them."""
    return ExactJSONResponse(engine_of(request).record_360(record_id, actor_of(request)))


@router.get("/events", tags=["events"])
def list_events(request: Request) -> ExactJSONResponse:
    """Events after the cursor ``after`` (0: from the start), in order, gap-free; ``limit`` 1-1000."""
    return ExactJSONResponse(engine_of(request).events(int_query(request, "after", 0), int_query(request, "limit", 100),
                                                       actor_of(request)))
