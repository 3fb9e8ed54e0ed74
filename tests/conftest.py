"""Shared fixtures: every test gets a fresh database — a SQLite file by default, or the
PostgreSQL database named by ``LOWCODE_TEST_DATABASE_URL`` (emptied before each test)."""
from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect, text

from engine import Engine, FakeClock
from engine.store.models import Base

REPO = Path(__file__).resolve().parents[1]
BANK = REPO / "examples" / "bank"
SHARED_DATA = REPO.parent / "shared" / "data"
PG_URL = os.environ.get("LOWCODE_TEST_DATABASE_URL")

_pg_migrated = False


def _reset_postgres(url: str) -> None:
    """Empty every table; migrate once per run (dropping whatever an older run left)."""
    global _pg_migrated
    sa_engine = create_engine(url)
    try:
        with sa_engine.begin() as connection:
            if not _pg_migrated:
                for table in inspect(connection).get_table_names():
                    connection.execute(text(f'DROP TABLE IF EXISTS "{table}" CASCADE'))
            else:
                names = ", ".join(f'"{table.name}"' for table in Base.metadata.sorted_tables)
                connection.execute(text(f"TRUNCATE {names} RESTART IDENTITY"))
    finally:
        sa_engine.dispose()


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    if PG_URL:
        _reset_postgres(PG_URL)
        return PG_URL
    return f"sqlite:///{tmp_path / 'test.db'}"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def engine(database_url: str, clock: FakeClock) -> Iterator[Engine]:
    global _pg_migrated
    eng = Engine(database_url, clock=clock)
    eng.migrate()
    if PG_URL:
        _pg_migrated = True
    yield eng
    eng.close()


@pytest.fixture
def bank(engine: Engine) -> Engine:
    """An engine with the bank example loaded."""
    engine.load_dir(BANK)
    return engine


@pytest.fixture
def client(engine: Engine):  # type: ignore[no-untyped-def]
    from fastapi.testclient import TestClient

    from engine.api.app import create_app

    with TestClient(create_app(engine)) as test_client:
        yield test_client


@pytest.fixture
def bank_client(bank: Engine, client):  # type: ignore[no-untyped-def]
    return client


def shared_data(*parts: str) -> Path:
    """A file under ../shared/data, or skip the test with the reason."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"real data not present: {path} (CI always has ../shared/data)")
    return path
