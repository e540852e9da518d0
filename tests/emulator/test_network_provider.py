"""Microsoft.Network and private DNS through the real azure-mgmt-network and -privatedns clients:
201 + Azure-AsyncOperation writes, private DNS's 202 + both headers, references, in-use rules."""

from __future__ import annotations

import pytest
from azure.core.exceptions import HttpResponseError, ResourceExistsError
from azure.mgmt.network.models import (
    AddressSpace,
    ApplicationSecurityGroup,
    DhcpOptions,
    NetworkInterface,
    NetworkInterfaceIPConfiguration,
    NetworkSecurityGroup,
    PrivateDnsZoneConfig,
    PrivateDnsZoneGroup,
    PrivateEndpoint,
    PrivateLinkServiceConnection,
    SecurityRule,
    Subnet,
    VirtualNetwork,
    VirtualNetworkPeering,
)
from azure.mgmt.privatedns.models import PrivateZone, SubResource, VirtualNetworkLink

from local.emulator.network import nfs_reachability
from tests.conftest import managed_group
from tests.emulator.conftest import REGION, Azure
from tests.emulator.test_storage_provider import nfs_account

ZONE = "privatelink.file.core.windows.net"


def vnet(azure: Azure, name: str, prefix: str = "10.0.0.0/16", subnet: str = "10.0.0.0/24") -> VirtualNetwork:
    return azure.clients.network.virtual_networks.begin_create_or_update(
        azure.group,
        name,
        VirtualNetwork(
            location=REGION,
            address_space=AddressSpace(address_prefixes=[prefix]),
            subnets=[Subnet(name="default", address_prefix=subnet)],
        ),
    ).result()


def nic(azure: Azure, name: str, subnet_id: str) -> NetworkInterface:
    return azure.clients.network.network_interfaces.begin_create_or_update(
        azure.group,
        name,
        NetworkInterface(
            location=REGION,
            ip_configurations=[
                NetworkInterfaceIPConfiguration(name="ipconfig1", subnet=Subnet(id=subnet_id))
            ],
        ),
    ).result()


def test_vnet_with_subnets_is_201_with_azure_async_operation(azure: Azure) -> None:
    azure.emulator.config.polls_before_done = 2
    network = vnet(azure, "vnet1")
    assert network.provisioning_state == "Succeeded"
    assert [(s.name, s.address_prefix) for s in network.subnets] == [("default", "10.0.0.0/24")]
    put = [e for e in azure.emulator.requests.snapshot() if e.kind == "PUT Microsoft.Network/virtualNetworks"]
    polls = [e for e in azure.emulator.requests.snapshot() if e.kind == "GET operation"]
    assert [e.status for e in put] == [201]
    assert len(polls) == 3 and all(
        "/providers/Microsoft.Network/locations/eastus/operations/" in e.path for e in polls
    )

    added = azure.clients.network.subnets.begin_create_or_update(
        azure.group, "vnet1", "endpoints", Subnet(address_prefix="10.0.1.0/24")
    ).result()
    assert added.address_prefix == "10.0.1.0/24"
    assert sorted(s.name for s in azure.clients.network.subnets.list(azure.group, "vnet1")) == [
        "default",
        "endpoints",
    ]


@pytest.mark.parametrize(
    ("prefix", "code"),
    [
        ("10.0.0.128/25", "NetcfgSubnetRangesOverlap"),
        ("10.9.0.0/24", "NetcfgSubnetRangeOutsideVnet"),
        ("10.0.5.1/24", "InvalidAddressPrefixFormat"),
    ],
)
def test_bad_subnets_are_refused(azure: Azure, prefix: str, code: str) -> None:
    vnet(azure, "vnet1")
    with pytest.raises(HttpResponseError) as refused:
        azure.clients.network.subnets.begin_create_or_update(
            azure.group, "vnet1", "bad", Subnet(address_prefix=prefix)
        ).result()
    assert refused.value.error.code == code


