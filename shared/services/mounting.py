"""Attach and detach VMs, run by the worker: one managed Run Command per operation runs the
VM script (`shared/scripts`), its RESULT decides, and the attachment is recorded or removed.

Before the script: the VM must exist and run, and its VNet must reach the storage's private
endpoint (the same VNet, or peered both ways); the privatelink zone is then linked to the VM's
VNet so the share's name resolves there. A redelivered message finds the Run Command it started
(named after the operation) and reads its result instead of running the script again."""

from __future__ import annotations

import logging
import secrets
import uuid
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

from shared.domain import provisioning as p
from shared.domain import untrusted
from shared.domain.commands import AttachVm, DetachVm, RestoreSnapshot, VerifyVm
from shared.domain.data_protection import SnapshotReason, require_active, snapshot_directory, snapshot_stamp
from shared.domain.errors import Conflict, DomainError, ErrorCode, NotFound, ValidationError
from shared.domain.models import (
    Attachment,
    AttachmentHealth,
    DetachMode,
    MountInfo,
    StorageInfo,
    VerifiedAttachment,
    attached_elsewhere,
    nfs_endpoint,
)
from shared.domain.mounting import (
    MAX_RUN_ATTEMPTS,
    RESULT_PREFIX,
    SCRIPT_TIMEOUT_SECONDS,
    ScriptRun,
    VmFacts,
    heartbeat_seconds,
    owner_uid,
    run_command_name,
    run_command_prefix,
    script_budget,
)
from shared.domain.serialization import to_json
from shared.domain.validation import DEFAULT_HOME_ROOTS, home_user
from shared.domain.validation import mount_point as mount_point_rule
from shared.ports import AttachmentRepository, Clock, StorageCloud, StorageRepository, VmCloud
from shared.scripts import run_command_script

from .network_guard import NetworkGuard
from .private_dns import PrivateDnsPublisher
from .worker import OperationContext

log = logging.getLogger(__name__)
ATTACH_STEPS = (
    "Reading the VM and its network",
    "Linking the storage's DNS to the VM's network",
    "Running the attach script on the VM",
    "Recording the attachment",
)
VERIFY_TIMEOUT_SECONDS = 120
RESTORE_STEPS = ("Reading the attachment", "Running the restore script on the VM")
DETACH_STEPS = ("Reading the attachment", "Running the detach script on the VM", "Forgetting the attachment")


