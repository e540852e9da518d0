"""What NFS storage is made of in Azure, and the rules for reusing what already exists.

Pure: the storage lifecycle service asks Resource Manager (through the `StorageCloud` port) what
exists, and these functions say what it should be, what differs, and what a step may reuse.

One storage = a FileStorage account (premium SSD: the only tier serving NFS 4.1) that requires
secure transfer unless asked not to (NFS then goes through aznfs's TLS tunnel; a customer's "on" is
never switched off), no public network access, network default Deny; one
NFS share `home`; a private endpoint (`file`) in a subnet; the `privatelink.file.core.windows.net`
zone linked to the endpoint's VNet and holding its A record (the endpoint's DNS zone group).

Root squash is `NoRootSquash`, on purpose: attach runs as root on the VM and must create the
user's home on the share and copy files with their owners (`cp -a`, `chown`); with `RootSquash`
root becomes nobody and that fails. The network is the boundary instead: only VMs whose VNet
reaches the private endpoint can mount at all.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from .commands import CreateStorage
from .errors import Conflict, ErrorCode, ServiceError
from .models import Billing, Redundancy, StorageInfo, Tier, nfs_endpoint
from .serialization import format_time

MANAGED_BY_TAG, MANAGED_BY = "managed-by", "azlin"
CREATED_BY_TAG = "created-by"
ROOT_SQUASH = "NoRootSquash"
ZONE_GROUP = "default"
# Created when a request names no network (and settings name none): documented in the README.
DEFAULT_VNET, DEFAULT_VNET_SPACE = "azlin-vnet", "10.42.0.0/16"
DEFAULT_SUBNET, DEFAULT_SUBNET_PREFIX = "azlin-storage", "10.42.0.0/24"
CREATE_STEPS = (
    "Checking the resource group and name",
    "Preparing the network",
    "Creating the storage account",
    "Creating the NFS share",
    "Connecting the private endpoint and DNS",
    "Recording the storage",
)
DELETE_STEPS = (
    "Checking attachments (a forced delete detaches them first)",
    "Removing the private endpoint",
    "Keeping the storage for undelete",
)
PURGE_STEPS = (
    "Deleting the storage account",
    "Removing unused DNS and network",
    "Forgetting the storage",
)
UNDELETE_STEPS = (
    "Checking the kept account",
    "Connecting the private endpoint and DNS",
    "Recording the storage",
)


def endpoint_name(account: str) -> str:
    return f"{account}-file-pe"


def sku_for(tier: Tier, redundancy: Redundancy, billing: Billing = Billing.PROVISIONED_V2) -> str:
    """`PremiumV2_LRS` (provisioned v2) or `Premium_LRS` (v1): azure-rest-api-specs Microsoft.Storage
    stable/2024-01-01/common.json, SkuName."""
    assert tier is Tier.PREMIUM  # the only tier that exists: validation refuses the others
    return f"{'PremiumV2' if billing is Billing.PROVISIONED_V2 else 'Premium'}_{redundancy.value}"


def managed_tags(creator: str | None = None) -> dict[str, str]:
    tags = {MANAGED_BY_TAG: MANAGED_BY}
    if creator:
        tags[CREATED_BY_TAG] = creator
    return tags


@dataclass(frozen=True)
class AccountSpec:
    """The storage account to create (or that an existing one must match)."""

    name: str
    resource_group: str
    region: str
    sku: str
    tags: dict[str, str] = field(default_factory=dict)
    https_only: bool = True  # secure transfer required: NFS through TLS (aznfs) only


@dataclass(frozen=True)
class CloudAccount:
    """A storage account as Resource Manager reports it."""

    id: str
    name: str
    resource_group: str
    region: str
    kind: str
    sku: str
    https_only: bool
    public_network_access: str
    default_action: str
    minimum_tls: str
    tags: dict[str, str]
    provisioning_state: str
    created_at: datetime | None = None
    # Other paths to its data: private endpoints connected to it (ids) and its network rules
    # (subnets with a service endpoint, IP ranges); the service makes one endpoint and no rule.
    endpoints: tuple[str, ...] = ()
    network_rules: tuple[str, ...] = ()

    def other_paths(self) -> list[str]:
        """Ways to this account's data the service did not make."""
        ours = (f"/resourcegroups/{self.resource_group}/providers/microsoft.network/privateendpoints/"
                f"{endpoint_name(self.name)}").lower()
        found = [f"private endpoint {e.rsplit('/', 1)[-1]} ({e})" for e in self.endpoints
                 if not e.lower().endswith(ours)]
        return found + [f"network rule {rule}" for rule in self.network_rules]

    @property
    def managed(self) -> bool:
        return self.tags.get(MANAGED_BY_TAG) == MANAGED_BY

    @property
    def redundancy(self) -> Redundancy | None:
        suffix = self.sku.rsplit("_", 1)[-1]
        return Redundancy(suffix) if suffix in Redundancy.__members__ else None

    @property
    def billing(self) -> Billing:
        return Billing.PROVISIONED_V2 if self.sku.startswith("PremiumV2") else Billing.PROVISIONED_V1


@dataclass(frozen=True)
class CloudShare:
    quota_gib: int
    protocol: str
    root_squash: str | None
    usage_bytes: int | None = None
    iops: int | None = None  # provisioned v2
    throughput_mibps: int | None = None
    # When Azure lets each go down again: 24 hours after its last increase (None: any time).
    next_quota_downgrade: datetime | None = None
    next_iops_downgrade: datetime | None = None
    next_throughput_downgrade: datetime | None = None


