"""The Resource Manager operations the service needs, derived from what it really sends: every
request the local emulator serves during create storage, attach, verify, status, resize, detach
and delete is mapped to its RBAC authorization action and must be in `arm_operations`."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from local import playground
from local.emulator.authorization import required_action
from local.emulator.traffic import LoggedRequest
from local.identities import APP_IDENTITY
from shared.adapters.arm_operations import (
    ARM_OPERATIONS,
    FOREIGN_ZONE_OPERATIONS,
    LINKED_OPERATIONS,
    RESOURCE_GROUP_OPERATIONS,
    SUBSCRIPTION_OPERATIONS,
)
from shared.domain.identity import Caller, Principal, PrincipalKind
from shared.domain.provisioning import DEFAULT_SUBNET, DEFAULT_VNET
from tests.emulator.conftest import needs_sandbox
from tests.functions.conftest import REGION, Stack, unique


def authorization(method: str, path: str) -> tuple[str, str]:
    """(RBAC action, where the service's roles must hold it) of one request: the emulator's own
    rule (`local.emulator.authorization.required_action`, which enforces it), and `subscription`
    for requests whose URL names no resource group (the subscription role), else `resourceGroup`.
    Long-running-operation monitors are authorized at the operation's resource group, though their
    URL names only the subscription."""
    action, scope = required_action(method, path)
    parts = [p.lower() for p in scope.split("/") if p]
    in_group = len(parts) > 2 and parts[2] == "resourcegroups"
    monitor = len(parts) > 6 and parts[4] == "locations" and parts[6] in MONITORS
    return action, "resourceGroup" if in_group or monitor else "subscription"


MONITORS = {"operations", "operationresults", "asyncoperations"}


@pytest.mark.parametrize(
    ("method", "path", "expected"),
    [
        ("GET", "/subscriptions/6e0b3f2a-5a43-4b7e-9a57-3f0c2d7d1c11/resourcegroups/g", ("Microsoft.Resources/subscriptions/resourceGroups/read", "resourceGroup")),
        ("POST", "/subscriptions/6e0b3f2a-5a43-4b7e-9a57-3f0c2d7d1c11/providers/Microsoft.Storage/checkNameAvailability",
         ("Microsoft.Storage/checkNameAvailability/read", "subscription")),
        ("GET", "/subscriptions/6e0b3f2a-5a43-4b7e-9a57-3f0c2d7d1c11/providers/Microsoft.Storage/storageAccounts",
         ("Microsoft.Storage/storageAccounts/read", "subscription")),
        ("PUT", "/subscriptions/6e0b3f2a-5a43-4b7e-9a57-3f0c2d7d1c11/resourceGroups/g/providers/Microsoft.Storage/storageAccounts/a/fileServices/default/shares/home",
         ("Microsoft.Storage/storageAccounts/fileServices/shares/write", "resourceGroup")),
        ("GET", "/subscriptions/6e0b3f2a-5a43-4b7e-9a57-3f0c2d7d1c11/resourceGroups/g/providers/Microsoft.Network/privateDnsZones/z/ALL",
         ("Microsoft.Network/privateDnsZones/ALL/read", "resourceGroup")),
        ("POST", "/subscriptions/6e0b3f2a-5a43-4b7e-9a57-3f0c2d7d1c11/resourceGroups/g/providers/Microsoft.Compute/virtualMachines/v/runCommand",
         ("Microsoft.Compute/virtualMachines/runCommand/action", "resourceGroup")),
        ("GET", "/subscriptions/6e0b3f2a-5a43-4b7e-9a57-3f0c2d7d1c11/providers/Microsoft.Network/locations/eastus/operations/1",
         ("Microsoft.Network/locations/operations/read", "resourceGroup")),
        ("GET", "/subscriptions/6e0b3f2a-5a43-4b7e-9a57-3f0c2d7d1c11/providers/Microsoft.Storage/locations/eastus/asyncoperations/1",
         ("Microsoft.Storage/operations/read", "resourceGroup")),
        ("GET", "/subscriptions/6e0b3f2a-5a43-4b7e-9a57-3f0c2d7d1c11/resourceGroups/g/providers/Microsoft.Authorization/roleAssignments",
         ("Microsoft.Authorization/roleAssignments/read", "resourceGroup")),
    ],
)
def test_a_request_maps_to_its_authorization_action(method: str, path: str, expected: tuple[str, str]) -> None:
    assert authorization(method, path) == expected


def test_the_lists_hold_each_operation_once_and_linked_ones_are_listed() -> None:
    assert len(set(RESOURCE_GROUP_OPERATIONS)) == len(RESOURCE_GROUP_OPERATIONS)
    assert len(set(SUBSCRIPTION_OPERATIONS)) == len(SUBSCRIPTION_OPERATIONS)
    assert set(RESOURCE_GROUP_OPERATIONS) >= LINKED_OPERATIONS
    assert all("*" not in action for action in ARM_OPERATIONS)


class Served:
    """The requests the emulator answered while the service, not the test's own set-up, ran."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.entries: list[LoggedRequest] = []

    def __call__(self, run: Callable[[], Any]) -> Any:
        before = len(self.stack.log.snapshot())
        result = run()
        self.entries += self.stack.log.snapshot()[before:]
        return result


# Monitors the SDK polls only when a provider answers with a Location header alone; the providers
# the service calls send Azure-AsyncOperation too, so a run never shows them.
UNPOLLED_MONITORS = {
    "Microsoft.Network/locations/operationResults/read",
    "Microsoft.Network/privateDnsOperationResults/read",
}


@needs_sandbox
def test_every_request_of_a_storage_lifecycle_is_a_listed_operation(stack: Stack) -> None:
    served, group, name, rest = Served(stack), stack.group, unique(), stack.rest
    base = f"{playground.providers(rest, group)}"
    ok = "Succeeded"
    assert served(lambda: stack.create(name))["status"] == ok
    subnet = f"{base}/Microsoft.Network/virtualNetworks/{DEFAULT_VNET}/subnets/{DEFAULT_SUBNET}"
    playground.vm(rest, group, "vm1", subnet, REGION)  # the test's VM: not the service's request
    query = {"resourceGroup": group}
    attach = {"vm": "vm1", "resourceGroup": group}
    assert served(lambda: stack.run(stack.api.post(f"/api/storage/{name}/attachments", attach)))["status"] == ok
    verified = served(lambda: stack.run(stack.api.post("/api/vms/vm1/attachment/verify", query=query)))
    assert verified["status"] == ok, verified
    assert served(lambda: stack.api.get(f"/api/storage/{name}/status")).status == 200
    assert served(lambda: stack.api.get("/api/storage", query=query)).status == 200
    assert served(lambda: stack.run(stack.api.patch(f"/api/storage/{name}", {"size": 200})))["status"] == ok
    detached = served(lambda: stack.run(stack.api.delete("/api/vms/vm1/attachment", query={**query, "mode": "restore"})))
    assert detached["status"] == ok, detached
    rest.delete(f"{base}/Microsoft.Compute/virtualMachines/vm1")  # the VNet is unused again
    rest.delete(f"{base}/Microsoft.Network/networkInterfaces/vm1-nic")
    # The daily snapshot a week later: the detach's snapshot has expired and goes (the lock
    # lifted around it), today's is taken. Then a delete, kept until the purge.
    stack.app.clock.advance(8 * 86400)
    assert served(stack.app.data_protection.run_daily)["errors"] == []
    served(lambda: stack.app.cloud.protect_shares(group, name, 14))  # a window other than Azure's default
    assert served(lambda: stack.delete_for_good(name))["status"] == ok
    # Adapter paths the lifecycle above does not take: a subnet added to an existing VNet, the
    # peerings of two VNets, listings that name no resource group.
    other = playground.network(rest, group, "vnet-other", REGION, space="10.60.0.0/16", subnet="10.60.0.0/24")
    cloud, vms = stack.app.cloud, stack.app.vms
    served(lambda: cloud.create_network(group, REGION, "vnet-other", "10.60.0.0/16", "extra", "10.60.1.0/24", {}))
    peer = playground.network(rest, group, "vnet-peer", REGION, space="10.61.0.0/16", subnet="10.61.0.0/24")
    served(lambda: vms.vnets_connected(other.rsplit("/subnets/", 1)[0], peer.rsplit("/subnets/", 1)[0]))
    served(lambda: cloud.list_accounts(None))
    served(lambda: cloud.account_locked(group, name))  # a create that finds the account
    if hasattr(vms, "list_vms"):
        served(vms.list_vms)
    # What a service principal may do: its role assignments and their roles, read by the app.
    robot = stack.azure.emulator.tenant.add("ServicePrincipal", "infra-test-robot")
    caller = Caller(Principal(robot.object_id, robot.name, PrincipalKind.SERVICE_PRINCIPAL), robot.object_id)
    stack.azure.emulator.authorization.assign(rest.group_path(group), robot.object_id, "Reader")
    assert served(lambda: stack.app.access_reader.access(caller, rest.group_path(group))).grants

    app = stack.azure.emulator.tenant.get(APP_IDENTITY).object_id
    assert served.entries and {e.caller for e in served.entries} >= {app}
    refused = [e for e in served.entries if e.status in (401, 403)]
    assert not refused, refused
    # The subscription role is assigned at the subscription: it holds in every group too.
    by_scope = {"resourceGroup": {a.lower() for a in RESOURCE_GROUP_OPERATIONS + SUBSCRIPTION_OPERATIONS},
                "subscription": {a.lower() for a in SUBSCRIPTION_OPERATIONS}}
    seen: dict[tuple[str, str], str] = {}
    for entry in [e for e in served.entries if e.caller == app]:  # not what users asked as themselves
        action, scope = authorization(entry.method, entry.path)
        seen.setdefault((action.lower(), scope), f"{entry.method} {entry.path}")
    missing = {key: request for key, request in seen.items() if key[0] not in by_scope[key[1]]}
    assert not missing, f"requests whose action the roles lack: {missing}"
    # Every listed operation is needed: requested in the run, a linked check, or a monitor.
    expected_unseen = {a.lower() for a in LINKED_OPERATIONS | UNPOLLED_MONITORS | FOREIGN_ZONE_OPERATIONS}
    unseen = {a.lower() for a in ARM_OPERATIONS} - {a for a, _ in seen}
    assert unseen == expected_unseen, f"listed but never requested: {sorted(unseen - expected_unseen)}"


# The SDK operation groups the adapters may use, with the operations each needs. A group the
# adapters start using that is missing here fails the test below: add its operations to
# arm_operations.py (and the roles) first.
SDK_GROUPS = {
    "storage_accounts": {"Microsoft.Storage/storageAccounts/read", "Microsoft.Storage/storageAccounts/write",
                         "Microsoft.Storage/storageAccounts/delete", "Microsoft.Storage/checkNameAvailability/read",
                         "Microsoft.Storage/operations/read"},
    "file_shares": {"Microsoft.Storage/storageAccounts/fileServices/shares/read",
                    "Microsoft.Storage/storageAccounts/fileServices/shares/write",
                    "Microsoft.Storage/storageAccounts/fileServices/shares/delete"},
    "file_services": {"Microsoft.Storage/storageAccounts/fileServices/read",
                      "Microsoft.Storage/storageAccounts/fileServices/write"},
    "virtual_networks": {"Microsoft.Network/virtualNetworks/read", "Microsoft.Network/virtualNetworks/write",
                         "Microsoft.Network/virtualNetworks/delete"},
    "subnets": {"Microsoft.Network/virtualNetworks/subnets/read", "Microsoft.Network/virtualNetworks/subnets/write"},
    "virtual_network_peerings": {"Microsoft.Network/virtualNetworks/virtualNetworkPeerings/read"},
    "private_endpoints": {"Microsoft.Network/privateEndpoints/read", "Microsoft.Network/privateEndpoints/write",
                          "Microsoft.Network/privateEndpoints/delete"},
    "private_dns_zone_groups": {"Microsoft.Network/privateEndpoints/privateDnsZoneGroups/read",
                                "Microsoft.Network/privateEndpoints/privateDnsZoneGroups/write"},
    "network_interfaces": {"Microsoft.Network/networkInterfaces/read"},
    # An account's property the listing carries (other ways in), not an operation group.
    "private_endpoint_connections": set(),
    "network_security_groups": {"Microsoft.Network/networkSecurityGroups/read",
                                "Microsoft.Network/networkSecurityGroups/write",
                                "Microsoft.Network/networkSecurityGroups/delete"},
    "security_rules": {"Microsoft.Network/networkSecurityGroups/securityRules/read",
                       "Microsoft.Network/networkSecurityGroups/securityRules/write",
                       "Microsoft.Network/networkSecurityGroups/securityRules/delete"},
    "private_zones": {"Microsoft.Network/privateDnsZones/read", "Microsoft.Network/privateDnsZones/write",
                      "Microsoft.Network/privateDnsZones/delete"},
    "record_sets": {"Microsoft.Network/privateDnsZones/A/read", "Microsoft.Network/privateDnsZones/A/write",
                    "Microsoft.Network/privateDnsZones/A/delete"},
    "virtual_network_links": {"Microsoft.Network/privateDnsZones/virtualNetworkLinks/read",
                              "Microsoft.Network/privateDnsZones/virtualNetworkLinks/write",
                              "Microsoft.Network/privateDnsZones/virtualNetworkLinks/delete"},
    "virtual_machines": {"Microsoft.Compute/virtualMachines/read"},
    "virtual_machine_run_commands": {"Microsoft.Compute/virtualMachines/runCommands/read",
                                     "Microsoft.Compute/virtualMachines/runCommands/write",
                                     "Microsoft.Compute/virtualMachines/runCommands/delete"},
}


def test_every_sdk_operation_group_the_adapters_use_is_accounted_for() -> None:
    from azure.core.credentials import AccessToken
    from azure.mgmt.compute import ComputeManagementClient
    from azure.mgmt.network import NetworkManagementClient
    from azure.mgmt.privatedns import PrivateDnsManagementClient
    from azure.mgmt.storage import StorageManagementClient

    class NoToken:
        def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
            raise AssertionError("no request is made")

    groups: set[str] = set()
    for client_class in (StorageManagementClient, NetworkManagementClient, PrivateDnsManagementClient,
                         ComputeManagementClient):
        client = client_class(NoToken(), "00000000-0000-0000-0000-000000000000")
        groups |= {name for name in vars(client) if not name.startswith("_")}
    adapters = Path(__file__).resolve().parents[2] / "shared" / "adapters"
    source = "\n".join(p.read_text() for p in sorted(adapters.glob("arm*.py")))
    used = {name for name in groups if re.search(rf"\.{name}\b", source)}
    assert used, "no SDK operation group found: the scan is broken"
    assert used <= set(SDK_GROUPS), f"operation groups with no listed operations: {sorted(used - set(SDK_GROUPS))}"
    for group in used:
        assert SDK_GROUPS[group] <= ARM_OPERATIONS, group
    # The plain requests go through send_request: the resource group read, the identity's own
    # permissions on a zone, and the account's delete lock (read, put, delete).
    assert source.count("send_request(") == 5 and "resourcegroups/{group}" in source
    assert "/providers/Microsoft.Authorization/permissions" in source
    assert source.count("/providers/Microsoft.Authorization/locks/") == 1  # one path, _lock_path
