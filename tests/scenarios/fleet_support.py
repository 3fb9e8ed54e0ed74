"""A fleet of real ``lowcode serve`` and ``lowcode worker`` processes on one fresh PostgreSQL
database, for the scale-out and crash tests: free loopback ports, a shared file clock the test
moves (``LOWCODE_CLOCK=file:...``), a webhook receiver that records every delivery, logs kept
per process and shown when a test fails, and polling with deadlines (never a sleep that a
result depends on)."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx2 as httpx
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from engine.clock import FileClock, write_clock_file
from engine.notify.signing import DELIVERY_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, verify_signature

REPO = Path(__file__).resolve().parents[2]
BANK = REPO / "examples" / "bank"
PG_URL = os.environ.get("LOWCODE_TEST_DATABASE_URL")
NEEDS_PG = "needs PostgreSQL (LOWCODE_TEST_DATABASE_URL): several server and worker processes share one database, " \
           "which SQLite (one writer, a local file) is not meant for"
SECRET = "fleet-test-secret"


def load_bank(engine: Any) -> None:
    """The bank's forms and processes (not its reports and other definitions, which the fleet
    tests do not use). A form that refers to one not loaded yet is retried after the others."""
    from engine.errors import DefinitionInvalid
    from engine.jsoncodec import loads

    for folder in ("forms", "processes"):
        pending = [loads(path.read_bytes()) for path in sorted((BANK / folder).glob("*.json"))]
        while pending:
            deferred = []
            for document in pending:
                try:
                    engine.upload(document)
                except DefinitionInvalid as exc:
                    if not any(issue.code == "definition.unknown_form" for issue in exc.issues):
                        raise
                    deferred.append(document)
            if len(deferred) == len(pending):
                engine.upload(deferred[0])  # raises the error that holds them back
            pending = deferred


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def poll(check: Callable[[], Any], *, timeout: float, what: str, every: float = 0.1) -> Any:
    """Call ``check`` until it returns something truthy; fail naming ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what} (last: {last!r})")


