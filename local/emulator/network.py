"""Microsoft.Network: virtual networks and subnets, peerings, network interfaces (with private IPs
from their subnet), private endpoints with their DNS zone groups, and private DNS zones with
virtual network links and A records. Writes answer 201 + Azure-AsyncOperation (private DNS:
202 + Azure-AsyncOperation + Location), as the real providers do.

`nfs_reachability()` applies Azure's rules for an NFS mount from a VM's virtual network."""

from __future__ import annotations

import copy
import ipaddress
from typing import TYPE_CHECKING, Any, ClassVar

from local.emulator.arm import ArmError, Resource, ResourceId, bad_request, new_guid, parse_path, reference
from local.emulator.kinds import ResourceKind, Shape, Views, require
from local.emulator.storage import StorageAccounts, nfs_host

if TYPE_CHECKING:
    from local.emulator.core import Emulator

NETWORK = "Microsoft.Network"
VNETS = f"{NETWORK}/virtualNetworks"
SUBNETS = f"{VNETS}/subnets"
PEERINGS = f"{VNETS}/virtualNetworkPeerings"
NICS = f"{NETWORK}/networkInterfaces"
PRIVATE_ENDPOINTS = f"{NETWORK}/privateEndpoints"
ZONE_GROUPS = f"{PRIVATE_ENDPOINTS}/privateDnsZoneGroups"
ZONES = f"{NETWORK}/privateDnsZones"
ZONE_LINKS = f"{ZONES}/virtualNetworkLinks"
A_RECORDS = f"{ZONES}/A"
JOIN_SUBNET = "Microsoft.Network/virtualNetworks/subnets/join/action"
FILE_ZONE = "privatelink.file.core.windows.net"


def _referenced(
    emu: Emulator, value: Any, by: ResourceId, type_name: str, *, join: str | None = None,
    region: str | None = None,
) -> Resource:
    """The resource a `{"id": ...}` reference names; InvalidResourceReference when it is missing.
    `join`: the action the caller needs on it as well (Resource Manager's linked access check,
    e.g. `virtualNetworks/subnets/join/action` for a NIC or a private endpoint in a subnet).
    `region`: the referring resource's; a subnet in a VNet of another region is refused the same
    way ("The private endpoint must be deployed in the same region and subscription as the
    virtual network", azure-docs articles/private-link/private-endpoint-overview.md; Azure answers
    InvalidResourceReference naming the VNet, Azure/azure-cli issue 13614)."""
    target = reference(value)
    found = emu.get(target) if target else None
    if found is None or found.type.lower() != type_name.lower():
        raise _not_found(target, by)
    vnet = emu.get(found.id.parent) if region and found.type == SUBNETS and found.id.parent else None
    if vnet is not None and str(vnet.body.get("location", "")).lower() != region.lower():  # type: ignore[union-attr]
        raise _not_found(str(vnet.id), by)
    if join is not None:
        emu.authorization.authorize_linked(join, str(found.id))
    return found


def _not_found(target: str | None, by: ResourceId) -> ArmError:
    return bad_request(
        "InvalidResourceReference",
        f"Resource {target} referenced by resource {by} was not found. Please make sure that the "
        "referenced resource exists, and that both resources are in the same region.",
    )


def _network(value: str, what: str) -> ipaddress.IPv4Network:
    try:
        return ipaddress.IPv4Network(value, strict=True)
    except ValueError:
        raise bad_request(
            "InvalidAddressPrefixFormat", f"Address prefix {value} of {what} is not formatted correctly."
        ) from None


class VirtualNetworks(ResourceKind):
    type_name = VNETS
    put_shape = Shape.ASYNC_OPERATION
    delete_shape = Shape.ASYNC_OPERATION

    def validate(
        self, emu: Emulator, rid: ResourceId, body: dict[str, Any], existing: Resource | None
    ) -> dict[str, Any]:
        stored = super().validate(emu, rid, body, existing)
        props = stored["properties"]
        prefixes = (props.get("addressSpace") or {}).get("addressPrefixes") or []
        require(
            isinstance(prefixes, list) and bool(prefixes),
            "InvalidRequestFormat",
            "The address space of a virtual network must be a list of at least one prefix.",
        )
        spaces = [_network(prefix, str(rid)) for prefix in prefixes]
        subnets = props.pop("subnets", None) or []
        _check_inline_subnets(rid, spaces, subnets)
        wanted = {str(s.get("name", "")).lower() for s in subnets}
        for child in emu.children(rid):
            if child.type == SUBNETS and child.id.name.lower() not in wanted:
                Subnets.require_unused(emu, child)
        stored["internal_subnets"] = subnets
        return stored

    def provision(self, emu: Emulator, resource: Resource, created: bool) -> None:
        subnets = resource.body.pop("internal_subnets", [])
        names = set()
        for subnet in subnets:
            rid = resource.id.child("subnets", str(subnet.get("name")))
            names.add(rid.key)
            kind = emu.kinds[SUBNETS.lower()]
            emu.put_internal(rid, kind.validate(emu, rid, subnet, emu.get(rid)))
            emu.get(rid).properties["provisioningState"] = "Succeeded"  # type: ignore[union-attr]
        for child in emu.children(resource.id):
            if child.type == SUBNETS and child.id.key not in names:
                emu.remove(child)

    def check_delete(self, emu: Emulator, resource: Resource) -> None:
        for child in emu.children(resource.id):
            if child.type == SUBNETS:
                Subnets.require_unused(emu, child)

    def view(self, emu: Emulator, resource: Resource, query: dict[str, Any]) -> dict[str, Any]:
        body = super().view(emu, resource, query)
        body.pop("internal_subnets", None)
        body["properties"]["subnets"] = [
            emu.kinds[SUBNETS.lower()].view(emu, child, {})
            for child in emu.children(resource.id)
            if child.type == SUBNETS
        ]
        body["properties"]["virtualNetworkPeerings"] = [
            emu.kinds[PEERINGS.lower()].view(emu, child, {})
            for child in emu.children(resource.id)
            if child.type == PEERINGS
        ]
        body.setdefault("etag", f'W/"{new_guid()}"')
        body["properties"].setdefault("resourceGuid", new_guid())
        return body


