"""A webhook receiver on this machine: the cost digest's `COST_DIGEST_WEBHOOK_URL` in `make dev`
and in tests, and the emulator's Event Grid subscriber in tests. It keeps every accepted JSON body
with its headers (and writes the body to `directory`, when given), and can refuse the next posts
with a 500 to play a receiver that is down."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any


class Inbox:
    def __init__(self, directory: Path | None = None, path: str = "/hooks/digest") -> None:
        self.accepted: list[Any] = []
        self.headers: list[dict[str, str]] = []  # of each accepted post, names in lower case
        self.refused = 0
        self.refuse_next = 0
        self.directory = directory
        self._lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                status = outer.receive(body, {k.lower(): v for k, v in self.headers.items()})
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}{path}"
        threading.Thread(target=self.server.serve_forever, name="inbox", daemon=True).start()

    @property
    def keys(self) -> list[str]:
        """The Idempotency-Key of each accepted post."""
        return [headers.get("idempotency-key", "") for headers in self.headers]

    def receive(self, body: bytes, headers: dict[str, str]) -> int:
        with self._lock:
            if self.refuse_next > 0:
                self.refuse_next -= 1
                self.refused += 1
                return 500
            try:
                value = json.loads(body)
            except ValueError:
                return 400
            self.accepted.append(value)
            self.headers.append(headers)
            if self.directory is not None:
                self.directory.mkdir(parents=True, exist_ok=True)
                (self.directory / f"{len(self.accepted):04d}.json").write_text(json.dumps(value, indent=2))
            return 200

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
