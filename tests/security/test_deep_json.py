"""Attack class: deep and wide JSON — nesting past the 64-level limit in every body the API
reads (records, merge patches, definitions, rules, task and instance operations, evaluate),
far past it (100,000 levels: a recursive parser would overflow), inside a string (not nesting at
all), at the limit (accepted and stored intact on both databases), in an import file's line,
and bodies wide enough to pass the depth check but not the size limit.

Payloads: 8 endpoints x 3 too-deep shapes (24), 4 at-limit round trips, 2 strings that look
deep, 2 wide bodies, 2 import lines: 34 cases.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.security.conftest import MODELER, assert_refused

BAG = {"kind": "form", "key": "bag", "title": "Bag", "schema": {"type": "object", "properties": {
    "name": {"type": "string"}, "extra": {"type": ["object", "array"]}}}}


@pytest.fixture(scope="module")
def bag_client(plain_client: Any) -> Any:
    assert plain_client.post("/api/v1/definitions", headers=MODELER, json=BAG).status_code in (200, 201)
    return plain_client


def _arrays(depth: int) -> str:
    return "[" * depth + "]" * depth


def _objects(depth: int) -> str:
    return '{"a":' * depth + "1" + "}" * depth


def _inside(depth: int) -> str:
    return '{"name": "x", "extra": ' + _arrays(depth - 1) + "}"


ENDPOINTS = [
    ("POST", "/api/v1/forms/bag/records"),
    ("PATCH", "/api/v1/records/00000000-0000-0000-0000-000000000000"),
    ("POST", "/api/v1/forms/bag/evaluate"),
    ("POST", "/api/v1/definitions"),
    ("POST", "/api/v1/tasks/00000000-0000-0000-0000-000000000000/approve"),
    ("POST", "/api/v1/tasks/00000000-0000-0000-0000-000000000000/transfer"),
    ("POST", "/api/v1/instances/00000000-0000-0000-0000-000000000000/comments"),
    ("POST", "/api/v1/instances/00000000-0000-0000-0000-000000000000/cc"),
]
SHAPES = {"arrays 65": _arrays(65), "objects 65": _objects(65), "arrays 100000": _arrays(100_000)}


def _send(client: Any, method: str, path: str, text: str) -> Any:
    headers = {"Content-Type": "application/json", **MODELER}
    if method == "PATCH":
        headers["If-Match"] = '"1"'
    return client.request(method, path, content=text, headers=headers)


@pytest.mark.parametrize("shape", sorted(SHAPES))
@pytest.mark.parametrize(("method", "path"), ENDPOINTS, ids=[f"{m} {p.split('/')[3]}" for m, p in ENDPOINTS])
def test_too_deep_bodies_are_refused_before_parsing(bag_client: Any, method: str, path: str, shape: str) -> None:
    before = bag_client.get("/api/v1/forms/bag/records").json()["total"]
    assert_refused(_send(bag_client, method, path, SHAPES[shape]), 400, "request.too_deep", "")
    assert bag_client.get("/api/v1/forms/bag/records").json()["total"] == before


@pytest.mark.parametrize("depth", [2, 32, 63, 64])
def test_data_at_the_limit_is_stored_and_read_back_intact(bag_client: Any, depth: int) -> None:
    text = _inside(depth)
    response = _send(bag_client, "POST", "/api/v1/forms/bag/records", text)
    assert response.status_code == 201, response.text
    stored = bag_client.get(f"/api/v1/records/{response.json()['id']}").json()
    assert stored["data"] == json.loads(text)
    listed = bag_client.get("/api/v1/forms/bag/records", params={"name": "x", "limit": 500}).json()
    assert any(item["id"] == stored["id"] for item in listed["items"])


@pytest.mark.parametrize("text", ['{"name": "' + "[" * 1000 + '"}', '{"name": "' + "{\\\"a\\\":" * 500 + '"}'],
                         ids=["brackets", "escaped quotes"])
def test_brackets_inside_a_string_are_not_nesting(bag_client: Any, text: str) -> None:
    response = _send(bag_client, "POST", "/api/v1/forms/bag/records", text)
    assert response.status_code == 201, response.text
    assert response.json()["data"]["name"] == json.loads(text)["name"]


@pytest.mark.parametrize("text", ["[" + ",".join(["1"] * 600_000) + "]",
                                  "{" + ",".join(f'"k{index}": 1' for index in range(100_000)) + "}"],
                         ids=["600k items", "100k keys"])
def test_wide_bodies_stop_at_the_size_limit(bag_client: Any, text: str) -> None:
    assert_refused(_send(bag_client, "POST", "/api/v1/forms/bag/records", text), 413, "request.too_large", "")


def test_a_too_deep_import_line_is_a_rejected_row(bag_client: Any, tmp_path: Path) -> None:
    engine = bag_client.app.state.engine
    lines = tmp_path / "rows.jsonl"
    lines.write_text('{"name": "fine"}\n{"name": "deep", "extra": ' + _arrays(70) + "}\n", encoding="utf-8")
    mapping = tmp_path / "mapping.json"
    mapping.write_text(json.dumps({"form": "bag", "source": {"format": "jsonl"},
                                   "fields": {"name": {"column": "name"}}}), encoding="utf-8")
    before = bag_client.get("/api/v1/forms/bag/records").json()["total"]
    report = engine.run_import("bag", lines, mapping)
    assert (report.total, report.imported) == (2, 1)
    assert bag_client.get("/api/v1/forms/bag/records").json()["total"] == before + 1