def _check_inline_subnets(
    vnet: ResourceId, spaces: list[ipaddress.IPv4Network], subnets: list[dict[str, Any]]
) -> None:
    """Refuse, before accepting the VNet, subnets Azure would refuse: outside the address space,
    overlapping each other, or unnamed."""
    seen: list[tuple[str, ipaddress.IPv4Network]] = []
    for subnet in subnets:
        name = str(subnet.get("name") or "")
        require(bool(name), "InvalidRequestFormat", f"Every subnet of {vnet.name} needs a name.")
        props = subnet.get("properties") or {}
        for prefix in props.get("addressPrefixes") or [props.get("addressPrefix")]:
            network = _network(str(prefix), f"{vnet}/subnets/{name}")
            require(
                any(network.subnet_of(space) for space in spaces),
                "NetcfgSubnetRangeOutsideVnet",
                f"Subnet '{name}' is not valid because its IP address range is outside the IP address "
                f"range of virtual network '{vnet.name}'.",
            )
            for other, taken in seen:
                require(
                    not network.overlaps(taken),
                    "NetcfgSubnetRangesOverlap",
                    f"Subnet '{name}' is not valid because its IP address range overlaps with that of "
                    f"subnet '{other}' in virtual network '{vnet.name}'.",
                )
            seen.append((name, network))


class Subnets(ResourceKind):
    type_name = SUBNETS
    put_shape = Shape.ASYNC_OPERATION
    delete_shape = Shape.ASYNC_OPERATION
    located = False

    def validate(
        self, emu: Emulator, rid: ResourceId, body: dict[str, Any], existing: Resource | None
    ) -> dict[str, Any]:
        stored = super().validate(emu, rid, body, existing)
        props = stored["properties"]
        prefixes = props.get("addressPrefixes") or (
            [props["addressPrefix"]] if props.get("addressPrefix") else []
        )
        require(bool(prefixes), "InvalidRequestFormat", f"Subnet {rid.name} must have an address prefix.")
        vnet = emu.get(rid.parent) if rid.parent else None
        assert vnet is not None
        spaces = [_network(p, str(vnet.id)) for p in vnet.properties["addressSpace"]["addressPrefixes"]]
        for prefix in prefixes:
            network = _network(prefix, str(rid))
            require(
                any(network.subnet_of(space) for space in spaces),
                "NetcfgSubnetRangeOutsideVnet",
                f"Subnet '{rid.name}' is not valid because its IP address range is outside the IP address "
                f"range of virtual network '{vnet.id.name}'.",
            )
            for sibling in emu.children(vnet.id):
                if sibling.type == SUBNETS and sibling.id.key != rid.key:
                    for other in subnet_networks(sibling):
                        require(
                            not network.overlaps(other),
                            "NetcfgSubnetRangesOverlap",
                            f"Subnet '{rid.name}' is not valid because its IP address range overlaps "
                            "with that "
                            f"of an existing subnet '{sibling.id.name}' in virtual network '{vnet.id.name}'.",
                        )
        props.setdefault("privateEndpointNetworkPolicies", "Disabled")
        require(props["privateEndpointNetworkPolicies"] in ENDPOINT_POLICIES, "InvalidRequestFormat",
                f"privateEndpointNetworkPolicies must be one of {', '.join(ENDPOINT_POLICIES)}.")
        if props.get("networkSecurityGroup"):  # in the VNet's region (network-security-groups-overview.md)
            _referenced(emu, props["networkSecurityGroup"], rid, NSGS,
                        join="Microsoft.Network/networkSecurityGroups/join/action")
            nsg = emu.get(str(reference(props["networkSecurityGroup"])))
            require(nsg is not None and str(nsg.body.get("location", "")).lower()
                    == str(vnet.body.get("location", "")).lower(), "InvalidResourceReference",
                    f"Network security group {reference(props['networkSecurityGroup'])} must be in the "
                    f"region of virtual network {vnet.id.name}.")
        return stored

    @staticmethod
    def users(emu: Emulator, subnet: Resource) -> list[str]:
        """The ip configurations (of NICs) in a subnet."""
        found = []
        for nic in emu.find(NICS):
            for config in nic.properties.get("ipConfigurations", []):
                if str(reference(config.get("properties", {}).get("subnet")) or "").lower() == subnet.id.key:
                    found.append(f"{nic.id}/ipConfigurations/{config.get('name')}")
        return found

    @classmethod
    def require_unused(cls, emu: Emulator, subnet: Resource) -> None:
        users = cls.users(emu, subnet)
        if users:
            raise bad_request(
                "InUseSubnetCannotBeDeleted",
                f"Subnet {subnet.id.name} is in use by {users[0]} and cannot be deleted. In order to "
                "delete the subnet, delete all the resources within the subnet. See aka.ms/deletesubnet.",
            )

    def check_delete(self, emu: Emulator, resource: Resource) -> None:
        self.require_unused(emu, resource)

    def view(self, emu: Emulator, resource: Resource, query: dict[str, Any]) -> dict[str, Any]:
        body = super().view(emu, resource, query)
        body["type"] = SUBNETS
        users = self.users(emu, resource)
        body["properties"]["ipConfigurations"] = [{"id": u} for u in users]
        endpoints = [
            e
            for e in emu.find(PRIVATE_ENDPOINTS)
            if str(reference(e.properties.get("subnet")) or "").lower() == resource.id.key
        ]
        body["properties"]["privateEndpoints"] = [{"id": str(e.id)} for e in endpoints]
        body["properties"].setdefault("provisioningState", "Succeeded")
        return body


def subnet_networks(subnet: Resource) -> list[ipaddress.IPv4Network]:
    props = subnet.properties
    prefixes = props.get("addressPrefixes") or [props.get("addressPrefix")]
    return [ipaddress.IPv4Network(p) for p in prefixes if p]


