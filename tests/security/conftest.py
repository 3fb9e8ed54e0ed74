"""Shared helpers of the attack-class tests: the bank app with a few records, identities, and
the one assertion every refusal must pass (a 4xx whose body is ``{errors: [{path, code,
message}]}``, never a 500)."""
from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from engine import Engine, FakeClock
from tests import conftest as root

MODELER = {"X-User": "modeler-1", "X-Roles": "modeler"}
ADMIN = {"X-User": "admin-1", "X-Roles": "admin"}
"""The shared client's default caller: may submit, read and run everything (examples/bank/roles.json)."""
CUSTOMER = {
    "company_name": "Fujian Example Trading Co., Ltd.", "uscc": "91350100M000100Y43", "region": "Fujian",
    "industry_code": "423840", "employees": 45, "risk_level": "low",
}


def identity(user: str, *roles: str) -> dict[str, str]:
    """Request headers naming a caller. Until bearer tokens land the development identity is read
    from ``X-User``/``X-Roles`` (tests/conftest.py keeps that trust on for tests)."""
    headers = {"X-User": user}
    if roles:
        headers["X-Roles"] = ",".join(roles)
    return headers


def assert_refused(response: Any, status: int | tuple[int, ...], code: str | tuple[str, ...] | None = None,
                   path: str | None = None) -> dict[str, Any]:
    """``response`` is the structured refusal: the status (one of), every error carrying
    ``path``/``code``/``message`` strings, and one error with the code (one of) and the path when
    given. Returns that error."""
    statuses = (status,) if isinstance(status, int) else status
    assert response.status_code in statuses, (response.status_code, response.text[:500])
    body = response.json()
    assert isinstance(body, dict) and isinstance(body.get("errors"), list) and body["errors"], body
    for error in body["errors"]:
        assert {"path", "code", "message"} <= set(error), error
        assert all(isinstance(error[name], str) for name in ("path", "code", "message")), error
        assert error["message"], error
    codes = None if code is None else (code,) if isinstance(code, str) else code
    matching = [error for error in body["errors"]
                if (codes is None or error["code"] in codes) and (path is None or error["path"] == path)]
    assert matching, body
    found: dict[str, Any] = matching[0]
    return found


def trust_identity_headers(engine: Engine) -> None:
    """Take the caller from ``X-User``/``X-Roles`` (LOWCODE_TRUST_IDENTITY_HEADERS), as behind an
    authenticating gateway; the authenticator reads the engine's settings at each request."""
    if hasattr(engine.settings, "trust_identity_headers"):
        engine.settings = dataclasses.replace(engine.settings, trust_identity_headers=True)


def definition_absent(client: Any, kind: str, key: str) -> bool:
    return client.get(f"/api/v1/definitions/{kind}/{key}").status_code == 404


@pytest.fixture
def customer_id(bank_client: Any) -> str:
    response = bank_client.post("/api/v1/forms/customer/records", json=CUSTOMER, headers=identity("clerk-1"))
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def _module_engine(tmp_path_factory: pytest.TempPathFactory, bank: bool) -> Any:
    if root.PG_URL:
        root._reset_postgres(root.PG_URL)
        url = root.PG_URL
    else:
        url = f"sqlite:///{tmp_path_factory.mktemp('security') / 'bank.db'}"
    engine = Engine(url, clock=FakeClock())
    trust_identity_headers(engine)
    engine.migrate()
    if root.PG_URL:
        root._pg_migrated = True
    if bank:
        engine.load_dir(root.BANK)
    return engine


@pytest.fixture(scope="module")
def shared_bank(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """One bank engine for a whole module (loading the bank per test costs a second each): for
    tests whose attacks are refused, so nothing they do is seen by the next. Same database
    choice as tests/conftest.py (PostgreSQL when ``LOWCODE_TEST_DATABASE_URL`` is set)."""
    engine = _module_engine(tmp_path_factory, bank=True)
    yield engine
    engine.close()


@pytest.fixture(scope="module")
def plain_client(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A client of an engine without definitions (so without a roles definition: every caller
    may write every field of the forms a test uploads), shared by a module."""
    from fastapi.testclient import TestClient

    from engine.api.app import create_app

    engine = _module_engine(tmp_path_factory, bank=False)
    with TestClient(create_app(engine), headers=ADMIN) as client:
        yield client
    engine.close()


@pytest.fixture(scope="module")
def shared_client(shared_bank: Engine) -> Any:
    from fastapi.testclient import TestClient

    from engine.api.app import create_app

    with TestClient(create_app(shared_bank), headers=ADMIN) as client:
        yield client


@pytest.fixture(scope="module")
def shared_customer_id(shared_client: Any) -> str:
    response = shared_client.post("/api/v1/forms/customer/records", json=CUSTOMER)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])
