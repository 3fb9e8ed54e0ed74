"""A bank form drawn by react-jsonschema-form in headless Chromium, filled by typing, submitted
through the API, and read back.

The engine is served by a real uvicorn on 127.0.0.1 (a free port); the test page and its bundle
(React + RJSF + AJV, bundled by esbuild now) are served next to it by a small ASGI wrapper that
hands every other path to the unchanged engine app. Chromium is the system's (Debian
``chromium``), driven by playwright-core, which downloads nothing.
"""
from __future__ import annotations

import json
import os
import shutil
import socket
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

import uvicorn
from browser_support import run_node, unavailable
from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles

from engine import Engine
from engine.api.app import create_app

PAGE_PREFIX = "/__test__"


def chromium_path() -> str:
    """The system Chromium: ``LOWCODE_CHROMIUM``, else ``chromium`` on the PATH, else
    ``/usr/bin/chromium``."""
    for candidate in (os.environ.get("LOWCODE_CHROMIUM"), shutil.which("chromium"), "/usr/bin/chromium"):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    unavailable("Chromium not found (Debian package 'chromium'; .ci/run installs it on CI, or set LOWCODE_CHROMIUM)")
    raise AssertionError("unreachable")


class PageAndApi:
    """``/__test__/...`` from a folder, everything else from the engine's app (lifespan too)."""

    def __init__(self, api: Any, folder: Path) -> None:
        self.api = api
        self.pages = Starlette(routes=[Mount(PAGE_PREFIX, app=StaticFiles(directory=folder))])

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"].startswith(PAGE_PREFIX + "/"):
            await self.pages(scope, receive, send)
        else:
            await self.api(scope, receive, send)


@contextmanager
def live_server(app: Any) -> Iterator[str]:
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on", ws="none"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 20
        while not server.started:
            assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.02)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=20)
        listener.close()


def call(method: str, url: str, body: Any = None, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method,
                                     headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read(), parse_float=Decimal)
    except urllib.error.HTTPError as error:
        with error:
            return error.code, json.loads(error.read(), parse_float=Decimal)


def test_credit_limit_form_in_chromium_round_trips_through_the_api(bank: Engine, node_modules: Path,
                                                                  tmp_path: Path) -> None:
    chromium = chromium_path()
    page_dir = tmp_path / "page"
    run_node("build_page.mjs", str(page_dir))
    with live_server(PageAndApi(create_app(bank), page_dir)) as base:
        status, customer = call("POST", f"{base}/api/v1/forms/customer/records",
                                {"company_name": "Fujian Example Trading Co., Ltd.", "region": "Fujian"})
        assert status == 201, customer
        typed = {"current_limit": "1000000.00", "requested_limit": "1234567.89"}
        plan = {
            "chromium": chromium,
            "profile": str(tmp_path / "profile"),
            "url": f"{base}{PAGE_PREFIX}/form_page.html?form=credit_limit_adjustment&lang=en&user=am-07",
            "timeoutMs": 30000,
            "steps": [
                {"type": "#root_customer_id", "text": customer["id"]},
                {"type": "#root_current_limit", "text": typed["current_limit"]},
                {"type": "#root_requested_limit", "text": typed["requested_limit"]},
                {"check": "Medium"},
                {"type": "#root_reason", "text": "Seasonal working capital – 季节性流动资金"},
                {"type": "#root_account_manager", "text": "am-07"},
                {"fill": "#root_applied_on", "text": "2024-02-29"},
                {"click": "button[type=submit]"},
            ],
        }
        (tmp_path / "plan.json").write_text(json.dumps(plan))
        outcome = json.loads(run_node("drive_form.mjs", str(tmp_path / "plan.json"), timeout=120).stdout)
        assert outcome["state"] == "submitted", json.dumps(outcome, indent=2, ensure_ascii=False)[:4000]
        assert outcome["status"] == 201, outcome
        created = json.loads(outcome["body"], parse_float=Decimal)

        status, record = call("GET", f"{base}/api/v1/records/{created['id']}")
        assert status == 200, record
        status, listed = call("GET", f"{base}/api/v1/forms/credit_limit_adjustment/records?customer_id={customer['id']}")
    assert status == 200 and [item["id"] for item in listed["items"]] == [created["id"]]
    data = record["data"]
    # What RJSF sent is what was stored: money exact as typed, nothing the form did not show.
    sent = json.loads(outcome["sent"], parse_float=Decimal)
    # The read-only select of the customer's risk level sends its first option; the server
    # copies the value from the customer (refs fill) and ignores the client's: this customer
    # has none, so none is stored.
    assert sent.pop("customer_risk_level", None) in (None, "low")
    assert "customer_risk_level" not in record["data"]
    assert sent == {
        "customer_id": customer["id"], "current_limit": Decimal(typed["current_limit"]),
        "requested_limit": Decimal(typed["requested_limit"]), "risk_rating": "medium",
        "reason": "Seasonal working capital – 季节性流动资金", "account_manager": "am-07", "applied_on": "2024-02-29"}
    assert data["current_limit"] == Decimal(typed["current_limit"])
    assert data["requested_limit"] == Decimal(typed["requested_limit"])
    assert str(data["requested_limit"]) == typed["requested_limit"]
    # Computed on the server: (1234567.89 - 1000000) / 1000000 x 100 = 23.456789, half up to 2 places.
    assert data["increase_pct"] == Decimal("23.46") and str(data["increase_pct"]) == "23.46"
    assert (data["customer_id"], data["risk_rating"], data["applied_on"]) == (customer["id"], "medium", "2024-02-29")
    assert data["reason"] == "Seasonal working capital – 季节性流动资金"
    assert record["form_version"] == 1
