"""Only the VMs attached to a storage reach its private endpoint: the endpoint's subnet carries a
network security group with one allow rule per storage naming its attached VMs' addresses, and
the emulator drops (a timeout, as Azure does) any other VM's NFS traffic, peered VNet or not."""

from __future__ import annotations

from typing import Any

import pytest

from shared.domain.network_rules import NSG_NAME, allow_rule_name
from shared.domain.provisioning import DEFAULT_VNET
from tests.emulator.conftest import needs_sandbox
from tests.functions.conftest import REGION, Stack
from tests.functions.test_attachments import HOME, address, attach, run, storage, vm
from tests.functions.test_reconcile import delete_vm, reconcile

pytestmark = needs_sandbox
__all__ = ["storage"]  # the fixture: a storage, and vm1 with a home of 300 files


def try_mount(stack: Stack, vm_name: str, storage: str) -> str:
    """A root on the VM mounts the share by hand, as anyone who reaches the endpoint could."""
    spec = f"{storage}.file.core.windows.net:/{storage}/home"
    answer = run(stack, vm_name, f"mkdir -p /mnt/try && mount -t aznfs -o vers=4,minorversion=1 {spec} /mnt/try "
                                 "&& echo mounted && umount /mnt/try")
    return "mounted" if answer["output"] == "mounted\n" else answer["error"].strip()


def allowed(stack: Stack, storage: str) -> list[str]:
    nsg = stack.arm(f"Microsoft.Network/networkSecurityGroups/{NSG_NAME}")
    rule = [r for r in nsg["properties"]["securityRules"] if r["name"] == allow_rule_name(storage)]
    if not rule:
        return []
    props = rule[0]["properties"]
    return sorted(props.get("sourceAddressPrefixes") or [props["sourceAddressPrefix"]])


def peer_island(stack: Stack) -> None:
    base = f"{stack.rest.group_path(stack.group)}/providers/Microsoft.Network/virtualNetworks"
    stack.rest.put(f"{base}/island", {"location": REGION, "properties": {
        "addressSpace": {"addressPrefixes": ["10.77.0.0/16"]},
        "subnets": [{"name": "default", "properties": {"addressPrefix": "10.77.0.0/24"}}]}})
    for local, remote in (("island", DEFAULT_VNET), (DEFAULT_VNET, "island")):
        stack.rest.put(f"{base}/{local}/virtualNetworkPeerings/to-{remote}", {"properties": {
            "remoteVirtualNetwork": {"id": f"{base}/{remote}"}, "allowVirtualNetworkAccess": True}})


def test_only_attached_vms_reach_the_share(stack: Stack, storage: str, caplog: pytest.LogCaptureFixture) -> None:
    subnet: dict[str, Any] = stack.arm(f"Microsoft.Network/virtualNetworks/{DEFAULT_VNET}/subnets/azlin-storage")
    assert subnet["properties"]["privateEndpointNetworkPolicies"] == "Enabled"
    assert subnet["properties"]["networkSecurityGroup"]["id"].endswith(NSG_NAME)
    peer_island(stack)
    vm(stack, "far", vnet="island", subnet="default")
    vm(stack, "snoop")  # in the storage's own VNet, never attached

    assert attach(stack, storage, "far")["status"] == "Succeeded"  # its VNet resolves the name from now on
    assert allowed(stack, storage) == [address(stack, "far")]
    assert "timed out" in try_mount(stack, "snoop", storage)
    assert run(stack, "far", f"findmnt -n -o TARGET --mountpoint {HOME}")["output"] == f"{HOME}\n"
    assert try_mount(stack, "far", storage) == "mounted"

    detached = stack.run(stack.api.delete("/api/vms/far/attachment", query={"resourceGroup": stack.group}))
    assert detached["status"] == "Succeeded", detached
    assert allowed(stack, storage) == []
    assert "timed out" in try_mount(stack, "far", storage)  # peered, resolving, and refused

    assert attach(stack, storage, "snoop")["status"] == "Succeeded"
    assert try_mount(stack, "snoop", storage) == "mounted"
    assert attach(stack, storage, "vm1")["status"] == "Succeeded"
    assert allowed(stack, storage) == sorted([address(stack, "snoop"), address(stack, "vm1")])

    gone = address(stack, "vm1")
    delete_vm(stack, "vm1")  # without a detach
    reconcile(stack)
    assert allowed(stack, storage) == [address(stack, "snoop")] and gone not in allowed(stack, storage)
    assert "another way in" not in caplog.text

    # An attached VM's address lost from the rule (a write lost to a race, a hand edit) comes back.
    nsg = f"{stack.rest.group_path(stack.group)}/providers/Microsoft.Network/networkSecurityGroups/{NSG_NAME}"
    rule = stack.rest.get(f"{nsg}/securityRules/{allow_rule_name(storage)}")
    stack.rest.put(f"{nsg}/securityRules/{allow_rule_name(storage)}", {"properties": {
        **rule["properties"], "sourceAddressPrefixes": [], "sourceAddressPrefix": "10.99.0.1"}})
    assert "timed out" in try_mount(stack, "snoop", storage)
    reconcile(stack)
    assert allowed(stack, storage) == sorted(["10.99.0.1", address(stack, "snoop")])
    assert try_mount(stack, "snoop", storage) == "mounted"
    assert "lets in 10.99.0.1, which no attached VM has" in caplog.text

    # Someone opens another door beside the service's rules: reconcile says so.
    stack.rest.put(f"{nsg}/securityRules/open-door", {"properties": {
        "priority": 150, "access": "Allow", "direction": "Inbound", "protocol": "*", "sourcePortRange": "*",
        "sourceAddressPrefix": "*", "destinationAddressPrefix": "*", "destinationPortRange": "2049"}})
    assert try_mount(stack, "far", storage) == "mounted"  # the emulator obeys it, as Azure would
    reconcile(stack)
    assert f"{storage}: rule open-door (Allow, priority 150) was not made by the service" in caplog.text

    # ... or a second private endpoint to the account, in a subnet the service does not guard.
    providers = f"{stack.rest.group_path(stack.group)}/providers"
    stack.rest.put(f"{providers}/Microsoft.Network/privateEndpoints/side-door", {"location": REGION, "properties": {
        "subnet": {"id": f"{providers}/Microsoft.Network/virtualNetworks/island/subnets/default"},
        "privateLinkServiceConnections": [{"name": "file", "properties": {
            "privateLinkServiceId": f"{providers}/Microsoft.Storage/storageAccounts/{storage}",
            "groupIds": ["file"]}}]}})
    reconcile(stack)
    assert f"{storage}: private endpoint side-door" in caplog.text and "was not made by the service" in caplog.text
