"""Which `privatelink.file.core.windows.net` zone answers for a VNet, and what makes a storage's
name resolve there. Pure: the adapters read the zones and VNets, these functions decide.

Azure's rules (azure-facts.md, corrections at the top):
- a VNet is linked to at most one zone of a name: a second `privatelink.file.core.windows.net`
  link is refused, so the zone already linked to a VNet (a hub's central zone, another resource
  group's) is the one to use, never a new one;
- a linked zone answers for its whole namespace: a storage whose A record is not in the zone that
  answers for a VM's VNet does not resolve there, so the record goes into that zone;
- a VNet with DNS servers of its own (a hub's resolver or forwarder) resolves through them, which
  Resource Manager cannot see: the zone they answer from must be named (`PRIVATE_DNS_ZONE_ID`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from .errors import ErrorCode, ValidationError

FILE_ZONE = "privatelink.file.core.windows.net"
# What the service's identity needs on a zone it did not create (Private DNS Zone Contributor
# holds them all): the endpoint's DNS zone group writes its record through the first, the VM
# networks' links and records need the others.
ZONE_GROUP_ACTION = "Microsoft.Network/privateDnsZones/join/action"
LINK_ACTION = "Microsoft.Network/privateDnsZones/virtualNetworkLinks/write"
RECORD_ACTION = "Microsoft.Network/privateDnsZones/A/write"
# A link is a long-running operation whose monitor lives in the zone's resource group and is
# authorized there (azure-docs async-operations.md): a role on the zone alone cannot poll it.
LINK_MONITOR_ACTION = "Microsoft.Network/privateDnsOperationStatuses/read"
ZONE_ROLE = "Private DNS Zone Contributor"


@dataclass(frozen=True)
class ZoneLink:
    name: str
    vnet_id: str
    managed: bool  # created by this service (its managed-by tag)


@dataclass(frozen=True)
class DnsZone:
    id: str
    managed: bool
    links: tuple[ZoneLink, ...] = ()

    def linked_to(self, vnet_id: str) -> bool:
        return any(same_id(link.vnet_id, vnet_id) for link in self.links)


@dataclass(frozen=True)
class DnsRecord:
    name: str
    addresses: tuple[str, ...]
    managed: bool  # written by this service (its managed-by metadata), not by an endpoint


@dataclass(frozen=True)
class EndpointDns:
    """Where a private endpoint's DNS zone group publishes its record, and the address."""

    zone_id: str
    address: str


@dataclass(frozen=True)
class VnetDns:
    id: str
    dns_servers: tuple[str, ...] = ()


@dataclass(frozen=True)
class ZonePlan:
    """The zone that answers for a VNet: `zone_id` None means no zone answers and none is
    configured (the service's own zone will); `link`: the VNet must be linked to it; `create`: the
    zone does not exist yet."""

    zone_id: str | None
    link: bool
    create: bool = False


def same_id(a: str, b: str) -> bool:
    return a.rstrip("/").lower() == b.rstrip("/").lower()


def zone_for(vnet: VnetDns, zones: Sequence[DnsZone], configured: str | None) -> ZonePlan:
    """The zone that answers (or will) for `vnet`: the one already linked to it wherever it is,
    else the configured central zone, else the service's own; linked only when nothing is."""
    for zone in zones:
        if zone.linked_to(vnet.id):
            return ZonePlan(zone.id, link=False)
    if vnet.dns_servers:
        if configured:
            return ZonePlan(configured, link=False)  # the customer's DNS answers from it
        raise ValidationError(
            f"VNet {vnet.id.rsplit('/', 1)[-1]} resolves names through its own DNS servers, which "
            f"Resource Manager cannot see: this service does not know which {FILE_ZONE} zone they "
            "answer from.",
            causes=[f"DNS servers: {', '.join(vnet.dns_servers)}", f"VNet: {vnet.id}"],
            try_hint=f"set PRIVATE_DNS_ZONE_ID to the id of the {FILE_ZONE} zone those servers "
            "resolve (usually the hub's central zone), or link that zone to the VNet",
            code=ErrorCode.DNS_ZONE_UNKNOWN,
        )
    if configured:
        return ZonePlan(configured, link=True)
    return ZonePlan(None, link=True)


def link_name(vnet_id: str) -> str:
    """A link's name: the VNet's name and a short digest of its id (two VNets of one name in
    different groups link the same zone under different names)."""
    digest = hashlib.sha256(vnet_id.lower().encode()).hexdigest()[:8]
    return f"azlin-{vnet_id.rstrip('/').rsplit('/', 1)[-1]}"[:71] + f"-{digest}"


def zone_group(zone_id: str) -> str:
    """The name of a zone's resource group."""
    parts = zone_id.split("/")
    lowered = [p.lower() for p in parts]
    return parts[lowered.index("resourcegroups") + 1]


def zone_group_scope(zone_id: str) -> str:
    """`/subscriptions/{id}/resourceGroups/{group}` of a zone id."""
    return "/".join(zone_id.split("/")[:5])


def zone_refused(zone_id: str, missing: Sequence[str], record: str | None) -> ValidationError:
    """`missing`: the actions (with where) the identity lacks."""
    """The service may not write a zone it must use: what to grant, or what to add by hand."""
    causes = [f"zone: {zone_id}", f"missing: {', '.join(missing)}"]
    if record:
        causes.append(f"the record to add by hand instead: A {record} -> the private endpoint's address")
    return ValidationError(
        f"The service's identity may not write the {FILE_ZONE} zone this storage's name must be "
        "published in.",
        causes=causes,
        try_hint=f"grant the service's identity {ZONE_ROLE} on that zone's resource group, then submit "
        "the request again",
        code=ErrorCode.DNS_ZONE_NOT_WRITABLE,
    )
