"""The FastAPI application: routes, error mapping, body limits, request ids and metrics, offline
docs."""
from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from engine.api.audit_routes import router as audit_router
from engine.api.authentication import Authentication, challenge, document_security
from engine.api.backtest_routes import router as backtest_router
from engine.api.context import language_of
from engine.api.docs import mount_docs
from engine.api.limits import BodySizeLimit, BodyTooLarge
from engine.api.observability import RequestObservation
from engine.api.openapi import document_refusals
from engine.api.observability import router as operations_router
from engine.api.responses import ExactJSONResponse, error_body
from engine.api.outbox_routes import router as outbox_router
from engine.api.insight_routes import router as insight_router
from engine.api.routes import router
from engine.api.workflow_routes import router as workflow_router
from engine.errors import EngineError
from engine.facade import Engine
from engine.messages import render_message
from engine.security.startup import check_startup

log = logging.getLogger("engine.api")


def create_app(engine: Engine | None = None) -> FastAPI:
    """Build the app around ``engine`` (a new one from the environment if not given);
    :class:`engine.security.startup.StartupRefused` when its settings are unsafe for its mode."""
    engine = engine or Engine()
    check_startup(engine.settings)
    app = FastAPI(title="lowcode-engine", version="0.1.0", docs_url=None, redoc_url=None,
                  openapi_url="/openapi.json", default_response_class=ExactJSONResponse)
    app.state.engine = engine
    app.include_router(workflow_router)  # first: its fixed paths win over /tasks/{id}/{action}
    app.include_router(backtest_router)  # POST /definitions/backtest
    app.include_router(router)
    app.include_router(outbox_router)
    app.include_router(insight_router)
    app.include_router(operations_router)  # /health, /ready, /metrics
    mount_docs(app)
    document_security(app)
    document_refusals(app)  # every operation documents its {errors: [...]} refusals
    app.include_router(audit_router)

    @app.exception_handler(EngineError)
    async def engine_error(request: Request, exc: EngineError) -> ExactJSONResponse:
        return ExactJSONResponse(exc.to_body(language_of(request)), status_code=exc.status,
                                 headers={"WWW-Authenticate": challenge(exc)} if exc.status == 401 else None)

    @app.exception_handler(BodyTooLarge)
    async def too_large(request: Request, exc: BodyTooLarge) -> ExactJSONResponse:
        limit = engine.settings.max_body_bytes
        message = render_message("request.too_large", {"limit": limit}, language_of(request))
        return ExactJSONResponse(error_body("", "request.too_large", message), status_code=413)

    @app.exception_handler(RequestValidationError)
    async def bad_parameters(request: Request, exc: RequestValidationError) -> ExactJSONResponse:
        errors = []
        for error in exc.errors():
            location = [str(part) for part in error.get("loc", ())]
            name = location[-1] if location else ""
            errors.append({"path": "/" + "/".join(location[1:]) if len(location) > 1 else "", "code": "request.bad_parameter",
                           "message": render_message("request.bad_parameter", {"name": name, "reason": error.get("msg", "")}, language_of(request))})
        return ExactJSONResponse({"errors": errors}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> ExactJSONResponse:
        code = "request.not_found" if exc.status_code == 404 else "request.method_not_allowed" if exc.status_code == 405 else "request.error"
        return ExactJSONResponse(error_body("", code, str(exc.detail)), status_code=exc.status_code)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> ExactJSONResponse:
        # Runs outside RequestObservation (Starlette's outermost error middleware): the
        # request id comes from the scope, where the middleware left it.
        request_id = getattr(request.state, "request_id", None)
        log.exception("unhandled error on %s %s", request.method, request.url.path, extra={"request_id": request_id})
        return ExactJSONResponse(error_body("", "internal", "Internal error; it has been logged"), status_code=500,
                                 headers={"X-Request-ID": request_id} if request_id else None)

    app.add_middleware(Authentication, engine=engine)  # before routing: no route is reachable without it
    app.add_middleware(BodySizeLimit, max_bytes=engine.settings.max_body_bytes)
    app.add_middleware(RequestObservation, metrics=engine.metrics)  # last added: outermost
    return app
