"""The server the HTTP benchmarks load: the product's app (``engine.api.app.create_app``) with one
extra route that exists only here, the floor ``POST /bench/floor``.

    python -m uvicorn _bench_server:app --factory --app-dir benchmarks --workers N --port P

The floor does the least a JSON-over-HTTP insert can do in the same process, on the same
connection pool and behind the same middleware (request id, metrics, access log line): read
the body, parse it with the standard ``json`` module, ``INSERT`` it as one row of
``bench_floor`` (the shape of the engine's ``records`` row: id, form key, JSON text, time) with
SQLAlchemy Core in one transaction, answer 201 with the id. No validation, no computed fields,
no process, no audit, no outbox.

Environment: ``LOWCODE_DATABASE_URL`` (the engine's own setting) and ``BENCH_WORKER=1`` to run
the background worker (timers, outbox) in a thread, as ``lowcode serve`` does by default.
"""
from __future__ import annotations

import json
import os
import uuid
from datetime import UTC, datetime

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from sqlalchemy import Column, DateTime, MetaData, String, Table, Text

from engine import Engine
from engine.api.app import create_app

METADATA = MetaData()
FLOOR = Table(
    "bench_floor", METADATA,
    Column("id", String(36), primary_key=True),
    Column("form_key", String(128), nullable=False),
    Column("data", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)


def create_floor_table(engine: Engine) -> None:
    METADATA.create_all(engine.db.engine)


def app() -> FastAPI:
    """The app factory uvicorn calls in each worker process."""
    engine = Engine()
    application = create_app(engine)
    database = engine.db.engine

    def insert(text: str) -> str:
        row_id = str(uuid.uuid4())
        with database.begin() as connection:
            connection.execute(FLOOR.insert().values(id=row_id, form_key="credit_limit_adjustment", data=text,
                                                     created_at=datetime.now(UTC)))
        return row_id

    async def floor(request: Request) -> JSONResponse:
        data = json.loads(await request.body())
        row_id = await run_in_threadpool(insert, json.dumps(data))
        return JSONResponse({"id": row_id}, status_code=201)

    application.add_api_route("/bench/floor", floor, methods=["POST"], include_in_schema=False)

    if os.environ.get("BENCH_WORKER") == "1":
        from engine.worker import Worker

        Worker(engine).start_thread()  # a daemon thread: it ends with the process

    return application