class Peerings(ResourceKind):
    type_name = PEERINGS
    put_shape = Shape.ASYNC_OPERATION
    delete_shape = Shape.ASYNC_OPERATION
    located = False

    def validate(
        self, emu: Emulator, rid: ResourceId, body: dict[str, Any], existing: Resource | None
    ) -> dict[str, Any]:
        stored = super().validate(emu, rid, body, existing)
        _referenced(emu, stored["properties"].get("remoteVirtualNetwork"), rid, VNETS)
        stored["properties"].setdefault("allowVirtualNetworkAccess", True)
        return stored

    def view(self, emu: Emulator, resource: Resource, query: dict[str, Any]) -> dict[str, Any]:
        body = super().view(emu, resource, query)
        local = resource.id.parent
        remote = reference(resource.properties.get("remoteVirtualNetwork")) or ""
        connected = local is not None and _peering(emu, remote, local.key) is not None
        body["properties"]["peeringState"] = "Connected" if connected else "Initiated"
        return body


def _peering(emu: Emulator, from_vnet: str, to_vnet: str) -> Resource | None:
    for peering in emu.find(PEERINGS):
        parent = peering.id.parent
        remote = str(reference(peering.properties.get("remoteVirtualNetwork")) or "").lower()
        if (
            parent is not None
            and parent.key == from_vnet.lower()
            and remote == to_vnet.lower()
            and peering.properties.get("allowVirtualNetworkAccess", True)
        ):
            return peering
    return None


def connected(emu: Emulator, vnet_a: str, vnet_b: str) -> bool:
    """Traffic flows between two virtual networks: the same one, or peered in both directions."""
    if vnet_a.lower() == vnet_b.lower():
        return True
    return _peering(emu, vnet_a, vnet_b) is not None and _peering(emu, vnet_b, vnet_a) is not None


class NetworkInterfaces(ResourceKind):
    type_name = NICS
    put_shape = Shape.ASYNC_OPERATION
    delete_shape = Shape.ASYNC_OPERATION

    def validate(
        self, emu: Emulator, rid: ResourceId, body: dict[str, Any], existing: Resource | None
    ) -> dict[str, Any]:
        stored = super().validate(emu, rid, body, existing)
        configs = stored["properties"].get("ipConfigurations") or []
        require(
            bool(configs), "InvalidRequestFormat", f"Network interface {rid} must have an ip configuration."
        )
        for index, config in enumerate(configs):
            props = config.setdefault("properties", {})
            subnet = _referenced(emu, props.get("subnet"), rid, SUBNETS, join=JOIN_SUBNET,
                                 region=stored.get("location"))
            config.setdefault("name", f"ipconfig{index + 1}")
            config["id"] = f"{rid}/ipConfigurations/{config['name']}"
            props.setdefault("privateIPAllocationMethod", "Dynamic")
            props.setdefault("primary", index == 0)
            previous = _config_named(existing, config["name"])
            props["privateIPAddress"] = (
                props.get("privateIPAddress") or previous or allocate_ip(emu, subnet, rid)
            )
            props["privateIPAddressVersion"] = "IPv4"
            _join_groups(emu, props, rid, stored.get("location"))
        return stored

    def check_delete(self, emu: Emulator, resource: Resource) -> None:
        vm = resource.internal.get("virtual_machine")
        if vm:
            raise bad_request(
                "NicInUse",
                f"Network Interface {resource.id} is used by existing resource {vm}. In "
                "order to delete the network interface, it must be dissociated from the resource. "
                "To learn more, see aka.ms/deletenic.",
            )
        endpoint = resource.internal.get("private_endpoint")
        if endpoint:
            raise bad_request(
                "CannotDeleteNicAttachedToPrivateEndpoint",
                f"Network interface {resource.id} cannot be deleted because it is attached to "
                f"private endpoint {endpoint}.",
            )

    def view(self, emu: Emulator, resource: Resource, query: dict[str, Any]) -> dict[str, Any]:
        body = super().view(emu, resource, query)
        props = body["properties"]
        if resource.internal.get("virtual_machine"):
            props["virtualMachine"] = {"id": resource.internal["virtual_machine"]}
        if resource.internal.get("private_endpoint"):
            props["privateEndpoint"] = {"id": resource.internal["private_endpoint"]}
        props.setdefault(
            "macAddress", "00-0D-3A-" + "-".join(resource.id.key[-6:].upper()[i : i + 2] for i in (0, 2, 4))
        )
        return body


def _config_named(nic: Resource | None, name: str) -> str | None:
    for config in nic.properties.get("ipConfigurations", []) if nic else []:
        if config.get("name") == name:
            return str(config.get("properties", {}).get("privateIPAddress") or "") or None
    return None


def allocate_ip(emu: Emulator, subnet: Resource, owner: ResourceId) -> str:
    """The next free address of a subnet; Azure reserves the first four and the last one."""
    used = set()
    for nic in emu.find(NICS):
        if nic.id.key == owner.key:
            continue
        for config in nic.properties.get("ipConfigurations", []):
            used.add(config.get("properties", {}).get("privateIPAddress"))
    for network in subnet_networks(subnet):
        hosts = list(network)[4:-1]
        for address in hosts:
            if str(address) not in used:
                return str(address)
    raise bad_request("SubnetIsFull", f"Subnet {subnet.id.name} has no free IP address.")


def nic_address(nic: Resource) -> str:
    configs = nic.properties.get("ipConfigurations", [])
    return str(configs[0]["properties"]["privateIPAddress"]) if configs else ""


def vnet_of_subnet(subnet_id: str) -> str:
    rid = parse_path(subnet_id)
    return rid.parent.key if rid.parent else ""