def downgrade_refused(name: str, share: CloudShare, size_gb: int, iops: int | None,
                      throughput_mibps: int | None, azure: ServiceError) -> Conflict:
    """Azure's refusal to lower a share's size, IOPS or throughput within 24 hours of raising
    it, saying when each quantity asked lower may go down (the share's nextAllowed...Time)."""
    lowered = [
        (f"size ({share.quota_gib} -> {size_gb} GiB)", "nextAllowedQuotaDowngradeTime",
         share.next_quota_downgrade, size_gb < share.quota_gib),
        (f"IOPS ({share.iops} -> {iops})", "nextAllowedProvisionedIopsDowngradeTime",
         share.next_iops_downgrade, iops is not None and share.iops is not None and iops < share.iops),
        (f"throughput ({share.throughput_mibps} -> {throughput_mibps} MiB/s)",
         "nextAllowedProvisionedBandwidthDowngradeTime", share.next_throughput_downgrade,
         throughput_mibps is not None and share.throughput_mibps is not None
         and throughput_mibps < share.throughput_mibps),
    ]
    known = [(what, prop, at) for what, prop, at, lower in lowered if lower and at is not None]
    when = max((at for _, _, at in known), default=None)
    return Conflict(
        "Azure lowers a share's size, IOPS or throughput only 24 hours after its last increase"
        + (f": {name} can be made smaller from {format_time(when)}." if when else "."),
        causes=[*azure.causes, *(f"{what}: {prop} {format_time(at)}" for what, prop, at in known)],
        code=ErrorCode.QUOTA_DOWNGRADE_NOT_ALLOWED,
        try_hint=f"submit the change again from {format_time(when)}" if when else
        "submit the change again after the share's nextAllowedQuotaDowngradeTime",
    )


@dataclass(frozen=True)
class Network:
    """Where the private endpoint goes."""

    vnet: str
    subnet: str
    vnet_id: str
    subnet_id: str
    resource_group: str
    region: str = ""
    dns_servers: tuple[str, ...] = ()


def incompatibilities(existing: CloudAccount, spec: AccountSpec) -> list[str]:
    """Why an existing account cannot become this storage; empty when it can be reused."""
    found = []
    if not existing.managed:
        found.append(f"it has no '{MANAGED_BY_TAG}: {MANAGED_BY}' tag: this service did not create it")
    if existing.kind != "FileStorage":
        found.append(f"its kind is {existing.kind}; NFS needs FileStorage")
    if existing.sku != spec.sku:
        found.append(f"its SKU is {existing.sku}; the request asks for {spec.sku}")
    if existing.region != spec.region:
        found.append(f"it is in {existing.region}; the request asks for {spec.region}")
    return found


def drifted(existing: CloudAccount, spec: AccountSpec) -> list[str]:
    """Settings of a reusable account that must be put back (someone changed them). Secure
    transfer switched on is never drift: only the other way round."""
    found = []
    if spec.https_only and not existing.https_only:
        found.append("secure transfer is not required (this storage requires encryption in transit)")
    if existing.public_network_access != "Disabled":
        found.append("public network access is enabled")
    if existing.default_action != "Deny":
        found.append("the network default action is not Deny")
    if existing.minimum_tls != "TLS1_2":
        found.append("the minimum TLS version is not 1.2")
    return found


def differences(storage: StorageInfo, asked: CreateStorage) -> list[str]:
    """How a create request differs from the storage of that name: each as "field: is X, asked Y".
    A setting the request leaves to a default counts too, so a repeat of the first request after a
    resize is told, never resizes it back. Region, network and performance count only when named."""
    def show(value: object) -> str:
        return str(getattr(value, "value", value))

    pairs: list[tuple[str, object, object]] = [
        ("resourceGroup", storage.resource_group.lower(), asked.resource_group.lower()),
        ("tier", storage.tier, asked.tier),
        ("redundancy", storage.redundancy, asked.redundancy),
        ("billing", storage.billing, asked.billing),
        ("size", storage.size_gb, asked.size_gb),
        ("encryptionInTransit", _required_or_off(storage.encryption_in_transit),
         _required_or_off(asked.encryption_in_transit)),
    ]
    if asked.region is not None:
        pairs.append(("region", storage.region.lower(), asked.region.lower()))
    if asked.vnet is not None and storage.vnet is not None:  # None: the service's own network
        pairs.append(("vnet", (storage.vnet or "").lower(), asked.vnet.lower()))
        pairs.append(("subnet", (storage.subnet or "").lower(), (asked.subnet or "").lower()))
    if asked.iops is not None:
        pairs.append(("iops", storage.iops, asked.iops))
    if asked.throughput_mibps is not None:
        pairs.append(("throughputMibps", storage.throughput_mibps, asked.throughput_mibps))
    return [f"{field}: is {show(now)}, asked {show(wanted)}" for field, now, wanted in pairs if now != wanted]


def _required_or_off(encrypted: bool) -> str:
    return "required" if encrypted else "off"


def storage_info(account: CloudAccount, share: CloudShare, now: datetime) -> StorageInfo:
    return StorageInfo(
        name=account.name,
        resource_group=account.resource_group,
        region=account.region,
        tier=Tier.PREMIUM,
        redundancy=account.redundancy or Redundancy.LRS,
        size_gb=share.quota_gib,
        nfs_endpoint=nfs_endpoint(account.name),
        created_at=account.created_at or now,
        encryption_in_transit=account.https_only,
        billing=account.billing,
        iops=share.iops,
        throughput_mibps=share.throughput_mibps,
    )


def used_gib(usage_bytes: int) -> int:
    """Whole GiB a share needs to hold `usage_bytes` (what a quota must be at least)."""
    return -(-usage_bytes // 2**30)
