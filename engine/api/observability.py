"""HTTP side of operations: the request-id and metrics middleware, and the ``/health``,
``/ready`` and ``/metrics`` endpoints.

``/metrics`` needs a principal like every route but ``/health`` and ``/ready``
(engine.api.authentication): it shows counts, latencies and definition keys (route templates,
process, state and report keys), never record data or ids; scrape it with an API token."""
from __future__ import annotations

import logging
import time

from fastapi import APIRouter, Request
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.responses import Response
from starlette.routing import Mount

from engine.api.context import engine_of, language_of
from engine.api.limits import ASGIApp, Message, Receive, Scope, Send
from engine.api.responses import ExactJSONResponse
from engine.observability import REQUEST_ID, Metrics, accept_request_id, readiness

access_log = logging.getLogger("lowcode.access")

router = APIRouter(tags=["operations"])

UNMATCHED = "unmatched"
"""The route label of requests no route matched (404s): raw paths never become labels."""


@router.get("/health")
def health() -> dict[str, str]:
    """The process is alive (no database access)."""
    return {"status": "ok"}


@router.get("/ready", responses={503: {"description": "Not ready: `{errors: [{path, code, message}]}`"}})
def ready(request: Request) -> ExactJSONResponse:
    """The database answers and is migrated to this engine's head; else 503 with the reasons."""
    issues = readiness(engine_of(request).db)
    if issues:
        language = language_of(request)
        return ExactJSONResponse({"errors": [issue.to_dict(language) for issue in issues]}, status_code=503)
    return ExactJSONResponse({"status": "ready"})


@router.get("/metrics", response_class=Response)
def metrics(request: Request) -> Response:
    """Prometheus text exposition of this engine's metrics."""
    return Response(generate_latest(engine_of(request).metrics.registry), media_type=CONTENT_TYPE_LATEST)


def route_template(scope: Scope) -> str:
    """The template of the route that served ``scope`` (``/api/v1/records/{record_id}``)."""
    route = scope.get("route")
    if isinstance(route, Mount):
        return route.path.rstrip("/") + "/{path}"
    path = getattr(route, "path", None)
    return path if isinstance(path, str) and path else UNMATCHED


class RequestObservation:
    """Outermost middleware: gives each request its id (``X-Request-ID``, see
    :func:`engine.observability.accept_request_id`), echoed in the response and set in
    :data:`engine.observability.REQUEST_ID` while it runs; then times it and writes the
    access log line."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = None
        for name, value in scope.get("headers") or ():
            if name == b"x-request-id":
                incoming = value.decode("latin-1")
                break
        request_id = accept_request_id(incoming)
        header = (b"x-request-id", request_id.encode("ascii"))
        status = 500
        started = time.perf_counter()

        async def observed_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                message["headers"] = [*(message.get("headers") or ()), header]
            await send(message)

        scope.setdefault("state", {})["request_id"] = request_id  # for the 500 handler outside
        token = REQUEST_ID.set(request_id)
        try:
            await self.app(scope, receive, observed_send)
        finally:
            seconds = time.perf_counter() - started
            route = route_template(scope)
            method = str(scope.get("method", ""))
            try:
                self.metrics.request(method, route, status, seconds)
                access_log.info("%s %s %s", method, route, status,
                                extra={"method": method, "route": route, "status": status,
                                       "duration_ms": round(seconds * 1000, 3), "request_id": request_id})
            finally:
                REQUEST_ID.reset(token)


__all__ = ["RequestObservation", "route_template", "router"]