class PrivateEndpoints(ResourceKind):
    type_name = PRIVATE_ENDPOINTS
    put_shape = Shape.ASYNC_OPERATION
    delete_shape = Shape.ASYNC_OPERATION

    def validate(
        self, emu: Emulator, rid: ResourceId, body: dict[str, Any], existing: Resource | None
    ) -> dict[str, Any]:
        stored = super().validate(emu, rid, body, existing)
        props = stored["properties"]
        _referenced(emu, props.get("subnet"), rid, SUBNETS, join=JOIN_SUBNET, region=stored.get("location"))
        _join_groups(emu, props, rid, stored.get("location"))
        if existing is not None:
            require(
                str(reference(props.get("subnet"))).lower()
                == str(reference(existing.properties.get("subnet"))).lower(),
                "CannotChangePrivateEndpointSubnet",
                "The subnet of a private endpoint cannot be changed.",
            )
        connections = props.get("privateLinkServiceConnections") or []
        require(
            bool(connections) or bool(props.get("manualPrivateLinkServiceConnections")),
            "InvalidRequestFormat",
            "A private endpoint needs a private link service connection.",
        )
        for connection in connections:
            cprops = connection.setdefault("properties", {})
            target = _referenced(
                emu, {"id": cprops.get("privateLinkServiceId")}, rid, StorageAccounts.type_name
            )
            # Auto-approval needs the approval action on the target (private-endpoint-overview.md);
            # Azure prints it without its provider prefix (MicrosoftDocs/azure-docs issue 96892).
            emu.authorization.authorize_linked(
                f"{target.type}/privateEndpointConnectionsApproval/action",
                str(target.id),
                shown_as="PrivateEndpointConnectionsApproval/action",
            )
            allowed = (
                {"file"}
                if target.body.get("kind") == "FileStorage"
                else {"blob", "file", "queue", "table", "web", "dfs"}
            )
            groups = cprops.get("groupIds") or []
            require(
                len(groups) == 1 and groups[0] in allowed,
                "PrivateEndpointBadRequest",
                "Call to Microsoft.Storage/storageAccounts failed. Error message: "
                f"Invalid group ids {groups}; "
                f"this account offers {sorted(allowed)}.",
            )
            connection["id"] = f"{rid}/privateLinkServiceConnections/{connection.get('name')}"
            cprops["privateLinkServiceConnectionState"] = {
                "status": "Approved",
                "description": "Auto-Approved",
                "actionsRequired": "None",
            }
        return stored

    def provision(self, emu: Emulator, resource: Resource, created: bool) -> None:
        nic_id = resource.internal.get("nic")
        if nic_id is None:
            nic_rid = ResourceId(
                resource.id.subscription,
                resource.id.group,
                NETWORK,
                ("networkInterfaces",),
                (f"{resource.id.name}.nic.{new_guid()}",),
            )
            subnet = emu.get(str(reference(resource.properties["subnet"])))
            assert subnet is not None
            config = {
                "name": "privateEndpointIpConfig",
                "id": f"{nic_rid}/ipConfigurations/privateEndpointIpConfig",
                "properties": {
                    "subnet": {"id": str(subnet.id)},
                    "privateIPAllocationMethod": "Dynamic",
                    "privateIPAddress": allocate_ip(emu, subnet, nic_rid),
                    "primary": True,
                },
            }
            nic = emu.put_internal(
                nic_rid,
                {
                    "location": resource.body["location"],
                    "properties": {"ipConfigurations": [config], "provisioningState": "Succeeded"},
                },
                internal={"private_endpoint": str(resource.id)},
            )
            resource.internal["nic"] = str(nic.id)

    def deleted(self, emu: Emulator, resource: Resource) -> None:
        nic = emu.get(resource.internal.get("nic", ""))
        if nic is not None:
            emu.remove(nic)

    def view(self, emu: Emulator, resource: Resource, query: dict[str, Any]) -> dict[str, Any]:
        body = super().view(emu, resource, query)
        nic = emu.get(resource.internal.get("nic", ""))
        props = body["properties"]
        props["networkInterfaces"] = [{"id": str(nic.id)}] if nic else []
        props["customDnsConfigs"] = (
            [{"fqdn": fqdn, "ipAddresses": [nic_address(nic)]} for fqdn in endpoint_fqdns(emu, resource)]
            if nic
            else []
        )
        return body


def endpoint_accounts(emu: Emulator, endpoint: Resource) -> list[Resource]:
    """The storage accounts an endpoint connects to with an approved `file` connection."""
    accounts = []
    for connection in endpoint.properties.get("privateLinkServiceConnections", []):
        props = connection.get("properties", {})
        state = (props.get("privateLinkServiceConnectionState") or {}).get("status")
        account = emu.get(str(props.get("privateLinkServiceId", "")))
        if account is not None and state == "Approved" and "file" in (props.get("groupIds") or []):
            accounts.append(account)
    return accounts


def endpoint_fqdns(emu: Emulator, endpoint: Resource) -> list[str]:
    return [nfs_host(account.id.name) for account in endpoint_accounts(emu, endpoint)]


class PrivateDnsZoneGroups(ResourceKind):
    type_name = ZONE_GROUPS
    put_shape = Shape.ASYNC_OPERATION
    delete_shape = Shape.ASYNC_OPERATION
    located = False

    def validate(
        self, emu: Emulator, rid: ResourceId, body: dict[str, Any], existing: Resource | None
    ) -> dict[str, Any]:
        stored = super().validate(emu, rid, body, existing)
        configs = stored["properties"].get("privateDnsZoneConfigs") or []
        require(
            bool(configs), "InvalidRequestFormat", "A private DNS zone group needs at least one zone config."
        )
        for config in configs:
            zone_id = config.get("properties", {}).get("privateDnsZoneId")
            _referenced(emu, {"id": zone_id}, rid, ZONES, join=f"{ZONES}/join/action")
        return stored

    def provision(self, emu: Emulator, resource: Resource, created: bool) -> None:
        self.deleted(emu, resource)
        endpoint = emu.get(resource.id.parent) if resource.id.parent else None
        nic = emu.get(endpoint.internal.get("nic", "")) if endpoint else None
        if endpoint is None or nic is None:
            return
        records = []
        for config in resource.properties["privateDnsZoneConfigs"]:
            zone = emu.get(config["properties"]["privateDnsZoneId"])
            if zone is None or zone.id.name.lower() != FILE_ZONE:
                continue
            for account in endpoint_accounts(emu, endpoint):
                record = zone.id.child("A", account.id.name)
                emu.put_internal(record, a_record(zone, account.id.name, nic_address(nic)))
                records.append(str(record))
        resource.internal["records"] = records

    def deleted(self, emu: Emulator, resource: Resource) -> None:
        for record in resource.internal.pop("records", []):
            found = emu.get(record)
            if found is not None:
                emu.remove(found)

    def view(self, emu: Emulator, resource: Resource, query: dict[str, Any]) -> dict[str, Any]:
        body = super().view(emu, resource, query)
        for config in body["properties"].get("privateDnsZoneConfigs", []):
            zone_id = config["properties"]["privateDnsZoneId"].lower()
            config["properties"]["recordSets"] = [
                {
                    "recordType": "A",
                    "recordSetName": r.id.name,
                    "fqdn": r.properties["fqdn"].rstrip("."),
                    "ttl": r.properties["ttl"],
                    "ipAddresses": [a["ipv4Address"] for a in r.properties["aRecords"]],
                    "provisioningState": "Succeeded",
                }
                for key in resource.internal.get("records", [])
                if key.lower().startswith(zone_id + "/")
                for r in [emu.get(key)]
                if r is not None
            ]
        return body


