"""The storage lifecycle end to end: HTTP functions, the `operations` queue on Azurite, the worker,
and Resource Manager played by the local emulator through the real azure-mgmt clients."""

from __future__ import annotations

from dataclasses import replace
from email.utils import parsedate_to_datetime
from typing import Any

import pytest

from local import identities, playground
from local.rest import ArmRequestError
from shared.domain.models import Redundancy, StorageInfo, Tier, nfs_endpoint
from shared.domain.network_rules import NSG_NAME
from shared.domain.private_dns import FILE_ZONE
from shared.domain.provisioning import DEFAULT_SUBNET, DEFAULT_VNET
from shared.domain.serialization import format_time
from tests.conftest import ADMIN, OTHER_SUBSCRIPTION, Client, arm_as, object_id
from tests.functions.conftest import REGION, Stack, unique


def test_create_list_status_resize_delete_end_to_end(stack: Stack) -> None:
    name = unique()
    operation = stack.create(name, size="200GiB", redundancy="ZRS")

    assert operation["status"] == "Succeeded", operation
    assert operation["progress"] == {"step": "Done", "done": 6, "total": 6}
    endpoint = f"{name}.file.core.windows.net:/{name}/home"
    assert operation["result"]["nfsEndpoint"] == endpoint
    assert (operation["result"]["region"], operation["result"]["sizeGb"]) == (REGION, 200)

    held = stack.ours()
    assert sorted(held) == sorted([
        f"Microsoft.Storage/storageAccounts/{name}", "Microsoft.Storage/storageAccounts/fileServices/default",
        "Microsoft.Storage/storageAccounts/fileServices/shares/home",
        f"Microsoft.Network/virtualNetworks/{DEFAULT_VNET}", f"Microsoft.Network/virtualNetworks/subnets/{DEFAULT_SUBNET}",
        f"Microsoft.Network/networkSecurityGroups/{NSG_NAME}",
        f"Microsoft.Network/privateEndpoints/{name}-file-pe",
        "Microsoft.Network/privateEndpoints/privateDnsZoneGroups/default",
        *[k for k in held if k.startswith(f"Microsoft.Network/networkInterfaces/{name}-file-pe.nic.")],
        f"Microsoft.Network/privateDnsZones/{FILE_ZONE}",
        *[k for k in held if k.startswith(f"Microsoft.Network/privateDnsZones/virtualNetworkLinks/azlin-{DEFAULT_VNET}-")],
        f"Microsoft.Network/privateDnsZones/A/{name}"])
    account = stack.arm(f"Microsoft.Storage/storageAccounts/{name}")
    assert (account["kind"], account["sku"]["name"], account["location"]) == ("FileStorage", "PremiumV2_ZRS", REGION)
    props = account["properties"]
    assert (props["supportsHttpsTrafficOnly"], props["publicNetworkAccess"], props["minimumTlsVersion"],
            props["allowBlobPublicAccess"], props["networkAcls"]["defaultAction"]) == (
        True, "Disabled", "TLS1_2", False, "Deny")  # secure transfer: NFS through TLS only
    assert account["tags"] == {"managed-by": "azlin", "created-by": object_id(ADMIN)}  # who asked for it
    assert operation["requestedBy"] == {"objectId": object_id(ADMIN), "name": "alice@azlin.example", "kind": "User"}
    share = stack.arm(f"Microsoft.Storage/storageAccounts/{name}/fileServices/default/shares/home")["properties"]
    assert (share["enabledProtocols"], share["rootSquash"], share["shareQuota"]) == ("NFS", "NoRootSquash", 200)
    # provisioned v2: Azure's recommended IOPS and throughput for 200 GiB (understanding-billing.md)
    assert (share["provisionedIops"], share["provisionedBandwidthMibps"]) == (3200, 120)
    assert (operation["result"]["billing"], operation["result"]["iops"], operation["result"]["throughputMibps"],
            operation["result"]["encryptionInTransit"]) == ("provisionedV2", 3200, 120, True)
    pe = stack.arm(f"Microsoft.Network/privateEndpoints/{name}-file-pe")["properties"]
    connection = pe["privateLinkServiceConnections"][0]["properties"]
    assert (connection["privateLinkServiceId"], connection["groupIds"]) == (account["id"], ["file"])
    assert pe["subnet"]["id"].endswith(f"/virtualNetworks/{DEFAULT_VNET}/subnets/{DEFAULT_SUBNET}")

    assert [s["name"] for s in stack.api.get("/api/storage", query={"resourceGroup": stack.group}).json()["value"]] == [name]
    assert stack.api.get(f"/api/storage/{name}").json()["nfsEndpoint"] == endpoint
    status = stack.api.get(f"/api/storage/{name}/status").json()
    assert (status["usedGb"], status["utilizationPercent"], status["connectedVms"]) == (0.0, 0.0, [])

    with open(stack.azure.machines.share_files(name, "home") / "big", "wb") as sparse:
        sparse.truncate(150 * 2**30)  # 150 GiB of files, as Resource Manager counts them
    assert stack.api.get(f"/api/storage/{name}/status").json()["usedGb"] == 150.0
    too_small = stack.run(stack.api.patch(f"/api/storage/{name}", {"size": 120}))
    assert (too_small["status"], too_small["error"]["code"]) == ("Failed", "ShareTooSmall")
    shrunk = stack.run(stack.api.patch(f"/api/storage/{name}", {"size": 160}))
    assert (shrunk["status"], shrunk["result"]["sizeGb"]) == ("Succeeded", 160)
    grown = stack.run(stack.api.patch(f"/api/storage/{name}", {"size": 300}))
    assert grown["status"] == "Succeeded"
    refused = stack.run(stack.api.patch(f"/api/storage/{name}", {"size": 250}))
    assert (refused["status"], refused["error"]["code"]) == ("Failed", "QuotaDowngradeNotAllowed")
    share = stack.arm(f"Microsoft.Storage/storageAccounts/{name}/fileServices/default/shares/home")
    allowed = format_time(parsedate_to_datetime(share["properties"]["nextAllowedQuotaDowngradeTime"]))
    assert refused["error"]["message"].endswith(f"{name} can be made smaller from {allowed}."), refused["error"]
    assert f"size (300 -> 250 GiB): nextAllowedQuotaDowngradeTime {allowed}" in refused["error"]["causes"]
    assert refused["error"]["try"] == f"submit the change again from {allowed}"
    assert stack.api.get(f"/api/storage/{name}").json()["sizeGb"] == 300

    deleted = stack.delete_for_good(name)
    assert deleted["status"] == "Succeeded", deleted
    assert stack.ours() == {}
    assert stack.api.get(f"/api/storage/{name}").status == 404
    again = stack.api.delete(f"/api/storage/{name}", query={"resourceGroup": stack.group})
    assert (again.status, again.json()["error"]["code"]) == (404, "StorageNotFound")  # gone, and said so


