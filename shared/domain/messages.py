"""The `operations` queue and its message contract: `{"operationId": "<uuid>"}`, plus the W3C
trace context of whoever sent it (`traceparent`, and `tracestate` when there is one).

Messages name an operation and carry nothing else of the work, so a redelivered or duplicated
message can only ever ask for work that the operation record already describes; the trace context
only says which trace the delivery belongs to. Messages from before trace context was sent, or with
a malformed one, are read as carrying none. After `maxDequeueCount` failed deliveries (host.json)
the host moves a message to the poison queue.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field

OPERATIONS_QUEUE = "operations"
POISON_QUEUE = OPERATIONS_QUEUE + "-poison"

# W3C Trace Context (https://www.w3.org/TR/trace-context/): version 00 is what is sent; a later
# version keeps these four fields first. All-zero trace and span ids are invalid.
_TRACEPARENT = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")
MAX_TRACESTATE_CHARS = 512


@dataclass(frozen=True)
class Message:
    operation_id: str
    trace: Mapping[str, str] = field(default_factory=dict)  # W3C headers; {} when none


def canonical_operation_id(value: object) -> str | None:
    """The canonical form of an operation id, or None when the value cannot be one."""
    if not isinstance(value, str) or len(value) > 64:
        return None
    try:
        return str(uuid.UUID(value))
    except ValueError:
        return None


def encode(operation_id: str, trace: Mapping[str, str] | None = None) -> str:
    return json.dumps({"operationId": operation_id, **trace_context(trace or {})}, separators=(",", ":"))


def read(body: bytes | str) -> Message | None:
    """The message, or None when it is not one of ours."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(data, dict):
        return None
    operation_id = canonical_operation_id(data.get("operationId"))
    return None if operation_id is None else Message(operation_id, trace_context(data))


def decode(body: bytes | str) -> str | None:
    """The operation id a message names, or None when the message is not one of ours."""
    message = read(body)
    return None if message is None else message.operation_id


def trace_context(values: Mapping[str, object]) -> dict[str, str]:
    """The well-formed W3C trace context among `values` (`traceparent`, and `tracestate` only
    with one), or {}."""
    parent = values.get("traceparent")
    if trace_id({"traceparent": parent}) is None:
        return {}
    state = values.get("tracestate")
    kept = isinstance(state, str) and 0 < len(state) <= MAX_TRACESTATE_CHARS and state.isprintable()
    return {"traceparent": str(parent), **({"tracestate": str(state)} if kept else {})}


def trace_id(context: Mapping[str, object]) -> str | None:
    """The trace id of a W3C trace context, or None when it names no valid trace."""
    parent = context.get("traceparent")
    match = _TRACEPARENT.fullmatch(parent) if isinstance(parent, str) else None
    if match is None or match[1] == "ff" or set(match[2]) == {"0"} or set(match[3]) == {"0"}:
        return None
    return match[2]


def continued_trace(message: Mapping[str, str], operation: Mapping[str, str]) -> Mapping[str, str]:
    """The trace context a delivery continues: the operation's trace, kept on its record when it
    was requested, so that every delivery of one operation is in one trace. Within it the
    message's context is the closer parent (the request, or the delivery that sent it again);
    a message from elsewhere (a stall sweep's requeue) or none continues from the record. Records
    from before traces were kept continue the message's."""
    if trace_id(operation) is None or trace_id(message) == trace_id(operation):
        return message
    return operation