def a_record(zone: Resource, name: str, address: str) -> dict[str, Any]:
    return {
        "etag": new_guid(),
        "properties": {
            "ttl": 10,
            "fqdn": f"{name.lower()}.{zone.id.name}.",
            "isAutoRegistered": False,
            "aRecords": [{"ipv4Address": address}],
            "metadata": {"creator": "created by private endpoint"},
        },
    }


class PrivateDnsZones(ResourceKind):
    type_name = ZONES
    put_shape = Shape.ASYNC_202
    delete_shape = Shape.ASYNC_202

    def location_of(self, rid: ResourceId, body: dict[str, Any], existing: Resource | None) -> str:
        location = str(body.get("location") or "").lower()
        require(
            location == "global",
            "InvalidLocation" if location else "LocationRequired",
            f"The location '{location}' is not valid for a private DNS zone; it must be 'global'.",
        )
        return "global"

    def validate(
        self, emu: Emulator, rid: ResourceId, body: dict[str, Any], existing: Resource | None
    ) -> dict[str, Any]:
        labels = rid.name.split(".")
        require(
            len(labels) >= 2 and all(label and len(label) <= 63 for label in labels),
            "InvalidZoneName",
            f"The zone name '{rid.name}' is not a valid DNS name with at least two labels.",
        )
        return super().validate(emu, rid, body, existing)

    def check_delete(self, emu: Emulator, resource: Resource) -> None:
        links = [c for c in emu.children(resource.id) if c.type == ZONE_LINKS]
        if links:
            raise ArmError(
                409,
                "CannotDeleteResource",
                "Cannot delete resource while nested resources exist. Some existing nested resource IDs "
                f"include: '{ZONES}/{resource.id.name}/virtualNetworkLinks/{links[0].id.name}'. Please "
                "delete all nested resources before deleting this resource.",
            )

    def view(self, emu: Emulator, resource: Resource, query: dict[str, Any]) -> dict[str, Any]:
        body = super().view(emu, resource, query)
        children = emu.children(resource.id)
        props = body["properties"]
        props.update(
            {
                "maxNumberOfRecordSets": 25000,
                "numberOfRecordSets": 1 + sum(c.type == A_RECORDS for c in children),
                "maxNumberOfVirtualNetworkLinks": 1000,
                "numberOfVirtualNetworkLinks": sum(c.type == ZONE_LINKS for c in children),
                "maxNumberOfVirtualNetworkLinksWithRegistration": 100,
                "numberOfVirtualNetworkLinksWithRegistration": sum(
                    c.type == ZONE_LINKS and bool(c.properties.get("registrationEnabled")) for c in children
                ),
            }
        )
        body.setdefault("etag", new_guid())
        return body

    views: ClassVar[Views] = {
        "all": lambda emu, zone, query: {"value": record_sets(emu, zone)},
        "a": lambda emu, zone, query: {"value": record_sets(emu, zone)},
    }


def record_sets(emu: Emulator, zone: Resource) -> list[dict[str, Any]]:
    return [copy.deepcopy(c.body) for c in emu.children(zone.id) if c.type == A_RECORDS]


class VirtualNetworkLinks(ResourceKind):
    type_name = ZONE_LINKS
    put_shape = Shape.ASYNC_202
    delete_shape = Shape.ASYNC_202
    location_of = PrivateDnsZones.location_of

    def validate(
        self, emu: Emulator, rid: ResourceId, body: dict[str, Any], existing: Resource | None
    ) -> dict[str, Any]:
        stored = super().validate(emu, rid, body, existing)
        props = stored["properties"]
        vnet = _referenced(emu, props.get("virtualNetwork"), rid, VNETS, join=f"{VNETS}/join/action")
        props["registrationEnabled"] = bool(props.get("registrationEnabled", False))
        zone = rid.parent
        # One zone of a name per VNet: a link to another zone of the same name (another resource
        # group's, a hub's central zone) is refused (MicrosoftDocs SupportArticles,
        # azure/networking/dns/createorupdatevirtualnetworklinkfailed-error.md).
        for other in emu.find(ZONE_LINKS):
            other_zone = other.id.parent
            if (
                zone is not None
                and other_zone is not None
                and other_zone.key != zone.key
                and other_zone.name.lower() == zone.name.lower()
                and str(reference(other.properties.get("virtualNetwork"))).lower() == vnet.id.key
            ):
                raise bad_request(
                    "BadRequest",
                    "A virtual network cannot be linked to multiple zones with overlapping namespaces. "
                    f"You tried to link virtual network with '{zone.name}' and '{other_zone.name}' zones.",
                )
        for sibling in emu.children(zone) if zone else []:
            if (
                sibling.type == ZONE_LINKS
                and sibling.id.key != rid.key
                and str(reference(sibling.properties.get("virtualNetwork"))).lower() == vnet.id.key
            ):
                raise ArmError(
                    409,
                    "Conflict",
                    f"A virtual network cannot be linked to the same zone more than "
                    f"once: {vnet.id.name} is already linked to {zone.name if zone else ''} by "
                    f"{sibling.id.name}.",
                )
        return stored

    def view(self, emu: Emulator, resource: Resource, query: dict[str, Any]) -> dict[str, Any]:
        body = super().view(emu, resource, query)
        body["properties"]["virtualNetworkLinkState"] = "Completed"
        return body


