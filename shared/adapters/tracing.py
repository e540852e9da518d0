"""Tracing with OpenTelemetry (the `Tracing` port), and its export to Application Insights.

Loaded only when tracing is on (see `shared.tracing`): OpenTelemetry, and the Azure Monitor
distro above all, take a while to import, so neither is paid for at cold start or when untraced.

Spans go to the global tracer provider: the one `configure_azure_monitor` installs, or a test's.
The Azure SDK's own spans (every Resource Manager, Table and Queue call) come from azure-core's
native OpenTelemetry tracing, turned on here, as children of the span current when the call is
made; azure-core carries that context into its long-running-operation pollers' threads.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from azure.core.settings import settings as azure_settings
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from shared.ports import Span, SpanAttributes

log = logging.getLogger(__name__)

# W3C Trace Context whatever OTEL_PROPAGATORS says: it is the format of the queue messages.
_W3C = TraceContextTextMapPropagator()
_KINDS = {"server": SpanKind.SERVER, "consumer": SpanKind.CONSUMER, "internal": SpanKind.INTERNAL}
_exported = False
_exporting = threading.Lock()


class _OtelSpan:
    def __init__(self, span: trace.Span) -> None:
        self._span = span

    def note(self, attributes: SpanAttributes) -> None:
        self._span.set_attributes(dict(attributes))

    def fail(self, description: str) -> None:
        self._span.set_status(Status(StatusCode.ERROR, description))


class OpenTelemetryTracing:
    def __init__(self) -> None:
        self._tracer = trace.get_tracer("azlin-storage")
        trace_azure_sdk()

    def carrier(self) -> dict[str, str]:
        headers: dict[str, str] = {}
        _W3C.inject(headers)
        return headers

    @contextmanager
    def span(self, name: str, *, kind: str, parent: Mapping[str, str],
             attributes: SpanAttributes) -> Iterator[Span]:
        # Extracted into an empty context: a span continues the trace it is told, never
        # whatever happened to be current in the host's thread.
        context = _W3C.extract(dict(parent), context=otel_context.Context())
        with self._tracer.start_as_current_span(name, context=context, kind=_KINDS[kind],
                                                attributes=dict(attributes)) as span:
            yield _OtelSpan(span)

    def current(self) -> Span:
        return _OtelSpan(trace.get_current_span())


def trace_azure_sdk() -> None:
    """Azure SDK calls make spans (azure-core's native OpenTelemetry tracing), unless another
    implementation was chosen (AZURE_SDK_TRACING_IMPLEMENTATION)."""
    if azure_settings.tracing_implementation() is None:
        azure_settings.tracing_enabled = True


def export_to_application_insights(connection_string: str) -> None:
    """Install the Azure Monitor distro's tracer provider, once per process.

    The distro reads the standard OpenTelemetry settings: infra/ sets OTEL_LOGS_EXPORTER and
    OTEL_METRICS_EXPORTER to `none`, since the Functions host already sends the app's logs and
    metrics. With APPLICATIONINSIGHTS_AUTHENTICATION_STRING (`Authorization=AAD`, as infra/ sets
    it) the exporter signs in with the managed identity."""
    global _exported  # noqa: PLW0603 -- one global tracer provider per process
    with _exporting:
        if _exported:
            return
        from azure.monitor.opentelemetry import configure_azure_monitor  # noqa: PLC0415 -- ~1 s import

        configure_azure_monitor(
            connection_string=connection_string, enable_live_metrics=False, enable_performance_counters=False,
            # Whole traces: kept or dropped by trace id (OTEL_TRACES_SAMPLER=microsoft.fixed_percentage
            # with OTEL_TRACES_SAMPLER_ARG keeps a share). The distro's default, a rate limit per
            # process, would decide a request and its operation's deliveries apart.
            sampling_ratio=1.0,
            # azure-core's native tracing (trace_azure_sdk) rather than the distro's plugin: one
            # way for the SDK's spans, traced and tested alike.
            instrumentation_options={"azure_sdk": {"enabled": False}})
        _exported = True
        log.info("traces are exported to Application Insights")
