"""``WebhookReceiver``: a real HTTP server on 127.0.0.1 that records what it receives and
answers as scripted — for tests of channels and delivery, and as a reference receiver."""
from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Mapping


@dataclass(frozen=True)
class Received:
    path: str
    headers: Mapping[str, str]
    body: bytes


@dataclass(frozen=True)
class Answer:
    status: int = 200
    headers: Mapping[str, str] = field(default_factory=dict)


Script = Callable[[Received], Answer]


class WebhookReceiver:
    """Records every POST in :attr:`received`; answers with :attr:`script` (200 by default).

    >>> with WebhookReceiver.running() as receiver:
    ...     url = receiver.url("/hook")
    """

    def __init__(self) -> None:
        self.received: list[Received] = []
        self.script: Script = lambda _request: Answer()
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the http.server hook name
                length = int(self.headers.get("Content-Length") or 0)
                request = Received(self.path, {key: value for key, value in self.headers.items()}, self.rfile.read(length))
                with receiver._lock:
                    receiver.received.append(request)
                    answer = receiver.script(request)
                self.send_response(answer.status)
                for key, value in answer.headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - quiet
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), name="webhook-receiver", daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def answer_in_turn(self, *statuses: int, then: int = 200) -> None:
        """Answer with ``statuses`` one after the other, then always ``then``."""
        queue = list(statuses)

        def script(_request: Received) -> Answer:
            return Answer(queue.pop(0) if queue else then)

        self.script = script

    def counts_by_delivery(self) -> Counter[str]:
        """How often each ``X-Lowcode-Delivery`` (dedup key) arrived."""
        with self._lock:
            return Counter(request.headers.get("X-Lowcode-Delivery", "") for request in self.received)

    @classmethod
    @contextmanager
    def running(cls) -> Iterator[WebhookReceiver]:
        receiver = cls()
        receiver._thread.start()
        try:
            yield receiver
        finally:
            receiver._server.shutdown()
            receiver._server.server_close()
            receiver._thread.join(timeout=5)


__all__ = ["Answer", "Received", "WebhookReceiver"]
