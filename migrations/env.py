"""Alembic environment: runs on the connection the engine hands over (``lowcode migrate``), or
on ``sqlalchemy.url`` / ``LOWCODE_DATABASE_URL`` when called as plain ``alembic``."""
from __future__ import annotations

import os

from alembic import context
from sqlalchemy import create_engine
from sqlalchemy.engine import Connection

from engine.store.models import Base

config = context.config
target_metadata = Base.metadata


def run_migrations() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    url = os.environ.get("LOWCODE_DATABASE_URL") or config.get_main_option("sqlalchemy.url")
    if not url:
        raise SystemExit("set LOWCODE_DATABASE_URL or sqlalchemy.url")
    engine = create_engine(url)
    with engine.begin() as connection:
        _run(connection)


def _run(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


run_migrations()
