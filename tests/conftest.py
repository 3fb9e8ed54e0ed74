"""Shared fixtures: every test gets a fresh database — a SQLite file by default, or the
PostgreSQL database named by ``LOWCODE_TEST_DATABASE_URL`` (emptied before each test)."""
from __future__ import annotations

import atexit
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import replace
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect, text

from engine import Engine, FakeClock
from engine.config import Settings
from engine.store.models import Base

REPO = Path(__file__).resolve().parents[1]
BANK = REPO / "examples" / "bank"
SHARED_DATA = REPO.parent / "shared" / "data"


def _private_postgres(url: str) -> str:
    """A database of this test run's own beside the one named by the URL (``<name>_t<pid>``),
    so that runs at the same time on one server (two checkouts, CI beside a developer) never
    empty each other's tables. Databases of runs that are no longer alive are dropped first.
    Falls back to the named database when the role may not create databases."""
    from sqlalchemy.engine import make_url

    base = make_url(url)
    private = f"{base.database}_t{os.getpid()}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            names = connection.execute(text("SELECT datname FROM pg_database WHERE datname LIKE :p"),
                                       {"p": f"{base.database}_t%"}).scalars().all()
            for name in names:
                pid = name.rsplit("_t", 1)[-1]
                if pid.isdigit() and int(pid) != os.getpid() and not Path(f"/proc/{pid}").exists():
                    connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            if private not in names:
                connection.execute(text(f'CREATE DATABASE "{private}"'))
    except Exception as exc:  # noqa: BLE001 - no CREATEDB right: share the named database
        print(f"tests: using {base.database} itself ({type(exc).__name__}: cannot create a private database)")
        return url
    finally:
        admin.dispose()

    def drop() -> None:
        engine = create_engine(base, isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as connection:
                connection.execute(text(f'DROP DATABASE IF EXISTS "{private}" WITH (FORCE)'))
        except Exception:  # noqa: BLE001 - best effort; the next run drops it
            pass
        finally:
            engine.dispose()

    atexit.register(drop)
    return base.set(database=private).render_as_string(hide_password=False)


if os.environ.get("LOWCODE_TEST_DATABASE_URL") and not os.environ.get("LOWCODE_TEST_DATABASE_PRIVATE"):
    # Rewritten before any other conftest or test module reads it; once per run (this module can
    # be imported twice, as ``conftest`` and as ``tests.conftest``; child processes inherit both).
    os.environ["LOWCODE_TEST_DATABASE_URL"] = _private_postgres(os.environ["LOWCODE_TEST_DATABASE_URL"])
    os.environ["LOWCODE_TEST_DATABASE_PRIVATE"] = "1"
PG_URL = os.environ.get("LOWCODE_TEST_DATABASE_URL")

_pg_migrated = False


def _reset_postgres(url: str) -> None:
    """Empty every table; migrate once per run (dropping whatever an older run left)."""
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
    # The suite names callers by X-User / X-Roles, as a trusted gateway would; tests of
    # authentication itself (tests/api/test_authentication.py) turn this off.
    eng = Engine(database_url, clock=clock, settings=replace(Settings.from_env(), trust_identity_headers=True))
    eng.migrate()
    if PG_URL:
        _pg_migrated = True
    yield eng
    eng.close()


@pytest.fixture
def token_for(engine: Engine) -> Callable[..., dict[str, str]]:
    """``token_for(user, roles=(), attributes=None)``: the headers of a real API token of the
    engine, ``{"Authorization": "Bearer lct_..."}``, accepted whether X-User is trusted or not."""

    def headers(user: str, roles: Iterable[str] = (), attributes: Mapping[str, str] | None = None) -> dict[str, str]:
        issued = engine.create_token(user, roles, attributes)  # never expires: tests move the clock far
        return {"Authorization": f"Bearer {issued.token}"}

    return headers


@pytest.fixture
def bank(engine: Engine) -> Engine:
    """An engine with the bank example loaded, without its roles (callers are unrestricted;
    tests/api/test_roles_bank.py loads them: the ``bank_roles`` fixture)."""
    from engine.definitions.metaschema import KINDS

    engine.load_dir(BANK, kinds=tuple(kind for kind in KINDS if kind != "roles"))

    return engine


@pytest.fixture
def bank_roles(bank: Engine) -> Engine:
    """The bank example with its roles (examples/bank/roles.json) in force."""
    bank.load_dir(BANK, kinds=("roles",))
    return bank



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