def test_a_delete_is_kept_for_undelete_and_purged_after_its_window(stack: Stack) -> None:
    """DELETE_RETENTION_DAYS (7 by default): the account, its share and its lock stay, unreachable;
    undelete brings the endpoint back; the purge timer deletes everything after the window."""
    name = unique()
    assert stack.create(name)["status"] == "Succeeded"
    created = stack.ours()
    files = stack.azure.machines.share_files(name, "home")
    (files / "notes.txt").write_bytes(b"keep me\n")
    soft_delete = stack.arm(f"Microsoft.Storage/storageAccounts/{name}/fileServices/default")
    assert soft_delete["properties"]["shareDeleteRetentionPolicy"] == {"enabled": True, "days": 7}

    deleted = stack.run(stack.api.delete(f"/api/storage/{name}"))
    assert deleted["status"] == "Succeeded", deleted
    purge_at = deleted["result"]["purgeAfter"]
    assert deleted["result"]["state"] == "Deleted"
    kept = stack.api.get(f"/api/storage/{name}").json()
    assert (kept["state"], kept["purgeAfter"]) == ("Deleted", purge_at)
    held = stack.ours()
    assert f"Microsoft.Storage/storageAccounts/{name}" in held and "Microsoft.Storage/storageAccounts/fileServices/shares/home" in held
    assert not [k for k in held if k.startswith("Microsoft.Network/privateEndpoints")]  # unreachable at once
    assert (files / "notes.txt").read_bytes() == b"keep me\n"
    # Nothing else is done with it; a repeated delete changes nothing.
    refused = stack.api.post(f"/api/storage/{name}/attachments", {"vm": "vm1", "resourceGroup": stack.group})
    assert (refused.status, refused.json()["error"]["code"]) == (409, "StorageDeleted")
    refused = stack.api.patch(f"/api/storage/{name}", {"size": 200})
    assert (refused.status, refused.json()["error"]["code"]) == (409, "StorageDeleted")
    assert stack.run(stack.api.delete(f"/api/storage/{name}"))["result"]["purgeAfter"] == purge_at
    # Its lock stops a direct delete through Resource Manager.
    with pytest.raises(ArmRequestError) as locked:
        stack.rest.delete(f"{stack.rest.group_path(stack.group)}/providers/Microsoft.Storage/storageAccounts/{name}")
    assert locked.value.status == 409 and "ScopeLocked" in str(locked.value)

    back = stack.run(stack.api.post(f"/api/storage/{name}/undelete", {}))
    assert back["status"] == "Succeeded", back
    assert stack.api.get(f"/api/storage/{name}").json()["state"] == "Active"
    def kinds(held: dict[str, Any]) -> list[str]:  # an endpoint's NIC is named anew each time
        return sorted(k.split(".nic.")[0] for k in held)

    assert kinds(stack.ours()) == kinds(created)  # its endpoint, DNS record and guarded subnet again
    not_deleted = stack.api.post(f"/api/storage/{name}/undelete", {})
    assert (not_deleted.status, not_deleted.json()["error"]["code"]) == (409, "StorageNotDeleted")

    assert stack.run(stack.api.delete(f"/api/storage/{name}"))["status"] == "Succeeded"
    stack.api.index.fire_timer("purge_deleted_storage")  # within the window: nothing is queued
    assert stack.pump.drain() == 0
    stack.app.clock.advance(7 * 86400 + 1)
    stack.api.index.fire_timer("purge_deleted_storage")
    stack.api.index.fire_timer("purge_deleted_storage")  # a second run queues nothing more
    assert stack.pump.drain() == 1
    assert stack.ours() == {}
    assert not files.exists()
    assert stack.api.get(f"/api/storage/{name}").status == 404


