"""What the HTTP benchmarks share: a fresh PostgreSQL database with the bank's definitions and a
few customers, the server subprocess (``_bench_server``, real uvicorn on loopback), the request
bodies, a small asyncio HTTP/1.1 load generator, and the resident size of the server processes.

The load generator is deliberately thin (one keep-alive connection per simulated client,
prebuilt request bytes, a status line and Content-Length parse per answer): on a two-core
machine every microsecond it spends is taken from the server it measures.
"""
from __future__ import annotations

import asyncio
import itertools
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, Iterator

from sqlalchemy.engine import make_url

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
BANK = REPO / "examples" / "bank"
DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/lowcode_bench_http"  # dropped and recreated by each run
ENGINE_PATH = "/api/v1/forms/credit_limit_adjustment/records"
FLOOR_PATH = "/bench/floor"
FORM = "credit_limit_adjustment"


# -- the database ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Prepared:
    customer_ids: list[str]
    headers: dict[str, str]
    """How the load generator says who it is (see :func:`principal_headers`)."""


def fresh_database(url: str, customers: int = 200) -> Prepared:
    """Drop and create the database named in ``url``, migrate it, load examples/bank, submit
    ``customers`` customer records, create the floor table and the submitter's credentials."""
    import psycopg

    parsed = make_url(url)
    if parsed.get_backend_name() != "postgresql":
        raise SystemExit("the HTTP benchmarks run on PostgreSQL: give a postgresql+psycopg:// URL")
    name = parsed.database
    if not name or not name.replace("_", "").isalnum():
        raise SystemExit(f"unexpected database name {name!r}")
    admin = parsed.set(drivername="postgresql", database="postgres").render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        connection.execute(f'CREATE DATABASE "{name}"')

    sys.path.insert(0, str(REPO))
    from engine import Engine

    from _bench_server import create_floor_table

    engine = Engine(url)
    try:
        engine.migrate()
        load_definitions(engine)
        ids = [engine.submit("customer", {"company_name": f"BENCH CUSTOMER {number:04d} LLC", "region": "CA",
                                          "account_manager": USER})["id"]
               for number in range(customers)]
        create_floor_table(engine)
        headers = principal_headers(engine)
    finally:
        engine.close()
    return Prepared(ids, headers)


def load_definitions(engine: Any) -> None:
    """examples/bank without its reports and dashboards (they play no part in a submission):
    forms, processes, and whatever else the bank defines (roles, tags, triggers, ...)."""
    import shutil
    import tempfile

    with tempfile.TemporaryDirectory(prefix="lowcode-bench-defs-") as folder:
        for entry in BANK.iterdir():
            if entry.name in ("reports", "dashboards", "imports"):
                continue
            if entry.is_dir():
                shutil.copytree(entry, Path(folder) / entry.name)
            elif entry.suffix == ".json":
                shutil.copy(entry, folder)
        engine.load_dir(folder)


def server_version(url: str) -> str:
    import psycopg

    plain = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(plain) as connection:
        row = connection.execute("SHOW server_version").fetchone()
    return f"PostgreSQL {row[0].split()[0]}" if row else "PostgreSQL ?"


def count_rows(url: str) -> dict[str, int]:
    """Rows the run left: records of the form, instances, audit entries, outbox rows, floor rows."""
    import psycopg

    plain = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    queries = {"records": f"SELECT count(*) FROM records WHERE form_key = '{FORM}'",
               "instances": "SELECT count(*) FROM process_instances", "audit": "SELECT count(*) FROM audit_log",
               "outbox": "SELECT count(*) FROM outbox", "floor": "SELECT count(*) FROM bench_floor"}
    found: dict[str, int] = {}
    with psycopg.connect(plain) as connection:
        for label, query in queries.items():
            try:
                row = connection.execute(query).fetchone()
                found[label] = int(row[0]) if row else 0
            except psycopg.Error:
                connection.rollback()
                found[label] = -1
    return found


# -- the request bodies ------------------------------------------------------------------------

def application_bodies(customer_ids: list[str], count: int = 999) -> list[bytes]:
    """Credit-limit applications in three shapes, in turn: a small low-risk rise (approved by
    rule at submission), a rise over 20 % (to the account manager, then the risk countersign),
    a new limit (current limit 0: no increase percentage, always to people)."""
    bodies = []
    for number in range(count):
        customer = customer_ids[number % len(customer_ids)]
        shape = number % 3
        base = Decimal(500_000 + 1_000 * (number % 400))
        if shape == 0:
            data = {"current_limit": base, "requested_limit": base + 25_000, "risk_rating": "low"}
        elif shape == 1:
            data = {"current_limit": base, "requested_limit": base * 2, "risk_rating": "medium",
                    "reason": "Seasonal working capital for a new production line"}
        else:
            data = {"current_limit": Decimal(0), "requested_limit": base, "risk_rating": "high",
                    "reason": "First credit line for a new customer"}
        document = {"customer_id": customer, "account_manager": USER,
                    "applied_on": "2026-12-04", **{key: f"{value:.2f}" if isinstance(value, Decimal) else value
                                                   for key, value in data.items()}}
        text = json.dumps(document)
        for key in ("current_limit", "requested_limit"):  # JSON numbers with two places, not strings
            text = text.replace(f'"{key}": "{document[key]}"', f'"{key}": {document[key]}')
        bodies.append(text.encode())
    return bodies


USER, ROLES = "am-bench", ("account_manager",)