class Stopwatch:
    """Seconds from the start to each named step, printed with a test's summary."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.laps: dict[str, float] = {}

    def lap(self, name: str) -> None:
        self.laps[name] = round(time.monotonic() - self.started, 1)

    def __str__(self) -> str:
        return ", ".join(f"{name} {seconds}s" for name, seconds in self.laps.items())


@contextmanager
def fresh_database(suffix: str) -> Iterator[str]:
    """A new, empty PostgreSQL database beside the test database, dropped afterwards."""
    assert PG_URL
    base = make_url(PG_URL)
    name = f"{base.database}_{suffix}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        yield base.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@dataclass
class Delivery:
    path: str
    key: str
    topic: str
    body: dict[str, Any]


class Receiver:
    """An HTTP endpoint on 127.0.0.1 that accepts every signed post and records it; a bad
    signature is answered 401 and counted."""

    def __init__(self, clock: FileClock) -> None:
        self.deliveries: list[Delivery] = []
        self.refused = 0
        self.waiting = 0
        """Requests being held (see :meth:`hold`)."""
        self._lock = threading.Lock()
        self._open = threading.Event()
        self._open.set()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the http.server protocol
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if not receiver._open.is_set():
                    with receiver._lock:
                        receiver.waiting += 1
                    receiver._open.wait(180)
                    with receiver._lock:
                        receiver.waiting -= 1
                ok = verify_signature(SECRET, self.headers.get(SIGNATURE_HEADER, ""),
                                      self.headers.get(TIMESTAMP_HEADER, ""), body, now=clock.now().timestamp(),
                                      tolerance_seconds=10**9)  # the test's clock jumps by days
                with receiver._lock:
                    if ok:
                        receiver.deliveries.append(Delivery(self.path, self.headers.get(DELIVERY_HEADER, ""),
                                                            self.headers.get("X-Lowcode-Topic", ""), json.loads(body)))
                    else:
                        receiver.refused += 1
                self.send_response(200 if ok else 401)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = int(self.server.server_address[1])
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown()
        self.server.server_close()

    def hold(self) -> None:
        """Keep every request waiting (its sender blocked mid-send) until :meth:`release`."""
        self._open.clear()

    def release(self) -> None:
        self._open.set()

    def keys(self) -> dict[str, int]:
        """How many times each dedup key arrived."""
        with self._lock:
            counts: dict[str, int] = {}
            for delivery in self.deliveries:
                counts[delivery.key] = counts.get(delivery.key, 0) + 1
            return counts


@dataclass
class Member:
    name: str
    argv: list[str]
    log: Path
    process: subprocess.Popen[bytes]
    port: int | None = None


@dataclass
class Fleet:
    """Servers and workers as subprocesses; :meth:`close` kills whatever is left."""

    database_url: str
    workdir: Path
    receiver_port: int
    members: dict[str, Member] = field(default_factory=dict)
    clock_file: Path = field(init=False)

    def __post_init__(self) -> None:
        self.clock_file = self.workdir / "clock"
        self.logs = self.workdir / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)

    def set_time(self, instant: datetime) -> None:
        write_clock_file(self.clock_file, instant)

    def environment(self) -> dict[str, str]:
        hook = f"http://127.0.0.1:{self.receiver_port}"
        env = {key: value for key, value in os.environ.items() if not key.startswith("LOWCODE_")}
        env.update({
            "LOWCODE_DATABASE_URL": self.database_url,
            "LOWCODE_CLOCK": f"file:{self.clock_file}",
            "LOWCODE_TRUST_IDENTITY_HEADERS": "1",
            "LOWCODE_OUTBOUND_ALLOW": "127.0.0.1/32",
            "LOWCODE_OUTBOX_SECRET": SECRET,
            "LOWCODE_EVENT_WEBHOOKS": f"{hook}/events",
            "LOWCODE_SMS_URL": f"{hook}/sms",
            "LOWCODE_APP_PUSH_URL": f"{hook}/app",
            "LOWCODE_NOTIFY_WEBHOOK_URL": f"{hook}/webhook",
            "LOWCODE_OUTBOX_LEASE_SECONDS": "30",
            "LOWCODE_TIMER_LEASE_SECONDS": "30",
            "LOWCODE_OUTBOUND_TIMEOUT_SECONDS": "150",  # a send outlasts the receiver's hold
            "LOWCODE_LOG_FORMAT": "plain",
            "PYTHONUNBUFFERED": "1",
        })
        return env

    def _command(self) -> list[str]:
        script = Path(sys.executable).with_name("lowcode")
        return [str(script)] if script.exists() else [sys.executable, "-c", "from engine.cli import main; main()"]

    def _spawn(self, name: str, args: list[str], port: int | None = None) -> Member:
        log = self.logs / f"{name}.log"
        handle = open(log, "ab")  # noqa: SIM115 - the child owns it; closed with the fleet
        handle.write(f"---- start {' '.join(args)}\n".encode())
        handle.flush()
        process = subprocess.Popen(self._command() + args, cwd=self.workdir, env=self.environment(),
                                   stdout=handle, stderr=subprocess.STDOUT, start_new_session=True)
        handle.close()
        member = Member(name, args, log, process, port)
        self.members[name] = member
        return member

    def start_server(self, name: str, port: int | None = None) -> str:
        port = port or free_port()
        self._spawn(name, ["serve", "--no-worker", "--host", "127.0.0.1", "--port", str(port),
                           "--log-format", "plain"], port)
        url = f"http://127.0.0.1:{port}"

        def ready() -> bool:
            self._alive(name)
            try:
                return httpx.get(f"{url}/ready", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        poll(ready, timeout=90, what=f"{name} to answer /ready", every=0.2)
        return url

    def start_worker(self, name: str) -> None:
        self._spawn(name, ["worker", "--interval", "0.2"])

    def _alive(self, name: str) -> None:
        member = self.members[name]
        if member.process.poll() is not None:
            raise AssertionError(f"{name} exited with {member.process.returncode}:\n{self.tail(name)}")

    def check_alive(self) -> None:
        for name in self.members:
            self._alive(name)

    def kill(self, name: str) -> None:
        """SIGKILL, as a machine losing power would: no cleanup, no commit in flight finished."""
        member = self.members[name]
        os.killpg(member.process.pid, signal.SIGKILL)
        member.process.wait(timeout=30)

    def close(self) -> None:
        for member in self.members.values():
            if member.process.poll() is None:
                try:
                    os.killpg(member.process.pid, signal.SIGTERM)
                except ProcessLookupError:
                    continue
        for member in self.members.values():
            try:
                member.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(member.process.pid, signal.SIGKILL)
                member.process.wait(timeout=10)

    def tail(self, name: str, lines: int = 60) -> str:
        return "\n".join(self.members[name].log.read_text(errors="replace").splitlines()[-lines:])

    def report(self) -> str:
        return "\n".join(f"==== {name} (exit {member.process.poll()})\n{self.tail(name)}"
                         for name, member in self.members.items())


@contextmanager
def running_fleet(database_url: str, workdir: Path, receiver_port: int) -> Iterator[Fleet]:
    """A fleet whose processes are always stopped, with their logs printed if the body fails."""
    fleet = Fleet(database_url, workdir, receiver_port)
    try:
        yield fleet
    except BaseException:
        print(fleet.report())  # shown by pytest with the failure
        raise
    finally:
        fleet.close()
