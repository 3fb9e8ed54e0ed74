"""The docs pages load nothing from outside the server (DESIGN §1.7: isolated networks)."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest
from fastapi import FastAPI
from starlette.testclient import TestClient

from engine.api.docs import mount_docs

# Any absolute or protocol-relative URL: the HTML must contain none.
EXTERNAL_URL = re.compile(r"(?i)(?:https?:)?//[a-z0-9.-]+")
# Hosts a docs asset would reach for by itself when the page loads (CDNs, web fonts, ReDoc's
# footer logo). Swagger UI's bundle also names validator.swagger.io, but only as a default
# that the page overrides with validatorUrl: null.
FORBIDDEN_HOSTS = (
    "cdn.jsdelivr.net",
    "unpkg.com",
    "cdnjs.cloudflare.com",
    "cdn.redoc.ly",
    "fonts.googleapis.com",
    "fonts.gstatic.com",
    "fastapi.tiangolo.com",
)


class _Refs(HTMLParser):
    """Collects every src/href attribute of the page."""

    def __init__(self) -> None:
        super().__init__()
        self.refs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name in ("src", "href") and value:
                self.refs.append(value)


def _refs(html: str) -> list[str]:
    parser = _Refs()
    parser.feed(html)
    return parser.refs


def _make_app() -> FastAPI:
    app = FastAPI(title="Docs test", docs_url=None, redoc_url=None, openapi_url="/openapi.json")

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    mount_docs(app)
    return app


@pytest.fixture()
def client() -> TestClient:
    return TestClient(_make_app())


def _assert_offline_html(html: str) -> None:
    found = [m.group(0) for m in EXTERNAL_URL.finditer(html)]
    assert found == [], f"external URLs in page: {found}"
    assert "http://" not in html and "https://" not in html


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_page_has_no_external_url_and_every_asset_is_served(client: TestClient, page: str) -> None:
    response = client.get(page)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    html = response.text
    _assert_offline_html(html)

    refs = _refs(html)
    assert refs, "page references no assets"
    for ref in refs:
        assert ref.startswith("/") and not ref.startswith("//"), ref
        asset = client.get(ref)
        assert asset.status_code == 200, ref
        assert asset.content, ref
        body = asset.content.decode("utf-8", errors="replace")
        for host in FORBIDDEN_HOSTS:
            assert host not in body, f"{ref} references {host}"
        if ref.endswith(".css"):
            assert "@import" not in body, ref
            assert not re.search(r"url\(\s*['\"]?(?:https?:)?//", body), ref


def test_swagger_page_uses_local_assets_and_no_validator(client: TestClient) -> None:
    html = client.get("/docs").text
    refs = _refs(html)
    assert "/docs/static/swagger/swagger-ui-bundle.js" in refs
    assert "/docs/static/swagger/swagger-ui.css" in refs
    assert "/docs/static/swagger/favicon-32x32.png" in refs
    assert "url: '/openapi.json'" in html
    assert '"validatorUrl": null' in html


def test_redoc_page_uses_local_bundle_without_google_fonts(client: TestClient) -> None:
    html = client.get("/redoc").text
    refs = _refs(html)
    assert "/docs/static/redoc/redoc.standalone.js" in refs
    assert 'spec-url="/openapi.json"' in html
    assert "fonts.googleapis" not in html


def test_swagger_ui_can_render_the_openapi_version_fastapi_emits(client: TestClient) -> None:
    # Swagger UI 4 shows "Unable to render this definition" for OpenAPI 3.1; version 5 knows the
    # 3.1 dialect. Guards against swapping the bundle back to a 4.x build.
    assert client.get("/openapi.json").json()["openapi"].startswith("3.1")
    bundle = client.get("/docs/static/swagger/swagger-ui-bundle.js").text
    assert "https://spec.openapis.org/oas/3.1/dialect/base" in bundle


def test_favicon_is_a_png(client: TestClient) -> None:
    response = client.get("/docs/static/swagger/favicon-32x32.png")
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/png"
    assert response.content.startswith(b"\x89PNG\r\n\x1a\n")


def test_openapi_document_is_served_and_docs_are_not_in_it(client: TestClient) -> None:
    response = client.get("/openapi.json")
    assert response.status_code == 200
    paths = response.json()["paths"]
    assert "/health" in paths
    assert not any(p.startswith(("/docs", "/redoc")) for p in paths)


def test_oauth2_redirect_page_is_local(client: TestClient) -> None:
    response = client.get("/docs/oauth2-redirect")
    assert response.status_code == 200
    _assert_offline_html(response.text)


def test_redoc_license_is_served_next_to_bundle(client: TestClient) -> None:
    response = client.get("/docs/static/redoc/LICENSE")
    assert response.status_code == 200
    assert "MIT License" in response.text


@pytest.mark.parametrize(
    "path",
    [
        "/docs/static/swagger/index.html",
        "/docs/static/swagger/swagger-ui.css.map",
        "/docs/static/swagger/README.md",
        "/docs/static/swagger/",
        "/docs/static/redoc/README.md",
        "/docs/static/redoc/../docs.py",
        "/docs/static/swagger/nope.js",
    ],
)
def test_only_allow_listed_assets_are_served(client: TestClient, path: str) -> None:
    assert client.get(path).status_code == 404


def test_asset_urls_follow_root_path() -> None:
    client = TestClient(_make_app(), root_path="/lowcode")
    html = client.get("/docs").text
    _assert_offline_html(html)
    refs = _refs(html)
    assert "/lowcode/docs/static/swagger/swagger-ui-bundle.js" in refs
    assert "url: '/lowcode/openapi.json'" in html
    redoc_html = client.get("/redoc").text
    assert "/lowcode/docs/static/redoc/redoc.standalone.js" in _refs(redoc_html)


def test_no_docs_without_openapi() -> None:
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    mount_docs(app)
    client = TestClient(app)
    assert client.get("/docs").status_code == 404
    assert client.get("/redoc").status_code == 404