def test_purge_ends_the_window_of_a_deleted_storage_only(stack: Stack) -> None:
    name = unique()
    assert stack.create(name)["status"] == "Succeeded"
    active = stack.api.delete(f"/api/storage/{name}", query={"purge": "true"})
    assert (active.status, active.json()["error"]["code"]) == (409, "StorageNotDeleted")
    assert stack.run(stack.api.delete(f"/api/storage/{name}"))["result"]["state"] == "Deleted"
    purged = stack.run(stack.api.delete(f"/api/storage/{name}", query={"purge": "true"}))
    assert (purged["status"], purged["result"]["purged"]) == ("Succeeded", True), purged
    assert stack.ours() == {} and stack.api.get(f"/api/storage/{name}").status == 404


def test_the_same_create_again_writes_nothing(stack: Stack) -> None:
    name = unique()
    assert stack.create(name)["status"] == "Succeeded"
    writes = stack.writes()
    assert sorted(writes) == sorted([
        "PUT Microsoft.Network/networkSecurityGroups", "PUT Microsoft.Storage/storageAccounts/providers/locks",
        "PUT Microsoft.Network/virtualNetworks", "PUT Microsoft.Storage/storageAccounts",
        "PUT Microsoft.Storage/storageAccounts/fileServices/shares", "PUT Microsoft.Network/privateEndpoints",
        "PUT Microsoft.Network/privateDnsZones", "PUT Microsoft.Network/privateDnsZones/virtualNetworkLinks",
        "PUT Microsoft.Network/privateEndpoints/privateDnsZoneGroups"])

    again = stack.create(name)
    assert again["status"] == "Succeeded" and again["result"]["name"] == name
    assert stack.writes() == writes


