"""Serves the emulator over HTTPS on loopback with a CA of its own (trustme), plus a small
control API under `/_emulator/` (no authentication, loopback only) for tests, benchmarks and
`python -m local`: faults, the request log, published events, settings and shares' files."""

from __future__ import annotations

import json
import logging
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import trustme

from local.emulator.core import Emulator, Request, Response, dumps
from local.emulator.traffic import Fault

log = logging.getLogger(__name__)
CONTROL = "/_emulator/"
MAX_BODY = 4 * 1024 * 1024


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    emulator: Emulator


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.address_string(), *args)

    def _handle(self) -> None:
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if 0 < length <= MAX_BODY else b""
        if length > MAX_BODY:
            self._send(
                Response(413, {"error": {"code": "RequestEntityTooLarge", "message": "Body too large."}})
            )
            return
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = ValueError  # distinguishable from "no body": answered as InvalidRequestContent
        host = self.headers.get("Host") or f"127.0.0.1:{self.server.server_address[1]}"
        request = Request(
            self.command,
            parts.path,
            dict(parse_qsl(parts.query, keep_blank_values=True)),
            {k.lower(): v for k, v in self.headers.items()},
            body,
            f"https://{host}",
        )
        if parts.path.startswith(CONTROL):
            self._send(control(self.server.emulator, request))
        else:
            self._send(self.server.emulator.handle(request))

    def _send(self, response: Response) -> None:
        data = dumps(response.body)
        self.send_response(response.status)
        for name, value in response.headers.items():
            self.send_header(name, value)
        if data:
            self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    do_GET = do_PUT = do_POST = do_PATCH = do_DELETE = do_HEAD = _handle


def control(emu: Emulator, request: Request) -> Response:
    """`/_emulator/...`: what tests and tools steer and read."""
    route = request.path[len(CONTROL) :].strip("/")
    body = request.body if isinstance(request.body, dict) else {}
    method = request.method
    if route == "health" and method == "GET":
        return Response(200, {"status": "ok", "sandbox": emu.machines.unavailable or "available"})
    if route == "faults" and method == "POST":
        try:
            fault = emu.faults.add_rule(Fault.from_json(body))
        except (KeyError, TypeError, ValueError) as error:
            return Response(400, {"error": {"code": "InvalidFault", "message": str(error)}})
        return Response(201, {"pathPattern": fault.path_pattern, "remaining": fault.count})
    if route == "faults" and method in ("GET", "DELETE"):
        if method == "DELETE":
            emu.faults.clear()
        return Response(200, {"value": emu.faults.to_json()})
    if route == "requests" and method in ("GET", "DELETE"):
        if method == "DELETE":
            emu.requests.clear()
        return Response(
            200, {"value": [e.to_json() for e in emu.requests.snapshot()], "kinds": emu.requests.kinds()}
        )
    if route == "events" and method == "GET":
        return Response(200, {"value": emu.events.published})
    if route == "config" and method in ("GET", "PATCH"):
        for key, value in body.items():
            current = getattr(emu.config, key, ValueError)
            if current is ValueError or not _same_kind(current, value):
                return Response(400, {"error": {"code": "InvalidSetting", "message": f"{key}: {value!r}"}})
        for key, value in body.items():
            setattr(emu.config, key, value)
        return Response(200, dict(vars(emu.config)))
    return Response(404, {"error": {"code": "NotFound", "message": f"No control route {method} {route}."}})


def _same_kind(current: Any, value: Any) -> bool:
    """A setting keeps its type (a number stays a number; optional ones may become null)."""
    if value is None:
        return current is None or isinstance(current, str)
    if isinstance(current, bool) or isinstance(value, bool):
        return isinstance(current, bool) and isinstance(value, bool)
    if isinstance(current, (int, float)):
        return isinstance(value, (int, float))
    return current is None or isinstance(value, type(current))


class EmulatorServer:
    """The emulator on `https://127.0.0.1:<port>`; `ca_path` is the PEM file clients trust."""

    def __init__(
        self, emulator: Emulator, directory: Path, *, port: int = 0, host: str = "127.0.0.1"
    ) -> None:
        self.emulator = emulator
        authority = trustme.CA(organization_name="azlin local Azure emulator")
        certificate = authority.issue_cert("127.0.0.1", "localhost")
        directory.mkdir(parents=True, exist_ok=True)
        self.ca_path = directory / "emulator-ca.pem"
        authority.cert_pem.write_to_path(str(self.ca_path))
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        certificate.configure_cert(context)
        self._server = _Server((host, port), _Handler)
        self._server.emulator = emulator
        self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        self._thread = threading.Thread(target=self._server.serve_forever, name="emulator-https", daemon=True)

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
