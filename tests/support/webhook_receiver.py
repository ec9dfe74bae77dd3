"""A webhook receiver for tests: a real HTTP server on loopback that records every delivery
and answers each with the next status of a script (200 when the script runs out)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    status: int  # what the receiver answered


class Receiver:
    def __init__(self, port: int) -> None:
        self.url = f"http://127.0.0.1:{port}/hooks/kupe"
        self.received: list[Received] = []
        self.script: list[int] = []
        self.always: int | None = None
        self.delay = 0.0  # seconds to wait before answering
        self._lock = threading.Lock()

    def answer(self) -> int:
        with self._lock:
            if self.always is not None:
                return self.always
            return self.script.pop(0) if self.script else 200

    def record(self, item: Received) -> None:
        with self._lock:
            self.received.append(item)


@contextmanager
def webhook_receiver() -> Iterator[Receiver]:
    box: list[Receiver] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            receiver = box[0]
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            status = receiver.answer()
            receiver.record(Received(self.path, dict(self.headers.items()), body, status))
            if receiver.delay:
                time.sleep(receiver.delay)
            self.send_response(status)
            if 300 <= status < 400:
                self.send_header("Location", "http://127.0.0.1:1/elsewhere")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    box.append(Receiver(server.server_address[1]))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield box[0]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