class ARecords(ResourceKind):
    type_name = A_RECORDS
    located = False

    def validate(
        self, emu: Emulator, rid: ResourceId, body: dict[str, Any], existing: Resource | None
    ) -> dict[str, Any]:
        stored = super().validate(emu, rid, body, existing)
        zone = emu.get(rid.parent) if rid.parent else None
        assert zone is not None
        props = stored["properties"]
        for record in props.get("aRecords") or []:
            try:
                ipaddress.IPv4Address(str(record.get("ipv4Address")))
            except ValueError:
                raise bad_request(
                    "BadRequest", f"Invalid IPv4 address {record.get('ipv4Address')}."
                ) from None
        props.setdefault("ttl", 3600)
        props["fqdn"] = f"{rid.name.lower()}.{zone.id.name}."
        props.setdefault("isAutoRegistered", False)
        return stored


def nfs_reachability(emu: Emulator, vnet: str, address: str = "") -> dict[str, str]:
    """How each storage account's NFS name behaves from a VM in `vnet` (an id): "ok" when the
    `privatelink.file.core.windows.net` zone linked to that VNet resolves it to a private endpoint
    in that VNet or a peered one; "tls" when the account requires secure transfer: only a TLS
    (aznfs) mount is let in (encryption-in-transit-for-nfs-shares.md); "unreachable" otherwise
    (the public name resolves, but NFS is never served publicly), and when the endpoint's subnet's
    network security group drops TCP 2049 from the VM's `address` (endpoint_admits)."""
    zones = _linked_file_zones(emu, vnet)
    endpoints = _reachable_endpoints(emu, vnet)
    hosts: dict[str, str] = {}
    for account in emu.find(StorageAccounts.type_name):
        resolved = {
            address for zone in zones for address in _addresses(emu, zone.child("A", account.id.name))
        }
        serving = [endpoints[a] for a in resolved
                   if a in endpoints and account in endpoint_accounts(emu, endpoints[a])]
        # A network security group that drops the VM's packets looks like no server (a timeout).
        served = any(not address or endpoint_admits(emu, e, address) for e in serving)
        state = "ok" if served else "unreachable"
        if served and account.properties.get("supportsHttpsTrafficOnly", True):
            state = "tls"
        hosts[nfs_host(account.id.name)] = state
    return hosts


def _linked_file_zones(emu: Emulator, vnet: str) -> list[ResourceId]:
    answering = resolving_vnet(emu, vnet)
    return [
        link.id.parent
        for link in emu.find(ZONE_LINKS)
        if answering is not None
        and str(reference(link.properties.get("virtualNetwork")) or "").lower() == answering.lower()
        and link.id.parent is not None
        and link.id.parent.name.lower() == FILE_ZONE
    ]


def resolving_vnet(emu: Emulator, vnet: str) -> str | None:
    """The VNet whose private DNS zone links answer a VM's queries in `vnet` (an id).

    Azure-provided DNS (168.63.129.16) answers from the zones linked to the VM's own VNet. A VNet
    whose DHCP options name DNS servers sends queries there instead: a server that is an address
    of a VNet reachable from this one (a DNS Private Resolver inbound endpoint or a forwarder in a
    hub) answers from that VNet's links; any other server is outside Azure's knowledge, so
    nothing private resolves (azure-docs articles/private-link/private-endpoint-dns-integration.md,
    "Virtual network and on-premises workloads using Azure DNS Private Resolver";
    articles/virtual-network/virtual-networks-name-resolution-for-vms-and-role-instances.md)."""
    found = emu.get(vnet)
    servers = ((found.properties.get("dhcpOptions") or {}).get("dnsServers") or []) if found else []
    if not servers:
        return vnet
    for server in servers:
        try:
            address = ipaddress.IPv4Address(str(server))
        except ValueError:
            continue
        for candidate in emu.find(VNETS):
            spaces = (candidate.properties.get("addressSpace") or {}).get("addressPrefixes") or []
            if any(address in ipaddress.IPv4Network(space) for space in spaces) and connected(
                emu, candidate.id.key, vnet
            ):
                return str(candidate.id)
    return None


def _reachable_endpoints(emu: Emulator, vnet: str) -> dict[str, Resource]:
    """Private endpoints whose network traffic from `vnet` reaches, by private IP address."""
    found = {}
    for endpoint in emu.find(PRIVATE_ENDPOINTS):
        nic = emu.get(endpoint.internal.get("nic", ""))
        subnet = str(reference(endpoint.properties.get("subnet")))
        if nic is not None and connected(emu, vnet_of_subnet(subnet), vnet):
            found[nic_address(nic)] = endpoint
    return found


def _addresses(emu: Emulator, record_id: ResourceId) -> list[str]:
    record = emu.get(record_id)
    return [
        str(entry.get("ipv4Address")) for entry in (record.properties.get("aRecords", []) if record else [])
    ]


# -- network security groups ----------------------------------------------------------------------
# azure-docs articles/virtual-network/network-security-groups-overview.md: rules are evaluated by
# priority (100-4096, lowest first; the first match decides); one priority per direction; every
# group ends with the default rules below. A private endpoint's traffic obeys its subnet's group
# only when the subnet's privateEndpointNetworkPolicies enables it (articles/private-link/
# disable-private-endpoint-network-policy.md): "Disabled" (Azure's default) skips the group.
NSGS = f"{NETWORK}/networkSecurityGroups"
SECURITY_RULES = f"{NSGS}/securityRules"
ENDPOINT_POLICIES = ("Disabled", "Enabled", "NetworkSecurityGroupEnabled", "RouteTableEnabled")
SERVICE_TAGS = ("*", "Any", "VirtualNetwork", "AzureLoadBalancer", "Internet")
DEFAULT_INBOUND = (
    ("AllowVnetInBound", 65000, "VirtualNetwork", "VirtualNetwork", "Allow"),
    ("AllowAzureLoadBalancerInBound", 65001, "AzureLoadBalancer", "*", "Allow"),
    ("DenyAllInBound", 65500, "*", "*", "Deny"),
)


