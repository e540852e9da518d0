"""`StorageCloud` on Resource Manager, through azure-mgmt-storage, -network and -privatedns.
Imported only when a worker runs a storage operation (the composition root builds it lazily):
these SDKs take about 1.5 s to import.

Every create is an idempotent PUT that waits for its long-running operation; the service reads
first and writes only what is missing. The resource group is read with a plain ARM request through
the storage client's pipeline (no azure-mgmt-resource needed for one GET)."""

from __future__ import annotations

from contextlib import suppress
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from azure.core.exceptions import ResourceNotFoundError
from azure.core.rest import HttpRequest
from azure.mgmt.network.models import (
    NetworkSecurityGroup,
    PrivateDnsZoneGroup,
    PrivateEndpoint,
    Subnet,
    VirtualNetwork,
)
from azure.mgmt.network.models import SecurityRule as ArmSecurityRule
from azure.mgmt.privatedns.models import PrivateZone, RecordSet, VirtualNetworkLink
from azure.mgmt.storage.models import (
    FileServiceProperties,
    FileShare,
    StorageAccountCheckNameAvailabilityParameters,
    StorageAccountCreateParameters,
)

from shared.domain.data_protection import REASON_KEY, ShareSnapshot, SnapshotReason
from shared.domain.models import SHARE_NAME
from shared.domain.network_rules import NSG_NAME, EndpointPlace, SecurityRule, SubnetFacts, deny_rule
from shared.domain.private_dns import (
    FILE_ZONE,
    DnsRecord,
    DnsZone,
    EndpointDns,
    VnetDns,
    ZoneLink,
    link_name,
    same_id,
    zone_group,
)
from shared.domain.provisioning import (
    MANAGED_BY,
    MANAGED_BY_TAG,
    ROOT_SQUASH,
    ZONE_GROUP,
    AccountSpec,
    CloudAccount,
    CloudShare,
    Network,
)
from shared.domain.rbac import Grant

from .arm import AUTHORIZATION_API_VERSION
from .arm_errors import arm_errors

if TYPE_CHECKING:
    from azure.mgmt.privatedns import PrivateDnsManagementClient

    from .arm import ArmClients

GROUP_API_VERSION = "2024-03-01"
LOCKS_API_VERSION = "2020-05-01"
KEEP_LOCK = "azlin-keep"


def _value(enum_or_text: Any) -> str:
    return str(getattr(enum_or_text, "value", enum_or_text) or "")


def _group_of(resource_id: str) -> str:
    parts = resource_id.split("/")
    lowered = [p.lower() for p in parts]
    return parts[lowered.index("resourcegroups") + 1] if "resourcegroups" in lowered else ""


def _managed(tags: dict[str, str] | None) -> bool:
    return (tags or {}).get(MANAGED_BY_TAG) == MANAGED_BY


def _name(resource_id: str) -> str:
    return resource_id.rsplit("/", 1)[-1]


def _subnet_parts(subnet_id: str) -> tuple[str, str, str]:
    """(resource group, VNet, subnet) of a subnet id."""
    parts = subnet_id.split("/")
    return _group_of(subnet_id), parts[-3], parts[-1]


def _rule_body(rule: SecurityRule) -> dict[str, Any]:
    sources = {"sourceAddressPrefix": rule.sources[0]} if len(rule.sources) == 1 else {
        "sourceAddressPrefixes": list(rule.sources)}
    destinations = rule.destination.split(",")
    target = {"destinationAddressPrefix": destinations[0]} if len(destinations) == 1 else {
        "destinationAddressPrefixes": destinations}
    protocol = "*" if rule.port == "*" else "Tcp"
    return {"name": rule.name, "properties": {
        "priority": rule.priority, "access": rule.access, "direction": "Inbound", "protocol": protocol,
        "sourcePortRange": "*", "destinationPortRange": rule.port, **sources, **target}}


def _rule(found: Any) -> SecurityRule:
    single = [found.source_address_prefix] if found.source_address_prefix else []
    sources = tuple(found.source_address_prefixes or single)
    targets = found.destination_address_prefixes or [found.destination_address_prefix or "*"]
    ports = found.destination_port_range or ",".join(found.destination_port_ranges or []) or "*"
    return SecurityRule(str(found.name), int(found.priority or 0), _value(found.access), sources,
                        ",".join(targets), str(ports))


