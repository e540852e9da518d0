"""Private DNS as enterprise networks have it, end to end: a hub VNet holding the central
`privatelink.file.core.windows.net` zone, spokes peered to it that resolve through the hub's DNS
resolver, storages in two resource groups, VMs in each spoke attached for real in sandbox VMs.
Azure links a VNet to one zone of a name (the emulator refuses a second, as Azure does), so the
service must find and use the zone that answers, and leave it as it found it."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import pytest

from local import identities, playground
from shared.adapters.arm_operations import FOREIGN_ZONE_OPERATIONS
from shared.bootstrap import Container
from shared.domain.private_dns import FILE_ZONE
from shared.settings import Settings
from tests.conftest import managed_group
from tests.emulator.conftest import needs_sandbox
from tests.functions.conftest import REGION, Stack, unique
from tests.infra.test_arm_operations import authorization

RESOLVER = "10.10.0.68"  # the hub's DNS resolver (an inbound endpoint's address in the hub)


def vnet(stack: Stack, group: str, name: str, space: str, *, dns: list[str] | None = None,
         region: str = REGION) -> str:
    """A VNet with subnet `default` (the first /24 of `space`); returns the VNet's id."""
    path = f"{playground.providers(stack.rest, group)}/Microsoft.Network/virtualNetworks/{name}"
    body: dict[str, Any] = {
        "location": region,
        "properties": {
            "addressSpace": {"addressPrefixes": [space]},
            "subnets": [{"name": "default", "properties": {"addressPrefix": space.replace("/16", "/24")}}],
        },
    }
    if dns:
        body["properties"]["dhcpOptions"] = {"dnsServers": dns}
    stack.rest.put(path, body)
    return path


def peer(stack: Stack, a: str, b: str) -> None:
    for local, remote in ((a, b), (b, a)):
        stack.rest.put(f"{local}/virtualNetworkPeerings/to-{remote.rsplit('/', 1)[-1]}",
                       {"properties": {"remoteVirtualNetwork": {"id": remote}, "allowVirtualNetworkAccess": True}})


def zone_state(stack: Stack, zone_id: str) -> dict[str, Any]:
    """What a zone holds: its tags, its links (name -> VNet), its A records (name -> addresses)."""
    zone = stack.rest.get(zone_id)
    links = stack.rest.get(f"{zone_id}/virtualNetworkLinks")["value"]
    records = stack.rest.get(f"{zone_id}/A")["value"]
    return {
        "tags": zone.get("tags", {}),
        "links": {link["name"]: link["properties"]["virtualNetwork"]["id"].lower() for link in links},
        "records": {r["name"]: [a["ipv4Address"] for a in r["properties"]["aRecords"]] for r in records},
    }


@pytest.fixture
def hub(stack: Stack) -> Iterator[dict[str, str]]:
    """A hub resource group the service does not manage: a hub VNet and the central zone linked
    to it (made by alice, the platform team)."""
    group = "rg-hub-" + uuid.uuid4().hex[:6]
    stack.rest.put(stack.rest.group_path(group), {"location": REGION})
    hub_vnet = vnet(stack, group, "hub", "10.10.0.0/16")
    zone = f"{playground.providers(stack.rest, group)}/Microsoft.Network/privateDnsZones/{FILE_ZONE}"
    stack.rest.put(zone, {"location": "global", "tags": {"owner": "platform"}})
    stack.rest.put(f"{zone}/virtualNetworkLinks/hub", {
        "location": "global", "properties": {"virtualNetwork": {"id": hub_vnet}, "registrationEnabled": False}})
    yield {"group": group, "vnet": hub_vnet, "zone": zone}
    stack.azure.emulator.authorization.drop_locks(stack.rest.group_path(group))
    stack.rest.delete(stack.rest.group_path(group))


def grant_zone(stack: Stack, zone: str) -> None:
    """What docs/storage.md asks of the platform team: the role on the zone's resource group."""
    app = stack.azure.emulator.tenant.get(identities.APP_IDENTITY)
    stack.azure.emulator.authorization.assign("/".join(zone.split("/")[:5]), app.object_id,
                                              "Private DNS Zone Contributor")


