"""What a person or a test sets up in the local Azure, in one place: a VNet, a VM (its NIC
first), NFS-ready storage reachable from a subnet, and a script run through a managed Run
Command. Used by `python -m local`, the benchmarks and the tests (the product uses azure-mgmt)."""

from __future__ import annotations

import contextlib
import uuid
from typing import Any

from local.rest import ArmRequestError, ArmRest

ZONE = "privatelink.file.core.windows.net"


def providers(rest: ArmRest, group: str) -> str:
    return f"{rest.group_path(group)}/providers"


def network(
    rest: ArmRest,
    group: str,
    name: str,
    region: str,
    *,
    space: str = "10.0.0.0/16",
    subnet: str = "10.0.0.0/24",
) -> str:
    """A VNet with one subnet `default`; returns the subnet's id."""
    vnet = f"{providers(rest, group)}/Microsoft.Network/virtualNetworks/{name}"
    rest.put(
        vnet,
        {
            "location": region,
            "properties": {
                "addressSpace": {"addressPrefixes": [space]},
                "subnets": [{"name": "default", "properties": {"addressPrefix": subnet}}],
            },
        },
    )
    return f"{vnet}/subnets/default"


def vm(
    rest: ArmRest,
    group: str,
    name: str,
    subnet_id: str,
    region: str,
    *,
    admin: str = "azureuser",
    key: str | None = None,
    tags: dict[str, str] | None = None,
) -> dict[str, Any]:
    """A NIC in `subnet_id`, then a Linux VM on it; returns the VM."""
    base = providers(rest, group)
    nic = rest.put(
        f"{base}/Microsoft.Network/networkInterfaces/{name}-nic",
        {
            "location": region,
            "properties": {
                "ipConfigurations": [{"name": "ipconfig1", "properties": {"subnet": {"id": subnet_id}}}]
            },
        },
    )
    os_profile: dict[str, Any] = {"adminUsername": admin}
    if key:
        os_profile["linuxConfiguration"] = {
            "disablePasswordAuthentication": True,
            "ssh": {"publicKeys": [{"path": f"/home/{admin}/.ssh/authorized_keys", "keyData": key}]},
        }
    return dict(
        rest.put(
            f"{base}/Microsoft.Compute/virtualMachines/{name}",
            {
                "location": region,
                "tags": tags or {},
                "properties": {
                    "hardwareProfile": {"vmSize": "Standard_B2s"},
                    "osProfile": os_profile,
                    "networkProfile": {
                        "networkInterfaces": [{"id": nic["id"], "properties": {"primary": True}}]
                    },
                },
            },
        )
    )


def exists(rest: ArmRest, path: str) -> bool:
    try:
        rest.get(path)
    except ArmRequestError as error:
        if error.status == 404:
            return False
        raise
    return True


def link_zone(rest: ArmRest, group: str, vnet_id: str) -> None:
    """Link the group's privatelink zone to a VNet (once)."""
    link = (
        f"{providers(rest, group)}/Microsoft.Network/privateDnsZones/{ZONE}/virtualNetworkLinks/"
        f"link-{vnet_id.rsplit('/', 1)[1]}"
    )
    if not exists(rest, link):
        rest.put(
            link,
            {
                "location": "global",
                "properties": {"virtualNetwork": {"id": vnet_id}, "registrationEnabled": False},
            },
        )


def nfs_storage(
    rest: ArmRest, group: str, account: str, subnet_id: str, region: str, *, link_vnets: tuple[str, ...] = (),
    secure_transfer: bool = False,
) -> str:
    """An NFS-ready account with share `home`, its private endpoint in `subnet_id`, and the
    privatelink zone linked to the endpoint's VNet and to `link_vnets`; returns the NFS address.
    `secure_transfer`: the account requires it, so only TLS (aznfs) mounts reach the share."""
    base = providers(rest, group)
    created = rest.put(
        f"{base}/Microsoft.Storage/storageAccounts/{account}",
        {
            "location": region,
            "sku": {"name": "Premium_LRS"},
            "kind": "FileStorage",
            "properties": {
                "supportsHttpsTrafficOnly": secure_transfer,
                "publicNetworkAccess": "Disabled",
                "networkAcls": {"defaultAction": "Deny", "bypass": "AzureServices"},
            },
        },
    )
    rest.put(
        f"{base}/Microsoft.Storage/storageAccounts/{account}/fileServices/default/shares/home",
        {"properties": {"enabledProtocols": "NFS", "rootSquash": "NoRootSquash", "shareQuota": 100}},
    )
    endpoint = f"{base}/Microsoft.Network/privateEndpoints/{account}-pe"
    rest.put(
        endpoint,
        {
            "location": region,
            "properties": {
                "subnet": {"id": subnet_id},
                "privateLinkServiceConnections": [
                    {
                        "name": "file",
                        "properties": {"privateLinkServiceId": created["id"], "groupIds": ["file"]},
                    }
                ],
            },
        },
    )
    zone = f"{base}/Microsoft.Network/privateDnsZones/{ZONE}"
    if not exists(rest, zone):
        rest.put(zone, {"location": "global"})
    for vnet in {subnet_id.rsplit("/subnets/", 1)[0], *link_vnets}:
        link_zone(rest, group, vnet)
    rest.put(
        f"{endpoint}/privateDnsZoneGroups/default",
        {
            "properties": {
                "privateDnsZoneConfigs": [{"name": "file", "properties": {"privateDnsZoneId": zone}}]
            }
        },
    )
    return f"{account}.file.core.windows.net:/{account}/home"


def run(
    rest: ArmRest,
    group: str,
    vm_name: str,
    script: str,
    parameters: dict[str, str] | None = None,
    *,
    timeout: int = 600,
) -> dict[str, Any]:
    """Run a script through a managed Run Command, then delete it; returns its instance view."""
    vm_path = f"{providers(rest, group)}/Microsoft.Compute/virtualMachines/{vm_name}"
    path = f"{vm_path}/runCommands/local-{uuid.uuid4().hex[:10]}"
    try:
        rest.put(
            path,
            {
                "location": rest.get(vm_path)["location"],
                "properties": {
                    "source": {"script": script},
                    "timeoutInSeconds": timeout,
                    "parameters": [{"name": k, "value": v} for k, v in (parameters or {}).items()],
                },
            },
        )
    except ArmRequestError:
        # Azure keeps a refused Run Command (Failed): callers that retry would fill the VM's 25.
        with contextlib.suppress(ArmRequestError):
            rest.delete(path)
        raise
    view: dict[str, Any] = rest.get(f"{path}?$expand=instanceView")["properties"]["instanceView"]
    rest.delete(path)
    return view
