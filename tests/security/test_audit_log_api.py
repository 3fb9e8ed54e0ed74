"""GET /api/v1/audit and /audit/export: auditors only (a refusal is audited itself), filters by
actor, object, action and time, keyset paging, a JSON Lines export that verifies on its own,
request ids on entries, `lowcode audit export`. SQLite and (when configured) PostgreSQL."""
from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from engine import Engine, FakeClock, Principal
from engine.security.auditlog import verify_lines

NOTE = {"kind": "form", "key": "note", "title": "Note",
        "schema": {"type": "object", "properties": {"text": {"type": "string"}}}}
AUDITOR = {"X-User": "aud-1", "X-Roles": "auditor"}
CLERK = {"X-User": "clerk-1", "X-Roles": "clerk"}


@pytest.fixture
def logged(engine: Engine, client: Any, clock: FakeClock) -> dict[str, Any]:
    """Entries by two actors at two times: an upload, three notes (one updated)."""
    engine.upload(NOTE)
    first = client.post("/api/v1/forms/note/records", json={"text": "a"}, headers={**CLERK, "X-Request-ID": "req-42"})
    assert first.status_code == 201, first.text
    clock.advance(timedelta(hours=2))
    middle = clock.now()
    second = engine.submit("note", {"text": "b"}, Principal("clerk-2"))
    engine.update(second["id"], {"text": "c"}, Principal("clerk-2"), 1)
    clock.advance(timedelta(hours=2))
    third = engine.submit("note", {"text": "d"}, Principal("clerk-1"))
    return {"first": first.json()["id"], "second": second["id"], "third": third["id"], "middle": middle}


def _items(client: Any, **params: Any) -> list[dict[str, Any]]:
    response = client.get("/api/v1/audit", params=params, headers=AUDITOR)
    assert response.status_code == 200, response.text
    return list(response.json()["items"])


def test_only_auditors_read_the_log_and_a_refusal_is_audited(client: Any, logged: dict[str, Any]) -> None:
    for path in ("/api/v1/audit", "/api/v1/audit/export"):
        response = client.get(path, headers=CLERK)
        assert response.status_code == 403
        assert response.json()["errors"][0]["code"] == "audit.forbidden"
    denials = _items(client, action="access.denied")
    assert [(entry["actor"], entry["detail"]["attempted"], entry["detail"]["reason"]) for entry in denials] == [
        ("clerk-1", "audit.read", "audit.forbidden"), ("clerk-1", "audit.export", "audit.forbidden")]


def test_filters_by_actor_object_action_and_time(client: Any, logged: dict[str, Any]) -> None:
    by_clerk2 = _items(client, actor="clerk-2")
    assert [(e["action"], e["object_id"]) for e in by_clerk2] == [
        ("record.create", logged["second"]), ("record.update", logged["second"])]
    on_second = _items(client, object=f"record:{logged['second']}")
    assert [e["action"] for e in on_second] == ["record.create", "record.update"]
    assert [e["action"] for e in _items(client, object=logged["first"])] == ["record.create"]
    assert len(_items(client, action="record.*")) == 4
    assert [e["object_id"] for e in _items(client, action="definition.upload")] == ["note@1"]
    middle = logged["middle"].isoformat()
    window = _items(client, since=middle, until=(logged["middle"] + timedelta(hours=1)).isoformat())
    assert [e["object_id"] for e in window] == [logged["second"], logged["second"]]
    later = _items(client, since=middle, action="record.create")
    assert [e["object_id"] for e in later] == [logged["second"], logged["third"]]


def test_bad_filters_are_400_at_the_parameter(client: Any, logged: dict[str, Any]) -> None:
    for params, name in (({"since": "yesterday"}, "since"), ({"until": "2026-12-04T08:00:00"}, "until"),
                         ({"limit": "0"}, "limit"), ({"limit": "1001"}, "limit"), ({"after": "x"}, "after")):
        response = client.get("/api/v1/audit", params=params, headers=AUDITOR)
        assert response.status_code == 400, (params, response.text)
        assert response.json()["errors"][0]["path"] == name


def test_pages_follow_the_chain_with_a_cursor(client: Any, logged: dict[str, Any]) -> None:
    everything = _items(client, limit=1000)
    seen: list[int] = []
    after = 0
    while True:
        page = client.get("/api/v1/audit", params={"after": after, "limit": 2}, headers=AUDITOR).json()
        seen += [entry["id"] for entry in page["items"]]
        if page["next_after"] is None:
            break
        after = page["next_after"]
    assert seen == [entry["id"] for entry in everything] == list(range(1, len(everything) + 1))


def test_entries_of_a_request_carry_its_request_id(client: Any, logged: dict[str, Any]) -> None:
    [created] = _items(client, object=f"record:{logged['first']}")
    assert created["request_id"] == "req-42" and created["actor"] == "clerk-1"
    [upload] = _items(client, action="definition.upload")
    assert upload["request_id"] is None  # the Python API, not a request


def test_the_export_round_trips_and_verifies(engine: Engine, client: Any, logged: dict[str, Any], tmp_path: Path) -> None:
    response = client.get("/api/v1/audit/export", headers=AUDITOR)
    assert response.status_code == 200 and response.headers["content-type"].startswith("application/x-ndjson")
    lines = response.text.splitlines()
    listed = _items(client, limit=1000)
    assert [json.loads(line)["id"] for line in lines] == [entry["id"] for entry in listed][:len(lines)]
    assert verify_lines(lines) == (True, len(lines), None)
    edited = json.loads(lines[2])
    edited["actor"] = "somebody-else"
    broken = lines[:2] + [json.dumps(edited)] + lines[3:]
    assert verify_lines(broken) == (False, 2, 3)
    assert verify_lines(lines[:1] + lines[2:]) == (False, 1, 3)  # a line left out
    filtered = client.get("/api/v1/audit/export", params={"actor": "clerk-2"}, headers=AUDITOR).text.splitlines()
    assert [json.loads(line)["action"] for line in filtered] == ["record.create", "record.update"]
    assert engine.verify_audit().intact  # the exports' own audit entries keep the chain whole


def test_the_command_exports_a_file_that_verifies(engine: Engine, logged: dict[str, Any], tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from engine.cli import app

    out = tmp_path / "audit.jsonl"
    result = CliRunner().invoke(app, ["audit", "export", "--out", str(out), "--database-url", engine.db.url])
    assert result.exit_code == 0, result.output
    lines = out.read_text(encoding="utf-8").splitlines()
    intact, count, _ = verify_lines(lines)
    assert intact and count == len(lines) >= 5
    assert f"Exported {count} audit entries" in result.output