def test_nics_get_addresses_from_their_subnet_and_hold_it_in_use(azure: Azure) -> None:
    subnet_id = vnet(azure, "vnet1").subnets[0].id
    first, second = nic(azure, "n1", subnet_id), nic(azure, "n2", subnet_id)
    assert first.ip_configurations[0].private_ip_address == "10.0.0.4"  # Azure reserves .0 to .3
    assert second.ip_configurations[0].private_ip_address == "10.0.0.5"

    with pytest.raises(HttpResponseError) as in_use:
        azure.clients.network.subnets.begin_delete(azure.group, "vnet1", "default").result()
    assert in_use.value.error.code == "InUseSubnetCannotBeDeleted"
    with pytest.raises(HttpResponseError) as missing:
        nic(azure, "n3", subnet_id.replace("/default", "/absent"))
    assert missing.value.error.code == "InvalidResourceReference"


def test_private_endpoint_and_dns_zone_group_publish_the_account_record(azure: Azure) -> None:
    account = azure.clients.storage.storage_accounts.begin_create(
        azure.group, azure.unique("st"), nfs_account()
    ).result()
    network = vnet(azure, "vnet1")
    endpoint = azure.clients.network.private_endpoints.begin_create_or_update(
        azure.group,
        "pe1",
        PrivateEndpoint(
            location=REGION,
            subnet=Subnet(id=network.subnets[0].id),
            private_link_service_connections=[
                PrivateLinkServiceConnection(
                    name="file", private_link_service_id=account.id, group_ids=["file"]
                )
            ],
        ),
    ).result()
    assert endpoint.provisioning_state == "Succeeded"
    state = endpoint.private_link_service_connections[0].private_link_service_connection_state
    assert state.status == "Approved"
    assert endpoint.custom_dns_configs[0].fqdn == f"{account.name}.file.core.windows.net"
    address = endpoint.custom_dns_configs[0].ip_addresses[0]
    assert endpoint.network_interfaces[0].id.split("/")[-1].startswith("pe1.nic.")

    zone = azure.clients.private_dns.private_zones.begin_create_or_update(
        azure.group, ZONE, PrivateZone(location="global")
    ).result()
    group = azure.clients.network.private_dns_zone_groups.begin_create_or_update(
        azure.group,
        "pe1",
        "default",
        PrivateDnsZoneGroup(
            private_dns_zone_configs=[PrivateDnsZoneConfig(name="file", private_dns_zone_id=zone.id)]
        ),
    ).result()
    record_sets = group.private_dns_zone_configs[0].record_sets
    assert [(r.record_set_name, r.ip_addresses) for r in record_sets] == [(account.name, [address])]
    records = list(azure.clients.private_dns.record_sets.list(azure.group, ZONE))
    assert [(r.name, r.a_records[0].ipv4_address, r.fqdn) for r in records] == [
        (account.name, address, f"{account.name}.{ZONE}.")
    ]
    connections = azure.clients.storage.storage_accounts.get_properties(
        azure.group, account.name
    ).private_endpoint_connections
    assert [c.private_endpoint.id for c in connections] == [endpoint.id]

    azure.clients.network.private_endpoints.begin_delete(azure.group, "pe1").result()
    assert list(azure.clients.private_dns.record_sets.list(azure.group, ZONE)) == []


def test_private_endpoints_refuse_a_group_the_account_does_not_offer(azure: Azure) -> None:
    account = azure.clients.storage.storage_accounts.begin_create(
        azure.group, azure.unique("st"), nfs_account()
    ).result()
    network = vnet(azure, "vnet1")
    with pytest.raises(HttpResponseError) as refused:
        azure.clients.network.private_endpoints.begin_create_or_update(
            azure.group,
            "pe1",
            PrivateEndpoint(
                location=REGION,
                subnet=Subnet(id=network.subnets[0].id),
                private_link_service_connections=[
                    PrivateLinkServiceConnection(
                        name="blob", private_link_service_id=account.id, group_ids=["blob"]
                    )
                ],
            ),
        ).result()
    assert refused.value.error.code == "PrivateEndpointBadRequest"