class MountService:
    def __init__(
        self,
        vms: VmCloud,
        cloud: StorageCloud,
        storages: StorageRepository,
        attachments: AttachmentRepository,
        clock: Clock,
        dns: PrivateDnsPublisher,
        home_roots: tuple[str, ...] = DEFAULT_HOME_ROOTS,
        guard: NetworkGuard | None = None,
        snapshot: Callable[[StorageInfo, SnapshotReason], object] | None = None,
    ) -> None:
        self.guard = guard or NetworkGuard(cloud)
        # Before a detach that leaves the share's files behind (DataProtectionService.before).
        self.snapshot = snapshot
        self.home_roots = home_roots
        self.dns = dns
        self.vms = vms
        self.cloud = cloud
        self.storages = storages
        self.attachments = attachments
        self.clock = clock

    # -- attach -----------------------------------------------------------------------------------

    def attach(self, command: AttachVm, context: OperationContext) -> Mapping[str, Any]:
        total = len(ATTACH_STEPS)
        context.progress(ATTACH_STEPS[0], 0, total)
        storage = self._storage(command.storage)
        require_active(storage, "attach a VM to it")
        vm = self._running_vm(command.resource_group, command.vm)
        if command.vm_id is not None and vm.vm_id != command.vm_id:
            raise Conflict(f"VM {vm.name} was recreated since the attach was asked for (another vmId).",
                           try_hint="attach the new VM through the API if it should have this home")
        existing = self._record_of(vm)
        if existing is not None and existing.storage != storage.name:
            raise attached_elsewhere(command.vm, existing)
        repairing = existing is not None
        if command.repair and not repairing:  # detached (or recreated) since the check found it
            return {"vm": vm.name, "changed": False, "note": "not attached any more: nothing to repair"}
        if repairing and not command.repair:
            return {"attachment": to_json(existing), "changed": False}
        context.progress(ATTACH_STEPS[1], 1, total)
        creator = _creator_of(context)
        self._reach(storage, vm, creator)
        self.guard.admit(storage, vm.private_ip, creator)  # before the mount: the rules let it in
        context.progress(ATTACH_STEPS[2], 2, total)
        mount_point = mount_point_rule(
            (existing.mount_point if repairing and existing else None)
            or command.mount_point
            or f"/home/{vm.admin_user}",
            "mountPoint",
            self.home_roots,
        )
        self.vms.sweep(vm)  # leftovers of crashed or abandoned operations: room under Azure's 25
        result = self._run(
            vm,
            context.operation.id,
            "attach",
            {
                "NFS_ENDPOINT": storage.nfs_endpoint,
                "MOUNT_POINT": mount_point,
                "OWNER": home_user(mount_point),
                "HOME_ROOTS": ":".join(self.home_roots),
                "OWNER_UID": "" if storage.owner_uid is None else str(storage.owner_uid),
                "ENCRYPTION": "tls" if storage.encryption_in_transit else "",
            },
            keep=True,
            creator=creator,
            nonce=context.operation.nonce,
        )
        context.progress(ATTACH_STEPS[3], 3, total)
        if storage.owner_uid is None:  # the first attach: read again, a fleet's attaches run at once
            current = self.storages.get(storage.name)
            if current is not None and current.owner_uid is None:
                self.storages.save(replace(current, owner_uid=owner_uid(result.get("ownerUid"), vm.name)))
        if repairing and existing is not None:
            attachment = replace(
                existing, health=AttachmentHealth.HEALTHY, last_verified_at=self.clock.now(), last_error=None,
                address=vm.private_ip or existing.address,
            )
            if existing.address and existing.address != attachment.address:  # the VM's address changed
                self.release_network(existing)
            self.attachments.save(attachment)
            self._delete_runs(vm, context.operation.id, "attach")
            return {"attachment": to_json(attachment), "changed": True, "repaired": True, "mount": result}
        attachment = self.attachments.add(
            Attachment(
                storage=storage.name,
                vm=vm.name,
                resource_group=vm.resource_group,
                mount_point=mount_point,
                attached_at=self.clock.now(),
                vm_id=vm.vm_id,
                owner=home_user(mount_point),
                backup_path=result.get("backupPath"),
                address=vm.private_ip or None,
                health=AttachmentHealth.HEALTHY,  # the script checked the live mount's source
                last_verified_at=self.clock.now(),
            )
        )
        self.attachments.clear_detached(vm.vm_id)  # attached on request: auto-attach may act again
        # Only now: a redelivery after a failed record must still find the run and its result.
        self._delete_runs(vm, context.operation.id, "attach")
        return {"attachment": to_json(attachment), "changed": True, "mount": result}

    def _record_of(self, vm: VmFacts) -> Attachment | None:
        """The VM's attachment; a record left by an earlier VM of the same name (deleted, its disk
        with it; this one has another vmId) is removed: it describes nothing that exists."""
        existing = self.attachments.get(vm.resource_group, vm.name)
        if existing is not None and existing.vm_id is not None and existing.vm_id != vm.vm_id:
            self.attachments.remove(vm.resource_group, vm.name, vm_id=existing.vm_id)
            return None
        return existing

    def _storage(self, name: str) -> StorageInfo:
        storage = self.storages.get(name)
        if storage is None:
            raise NotFound(
                f"Storage {name} is not known to this service.",
                code=ErrorCode.STORAGE_NOT_FOUND,
                try_hint="create it first with POST /api/storage",
            )
        return storage

    def _running_vm(self, group: str, name: str) -> VmFacts:
        vm = self.vms.get_vm(group, name)
        if vm is None:
            raise NotFound(
                f"VM {name} does not exist in resource group {group}.",
                try_hint="check the VM's name and resource group",
            )
        if vm.power_state not in ("running", "starting"):
            raise Conflict(
                f"VM {name} is {vm.power_state or 'not running'}.",
                try_hint=f"start it (az vm start -g {group} -n {name}), then submit the request again",
            )
        return vm

    def _reach(self, storage: StorageInfo, vm: VmFacts, creator: str | None) -> None:
        """The VM's VNet must reach the storage's private endpoint; its DNS must resolve it."""
        endpoint_vnet = self.vms.endpoint_vnet(storage.resource_group, p.endpoint_name(storage.name))
        if endpoint_vnet is None:
            raise Conflict(
                f"Storage {storage.name} has no private endpoint.",
                try_hint="create the storage again (POST /api/storage with the same name) to repair it",
            )
        if not self.vms.vnets_connected(vm.vnet_id, endpoint_vnet):
            raise ValidationError(
                f"VM {vm.name} cannot reach storage {storage.name}: its VNet is neither the storage's "
                "nor peered with it.",
                causes=[f"VM VNet: {vm.vnet_id}", f"storage endpoint VNet: {endpoint_vnet}"],
                try_hint="peer the two VNets in both directions, or create a storage with "
                "vnet=<the VM's VNet>",
                code=ErrorCode.NETWORK_NOT_FOUND,
            )
        self.dns.reach(storage, vm.vnet_id, creator,
                       lambda: self.guard.exclusive(storage, f"linking DNS for {vm.name}"))

    def _run(
        self,
        vm: VmFacts,
        key: str,
        script: str,
        parameters: dict[str, str],
        *,
        timeout: int = SCRIPT_TIMEOUT_SECONDS,
        keep: bool = False,
        creator: str | None = None,
        nonce: str = "",
    ) -> dict[str, Any]:
        """Run a VM script for one operation (`key`) and return its RESULT when it succeeded. A run
        stopped from outside (its timeout, a reboot, a dead agent) is not the request's failure:
        the script runs again under a new name, and its state file lets it finish or undo what
        the stopped run began. Every run is deleted once read, unless `keep` (the caller deletes
        them once it recorded the result, so a redelivery can still read it). A finished run
        whose RESULT lacks the operation's `nonce` (sent protected: Azure never shows it) is not
        this operation's, whoever made it under its name: it is deleted and the script runs anew."""
        given = {k: v for k, v in parameters.items() if v}  # Azure drops empty values anyway
        given |= {"TIME_BUDGET_SECONDS": str(script_budget(timeout)),
                  "HEARTBEAT_SECONDS": str(heartbeat_seconds(self.vms.stall_seconds))}
        tags = p.managed_tags(creator)
        for attempt in range(1, MAX_RUN_ATTEMPTS + 1):
            name = run_command_name(script, key, attempt)
            run = self.vms.run_script(vm, name, run_command_script(script), given, timeout, tags,
                                      protected={"NONCE": nonce} if nonce else None)
            if run.result is not None and nonce and run.result.get("nonce") != nonce:
                log.warning("%s on %s did not come from this operation (its RESULT lacks the nonce): "
                            "deleted, the script runs again", name, vm.name)
                self.vms.delete_run(vm, name)
                continue
            if run.interrupted:
                log.info("%s on %s was stopped from outside (%s); running it again", name, vm.name,
                         "no report" if run.stalled else f"{run.state}, exit code {run.exit_code}")
                continue
            # What a VM says is bounded before it reaches a record; the nonce stays a secret.
            result = ({k: v for k, v in untrusted.from_vm(run.result).items() if k != "nonce"}
                      if run.result is not None else None)
            succeeded = run.exit_code == 0 and result is not None and result.get("success") is True
            if not (succeeded and keep):
                self._delete_runs(vm, key, script)
            if succeeded and result is not None:
                return result
            raise _script_failure(script, vm, run, result)
        self._delete_runs(vm, key, script)
        raise DomainError(
            f"The {script} script on {vm.name} was stopped from outside {MAX_RUN_ATTEMPTS} times "
            "(restarts of the VM, or its agent, or Run Command timeouts).",
            causes=["the VM keeps what the last run began in /var/lib/azlin; the next attach or detach "
                    "finishes or undoes it"],
            code=ErrorCode.CONFLICT,
            try_hint="check that the VM stays up (az vm get-instance-view), then submit the request again",
        )

    def release_network(self, attachment: Attachment, current_address: str = "") -> None:
        """The VM no longer reaches the storage's endpoint: its recorded address (and the one it
        has now, for records from before addresses were kept) leaves the storage's rule."""
        storage = self.storages.get(attachment.storage)
        if storage is not None:
            self.guard.release(storage, {attachment.address or current_address})

    def _delete_runs(self, vm: VmFacts, key: str, script: str) -> None:
        self.vms.delete_runs(vm, run_command_prefix(script, key))

    # -- detach -----------------------------------------------------------------------------------

    def detach(self, command: DetachVm, context: OperationContext) -> Mapping[str, Any]:
        total = len(DETACH_STEPS)
        context.progress(DETACH_STEPS[0], 0, total)
        attachment = self.attachments.get(command.resource_group, command.vm)
        if attachment is None:
            return {"vm": command.vm, "resourceGroup": command.resource_group, "changed": False}
        if command.storage is not None and attachment.storage != command.storage:
            return {"vm": command.vm, "resourceGroup": command.resource_group, "changed": False,
                    "note": f"attached to {attachment.storage} now, not {command.storage} as when asked"}
        context.progress(DETACH_STEPS[1], 1, total)
        result = self.detach_recorded(attachment, command.mode, context.operation.id, _creator_of(context),
                                      context.operation.nonce)
        context.progress(DETACH_STEPS[2], 2, total)
        return result

    def detach_recorded(self, attachment: Attachment, mode: DetachMode, operation_id: str,
                        creator: str | None = None, nonce: str = "") -> dict[str, Any]:
        """Give a recorded VM its home back (on a VM that no longer exists there is nothing to
        move), then forget the attachment."""
        vm = self.vms.get_vm(attachment.resource_group, attachment.vm)
        result: dict[str, Any] | None = None
        if vm is not None and vm.vm_id == attachment.vm_id:
            if vm.power_state not in ("running", "starting"):
                raise Conflict(
                    f"VM {vm.name} is {vm.power_state or 'not running'}: its home cannot be moved now.",
                    try_hint="start it, then detach again",
                )
            storage = self.storages.get(attachment.storage)
            if mode is DetachMode.RESTORE and storage is not None and self.snapshot is not None:
                self.snapshot(storage, SnapshotReason.BEFORE_DETACH)  # what was written on the share
            result = self._run(
                vm,
                f"{operation_id}-{vm.name}",
                "detach",
                {
                    "NFS_ENDPOINT": nfs_endpoint(attachment.storage),
                    "MOUNT_POINT": attachment.mount_point,
                    "OWNER": attachment.owner or home_user(attachment.mount_point),
                    "MODE": mode.value,
                    "BACKUP_PATH": attachment.backup_path or "",
                },
                creator=creator,
                nonce=nonce,
            )
        same_vm = vm is not None and vm.vm_id == attachment.vm_id
        self.release_network(attachment, vm.private_ip if same_vm and vm is not None else "")
        self.attachments.remove(attachment.resource_group, attachment.vm, vm_id=attachment.vm_id)
        if attachment.vm_id:  # on purpose: neither its tag nor its group's default re-attaches it
            self.attachments.mark_detached(attachment.vm_id, self.clock.now())
        answer = {
            "vm": attachment.vm,
            "resourceGroup": attachment.resource_group,
            "changed": True,
            "vmGone": result is None,
            "unmount": result,
        }
        if vm is not None and vm.vm_id != attachment.vm_id:
            answer["note"] = (
                f"VM {vm.name} was recreated (another vmId); its home was left alone: "
                "check it, it may have been built with the shared home"
            )
        return answer

    # -- restore from a snapshot -------------------------------------------------------------------

    def restore(self, command: RestoreSnapshot, context: OperationContext) -> Mapping[str, Any]:
        """Put back one path from a snapshot, through the attached VM the request chose."""
        context.progress(RESTORE_STEPS[0], 0, len(RESTORE_STEPS))
        storage = self._storage(command.name)
        require_active(storage, "restore files into it")
        attachment = self.attachments.get(command.vm_resource_group, command.vm)
        vm = self._running_vm(command.vm_resource_group, command.vm)
        if attachment is None or attachment.storage != storage.name or attachment.vm_id != vm.vm_id:
            raise Conflict(f"VM {command.vm} is no longer attached to storage {storage.name}.",
                           try_hint="ask again: another attached VM is chosen", code=ErrorCode.NO_VM_ATTACHED)
        context.progress(RESTORE_STEPS[1], 1, len(RESTORE_STEPS))
        result = self._run(
            vm,
            context.operation.id,
            "restore",
            {
                "NFS_ENDPOINT": storage.nfs_endpoint,
                "SNAPSHOT_DIR": snapshot_directory(command.snapshot),
                "SNAPSHOT_TIME": command.snapshot,
                "RESTORE_PATH": command.path,
                "STAMP": snapshot_stamp(command.snapshot),
                "OWNER": attachment.owner or home_user(attachment.mount_point),
                "ENCRYPTION": "tls" if storage.encryption_in_transit else "",
            },
            creator=_creator_of(context),
            nonce=context.operation.nonce,
        )
        return {"storage": storage.name, "snapshot": command.snapshot, "path": command.path,
                "restoredTo": result.get("restoredTo"), "files": result.get("files"), "vm": vm.name}

    # -- verify -----------------------------------------------------------------------------------

    def verify_operation(self, command: VerifyVm, context: OperationContext) -> Mapping[str, Any]:
        """Ask the VM what is mounted on the recorded mount point (a read-only script) and record
        the attachment's health."""
        context.progress("Checking the live mount on the VM", 0, 1)
        attachment = self.attachments.get(command.resource_group, command.vm)
        if attachment is None:
            raise NotFound(
                f"VM {command.vm} in resource group {command.resource_group} is not attached to any storage.",
                code=ErrorCode.ATTACHMENT_NOT_FOUND,
            )
        checked = self.check(attachment, run_key=context.operation.id, nonce=context.operation.nonce)
        return dict(to_json(checked))

    def check(self, attachment: Attachment, storage_exists: bool | None = None,
              run_key: str | None = None, nonce: str | None = None) -> VerifiedAttachment:
        """The attachment's health now, recorded with the time and the error when unhealthy:
        storage gone, VM gone (or recreated), or else what the VM reports mounted there.
        `storage_exists` spares the Resource Manager read when the caller listed accounts."""
        if storage_exists is None:
            storage = self.storages.get(attachment.storage)
            storage_exists = storage is not None and (
                self.cloud.get_account(storage.resource_group, storage.name) is not None
            )
        endpoint = nfs_endpoint(attachment.storage)
        live: MountInfo | None = None
        error: str | None
        vm = self.vms.get_vm(attachment.resource_group, attachment.vm) if storage_exists else None
        if not storage_exists:
            health, error = AttachmentHealth.STORAGE_GONE, f"storage {attachment.storage} no longer exists"
        elif vm is None or vm.vm_id != attachment.vm_id:
            health, error = (
                AttachmentHealth.VM_GONE,
                (f"VM {attachment.vm} no longer exists" if vm is None else f"VM {vm.name} was recreated"),
            )
        elif vm.power_state not in ("running", "starting"):
            health, error = (
                AttachmentHealth.UNKNOWN,
                f"VM {vm.name} is {vm.power_state or 'not running'}: not checked",
            )
        else:
            key, secret = run_key or str(uuid.uuid4()), nonce or secrets.token_hex(16)
            live = self._live_mount(vm, attachment, key, secret)
            health, error = _mount_health(live, endpoint, attachment.mount_point)
        now = self.clock.now()
        checked = replace(attachment, health=health, last_verified_at=now, last_error=error)
        self.attachments.save(checked)
        return VerifiedAttachment(checked, health, live, now)

    def _live_mount(self, vm: VmFacts, attachment: Attachment, key: str, nonce: str) -> MountInfo | None:
        found = self._run(
            vm,
            key,
            "verify",
            {"NFS_ENDPOINT": nfs_endpoint(attachment.storage), "MOUNT_POINT": attachment.mount_point},
            timeout=VERIFY_TIMEOUT_SECONDS,
            nonce=nonce,
        )
        if not found.get("mounted"):
            return None
        return MountInfo(
            attachment.mount_point,
            untrusted.text(found.get("source") or ""),
            untrusted.text(found.get("fsType") or "", 40),
            untrusted.text(found.get("options") or ""),
            bool(found.get("inFstab")),
            encrypted=found.get("encrypted") is True,
        )


