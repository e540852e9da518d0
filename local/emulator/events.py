"""Event Grid for the emulator: every successful write, delete or action is posted, as Azure's
subscription system topic does, to a webhook (the local Functions host's Event Grid endpoint):
Event Grid schema, one event per request, the payload still a JSON array, at least once."""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from local.emulator.arm import TENANT_ID, ResourceId, new_guid, now

if TYPE_CHECKING:
    from local.emulator.authorization import Caller

log = logging.getLogger(__name__)

WRITE_SUCCESS = "Microsoft.Resources.ResourceWriteSuccess"
DELETE_SUCCESS = "Microsoft.Resources.ResourceDeleteSuccess"
ACTION_SUCCESS = "Microsoft.Resources.ResourceActionSuccess"


def operation_name(resource: ResourceId, verb: str) -> str:
    """`Microsoft.Compute/virtualMachines/write`, `.../runCommands/write`, `.../runCommand/action`."""
    return f"{resource.type_name}/{verb}"


def resource_event(
    event_type: str,
    resource: ResourceId,
    operation: str,
    *,
    method: str,
    url: str,
    correlation_id: str,
    updated: bool,
    caller: Caller | None = None,
    evidence: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One event in the Event Grid schema, fields as Azure sends them for a subscription topic
    (MicrosoftDocs/azure-docs `articles/event-grid/event-schema-resource-groups.md`): who wrote the
    resource is in `claims` (the writer's token, its object id under the long
    `.../claims/objectidentifier` name) and `authorization.evidence` (the role assignment that
    allowed the write, whose principal may be a group). `httpRequest` is included only for updates,
    deletes and actions, as the docs describe."""
    data: dict[str, Any] = {
        "authorization": {
            "scope": str(resource),
            "action": operation,
            "evidence": dict(evidence or {"role": "Subscription Admin"}),
        },
        "claims": caller.event_claims() if caller is not None else {
            "http://schemas.microsoft.com/identity/claims/tenantid": TENANT_ID, "ver": "1.0"},
        "correlationId": correlation_id,
        "resourceProvider": resource.namespace or "Microsoft.Resources",
        "resourceUri": str(resource),
        "operationName": operation,
        "status": "Succeeded",
        "subscriptionId": resource.subscription,
        "tenantId": TENANT_ID,
    }
    if updated or event_type != WRITE_SUCCESS:
        data["httpRequest"] = {
            "clientRequestId": new_guid(),
            "clientIpAddress": "127.0.0.1",
            "method": method,
            "url": url,
        }
    return {
        "id": new_guid(),
        "topic": f"/subscriptions/{resource.subscription}",
        "subject": str(resource),
        "eventType": event_type,
        "eventTime": now(),
        "data": data,
        "dataVersion": "2",
        "metadataVersion": "1",
    }


class EventPublisher:
    """Delivers events in order of occurrence from one background thread; a failed post is retried
    with growing delays (Event Grid retries for 24 h; here `attempts` times)."""

    def __init__(self, webhook_url: Callable[[], str | None], *, attempts: int = 8) -> None:
        self.webhook_url = webhook_url  # read at each event: tests and tools may change it
        self.attempts = attempts
        self.published: list[dict[str, Any]] = []
        self._queue: queue.Queue[tuple[dict[str, Any], str] | None] = queue.Queue()
        self._closing = threading.Event()  # no more retries: the stack is stopping
        self._thread = threading.Thread(target=self._run, name="emulator-events", daemon=True)
        self._thread.start()

    def publish(self, event: dict[str, Any]) -> None:
        self.published.append(event)
        url = self.webhook_url()
        if url:
            self._queue.put((event, url))

    def flush(self, timeout: float = 10) -> bool:
        """Wait until every queued event was delivered or given up; True when the queue is empty."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._queue.unfinished_tasks == 0:
                return True
            time.sleep(0.02)
        return False

    def close(self) -> None:
        """Stop delivering: an event whose webhook does not answer now is dropped, not retried."""
        self._closing.set()
        self._queue.put(None)
        self._thread.join(5)

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            try:
                self._deliver(*item)
            finally:
                self._queue.task_done()
        self._queue.task_done()

    def _deliver(self, event: dict[str, Any], url: str) -> None:
        body = json.dumps([event]).encode()
        for attempt in range(self.attempts):
            request = urllib.request.Request(
                url,
                data=body,
                method="POST",
                headers={
                    "Content-Type": "application/json",
                    "aeg-event-type": "Notification",
                    "aeg-delivery-count": str(attempt),
                },
            )
            try:
                with urllib.request.urlopen(request, timeout=30) as answer:
                    if 200 <= answer.status < 300:
                        return
            except urllib.error.HTTPError as error:
                if error.code in (400, 401, 403, 413):  # Event Grid does not retry these
                    log.warning("event %s refused by %s: %s", event["id"], url, error.code)
                    return
            except (urllib.error.URLError, OSError) as error:
                log.debug("event %s not delivered yet: %s", event["id"], error)
            if self._closing.wait(min(0.2 * 2**attempt, 5)):
                log.warning("event %s dropped: the emulator stopped before it was delivered", event["id"])
                return
        log.warning("event %s dropped after %d attempts", event["id"], self.attempts)
