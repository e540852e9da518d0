"""The host's HTTP front door, on loopback.

- `/api/<route>`: HTTP functions. As with Core Tools, function keys are not enforced locally:
  `x-functions-key` and `?code=` are accepted and passed on like any header or query parameter.
- `POST /admin/functions/<name>` with `{"input": "..."}`: run a non-HTTP function now; 202.
- `GET /admin/host/status`: `{"state": "Running"}` once the host serves.
- `/runtime/webhooks/eventgrid?functionName=<name>`: Event Grid deliveries, validation handshakes.
Admin endpoints need the master key on Azure; locally, as with Core Tools, nothing is checked.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import azure.functions as func

from . import events
from .index import ROUTE_PREFIX, Binding, FunctionIndex

log = logging.getLogger(__name__)

EVENT_GRID_PATH = "/runtime/webhooks/eventgrid"
ADMIN_FUNCTIONS = "/admin/functions/"
HOST_STATUS = "/admin/host/status"


@dataclass(frozen=True)
class Reply:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, status: int, body: Any) -> Reply:
        return cls(status, json.dumps(body).encode(), {"Content-Type": "application/json; charset=utf-8"})

    @classmethod
    def text(cls, status: int, message: str) -> Reply:
        return cls(status, message.encode(), {"Content-Type": "text/plain; charset=utf-8"})

    @classmethod
    def from_response(cls, response: func.HttpResponse) -> Reply:
        headers = dict(response.headers)
        if response.mimetype and "content-type" not in {name.lower() for name in headers}:
            charset = f"; charset={response.charset}" if response.charset else ""
            headers["Content-Type"] = response.mimetype + charset
        return cls(response.status_code, response.get_body() or b"", headers)


class HostServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024  # a fleet's requests at once are queued, not reset (the default is 5)

    def __init__(self, port: int, index: FunctionIndex,
                 run_later: Callable[[Callable[[], None]], None]) -> None:
        super().__init__(("127.0.0.1", port), RequestHandler)
        self.index = index
        self.run_later = run_later  # starts an admin-requested run on the host's pool


class RequestHandler(BaseHTTPRequestHandler):
    server: HostServer

    def do_GET(self) -> None:
        self._answer()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = do_GET

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.address_string(), *args)

    def _answer(self) -> None:
        try:
            reply = self._route()
        except Exception:  # a failing function is a 500, as on the host; the host keeps serving
            log.exception("%s %s failed", self.command, self.path)
            reply = Reply(500)
        self.send_response(reply.status)
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(reply.body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(reply.body)

    def _route(self) -> Reply:
        parts = urlsplit(self.path)
        path, method = parts.path.lower(), self.command
        if path.startswith(f"/{ROUTE_PREFIX}/"):
            return self._http_function()
        if path == EVENT_GRID_PATH:
            return self._event_grid(dict(parse_qsl(parts.query)))
        if path.startswith(ADMIN_FUNCTIONS) and method == "POST":
            return self._run_on_demand(parts.path[len(ADMIN_FUNCTIONS):])
        if path == HOST_STATUS and method == "GET":
            return Reply.json(200, {"id": "local", "state": "Running", "version": "local"})
        return Reply(404)

    def _http_function(self) -> Reply:
        host = self.headers.get("Host") or f"127.0.0.1:{self.server.server_port}"
        headers = {name: ", ".join(self.headers.get_all(name) or []) for name in self.headers}
        response = self.server.index.http(self.command, f"http://{host}{self.path}", body=self._body(),
                                          headers=headers)
        return Reply.from_response(response)

    def _run_on_demand(self, name: str) -> Reply:
        try:
            request = json.loads(self._body() or b"{}")
            text = request.get("input", "") if isinstance(request, dict) else None
            if not isinstance(text, str):
                return Reply.text(400, 'send {"input": "<string>"}')
            run = self.server.index.on_demand(name, text)
        except KeyError:
            return Reply(404)
        except ValueError as err:
            return Reply.text(400, str(err))
        self.server.run_later(run)
        return Reply(202)

    def _event_grid(self, query: dict[str, str]) -> Reply:
        binding = self.server.index.function(query.get("functionName", ""))
        if binding is None or binding.kind != "eventGridTrigger":
            return Reply.text(404, "no Event Grid function by that functionName")
        if self.command == "OPTIONS":  # the CloudEvents webhook handshake
            origin = self.headers.get("WebHook-Request-Origin", "*")
            return Reply(200, headers={"WebHook-Allowed-Origin": origin})
        try:
            batch = events.parse_batch(self._body())
        except ValueError as err:
            return Reply.text(400, str(err))
        return _event_grid_reply(binding, self.headers.get("aeg-event-type", "Notification"), batch)

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""


def _event_grid_reply(binding: Binding, event_type: str, batch: list[dict[str, Any]]) -> Reply:
    """Answer a delivery as the host's Event Grid extension does: validation handshakes echo
    their code, notifications run the function once per event; any failure is a 500, which makes
    Event Grid retry the delivery."""
    kind = event_type.lower()
    if kind == "subscriptionvalidation":
        try:
            return Reply.json(200, {"validationResponse": events.validation_code(batch)})
        except ValueError as err:
            return Reply.text(400, str(err))
    if kind == "unsubscribe":
        return Reply(202)
    if kind != "notification":
        return Reply.text(400, f"unknown aeg-event-type {event_type!r}")
    for event in batch:
        try:
            binding.invoke(events.trigger_event(event))
        except Exception:
            log.exception("%s failed on event %s", binding.name, event.get("id"))
            return Reply(500)
    return Reply(200)
