"""What a client can send the host that no function handles, over a real socket: bodies past the
limit (declared or streamed), bad framing, paths and methods no route takes, malformed requests,
CORS, and a hundred clients at once. Each is answered in the API's error shape, never with a 500,
an HTML page or a reset."""

from __future__ import annotations

import http.client
import json
import select
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

import azure.functions as func
import pytest

from local.host import FunctionsHost
from local.host.bodies import MAX_REQUEST_BODY_BYTES
from tests.local.conftest import call

Serve = Callable[..., FunctionsHost]
PORTAL = "https://portal.example.com"


def edge_app() -> func.FunctionApp:
    app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)

    @app.route(route="items/{item}", methods=["POST", "PUT"])
    def put_item(req: func.HttpRequest) -> func.HttpResponse:
        body = req.get_body()
        return func.HttpResponse(json.dumps({"bytes": len(body), "head": body[:16].decode()}),
                                 mimetype="application/json")

    @app.route(route="items/{item}", methods=["GET"])
    def get_item(req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse(json.dumps({"item": req.route_params["item"]}), mimetype="application/json")

    @app.route(route="ping", methods=["GET"])
    def ping(req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse("pong", headers={"Vary": "Accept-Encoding"})

    return app


def port_of(host: FunctionsHost) -> int:
    return int(host.url.rsplit(":", 1)[1])


def raw(host: FunctionsHost, head: str, body: bytes = b"") -> tuple[int, http.client.HTTPMessage, Any]:
    """Send bytes as they are (no client library fixes them up) and read the answer: the status,
    its headers and its JSON body."""
    with socket.create_connection(("127.0.0.1", port_of(host)), timeout=10) as sock:
        sock.sendall(head.replace("\n", "\r\n").encode() + body)
        answer = http.client.HTTPResponse(sock)
        answer.begin()
        content = answer.read()
    return answer.status, answer.headers, json.loads(content) if content else None


def assert_error_shape(body: Any, code: str) -> None:
    assert set(body) == {"error"}, body
    error = body["error"]
    assert error["code"] == code, error
    assert error["message"] and error["causes"] and error["try"], error
    assert "Traceback" not in json.dumps(body)


def chunked(*chunks: bytes) -> bytes:
    return b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in chunks) + b"0\r\n\r\n"


def test_a_huge_declared_body_is_refused_413_before_it_is_read(serve: Serve) -> None:
    host = serve(edge_app())
    # A petabyte claimed: allocating it up front was a MemoryError, answered 500.
    status, headers, body = raw(host, "POST /api/items/a HTTP/1.1\nHost: x\nContent-Length: 1000000000000000\n\n",
                                b"x" * 65536)
    assert status == 413 and headers["Content-Type"].startswith("application/json")
    assert_error_shape(body, "RequestBodyTooLarge")
    assert str(MAX_REQUEST_BODY_BYTES) in body["error"]["causes"][0]
    just_over = raw(host, f"PUT /api/items/a HTTP/1.1\nHost: x\nContent-Length: {MAX_REQUEST_BODY_BYTES + 1}\n\n")
    assert just_over[0] == 413
    assert call(f"{host.url}/api/ping").body == b"pong"  # the host goes on serving


def test_the_body_limit_setting_applies_to_declared_and_chunked_bodies(serve: Serve) -> None:
    host = serve(edge_app(), environ={"FUNCTIONS_REQUEST_BODY_SIZE_LIMIT": "1000"})
    at_limit = call(f"{host.url}/api/items/a", "POST", b"a" * 1000)
    assert (at_limit.status, at_limit.json()["bytes"]) == (200, 1000)
    assert call(f"{host.url}/api/items/a", "POST", b"a" * 1001).status == 413
    # A streamed body has no length to check first: it is refused once its chunks pass the limit.
    status, _, body = raw(host, "POST /api/items/a HTTP/1.1\nHost: x\nTransfer-Encoding: chunked\n\n",
                          chunked(b"b" * 600, b"c" * 600))
    assert status == 413
    assert_error_shape(body, "RequestBodyTooLarge")
    # Chunked bodies within the limit reach the function whole (they used to arrive empty).
    status, _, body = raw(host, "PUT /api/items/a HTTP/1.1\nHost: x\nTransfer-Encoding: chunked\n\n",
                          chunked(b'{"size":', b" 2}"))
    assert (status, body) == (200, {"bytes": 11, "head": '{"size": 2}'})


@pytest.mark.parametrize(("head", "body", "status", "code"), [
    ("POST /api/items/a HTTP/1.1\nHost: x\nContent-Length: ten\n\n", b"", 400, "BadRequest"),
    ("POST /api/items/a HTTP/1.1\nHost: x\nContent-Length: -5\n\n", b"", 400, "BadRequest"),
    ("POST /api/items/a HTTP/1.1\nHost: x\nContent-Length: 3\nContent-Length: 4\n\n", b"abcd", 400, "BadRequest"),
    ("POST /api/items/a HTTP/1.1\nHost: x\nContent-Length: 4\nTransfer-Encoding: chunked\n\n", b"abcd", 400,
     "BadRequest"),
    ("POST /api/items/a HTTP/1.1\nHost: x\nTransfer-Encoding: gzip\n\n", b"", 501, "NotImplemented"),
    ("POST /api/items/a HTTP/1.1\nHost: x\nTransfer-Encoding: chunked\n\n", b"zz\r\nab\r\n0\r\n\r\n", 400,
     "BadRequest"),
], ids=["words", "negative", "two-lengths", "length-and-chunked", "gzip", "bad-chunk-size"])
def test_bad_framing_is_refused_in_the_error_shape(serve: Serve, head: str, body: bytes, status: int,
                                                   code: str) -> None:
    host = serve(edge_app())
    got_status, _, got = raw(host, head, body)
    assert got_status == status, got
    assert_error_shape(got, code)


def test_a_body_shorter_than_its_length_is_a_400(serve: Serve) -> None:
    host = serve(edge_app())
    with socket.create_connection(("127.0.0.1", port_of(host)), timeout=10) as sock:
        sock.sendall(b"POST /api/items/a HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nshort")
        sock.shutdown(socket.SHUT_WR)  # the host sees the end of the body before its length
        answer = http.client.HTTPResponse(sock)
        answer.begin()
        assert answer.status == 400
        assert_error_shape(json.loads(answer.read()), "BadRequest")


def test_paths_and_methods_no_route_takes_get_json_404_405_and_501(serve: Serve) -> None:
    host = serve(edge_app())
    missing = call(f"{host.url}/api/nothing-here")
    assert missing.status == 404 and missing.headers["Content-Type"].startswith("application/json")
    assert_error_shape(missing.json(), "NotFound")
    assert_error_shape(call(f"{host.url}/elsewhere").json(), "NotFound")

    wrong = call(f"{host.url}/api/items/a", "DELETE")
    assert wrong.status == 405 and wrong.headers["Allow"] == "GET, POST, PUT"  # both functions' methods
    assert_error_shape(wrong.json(), "MethodNotAllowed")
    assert call(f"{host.url}/api/ping", "POST", b"{}").headers["Allow"] == "GET"
    assert call(f"{host.url}/admin/host/status", "POST", b"").headers["Allow"] == "GET"
    assert call(f"{host.url}/admin/functions/ping").headers["Allow"] == "POST"
    assert call(f"{host.url}/api/items/a", "GET").json() == {"item": "a"}  # routes still serve

    # Methods BaseHTTPRequestHandler has no do_* for answered its HTML 501 page.
    trace = call(f"{host.url}/api/ping", "TRACE")
    assert trace.status == 405 and trace.headers["Allow"] == "GET"
    assert_error_shape(trace.json(), "MethodNotAllowed")
    for method in ("CONNECT", "BREW", "get", "QUERY"):  # not taken by the path: which ones are
        made_up = call(f"{host.url}/api/ping", method)
        assert made_up.status == 405 and made_up.headers["Allow"] == "GET", method
        assert_error_shape(made_up.json(), "MethodNotAllowed")
        unknown = call(f"{host.url}/api/nothing-here", method)  # no path to speak of: not implemented
        assert unknown.status == 501, method
        assert unknown.headers["Content-Type"].startswith("application/json")
        assert_error_shape(unknown.json(), "NotImplemented")


@pytest.mark.parametrize(("head", "status", "code"), [
    ("GET /api/ping HTTP/1.1 extra\nHost: x\n\n", 400, "BadRequest"),
    ("GET /api/ping HTTP/9.9\nHost: x\n\n", 505, "HttpVersionNotSupported"),
    ("GET /" + "a" * 70000 + " HTTP/1.1\nHost: x\n\n", 414, "UriTooLong"),
    ("GET /api/ping HTTP/1.1\n" + "".join(f"X-H{i}: v\n" for i in range(120)) + "\n", 431,
     "RequestHeaderFieldsTooLarge"),
], ids=["request-line", "version", "long-uri", "many-headers"])
def test_malformed_requests_get_the_error_shape_not_an_html_page(serve: Serve, head: str, status: int,
                                                                 code: str) -> None:
    host = serve(edge_app())
    got_status, headers, body = raw(host, head)
    assert got_status == status and headers["Content-Type"].startswith("application/json")
    assert_error_shape(body, code)


def preflight(host: FunctionsHost, origin: str, path: str = "/api/items/a") -> Any:
    return call(f"{host.url}{path}", "OPTIONS", headers={
        "Origin": origin, "Access-Control-Request-Method": "PUT",
        "Access-Control-Request-Headers": "authorization, content-type, idempotency-key"})


def test_cors_preflights_and_responses_for_allowed_origins_only(serve: Serve) -> None:
    host = serve(edge_app(), environ={"CORS_ALLOWED_ORIGINS": f"{PORTAL}, http://localhost:3000/"})
    allowed = preflight(host, PORTAL)
    assert allowed.status == 204
    assert allowed.headers["Access-Control-Allow-Origin"] == PORTAL
    assert allowed.headers["Access-Control-Allow-Methods"] == "GET, POST, PUT"
    assert {h.strip() for h in allowed.headers["Access-Control-Allow-Headers"].split(",")} >= {
        "Authorization", "Content-Type", "Idempotency-Key"}
    assert int(allowed.headers["Access-Control-Max-Age"]) > 0
    assert preflight(host, "http://LOCALHOST:3000").headers["Access-Control-Allow-Origin"] == "http://LOCALHOST:3000"

    refused = preflight(host, "https://evil.example.com")
    assert refused.status == 204 and not [h for h in refused.headers if h.lower().startswith("access-control-")]

    answered = call(f"{host.url}/api/items/a", headers={"Origin": PORTAL})
    assert answered.status == 200
    assert answered.headers["Access-Control-Allow-Origin"] == PORTAL and answered.headers["Vary"] == "Origin"
    pinged = call(f"{host.url}/api/ping", headers={"Origin": PORTAL})  # the function's own Vary is kept
    assert pinged.headers["Vary"] == "Accept-Encoding, Origin"
    errors_too = call(f"{host.url}/api/nothing", headers={"Origin": PORTAL})  # a browser may read the 404
    assert errors_too.status == 404 and errors_too.headers["Access-Control-Allow-Origin"] == PORTAL
    other = call(f"{host.url}/api/items/a", headers={"Origin": "https://evil.example.com"})
    assert "Access-Control-Allow-Origin" not in other.headers


def test_cors_any_origin_and_cors_off(serve: Serve) -> None:
    anyone = serve(edge_app(), environ={"CORS_ALLOWED_ORIGINS": "*"})
    assert preflight(anyone, "https://any.example").headers["Access-Control-Allow-Origin"] == "*"
    assert call(f"{anyone.url}/api/ping", headers={"Origin": "https://any.example"}).headers[
        "Access-Control-Allow-Origin"] == "*"
    off = serve(edge_app(), environ={})
    unanswered = preflight(off, PORTAL)  # no platform CORS: OPTIONS is a method like any other
    assert unanswered.status == 405 and "Access-Control-Allow-Origin" not in unanswered.headers
    assert "Access-Control-Allow-Origin" not in call(f"{off.url}/api/ping", headers={"Origin": PORTAL}).headers


CLIENTS = 100


def test_a_hundred_clients_at_once_are_all_answered(serve: Serve) -> None:
    """All connect in one burst (the kernel completes a handshake only while the listen backlog
    has room; past it a connection waits for a SYN retransmission, a second later at least), then
    all send at once; every one is answered."""
    host = serve(edge_app())
    sockets = [socket.socket() for _ in range(CLIENTS)]
    try:
        for sock in sockets:
            sock.setblocking(False)
            sock.connect_ex(("127.0.0.1", port_of(host)))
        deadline = time.monotonic() + 0.9
        pending = list(sockets)
        while pending and time.monotonic() < deadline:
            _, writable, _ = select.select([], pending, [], max(0.0, deadline - time.monotonic()))
            pending = [s for s in pending if s not in writable]
        assert not pending, f"{len(pending)} of {CLIENTS} connections waited for the backlog"
        assert all(s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0 for s in sockets)

        answers: list[int | str] = []
        start = threading.Barrier(CLIENTS)

        def client(sock: socket.socket) -> None:
            sock.setblocking(True)
            sock.settimeout(30)
            start.wait()
            try:
                sock.sendall(b"GET /api/ping HTTP/1.1\r\nHost: x\r\n\r\n")
                answer = http.client.HTTPResponse(sock)
                answer.begin()
                answers.append(answer.status if answer.read() == b"pong" else "wrong body")
            except OSError as err:  # a reset, a timeout
                answers.append(repr(err))

        threads = [threading.Thread(target=client, args=(s,)) for s in sockets]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert answers == [200] * CLIENTS
    finally:
        for sock in sockets:
            sock.close()