@pytest.mark.parametrize("step", [
    r"/storageAccounts/[^/]+$", r"/shares/home$", r"/virtualNetworks/[^/]+$", r"/privateEndpoints/[^/]+$",
    r"/privateDnsZones/[^/]+$", r"/virtualNetworkLinks/", r"/privateDnsZoneGroups/"])
@pytest.mark.parametrize(("status", "code"), [(429, "TooManyRequests"), (500, "InternalServerError")])
def test_a_failing_step_is_retried_and_converges(stack: Stack, step: str, status: int, code: str) -> None:
    stack.azure.emulator.faults.add("PUT", step, status=status, code=code, retry_after=1, count=2)
    name = unique()
    operation = stack.settle(stack.create(name))  # a 429 sends it back after its Retry-After
    assert operation["status"] == "Succeeded", operation
    assert operation["attempts"] == 3
    assert len(stack.writes()) == 9  # each resource written once, whatever failed on the way


@pytest.mark.parametrize("monitor", [r"/asyncoperations/", r"/Microsoft.Network/locations/.*/operations/",
                                     r"/privateDnsOperationStatuses/"])
def test_a_crash_while_azure_is_still_working_converges(stack: Stack, monitor: str) -> None:
    # A write reaches Azure, then the worker dies while polling it (storage, network, private DNS):
    # the next delivery finds what was written, and finishes without writing it twice.
    stack.azure.emulator.config.polls_before_done = 2
    stack.azure.emulator.faults.add("GET", monitor, status=500, count=1)
    operation = stack.create(unique())
    assert operation["status"] == "Succeeded", operation
    assert operation["attempts"] == 2
    writes = stack.writes()
    assert len(writes) == len(set(writes)) == 9, writes


def test_a_redelivered_message_of_a_finished_create_changes_nothing(stack: Stack) -> None:
    operation = stack.create(unique())
    assert operation["status"] == "Succeeded"
    writes = stack.writes()
    stack.app.queue.send(operation["id"])
    stack.pump.drain()
    assert stack.writes() == writes
    assert stack.api.get(f"/api/operations/{operation['id']}").json() == operation


@pytest.mark.parametrize(("body", "code"), [
    ({"tier": "Standard"}, "UnsupportedTier"), ({"size": 31}, "ValidationError"), ({"size": "300TiB"}, "ValidationError"),
    ({"size": 99, "billing": "provisionedV1"}, "ValidationError"), ({"iops": 5000, "billing": "provisionedV1"}, "ValidationError"),
    ({"iops": 102401}, "ValidationError"), ({"encryptionInTransit": "maybe"}, "ValidationError"),
    ({"name": "Bad_Name"}, "ValidationError"), ({"vnet": "-bad"}, "ValidationError"),
    ({"subnet": "default"}, "ValidationError")])
def test_bad_input_is_refused_before_any_azure_call(stack: Stack, body: dict[str, Any], code: str) -> None:
    answer = stack.api.post("/api/storage", {"name": unique(), "resourceGroup": stack.group, **body})
    assert (answer.status, answer.json()["error"]["code"]) == (400, code)
    assert stack.log.count() == 0


def test_a_name_taken_elsewhere_in_azure_fails_clearly_without_writes(stack: Stack) -> None:
    name = unique()
    other = arm_as(stack.azure, subscription=OTHER_SUBSCRIPTION)
    other.put(other.group_path("theirs"), {"location": REGION})
    other.put(f"{other.group_path('theirs')}/providers/Microsoft.Storage/storageAccounts/{name}",
              {"location": REGION, "sku": {"name": "Standard_LRS"}, "kind": "StorageV2"})
    stack.log.clear()

    operation = stack.create(name)
    assert (operation["status"], operation["error"]["code"]) == ("Failed", "StorageNameTaken")
    assert f"The storage account named {name} is already taken." in operation["error"]["causes"]
    assert "unique across all of Azure" in operation["error"]["try"]
    assert stack.writes() == []
    other.delete(other.group_path("theirs"))


@pytest.mark.parametrize("network", [{}, {"vnet": "vnet-nosuch"}, {"vnet": "vnet-nosuch", "subnet": "apps"},
                                     {"vnet": "vnet-nosuch", "guardSubnet": True}])
