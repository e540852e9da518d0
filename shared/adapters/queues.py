"""The `operations` queue on Azure Queue Storage, in the encoding the Functions host reads.

The Functions queue trigger expects base64 message text (host.json `messageEncoding: base64`),
while the azure-storage-queue client sends plain text unless told otherwise: an unencoded message
would fail to decode in the host and end in the poison queue.

Each message carries the trace context current when it is sent (`trace`, the tracing's carrier):
the worker's span for it continues the trace of the request, or delivery, that sent it.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Mapping
from functools import cached_property
from typing import Any

from azure.core.exceptions import ResourceExistsError
from azure.storage.queue import ExponentialRetry, QueueClient, TextBase64DecodePolicy, TextBase64EncodePolicy

from shared.domain import messages
from shared.settings import StorageConnection

from .azure_errors import translated
from .credentials import managed_identity

log = logging.getLogger(__name__)
DEPENDENCY = "Queue Storage"
# The SDK's default retry waits 15 s and then 45 s: far too long behind an HTTP request.
_CLIENT_OPTIONS: dict[str, Any] = {"connection_timeout": 5, "read_timeout": 20}


def _retry() -> ExponentialRetry:
    return ExponentialRetry(initial_backoff=1, increment_base=2, retry_total=2, random_jitter_range=1)


class StorageQueue:
    def __init__(self, connection: StorageConnection, queue_name: str, *,
                 trace: Callable[[], Mapping[str, str]] = dict) -> None:
        self.connection = connection
        self.queue_name = queue_name
        self.trace = trace
        self.name = f"queue {queue_name}"
        self._created = False
        self._lock = threading.Lock()

    @cached_property
    def client(self) -> QueueClient:
        codecs: dict[str, Any] = {"message_encode_policy": TextBase64EncodePolicy(),
                  "message_decode_policy": TextBase64DecodePolicy(), "retry_policy": _retry(),
                  **_CLIENT_OPTIONS}
        if self.connection.connection_string:
            return QueueClient.from_connection_string(
                self.connection.connection_string, self.queue_name, **codecs)
        assert self.connection.queue_endpoint
        return QueueClient(self.connection.queue_endpoint, self.queue_name,
                           credential=managed_identity(self.connection.client_id), **codecs)

    @translated(DEPENDENCY)
    def send(self, operation_id: str, delay_seconds: int = 0) -> None:
        self._ensure_exists()
        self.client.send_message(messages.encode(operation_id, self.trace()),
                                 visibility_timeout=delay_seconds or None)
        log.info("op=%s queued on %s (delay %ss)", operation_id, self.queue_name, delay_seconds)

    @translated(DEPENDENCY)
    def check(self) -> None:
        self._ensure_exists()
        self.client.get_queue_properties()

    def _ensure_exists(self) -> None:
        with self._lock:
            if not self._created:
                with contextlib.suppress(ResourceExistsError):
                    self.client.create_queue()
                self._created = True
