"""Fixtures for tests that run the whole service: the HTTP functions, the `operations` queue on
Azurite, the worker, and Resource Manager played by the local emulator (with sandbox VMs)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from local.emulator import LocalAzure
from local.host import FunctionIndex, QueuePump
from local.rest import ArmRest
from shared.bootstrap import Container
from shared.domain.messages import OPERATIONS_QUEUE, POISON_QUEUE
from tests.conftest import SUBSCRIPTION, Client, arm_as, managed_group

REGION = "westeurope"
WRITES = ("PUT", "PATCH", "DELETE")


@dataclass
class Stack:
    api: Client
    app: Container
    azure: LocalAzure
    rest: ArmRest
    group: str
    pump: QueuePump
    poison: QueuePump

    @property
    def log(self) -> Any:
        return self.azure.emulator.requests

    def run(self, answer: Any) -> dict[str, Any]:
        """Let the worker run everything queued; returns the operation the answer named."""
        assert answer.status == 202, answer
        for _ in range(10):
            if not self.pump.drain():
                break
        self.poison.drain()
        operation: dict[str, Any] = self.api.get("/api" + answer.headers["Location"].split("/api", 1)[1]).json()
        return operation

    def settle(self, operation: dict[str, Any], timeout: float = 30) -> dict[str, Any]:
        """Run the queue until the operation ends, waiting for messages sent with a delay (a
        throttled operation comes back after its Retry-After)."""
        deadline = time.monotonic() + timeout
        while operation["status"] not in ("Succeeded", "Failed") and time.monotonic() < deadline:
            time.sleep(0.25)
            self.run_queued()
            operation = self.api.get(f"/api/operations/{operation['id']}").json()
        return operation

    def run_queued(self) -> None:
        """Let the worker run everything queued (a timer's operations)."""
        for _ in range(10):
            if not self.pump.drain():
                break

    def delete_for_good(self, name: str, **query: str) -> dict[str, Any]:
        """Delete a storage, then let its kept window pass and the purge timer run."""
        deleted = self.run(self.api.delete(f"/api/storage/{name}", query=query or None))
        if deleted["status"] == "Succeeded" and deleted["result"].get("purgeAfter"):
            self.app.clock.advance(self.app.settings.protection.delete_retention_days * 86400 + 1)
            self.api.index.fire_timer("purge_deleted_storage")
            self.run_queued()
        return deleted

    def create(self, name: str, **body: Any) -> dict[str, Any]:
        return self.run(self.api.post("/api/storage", {"name": name, "resourceGroup": self.group, **body}))

    def writes(self) -> list[str]:
        return [e.kind for e in self.log.snapshot() if e.method in WRITES and e.status < 300]

    def ours(self) -> dict[str, dict[str, Any]]:
        """Every resource the emulator holds in the test's resource group, by type/name."""
        prefix = f"/subscriptions/{SUBSCRIPTION}/resourcegroups/{self.group}/".lower()
        return {f"{r.type}/{r.id.name}": r.body for key, r in self.azure.emulator.resources.items()
                if key.startswith(prefix)}

    def arm(self, path: str) -> dict[str, Any]:
        return dict(self.rest.get(f"{self.rest.group_path(self.group)}/providers/{path}"))


@pytest.fixture
def stack(make_app: Callable[..., Container], functions: FunctionIndex, local_azure: LocalAzure,
          azurite: str) -> Iterator[Stack]:
    emulator = local_azure.emulator
    emulator.config.polls_before_done, emulator.config.retry_after = 1, None
    emulator.faults.clear()
    rest = arm_as(local_azure)
    group = managed_group(local_azure, REGION)
    emulator.requests.clear()
    app = make_app()
    client = Client(functions)
    yield Stack(client, app, local_azure, rest, group, QueuePump(functions, azurite, OPERATIONS_QUEUE),
                QueuePump(functions, azurite, POISON_QUEUE))
    emulator.faults.clear()
    emulator.authorization.drop_locks(rest.group_path(group))  # the storages' delete locks
    rest.delete(rest.group_path(group))


def unique() -> str:
    return "st" + uuid.uuid4().hex[:10]


