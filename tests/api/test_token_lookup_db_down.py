"""An API token lookup while the database does not answer is a 503 with a structured body
(``store.unavailable``), not a 500: a token is not refused for the database's fault."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from engine import Engine, FakeClock
from engine.api.app import create_app
from engine.security.tokens import new_token


@pytest.mark.parametrize("where", ["postgres_closed_port", "sqlite_missing_directory"])
def test_a_token_lookup_with_the_database_down_is_503(tmp_path: Path, where: str) -> None:
    url = ("postgresql+psycopg://postgres@127.0.0.1:1/absent?connect_timeout=2" if where == "postgres_closed_port"
           else f"sqlite:///{tmp_path / 'no' / 'such' / 'dir' / 'lowcode.db'}")
    down = Engine(url, clock=FakeClock())
    down.settings = replace(down.settings, trust_identity_headers=False)
    try:
        with TestClient(create_app(down), raise_server_exceptions=False) as client:
            response = client.get("/records/anything", headers={"Authorization": f"Bearer {new_token()}",
                                                                "Accept-Language": "zh-CN"})
    finally:
        down.close()
    assert response.status_code == 503, response.text
    [error] = response.json()["errors"]
    assert (error["path"], error["code"]) == ("", "store.unavailable")
    assert "OperationalError" in error["message"] and "数据库" in error["message"]
    assert "www-authenticate" not in response.headers  # not an authentication refusal
