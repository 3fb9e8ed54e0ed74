"""Interactive API docs (Swagger UI at ``/docs``, ReDoc at ``/redoc``) served from bundled assets.

Deployments run on isolated networks (DESIGN §1.7), so the pages must not load anything from
a CDN or a font host. Swagger UI 5 and ReDoc 2 are vendored under ``lowcode_docs_assets/swagger``
and ``lowcode_docs_assets/redoc`` (the README in each says where from and how to upgrade).

The app is expected to be created with ``FastAPI(docs_url=None, redoc_url=None, ...)``;
:func:`mount_docs` then adds the pages, the OAuth2 redirect page Swagger UI needs, and the asset
routes. Asset URLs honour the ASGI ``root_path``, so the docs keep working behind a path prefix.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI, HTTPException
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.staticfiles import StaticFiles

from lowcode_docs_assets import ASSETS_DIR
from starlette.types import Scope

__all__ = ["DOCS_URL", "REDOC_URL", "SWAGGER_STATIC_URL", "REDOC_STATIC_URL", "mount_docs"]

DOCS_URL = "/docs"
REDOC_URL = "/redoc"
OAUTH2_REDIRECT_URL = "/docs/oauth2-redirect"
SWAGGER_STATIC_URL = "/docs/static/swagger"
REDOC_STATIC_URL = "/docs/static/redoc"

STATIC_DIR = ASSETS_DIR
SWAGGER_DIR = STATIC_DIR / "swagger"
REDOC_DIR = STATIC_DIR / "redoc"

# Exactly the files the pages use, plus their licenses.
_SWAGGER_FILES = frozenset(
    {
        "swagger-ui-bundle.js",
        "swagger-ui.css",
        "favicon-32x32.png",
        "LICENSE",
        "NOTICE",
        "swagger-ui-bundle.js.LICENSE.txt",
    }
)
_REDOC_FILES = frozenset({"redoc.standalone.js", "LICENSE", "redoc.standalone.js.LICENSE.txt"})

# Swagger UI's default validatorUrl is a public service; null disables the validator badge.
_SWAGGER_UI_OFFLINE_PARAMETERS: dict[str, object] = {"validatorUrl": None}


class _AllowListStaticFiles(StaticFiles):
    """StaticFiles that serves only an explicit set of file names from its directory."""

    def __init__(self, *, directory: Path, allowed: frozenset[str]) -> None:
        super().__init__(directory=directory, check_dir=True)
        self._allowed = allowed

    async def get_response(self, path: str, scope: Scope) -> Response:
        if path not in self._allowed:
            raise HTTPException(status_code=404)
        response = await super().get_response(path, scope)
        response.headers.setdefault("Cache-Control", "public, max-age=86400")
        return response


def _prefix(request: Request) -> str:
    return str(request.scope.get("root_path", "")).rstrip("/")


def mount_docs(app: FastAPI) -> None:
    """Serve Swagger UI at ``/docs`` and ReDoc at ``/redoc`` with no external URL in the pages.

    Does nothing when the app publishes no OpenAPI document (``openapi_url=None``).
    """
    openapi_url = app.openapi_url
    if openapi_url is None:
        return
    title = app.title

    app.mount(
        SWAGGER_STATIC_URL,
        _AllowListStaticFiles(directory=SWAGGER_DIR, allowed=_SWAGGER_FILES),
        name="docs-static-swagger",
    )
    app.mount(
        REDOC_STATIC_URL,
        _AllowListStaticFiles(directory=REDOC_DIR, allowed=_REDOC_FILES),
        name="docs-static-redoc",
    )

    async def swagger_ui(request: Request) -> HTMLResponse:
        root = _prefix(request)
        parameters = dict(_SWAGGER_UI_OFFLINE_PARAMETERS)
        parameters.update(app.swagger_ui_parameters or {})
        return get_swagger_ui_html(
            openapi_url=root + openapi_url,
            title=f"{title} - Swagger UI",
            swagger_js_url=f"{root}{SWAGGER_STATIC_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{SWAGGER_STATIC_URL}/swagger-ui.css",
            swagger_favicon_url=f"{root}{SWAGGER_STATIC_URL}/favicon-32x32.png",
            oauth2_redirect_url=root + OAUTH2_REDIRECT_URL,
            init_oauth=app.swagger_ui_init_oauth,
            swagger_ui_parameters=parameters,
        )

    async def swagger_ui_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    async def redoc(request: Request) -> HTMLResponse:
        root = _prefix(request)
        return get_redoc_html(
            openapi_url=root + openapi_url,
            title=f"{title} - ReDoc",
            redoc_js_url=f"{root}{REDOC_STATIC_URL}/redoc.standalone.js",
            redoc_favicon_url=f"{root}{SWAGGER_STATIC_URL}/favicon-32x32.png",
            with_google_fonts=False,
        )

    app.add_api_route(DOCS_URL, swagger_ui, methods=["GET"], include_in_schema=False)
    app.add_api_route(
        OAUTH2_REDIRECT_URL, swagger_ui_redirect, methods=["GET"], include_in_schema=False
    )
    app.add_api_route(REDOC_URL, redoc, methods=["GET"], include_in_schema=False)
