"""Attack class: references out of an uploaded form schema — remote ``http(s)`` and
protocol-relative ``$ref``, ``file:`` and other schemes, relative paths (which resolve against a
base the attacker picks with ``$id``), ``$dynamicRef``, ``$id`` tricks, and a remote
``$schema``. Nothing is ever fetched (the validator is built offline); every such reference is
refused at upload with the pointer to it, and nothing is stored.

Payloads: 19 refused references, 3 refused ``$schema`` values, 5 local references that must keep
working: 27 cases.
"""
from __future__ import annotations

from typing import Any

import pytest

from tests.security.conftest import MODELER, assert_refused, definition_absent

A = "/schema/properties/a"

# (schema, pointer of the refusal)
REFUSED: list[tuple[dict[str, Any], str]] = [
    ({"properties": {"a": {"$ref": "http://evil.example/s.json"}}}, f"{A}/$ref"),
    ({"properties": {"a": {"$ref": "https://evil.example/s.json#/x"}}}, f"{A}/$ref"),
    ({"properties": {"a": {"$ref": "HTTP://EVIL.EXAMPLE/x"}}}, f"{A}/$ref"),
    ({"properties": {"a": {"$ref": "//evil.example/s.json"}}}, f"{A}/$ref"),
    ({"properties": {"a": {"$ref": "http://169.254.169.254/latest/meta-data/"}}}, f"{A}/$ref"),
    ({"properties": {"a": {"$ref": "http://127.0.0.1:8000/api/v1/definitions"}}}, f"{A}/$ref"),
    ({"properties": {"a": {"$ref": "file:///etc/passwd"}}}, f"{A}/$ref"),
    ({"properties": {"a": {"$ref": "file:passwd"}}}, f"{A}/$ref"),
    ({"properties": {"a": {"$ref": "../../etc/passwd"}}}, f"{A}/$ref"),
    ({"properties": {"a": {"$ref": "other.json"}}}, f"{A}/$ref"),
    ({"properties": {"a": {"$ref": "\\\\evil\\share\\s.json"}}}, f"{A}/$ref"),
    ({"properties": {"a": {"$ref": "data:application/json,{}"}}}, f"{A}/$ref"),
    ({"properties": {"a": {"$ref": "jar:file:///x.jar!/s.json"}}}, f"{A}/$ref"),
    ({"properties": {"a": {"$ref": "urn:uuid:6e8bc430-9c3a-11d9-9669-0800200c9a66"}}}, f"{A}/$ref"),
    ({"properties": {"a": {"$dynamicRef": "http://evil.example/s.json#meta"}}}, f"{A}/$dynamicRef"),
    # $id moves the base URI: a relative reference then points at the attacker's host or a file
    ({"$id": "http://evil.example/root.json", "properties": {"a": {"$ref": "s.json"}}}, f"{A}/$ref"),
    ({"$id": "file:///etc/", "properties": {"a": {"$ref": "passwd"}}}, f"{A}/$ref"),
    ({"properties": {"a": {"$id": "http://evil.example/x", "$ref": "y"}}}, f"{A}/$ref"),
    ({"properties": {"a": {"$id": "https://evil.example/dir/", "$dynamicRef": "meta.json#m"}}}, f"{A}/$dynamicRef"),
]
LOCAL: list[dict[str, Any]] = [
    {"properties": {"a": {"$ref": "#/$defs/text"}}, "$defs": {"text": {"type": "string"}}},
    {"properties": {"a": {"$ref": "#"}}},
    # a resource embedded by $id is inside the document, whatever its URI looks like
    {"$id": "https://example.invalid/root.json", "properties": {"a": {"$ref": "https://example.invalid/root.json#/$defs/text"}},
     "$defs": {"text": {"type": "string"}}},
    {"properties": {"a": {"$ref": "#/$defs/text"}}, "$defs": {"text": {"$id": "text.json", "type": "string"}}},
    {"$dynamicAnchor": "node", "properties": {"a": {"$dynamicRef": "#node"}}},
]


def _upload(client: Any, schema: dict[str, Any]) -> Any:
    return client.post("/api/v1/definitions", headers=MODELER, json={
        "kind": "form", "key": "referring", "title": "Referring", "schema": {"type": "object", **schema}})


@pytest.mark.parametrize(("schema", "pointer"), REFUSED, ids=[str(case[0])[:60] for case in REFUSED])
def test_references_out_of_the_document_are_refused(plain_client: Any, schema: dict[str, Any], pointer: str) -> None:
    assert_refused(_upload(plain_client, schema), 422, "definition.remote_ref", pointer)
    assert definition_absent(plain_client, "form", "referring")


@pytest.mark.parametrize("meta", ["http://evil.example/meta.json", "file:///etc/passwd",
                                  "https://json-schema.org/draft-07/schema"])
def test_a_schema_dialect_other_than_2020_12_is_refused(plain_client: Any, meta: str) -> None:
    # a browser-side validator given the served schema may fetch a $schema it does not know
    assert_refused(_upload(plain_client, {"$schema": meta, "properties": {"a": {"type": "string"}}}), 422,
                   "definition.bad_schema", "/schema/$schema")
    assert definition_absent(plain_client, "form", "referring")


@pytest.mark.parametrize("schema", LOCAL, ids=[str(case)[:60] for case in LOCAL])
def test_local_references_keep_working(plain_client: Any, schema: dict[str, Any]) -> None:
    response = _upload(plain_client, schema)
    assert response.status_code in (200, 201), response.text
    good = plain_client.post("/api/v1/forms/referring/records", json={"a": "text"} if "#node" not in str(schema) and schema["properties"]["a"].get("$ref") != "#" else {"a": {}})
    assert good.status_code == 201, good.text
