"""Operations endpoints and request ids: ``/health`` (no database), ``/ready`` (database
reachable and migrated to the bundled head; else 503 with ``{errors: [{path, code,
message}]}``), ``/metrics`` (Prometheus text, per-engine registry, route templates as labels),
``X-Request-ID`` echoed and written into the audit entries of the request."""
from __future__ import annotations

import dataclasses
import os
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import create_engine, select, text

from engine import Engine, FakeClock
from engine.api.app import create_app
from engine.config import Settings
from engine.store.models import AuditRow

FORM = {"kind": "form", "key": "request", "title": "Request", "process": "flow",
        "schema": {"type": "object", "properties": {"amount": {"type": "integer"}}}}
FLOW = {"kind": "process", "key": "flow", "form": "request", "title": "Flow", "start": "review",
        "states": {"review": {"type": "task", "assignee": {"role": "reviewer"}, "sla": {"due": "PT1H"},
                              "actions": {"approve": {"transitions": [{"to": "done"}]}}},
                   "done": {"type": "end", "outcome": "approved"}}}
CLERK = {"X-User": "clerk"}
REVIEWER = {"X-User": "rev", "X-Roles": "reviewer"}


TRUSTING = dataclasses.replace(Settings.from_env(), trust_identity_headers=True)
"""As the engine fixture: the caller named by X-User (here: anonymous, enough for /metrics)."""