def with_zone(make_app: Callable[..., Container], settings: Settings, zone: str | None) -> Container:
    return make_app(app_settings=replace(settings, private_dns_zone_id=zone))


def create(stack: Stack, name: str, group: str, **body: Any) -> dict[str, Any]:
    return stack.run(stack.api.post("/api/storage", {"name": name, "resourceGroup": group, **body}))


@needs_sandbox
def test_hub_and_spoke_storages_in_two_groups_attach_from_both_spokes(
    stack: Stack, hub: dict[str, str], make_app: Callable[..., Container], settings: Settings
) -> None:
    with_zone(make_app, settings, hub["zone"])
    grant_zone(stack, hub["zone"])
    before = zone_state(stack, hub["zone"])
    other = managed_group(stack.azure, REGION)
    spokes = {stack.group: vnet(stack, stack.group, "spoke-a", "10.21.0.0/16", dns=[RESOLVER]),
              other: vnet(stack, other, "spoke-b", "10.22.0.0/16", dns=[RESOLVER])}
    a, b = spokes.values()
    peer(stack, a, hub["vnet"])
    peer(stack, b, hub["vnet"])
    peer(stack, a, b)  # each spoke reaches the other's endpoint (the hub's firewall routes it in Azure)
    try:
        storages = {group: unique() for group in spokes}
        for group, name in storages.items():
            made = create(stack, name, group, vnet=spokes[group].rsplit("/", 1)[-1], subnet="default")
            assert made["status"] == "Succeeded", made
        published = zone_state(stack, hub["zone"])["records"]
        assert set(published) == set(storages.values())  # both names, in the central zone

        for group, vnet_id in spokes.items():  # a VM in each spoke attached to each storage
            for index, storage in enumerate(storages.values()):
                name = f"vm{index}-{vnet_id.rsplit('-', 1)[-1]}"
                playground.vm(stack.rest, group, name, f"{vnet_id}/subnets/default", REGION, key="ssh-ed25519 AAAAk me@x")
                attached = stack.run(stack.api.post(f"/api/storage/{storage}/attachments",
                                                    {"vm": name, "resourceGroup": group}))
                assert attached["status"] == "Succeeded", attached
        app = stack.azure.emulator.tenant.get(identities.APP_IDENTITY).object_id
        links = [e for e in stack.log.snapshot()
                 if e.caller == app and "/virtualNetworkLinks/" in e.path and e.method != "GET"]
        assert links == []  # never a link: the spokes resolve through the hub

        for group, name in storages.items():
            gone = stack.delete_for_good(name, resourceGroup=group, force="true")
            assert gone["status"] == "Succeeded", gone
        assert zone_state(stack, hub["zone"]) == before  # the central zone as it was
    finally:
        stack.rest.delete(stack.rest.group_path(other))


def test_a_spoke_resolving_through_nothing_is_linked_to_the_central_zone_and_unlinked_on_delete(
    stack: Stack, hub: dict[str, str], make_app: Callable[..., Container], settings: Settings
) -> None:
    with_zone(make_app, settings, hub["zone"])
    grant_zone(stack, hub["zone"])
    before = zone_state(stack, hub["zone"])
    spoke = vnet(stack, stack.group, "spoke", "10.31.0.0/16")
    name = unique()
    made = create(stack, name, stack.group, vnet="spoke", subnet="default")
    assert made["status"] == "Succeeded", made
    during = zone_state(stack, hub["zone"])
    assert sorted(during["links"].values()) == sorted([hub["vnet"].lower(), spoke.lower()])
    assert list(during["records"]) == [name]
    own = f"{playground.providers(stack.rest, stack.group)}/Microsoft.Network/privateDnsZones/{FILE_ZONE}"
    assert not playground.exists(stack.rest, own)  # no zone of the service's own beside the central one

    assert stack.delete_for_good(name)["status"] == "Succeeded"
    assert zone_state(stack, hub["zone"]) == before


