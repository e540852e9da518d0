"""The host's HTTP side over a real socket: HTTP functions (the real app and a small one), the
admin endpoint that runs non-HTTP functions on demand, and the host status."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from typing import Any

import azure.functions as func

import function_app
from local.host import FunctionsHost
from shared.bootstrap import Container
from tests.conftest import Client
from tests.local.conftest import call, eventually

Serve = Callable[..., FunctionsHost]


def test_the_function_app_answers_over_http(app: Container, environment: dict[str, str], serve: Serve) -> None:
    host = serve(function_app.app, environ=environment)

    health = call(f"{host.url}/api/health?code=ignored", headers={"x-functions-key": "ignored"})
    assert health.status == 200, health

    anonymous = call(f"{host.url}/api/storage", "POST", {"name": "teamhome"},
                     headers={"Content-Type": "application/json", "x-functions-key": "a-key"})
    assert anonymous.status == 401 and anonymous.headers["WWW-Authenticate"] == 'Bearer realm="azlin-storage"'
    assert anonymous.json()["error"]["code"] == "Unauthenticated"  # a function key grants nothing
    assert Client.alice is not None
    refused = call(f"{host.url}/api/storage", "POST", {"name": "Not A Name!"},
                   headers={"Content-Type": "application/json", "Authorization": f"Bearer {Client.alice()}"})
    assert refused.status == 400
    assert refused.headers["Content-Type"].startswith("application/json")
    error = refused.json()["error"]
    assert error["code"] == "ValidationError" and error["causes"]

    assert call(f"{host.url}/api/nothing-here").status == 404
    assert call(f"{host.url}/api/health", "DELETE").status == 405  # the route takes GET only
    assert call(f"{host.url}/elsewhere").status == 404


def echo_app() -> func.FunctionApp:
    app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)

    @app.route(route="items/{item}", methods=["POST", "PUT"])
    def echo(req: func.HttpRequest) -> func.HttpResponse:
        body = {"method": req.method, "item": req.route_params["item"], "query": dict(req.params),
                "tag": req.headers.get("x-tag"), "json": req.get_json(), "url": req.url}
        return func.HttpResponse(json.dumps(body), status_code=201, mimetype="application/json",
                                 headers={"X-Echo": "yes"})

    @app.route(route="slow")
    async def slow(req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse("awaited", mimetype="text/plain")

    @app.route(route="broken")
    def broken(req: func.HttpRequest) -> func.HttpResponse:
        raise RuntimeError("bug")

    return app


def test_requests_reach_the_function_and_its_response_comes_back(serve: Serve) -> None:
    host = serve(echo_app())
    answer = call(f"{host.url}/API/Items/a%2Fb?x=1&code=secret", "PUT", {"size": 2}, headers={"X-Tag": "t1"})
    assert answer.status == 201
    assert answer.headers["X-Echo"] == "yes"
    assert answer.headers["Content-Type"] == "application/json; charset=utf-8"
    echoed = answer.json()
    assert echoed == {"method": "PUT", "item": "a/b", "query": {"x": "1", "code": "secret"}, "tag": "t1",
                      "json": {"size": 2}, "url": f"{host.url}/API/Items/a%2Fb?x=1&code=secret"}


def test_async_functions_run_and_failures_are_500s_that_do_not_stop_the_host(serve: Serve) -> None:
    host = serve(echo_app())
    assert call(f"{host.url}/api/broken").status == 500
    slow = call(f"{host.url}/api/slow")
    assert (slow.status, slow.body) == (200, b"awaited")


def test_host_status_says_running(serve: Serve) -> None:
    host = serve(func.FunctionApp())
    status = call(f"{host.url}/admin/host/status")
    assert status.status == 200 and status.json()["state"] == "Running"


def on_demand_app(runs: list[Any]) -> func.FunctionApp:
    app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)

    @app.schedule(schedule="0 0 0 1 1 *", arg_name="timer")  # next New Year: runs only on demand
    def yearly(timer: func.TimerRequest) -> None:
        runs.append(("yearly", timer.past_due))

    @app.queue_trigger(arg_name="msg", queue_name="on-demand", connection="Unset")
    def consume(msg: func.QueueMessage) -> None:
        runs.append(("consume", msg.get_body()))

    @app.route(route="ping")
    def ping(req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse("pong")

    return app


def test_the_admin_endpoint_runs_timers_and_queue_triggers(serve: Serve) -> None:
    runs: list[Any] = []
    host = serve(on_demand_app(runs), environ={})  # no connection setting: the queue is not polled

    timer = call(f"{host.url}/admin/functions/yearly", "POST", {"input": ""})
    assert (timer.status, timer.body) == (202, b"")
    eventually(lambda: ("yearly", False) in runs)

    queued = call(f"{host.url}/admin/functions/Consume", "POST", {"input": "hello"})  # names ignore case
    assert queued.status == 202
    eventually(lambda: ("consume", b"hello") in runs)


def test_the_admin_endpoint_refuses_what_it_cannot_run(serve: Serve) -> None:
    host = serve(on_demand_app([]), environ={})
    assert call(f"{host.url}/admin/functions/nobody", "POST", {"input": ""}).status == 404
    assert call(f"{host.url}/admin/functions/ping", "POST", {"input": ""}).status == 400
    assert call(f"{host.url}/admin/functions/consume", "POST", {"input": 7}).status == 400
    assert call(f"{host.url}/admin/functions/consume", "POST", b"{not json").status == 400


def test_an_on_demand_failure_is_logged_and_the_host_goes_on(serve: Serve) -> None:
    ran = threading.Event()
    app = func.FunctionApp()

    @app.schedule(schedule="0 0 0 1 1 *", arg_name="timer")
    def failing(timer: func.TimerRequest) -> None:
        ran.set()
        raise RuntimeError("bug")

    host = serve(app)
    assert call(f"{host.url}/admin/functions/failing", "POST", {}).status == 202
    assert ran.wait(5)
    assert call(f"{host.url}/admin/host/status").status == 200
