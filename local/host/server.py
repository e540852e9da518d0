"""The host's HTTP front door, on loopback.

- `/api/<route>`: HTTP functions. As with Core Tools, function keys are not enforced locally:
  `x-functions-key` and `?code=` are accepted and passed on like any header or query parameter.
- `POST /admin/functions/<name>` with `{"input": "..."}`: run a non-HTTP function now; 202.
- `GET /admin/host/status`: `{"state": "Running"}` once the host serves.
- `/runtime/webhooks/eventgrid?functionName=<name>`: Event Grid deliveries, validation handshakes.
Admin endpoints need the master key on Azure; locally, as with Core Tools, nothing is checked.

What the host answers itself is in the API's error shape (`{"error": {"code", "message", "causes",
"try"}}`), never the standard library's HTML pages: a body past the limit (413, `bodies`), bad
framing (400), no function at that path (404), a path whose functions take other methods, whatever
the method (405 with `Allow`; Azure's host answers 404 there, Azure/azure-functions-host#10098,
issue 16 asks for the RFC 9110 answer), a method no route can take at a path no function serves
(501), a malformed request line or headers (400, 414, 431). CORS preflights and headers as the
platform adds them (`cors`).
"""

from __future__ import annotations

import json
import logging
import socket
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import azure.functions as func

from shared.domain.errors import ErrorCode

from . import events
from .bodies import MAX_REQUEST_BODY_BYTES, Body, Framing, Refused
from .cors import Cors, is_preflight
from .index import ALL_METHODS, ROUTE_PREFIX, Binding, FunctionIndex

log = logging.getLogger(__name__)

EVENT_GRID_PATH = "/runtime/webhooks/eventgrid"
ADMIN_FUNCTIONS = "/admin/functions/"
HOST_STATUS = "/admin/host/status"
LINGER_SECONDS = 2.0  # how long unread body bytes are drained after an early answer
# The standard library's own refusals (parse_request), under the codes clients branch on.
PARSE_ERRORS = {400: ErrorCode.BAD_REQUEST, 414: ErrorCode.URI_TOO_LONG,
                431: ErrorCode.REQUEST_HEADER_FIELDS_TOO_LARGE, 505: ErrorCode.HTTP_VERSION_NOT_SUPPORTED}


@dataclass(frozen=True)
class Reply:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, status: int, body: Any) -> Reply:
        return cls(status, json.dumps(body).encode(), {"Content-Type": "application/json; charset=utf-8"})

    @classmethod
    def from_response(cls, response: func.HttpResponse) -> Reply:
        headers = dict(response.headers)
        if response.mimetype and "content-type" not in {name.lower() for name in headers}:
            charset = f"; charset={response.charset}" if response.charset else ""
            headers["Content-Type"] = response.mimetype + charset
        return cls(response.status_code, response.get_body() or b"", headers)

    @classmethod
    def error(cls, refused: Refused) -> Reply:
        body = {"error": {"code": refused.code.value, "message": refused.message, "causes": refused.causes,
                          "try": refused.try_hint}}
        reply = cls.json(refused.status, body)
        reply.headers.update(refused.headers)
        return reply


def not_found(path: str) -> Refused:
    return Refused(404, ErrorCode.NOT_FOUND, "No function serves this path.", [f"{path} matches no route"],
                   "see /api/openapi.json for the API's routes")


def method_not_allowed(method: str, path: str, allowed: Iterable[str]) -> Refused:
    methods = ", ".join(sorted(allowed))
    return Refused(405, ErrorCode.METHOD_NOT_ALLOWED, f"{path} does not take {method}.",
                   [f"it takes {methods}"], "see /api/openapi.json for the API's routes", {"Allow": methods})


class HostServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024  # a fleet's requests at once are queued, not reset (the default is 5)

    def __init__(self, port: int, index: FunctionIndex, run_later: Callable[[Callable[[], None]], None], *,
                 body_limit: int = MAX_REQUEST_BODY_BYTES, cors: Cors | None = None) -> None:
        super().__init__(("127.0.0.1", port), RequestHandler)
        self.index = index
        self.run_later = run_later  # starts an admin-requested run on the host's pool
        self.body_limit = body_limit
        self.cors = cors


