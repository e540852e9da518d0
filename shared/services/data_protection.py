"""Share snapshots and the kept window of deleted storage (shared/domain/data_protection.py):

- HTTP side: list a storage's snapshots, take one, and accept a restore of one path from one;
- timers: the daily snapshot of every storage with the expired ones of the service removed, and
  the purge of deleted storage whose window is over;
- before a destructive step (a detach that leaves the share's files behind, a shrink): one more.

Snapshots are Azure's; the service records nothing about them. Its own carry a reason in their
metadata, and only those are ever removed by it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from shared.domain import rbac
from shared.domain.commands import PurgeStorage, RestoreSnapshot, UndeleteStorage
from shared.domain.data_protection import (
    DataProtection,
    ShareSnapshot,
    SnapshotReason,
    expired,
    require_active,
    require_room,
    taken_today,
    with_expiry,
)
from shared.domain.errors import Conflict, ErrorCode, NotFound, ServiceError
from shared.domain.identity import Caller, Principal
from shared.domain.models import Attachment, StorageInfo
from shared.domain.requests import StorageRef, VmRef
from shared.domain.serialization import format_time
from shared.ports import AttachmentRepository, Clock, StorageCloud, StorageRepository

from .access import AccessControl
from .operations import OperationIntake, Submission
from .storage import every_storage, find_storage

log = logging.getLogger(__name__)
SHARE_WRITE = "Microsoft.Storage/storageAccounts/fileServices/shares/write"


class DataProtectionService:
    """`cloud` is called on first need: building the service imports no Resource Manager SDK."""

    def __init__(self, storages: StorageRepository, attachments: AttachmentRepository, access: AccessControl,
                 intake: OperationIntake, clock: Clock, protection: DataProtection, *,
                 cloud: Callable[[], StorageCloud]) -> None:
        self.storages = storages
        self.attachments = attachments
        self.access = access
        self.intake = intake
        self.clock = clock
        self.protection = protection
        self.cloud = cloud

    # -- HTTP side --------------------------------------------------------------------------------

    def snapshots(self, caller: Caller, ref: StorageRef) -> list[ShareSnapshot]:
        """Newest first, the service's own with the moment they will be removed."""
        storage = find_storage(self.storages, ref)
        self.access.require_read(caller, storage)
        days = self.protection.snapshot_retention_days
        found = self.cloud().list_snapshots(storage.resource_group, storage.name)
        return [with_expiry(s, days) for s in sorted(found, key=lambda s: s.taken_at, reverse=True)]

    def take(self, caller: Caller, ref: StorageRef) -> ShareSnapshot:
        """A snapshot now (an owner's, with the right to write the account's shares)."""
        storage = find_storage(self.storages, ref)
        self.access.require_owner(caller, storage, "take a snapshot of it")
        self.access.require(caller, SHARE_WRITE, self.access.storage_scope(storage))
        require_active(storage, "take a snapshot of it")
        taken = self.before(storage, SnapshotReason.ON_REQUEST)
        return with_expiry(taken, self.protection.snapshot_retention_days)

    def request_restore(self, caller: Caller, ref: StorageRef, snapshot: str, path: str, vm: VmRef | None,
                        idempotency_key: str | None) -> Submission:
        """Put back `path` from `snapshot`, through an attached VM the caller may run commands on
        (named, or the first healthy one they may use): the share is reached only over NFS."""
        storage = find_storage(self.storages, ref)
        self.access.require_member(caller, storage, "restore files into it")
        require_active(storage, "restore files into it")
        through = self._restoring_vm(caller, storage, vm)
        if snapshot not in {s.id for s in self.cloud().list_snapshots(storage.resource_group, storage.name)}:
            raise NotFound(f"Storage {storage.name} has no snapshot {snapshot}.",
                           try_hint=f"list them with GET /api/storage/{storage.name}/snapshots",
                           code=ErrorCode.SNAPSHOT_NOT_FOUND)
        command = RestoreSnapshot(storage.name, storage.resource_group, snapshot, path, through.vm,
                                  through.resource_group)
        return self.intake.submit_for(caller, command, idempotency_key)

    def request_undelete(self, caller: Caller, ref: StorageRef, idempotency_key: str | None) -> Submission:
        """Its owners, with what creating it took: writing the account, and joining the subnet its
        endpoint goes back into (or making the service's VNet, which a purge may have removed)."""
        storage = find_storage(self.storages, ref)
        self.access.require_owner(caller, storage, "undelete it")
        self.access.require(caller, rbac.STORAGE_WRITE, self.access.storage_scope(storage))
        if storage.vnet:
            subnet = self.access.subnet(storage.resource_group, storage.vnet, storage.subnet or "default")
            self.access.require(caller, rbac.SUBNET_JOIN, subnet)
        else:
            self.access.require(caller, rbac.VNET_WRITE, self.access.group(storage.resource_group))
        if not storage.deleted:
            raise Conflict(f"Storage {storage.name} is not deleted.", code=ErrorCode.STORAGE_NOT_DELETED,
                           try_hint=f"read it with GET /api/storage/{storage.name}")
        return self.intake.submit_for(caller, UndeleteStorage(storage.name, storage.resource_group),
                                      idempotency_key)

    def _restoring_vm(self, caller: Caller, storage: StorageInfo, vm: VmRef | None) -> Attachment:
        attached = sorted(self.attachments.list_for_storage(storage.name),
                          key=lambda a: (a.health.value != "healthy", a.vm.lower()))
        if vm is not None:
            attached = [a for a in attached if a.vm.lower() == vm.vm.lower()
                        and a.resource_group.lower() == vm.resource_group.lower()]
            if not attached:
                raise Conflict(f"VM {vm.vm} is not attached to storage {storage.name}.",
                               try_hint="name a VM attached to it, or leave 'vm' out",
                               code=ErrorCode.NO_VM_ATTACHED)
        usable = [a for a in attached
                  if self.access.may(caller, rbac.RUN_COMMANDS_WRITE, self.access.vm(a.resource_group, a.vm))]
        if not usable:
            if vm is not None:  # the caller named it: say what they lack on it
                self.access.require(caller, rbac.RUN_COMMANDS_WRITE, self.access.vm(vm.resource_group, vm.vm))
            raise Conflict(f"No VM attached to storage {storage.name} can restore files for you.",
                           causes=["an NFS share is reached only from the VMs attached to it",
                                   "the restore runs a script on one of them: you need "
                                   f"'{rbac.RUN_COMMANDS_WRITE}' on it"],
                           try_hint="attach a VM you may run commands on, then ask again",
                           code=ErrorCode.NO_VM_ATTACHED)
        return usable[0]

    # -- before a destructive step ----------------------------------------------------------------

    def before(self, storage: StorageInfo, reason: SnapshotReason) -> ShareSnapshot:
        """A snapshot now; refused (and the step with it) when the share has Azure's most."""
        cloud = self.cloud()
        require_room(storage.name, len(cloud.list_snapshots(storage.resource_group, storage.name)))
        taken = cloud.take_snapshot(storage.resource_group, storage.name, reason)
        log.info("snapshot %s of %s taken (%s)", taken.id, storage.name, reason.value)
        return taken

    # -- timers -----------------------------------------------------------------------------------

    def run_daily(self) -> dict[str, list[str]]:
        """Every storage (deleted ones too: they are kept to be brought back): today's snapshot if
        it has none, the service's expired ones removed, its delete lock made sure of. One
        storage's failure is logged and the others go on."""
        now = self.clock.now()
        report: dict[str, list[str]] = {"taken": [], "removed": [], "errors": []}
        for storage in every_storage(self.storages):
            try:
                self._daily(storage, now, report)
            except ServiceError as err:
                report["errors"].append(f"{storage.name}: {err.message}")
                log.error("daily snapshot of %s failed: %s", storage.name, err.message)
        return report

    def _daily(self, storage: StorageInfo, now: datetime, report: dict[str, list[str]]) -> None:
        cloud, group, name = self.cloud(), storage.resource_group, storage.name
        if cloud.get_account(group, name) is None:
            report["errors"].append(f"{name}: its account no longer exists")
            return
        snapshots = cloud.list_snapshots(group, name)
        old = expired(snapshots, now, self.protection.snapshot_retention_days)
        if old:  # Azure refuses to delete a snapshot of a locked account (storage-snapshots-files.md)
            cloud.unlock_account(group, name)
        try:
            for snapshot in old:
                cloud.delete_snapshot(group, name, snapshot.id)
                report["removed"].append(f"{name}@{snapshot.id}")
        finally:
            if old or not cloud.account_locked(group, name):
                cloud.lock_account(group, name)
        if not taken_today(snapshots, now):
            require_room(name, len(snapshots) - len(old))
            report["taken"].append(f"{name}@{cloud.take_snapshot(group, name, SnapshotReason.DAILY).id}")

    def purge_due(self) -> list[str]:
        """Queue the purge of every deleted storage whose window is over (once per window)."""
        now, queued = self.clock.now(), []
        timer = Principal.service("purge timer")
        for storage in every_storage(self.storages):
            if storage.deleted and storage.purge_after is not None and storage.purge_after <= now:
                key = f"purge:{storage.name}:{format_time(storage.deleted_at or storage.purge_after)}"
                command = PurgeStorage(storage.name, storage.resource_group)
                self.intake.submit(command, key, requested_by=timer)
                queued.append(storage.name)
        return queued
