"""A real server subprocess (`lowcode serve`) and the CLI (`lowcode load`, another process) on
one database: a roles definition that revokes a grant, loaded by the CLI, is enforced by the
server on its very next request, and a new form version loaded by the CLI is used by the next
submission (c554764: the registry's catalog snapshot is cached per process and re-checked per
operation). Passes when no bug. Slow-ish (starts a server)."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

BANK = Path(__file__).resolve().parents[2] / "examples" / "bank"
LOWCODE = [str(Path(sys.executable).with_name("lowcode"))]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _call(base: str, method: str, path: str, user: str, roles: str, body: dict | None = None) -> tuple[int, dict]:
    request = urllib.request.Request(base + path, method=method, data=None if body is None else json.dumps(body).encode(),
                                     headers={"X-User": user, "X-Roles": roles, "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def test_cli_upload_is_seen_by_a_running_server_at_once(engine, database_url: str, tmp_path: Path) -> None:  # noqa: ANN001
    if database_url.startswith("sqlite"):
        pass  # works on both: the server and the CLI share the file
    env = {**os.environ, "LOWCODE_DATABASE_URL": database_url, "LOWCODE_TRUST_IDENTITY_HEADERS": "1",
           "PYTHONPATH": str(BANK.parents[1])}
    subprocess.run([*LOWCODE, "load", str(BANK)], env=env, check=True, capture_output=True)
    port = _free_port()
    server = subprocess.Popen([*LOWCODE, "serve", "--port", str(port), "--no-worker"], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}/api/v1"
    try:
        for _ in range(150):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/forms", timeout=1)
                break
            except Exception:  # noqa: BLE001
                if server.poll() is not None:
                    pytest.fail(server.stderr.read().decode()[-2000:])
                time.sleep(0.2)
        status, customer = _call(base, "POST", "/forms/customer/records", "adm", "admin", {"company_name": "Acme"})
        assert status == 201, customer
        complaint = {"customer_id": customer["id"], "channel": "web", "product": "loan", "issue": "fees",
                     "received_on": "2026-11-30"}
        status, body = _call(base, "POST", "/forms/complaint/records", "cust-01", "customer", complaint)
        assert status == 201, body
        # the CLI (another process) revokes the customer's complaint submission
        folder = tmp_path / "defs"
        folder.mkdir()
        roles = json.loads((BANK / "roles.json").read_text())
        roles["roles"]["customer"]["submit"] = ["credit_limit_adjustment"]
        (folder / "roles.json").write_text(json.dumps(roles))
        form = json.loads((BANK / "forms" / "customer.json").read_text())
        form["schema"]["properties"]["nickname"] = {"type": "string", "title": "Nickname"}
        (folder / "customer.json").write_text(json.dumps(form))
        loaded = subprocess.run([*LOWCODE, "load", str(folder)], env=env, capture_output=True, text=True)
        assert loaded.returncode == 0, loaded.stdout + loaded.stderr
        status, body = _call(base, "POST", "/forms/complaint/records", "cust-01", "customer", complaint)
        assert status == 403, body
        status, body = _call(base, "POST", "/forms/customer/records", "adm", "admin", {"company_name": "B", "nickname": "b"})
        assert status == 201 and body["form_version"] == 2, body
    finally:
        server.terminate()
        server.wait(20)
        server.stderr.close()
