"""A local HTTP receiver for the http sink's tests, answering from a script: `fail_first` 503s,
then `status`; a body containing `poison` is refused with 400 and a reason, as a receiver
refuses an event it cannot take."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

REFUSAL = b'{"detail": "poison is not accepted here"}'


@dataclass
class Receiver:
    fail_first: int = 0
    status: int = 202
    poison: bytes | None = None
    requests: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    answered: list[int] = field(default_factory=list)  # the status of each request
    url: str = ""
    lock: threading.Lock = field(default_factory=threading.Lock)

    def answer(self, headers: dict[str, str], body: bytes) -> tuple[int, bytes]:
        with self.lock:  # one handler thread per request
            self.requests.append((headers, body))
            status, answer = self.status, b""
            if len(self.requests) <= self.fail_first:
                status = 503
            elif self.poison is not None and self.poison in body:
                status, answer = 400, REFUSAL
            self.answered.append(status)
            return status, answer

    def bodies(self, status: int) -> list[bytes]:
        """The bodies of the requests answered with `status`, in order."""
        return [b for (_, b), s in zip(self.requests, self.answered, strict=True) if s == status]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    script = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", 0)))
            headers = {k.lower(): v for k, v in self.headers.items()}
            status, answer = script.answer(headers, body)
            self.send_response(status)
            self.send_header("content-length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, format: str, *args: Any) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    script.url = f"http://127.0.0.1:{server.server_address[1]}/events"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield script
    finally:
        server.shutdown()
        server.server_close()
