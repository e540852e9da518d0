"""The `operations` queue and its message contract: `{"operationId": "<uuid>"}`.

Messages name an operation and carry nothing else, so a redelivered or duplicated message can
only ever ask for work that the operation record already describes. After `maxDequeueCount`
failed deliveries (host.json) the host moves a message to the poison queue.
"""

from __future__ import annotations

import json
import uuid

OPERATIONS_QUEUE = "operations"
POISON_QUEUE = OPERATIONS_QUEUE + "-poison"


def canonical_operation_id(value: object) -> str | None:
    """The canonical form of an operation id, or None when the value cannot be one."""
    if not isinstance(value, str) or len(value) > 64:
        return None
    try:
        return str(uuid.UUID(value))
    except ValueError:
        return None


def encode(operation_id: str) -> str:
    return json.dumps({"operationId": operation_id}, separators=(",", ":"))


def decode(body: bytes | str) -> str | None:
    """The operation id a message names, or None when the message is not one of ours."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(data, dict):
        return None
    return canonical_operation_id(data.get("operationId"))