def _check_rule(rid: ResourceId, props: dict[str, Any]) -> None:
    priority = props.get("priority")
    require(isinstance(priority, int) and 100 <= priority <= 4096, "SecurityRuleInvalidPriority",
            f"Security rule {rid.name} has invalid Priority. Value provided: {priority}. "
            "Allowed range 100-4096.")
    require(props.get("access") in ("Allow", "Deny"), "SecurityRuleInvalidAccess",
            f"Security rule {rid.name} has invalid Access. Allowed values: Allow, Deny.")
    require(props.get("direction") in ("Inbound", "Outbound"), "SecurityRuleInvalidDirection",
            f"Security rule {rid.name} has invalid Direction. Allowed values: Inbound, Outbound.")
    require(str(props.get("protocol", "")).lower() in ("tcp", "udp", "icmp", "esp", "ah", "*"),
            "SecurityRuleInvalidProtocol", f"Security rule {rid.name} has invalid Protocol.")
    for single, many in (("sourceAddressPrefix", "sourceAddressPrefixes"),
                         ("destinationAddressPrefix", "destinationAddressPrefixes"),
                         ("destinationPortRange", "destinationPortRanges")):
        require(not (props.get(single) and props.get(many)),
                "SecurityRuleParameterContainsSingleAndMultipleValues",
                f"Security rule {rid.name} has both {single} and {many}.")
        for value in ([props[single]] if props.get(single) else props.get(many) or []):
            if "Prefix" in single and value not in SERVICE_TAGS:
                _network(str(value) if "/" in str(value) else f"{value}/32", str(rid))


def _group_of(subnet: Resource) -> str:
    return str(reference(subnet.properties.get("networkSecurityGroup")) or "").lower()


def _rules(emu: Emulator, nsg: Resource) -> list[dict[str, Any]]:
    """The group's rules: inline in its body and PUT as children, each with name and properties."""
    inline = [{"name": r.get("name"), "properties": r.get("properties", {})}
              for r in nsg.properties.get("securityRules") or []]
    children = [{"name": c.id.name, "properties": c.properties} for c in emu.children(nsg.id)
                if c.type == SECURITY_RULES]
    return inline + children


def _same_priority(rules: list[dict[str, Any]], name: str, props: dict[str, Any]) -> None:
    for other in rules:
        oprops = other["properties"]
        if other["name"] != name and (oprops.get("priority"), oprops.get("direction")) == (
                props.get("priority"), props.get("direction")):
            raise bad_request("SecurityRuleConflict",
                              f"Security rule {name} conflicts with rule {other['name']}. Rules cannot have "
                              "the same Priority and Direction. To learn more, see aka.ms/nsgrules.")


ASGS = f"{NETWORK}/applicationSecurityGroups"
JOIN_ASG = "Microsoft.Network/applicationSecurityGroups/joinIpConfiguration/action"


class ApplicationSecurityGroups(ResourceKind):
    """A named set of NICs (and private endpoints) that security rules name instead of addresses
    (azure-docs articles/virtual-network/application-security-groups.md). A NIC's ip
    configuration or an endpoint joins one with `applicationSecurityGroups`, which takes
    `applicationSecurityGroups/joinIpConfiguration/action` on the group."""

    type_name = ASGS
    put_shape = Shape.ASYNC_OPERATION
    delete_shape = Shape.ASYNC_OPERATION


def _join_groups(emu: Emulator, props: dict[str, Any], by: ResourceId, region: str | None) -> None:
    """The application security groups an ip configuration (or endpoint) joins: each must exist
    in the same region, and the caller must be allowed to join it."""
    for group in props.get("applicationSecurityGroups") or []:
        found = _referenced(emu, group, by, ASGS, join=JOIN_ASG)
        if region and str(found.body.get("location", "")).lower() != str(region).lower():
            raise _not_found(str(found.id), by)


def _members(emu: Emulator) -> list[tuple[str, str]]:
    """(group id, address) of every NIC ip configuration and private endpoint in a group."""
    found = []
    for nic in emu.find(NICS):
        for config in nic.properties.get("ipConfigurations", []):
            cprops = config.get("properties", {})
            found += [(str(reference(g)).lower(), str(cprops.get("privateIPAddress", "")))
                      for g in cprops.get("applicationSecurityGroups") or []]
    for endpoint in emu.find(PRIVATE_ENDPOINTS):
        endpoint_nic = emu.get(endpoint.internal.get("nic", ""))
        if endpoint_nic is not None:
            found += [(str(reference(g)).lower(), nic_address(endpoint_nic))
                      for g in endpoint.properties.get("applicationSecurityGroups") or []]
    return found


def _check_rule_groups(emu: Emulator, rid: ResourceId, props: dict[str, Any]) -> None:
    """A rule's application security groups must exist, and their members be in one VNet ("All
    ASGs on the Security Rule must be from the same virtual network": the code Azure answers,
    Azure/azure-sdk-for-java issue 34158; application-security-groups.md)."""
    named = [_referenced(emu, g, rid, ASGS) for side in ("source", "destination")
             for g in props.get(f"{side}ApplicationSecurityGroups") or []]
    keys = {g.id.key for g in named}
    vnets = set()
    for nic in emu.find(NICS):
        for config in nic.properties.get("ipConfigurations", []):
            cprops = config.get("properties", {})
            if keys & {str(reference(g)).lower() for g in cprops.get("applicationSecurityGroups") or []}:
                vnets.add(vnet_of_subnet(str(reference(cprops.get("subnet")))).lower())
    if len(vnets) > 1:
        raise bad_request("AllApplicationSecurityGroupsInSecurityRuleMustBeFromSameVnet",
                          f"Security Rule {rid} has Application Security Groups (ASGs) from multiple "
                          f"virtual networks ({', '.join(sorted(vnets))}). All ASGs on the Security Rule "
                          "must be from the same virtual network.")


