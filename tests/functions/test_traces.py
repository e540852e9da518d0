"""Traces: one OpenTelemetry trace per operation, from the HTTP request that submits it, through
its queue message (W3C trace context in the body) and its operation record, to each delivery of it
in the worker and each Resource Manager call that delivery makes. Spans are kept in memory
(opentelemetry-sdk's InMemorySpanExporter) from the app's real tracing adapter."""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from azure.core.settings import settings as azure_settings
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from local.host import FunctionIndex, QueuePump
from shared.adapters.tracing import OpenTelemetryTracing
from shared.bootstrap import Container
from shared.domain.errors import ErrorCode, TransientError
from shared.domain.messages import OPERATIONS_QUEUE, POISON_QUEUE
from shared.domain.operations import Operation, OperationKind
from tests.conftest import DEFAULT_GROUP, SUBSCRIPTION, Client
from tests.fakes import FakeClock
from tests.functions.conftest import Stack, unique

CREATE = OperationKind.CREATE_STORAGE
EXPORTER = InMemorySpanExporter()
PROVIDER = TracerProvider()
PROVIDER.add_span_processor(SimpleSpanProcessor(EXPORTER))


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    """The spans ended during the test. A process has one global tracer provider (azure-core's
    spans go to it), so it is set once, to one with the in-memory exporter."""
    trace.set_tracer_provider(PROVIDER)  # a no-op (with a warning) after the first time
    assert trace.get_tracer_provider() is PROVIDER, "another tracer provider was installed first"
    EXPORTER.clear()
    yield EXPORTER
    azure_settings.tracing_enabled.unset_value()  # the Azure SDK traces only in these tests


@pytest.fixture
def make_app(make_app: Callable[..., Container], spans: InMemorySpanExporter) -> Callable[..., Container]:
    """Every app in this module is traced (so is the `stack` fixture's)."""
    return functools.partial(make_app, tracing=OpenTelemetryTracing())


def lineage(span: ReadableSpan, by_id: dict[int, ReadableSpan]) -> list[int]:
    """The span ids of a span's ancestors, nearest first."""
    chain = []
    while span.parent is not None and span.parent.span_id in by_id:
        span = by_id[span.parent.span_id]
        chain.append(span.context.span_id)
    return chain


def deliveries_of(spans: InMemorySpanExporter, operation_id: str) -> list[ReadableSpan]:
    return [s for s in spans.get_finished_spans()
            if s.kind is SpanKind.CONSUMER and (s.attributes or {}).get("azlin.operation.id") == operation_id]


def test_a_create_is_one_trace_from_the_request_through_the_worker_to_resource_manager(
        stack: Stack, spans: InMemorySpanExporter) -> None:
    name = unique()
    operation = stack.create(name)
    assert operation["status"] == "Succeeded", operation

    ended = spans.get_finished_spans()
    by_id = {s.context.span_id: s for s in ended}
    [request] = [s for s in ended if s.name == "POST create_storage"]
    deliveries = deliveries_of(spans, operation["id"])
    arm = [s for s in ended if str((s.attributes or {}).get("url.full", "")).startswith(stack.azure.url)]
    assert deliveries and arm

    # One trace: the request, every delivery of the operation, every Resource Manager call.
    assert {s.context.trace_id for s in [request, *deliveries, *arm]} == {request.context.trace_id}
    assert (request.kind, request.parent) == (SpanKind.SERVER, None)
    assert request.attributes is not None and request.attributes["http.response.status_code"] == 202
    for delivery in deliveries:
        assert request.context.span_id in lineage(delivery, by_id)
    assert deliveries[-1].attributes is not None
    assert (deliveries[-1].name, deliveries[-1].attributes["azlin.operation.kind"],
            deliveries[-1].attributes["azlin.operation.status"]) == ("process operations", "CreateStorage",
                                                                      "Succeeded")

    # Each Resource Manager call is under the span of ours that made it: the worker's delivery
    # (all the writes), or the request (asking what the caller may do). The SDK's own spans
    # (the client method, then its HTTP call) sit in between.
    delivery_ids = {s.context.span_id for s in deliveries}
    made_by = {}
    for call in arm:
        ours = [i for i in lineage(call, by_id) if by_id[i].instrumentation_scope.name == "azlin-storage"]
        assert ours and ours[-1] == request.context.span_id
        made_by[call.context.span_id] = ours[0]
        assert ours[0] in delivery_ids | {request.context.span_id}
    writes = [s for s in arm if (s.attributes or {}).get("http.request.method") in ("PUT", "PATCH", "DELETE")]
    assert any(f"/storageAccounts/{name}?" in str((s.attributes or {})["url.full"]) for s in writes)
    assert all(made_by[s.context.span_id] in delivery_ids for s in writes)


@pytest.fixture
def worker(make_app: Callable[..., Container], functions: FunctionIndex) -> tuple[Container, Client, QueuePump]:
    """A traced app whose creates do nothing but succeed."""
    app = make_app({CREATE: lambda command, context: {"done": True}})
    conn = app.settings.storage.connection_string
    assert conn
    # contract=False: the stand-in handler's result is no kind's (as in test_worker.py)
    return app, Client(functions, contract=False), QueuePump(functions, conn, OPERATIONS_QUEUE)


