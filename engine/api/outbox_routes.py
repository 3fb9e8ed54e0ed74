"""Outbox routes for staff: list dead letters, send one back to the queue."""
from __future__ import annotations

from fastapi import APIRouter, Request

from engine.api.context import actor_of, engine_of, int_query, language_of
from engine.api.responses import ExactJSONResponse

router = APIRouter(prefix="/api/v1/outbox", default_response_class=ExactJSONResponse, tags=["outbox"])


@router.get("/dead-letters")
def list_dead_letters(request: Request) -> ExactJSONResponse:
    """Dead letters, newest first (roles admin or operator)."""
    page = engine_of(request).dead_letters(int_query(request, "offset", 0), int_query(request, "limit", 50),
                                          actor_of(request), language_of(request))
    return ExactJSONResponse(page)


@router.post("/{message_id}/retry")
def retry_dead_letter(request: Request, message_id: str) -> ExactJSONResponse:
    """Back to the queue: pending, due now, attempts reset (roles admin or operator)."""
    number = int(message_id) if message_id.isdigit() and len(message_id) <= 19 else 0  # 0 is never an id
    return ExactJSONResponse(engine_of(request).retry_dead_letter(number, actor_of(request), language_of(request)))
