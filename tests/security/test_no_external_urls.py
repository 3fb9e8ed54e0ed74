"""Nothing from outside: every HTML page the server serves, and every asset those pages load,
names no host but the server itself (deployments run on isolated networks, DESIGN §1.7).

Pages are discovered, not listed: every GET route of the app without path parameters is
fetched (those answering ``text/html`` are pages), then every ``src``/``href``/``url()``
reference in them, recursively. HTML pages and CSS must hold no absolute (``http(s)://host``)
or protocol-relative (``//host``) URL at all, nor ``@import``. The two vendored JavaScript
bundles (Swagger UI, ReDoc) carry URLs as inert data — XML namespaces, JSON Schema ids, links in
error messages and licence notes, placeholder examples — which are listed below host by host
with what they are; any host not in that list fails the test, and so does a listed host that
no longer occurs (the list cannot rot). The OpenAPI document the pages load is checked too.
"""
from __future__ import annotations

import re
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urljoin, urlsplit

import pytest

EXTERNAL = re.compile(r"(?i)(?:\bhttps?:)?//([a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)+)")
LOCAL_HOSTS = {"testserver", "localhost", "127.0.0.1"}

# host -> what the bundle uses it for (never fetched by the page as configured)
INERT_IN_BUNDLES: dict[str, dict[str, str]] = {
    "swagger-ui-bundle.js": {
        "www.w3.org": "XML/SVG/XLink namespace identifiers",
        "json-schema.org": "JSON Schema dialect and vocabulary identifiers",
        "spec.openapis.org": "OpenAPI 3.1 dialect identifier",
        "datatracker.ietf.org": "RFC links in format descriptions",
        "www.rfc-editor.org": "RFC links in format descriptions",
        "spdx.org": "licence identifier links",
        "github.com": "links in error messages and comments",
        "reactjs.org": "React error-decoder link in error messages",
        "fb.me": "React warning links",
        "redux.js.org": "Redux error-message links",
        "swagger.io": "Swagger UI's default petstore URL, overridden by the page's own url",
        "validator.swagger.io": "default validator badge, disabled by validatorUrl: null",
        "vladimirgorej.com": "a base URL used only to test whether a string parses as a URL",
        "example.com": "placeholder in examples",
        "i.test": "not a host: the regular expression /^image\\//i.test(...)",
        "twitter.com": "link templates of a social-handle formatter, unused",
        "www.tiktok.com": "link templates of a social-handle formatter, unused",
        "instagram.com": "link templates of a social-handle formatter, unused",
        "www.facebook.com": "link templates of a social-handle formatter, unused",
        "soundcloud.com": "link templates of a social-handle formatter, unused",
    },
    "redoc.standalone.js": {
        "www.w3.org": "XML/SVG/MathML namespace identifiers",
        "json-schema.org": "JSON Schema dialect and vocabulary identifiers",
        "raw.githubusercontent.com": "the $id of ajv's bundled data meta-schema (an identifier, resolved locally)",
        "github.com": "links in error messages",
        "reactjs.org": "React error-decoder link",
        "fb.me": "React warning links",
        "git.io": "a link in a warning message",
        "marked.js.org": "a link in a deprecation warning",
        "stackoverflow.com": "a comment link",
        "redocly.com": "links in ReDoc's own messages",
        "example.com": "placeholder in examples",
    },
}


class _References(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.found += [value for name, value in attrs if name in ("src", "href", "action", "data", "poster") and value]


def _external_hosts(text: str) -> set[str]:
    return {match.group(1).lower() for match in EXTERNAL.finditer(text)} - LOCAL_HOSTS


def _pages(client: Any) -> list[str]:
    """GET paths without parameters: the app's own routes and those of its OpenAPI document."""
    paths: set[str] = set()
    for route in client.app.routes:
        path = getattr(route, "path", None)
        methods = getattr(route, "methods", None) or set()
        if isinstance(path, str) and "{" not in path and "GET" in methods:
            paths.add(path)
    for path, methods in client.get("/openapi.json").json()["paths"].items():
        if "{" not in path and "get" in methods:
            paths.add(path)
    return sorted(paths)


@pytest.fixture(scope="module")
def crawl(shared_client: Any) -> dict[str, tuple[str, str]]:
    """Every page and asset reached: path -> (content type, text)."""
    seen: dict[str, tuple[str, str]] = {}
    queue = _pages(shared_client)
    while queue:
        path = queue.pop()
        if path in seen:
            continue
        response = shared_client.get(path)
        kind = response.headers.get("content-type", "").split(";")[0]
        if response.status_code != 200:
            seen[path] = (f"status {response.status_code}", "")
            continue
        text = response.content.decode("utf-8", errors="replace") if not kind.startswith("image/") else ""
        seen[path] = (kind, text)
        references: list[str] = []
        if kind == "text/html":
            parser = _References()
            parser.feed(text)
            references = parser.found
        if kind in ("text/html", "text/css"):
            references += re.findall(r"url\(\s*['\"]?([^'\")]+)", text)
        for reference in references:
            target = urlsplit(urljoin("http://testserver" + path, reference))
            if target.scheme in ("http", "https") and target.hostname == "testserver":
                queue.append(target.path)
    return seen


def test_the_crawl_found_the_docs_pages_and_their_assets(crawl: dict[str, tuple[str, str]]) -> None:
    pages = sorted(path for path, (kind, _) in crawl.items() if kind == "text/html")
    assert {"/docs", "/redoc", "/docs/oauth2-redirect"} <= set(pages), pages
    assets = {path.rsplit("/", 1)[-1] for path in crawl}
    assert {"swagger-ui-bundle.js", "swagger-ui.css", "redoc.standalone.js", "favicon-32x32.png"} <= assets, sorted(crawl)
    missing = sorted(path for path, (kind, _) in crawl.items() if kind.startswith("status") and path.startswith("/docs"))
    assert missing == [], missing  # every asset a page names is served


def test_html_pages_name_no_outside_host(crawl: dict[str, tuple[str, str]]) -> None:
    found = {path: sorted(_external_hosts(text)) for path, (kind, text) in crawl.items() if kind == "text/html"}
    assert {path: hosts for path, hosts in found.items() if hosts} == {}


def test_stylesheets_name_no_outside_host(crawl: dict[str, tuple[str, str]]) -> None:
    for path, (kind, text) in crawl.items():
        if kind != "text/css":
            continue
        assert "@import" not in text, path
        # the only URL text: the SVG namespace inside inline data: images, which fetch nothing
        without_namespaces = text.replace("http://www.w3.org/2000/svg", "").replace("http://www.w3.org/1999/xlink", "")
        assert _external_hosts(without_namespaces) == set(), path


def test_scripts_name_only_the_reviewed_inert_hosts(crawl: dict[str, tuple[str, str]]) -> None:
    scripts = {path: text for path, (kind, text) in crawl.items() if "javascript" in kind}
    assert scripts, sorted(crawl)
    for path, text in scripts.items():
        name = path.rsplit("/", 1)[-1]
        reviewed = INERT_IN_BUNDLES.get(name, {})
        hosts = _external_hosts(text)
        assert hosts - set(reviewed) == set(), f"{path}: hosts nobody reviewed"
        assert set(reviewed) - hosts == set(), f"{path}: reviewed hosts no longer present; update the list"


def test_json_documents_the_pages_load_name_no_outside_host(crawl: dict[str, tuple[str, str]]) -> None:
    documents = {path: text for path, (kind, text) in crawl.items() if kind == "application/json"}
    assert "/openapi.json" in documents
    assert {path: sorted(_external_hosts(text)) for path, text in documents.items() if _external_hosts(text)} == {}