def test_private_dns_writes_are_202_with_both_monitor_headers(azure: Azure) -> None:
    network = vnet(azure, "vnet1")
    zone = azure.clients.private_dns.private_zones.begin_create_or_update(
        azure.group, ZONE, PrivateZone(location="global")
    ).result()
    assert zone.provisioning_state == "Succeeded" and zone.number_of_record_sets == 1
    link = azure.clients.private_dns.virtual_network_links.begin_create_or_update(
        azure.group,
        ZONE,
        "l1",
        VirtualNetworkLink(
            location="global", virtual_network=SubResource(id=network.id), registration_enabled=False
        ),
    ).result()
    assert link.virtual_network_link_state == "Completed"
    puts = [e for e in azure.emulator.requests.snapshot() if e.method == "PUT" and "/providers/" in e.path]
    assert [e.status for e in puts] == [201, 202, 202]  # the VNet, then the zone and the link
    assert any("/privateDnsOperationStatuses/" in e.path for e in azure.emulator.requests.snapshot())

    with pytest.raises(ResourceExistsError) as twice:
        azure.clients.private_dns.virtual_network_links.begin_create_or_update(
            azure.group,
            ZONE,
            "l2",
            VirtualNetworkLink(location="global", virtual_network=SubResource(id=network.id)),
        ).result()
    assert twice.value.error.code == "Conflict"
    with pytest.raises(ResourceExistsError) as nested:
        azure.clients.private_dns.private_zones.begin_delete(azure.group, ZONE).result()
    assert nested.value.error.code == "CannotDeleteResource"
    azure.clients.private_dns.virtual_network_links.begin_delete(azure.group, ZONE, "l1").result()
    azure.clients.private_dns.private_zones.begin_delete(azure.group, ZONE).result()


def test_private_dns_zones_live_in_location_global(azure: Azure) -> None:
    with pytest.raises(HttpResponseError) as refused:
        azure.clients.private_dns.private_zones.begin_create_or_update(
            azure.group, ZONE, PrivateZone(location=REGION)
        ).result()
    assert refused.value.error.code == "InvalidLocation"


def test_peering_connects_only_when_both_directions_exist(azure: Azure) -> None:
    one, two = (
        vnet(azure, "one", "10.1.0.0/16", "10.1.0.0/24"),
        vnet(azure, "two", "10.2.0.0/16", "10.2.0.0/24"),
    )
    forward = azure.clients.network.virtual_network_peerings.begin_create_or_update(
        azure.group,
        "one",
        "to-two",
        VirtualNetworkPeering(
            remote_virtual_network=SubResource(id=two.id), allow_virtual_network_access=True
        ),
    ).result()
    assert forward.peering_state == "Initiated"
    azure.clients.network.virtual_network_peerings.begin_create_or_update(
        azure.group, "two", "to-one", VirtualNetworkPeering(remote_virtual_network=SubResource(id=one.id))
    ).result()
    assert (
        azure.clients.network.virtual_network_peerings.get(azure.group, "one", "to-two").peering_state
        == "Connected"
    )


def _link(azure: Azure, group: str, zone: str, name: str, vnet_id: str) -> None:
    azure.clients.private_dns.virtual_network_links.begin_create_or_update(
        group, zone, name, VirtualNetworkLink(location="global", virtual_network=SubResource(id=vnet_id))
    ).result()