def reference_id(sub_resource: Any) -> str:
    return str(getattr(sub_resource, "id", "") or "")


def _account(account: Any) -> CloudAccount:
    acls = account.network_rule_set
    return CloudAccount(
        id=account.id,
        name=account.name,
        resource_group=_group_of(account.id),
        region=str(account.location or "").replace(" ", "").lower(),
        kind=_value(account.kind),
        sku=_value(account.sku.name),
        https_only=bool(account.enable_https_traffic_only),
        public_network_access=_value(account.public_network_access) or "Enabled",
        default_action=_value(acls.default_action) if acls else "Allow",
        minimum_tls=_value(account.minimum_tls_version),
        tags=dict(account.tags or {}),
        provisioning_state=_value(account.provisioning_state),
        created_at=account.creation_time,
        endpoints=tuple(reference_id(c.private_endpoint) for c in account.private_endpoint_connections or []
                        if c.private_endpoint is not None),
        network_rules=tuple([str(r.virtual_network_resource_id) for r in (acls.virtual_network_rules or [])]
                            + [str(r.ip_address_or_range) for r in (acls.ip_rules or [])]) if acls else (),
    )


def _share(share: Any) -> CloudShare:
    return CloudShare(
        quota_gib=int(share.share_quota or 0),
        protocol=_value(share.enabled_protocols),
        root_squash=_value(share.root_squash) or None,
        usage_bytes=share.share_usage_bytes,
        iops=share.provisioned_iops,
        throughput_mibps=share.provisioned_bandwidth_mibps,
        next_quota_downgrade=_utc(share.next_allowed_quota_downgrade_time),
        next_iops_downgrade=_utc(share.next_allowed_provisioned_iops_downgrade_time),
        next_throughput_downgrade=_utc(share.next_allowed_provisioned_bandwidth_downgrade_time),
    )


def _utc(moment: datetime | None) -> datetime | None:
    return moment.astimezone(UTC) if moment is not None else None


def _snapshot(share: Any) -> ShareSnapshot:
    # The raw string keeps Azure's seven fractional digits (the SDK's datetime keeps six): it is
    # the snapshot's name in every later call.
    raw = str(share["properties"]["snapshotTime"])
    reason = (share.metadata or {}).get(REASON_KEY)
    known = {r.value for r in SnapshotReason}
    return ShareSnapshot(raw, share.snapshot_time.astimezone(UTC),
                         SnapshotReason(reason) if reason in known else None)


