"""Serves the emulator over HTTPS on loopback with a CA of its own (trustme), plus a small
control API under `/_emulator/` (no authentication, loopback only) for tests, benchmarks and
`python -m local`: faults, the request log, published events, settings and shares' files."""

from __future__ import annotations

import json
import logging
import re
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

import trustme

from local.emulator.arm import ArmError, Request, Response
from local.emulator.core import Emulator, dumps
from local.emulator.tenant import ARM_SCOPE, TenantError, parse_form
from local.emulator.traffic import Fault

log = logging.getLogger(__name__)
CONTROL = "/_emulator/"
MAX_BODY = 4 * 1024 * 1024


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024  # as Resource Manager, many clients at once (the default backlog is 5)
    emulator: Emulator


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.address_string(), *args)

    def _handle(self) -> None:
        parts = urlsplit(self.path)
        # Clients percent-encode each name in the path (azure-core quotes every path argument, so
        # `(` arrives as %28): Resource Manager names a resource by the decoded text (RFC 3986 2.1).
        path = unquote(parts.path)
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
        tenant = self.server.emulator.tenant
        if path.startswith(f"/{tenant.tenant_id}/"):
            self._send(sign_in(self.server.emulator, self.command, path, raw))
            return
        host = self.headers.get("Host") or f"127.0.0.1:{self.server.server_address[1]}"
        request = Request(
            self.command,
            path,
            dict(parse_qsl(parts.query, keep_blank_values=True)),
            {k.lower(): v for k, v in self.headers.items()},
            body,
            f"https://{host}",
            raw=raw,
        )
        if path.startswith(CONTROL):
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


def sign_in(emu: Emulator, method: str, path: str, raw: bytes) -> Response:
    """The tenant's endpoints (login.microsoftonline.com in Azure): OpenID configuration, signing
    keys, and the token endpoint."""
    tenant = emu.tenant
    route = path[len(tenant.tenant_id) + 2 :].rstrip("/")
    if method == "GET" and route == "v2.0/.well-known/openid-configuration":
        return Response(200, tenant.openid_configuration())
    if method == "GET" and route == "discovery/v2.0/keys":
        return Response(200, tenant.jwks())
    if method == "POST" and route == "oauth2/v2.0/token":
        try:
            return Response(200, tenant.grant(parse_form(raw)), {"Cache-Control": "no-store"})
        except TenantError as error:
            return Response(error.status, error.body())
    return Response(404, {"error": "not_found", "error_description": f"No endpoint {method} {path}."})


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
    if route == "throttles" and method == "POST":
        try:
            throttle = emu.faults.throttle(
                str(body.get("method", "*")), str(body["pathPattern"]), limit=int(body["limit"]),
                window_seconds=float(body["windowSeconds"]), policy=str(body.get("policy", "Throttled")))
        except (KeyError, TypeError, ValueError, re.error) as error:
            return Response(400, {"error": {"code": "InvalidThrottle", "message": str(error)}})
        return Response(201, {"pathPattern": throttle.path_pattern, "limit": throttle.limit})
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
    if route in IDENTITY_ROUTES and method == "POST":
        try:
            return IDENTITY_ROUTES[route](emu, body)
        except (KeyError, TypeError, ValueError) as error:
            return Response(400, {"error": {"code": "InvalidRequest", "message": str(error)}})
        except (ArmError, TenantError) as error:
            status = error.status
            message = error.message if isinstance(error, ArmError) else error.description
            code = getattr(error, "code", "Refused")
            return Response(status, {"error": {"code": code, "message": message}})
    if route == "principals" and method == "GET":
        return Response(200, {"value": [_principal_json(p) for p in emu.tenant.principals()]})
    if route == "config" and method in ("GET", "PATCH"):
        for key, value in body.items():
            current = getattr(emu.config, key, ValueError)
            if current is ValueError or not _same_kind(current, value):
                return Response(400, {"error": {"code": "InvalidSetting", "message": f"{key}: {value!r}"}})
        for key, value in body.items():
            setattr(emu.config, key, value)
        return Response(200, dict(vars(emu.config)))
    return Response(404, {"error": {"code": "NotFound", "message": f"No control route {method} {route}."}})


def _principal_json(principal: Any) -> dict[str, Any]:
    return {"objectId": principal.object_id, "kind": principal.kind, "name": principal.name,
            "appId": principal.app_id}


def _add_principal(emu: Emulator, body: dict[str, Any]) -> Response:
    """`{"name", "kind": "User|Group|ServicePrincipal", "groups": [...], "secret"?}`: groups named
    are created when missing; the principal joins each."""
    tenant = emu.tenant
    principal = tenant.add(str(body.get("kind") or "User"), str(body["name"]),
                           secret=body.get("secret"))
    for group in body.get("groups") or []:
        tenant.add("Group", str(group))
        tenant.add_member(str(group), principal.object_id)
    return Response(201, _principal_json(principal))


def _issue_token(emu: Emulator, body: dict[str, Any]) -> Response:
    """`{"principal", "for": "api"|"arm", "lifetimeSeconds"?}`: what `az account get-access-token`
    gives a signed-in user (or a service principal its client-credentials token)."""
    tenant = emu.tenant
    principal = tenant.get(str(body["principal"]))
    if body.get("for", "api") == "arm":
        scope = ARM_SCOPE
    else:
        api = next((p for p in tenant.principals() if p.scope), None)
        if api is None:
            raise ValueError("no API is registered in the tenant")
        scope = f"api://{api.app_id}/.default"
    lifetime = int(body.get("lifetimeSeconds") or 3600)
    if not 60 <= lifetime <= 86400:  # Entra's configurable token lifetimes: 10 minutes to 1 day
        raise ValueError("lifetimeSeconds must be from 60 to 86400")
    return Response(200, {"accessToken": tenant.token(principal, scope, lifetime=lifetime),
                          "tokenType": "Bearer", "expiresIn": lifetime})


def _assign_role(emu: Emulator, body: dict[str, Any]) -> Response:
    """`{"principal", "role", "scope"}`: a role assignment made by the tenant's administrator."""
    principal = emu.tenant.get(str(body["principal"]))
    assignment = emu.authorization.assign(str(body["scope"]), principal.object_id, str(body["role"]))
    return Response(201, assignment)


def _define_role(emu: Emulator, body: dict[str, Any]) -> Response:
    """`{"roleName", "actions", "notActions"?, "assignableScopes"}`: a custom role."""
    role = emu.authorization.define(
        str(body["roleName"]), list(body["actions"]), list(body["assignableScopes"]),
        not_actions=list(body.get("notActions") or []),
    )
    return Response(201, role)


def _add_denial(emu: Emulator, body: dict[str, Any]) -> Response:
    """`{"scope", "actions", "principals", "notActions"?, "excludePrincipals"?,
    "doNotApplyToChildScopes"?, "name"?}`: a deny assignment (only Azure itself makes these)."""
    denial = emu.authorization.deny(
        str(body["scope"]), list(body["actions"]), list(body["principals"]),
        not_actions=list(body.get("notActions") or []), exclude=list(body.get("excludePrincipals") or []),
        child_scopes=not body.get("doNotApplyToChildScopes", False), name=str(body.get("name") or "deny"))
    return Response(201, denial)


IDENTITY_ROUTES = {
    "principals": _add_principal,
    "tokens": _issue_token,
    "roleAssignments": _assign_role,
    "roleDefinitions": _define_role,
    "denyAssignments": _add_denial,
}


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
        emulator.tenant.authority = self.url  # the emulator signs tokens in as well
        self._thread = threading.Thread(target=self._server.serve_forever, name="emulator-https", daemon=True)

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