def _creator_of(context: OperationContext) -> str | None:
    requested_by = context.operation.requested_by
    return requested_by.object_id if requested_by and requested_by.object_id else None


def _mount_health(
    live: MountInfo | None, endpoint: str, mount_point: str
) -> tuple[AttachmentHealth, str | None]:
    if live is None:
        return AttachmentHealth.UNMOUNTED, f"nothing is mounted on {mount_point}"
    if live.nfs_endpoint != endpoint:
        return (
            AttachmentHealth.WRONG_SOURCE,
            f"{mount_point} is mounted from {live.nfs_endpoint}, not {endpoint}",
        )
    options = set(live.mount_options.split(","))
    if not {"nosuid", "nodev"} <= options:
        return AttachmentHealth.UNSAFE_MOUNT, f"{mount_point} is mounted without nosuid,nodev"
    return AttachmentHealth.HEALTHY, None


def _script_failure(action: str, vm: VmFacts, run: ScriptRun, result: dict[str, Any] | None) -> DomainError:
    """What the script said went wrong (its RESULT's errors), its exit code, and the last lines
    it wrote (its errors, else its output): all of it the VM's word, bounded."""
    reported = (result or {}).get("errors")
    errors = [untrusted.text(e) for e in reported] if isinstance(reported, list) else []
    exited = (f"the {action} script exited with code {run.exit_code}" if run.exit_code is not None
              else f"the {action} script ended {run.state} without an exit code")
    stream, lines = ("error output", _last_lines(run.error)) if run.error.strip() else (
        "output", _last_lines(run.output))
    rolled_back = bool((result or {}).get("rolledBack"))
    return DomainError(
        f"The {action} script failed on {vm.name}"
        + ("; the VM's home was put back as it was." if rolled_back else "."),
        causes=[*errors, exited, *(f"its last {stream}: {line}" for line in lines)],
        code=ErrorCode.SCRIPT_FAILED,
        try_hint="fix the cause above on the VM or in the request, then submit it again",
    )


def _last_lines(text: str, count: int = 5) -> list[str]:
    """The last `count` lines a script wrote, its RESULT line left out (already read)."""
    lines = [line for line in text.splitlines() if line.strip() and not line.startswith(RESULT_PREFIX)]
    return [untrusted.text(line, 300, keep_end=True) for line in lines[-count:]]