class NetworkSecurityGroups(ResourceKind):
    type_name = NSGS
    put_shape = Shape.ASYNC_OPERATION
    delete_shape = Shape.ASYNC_OPERATION

    def validate(
        self, emu: Emulator, rid: ResourceId, body: dict[str, Any], existing: Resource | None
    ) -> dict[str, Any]:
        stored = super().validate(emu, rid, body, existing)
        rules = stored["properties"].setdefault("securityRules", [])
        for rule in rules:
            _check_rule(rid.child("securityRules", str(rule.get("name"))), rule.setdefault("properties", {}))
            _check_rule_groups(emu, rid.child("securityRules", str(rule.get("name"))), rule["properties"])
            _same_priority(rules, str(rule.get("name")), rule["properties"])
        return stored

    def check_delete(self, emu: Emulator, resource: Resource) -> None:
        for subnet in emu.find(SUBNETS):
            if _group_of(subnet) == resource.id.key:
                raise bad_request("InUseNetworkSecurityGroupCannotBeDeleted",
                                  f"Network security group {resource.id} cannot be deleted because it is "
                                  f"in use by the following resources: {subnet.id}.")

    def view(self, emu: Emulator, resource: Resource, query: dict[str, Any]) -> dict[str, Any]:
        body = super().view(emu, resource, query)
        body["properties"]["securityRules"] = [
            {"id": f"{resource.id}/securityRules/{r['name']}", "name": r["name"],
             "properties": r["properties"]} for r in _rules(emu, resource)]
        body["properties"]["defaultSecurityRules"] = [
            {"id": f"{resource.id}/defaultSecurityRules/{name}", "name": name,
             "properties": {"priority": priority, "sourceAddressPrefix": source,
                            "destinationAddressPrefix": dest, "access": access, "direction": "Inbound",
                            "protocol": "*",
                            "sourcePortRange": "*", "destinationPortRange": "*"}}
            for name, priority, source, dest, access in DEFAULT_INBOUND]
        body["properties"]["subnets"] = [
            {"id": str(s.id)} for s in emu.find(SUBNETS) if _group_of(s) == resource.id.key]
        return body


class SecurityRules(ResourceKind):
    type_name = SECURITY_RULES
    put_shape = Shape.ASYNC_OPERATION
    delete_shape = Shape.ASYNC_OPERATION
    located = False

    def validate(
        self, emu: Emulator, rid: ResourceId, body: dict[str, Any], existing: Resource | None
    ) -> dict[str, Any]:
        stored = super().validate(emu, rid, body, existing)
        _check_rule(rid, stored["properties"])
        _check_rule_groups(emu, rid, stored["properties"])
        nsg = emu.get(rid.parent) if rid.parent else None
        assert nsg is not None
        _same_priority(_rules(emu, nsg), rid.name, stored["properties"])
        return stored


def endpoint_admits(emu: Emulator, endpoint: Resource, address: str, port: int = 2049) -> bool:
    """Whether TCP traffic from `address` to the endpoint's port gets in: its subnet's group
    decides when the subnet's privateEndpointNetworkPolicies let it; else everything routed in."""
    subnet = emu.get(str(reference(endpoint.properties.get("subnet"))))
    nic = emu.get(endpoint.internal.get("nic", ""))
    if subnet is None or nic is None:
        return False
    nsg = emu.get(str(reference(subnet.properties.get("networkSecurityGroup")) or ""))
    if nsg is None or subnet.properties.get("privateEndpointNetworkPolicies") not in (
            "Enabled", "NetworkSecurityGroupEnabled"):
        return True
    vnet = vnet_of_subnet(str(subnet.id))
    target = nic_address(nic)
    rules = [r["properties"] for r in _rules(emu, nsg) if r["properties"].get("direction") == "Inbound"]
    rules += [{"priority": p, "sourceAddressPrefix": s, "destinationAddressPrefix": d, "access": a,
               "protocol": "*", "destinationPortRange": "*"} for _, p, s, d, a in DEFAULT_INBOUND]
    for rule in sorted(rules, key=lambda r: int(r.get("priority", 0))):
        if (str(rule.get("protocol", "*")).lower() in ("tcp", "*")
                and _matches(emu, vnet, address, rule, "source")
                and _matches(emu, vnet, target, rule, "destination")
                and _port_in(rule, port)):
            return bool(rule.get("access") == "Allow")
    return False


def _matches(emu: Emulator, vnet: str, address: str, rule: dict[str, Any], side: str) -> bool:
    """An address against a rule's prefixes, or its application security groups: a group matches
    the addresses of the NICs and private endpoints that joined it."""
    groups = rule.get(f"{side}ApplicationSecurityGroups")
    if groups:
        wanted = {str(reference(g)).lower() for g in groups}
        return any(member_address == address and group in wanted for group, member_address in _members(emu))
    single = rule.get(f"{side}AddressPrefix")
    for prefix in [single] if single else rule.get(f"{side}AddressPrefixes") or []:
        if prefix in ("*", "Any"):
            return True
        if prefix == "VirtualNetwork":  # the VNet's space and its peers' (service tags overview)
            if any(connected(emu, vnet, str(v.id)) and any(
                    ipaddress.IPv4Address(address) in ipaddress.IPv4Network(space)
                    for space in (v.properties.get("addressSpace") or {}).get("addressPrefixes") or [])
                   for v in emu.find(VNETS)):
                return True
        elif prefix not in ("AzureLoadBalancer", "Internet") and ipaddress.IPv4Address(address) in \
                ipaddress.IPv4Network(prefix if "/" in prefix else f"{prefix}/32", strict=False):
            return True
    return False


def _port_in(rule: dict[str, Any], port: int) -> bool:
    single = rule.get("destinationPortRange")
    for text in [single] if single else rule.get("destinationPortRanges") or []:
        low, _, high = str(text).partition("-")
        if text == "*" or int(low) <= port <= int(high or low):
            return True
    return False
