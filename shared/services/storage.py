"""Storage use cases on the HTTP side: read recorded storage, say who may use it, and accept
create, resize and delete requests, each as its caller: what Azure lets them do at the target,
and whether they own the storage (`AccessControl`), is checked before anything is recorded."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import replace

from shared.domain import rbac
from shared.domain import validation as v
from shared.domain.cloud_init import cloud_config
from shared.domain.commands import CreateStorage, DeleteStorage, PurgeStorage, ResizeStorage
from shared.domain.costs import FALLBACK_STORAGE_PRICE, StoragePrice, monthly_storage_cost, round_money
from shared.domain.data_protection import require_active
from shared.domain.errors import (
    ConcurrentUpdate,
    Conflict,
    ErrorCode,
    NotFound,
    ServiceError,
    ValidationError,
)
from shared.domain.identity import Caller
from shared.domain.models import Billing, DetachMode, StorageAccess, StorageInfo, StorageStatus, VmHealth
from shared.domain.operations import InFlight, OperationKind, storage_subject
from shared.domain.provisioning import differences
from shared.domain.requests import RequestDefaults, StorageRef
from shared.ports import AttachmentRepository, Clock, Page, StorageCloud, StorageRepository
from shared.scripts import run_command_script

from .access import AccessControl
from .operations import OperationIntake, OperationReads, Submission

log = logging.getLogger(__name__)
GIB = 2**30
PAGE = 1000  # Table Storage answers at most 1,000 entities a page


def find_storage(storages: StorageRepository, ref: StorageRef) -> StorageInfo:
    """The recorded storage `ref` names (in its group, when it names one), or StorageNotFound."""
    storage = storages.get(ref.name)
    if storage is None or (ref.resource_group is not None
                           and storage.resource_group.lower() != ref.resource_group.lower()):
        where = f" in resource group {ref.resource_group}" if ref.resource_group else ""
        raise NotFound(
            f"Storage {ref.name} is not known to this service{where}.",
            causes=["it was never created through this service, or it was purged"],
            try_hint="list what exists with GET /api/storage",
            code=ErrorCode.STORAGE_NOT_FOUND,
        )
    return storage


def every_storage(storages: StorageRepository, resource_group: str | None = None) -> Iterator[StorageInfo]:
    """Every recorded storage (of a group), page by page."""
    continuation = None
    while True:
        page = storages.list(resource_group, PAGE, continuation)
        yield from page.items
        if page.continuation is None:
            return
        continuation = page.continuation


def _require_same_settings(existing: StorageInfo, command: CreateStorage) -> None:
    """The same create again repairs a storage; one with other settings is a mistake to say, never
    a silent resize (a size changes through PATCH; the rest is fixed at creation)."""
    differing = differences(existing, command)
    if differing:
        raise Conflict(
            f"Storage {existing.name} exists with other settings.",
            causes=differing,
            try_hint=f'change its size with PATCH /api/storage/{existing.name} {{"size": <GiB>}}; '
                     "the other settings are fixed at creation: create a storage with another name",
            code=ErrorCode.STORAGE_EXISTS,
        )


class StorageService:
    """`cloud` is called on first need: building the service imports no Resource Manager SDK."""

    def __init__(self, storages: StorageRepository, attachments: AttachmentRepository,
                 intake: OperationIntake, access: AccessControl, defaults: RequestDefaults, clock: Clock,
                 *, cloud: Callable[[], StorageCloud],
                 reads: OperationReads,
                 price: Callable[[StorageInfo], StoragePrice] | None = None) -> None:
        self.reads = reads
        self.storages = storages
        self.attachments = attachments
        self.intake = intake
        self.access = access
        self.defaults = defaults
        self.clock = clock
        self.cloud = cloud
        self.price = price or (lambda storage: FALLBACK_STORAGE_PRICE)

    def list(self, caller: Caller, resource_group: str | None, page_size: int,
             continuation: str | None) -> Page[StorageInfo]:
        """Recorded storage the caller may read whose account still exists in Azure: one page of
        records joined with one Resource Manager listing, never a call per account."""
        page = self.storages.list(resource_group, page_size, continuation)
        readable = [s for s in page.items if self.access.can_read(caller, s)]
        if not readable:
            return Page([], page.continuation)
        existing = {a.name for a in self.cloud().list_accounts(resource_group) if a.managed}
        return Page([s for s in readable if s.name in existing], page.continuation)

    def get(self, caller: Caller, ref: StorageRef) -> StorageInfo:
        storage = self.find(ref)
        self.access.require_read(caller, storage)
        return storage

    def get_or_creating(self, caller: Caller, ref: StorageRef) -> StorageInfo | InFlight:
        """The storage, or the create still under way that will make it."""
        try:
            return self.get(caller, ref)
        except NotFound:
            creating = self.reads.in_flight(caller, storage_subject(ref.name), OperationKind.CREATE_STORAGE)
            group = str(creating.params.get("resourceGroup", "")) if creating is not None else ""
            elsewhere = ref.resource_group is not None and group.lower() != ref.resource_group.lower()
            if creating is None or elsewhere:
                raise
            return InFlight("Creating", {"name": ref.name, "resourceGroup": group},
                            creating)

    def find(self, ref: StorageRef) -> StorageInfo:
        """The recorded storage, whoever asks (the checks are the caller's)."""
        return find_storage(self.storages, ref)

    def status(self, caller: Caller, ref: StorageRef) -> StorageStatus:
        storage = self.get(caller, ref)
        attached = sorted(self.attachments.list_for_storage(storage.name), key=lambda a: a.vm.lower())
        price = self.price(storage)
        used = self.used_gb(storage)
        return StorageStatus(
            info=storage,
            used_gb=used,
            utilization_percent=None if used is None else round(100 * used / storage.size_gb, 2),
            connected_vms=tuple(a.vm for a in attached),
            cost_per_month=round_money(monthly_storage_cost(storage.size_gb, price, storage.iops,
                                                            storage.throughput_mibps)),
            currency=price.currency,
            price_source=price.source.value,
            attachments=tuple(VmHealth(a.vm, a.resource_group, a.health, a.last_verified_at, a.last_error)
                              for a in attached),
        )

    def used_gb(self, storage: StorageInfo) -> float | None:
        """The share's usage from Resource Manager; None (unknown, never 0) when it cannot be read."""
        try:
            share = self.cloud().get_share(storage.resource_group, storage.name, with_usage=True)
        except ServiceError as err:
            log.warning("usage of %s unknown: %s", storage.name, err.message)
            return None
        if share is None or share.usage_bytes is None:
            return None
        return round(share.usage_bytes / GIB, 3)

    def cloud_init(self, caller: Caller, ref: StorageRef, user: str, mount_point: str | None) -> str:
        """The cloud-config that gives a new VM this storage as `user`'s home from its first boot."""
        storage = self.get(caller, ref)
        require_active(storage, "give a new VM its home")
        return cloud_config(storage, user, mount_point or f"/home/{user}", run_command_script("attach"),
                            self.defaults.home_roots)

    def request_create(self, caller: Caller, command: CreateStorage,
                       idempotency_key: str | None) -> Submission:
        """The caller needs `storageAccounts/write` on the group and the right to put the endpoint
        in its network: `subnets/join/action` on the named subnet, or `virtualNetworks/write` on
        the group when the service makes its own VNet there; to let the service guard a subnet
        they name (`guardSubnet`), `subnets/write` on it and the group's right to make and join
        network security groups. The same request for a storage that
        exists (it repairs it) is its owners' to make."""
        access, group = self.access, command.resource_group
        existing = self.storages.get(command.name)
        if existing is not None:
            access.require_owner(caller, existing, "create it again")
            require_active(existing, "create it again")
            _require_same_settings(existing, command)
        else:
            access.require_name_free_or_owned(caller, group, command.name, "create it")
        access.require(caller, rbac.STORAGE_WRITE, access.group(group))
        if command.vnet:
            subnet = access.subnet(group, command.vnet, command.subnet or "default")
            access.require(caller, rbac.SUBNET_JOIN, subnet)
            if command.guard_subnet:  # the service changes their subnet: only as they could
                access.require(caller, rbac.SUBNET_WRITE, subnet)
                access.require(caller, rbac.NSG_WRITE, access.group(group))
                access.require(caller, rbac.NSG_JOIN, access.group(group))
        else:
            access.require(caller, rbac.VNET_WRITE, access.group(group))
        return self.intake.submit_for(caller, command, idempotency_key)

    def request_resize(self, caller: Caller, ref: StorageRef, size: object | None,
                       idempotency_key: str | None, *, iops: int | None = None,
                       throughput_mibps: int | None = None) -> Submission:
        """A new size (within the range of the storage's billing model), and for provisioned v2
        new IOPS or throughput."""
        storage = self.find(ref)
        size_gb = None if size is None else v.size_gib(size, "size", storage.billing)
        performance = iops is not None or throughput_mibps is not None
        if performance and storage.billing is not Billing.PROVISIONED_V2:
            raise ValidationError(
                f"Storage {storage.name} is billed {storage.billing.value}: its IOPS and throughput follow "
                "its size.", try_hint="change its size instead")
        command = ResizeStorage(storage.name, storage.resource_group, size_gb, iops, throughput_mibps)
        self.access.require_owner(caller, storage, "resize it")
        require_active(storage, "resize it")
        self.access.require(caller, rbac.STORAGE_WRITE, self.access.storage_scope(storage))
        return self.intake.submit_for(caller, command, idempotency_key)

    def request_delete(self, caller: Caller, ref: StorageRef, force: bool, idempotency_key: str | None,
                       detach_mode: DetachMode = DetachMode.COPY, purge: bool = False) -> Submission:
        """A name this service never made is not found (a typo is told, never a bare success).
        One whose creation left owners but no record (a create under way, or one whose worker
        died) is accepted: the worker decides what of ours is left in Azure. An owner deletes
        recorded storage; either way the caller needs `storageAccounts/delete` on the account.
        `purge` ends the kept window of a storage deleted already (two steps: never by one stray
        call)."""
        storage = self.storages.get(ref.name)
        if purge:
            return self._request_purge(caller, ref, storage, idempotency_key)
        if storage is None and not self.access.record(ref.name).owners:
            self.find(ref)  # the NotFound, with its hints
        if storage is not None:
            ref = StorageRef(storage.name, storage.resource_group)
            self.access.require_owner(caller, storage, "delete it")
            self.access.require(caller, rbac.STORAGE_DELETE, self.access.storage_scope(storage))
            attached = sorted(a.vm for a in self.attachments.list_for_storage(storage.name))
            if attached and not force:
                raise Conflict(
                    f"Storage {storage.name} is the home of {len(attached)} VM(s).",
                    causes=[f"attached: {', '.join(attached)}"],
                    try_hint="detach them first, or delete with force=true to detach them safely "
                             "first (each VM keeps a copy of the shared home; mode=restore gives "
                             "each its pre-attach home instead)",
                    code=ErrorCode.STORAGE_IN_USE,
                )
        resource_group = ref.resource_group or self.defaults.resource_group
        if resource_group is None:
            raise ValidationError(
                "'resourceGroup' is required for storage this service has no record of.",
                try_hint="add ?resourceGroup=<name>",
            )
        command = DeleteStorage(ref.name, resource_group, force, detach_mode)
        if storage is None:
            self.access.require_name_free_or_owned(caller, resource_group, ref.name, "delete it")
            self.access.require(caller, rbac.STORAGE_DELETE, self.access.account(resource_group, ref.name))
        return self.intake.submit_for(caller, command, idempotency_key)

    def _request_purge(self, caller: Caller, ref: StorageRef, storage: StorageInfo | None,
                       idempotency_key: str | None) -> Submission:
        if storage is None or (ref.resource_group is not None
                               and storage.resource_group.lower() != ref.resource_group.lower()):
            self.find(ref)  # the NotFound
        assert storage is not None
        self.access.require_owner(caller, storage, "purge it")
        self.access.require(caller, rbac.STORAGE_DELETE, self.access.storage_scope(storage))
        if not storage.deleted:
            raise Conflict(f"Storage {storage.name} is not deleted: purge ends the window of a deleted one.",
                           try_hint=f"delete it first (DELETE /api/storage/{storage.name}), then purge",
                           code=ErrorCode.STORAGE_NOT_DELETED)
        return self.intake.submit_for(caller, PurgeStorage(storage.name, storage.resource_group, now=True),
                                      idempotency_key)

    # -- owners and members -----------------------------------------------------------------------

    def access_of(self, caller: Caller, ref: StorageRef) -> StorageAccess:
        storage = self.find(ref)
        return self.access.require_owner(caller, storage, "see who may use it")

    def set_access(self, caller: Caller, ref: StorageRef, owners: Iterable[str],
                   members: Iterable[str]) -> StorageAccess:
        """Replace the owners and members. Owners only (with `storageAccounts/write` on the
        account); the last owner cannot be removed."""
        storage = self.find(ref)
        current = self.access.require_owner(caller, storage, "change who may use it")
        self.access.require(caller, rbac.STORAGE_WRITE, self.access.storage_scope(storage))
        owners, members = tuple(owners), tuple(members)
        if not owners:
            raise Conflict(f"Storage {storage.name} must keep at least one owner.",
                           causes=["the request removes every owner"],
                           try_hint="add the new owner before removing the last one",
                           code=ErrorCode.LAST_OWNER)
        changed = replace(current, owners=owners, members=members, updated_at=self.clock.now(),
                          updated_by=caller.principal)
        if current.etag is None:  # recorded before access control: the first record of it
            saved = self.access.records.add(changed)
            if saved.owners != owners or saved.members != members:
                raise ConcurrentUpdate(f"The access of storage {storage.name} was changed meanwhile.",
                                       try_hint="read it again, then send the change")
            return saved
        return self.access.records.save(changed)