class RequestHandler(BaseHTTPRequestHandler):
    server: HostServer
    body: Body | None = None

    def __getattr__(self, name: str) -> Callable[[], None]:
        # Every method reaches _answer, which refuses in the error shape what no route takes,
        # instead of BaseHTTPRequestHandler's HTML 501 page for a method it has no do_ for.
        if name.startswith("do_"):
            return self._answer
        raise AttributeError(name)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.address_string(), *args)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """The standard library's refusals of a malformed request, in the error shape."""
        short, long = self.responses.get(code, ("Error", "The request was refused."))
        self.log_error("refused %d: %s", code, message or short)
        self.close_connection = True
        if self.request_version == "HTTP/0.9":  # unparsed: HTTP/0.9 would drop the status and headers
            self.request_version = "HTTP/1.0"
        self._send(Reply.error(Refused(code, PARSE_ERRORS.get(code, ErrorCode.BAD_REQUEST), message or short,
                                       [explain or long], "send a well-formed HTTP/1.1 request")))

    def _answer(self) -> None:
        self.body = None
        try:
            reply = self._checked()
        except Refused as refused:
            reply = Reply.error(refused)
        except Exception:  # a failing function is a 500, as on the host; the host keeps serving
            log.exception("%s %s failed", self.command, self.path)
            reply = Reply(500)
        cors = self.server.cors
        if cors is not None and not is_preflight(self.command, self.headers):
            _add_headers(reply.headers, cors.response_headers(self.headers))
        complete = self._body_complete()
        if not complete:
            self.close_connection = True  # what is left of the body must not be read as a request
        self._send(reply)
        if not complete:
            self._drain()

    def _send(self, reply: Reply) -> None:
        self.send_response(reply.status)
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(reply.body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(reply.body)

    def _drain(self) -> None:
        """Read and drop what the client still sends for a while before closing: closing with
        unread bytes makes the kernel reset the connection, and a client still sending its body
        could lose the answer."""
        deadline = time.monotonic() + LINGER_SECONDS
        try:
            self.connection.shutdown(socket.SHUT_WR)
            while (left := deadline - time.monotonic()) > 0:
                self.connection.settimeout(left)
                if not self.connection.recv(64 * 1024):
                    return
        except OSError:  # the client went away, or kept sending past the deadline
            return

    def _checked(self) -> Reply:
        path = urlsplit(self.path).path
        if self.command not in ALL_METHODS:  # CONNECT, or a method HTTP does not define
            served = self.server.index.methods_for(path)
            if served:  # a path the API serves: say which methods it takes
                raise method_not_allowed(self.command[:40], path, served)
            raise Refused(501, ErrorCode.NOT_IMPLEMENTED,
                          f"This host does not implement {self.command[:40]}.",
                          [f"the methods served are {', '.join(ALL_METHODS)}"], "use one of them")
        framing = Framing.of(self.headers, self.server.body_limit)
        self.body = Body(self.rfile, framing, self.server.body_limit)
        cors = self.server.cors
        if cors is not None and is_preflight(self.command, self.headers):
            methods = self.server.index.methods_for(path)
            return Reply(204, headers=cors.preflight_headers(self.headers, methods))
        return self._route()

    def _route(self) -> Reply:
        parts = urlsplit(self.path)
        path, method = parts.path.lower(), self.command
        if path.startswith(f"/{ROUTE_PREFIX}/"):
            return self._http_function(parts.path)
        if path == EVENT_GRID_PATH:
            if method not in ("POST", "OPTIONS"):
                raise method_not_allowed(method, parts.path, ("POST", "OPTIONS"))
            return self._event_grid(dict(parse_qsl(parts.query)))
        if path.startswith(ADMIN_FUNCTIONS):
            if method != "POST":
                raise method_not_allowed(method, parts.path, ("POST",))
            return self._run_on_demand(parts.path[len(ADMIN_FUNCTIONS):])
        if path == HOST_STATUS:
            if method != "GET":
                raise method_not_allowed(method, parts.path, ("GET",))
            return Reply.json(200, {"id": "local", "state": "Running", "version": "local"})
        raise not_found(parts.path)

    def _http_function(self, path: str) -> Reply:
        index = self.server.index
        if index.match(self.command, path) is None:
            allowed = index.methods_for(path)
            raise method_not_allowed(self.command, path, allowed) if allowed else not_found(path)
        host = self.headers.get("Host") or f"127.0.0.1:{self.server.server_port}"
        headers = {name: ", ".join(self.headers.get_all(name) or []) for name in self.headers}
        response = index.http(self.command, f"http://{host}{self.path}", body=self._body(), headers=headers)
        return Reply.from_response(response)

    def _run_on_demand(self, name: str) -> Reply:
        try:
            request = json.loads(self._body() or b"{}")
            text = request.get("input", "") if isinstance(request, dict) else None
            if not isinstance(text, str):
                raise _bad_input('send {"input": "<string>"}')
            run = self.server.index.on_demand(name, text)
        except KeyError:
            raise Refused(404, ErrorCode.NOT_FOUND, f"No function is called {name}.",
                          [f"{name} is not indexed"],
                          "POST /admin/functions/<name of a timer, queue or Event Grid function>") from None
        except ValueError as err:
            raise _bad_input(str(err)) from None
        self.server.run_later(run)
        return Reply(202)

    def _event_grid(self, query: dict[str, str]) -> Reply:
        binding = self.server.index.function(query.get("functionName", ""))
        if binding is None or binding.kind != "eventGridTrigger":
            raise Refused(404, ErrorCode.NOT_FOUND, "No Event Grid function by that functionName.",
                          [f"functionName={query.get('functionName', '')!r}"],
                          "name an Event Grid trigger in ?functionName=")
        if self.command == "OPTIONS":  # the CloudEvents webhook handshake
            origin = self.headers.get("WebHook-Request-Origin", "*")
            return Reply(200, headers={"WebHook-Allowed-Origin": origin})
        try:
            batch = events.parse_batch(self._body())
        except ValueError as err:
            raise _bad_input(str(err)) from None
        return _event_grid_reply(binding, self.headers.get("aeg-event-type", "Notification"), batch)

    def _body_complete(self) -> bool:
        return self.body is not None and self.body.complete

    def _body(self) -> bytes:
        assert self.body is not None  # _checked made it
        return self.body.read()


def _add_headers(headers: dict[str, str], added: dict[str, str]) -> None:
    """Add headers to a function's response; a Vary it set is extended, not replaced."""
    for name, value in added.items():
        existing = next((key for key in headers if key.lower() == name.lower()), None)
        if existing is not None and name.lower() == "vary":
            headers[existing] = f"{headers[existing]}, {value}"
        else:
            headers[existing or name] = value


def _bad_input(cause: str) -> Refused:
    return Refused(400, ErrorCode.BAD_REQUEST, "The host could not take this request.", [cause],
                   "see docs/local.md for what the host's endpoints take")


def _event_grid_reply(binding: Binding, event_type: str, batch: list[dict[str, Any]]) -> Reply:
    """Answer a delivery as the host's Event Grid extension does: validation handshakes echo
    their code, notifications run the function once per event; any failure is a 500, which makes
    Event Grid retry the delivery."""
    kind = event_type.lower()
    if kind == "subscriptionvalidation":
        try:
            return Reply.json(200, {"validationResponse": events.validation_code(batch)})
        except ValueError as err:
            return Reply.error(_bad_input(str(err)))
    if kind == "unsubscribe":
        return Reply(202)
    if kind != "notification":
        return Reply.error(_bad_input(f"unknown aeg-event-type {event_type!r}"))
    for event in batch:
        try:
            binding.invoke(events.trigger_event(event))
        except Exception:
            log.exception("%s failed on event %s", binding.name, event.get("id"))
            return Reply(500)
    return Reply(200)