def test_a_vnet_links_to_one_zone_of_a_name(azure: Azure) -> None:
    # MicrosoftDocs SupportArticles createorupdatevirtualnetworklinkfailed-error.md: a VNet linked to
    # one privatelink.file.core.windows.net cannot be linked to another zone of that name.
    network = vnet(azure, "spoke")
    other_group = managed_group(azure.local, REGION)
    try:
        for group in (azure.group, other_group):
            azure.clients.private_dns.private_zones.begin_create_or_update(
                group, ZONE, PrivateZone(location="global")
            ).result()
        _link(azure, azure.group, ZONE, "first", network.id)
        with pytest.raises(HttpResponseError) as second:
            _link(azure, other_group, ZONE, "second", network.id)
        assert second.value.status_code == 400 and second.value.error.code == "BadRequest"
        assert "cannot be linked to multiple zones with overlapping namespaces" in second.value.error.message
        # Another name is another namespace: allowed.
        azure.clients.private_dns.private_zones.begin_create_or_update(
            other_group, "privatelink.blob.core.windows.net", PrivateZone(location="global")
        ).result()
        _link(azure, other_group, "privatelink.blob.core.windows.net", "blob", network.id)
    finally:
        azure.rest.delete(azure.rest.group_path(other_group))


def test_names_resolve_through_the_vnets_own_links_or_its_dns_servers(azure: Azure) -> None:
    # private-endpoint-dns-integration.md: Azure DNS answers from the zones linked to the VM's
    # VNet; a VNet with DNS servers of its own asks them (a resolver in the hub answers from the
    # hub's links).
    account = azure.clients.storage.storage_accounts.begin_create(
        azure.group, azure.unique("st"), nfs_account()
    ).result()
    hub = vnet(azure, "hub", "10.10.0.0/16", "10.10.0.0/24")
    spoke = vnet(azure, "spoke", "10.20.0.0/16", "10.20.0.0/24")
    for local, remote in ((hub, spoke), (spoke, hub)):
        azure.clients.network.virtual_network_peerings.begin_create_or_update(
            azure.group, local.name, f"to-{remote.name}",
            VirtualNetworkPeering(remote_virtual_network=SubResource(id=remote.id)),
        ).result()
    endpoint = azure.clients.network.private_endpoints.begin_create_or_update(
        azure.group, "pe1", PrivateEndpoint(
            location=REGION, subnet=Subnet(id=hub.subnets[0].id),
            private_link_service_connections=[PrivateLinkServiceConnection(
                name="file", private_link_service_id=account.id, group_ids=["file"])]),
    ).result()
    zone = azure.clients.private_dns.private_zones.begin_create_or_update(
        azure.group, ZONE, PrivateZone(location="global")).result()
    azure.clients.network.private_dns_zone_groups.begin_create_or_update(
        azure.group, "pe1", "default", PrivateDnsZoneGroup(private_dns_zone_configs=[
            PrivateDnsZoneConfig(name="file", private_dns_zone_id=zone.id)])).result()
    _link(azure, azure.group, ZONE, "hub", hub.id)
    host = f"{account.name}.file.core.windows.net"
    account_resource = azure.emulator.get(account.id)
    account_resource.properties["supportsHttpsTrafficOnly"] = False

    assert nfs_reachability(azure.emulator, hub.id)[host] == "ok"
    assert nfs_reachability(azure.emulator, spoke.id)[host] == "unreachable"  # nothing linked there
    resolver = "10.10.0.68"  # an address in the hub: its DNS resolver's inbound endpoint
    spoke.dhcp_options = DhcpOptions(dns_servers=[resolver])
    azure.clients.network.virtual_networks.begin_create_or_update(azure.group, "spoke", spoke).result()
    assert nfs_reachability(azure.emulator, spoke.id)[host] == "ok"
    spoke.dhcp_options = DhcpOptions(dns_servers=["192.0.2.53"])  # a server Azure knows nothing of
    azure.clients.network.virtual_networks.begin_create_or_update(azure.group, "spoke", spoke).result()
    assert nfs_reachability(azure.emulator, spoke.id)[host] == "unreachable"
    assert endpoint.custom_dns_configs[0].fqdn == host


