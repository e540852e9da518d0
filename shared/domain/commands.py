"""Commands: validated requests for work, one per operation kind.

A command knows what it acts on (`target`) and which per-resource locks it needs: `lock_keys`
for what it changes (one such operation per storage account and per VM at a time), and
`shared_lock_keys` for what only must not change under it (attaches to one storage run side by
side; a resize or delete of that storage waits for them, and they for it). Commands travel inside an
Operation as JSON (`params`) and are rebuilt by the worker with `command_for`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from .errors import ValidationError
from .models import Billing, DetachMode, Redundancy, Tier
from .operations import Operation, OperationKind
from .serialization import from_json, to_json


def storage_lock(name: str) -> str:
    return f"storage:{name}"


def vm_lock(resource_group: str, vm: str) -> str:
    # Azure resource names are case-insensitive; so are our locks on them.
    return f"vm:{resource_group.lower()}:{vm.lower()}"


def network_lock(storage: str) -> str:
    """A storage's network rule and DNS links: read and written whole, one writer at a time."""
    return f"network:{storage}"


class _OnStorage:
    """Mutates one storage account: locks it."""

    name: str

    @property
    def target(self) -> str:
        return f"storage/{self.name}"

    @property
    def storage_name(self) -> str | None:
        """The storage it concerns: its owners see it in the storage's operations."""
        return self.name

    @property
    def lock_keys(self) -> tuple[str, ...]:
        return (storage_lock(self.name),)

    @property
    def shared_lock_keys(self) -> tuple[str, ...]:
        return ()


class _OnVm:
    """Mutates one VM: locks it."""

    vm: str
    resource_group: str

    @property
    def target(self) -> str:
        return f"vm/{self.resource_group}/{self.vm}"

    @property
    def storage_name(self) -> str | None:
        return None

    @property
    def lock_keys(self) -> tuple[str, ...]:
        return (vm_lock(self.resource_group, self.vm),)

    @property
    def shared_lock_keys(self) -> tuple[str, ...]:
        return ()


@dataclass(frozen=True)
class CreateStorage(_OnStorage):
    KIND: ClassVar[OperationKind] = OperationKind.CREATE_STORAGE
    name: str
    resource_group: str
    region: str | None = None  # None: the resource group's region
    tier: Tier = Tier.PREMIUM
    redundancy: Redundancy = Redundancy.LRS
    size_gb: int = 100
    vnet: str | None = None  # None: the settings' network, else the documented default one
    subnet: str | None = None
    # Require secure transfer on the account: NFS only through TLS (aznfs) mounts.
    encryption_in_transit: bool = True
    billing: Billing = Billing.PROVISIONED_V2
    iops: int | None = None  # provisioned v2: None is Azure's recommendation for the size
    throughput_mibps: int | None = None
    # The caller lets the service put its network security group on their subnet (`vnet`): only
    # attached VMs then reach the endpoint there too (network_rules.guard_refusal says when not).
    guard_subnet: bool = False


@dataclass(frozen=True)
class ResizeStorage(_OnStorage):
    KIND: ClassVar[OperationKind] = OperationKind.RESIZE_STORAGE
    name: str
    resource_group: str
    size_gb: int | None  # None: the size stays
    iops: int | None = None  # provisioned v2 only; None: as it is
    throughput_mibps: int | None = None


@dataclass(frozen=True)
class DeleteStorage(_OnStorage):
    KIND: ClassVar[OperationKind] = OperationKind.DELETE_STORAGE
    name: str
    resource_group: str
    force: bool = False
    # How a forced delete gives attached VMs their home back. Copy (the default): each keeps the
    # shared files on its own disk, so the delete removes no file anyone still has. Restore: each
    # gets its pre-attach home, and what was written on the share goes with the account.
    detach_mode: DetachMode = DetachMode.COPY


@dataclass(frozen=True)
class UndeleteStorage(_OnStorage):
    """Bring a deleted storage back within its window: its endpoint, DNS name and network rule
    again; its VMs attach again through the API."""

    KIND: ClassVar[OperationKind] = OperationKind.UNDELETE_STORAGE
    name: str
    resource_group: str


@dataclass(frozen=True)
class PurgeStorage(_OnStorage):
    """Delete for good a storage whose window has passed (the purge timer asks for it)."""

    KIND: ClassVar[OperationKind] = OperationKind.PURGE_STORAGE
    name: str
    resource_group: str
    # An owner's `DELETE ...?purge=true` on a storage already deleted: its window ends now.
    now: bool = False


@dataclass(frozen=True)
class RestoreSnapshot(_OnStorage):
    """Put back one path of the home from a share snapshot, through an attached VM (an NFS share
    is reached only over NFS, from the VMs its network rule admits)."""

    KIND: ClassVar[OperationKind] = OperationKind.RESTORE_SNAPSHOT
    name: str
    resource_group: str
    snapshot: str
    path: str
    vm: str
    vm_resource_group: str

    @property
    def lock_keys(self) -> tuple[str, ...]:
        return (storage_lock(self.name), vm_lock(self.vm_resource_group, self.vm))