def test_a_missing_resource_group_is_refused_before_anything_is_recorded(stack: Stack,
                                                                         network: dict[str, Any]) -> None:
    answer = stack.api.post("/api/storage", {"name": unique(), "resourceGroup": "rg-nosuch", **network})
    assert (answer.status, answer.json()["error"]["code"]) == (404, "ResourceGroupNotFound"), answer.json()
    assert "rg-nosuch" in answer.json()["error"]["causes"][0]
    assert "vnet" not in answer.json()["error"]["try"].lower()
    assert stack.writes() == [] and list(stack.app.state.table("Operations").list_entities()) == []


def test_an_existing_account_is_reused_only_when_it_is_ours_and_fits(stack: Stack) -> None:
    foreign = unique()
    stack.rest.put(f"{stack.rest.group_path(stack.group)}/providers/Microsoft.Storage/storageAccounts/{foreign}",
                   {"location": REGION, "sku": {"name": "Premium_LRS"}, "kind": "FileStorage"})
    refused = stack.create(foreign)
    assert (refused["status"], refused["error"]["code"]) == ("Failed", "StorageIncompatible")
    assert any("managed-by" in cause for cause in refused["error"]["causes"])

    ours = unique()
    stack.rest.put(f"{stack.rest.group_path(stack.group)}/providers/Microsoft.Storage/storageAccounts/{ours}",
                   {"location": REGION, "sku": {"name": "Premium_LRS"}, "kind": "FileStorage",
                    "tags": {"managed-by": "azlin"}, "properties": {
                        "supportsHttpsTrafficOnly": False, "publicNetworkAccess": "Disabled",
                        "minimumTlsVersion": "TLS1_2", "networkAcls": {"defaultAction": "Deny"}}})
    stack.log.clear()
    reused = stack.create(ours, billing="provisionedV1", encryptionInTransit="off")
    assert reused["status"] == "Succeeded", reused
    assert "PUT Microsoft.Storage/storageAccounts" not in stack.writes()

    other = stack.api.post("/api/storage", {"name": ours, "resourceGroup": stack.group, "redundancy": "ZRS"})
    assert (other.status, other.json()["error"]["code"]) == (409, "StorageExists")
    assert "redundancy: is LRS, asked ZRS" in other.json()["error"]["causes"]
    stack.app.storages.delete(ours)  # its record lost: the worker finds the account in Azure
    wrong_sku = stack.create(ours, redundancy="ZRS")
    assert (wrong_sku["status"], wrong_sku["error"]["code"]) == ("Failed", "StorageIncompatible")


def test_a_named_network_is_used_and_a_missing_one_is_refused(stack: Stack) -> None:
    stack.rest.put(f"{stack.rest.group_path(stack.group)}/providers/Microsoft.Network/virtualNetworks/corp", {
        "location": REGION, "properties": {"addressSpace": {"addressPrefixes": ["10.7.0.0/16"]},
                                           "subnets": [{"name": "data", "properties": {"addressPrefix": "10.7.1.0/24"}}]}})
    name = unique()
    operation = stack.create(name, vnet="corp", subnet="data")
    assert operation["status"] == "Succeeded", operation
    pe = stack.arm(f"Microsoft.Network/privateEndpoints/{name}-file-pe")["properties"]
    assert pe["subnet"]["id"].endswith("/virtualNetworks/corp/subnets/data")
    assert f"Microsoft.Network/virtualNetworks/{DEFAULT_VNET}" not in stack.ours()
    # A customer's subnet is not changed unless they let the service guard it.
    assert "networkSecurityGroup" not in stack.arm("Microsoft.Network/virtualNetworks/corp/subnets/data")["properties"]
    # An undelete puts the endpoint back where it was, for a record from before networks were kept too.
    recorded = stack.app.storages.get(name)
    assert recorded is not None and (recorded.vnet, recorded.subnet) == ("corp", "data")
    stack.app.storages.save(replace(recorded, vnet=None, subnet=None))
    assert stack.run(stack.api.delete(f"/api/storage/{name}"))["status"] == "Succeeded"
    assert stack.run(stack.api.post(f"/api/storage/{name}/undelete", {}))["status"] == "Succeeded"
    pe = stack.arm(f"Microsoft.Network/privateEndpoints/{name}-file-pe")["properties"]
    assert pe["subnet"]["id"].endswith("/virtualNetworks/corp/subnets/data")

    missing = stack.create(unique(), vnet="corp", subnet="nosuch")
    assert (missing["status"], missing["error"]["code"]) == ("Failed", "NetworkNotFound")
    assert f"the service's own VNet {DEFAULT_VNET}" in missing["error"]["try"]


