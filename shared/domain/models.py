"""The service's records and results, as immutable values.

StorageInfo, StorageStatus, MountResult, UnmountResult and MountInfo follow the seed design
(`azure-files-nfs-design.md`), corrected where Azure differs (no Standard tier, redundancy is
explicit, usage can be unknown). Their JSON shapes come from `serialization.to_json`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import Enum

from .errors import Conflict, ErrorCode
from .identity import Principal
from .serialization import OMIT_IF_NONE

SHARE_NAME = "home"
FILE_ENDPOINT_SUFFIX = "file.core.windows.net"


class Tier(str, Enum):
    """Only SSD (premium) Azure Files shares serve NFS 4.1."""

    PREMIUM = "Premium"


class Redundancy(str, Enum):
    LRS = "LRS"
    ZRS = "ZRS"


class Billing(str, Enum):
    """How Azure bills an SSD file share (understanding-billing.md). Provisioned v2 is what
    Microsoft recommends for new deployments: storage, IOPS and throughput bought apart, from
    32 GiB. Provisioned v1: storage only, IOPS and throughput follow the size, from 100 GiB."""

    PROVISIONED_V2 = "provisionedV2"
    PROVISIONED_V1 = "provisionedV1"


class DetachMode(str, Enum):
    COPY = "copy"  # copy the shared home onto the VM's disk, then unmount
    RESTORE = "restore"  # unmount and put back the home the VM had before attach


class StorageState(str, Enum):
    ACTIVE = "Active"
    # A forced delete is detaching its VMs: no new attach starts. Active again if one fails.
    DELETING = "Deleting"
    # Deleted by its owner and kept until `purge_after`: its VMs are detached and its endpoint is
    # gone, but the account, its share and its snapshots stay (locked) and an undelete brings it
    # back. The purge timer deletes it for good after the window.
    DELETED = "Deleted"


class AttachmentHealth(str, Enum):
    UNKNOWN = "unknown"  # not verified yet
    HEALTHY = "healthy"
    UNMOUNTED = "unmounted"
    WRONG_SOURCE = "wrongSource"
    VM_GONE = "vmGone"
    STORAGE_GONE = "storageGone"
    UNSAFE_MOUNT = "unsafeMount"  # mounted without nosuid,nodev


def nfs_endpoint(account: str) -> str:
    """`<account>.file.core.windows.net:/<account>/home`: what `mount -t nfs` takes."""
    return f"{account}.{FILE_ENDPOINT_SUFFIX}:/{account}/{SHARE_NAME}"


@dataclass(frozen=True)
class StorageInfo:
    name: str
    resource_group: str
    region: str
    tier: Tier
    redundancy: Redundancy
    size_gb: int
    nfs_endpoint: str
    created_at: datetime
    # The UID owning the home on the share, recorded by the first attach: every later VM must
    # give its user the same UID, or every file would belong to someone else there.
    owner_uid: int | None = field(default=None, metadata=OMIT_IF_NONE)
    # The account requires secure transfer: NFS reaches it only through aznfs's TLS tunnel.
    encryption_in_transit: bool = False
    billing: Billing = Billing.PROVISIONED_V1  # records made before v2 were v1
    iops: int | None = field(default=None, metadata=OMIT_IF_NONE)  # provisioned v2 only
    throughput_mibps: int | None = field(default=None, metadata=OMIT_IF_NONE)  # provisioned v2 only
    # Where its private endpoint goes (an undelete puts it back there); None: the service's VNet.
    vnet: str | None = field(default=None, metadata=OMIT_IF_NONE)
    subnet: str | None = field(default=None, metadata=OMIT_IF_NONE)
    state: StorageState = StorageState.ACTIVE
    deleted_at: datetime | None = field(default=None, metadata=OMIT_IF_NONE)
    purge_after: datetime | None = field(default=None, metadata=OMIT_IF_NONE)

    @property
    def deleted(self) -> bool:
        return self.state is StorageState.DELETED


@dataclass(frozen=True)
class VmHealth:
    """An attached VM as the reconcile timer (or a verify) last found it."""

    vm: str
    resource_group: str
    health: AttachmentHealth
    last_verified_at: datetime | None
    last_error: str | None = field(default=None, metadata=OMIT_IF_NONE)


@dataclass(frozen=True)
class StorageStatus:
    info: StorageInfo
    used_gb: float | None  # None: usage could not be read (never reported as 0)
    utilization_percent: float | None
    connected_vms: tuple[str, ...]
    cost_per_month: Decimal
    currency: str
    price_source: str
    attachments: tuple[VmHealth, ...] = ()


@dataclass(frozen=True)
class Attachment:
    storage: str
    vm: str
    resource_group: str
    mount_point: str
    attached_at: datetime
    vm_id: str | None = None
    owner: str | None = None
    backup_path: str | None = None
    health: AttachmentHealth = AttachmentHealth.UNKNOWN
    last_verified_at: datetime | None = None
    last_error: str | None = field(default=None, metadata=OMIT_IF_NONE)
    # The VM's private address when attached: the storage's network rule lets it in until detach.
    address: str | None = field(default=None, metadata=OMIT_IF_NONE)


@dataclass(frozen=True)
class StorageAccess:
    """Who may use a storage besides what Azure lets them do: owners (change it, delete it, say
    who may use it) and members (attach their VMs to it). Object ids of users, groups or service
    principals; the creator is the first owner, and the last owner cannot be removed."""

    storage: str
    owners: tuple[str, ...]
    members: tuple[str, ...] = ()
    updated_at: datetime | None = None
    updated_by: Principal | None = field(default=None, metadata=OMIT_IF_NONE)
    etag: str | None = field(default=None, compare=False, metadata={"json": False})

    def owned_by(self, identities: frozenset[str]) -> bool:
        return not identities.isdisjoint(self.owners)

    def open_to(self, identities: frozenset[str]) -> bool:
        """An owner or a member: may attach a VM to the storage and read it."""
        return self.owned_by(identities) or not identities.isdisjoint(self.members)


@dataclass(frozen=True)
class DefaultStorage:
    """The storage a resource group's new VMs are attached to when their auto-attach tag names
    none (azlin's `default_nfs_storage`)."""

    resource_group: str
    storage: str
    set_at: datetime


@dataclass(frozen=True)
class MountResult:
    success: bool
    mount_point: str
    nfs_endpoint: str
    backed_up_files: int = 0
    copied_files: int = 0
    backup_path: str | None = None
    rolled_back: bool = False
    errors: tuple[str, ...] = ()


@dataclass(frozen=True)
class UnmountResult:
    success: bool
    mount_point: str
    mode: DetachMode
    copied_files: int = 0
    kept_path: str | None = None  # the copy that was not put in place is kept, never removed
    errors: tuple[str, ...] = ()


@dataclass(frozen=True)
class MountInfo:
    mount_point: str
    nfs_endpoint: str
    filesystem_type: str
    mount_options: str
    in_fstab: bool
    encrypted: bool = False  # through aznfs's TLS tunnel


@dataclass(frozen=True)
class VerifiedAttachment:
    """A recorded attachment beside what is live on the VM now (`live` is None when nothing is
    mounted there or the VM could not be asked)."""

    attachment: Attachment
    health: AttachmentHealth
    live: MountInfo | None
    verified_at: datetime


def attached_elsewhere(vm: str, existing: Attachment) -> Conflict:
    """The refusal for a VM whose home is already another storage's share."""
    return Conflict(
        f"VM {vm} is already attached to storage {existing.storage}.",
        causes=[f"{existing.mount_point} on {vm} is the share of {existing.storage}"],
        try_hint=f"detach it first: DELETE /api/vms/{vm}/attachment?resourceGroup={existing.resource_group}",
        code=ErrorCode.VM_ATTACHED_ELSEWHERE,
    )