@dataclass(frozen=True)
class AttachVm(_OnVm):
    KIND: ClassVar[OperationKind] = OperationKind.ATTACH_VM
    storage: str
    vm: str
    resource_group: str  # the VM's
    mount_point: str | None = None  # None: the VM admin user's home
    # Run the attach script even though the attachment is recorded: the reconcile timer found the
    # share unmounted. The script then mounts it again, moving whatever is on the bare directory
    # to a new backup; the record keeps the first attach's backup for a later restore.
    repair: bool = False
    # The VM that asked (its immutable vmId), when known: a VM recreated under the same name
    # before the worker runs is not the one whose writer was allowed.
    vm_id: str | None = None

    @property
    def storage_name(self) -> str | None:
        return self.storage

    @property
    def shared_lock_keys(self) -> tuple[str, ...]:
        """The storage, shared: a fleet's attaches run side by side. What truly takes turns is
        serialized where its data is: the first home's publishing and each SSH key merge under
        the share's own lock (attach.sh), the storage's network rule under its own (NetworkGuard)."""
        return (storage_lock(self.storage),)


@dataclass(frozen=True)
class DetachVm(_OnVm):
    KIND: ClassVar[OperationKind] = OperationKind.DETACH_VM
    vm: str
    resource_group: str
    mode: DetachMode = DetachMode.COPY
    # The storage it was attached to when asked (an owner's eviction is from that storage only).
    storage: str | None = None

    @property
    def storage_name(self) -> str | None:
        return self.storage

    @property
    def shared_lock_keys(self) -> tuple[str, ...]:
        """Its storage, shared, as an attach: the storage must not be deleted or resized under it."""
        return (storage_lock(self.storage),) if self.storage else ()


@dataclass(frozen=True)
class VerifyVm(_OnVm):
    """Ask the VM what is mounted on its recorded mount point (a read-only script): an operation,
    because a Run Command takes longer than an HTTP request may wait (230 s at the front end)."""

    KIND: ClassVar[OperationKind] = OperationKind.VERIFY_VM
    vm: str
    resource_group: str


@dataclass(frozen=True)
class Reconcile:
    """One run of the reconcile timer, a parent operation: a ReconcileVm child for each VM due,
    then (once they all ended) VMs whose event was missed, other ways in, and the run's report."""

    KIND: ClassVar[OperationKind] = OperationKind.RECONCILE
    run: str  # the timer's occurrence (UTC, ISO): one run per occurrence, however often fired

    @property
    def target(self) -> str:
        return f"reconcile/{self.run}"

    @property
    def storage_name(self) -> str | None:
        return None

    @property
    def lock_keys(self) -> tuple[str, ...]:
        """One run at a time, one delivery of it at a time; its children lock what they touch."""
        return ("reconcile",)

    @property
    def shared_lock_keys(self) -> tuple[str, ...]:
        return ()


@dataclass(frozen=True)
class ReconcileVm(_OnVm):
    """A reconcile run's check of one attachment: verify the live mount, then act on its health
    (a repair queued, a gone VM's record removed). Locks the VM: never beside its attach."""

    KIND: ClassVar[OperationKind] = OperationKind.RECONCILE_VM
    vm: str
    resource_group: str
    vm_id: str | None  # the recorded VM's: a VM recreated under the name is not acted on
    run: str  # the parent run's occurrence: one repair per VM and run


Command = (CreateStorage | ResizeStorage | DeleteStorage | UndeleteStorage | PurgeStorage | RestoreSnapshot
           | AttachVm | DetachVm | VerifyVm | Reconcile | ReconcileVm)
COMMANDS: dict[OperationKind, type[Command]] = {
    cls.KIND: cls for cls in (CreateStorage, ResizeStorage, DeleteStorage, UndeleteStorage, PurgeStorage,
                              RestoreSnapshot, AttachVm, DetachVm, VerifyVm, Reconcile, ReconcileVm)
}


def locks_of(command: Command) -> dict[str, bool]:
    """Every lock a command takes, and whether it is shared (exclusive wins when both)."""
    return dict.fromkeys(command.shared_lock_keys, True) | dict.fromkeys(command.lock_keys, False)


def params_of(command: Command) -> dict[str, Any]:
    params: dict[str, Any] = to_json(command)
    return params


def command_for(operation: Operation) -> Command:
    """Rebuild the command an operation carries; a record that does not parse is a final error."""
    try:
        return from_json(COMMANDS[operation.kind], operation.params)
    except (KeyError, TypeError, ValueError) as err:
        raise ValidationError(
            f"Operation {operation.id} carries parameters this version cannot read.",
            causes=[f"{type(err).__name__}: {err}"],
            try_hint="submit the request again",
        ) from err