def test_a_central_zone_the_service_may_not_write_fails_before_anything_is_made(
    stack: Stack, hub: dict[str, str], make_app: Callable[..., Container], settings: Settings
) -> None:
    with_zone(make_app, settings, hub["zone"])
    vnet(stack, stack.group, "spoke", "10.41.0.0/16", dns=[RESOLVER])
    name = unique()
    stack.log.clear()
    refused = create(stack, name, stack.group, vnet="spoke", subnet="default")
    assert (refused["status"], refused["error"]["code"]) == ("Failed", "DnsZoneNotWritable"), refused
    error = refused["error"]
    assert hub["zone"] in " ".join(error["causes"]) and "Private DNS Zone Contributor" in error["try"]
    assert f"A {name}" in " ".join(error["causes"])  # the record to add by hand instead
    assert stack.writes() == []
    # The name is free again, and the identity's own permissions were what it asked.
    asked = {authorization(e.method, e.path)[0] for e in stack.log.snapshot()}
    assert "Microsoft.Authorization/permissions/read" in asked
    assert stack.api.get(f"/api/storage/{name}/access").status == 404


def test_a_vnet_with_its_own_dns_servers_and_no_zone_named_is_refused_clearly(stack: Stack) -> None:
    vnet(stack, stack.group, "custom", "10.51.0.0/16", dns=["192.0.2.53"])
    stack.log.clear()
    refused = create(stack, unique(), stack.group, vnet="custom", subnet="default")
    assert (refused["status"], refused["error"]["code"]) == ("Failed", "DnsZoneUnknown"), refused
    assert "PRIVATE_DNS_ZONE_ID" in refused["error"]["try"]
    assert stack.writes() == []


def test_a_vnet_in_another_region_is_refused_before_any_write(stack: Stack) -> None:
    vnet(stack, stack.group, "far", "10.61.0.0/16", region="northeurope")
    stack.log.clear()
    refused = create(stack, unique(), stack.group, vnet="far", subnet="default")
    assert (refused["status"], refused["error"]["code"]) == ("Failed", "RegionMismatch"), refused
    assert "region=northeurope" in refused["error"]["try"]
    assert stack.writes() == []


@needs_sandbox
def test_a_vm_whose_vnet_another_zone_answers_for_gets_the_record_there(stack: Stack) -> None:
    """A team's VNet already linked to its own privatelink zone: linking the storage's zone
    there would be refused, so the record goes into the team's zone, and leaves with the storage."""
    name = unique()
    assert create(stack, name, stack.group)["status"] == "Succeeded"
    team = managed_group(stack.azure, REGION)
    try:
        team_vnet = vnet(stack, team, "team", "10.71.0.0/16")
        service_vnet = f"{playground.providers(stack.rest, stack.group)}/Microsoft.Network/virtualNetworks/azlin-vnet"
        peer(stack, team_vnet, service_vnet)
        zone = f"{playground.providers(stack.rest, team)}/Microsoft.Network/privateDnsZones/{FILE_ZONE}"
        stack.rest.put(zone, {"location": "global"})
        stack.rest.put(f"{zone}/virtualNetworkLinks/team", {
            "location": "global", "properties": {"virtualNetwork": {"id": team_vnet}}})
        before = zone_state(stack, zone)
        playground.vm(stack.rest, team, "dev1", f"{team_vnet}/subnets/default", REGION, key="ssh-ed25519 AAAAk me@x")
        attached = stack.run(stack.api.post(f"/api/storage/{name}/attachments", {"vm": "dev1", "resourceGroup": team}))
        assert attached["status"] == "Succeeded", (attached, zone_state(stack, zone))
        assert list(zone_state(stack, zone)["records"]) == [name]
        asked = {authorization(e.method, e.path)[0] for e in stack.log.snapshot()}
        assert asked | {"Microsoft.Network/privateDnsZones/A/delete"} >= FOREIGN_ZONE_OPERATIONS

        gone = stack.delete_for_good(name, force="true")
        assert gone["status"] == "Succeeded", gone
        assert zone_state(stack, zone) == before
        asked = {authorization(e.method, e.path)[0] for e in stack.log.snapshot()}
        assert asked >= FOREIGN_ZONE_OPERATIONS  # each listed foreign-zone operation is needed
    finally:
        stack.rest.delete(stack.rest.group_path(team))

