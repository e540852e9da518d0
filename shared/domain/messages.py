"""The `operations` queue message contract: `{"operationId": "<uuid>"}`.

Messages name an operation and carry nothing else, so a redelivered or duplicated message can
only ever ask for work that the operation record already describes.
"""

from __future__ import annotations

import json

from .validation import operation_id as canonical_operation_id


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