class ArmStorageCloud:
    def __init__(self, clients: ArmClients) -> None:
        self.clients = clients

    @property
    def _subscription(self) -> str:
        return self.clients.settings.subscription_id

    # -- resource group and accounts --------------------------------------------------------------

    def group_region(self, group: str) -> str | None:
        path = f"/subscriptions/{self._subscription}/resourcegroups/{group}?api-version={GROUP_API_VERSION}"
        with arm_errors(f"read resource group {group}"):
            response = self.clients.storage.send_request(HttpRequest("GET", path))
            if response.status_code == 404:
                return None
            response.raise_for_status()
        return str(response.json()["location"])

    def get_account(self, group: str, name: str) -> CloudAccount | None:
        with arm_errors(f"read storage account {name}"):
            try:
                return _account(self.clients.storage.storage_accounts.get_properties(group, name))
            except ResourceNotFoundError as missing:
                if "ResourceGroupNotFound" in str(getattr(missing.error, "code", "")):
                    raise
                return None

    def name_available(self, name: str) -> tuple[bool, str]:
        check = StorageAccountCheckNameAvailabilityParameters(
            {"name": name, "type": "Microsoft.Storage/storageAccounts"}
        )
        with arm_errors(f"check whether the name {name} is free"):
            answer = self.clients.storage.storage_accounts.check_name_availability(account_name=check)
        return bool(answer.name_available), str(answer.message or _value(answer.reason))

    def create_account(self, spec: AccountSpec) -> CloudAccount:
        parameters = StorageAccountCreateParameters(
            {
                "sku": {"name": spec.sku},
                "kind": "FileStorage",
                "location": spec.region,
                "tags": spec.tags,
                "properties": {
                    # On: NFS only through aznfs's TLS tunnel (encryption-in-transit-for-nfs-shares.md)
                    "supportsHttpsTrafficOnly": spec.https_only,
                    "publicNetworkAccess": "Disabled",
                    "minimumTlsVersion": "TLS1_2",
                    "allowBlobPublicAccess": False,
                    "networkAcls": {"defaultAction": "Deny", "bypass": "AzureServices"},
                },
            }
        )
        with arm_errors(f"create storage account {spec.name}"):
            poller = self.clients.storage.storage_accounts.begin_create(
                spec.resource_group, spec.name, parameters
            )
            return _account(poller.result())

    def list_accounts(self, group: str | None) -> list[CloudAccount]:
        accounts = self.clients.storage.storage_accounts
        with arm_errors("list storage accounts"):
            try:
                found = list(accounts.list_by_resource_group(group) if group else accounts.list())
            except ResourceNotFoundError:  # the group is gone, and every account in it
                return []
            return [_account(a) for a in found]

    def delete_account(self, group: str, name: str) -> None:
        with arm_errors(f"delete storage account {name}"):
            self.clients.storage.storage_accounts.delete(group, name)

    # -- the account's delete lock (lock-resources.md) ---------------------------------------------

    def _lock_path(self, group: str, name: str) -> str:
        return (f"/subscriptions/{self._subscription}/resourceGroups/{group}/providers/Microsoft.Storage/"
                f"storageAccounts/{name}/providers/Microsoft.Authorization/locks/{KEEP_LOCK}"
                f"?api-version={LOCKS_API_VERSION}")

    def account_locked(self, group: str, name: str) -> bool:
        with arm_errors(f"read the delete lock of storage account {name}"):
            response = self.clients.storage.send_request(HttpRequest("GET", self._lock_path(group, name)))
            if response.status_code == 404:
                return False
            response.raise_for_status()
        return True

    def lock_account(self, group: str, name: str) -> None:
        """A CanNotDelete lock: no portal click or script deletes the team's homes; only the service
        lifts it, when it deletes the storage itself."""
        body = {"properties": {"level": "CanNotDelete",
                               "notes": "azlin: the homes of a team; delete the storage through the service"}}
        with arm_errors(f"lock storage account {name} against deletion"):
            self.clients.storage.send_request(
                HttpRequest("PUT", self._lock_path(group, name), json=body)).raise_for_status()

    def unlock_account(self, group: str, name: str) -> None:
        with arm_errors(f"lift the delete lock of storage account {name}"):
            response = self.clients.storage.send_request(HttpRequest("DELETE", self._lock_path(group, name)))
            if response.status_code != 404:
                response.raise_for_status()

    # -- the share --------------------------------------------------------------------------------

    def get_share(self, group: str, account: str, *, with_usage: bool = False) -> CloudShare | None:
        options = {"expand": "stats"} if with_usage else {}
        with arm_errors(f"read the share of {account}"):
            try:
                return _share(self.clients.storage.file_shares.get(group, account, SHARE_NAME, **options))
            except ResourceNotFoundError:
                return None

    def put_share(self, group: str, account: str, quota_gib: int, iops: int | None = None,
                  throughput_mibps: int | None = None) -> CloudShare:
        properties: dict[str, Any] = {"enabledProtocols": "NFS", "rootSquash": ROOT_SQUASH,
                                      "shareQuota": quota_gib}
        if iops is not None:  # provisioned v2: unset, Azure provisions its recommendation for the size
            properties["provisionedIops"] = iops
        if throughput_mibps is not None:
            properties["provisionedBandwidthMibps"] = throughput_mibps
        share = FileShare({"properties": properties})
        with arm_errors(f"set the NFS share of {account} to {quota_gib} GiB"):
            return _share(self.clients.storage.file_shares.create(group, account, SHARE_NAME, share))

    # -- share soft delete and snapshots (data_protection.py) --------------------------------------

    def protect_shares(self, group: str, account: str, days: int) -> None:
        files = self.clients.storage.file_services
        with arm_errors(f"turn on share soft delete for {account}"):
            current = files.get_service_properties(group, account).share_delete_retention_policy
            if current is not None and current.enabled and current.days == days:
                return
            files.set_service_properties(group, account, FileServiceProperties(
                {"properties": {"shareDeleteRetentionPolicy": {"enabled": True, "days": days}}}))

    def take_snapshot(self, group: str, account: str, reason: SnapshotReason) -> ShareSnapshot:
        share = FileShare({"properties": {"metadata": {REASON_KEY: reason.value}}})
        with arm_errors(f"take a snapshot of the share of {account}"):
            return _snapshot(self.clients.storage.file_shares.create(group, account, SHARE_NAME, share,
                                                                     expand="snapshots"))

    def list_snapshots(self, group: str, account: str) -> list[ShareSnapshot]:
        with arm_errors(f"list the snapshots of the share of {account}"):
            items = self.clients.storage.file_shares.list(group, account, expand="snapshots")
            return sorted((_snapshot(i) for i in items if i.name == SHARE_NAME and i.snapshot_time),
                          key=lambda s: s.taken_at)

    def delete_snapshot(self, group: str, account: str, snapshot: str) -> None:
        with arm_errors(f"delete snapshot {snapshot} of the share of {account}"):
            self.clients.storage.file_shares.delete(group, account, SHARE_NAME, x_ms_snapshot=snapshot)

    # -- network ----------------------------------------------------------------------------------

    def get_network(self, group: str, vnet: str, subnet: str) -> Network | None:
        """The subnet, with its VNet's region and DNS servers (one read of the VNet)."""
        with arm_errors(f"read subnet {subnet} of VNet {vnet}"):
            try:
                found = self.clients.network.virtual_networks.get(group, vnet)
            except ResourceNotFoundError:
                return None
        match = [s for s in found.subnets or () if str(s.name).lower() == subnet.lower()]
        if not match:
            return None
        servers = found.dhcp_options.dns_servers if found.dhcp_options else None
        return Network(vnet, subnet, str(found.id), str(match[0].id), group,
                       region=str(found.location or "").replace(" ", "").lower(),
                       dns_servers=tuple(servers or ()))

    def create_network(
        self, group: str, region: str, vnet: str, space: str, subnet: str, prefix: str, tags: dict[str, str]
    ) -> Network:
        """The service's own VNet (or one more subnet in it), its subnet guarded from the start:
        the group its endpoints obey (network_rules.py), made first."""
        networks = self.clients.network
        with arm_errors(f"create VNet {vnet} with subnet {subnet}"):
            nsg_id = self._endpoints_group(group, region, tags)
            guarded = {"addressPrefix": prefix, "networkSecurityGroup": {"id": nsg_id},
                       "privateEndpointNetworkPolicies": "Enabled"}
            try:
                networks.virtual_networks.get(group, vnet)
            except ResourceNotFoundError:
                body = VirtualNetwork(
                    {
                        "location": region,
                        "tags": tags,
                        "properties": {
                            "addressSpace": {"addressPrefixes": [space]},
                            "subnets": [{"name": subnet, "properties": guarded}],
                        },
                    }
                )
                networks.virtual_networks.begin_create_or_update(group, vnet, body).result()
            else:  # the VNet exists without the subnet: add it, leaving the others alone
                addition = Subnet({"properties": guarded})
                networks.subnets.begin_create_or_update(group, vnet, subnet, addition).result()
        found = self.get_network(group, vnet, subnet)
        assert found is not None
        return found

    def delete_network_if_unused(self, group: str, vnet: str) -> bool:
        networks = self.clients.network
        with arm_errors(f"delete VNet {vnet}"):
            try:
                found = networks.virtual_networks.get(group, vnet)
            except ResourceNotFoundError:
                return False
            in_use = any(s.ip_configurations or s.private_endpoints for s in found.subnets or [])
            if (
                in_use
                or (found.tags or {}).get(MANAGED_BY_TAG) != MANAGED_BY
                or found.virtual_network_peerings
            ):
                return False
            networks.virtual_networks.begin_delete(group, vnet).result()
            with suppress(ResourceNotFoundError):  # the group the service put on its subnet goes with it
                networks.network_security_groups.begin_delete(group, NSG_NAME).result()
        return True

    # -- private endpoint and DNS -----------------------------------------------------------------

    def get_endpoint(self, group: str, name: str) -> str | None:
        with arm_errors(f"read private endpoint {name}"):
            try:
                return str(self.clients.network.private_endpoints.get(group, name).id)
            except ResourceNotFoundError:
                return None

    def create_endpoint(
        self, group: str, name: str, region: str, subnet_id: str, account_id: str, tags: dict[str, str]
    ) -> str:
        endpoint = PrivateEndpoint(
            {
                "location": region,
                "tags": tags,
                "properties": {
                    "subnet": {"id": subnet_id},
                    "privateLinkServiceConnections": [
                        {
                            "name": "file",
                            "properties": {"privateLinkServiceId": account_id, "groupIds": ["file"]},
                        }
                    ],
                },
            }
        )
        with arm_errors(f"create private endpoint {name}"):
            created = self.clients.network.private_endpoints.begin_create_or_update(
                group, name, endpoint
            ).result()
        return str(created.id)

    def delete_endpoint(self, group: str, name: str) -> None:
        with arm_errors(f"delete private endpoint {name}"):
            self.clients.network.private_endpoints.begin_delete(group, name).result()

    # -- who reaches the endpoint (shared/domain/network_rules.py) ---------------------------------

    def endpoint_place(self, group: str, endpoint: str) -> EndpointPlace | None:
        """The endpoint's subnet and private address, and how that subnet is guarded now."""
        network = self.clients.network
        with arm_errors(f"read private endpoint {endpoint} and its subnet"):
            try:
                found = network.private_endpoints.get(group, endpoint)
            except ResourceNotFoundError:
                return None
            # The endpoint's address: in its DNS configs, else on its NIC.
            dns = [a for c in found.custom_dns_configs or [] for a in c.ip_addresses or []]
            address = str(dns[0]) if dns else ""
            nic_id = reference_id((found.network_interfaces or [None])[0])
            if not address and nic_id:
                configs = network.network_interfaces.get(_group_of(nic_id), _name(nic_id)).ip_configurations
                address = str(configs[0].private_ip_address or "") if configs else ""
            subnet_id = reference_id(found.subnet)
            subnet_group, vnet, subnet_name = _subnet_parts(subnet_id)
            subnet = network.subnets.get(subnet_group, vnet, subnet_name)
            owner = network.virtual_networks.get(subnet_group, vnet)
        return EndpointPlace(subnet_id, address, managed=_managed(owner.tags),
                             nsg_id=reference_id(subnet.network_security_group) or None,
                             policies=_value(subnet.private_endpoint_network_policies) or "Disabled")

    def subnet_facts(self, group: str, vnet: str, subnet: str) -> SubnetFacts | None:
        with arm_errors(f"read subnet {subnet} of VNet {vnet}"):
            try:
                found = self.clients.network.subnets.get(group, vnet, subnet)
            except ResourceNotFoundError:
                return None
        return SubnetFacts(str(found.id), reference_id(found.network_security_group) or None,
                           len(found.ip_configurations or ()), len(found.private_endpoints or ()))

    def guard_subnet(self, place: EndpointPlace, region: str, tags: dict[str, str]) -> str:
        """The service's group on the endpoint's subnet, obeyed by its endpoints; returns its id.
        The group is made with the rule that drops whatever no allow rule lets in."""
        network = self.clients.network
        subnet_group, vnet, subnet_name = _subnet_parts(place.subnet_id)
        with arm_errors(f"guard subnet {subnet_name} with network security group {NSG_NAME}"):
            nsg_id = self._endpoints_group(subnet_group, region, tags)
            subnet = network.subnets.get(subnet_group, vnet, subnet_name)
            if not same_id(reference_id(subnet.network_security_group), nsg_id) or _value(
                    subnet.private_endpoint_network_policies) != "Enabled":
                subnet.network_security_group = NetworkSecurityGroup({"id": nsg_id})
                subnet.private_endpoint_network_policies = "Enabled"
                network.subnets.begin_create_or_update(subnet_group, vnet, subnet_name, subnet).result()
        return nsg_id

    def _endpoints_group(self, group: str, region: str, tags: dict[str, str]) -> str:
        """The service's network security group in `group`, made with its deny rule if missing."""
        groups = self.clients.network.network_security_groups
        try:
            return str(groups.get(group, NSG_NAME).id)
        except ResourceNotFoundError:
            body = NetworkSecurityGroup({"location": region, "tags": tags, "properties": {
                "securityRules": [_rule_body(deny_rule())]}})
            return str(groups.begin_create_or_update(group, NSG_NAME, body).result().id)

    def security_rules(self, nsg_id: str) -> list[SecurityRule]:
        with arm_errors("read the rules of network security group " + nsg_id.rsplit("/", 1)[-1]):
            found = self.clients.network.network_security_groups.get(_group_of(nsg_id), _name(nsg_id))
        return [_rule(r) for r in found.security_rules or []]

    def put_security_rule(self, nsg_id: str, rule: SecurityRule) -> None:
        with arm_errors(f"write security rule {rule.name}"):
            self.clients.network.security_rules.begin_create_or_update(
                _group_of(nsg_id), _name(nsg_id), rule.name, ArmSecurityRule(_rule_body(rule))).result()

    def delete_security_rule(self, nsg_id: str, name: str) -> None:
        with arm_errors(f"delete security rule {name}"):
            self.clients.network.security_rules.begin_delete(_group_of(nsg_id), _name(nsg_id), name).result()

    # -- private DNS ------------------------------------------------------------------------------

    def file_zones(self, configured: str | None) -> list[DnsZone]:
        """Every `privatelink.file.core.windows.net` zone of the subscription the identity may
        read, and the configured one (maybe in another subscription), with their VNet links."""
        with arm_errors(f"list the {FILE_ZONE} zones"):
            ids = [str(z.id) for z in self.clients.private_dns.private_zones.list()
                   if str(z.name).lower() == FILE_ZONE]
        if configured and not any(same_id(configured, found) for found in ids):
            ids.append(configured)
        zones = [self._zone(zone_id) for zone_id in ids]
        return [zone for zone in zones if zone is not None]

    def _zone(self, zone_id: str) -> DnsZone | None:
        dns, group = self._dns_of(zone_id), zone_group(zone_id)
        with arm_errors(f"read the private DNS zone {zone_id}"):
            try:
                zone = dns.private_zones.get(group, FILE_ZONE)
                links = list(dns.virtual_network_links.list(group, FILE_ZONE))
            except ResourceNotFoundError:
                return None
        return DnsZone(
            str(zone.id),
            _managed(zone.tags),
            tuple(ZoneLink(str(link.name), str(reference_id(link.virtual_network)), _managed(link.tags))
                  for link in links),
        )

    def _dns_of(self, zone_id: str) -> PrivateDnsManagementClient:
        return self.clients.private_dns_in(zone_id.split("/")[2])

    def own_zone_id(self, group: str) -> str:
        return (f"/subscriptions/{self._subscription}/resourceGroups/{group}/providers/"
                f"Microsoft.Network/privateDnsZones/{FILE_ZONE}")

    def create_zone(self, group: str, tags: dict[str, str]) -> str:
        with arm_errors(f"create private DNS zone {FILE_ZONE}"):
            poller = self.clients.private_dns.private_zones.begin_create_or_update(
                group, FILE_ZONE, PrivateZone({"location": "global", "tags": tags})
            )
            return str(poller.result().id)

    def delete_zone(self, zone_id: str) -> None:
        with arm_errors(f"delete private DNS zone {zone_id}"):
            self._dns_of(zone_id).private_zones.begin_delete(zone_group(zone_id), FILE_ZONE).result()

    def link_zone(self, zone_id: str, vnet_id: str, tags: dict[str, str]) -> None:
        body = VirtualNetworkLink(
            {
                "location": "global",
                "tags": tags,
                "properties": {"virtualNetwork": {"id": vnet_id}, "registrationEnabled": False},
            }
        )
        with arm_errors(f"link the {FILE_ZONE} zone to VNet {vnet_id.rsplit('/', 1)[-1]}"):
            self._dns_of(zone_id).virtual_network_links.begin_create_or_update(
                zone_group(zone_id), FILE_ZONE, link_name(vnet_id), body
            ).result()

    def unlink_zone(self, zone_id: str, link: str) -> None:
        with arm_errors(f"remove the DNS link {link}"):
            self._dns_of(zone_id).virtual_network_links.begin_delete(
                zone_group(zone_id), FILE_ZONE, link
            ).result()

    def zone_records(self, zone_id: str) -> list[DnsRecord]:
        with arm_errors(f"list the A records of {zone_id}"):
            try:
                records = self._dns_of(zone_id).record_sets
                found = list(records.list_by_type(zone_group(zone_id), FILE_ZONE, "A"))
            except ResourceNotFoundError:
                return []
        return [
            DnsRecord(str(r.name), tuple(str(a.ipv4_address) for a in r.a_records or ()),
                      _managed(r.metadata))
            for r in found
        ]

    def put_record(self, zone_id: str, name: str, address: str, tags: dict[str, str]) -> None:
        record = RecordSet(
            {"properties": {"ttl": 10, "aRecords": [{"ipv4Address": address}], "metadata": tags}}
        )
        with arm_errors(f"write the A record {name} in {zone_id}"):
            self._dns_of(zone_id).record_sets.create_or_update(
                zone_group(zone_id), FILE_ZONE, "A", name, record
            )

    def delete_record(self, zone_id: str, name: str) -> None:
        with arm_errors(f"delete the A record {name} in {zone_id}"):
            self._dns_of(zone_id).record_sets.delete(zone_group(zone_id), FILE_ZONE, "A", name)

    def missing_actions(self, scope: str, actions: tuple[str, ...]) -> list[str]:
        """Which of `actions` the service's identity may not do at `scope` (a resource group or a
        resource), by the permissions API asked as itself (no answer at all: it holds nothing)."""
        path = (f"{scope}/providers/Microsoft.Authorization/permissions"
                f"?api-version={AUTHORIZATION_API_VERSION}")
        with arm_errors(f"read the service's permissions on {scope}"):
            response = self.clients.private_dns.send_request(HttpRequest("GET", path))
            if response.status_code in (403, 404):
                return list(actions)
            response.raise_for_status()
        grants = tuple(Grant(tuple(b.get("actions") or ()), tuple(b.get("notActions") or ()))
                       for b in response.json().get("value", []))
        return [action for action in actions if not any(g.allows(action) for g in grants)]

    def endpoint_dns(self, group: str, endpoint: str) -> EndpointDns | None:
        """The zone the endpoint's DNS zone group publishes in, and the endpoint's address."""
        with arm_errors(f"read the DNS zone group of {endpoint}"):
            try:
                found = self.clients.network.private_dns_zone_groups.get(group, endpoint, ZONE_GROUP)
            except ResourceNotFoundError:
                return None
        for config in found.private_dns_zone_configs or ():
            for record in config.record_sets or ():
                if record.ip_addresses:
                    return EndpointDns(str(config.private_dns_zone_id), str(record.ip_addresses[0]))
        return None

    def vnet_dns(self, vnet_id: str) -> VnetDns:
        parts = vnet_id.split("/")
        with arm_errors(f"read VNet {parts[-1]}"):
            found = self.clients.network_in(parts[2]).virtual_networks.get(parts[4], parts[-1])
        servers = found.dhcp_options.dns_servers if found.dhcp_options else None
        return VnetDns(str(found.id), tuple(servers or ()))

    def has_zone_group(self, group: str, endpoint: str) -> bool:
        with arm_errors(f"read the DNS zone group of {endpoint}"):
            try:
                self.clients.network.private_dns_zone_groups.get(group, endpoint, ZONE_GROUP)
            except ResourceNotFoundError:
                return False
        return True

    def create_zone_group(self, group: str, endpoint: str, zone_id: str) -> None:
        body = PrivateDnsZoneGroup(
            {
                "properties": {
                    "privateDnsZoneConfigs": [{"name": "file", "properties": {"privateDnsZoneId": zone_id}}]
                }
            }
        )
        with arm_errors(f"register {endpoint} in {zone_id}"):
            self.clients.network.private_dns_zone_groups.begin_create_or_update(
                group, endpoint, ZONE_GROUP, body
            ).result()
