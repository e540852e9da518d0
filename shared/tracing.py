"""Tracing conventions: what the app's spans say about an operation, and the no-op tracing used
when nothing is configured (it imports nothing, so an untraced app pays nothing for tracing).

`shared.adapters.tracing` is the OpenTelemetry side, loaded only when tracing is on: when
APPLICATIONINSIGHTS_CONNECTION_STRING is set, or a test installs its own."""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import AbstractContextManager, nullcontext

from shared.domain.operations import Operation, OperationStatus
from shared.ports import Span, SpanAttributes

OPERATION_ID = "azlin.operation.id"
OPERATION_KIND = "azlin.operation.kind"
OPERATION_STATUS = "azlin.operation.status"
OPERATION_ATTEMPTS = "azlin.operation.attempts"
ERROR_CODE = "azlin.error.code"


def record(span: Span, operation: Operation) -> None:
    """Note the operation's state on the span; one that ended Failed makes the span an error."""
    span.note({OPERATION_ID: operation.id, OPERATION_KIND: operation.kind.value,
               OPERATION_STATUS: operation.status.value, OPERATION_ATTEMPTS: operation.attempts})
    error = operation.error or operation.last_error
    if error:
        span.note({ERROR_CODE: str(error.get("code"))})
    if operation.status is OperationStatus.FAILED:
        span.fail(f"[{(operation.error or {}).get('code')}] {(operation.error or {}).get('message')}")


class _NoSpan:
    def note(self, attributes: SpanAttributes) -> None:
        pass

    def fail(self, description: str) -> None:
        pass


class NoTracing:
    """Tracing off: no spans, and messages carry no trace context."""

    def carrier(self) -> dict[str, str]:
        return {}

    def span(self, name: str, *, kind: str, parent: Mapping[str, str],
             attributes: SpanAttributes) -> AbstractContextManager[Span]:
        return nullcontext(NO_SPAN)

    def current(self) -> Span:
        return NO_SPAN


NO_SPAN = _NoSpan()
NO_TRACING = NoTracing()