def test_the_message_carries_the_trace_and_a_stall_sweep_requeue_continues_it(
        worker: tuple[Container, Client, QueuePump], functions: FunctionIndex, clock: FakeClock,
        spans: InMemorySpanExporter) -> None:
    app, client, pump = worker
    answer = client.post("/api/storage", {"name": "teamhome", "resourceGroup": DEFAULT_GROUP})
    assert answer.status == 202, answer
    [request] = [s for s in spans.get_finished_spans() if s.name == "POST create_storage"]
    [sent] = app.queue.client.receive_messages()
    body = json.loads(sent.content)
    assert body["operationId"] == answer.json()["id"]
    assert body["traceparent"].startswith(f"00-{request.context.trace_id:032x}-{request.context.span_id:016x}-")

    app.queue.client.delete_message(sent)  # lost: the stall sweep sends it again
    clock.advance(16 * 60)
    functions.fire_timer("requeue_stalled_operations")
    [again] = app.queue.client.peek_messages()
    assert "traceparent" not in json.loads(again.content)  # the timer runs in no trace
    assert pump.drain() == 1

    [delivery] = deliveries_of(spans, body["operationId"])
    assert delivery.context.trace_id == request.context.trace_id  # from the operation's record
    assert delivery.parent is not None and delivery.parent.span_id == request.context.span_id
    assert delivery.attributes is not None and delivery.attributes["azlin.operation.status"] == "Succeeded"


def test_a_retry_is_a_new_delivery_span_in_the_same_trace(
        make_app: Callable[..., Container], functions: FunctionIndex, spans: InMemorySpanExporter) -> None:
    outcomes: list[Any] = [RuntimeError("a bug, once"), {"done": True}]

    def flaky(command: Any, context: Any) -> Any:
        outcome = outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    app = make_app({CREATE: flaky})
    conn = app.settings.storage.connection_string
    assert conn
    pump = QueuePump(functions, conn, OPERATIONS_QUEUE)
    answer = Client(functions).post("/api/storage", {"name": "teamhome", "resourceGroup": DEFAULT_GROUP})
    assert pump.drain() == 2

    [request] = [s for s in spans.get_finished_spans() if s.name == "POST create_storage"]
    first, second = deliveries_of(spans, answer.json()["id"])
    assert {first.context.trace_id, second.context.trace_id} == {request.context.trace_id}
    assert first.status.status_code is StatusCode.ERROR  # the exception the host retried for
    assert first.attributes is not None and first.attributes["azlin.error.code"] == "InternalError"
    assert second.attributes is not None and second.attributes["azlin.operation.status"] == "Succeeded"
    assert second.attributes["azlin.operation.attempts"] == 2


def test_when_the_queue_gives_up_the_poison_delivery_ends_the_same_trace(
        make_app: Callable[..., Container], functions: FunctionIndex, spans: InMemorySpanExporter) -> None:
    def failing(command: Any, context: Any) -> Any:
        raise TransientError("Resource Manager answered 503.", code=ErrorCode.SERVICE_UNAVAILABLE)

    app = make_app({CREATE: failing})
    conn = app.settings.storage.connection_string
    assert conn
    answer = Client(functions).post("/api/storage", {"name": "teamhome", "resourceGroup": DEFAULT_GROUP})
    assert QueuePump(functions, conn, OPERATIONS_QUEUE).drain() == 5
    assert QueuePump(functions, conn, POISON_QUEUE).drain() == 1

    [request] = [s for s in spans.get_finished_spans() if s.name == "POST create_storage"]
    deliveries = deliveries_of(spans, answer.json()["id"])
    assert [s.name for s in deliveries] == ["process operations"] * 5 + ["process operations-poison"]
    assert {s.context.trace_id for s in deliveries} == {request.context.trace_id}
    last = deliveries[-1]
    assert last.attributes is not None and last.status.status_code is StatusCode.ERROR
    assert (last.attributes["azlin.operation.status"], last.attributes["azlin.error.code"]) == (
        "Failed", "RetriesExhausted")


def test_lease_renewals_while_a_handler_runs_are_in_its_delivery(
        make_app: Callable[..., Container], functions: FunctionIndex, spans: InMemorySpanExporter) -> None:
    def slow(command: Any, context: Any) -> Any:
        time.sleep(0.6)  # the heartbeat renews the lock meanwhile, from its own thread
        return {"done": True}

    app = make_app({CREATE: slow}, heartbeat_seconds=0.1)
    conn = app.settings.storage.connection_string
    assert conn
    answer = Client(functions).post("/api/storage", {"name": "teamhome", "resourceGroup": DEFAULT_GROUP})
    assert QueuePump(functions, conn, OPERATIONS_QUEUE).drain() == 1

    [delivery] = deliveries_of(spans, answer.json()["id"])
    ended = spans.get_finished_spans()
    by_id = {s.context.span_id: s for s in ended}
    locks = [s for s in ended if f"{app.settings.table_prefix}Locks(" in str((s.attributes or {}).get("url.full"))]
    assert len(locks) >= 4  # taken, renewed (a few times), released
    for call in locks:
        assert delivery.context.span_id in lineage(call, by_id)