def samples(client: TestClient) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return {(sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(response.text) for sample in family.samples}


def value(found: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float:
    return found.get((name, frozenset(labels.items())), 0.0)


@pytest.fixture
def flow_client(engine: Engine, client: TestClient) -> TestClient:
    engine.upload(FORM)
    engine.upload(FLOW)
    return client


def _start(client: TestClient, headers: dict[str, str] | None = None) -> dict[str, Any]:
    response = client.post("/api/v1/forms/request/records", json={"amount": 5}, headers={**CLERK, **(headers or {})})
    assert response.status_code == 201, response.text
    return dict(response.json())


def _open_task(engine: Engine, instance_id: str) -> str:
    (task,) = [t for t in engine.instance(instance_id)["tasks"] if t["status"] == "open"]
    return str(task["id"])


# -- /health and /ready --------------------------------------------------------------------


@pytest.fixture
def unmigrated_url(tmp_path: Path) -> Iterator[str]:
    """A database nobody has migrated: a new SQLite file, or a new PostgreSQL database beside
    the test run's own."""
    url = os.environ.get("LOWCODE_TEST_DATABASE_URL")
    if not url:
        yield f"sqlite:///{tmp_path / 'fresh.db'}"
        return
    from sqlalchemy.engine import make_url

    base = make_url(url)
    name = f"{base.database}_ready"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            connection.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # noqa: BLE001
        admin.dispose()
        pytest.skip(f"cannot create a second PostgreSQL database: {exc}")
    try:
        yield base.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def test_ready_is_503_until_the_database_is_migrated(unmigrated_url: str) -> None:
    engine = Engine(unmigrated_url, clock=FakeClock())
    try:
        with TestClient(create_app(engine)) as client:
            assert client.get("/health").json() == {"status": "ok"}
            response = client.get("/ready")
            assert response.status_code == 503
            (error,) = response.json()["errors"]
            assert error["path"] == "/database/migrations"
            assert error["code"] == "ready.migrations_pending"
            assert "none" in error["message"] and "lowcode migrate" in error["message"]
            chinese = client.get("/ready", headers={"Accept-Language": "zh-CN"}).json()["errors"][0]["message"]
            assert "请运行" in chinese

            engine.migrate()
            response = client.get("/ready")
            assert response.status_code == 200, response.text
            assert response.json() == {"status": "ready"}
    finally:
        engine.close()


def test_ready_is_503_when_the_database_is_unreachable() -> None:
    engine = Engine("postgresql+psycopg://nobody@127.0.0.1:1/none?connect_timeout=2", clock=FakeClock(),
                    settings=TRUSTING)  # no database to hold a token: /metrics is read as a gateway's caller
    try:
        with TestClient(create_app(engine)) as client:
            assert client.get("/health").status_code == 200  # alive without a database
            response = client.get("/ready")
            assert response.status_code == 503
            (error,) = response.json()["errors"]
            assert (error["path"], error["code"]) == ("/database", "ready.database_unreachable")
            assert error["message"]
            # Scrape-time gauges are left out, the rest of /metrics still answers.
            metrics = client.get("/metrics")
            assert metrics.status_code == 200
            names = {sample.name for family in text_string_to_metric_families(metrics.text) for sample in family.samples}
            assert "lowcode_outbox_pending" not in names and "lowcode_report_mirror_lag_changes" not in names
            assert 'route="/ready"' in metrics.text
    finally:
        engine.close()


def test_ready_is_503_when_the_database_is_newer_than_the_engine(engine: Engine, client: TestClient) -> None:
    with engine.db.transaction() as session:
        session.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    try:
        response = client.get("/ready")
        assert response.status_code == 503
        assert response.json()["errors"][0]["code"] == "ready.schema_unknown"
    finally:
        with engine.db.transaction() as session:
            session.execute(text("UPDATE alembic_version SET version_num = :head"),
                            {"head": next(iter(engine.db.schema_revisions()[1]))})


# -- /metrics ------------------------------------------------------------------------------


def test_latency_is_labelled_by_route_template_not_by_raw_path(flow_client: TestClient) -> None:
    record_id = _start(flow_client)["id"]
    assert flow_client.get(f"/api/v1/records/{record_id}").status_code == 200
    missing = str(uuid.uuid4())
    assert flow_client.get(f"/api/v1/records/{missing}").status_code == 404
    assert flow_client.get("/no/such/path/12345").status_code == 404

    body = flow_client.get("/metrics").text
    assert 'route="/api/v1/records/{record_id}"' in body
    assert record_id not in body and missing not in body and "12345" not in body
    found = samples(flow_client)
    route = "/api/v1/records/{record_id}"
    assert value(found, "lowcode_http_request_duration_seconds_count", method="GET", route=route, status="2xx") == 1
    assert value(found, "lowcode_http_request_duration_seconds_count", method="GET", route=route, status="4xx") == 1
    assert value(found, "lowcode_http_request_duration_seconds_count", method="GET", route="unmatched", status="4xx") == 1


def test_each_app_has_its_own_registry(engine: Engine, database_url: str) -> None:
    other = Engine(database_url, clock=FakeClock(), settings=TRUSTING)
    try:
        with TestClient(create_app(engine)) as first, TestClient(create_app(other)) as second:
            first.get("/health")
            first.get("/health")
            second.get("/health")
            assert value(samples(first), "lowcode_http_request_duration_seconds_count",
                         method="GET", route="/health", status="2xx") == 2
            assert value(samples(second), "lowcode_http_request_duration_seconds_count",
                         method="GET", route="/health", status="2xx") == 1
    finally:
        other.close()


def test_a_task_action_counts_a_transition(engine: Engine, flow_client: TestClient) -> None:
    instance_id = _start(flow_client)["instances"][0]["id"]
    labels = {"process": "flow", "from_state": "review", "to_state": "done"}
    assert value(samples(flow_client), "lowcode_workflow_transitions_total", **labels) == 0
    task_id = _open_task(engine, instance_id)
    # Refused (not the assignee): the rolled-back attempt counts nothing.
    assert flow_client.post(f"/api/v1/tasks/{task_id}/approve", json={}, headers=CLERK).status_code == 403
    assert value(samples(flow_client), "lowcode_workflow_transitions_total", **labels) == 0
    response = flow_client.post(f"/api/v1/tasks/{task_id}/approve", json={}, headers=REVIEWER)
    assert response.status_code == 200, response.text
    assert value(samples(flow_client), "lowcode_workflow_transitions_total", **labels) == 1


def test_outbox_backlog_timer_lag_report_latency_and_mirror_lag(engine: Engine, flow_client: TestClient,
                                                                clock: FakeClock) -> None:
    _start(flow_client)
    found = samples(flow_client)
    assert value(found, "lowcode_outbox_pending") >= 1  # the instance's events wait for delivery
    assert value(found, "lowcode_report_mirror_lag_changes") >= 1  # not yet mirrored

    clock.advance(timedelta(hours=1, minutes=30))  # the PT1H due timer is 30 minutes late
    assert engine.run_timers()["fired"] == 1
    found = samples(flow_client)
    assert value(found, "lowcode_timer_lag_seconds_count", kind="due") == 1
    assert value(found, "lowcode_timer_lag_seconds_sum", kind="due") == pytest.approx(1800)

    engine.upload({"kind": "report", "key": "amounts", "title": "Amounts", "source": {"form": "request"},
                   "measures": [{"name": "n", "agg": "count"}]})
    assert flow_client.get("/api/v1/reports/amounts").status_code == 200
    found = samples(flow_client)
    assert value(found, "lowcode_report_duration_seconds_count", report="amounts") == 1
    assert value(found, "lowcode_report_mirror_lag_changes") == 0  # the report caught the mirror up


def test_delivery_failures_are_counted_by_channel_and_outcome(engine: Engine) -> None:
    metrics = engine.metrics
    metrics.delivery_outcome("webhook", "delivered")
    metrics.delivery_outcome("webhook", "retrying")
    metrics.delivery_outcome("sms", "dead")
    text_ = generate_latest(metrics.registry).decode()
    assert 'lowcode_outbox_delivery_failures_total{channel="webhook",outcome="retrying"} 1.0' in text_
    assert 'lowcode_outbox_delivery_failures_total{channel="sms",outcome="dead"} 1.0' in text_
    assert 'outcome="delivered"' not in text_


# -- request ids -----------------------------------------------------------------------------


def test_request_id_is_echoed_and_written_into_the_audit_entries(engine: Engine, flow_client: TestClient) -> None:
    record = _start(flow_client, {"X-Request-ID": "req-42.A_b"})
    with engine.db.read() as session:
        entry = session.scalars(select(AuditRow).where(AuditRow.object_id == record["id"],
                                                       AuditRow.action == "record.create")).one()
    assert entry.request_id == "req-42.A_b"

    response = flow_client.post("/api/v1/forms/request/records", json={"amount": 6}, headers=CLERK)
    generated = response.headers["x-request-id"]
    assert uuid.UUID(generated).version == 4
    with engine.db.read() as session:
        entry = session.scalars(select(AuditRow).where(AuditRow.object_id == response.json()["id"],
                                                       AuditRow.action == "record.create")).one()
    assert entry.request_id == generated

    task_id = _open_task(engine, record["instances"][0]["id"])
    acted = flow_client.post(f"/api/v1/tasks/{task_id}/approve", json={}, headers={**REVIEWER, "X-Request-ID": "act-1"})
    assert acted.status_code == 200 and acted.headers["x-request-id"] == "act-1"
    with engine.db.read() as session:
        entry = session.scalars(select(AuditRow).where(AuditRow.object_id == task_id,
                                                       AuditRow.action == "task.complete")).one()
    assert entry.request_id == "act-1"


def test_audit_entries_outside_a_request_have_no_request_id(engine: Engine) -> None:
    engine.upload(FORM)
    with engine.db.read() as session:
        assert session.scalars(select(AuditRow.request_id)).all() == [None]


@pytest.mark.parametrize("hostile", ["a" * 1024, "x" * 129, "two words", "semi;colon", "ümlaut", "",
                                     "line\nbreak", "cr\r\nX-Injected: 1"])
def test_a_hostile_request_id_is_replaced(client: TestClient, hostile: str) -> None:
    scope_headers = [(b"x-request-id", hostile.encode("utf-8"))]
    response = _raw_get(client, "/health", scope_headers)
    echoed = response["headers"][b"x-request-id"].decode()
    assert echoed != hostile
    assert uuid.UUID(echoed).version == 4
    assert b"x-injected" not in response["headers"]


def test_a_sane_request_id_of_128_characters_is_kept(client: TestClient) -> None:
    sane = "A-z0.9_" * 18 + "ab"
    assert len(sane) == 128
    assert client.get("/health", headers={"X-Request-ID": sane}).headers["x-request-id"] == sane


def _raw_get(client: TestClient, path: str, headers: list[tuple[bytes, bytes]]) -> dict[str, Any]:
    """Call the ASGI app directly: HTTP clients refuse to send a header with a line break, a
    hostile proxy or raw socket does not."""
    import anyio

    app = client.app
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET", "scheme": "http",
             "path": path, "raw_path": path.encode(), "root_path": "", "query_string": b"", "headers": headers,
             "client": ("127.0.0.1", 1), "server": ("testserver", 80)}
    anyio.run(app, scope, receive, send)
    start = next(message for message in sent if message["type"] == "http.response.start")
    assert start["status"] == 200
    return {"headers": dict(start["headers"])}
