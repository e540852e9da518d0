"""Attachment use cases on the HTTP side: read a VM's recorded attachment, and accept attach,
detach and verify requests (verify runs a script on the VM: an operation, never inside the
request), each as its caller:

- attach: an owner or member of the storage, with `runCommands/write` on the VM (the script runs
  there as root: the caller must be allowed to run commands on it in Azure);
- detach: `runCommands/write` on the VM, or an owner of the storage it is attached to (eviction);
- verify: `runCommands/write` on the VM;
- read: whoever may read the storage it is attached to, or may read the VM.
"""

from __future__ import annotations

from dataclasses import replace

from shared.domain import rbac
from shared.domain.commands import AttachVm, DetachVm, VerifyVm
from shared.domain.data_protection import require_active
from shared.domain.errors import ErrorCode, NotFound
from shared.domain.identity import Caller
from shared.domain.models import Attachment, attached_elsewhere
from shared.domain.operations import InFlight, OperationKind, vm_subject
from shared.domain.requests import StorageRef, VmRef
from shared.ports import AttachmentRepository

from .access import AccessControl
from .operations import OperationIntake, OperationReads, Submission
from .storage import StorageService


def _not_attached(vm: str, resource_group: str) -> NotFound:
    return NotFound(
        f"VM {vm} in resource group {resource_group} is not attached to any storage.",
        causes=["no attachment is recorded for it, and no attach of it is under way"],
        try_hint="check the VM's name and resource group; attach it with "
                 f'POST /api/storage/<name>/attachments {{"vm": "{vm}"}}',
        code=ErrorCode.ATTACHMENT_NOT_FOUND,
    )


class AttachmentService:
    def __init__(
        self,
        attachments: AttachmentRepository,
        storage: StorageService,
        intake: OperationIntake,
        access: AccessControl,
        reads: OperationReads,
    ) -> None:
        self.attachments = attachments
        self.storage = storage
        self.intake = intake
        self.access = access
        self.reads = reads

    def get_or_attaching(self, caller: Caller, ref: VmRef) -> Attachment | InFlight:
        """The attachment, or the attach still under way that will make it."""
        try:
            return self.get(caller, ref)
        except NotFound:
            subject = vm_subject(ref.resource_group, ref.vm)
            attaching = self.reads.in_flight(caller, subject, OperationKind.ATTACH_VM)
            if attaching is None:
                raise
            return InFlight("Attaching", {"vm": ref.vm, "resourceGroup": ref.resource_group,
                                          "storage": attaching.storage}, attaching)

    def get(self, caller: Caller, ref: VmRef) -> Attachment:
        attachment = self.attachments.get(ref.resource_group, ref.vm)
        vm_scope = self.access.vm(ref.resource_group, ref.vm)
        if attachment is None or not self._storage_readable(caller, attachment):
            self.access.require(caller, rbac.VM_READ, vm_scope)
        if attachment is None:
            raise _not_attached(ref.vm, ref.resource_group)
        return attachment

    def request_verify(self, caller: Caller, ref: VmRef, idempotency_key: str | None) -> Submission:
        """Queue a check of the live mount (a read-only script run on the VM as root)."""
        self.access.require(caller, rbac.RUN_COMMANDS_WRITE, self.access.vm(ref.resource_group, ref.vm))
        if self.attachments.get(ref.resource_group, ref.vm) is None:
            raise _not_attached(ref.vm, ref.resource_group)
        return self.intake.submit_for(caller, VerifyVm(ref.vm, ref.resource_group), idempotency_key)

    def verifying(self, caller: Caller, ref: VmRef) -> tuple[Attachment, Submission]:
        """The last recorded check, and a new one queued (`?verify=true`)."""
        submission = self.request_verify(caller, ref, None)
        return self.get(caller, ref), submission

    def request_attach(self, caller: Caller, command: AttachVm, idempotency_key: str | None) -> Submission:
        storage = self.storage.find(StorageRef(command.storage, None))
        self.access.require_member(caller, storage, "attach a VM to it")
        require_active(storage, "attach a VM to it")
        vm_scope = self.access.vm(command.resource_group, command.vm)
        self.access.require(caller, rbac.RUN_COMMANDS_WRITE, vm_scope)
        existing = self.attachments.get(command.resource_group, command.vm)
        if existing is not None and existing.storage != command.storage:
            raise attached_elsewhere(command.vm, existing)
        return self.intake.submit_for(caller, command, idempotency_key)

    def request_detach(self, caller: Caller, command: DetachVm, idempotency_key: str | None) -> Submission:
        """A VM neither attached nor being attached is not found (a typo is told, never a bare
        success); one with an attach under way is detached after it (the VM's lock orders them)."""
        existing = self.attachments.get(command.resource_group, command.vm)
        scope = self.access.vm(command.resource_group, command.vm)
        evicting = existing is not None and self.access.is_owner(caller, existing.storage)
        if not evicting:  # first: never tell what the caller may not see
            self.access.require(caller, rbac.RUN_COMMANDS_WRITE, scope)
        subject = vm_subject(command.resource_group, command.vm)
        if existing is None and self.reads.in_flight(caller, subject, OperationKind.ATTACH_VM) is None:
            raise _not_attached(command.vm, command.resource_group)
        pinned = replace(command, storage=existing.storage if existing else None)  # evicted from it only
        return self.intake.submit_for(caller, pinned, idempotency_key)

    def _storage_readable(self, caller: Caller, attachment: Attachment) -> bool:
        storage = self.storage.storages.get(attachment.storage)
        return storage is not None and self.access.can_read(caller, storage)