def principal_headers(engine: Any) -> dict[str, str]:
    """Who submits: an account manager, with an API token of the engine (``Authorization:
    Bearer``, checked by the server on every request, the floor's included); on a tree without
    token authentication, the development identity headers X-User / X-Roles."""
    if hasattr(engine, "create_token"):
        issued = engine.create_token(USER, ROLES, note="benchmarks/_http_load")
        return {"Authorization": f"Bearer {issued.token}"}
    return {"X-User": USER, "X-Roles": ",".join(ROLES)}


def raw_requests(path: str, bodies: list[bytes], headers: dict[str, str]) -> list[bytes]:
    extra = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    return [(f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n{extra}"
             f"Content-Length: {len(body)}\r\n\r\n").encode() + body for body in bodies]


# -- the server --------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Server:
    """``uvicorn _bench_server:app`` in a subprocess (its own process group), on loopback."""

    def __init__(self, url: str, *, workers: int = 1, background_worker: bool = False) -> None:
        self.url = url
        self.workers = workers
        self.background_worker = background_worker
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> "Server":
        env = {**os.environ, "LOWCODE_DATABASE_URL": self.url, "BENCH_WORKER": "1" if self.background_worker else "0",
               "PYTHONPATH": os.pathsep.join([str(REPO), str(HERE)])}
        command = [sys.executable, "-m", "uvicorn", "_bench_server:app", "--factory", "--app-dir", str(HERE),
                   "--host", "127.0.0.1", "--port", str(self.port), "--workers", str(self.workers),
                   "--log-level", "warning", "--no-access-log"]
        self.process = subprocess.Popen(command, env=env, cwd=REPO, start_new_session=True,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 120
        ready = 0
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                error = self.process.stderr.read().decode(errors="replace") if self.process.stderr else ""
                raise SystemExit(f"the benchmark server exited: {error[-2000:]}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=2) as answer:
                    if answer.status == 200:
                        ready += 1
                        if ready >= 3 * self.workers:  # each worker process answered, most likely
                            return self
            except OSError:
                pass
            time.sleep(0.2)
        self.__exit__(None, None, None)
        raise SystemExit("the benchmark server did not become healthy in 120 s")

    def __exit__(self, *exc: Any) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)  # the group this script started
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def pids(self) -> list[int]:
        """The server process, and its worker processes when there are several."""
        assert self.process is not None
        found = [self.process.pid]
        for pid in list(found):
            found += _children(pid)
        return found


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(child) for child in text.split()]


def rss_bytes(pid: int) -> int:
    """Resident set size of ``pid`` (``VmRSS`` in /proc/PID/status), 0 when it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of ``pid`` so far."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


# -- the load generator ------------------------------------------------------------------------

@dataclass
class Slice:
    """What one timed stretch of load gave."""

    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    failures: int = 0  # connection errors and timeouts
    first_error: str | None = None
    created_total: int = 0  # every 201, warm-up and the answers after the end included

    @property
    def ok(self) -> int:
        return self.statuses.get(201, 0)

    @property
    def errors(self) -> int:
        return sum(count for status, count in self.statuses.items() if status != 201) + self.failures

    def merge(self, other: "Slice") -> None:
        self.seconds += other.seconds
        self.latencies += other.latencies
        for status, count in other.statuses.items():
            self.statuses[status] = self.statuses.get(status, 0) + count
        self.failures += other.failures
        self.created_total += other.created_total
        self.first_error = self.first_error or other.first_error


async def _exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes) -> tuple[int, bytes]:
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
    body = await reader.readexactly(length) if length else b""
    return status, body


async def _client(port: int, requests: Iterator[bytes], stop_at: float, measure_from: float, result: Slice,
                  timeout: float) -> None:
    reader = writer = None
    while True:
        now = time.perf_counter()
        if now >= stop_at:
            break
        try:
            if writer is None:
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
            assert reader is not None
            started = time.perf_counter()
            status, body = await asyncio.wait_for(_exchange(reader, writer, next(requests)), timeout)
            finished = time.perf_counter()
            result.created_total += status == 201
            if measure_from <= finished <= stop_at:  # answered inside the window, whenever sent
                result.latencies.append(finished - started)
                result.statuses[status] = result.statuses.get(status, 0) + 1
                if status != 201 and result.first_error is None:
                    result.first_error = f"{status} {body[:300].decode(errors='replace')}"
        except (OSError, asyncio.IncompleteReadError, asyncio.TimeoutError, ValueError) as exc:
            if time.perf_counter() >= measure_from:
                result.failures += 1
                result.first_error = result.first_error or f"{type(exc).__name__}: {exc}"
            if writer is not None:
                writer.close()
            reader = writer = None
    if writer is not None:
        writer.close()


async def _load(port: int, requests: list[bytes], concurrency: int, seconds: float, warmup: float,
                timeout: float) -> Slice:
    shared = itertools.cycle(requests)
    start = time.perf_counter()
    measure_from = start + warmup
    stop_at = measure_from + seconds
    result = Slice(seconds=seconds)
    await asyncio.gather(*(_client(port, shared, stop_at, measure_from, result, timeout) for _ in range(concurrency)))
    return result


def load(port: int, requests: list[bytes], concurrency: int, seconds: float, warmup: float = 1.0,
         timeout: float = 30.0) -> Slice:
    """``concurrency`` clients, each sending the next request as soon as its answer is in, for
    ``warmup + seconds`` (then each waits for its last answer); the answers that arrive inside
    the last ``seconds`` count, with their latencies."""
    return asyncio.run(_load(port, requests, concurrency, seconds, warmup, timeout))


def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile (``fraction`` in (0, 1]); NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), int(-(-fraction * len(ordered) // 1))))
    return ordered[rank - 1]
