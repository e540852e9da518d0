"""Logging conventions: one named logger per module, the operation id on every line of an
operation's work, `%`-style arguments, nothing secret."""

from __future__ import annotations

import logging
from collections.abc import MutableMapping
from typing import Any


class OperationLog(logging.LoggerAdapter):  # type: ignore[type-arg]
    """Prefixes every message with `op=<id>` and adds `operation_id` to the record for
    structured sinks (Application Insights custom dimensions)."""

    def process(self, msg: Any, kwargs: MutableMapping[str, Any]) -> tuple[Any, MutableMapping[str, Any]]:
        operation_id = (self.extra or {}).get("operation_id")
        kwargs.setdefault("extra", {})["operation_id"] = operation_id
        return f"op={operation_id} {msg}", kwargs


def for_operation(logger: logging.Logger, operation_id: str) -> OperationLog:
    return OperationLog(logger, {"operation_id": operation_id})