def test_a_private_endpoint_is_in_its_vnets_region(azure: Azure) -> None:
    # private-endpoint-overview.md: "The private endpoint must be deployed in the same region and
    # subscription as the virtual network"; Azure answers InvalidResourceReference.
    account = azure.clients.storage.storage_accounts.begin_create(
        azure.group, azure.unique("st"), nfs_account()
    ).result()
    network = vnet(azure, "vnet1")
    with pytest.raises(HttpResponseError) as refused:
        azure.clients.network.private_endpoints.begin_create_or_update(
            azure.group, "pe1", PrivateEndpoint(
                location="westeurope", subnet=Subnet(id=network.subnets[0].id),
                private_link_service_connections=[PrivateLinkServiceConnection(
                    name="file", private_link_service_id=account.id, group_ids=["file"])]),
        ).result()
    assert refused.value.error.code == "InvalidResourceReference"
    assert "same region" in refused.value.error.message
    assert azure.emulator.get(f"{azure.group_path()}/providers/Microsoft.Network/privateEndpoints/pe1") is None


def test_an_endpoint_obeys_its_subnets_security_group_only_when_its_policies_say_so(azure: Azure) -> None:
    # network-security-groups-overview.md: priority order, first match decides, one priority per
    # direction, default rules last; disable-private-endpoint-network-policy.md: an endpoint
    # ignores its subnet's group while privateEndpointNetworkPolicies is Disabled (the default).
    account = azure.clients.storage.storage_accounts.begin_create(
        azure.group, azure.unique("st"), nfs_account()).result()
    azure.emulator.get(account.id).properties["supportsHttpsTrafficOnly"] = False
    net = vnet(azure, "guarded", "10.30.0.0/16", "10.30.0.0/24")
    endpoint = azure.clients.network.private_endpoints.begin_create_or_update(
        azure.group, "pe-guarded", PrivateEndpoint(
            location=REGION, subnet=Subnet(id=net.subnets[0].id),
            private_link_service_connections=[PrivateLinkServiceConnection(
                name="file", private_link_service_id=account.id, group_ids=["file"])]),
    ).result()
    zone = azure.clients.private_dns.private_zones.begin_create_or_update(
        azure.group, ZONE, PrivateZone(location="global")).result()
    azure.clients.network.private_dns_zone_groups.begin_create_or_update(
        azure.group, "pe-guarded", "default", PrivateDnsZoneGroup(private_dns_zone_configs=[
            PrivateDnsZoneConfig(name="file", private_dns_zone_id=zone.id)])).result()
    _link(azure, azure.group, ZONE, "guarded", net.id)
    host = f"{account.name}.file.core.windows.net"
    endpoint_ip = endpoint.custom_dns_configs[0].ip_addresses[0]
    network = azure.clients.network
    deny = SecurityRule(name="deny-all", priority=4096, access="Deny", direction="Inbound", protocol="*",
                        source_address_prefix="*", source_port_range="*", destination_address_prefix="*",
                        destination_port_range="*")
    nsg = network.network_security_groups.begin_create_or_update(
        azure.group, "nsg1", NetworkSecurityGroup(location=REGION, security_rules=[deny])).result()
    assert [r.name for r in nsg.default_security_rules] == [
        "AllowVnetInBound", "AllowAzureLoadBalancerInBound", "DenyAllInBound"]
    subnet = network.subnets.get(azure.group, "guarded", "default")
    assert subnet.private_endpoint_network_policies == "Disabled"
    subnet.network_security_group = NetworkSecurityGroup(id=nsg.id)
    network.subnets.begin_create_or_update(azure.group, "guarded", "default", subnet).result()
    assert nfs_reachability(azure.emulator, net.id, "10.30.0.9")[host] == "ok"  # policies Disabled

    subnet.private_endpoint_network_policies = "Enabled"
    network.subnets.begin_create_or_update(azure.group, "guarded", "default", subnet).result()
    assert nfs_reachability(azure.emulator, net.id, "10.30.0.9")[host] == "unreachable"
    allow = SecurityRule(priority=200, access="Allow", direction="Inbound", protocol="Tcp",
                         source_address_prefixes=["10.30.0.9", "10.30.0.10"], source_port_range="*",
                         destination_address_prefix=endpoint_ip, destination_port_range="2049")
    network.security_rules.begin_create_or_update(azure.group, "nsg1", "allow-two", allow).result()
    assert nfs_reachability(azure.emulator, net.id, "10.30.0.9")[host] == "ok"
    assert nfs_reachability(azure.emulator, net.id, "10.30.0.11")[host] == "unreachable"

    with pytest.raises(HttpResponseError) as clash:  # one priority per direction
        network.security_rules.begin_create_or_update(azure.group, "nsg1", "again", allow).result()
    assert clash.value.error is not None and clash.value.error.code == "SecurityRuleConflict"
    with pytest.raises(HttpResponseError) as bad:
        allow.priority = 5000
        network.security_rules.begin_create_or_update(azure.group, "nsg1", "too-low", allow).result()
    assert bad.value.error is not None and bad.value.error.code == "SecurityRuleInvalidPriority"
    with pytest.raises(HttpResponseError) as in_use:
        network.network_security_groups.begin_delete(azure.group, "nsg1").result()
    assert in_use.value.error is not None and in_use.value.error.code == "InUseNetworkSecurityGroupCannotBeDeleted"

    # Application security groups (application-security-groups.md): a rule may name a group
    # instead of addresses, and matches the NICs that joined it.
    asg = network.application_security_groups.begin_create_or_update(
        azure.group, "nfs-clients", ApplicationSecurityGroup(location=REGION)).result()
    member = network.network_interfaces.begin_create_or_update(azure.group, "member", NetworkInterface(
        location=REGION, ip_configurations=[NetworkInterfaceIPConfiguration(
            name="ipconfig1", subnet=Subnet(id=net.subnets[0].id),
            application_security_groups=[ApplicationSecurityGroup(id=asg.id)])])).result()
    member_ip = member.ip_configurations[0].private_ip_address
    outsider = nic(azure, "outsider", net.subnets[0].id).ip_configurations[0].private_ip_address
    by_group = SecurityRule(priority=300, access="Allow", direction="Inbound", protocol="Tcp",
                            source_application_security_groups=[ApplicationSecurityGroup(id=asg.id)],
                            source_port_range="*", destination_address_prefix=endpoint_ip,
                            destination_port_range="2049")
    network.security_rules.begin_create_or_update(azure.group, "nsg1", "allow-group", by_group).result()
    assert nfs_reachability(azure.emulator, net.id, member_ip)[host] == "ok"
    assert nfs_reachability(azure.emulator, net.id, outsider)[host] == "unreachable"
    by_group.source_application_security_groups = [ApplicationSecurityGroup(id=asg.id + "x")]
    with pytest.raises(HttpResponseError) as missing:
        network.security_rules.begin_create_or_update(azure.group, "nsg1", "allow-group", by_group).result()
    assert missing.value.error is not None and missing.value.error.code == "InvalidResourceReference"
    elsewhere = vnet(azure, "elsewhere", "10.31.0.0/16", "10.31.0.0/24")
    network.network_interfaces.begin_create_or_update(azure.group, "far-member", NetworkInterface(
        location=REGION, ip_configurations=[NetworkInterfaceIPConfiguration(
            name="ipconfig1", subnet=Subnet(id=elsewhere.subnets[0].id),
            application_security_groups=[ApplicationSecurityGroup(id=asg.id)])])).result()
    by_group.source_application_security_groups = [ApplicationSecurityGroup(id=asg.id)]
    with pytest.raises(HttpResponseError) as spread:
        network.security_rules.begin_create_or_update(azure.group, "nsg1", "allow-group", by_group).result()
    assert spread.value.error is not None
    assert spread.value.error.code == "AllApplicationSecurityGroupsInSecurityRuleMustBeFromSameVnet"
