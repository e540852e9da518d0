"""Storage as Azure sells it today, end to end: provisioned v2 (from 32 GiB, IOPS and throughput
bought apart and priced from their own Retail Prices meters) beside v1, and NFS encryption in
transit (secure transfer required; mounts through aznfs's TLS tunnel; plain NFS refused)."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from email.utils import parsedate_to_datetime
from typing import Any

from local.prices import CATALOG
from shared.domain.serialization import format_time
from tests.emulator.conftest import needs_sandbox
from tests.functions.conftest import REGION, Stack, unique
from tests.functions.test_attachments import HOME, attach, manifest, run, verify, vm


def meter(name: str) -> Decimal:
    """The stand-in's price of one Azure Files Provisioned v2 meter in the tests' region."""
    found = [m for m in CATALOG if m.get("productName") == "Azure Files Provisioned v2"
             and m["armRegionName"] == REGION and m["meterName"] == name]
    assert len(found) == 1, name
    return Decimal(str(found[0]["retailPrice"]))


def monthly(gib: int, iops: int, mibps: int) -> float:
    hours = Decimal(730)
    cost = (gib * meter("SSD LRS Provisioned Storage") + iops * meter("SSD LRS Provisioned IOPS")
            + mibps * meter("SSD LRS Provisioned Throughput MiBPS")) * hours
    return float(cost.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))


def share_of(stack: Stack, name: str) -> dict[str, Any]:
    return dict(stack.arm(f"Microsoft.Storage/storageAccounts/{name}/fileServices/default/shares/home")["properties"])


def test_a_provisioned_v2_storage_of_32_gib_is_created_resized_and_priced(stack: Stack) -> None:
    name = unique()
    made = stack.create(name, size=32)
    assert made["status"] == "Succeeded", made
    assert stack.arm(f"Microsoft.Storage/storageAccounts/{name}")["sku"]["name"] == "PremiumV2_LRS"
    record = stack.api.get(f"/api/storage/{name}").json()
    assert (record["billing"], record["sizeGb"], record["iops"], record["throughputMibps"]) == (
        "provisionedV2", 32, 3032, 104)  # Azure's recommendation for 32 GiB
    status = stack.api.get(f"/api/storage/{name}/status").json()
    assert (status["costPerMonth"], status["priceSource"]) == (monthly(32, 3032, 104), "retail")

    faster = stack.run(stack.api.patch(f"/api/storage/{name}", {"size": 64, "iops": 6000, "throughputMibps": 250}))
    assert faster["status"] == "Succeeded", faster
    assert (share_of(stack, name)["shareQuota"], share_of(stack, name)["provisionedIops"],
            share_of(stack, name)["provisionedBandwidthMibps"]) == (64, 6000, 250)
    status = stack.api.get(f"/api/storage/{name}/status").json()
    assert status["costPerMonth"] == monthly(64, 6000, 250)
    report = stack.api.get("/api/costs", query={"resourceGroup": stack.group}).json()
    assert [(s["name"], s["costPerMonth"]) for s in report["storage"]] == [(name, monthly(64, 6000, 250))]
    slower = stack.run(stack.api.patch(f"/api/storage/{name}", {"iops": 4000}))  # within a day of raising it
    assert (slower["status"], slower["error"]["code"]) == ("Failed", "QuotaDowngradeNotAllowed"), slower
    allowed = format_time(parsedate_to_datetime(share_of(stack, name)["nextAllowedProvisionedIopsDowngradeTime"]))
    assert f"IOPS (6000 -> 4000): nextAllowedProvisionedIopsDowngradeTime {allowed}" in slower["error"]["causes"]
    assert slower["error"]["try"] == f"submit the change again from {allowed}"
    too_small = stack.api.patch(f"/api/storage/{name}", {"size": 31})
    assert (too_small.status, too_small.json()["error"]["code"]) == (400, "ValidationError")


def test_a_provisioned_v1_storage_keeps_its_rules(stack: Stack) -> None:
    name = unique()
    assert stack.create(name, size=100, billing="provisionedV1")["status"] == "Succeeded"
    assert stack.arm(f"Microsoft.Storage/storageAccounts/{name}")["sku"]["name"] == "Premium_LRS"
    assert "provisionedIops" not in share_of(stack, name)
    refused = stack.api.patch(f"/api/storage/{name}", {"iops": 5000})
    assert (refused.status, refused.json()["error"]["code"]) == (400, "ValidationError")
    small = stack.api.patch(f"/api/storage/{name}", {"size": 50})
    assert small.status == 400 and "provisionedV1" in small.json()["error"]["message"]


@needs_sandbox
def test_encryption_in_transit_mounts_through_aznfs_and_refuses_plain_nfs(stack: Stack) -> None:
    name = unique()
    assert stack.create(name)["status"] == "Succeeded"  # required is the default
    assert stack.arm(f"Microsoft.Storage/storageAccounts/{name}")["properties"]["supportsHttpsTrafficOnly"] is True
    vm(stack, "vm1")
    home = manifest(stack, "vm1")
    attached = attach(stack, name, "vm1")
    assert attached["status"] == "Succeeded" and attached["result"]["mount"]["encrypted"] is True, attached
    assert manifest(stack, "vm1") == home
    fstab = run(stack, "vm1", f"grep ' {HOME} ' /etc/fstab")["output"].split()
    assert fstab[:3] == [f"{name}.file.core.windows.net:/{name}/home", HOME, "aznfs"]
    checked = verify(stack)["result"]
    assert (checked["health"], checked["live"]["encrypted"]) == ("healthy", True), checked

    endpoint = f"{name}.file.core.windows.net:/{name}/home"
    plain = run(stack, "vm1", f"mkdir -p /mnt/plain && mount -t nfs -o vers=4,minorversion=1 {endpoint} /mnt/plain")
    assert plain["exitCode"] == 32 and "access denied by server" in plain["error"]


@needs_sandbox
def test_a_vm_without_aznfs_where_it_cannot_be_installed_fails_clearly_untouched(stack: Stack) -> None:
    name = unique()
    assert stack.create(name)["status"] == "Succeeded"
    vm(stack, "bare")
    run(stack, "bare", "rm -f /usr/sbin/mount.aznfs && printf '#!/bin/sh\\nexit 6\\n' > /usr/local/bin/curl "
                       "&& chmod +x /usr/local/bin/curl")  # no helper, no way to download one
    home = manifest(stack, "bare")
    failed = attach(stack, name, "bare")
    assert failed["status"] == "Failed", failed
    message = " ".join(failed["error"]["causes"])
    assert "requires encryption in transit" in message and "encryptionInTransit=off" in message
    assert manifest(stack, "bare") == home
    plain = unique()
    assert stack.create(plain, encryptionInTransit="off")["status"] == "Succeeded"
    assert attach(stack, plain, "bare")["status"] == "Succeeded"  # the other choice works here