def test_a_missing_network_hint_names_only_the_network_a_request_would_get(
        stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    # The deployment's setting DEFAULT_VNET: leaving the network out means that one, not the
    # service's own VNet.
    monkeypatch.setattr(stack.app.provisioner, "defaults", replace(stack.app.settings.defaults, vnet="corpnet"))
    stack.log.clear()
    other = stack.create(unique(), vnet="typo")
    assert (other["status"], other["error"]["code"]) == ("Failed", "NetworkNotFound")
    assert "leave both out to use corpnet (the setting DEFAULT_VNET)" in other["error"]["try"]
    assert DEFAULT_VNET not in other["error"]["try"]
    setting = stack.create(unique(), vnet="corpnet")
    assert (setting["status"], setting["error"]["code"]) == ("Failed", "NetworkNotFound")
    assert "the setting DEFAULT_VNET names corpnet" in setting["error"]["try"]
    assert not [w for w in stack.writes() if "storageAccounts" in w]  # refused before anything is made


def test_a_customer_subnet_is_guarded_only_when_asked_and_only_when_safe(stack: Stack) -> None:
    base = f"{stack.rest.group_path(stack.group)}/providers/Microsoft.Network"
    stack.rest.put(f"{base}/networkSecurityGroups/theirs", {"location": REGION, "properties": {}})
    stack.rest.put(f"{base}/virtualNetworks/team", {"location": REGION, "properties": {
        "addressSpace": {"addressPrefixes": ["10.50.0.0/16"]},
        "subnets": [{"name": "endpoints", "properties": {"addressPrefix": "10.50.1.0/24"}},
                    {"name": "vms", "properties": {"addressPrefix": "10.50.2.0/24"}},
                    {"name": "locked", "properties": {"addressPrefix": "10.50.3.0/24", "networkSecurityGroup": {
                        "id": f"{base}/networkSecurityGroups/theirs"}}}]}})
    playground.vm(stack.rest, stack.group, "web", f"{base}/virtualNetworks/team/subnets/vms", REGION)
    for subnet, why in (("vms", "holds 1 address(es) besides private endpoints"),
                        ("locked", "already has network security group theirs")):
        refused = stack.create(unique(), vnet="team", subnet=subnet, guardSubnet=True)
        assert (refused["status"], refused["error"]["code"]) == ("Failed", "NetworkNotGuardable"), refused
        assert why in refused["error"]["causes"][0]
    assert not [k for k in stack.ours() if k.startswith("Microsoft.Storage/")]  # refused before anything

    # Changing a subnet takes what Azure asks of the caller for it: subnets/write.
    group = stack.rest.group_path(stack.group)
    identities.person(stack.azure.emulator, "bob", roles=[("Storage Account Contributor", group),
                                                          ("Virtual Machine Contributor", group)])
    bob = Client(stack.api.index, identities.token_source(stack.azure.emulator, "bob"))
    body = {"name": unique(), "resourceGroup": stack.group, "vnet": "team", "subnet": "endpoints"}
    assert stack.run(bob.post("/api/storage", body))["status"] == "Succeeded"  # joining is enough
    denied = bob.post("/api/storage", {**body, "name": unique(), "guardSubnet": True})
    assert (denied.status, denied.json()["error"]["code"]) == (403, "AuthorizationFailed")
    assert "virtualNetworks/subnets/write" in denied.json()["error"]["message"]

    name = unique()
    guarded = stack.create(name, vnet="team", subnet="endpoints", guardSubnet=True)
    assert guarded["status"] == "Succeeded", guarded
    props = stack.arm("Microsoft.Network/virtualNetworks/team/subnets/endpoints")["properties"]
    assert props["networkSecurityGroup"]["id"].endswith(f"/networkSecurityGroups/{NSG_NAME}")
    assert props["privateEndpointNetworkPolicies"] == "Enabled"
    info = stack.app.storages.get(name)
    assert info is not None and stack.app.mounts.guard.admit(info, "10.50.2.4")  # the service keeps its rules
    rules = stack.arm(f"Microsoft.Network/networkSecurityGroups/{NSG_NAME}")["properties"]["securityRules"]
    assert {r["name"]: r["properties"]["access"] for r in rules} == {
        "azlin-deny-endpoints": "Deny", f"azlin-nfs-{name}": "Allow"}


def test_missing_permission_ends_the_operation_naming_it(stack: Stack) -> None:
    stack.azure.emulator.faults.add("PUT", r"/storageAccounts/[^/]+$", status=403, code="AuthorizationFailed", message=(
        "The client 'abc' with object id 'abc' does not have authorization to perform action "
        "'Microsoft.Storage/storageAccounts/write' over scope '/subscriptions/x/resourceGroups/y' or the scope is invalid."))
    operation = stack.create(unique())
    assert (operation["status"], operation["error"]["code"]) == ("Failed", "AuthorizationFailed")
    assert "'Microsoft.Storage/storageAccounts/write' on /subscriptions/x/resourceGroups/y" in operation["error"]["message"]
    assert operation["attempts"] == 1


def test_delete_refuses_attached_storage_unless_forced(stack: Stack) -> None:
    from shared.domain.models import Attachment

    name = unique()
    assert stack.create(name)["status"] == "Succeeded"
    stack.app.attachments.add(Attachment(name, "vm1", stack.group, "/home/azureuser", stack.app.clock.now(),
                                         vm_id="3f1c9a52-7d44-4b0e-9a6f-1b2c3d4e5f60"))
    refused = stack.api.delete(f"/api/storage/{name}")
    assert (refused.status, refused.json()["error"]["code"]) == (409, "StorageInUse")
    # Forced: each attached VM is detached first; this one no longer exists, so only its record goes.
    forced = stack.delete_for_good(name, force="true")
    assert forced["status"] == "Succeeded", forced
    assert stack.app.attachments.list_for_storage(name) == []
    assert stack.ours() == {}


def test_usage_that_cannot_be_read_is_unknown_never_zero(stack: Stack) -> None:
    name = unique()
    assert stack.create(name)["status"] == "Succeeded"
    stack.azure.emulator.faults.add("GET", r"/shares/home$", status=500, count=1)
    status = stack.api.get(f"/api/storage/{name}/status").json()
    assert status["usedGb"] is None and status["utilizationPercent"] is None


def test_list_is_one_listing_joined_with_records(stack: Stack) -> None:
    names = sorted(unique() for _ in range(3))
    for name in names:
        assert stack.create(name)["status"] == "Succeeded"
    # One account disappears behind the service's back: it is no longer listed. Its delete lock
    # stops a plain delete; an Owner lifts the lock first.
    account = f"{stack.rest.group_path(stack.group)}/providers/Microsoft.Storage/storageAccounts/{names[0]}"
    with pytest.raises(ArmRequestError) as locked:
        stack.rest.delete(account)
    assert (locked.value.status, locked.value.code) == (409, "ScopeLocked")
    stack.rest.delete(f"{account}/providers/Microsoft.Authorization/locks/azlin-keep")
    stack.rest.delete(account)
    stack.log.clear()
    listed = stack.api.get("/api/storage", query={"resourceGroup": stack.group}).json()["value"]
    assert [s["name"] for s in listed] == names[1:]
    assert stack.log.kinds() == {"GET Microsoft.Storage/storageAccounts": 1}
    # Records of a group Azure no longer has: the group's accounts are gone too.
    stack.app.storages.save(StorageInfo("orphan01", "rg-gone", REGION, Tier.PREMIUM, Redundancy.LRS, 100,
                                        nfs_endpoint("orphan01"), stack.app.clock.now()))
    gone = stack.api.get("/api/storage", query={"resourceGroup": "rg-gone"})
    assert gone.status == 200 and gone.json()["value"] == [], gone

