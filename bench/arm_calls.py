"""Resource Manager calls per storage operation, counted from the local emulator's request log,
next to the minimum each operation needs. Runs the real worker and services on Azurite and the
emulator (no in-progress polls, so long-running operations cost one status poll each).

    python bench/arm_calls.py

Columns: reads (GET/HEAD, name checks), writes (PUT/PATCH/DELETE), polls (long-running operation
monitors and the final GET the SDK makes after one), and the minimum reads + writes.
"""

from __future__ import annotations

import sys
import tempfile
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from local import identities
from local.azurite import Azurite
from local.emulator import Config, LocalAzure
from local.emulator.arm import ResourceId, parse_path
from local.emulator.traffic import LoggedRequest
from shared.bootstrap import Container
from shared.domain import messages
from shared.domain.commands import CreateStorage, DeleteStorage
from shared.domain.models import Redundancy, StorageInfo, Tier, nfs_endpoint
from shared.domain.requests import StorageRef
from shared.settings import Settings

SUBSCRIPTION = "6e0b3f2a-5a43-4b7e-9a57-3f0c2d7d1c11"
GROUP, REGION = "bench-calls", "eastus"
LISTED = 200
# What each operation cannot do without: (reads, writes).
MINIMUM = {
    # the group (its region), the name check, and whether the shared VNet, zone and link exist;
    # then account, share, VNet, endpoint, zone, link and zone group
    "create": (5, 7),
    "create again": (8, 0),  # confirm each of the 8 parts exists
    f"list of {LISTED} accounts": (1, 0),  # one listing (the records come from Table Storage)
    "status": (1, 0),  # the share with its usage
    # is the account ours, is the zone unused, is the VNet unused; endpoint (its DNS records go with
    # it), account, then the last storage's link, zone and VNet
    "delete": (3, 5),
}


def classify(entries: list[LoggedRequest]) -> tuple[int, int, int]:
    reads = writes = polls = 0
    previous = ""
    for entry in entries:
        if entry.kind == "GET operation":
            polls += 1
        elif entry.method in ("PUT", "PATCH", "DELETE"):
            writes += 1
        elif entry.method == "GET" and previous == "GET operation":
            polls += 1  # the SDK's final GET of the resource after a long-running operation
        else:
            reads += 1
        previous = entry.kind
    return reads, writes, polls


def main() -> None:
    with tempfile.TemporaryDirectory() as scratch:
        storage = Azurite(Path(scratch) / "azurite.log")
        azure = LocalAzure(Path(scratch) / "azure", Config(polls_before_done=0)).start()
        try:
            rows = measure(azure, storage.connection_string)
        finally:
            azure.stop()
            storage.stop()
    print(f"{'operation':<24} {'reads':>5} {'writes':>6} {'polls':>5} {'total':>5}   minimum reads+writes")
    for name, (reads, writes, polls) in rows.items():
        low_reads, low_writes = MINIMUM[name]
        print(f"{name:<24} {reads:>5} {writes:>6} {polls:>5} {reads + writes + polls:>5}   "
              f"{low_reads}+{low_writes} = {low_reads + low_writes}")


def measure(azure: LocalAzure, connection: str) -> dict[str, tuple[int, int, int]]:
    app_identity, _ = identities.owner_session(azure.emulator, SUBSCRIPTION, GROUP, REGION, azure.url,
                                                  str(azure.ca_path))
    settings = Settings.from_environ({
        "AzureWebJobsStorage": connection, "AZURE_SUBSCRIPTION_ID": SUBSCRIPTION, "ARM_ENDPOINT": azure.url,
        "ARM_CA_BUNDLE": str(azure.ca_path), **app_identity.app_settings(),
        "STATE_TABLE_PREFIX": "b" + uuid.uuid4().hex[:12]})
    app = Container(settings, arm_options={"polling_interval": 0, "retry_total": 0})
    app.queue.check()
    log = azure.emulator.requests
    name = "bench" + uuid.uuid4().hex[:8]
    rows = {}

    def counted(label: str, action: object) -> None:
        log.clear()
        action()  # type: ignore[operator]
        rows[label] = classify(log.snapshot())

    def run(command: object) -> None:
        submission = app.storage.intake.submit(command, None)  # type: ignore[arg-type]
        app.worker.process(messages.encode(submission.operation.id))
        done = app.operations.get(submission.operation.id)
        assert done is not None and done.status.value == "Succeeded", done

    counted("create", lambda: run(CreateStorage(name, GROUP, size_gb=100)))
    counted("create again", lambda: run(CreateStorage(name, GROUP, size_gb=100)))
    for index in range(LISTED):
        other = f"bl{index:03d}{uuid.uuid4().hex[:6]}"
        account = {"location": REGION, "kind": "FileStorage", "sku": {"name": "Premium_LRS"},
                   "tags": {"managed-by": "azlin"}, "properties": {"provisioningState": "Succeeded"}}
        azure.emulator.put_internal(rest_id(GROUP, other), account)  # directly: keeps the setup short
        app.storages.save(StorageInfo(other, GROUP, REGION, Tier.PREMIUM, Redundancy.LRS, 100,
                                      nfs_endpoint(other), app.clock.now()))
    counted(f"list of {LISTED} accounts", lambda: list_all(app))
    counted("status", lambda: app.storage.status(StorageRef(name, GROUP)))
    counted("delete", lambda: run(DeleteStorage(name, GROUP)))
    return rows


def rest_id(group: str, account: str) -> ResourceId:
    return parse_path(f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{group}/providers/"
                      f"Microsoft.Storage/storageAccounts/{account}")


def list_all(app: Container) -> None:
    page = app.storage.list(GROUP, 1000, None)
    assert len(page.items) == LISTED + 1 and page.continuation is None, len(page.items)


if __name__ == "__main__":
    main()
