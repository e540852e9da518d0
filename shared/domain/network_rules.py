"""Who may reach a storage's private endpoint. Azure Files NFS authenticates no one: whoever
reaches the endpoint on TCP 2049 can mount the share as any UID. So the endpoint's subnet gets a
network security group that the endpoint obeys (privateEndpointNetworkPolicies Enabled), with one
allow rule per storage listing the private addresses of the VMs attached to it, and below them a
rule that drops everything else bound for the subnet (Azure's own AllowVnetInBound would let any
peered VNet in). Only subnets the service made are changed; for a customer's subnet the customer
adds the same (docs/storage.md), or lets the service guard it on create (`guardSubnet`: a
subnet that holds only private endpoints and no group of its own)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

NSG_NAME = "azlin-endpoints-nsg"
DENY_RULE = "azlin-deny-endpoints"
DENY_PRIORITY = 4096  # the last a rule may have (network-security-groups-overview.md)
ALLOW_PRIORITIES = range(100, 4000)
NFS_PORT = "2049"  # NFS 4.1, plain or through aznfs's TLS tunnel


@dataclass(frozen=True)
class SecurityRule:
    """One inbound rule of the group, as far as the service reads and writes them."""

    name: str
    priority: int
    access: str  # Allow | Deny
    sources: tuple[str, ...]  # addresses or prefixes; ("*",) for any
    destination: str  # an address, a prefix or "*"
    port: str  # "2049", "*"


@dataclass(frozen=True)
class EndpointPlace:
    """Where a storage's private endpoint is, and whether the service may guard its subnet."""

    subnet_id: str
    address: str
    managed: bool  # the subnet's VNet is the service's own
    nsg_id: str | None = None
    policies: str = "Disabled"  # privateEndpointNetworkPolicies

    @property
    def guarded(self) -> bool:
        return self.nsg_id is not None and self.policies in ("Enabled", "NetworkSecurityGroupEnabled")

    @property
    def ours(self) -> bool:
        """The service keeps the rules here: its own subnet, or a customer's it was let guard."""
        return self.managed or is_service_group(self.nsg_id)


def is_service_group(nsg_id: str | None) -> bool:
    return bool(nsg_id) and str(nsg_id).rsplit("/", 1)[-1].lower() == NSG_NAME


@dataclass(frozen=True)
class SubnetFacts:
    """What decides whether the service may guard a customer's subnet (`guardSubnet` on create)."""

    subnet_id: str
    nsg_id: str | None
    ip_configurations: int  # every NIC address in it
    private_endpoints: int

    @property
    def only_endpoints(self) -> bool:
        return self.ip_configurations <= self.private_endpoints  # one address per file endpoint


def guard_refusal(facts: SubnetFacts) -> str | None:
    """Why the service may not put its group on this subnet, if it may not. Its deny rule drops
    every inbound packet to the subnet that no allow rule lets in: on a subnet that holds
    anything but private endpoints it would cut those off, and a group the customer put there
    is theirs to change, not the service's."""
    name = facts.subnet_id.rsplit("/", 1)[-1]
    if facts.nsg_id and not is_service_group(facts.nsg_id):
        return (f"subnet {name} already has network security group {facts.nsg_id.rsplit('/', 1)[-1]}, "
                "which the service does not change")
    if not facts.only_endpoints:
        return (f"subnet {name} holds {facts.ip_configurations - facts.private_endpoints} address(es) "
                "besides private endpoints, which the service's deny rule would cut off")
    return None


def allow_rule_name(storage: str) -> str:
    return f"azlin-nfs-{storage}"


def deny_rule() -> SecurityRule:
    """Everything bound for the group's subnet (the group is on that subnet alone)."""
    return SecurityRule(DENY_RULE, DENY_PRIORITY, "Deny", ("*",), "*", "*")


def allow_rule(storage: str, endpoint_address: str, sources: Iterable[str],
               rules: Iterable[SecurityRule]) -> SecurityRule:
    """The storage's allow rule for `sources`, keeping its priority, else the first one free."""
    existing = {r.name: r for r in rules}
    name = allow_rule_name(storage)
    taken = {r.priority for r in existing.values() if r.name != name}
    priority = (existing[name].priority if name in existing
                else next(p for p in ALLOW_PRIORITIES if p not in taken))
    return SecurityRule(name, priority, "Allow", tuple(sorted(set(sources))), endpoint_address, NFS_PORT)


def foreign_rules(rules: Iterable[SecurityRule]) -> list[SecurityRule]:
    """Rules in the service's group that the service did not write: another path to the data."""
    return [r for r in rules if not r.name.startswith("azlin-")]