@pytest.mark.parametrize("extra", [
    {},  # a message from before trace context was sent
    {"traceparent": "not a traceparent", "tracestate": "x=1"},
    {"traceparent": "00-00000000000000000000000000000000-0000000000000000-01"},
], ids=["none", "malformed", "all-zero"])
def test_a_message_without_trace_context_still_runs_its_operation(
        worker: tuple[Container, Client, QueuePump], functions: FunctionIndex, clock: FakeClock,
        spans: InMemorySpanExporter, extra: dict[str, str]) -> None:
    app, client, _ = worker
    old = app.operations.add(Operation.new(CREATE, "storage/teamhome",
                                           {"name": "teamhome", "resourceGroup": DEFAULT_GROUP}, clock.now()))
    assert old.trace == {}  # recorded outside any span: as records from before traces were kept
    functions.deliver(OPERATIONS_QUEUE, json.dumps({"operationId": old.id, **extra}))

    assert client.get(f"/api/operations/{old.id}").json()["status"] == "Succeeded"
    [delivery] = deliveries_of(spans, old.id)
    assert delivery.parent is None  # the root of a trace of its own


class Ingestion:
    """Application Insights' ingestion endpoint, as far as its exporter uses it: each POST to
    /v2.1/track is a JSON array of envelopes, answered with how many were accepted."""

    def __init__(self) -> None:
        self.envelopes: list[dict[str, Any]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                batch = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
                outer.envelopes += batch
                answer = json.dumps({"itemsReceived": len(batch), "itemsAccepted": len(batch),
                                     "errors": []}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"
        threading.Thread(target=self.server.serve_forever, name="ingestion", daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


# A fresh process (OpenTelemetry has one global tracer provider per process): the app indexed,
# one request, then the exporter's batch flushed.
EXPORTING = """
import sys
import function_app
from local.host import FunctionIndex

index = FunctionIndex(function_app.app)
assert not [m for m in sys.modules if m.startswith(("opentelemetry", "azure.monitor"))]
answer = index.http("GET", "https://azlin.test/api/health", headers={"traceparent": sys.argv[1]})
assert answer.status_code == 200
assert "azure.monitor.opentelemetry" in sys.modules  # configured by the first request
from opentelemetry import trace
assert trace.get_tracer_provider().force_flush(10_000)
"""


def run_app(connection_string: str, script: str, tmp_path: Path, *args: str) -> None:
    env = {**os.environ, "AzureWebJobsStorage": "UseDevelopmentStorage=true", "AZURE_SUBSCRIPTION_ID": SUBSCRIPTION,
           "APPLICATIONINSIGHTS_CONNECTION_STRING": connection_string,
           "OTEL_LOGS_EXPORTER": "none", "OTEL_METRICS_EXPORTER": "none",  # as infra/ deploys it
           # nothing to Microsoft's own endpoints from a test
           "APPLICATIONINSIGHTS_STATSBEAT_DISABLED_ALL": "true", "APPLICATIONINSIGHTS_CONTROLPLANE_DISABLED": "true",
           "TMPDIR": str(tmp_path)}  # the exporter's retry files
    subprocess.run([sys.executable, "-c", script, *args], cwd=Path(__file__).resolve().parents[2], env=env,
                   check=True, timeout=120)


def test_with_a_connection_string_the_spans_go_to_application_insights(tmp_path: Path) -> None:
    ingestion = Ingestion()
    caller = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    try:
        run_app(f"InstrumentationKey=00000000-0000-0000-0000-00000000000a;IngestionEndpoint={ingestion.url}",
                EXPORTING, tmp_path, caller)
    finally:
        ingestion.stop()
    [request] = [e for e in ingestion.envelopes if e["data"]["baseType"] == "RequestData"]
    assert request["data"]["baseData"]["name"] == "GET health"
    assert request["data"]["baseData"]["responseCode"] == "200"
    assert (request["tags"]["ai.operation.id"], request["tags"]["ai.operation.parentId"]) == (
        "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331")  # the caller's trace, continued
    # No logs (the host sends them); metrics are only the exporter's own counts of itself.
    assert "MessageData" not in {e["data"]["baseType"] for e in ingestion.envelopes}


def test_a_connection_string_that_cannot_be_used_turns_traces_off_not_the_service(tmp_path: Path) -> None:
    run_app("not a connection string", """
import function_app
from local.host import FunctionIndex
from shared.bootstrap import container
from shared.tracing import NO_TRACING

assert FunctionIndex(function_app.app).http("GET", "https://azlin.test/api/health").status_code == 200
assert container().tracing is NO_TRACING
""", tmp_path)
