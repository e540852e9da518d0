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
from shared.domain.requests import StorageRef, VmRef
from shared.ports import AttachmentRepository

from .access import AccessControl
from .operations import OperationIntake, Submission
from .storage import StorageService


class AttachmentService:
    def __init__(
        self,
        attachments: AttachmentRepository,
        storage: StorageService,
        intake: OperationIntake,
        access: AccessControl,
    ) -> None:
        self.attachments = attachments
        self.storage = storage
        self.intake = intake
        self.access = access

    def get(self, caller: Caller, ref: VmRef) -> Attachment:
        attachment = self.attachments.get(ref.resource_group, ref.vm)
        vm_scope = self.access.vm(ref.resource_group, ref.vm)
        if attachment is None or not self._storage_readable(caller, attachment):
            self.access.require(caller, rbac.VM_READ, vm_scope)
        if attachment is None:
            raise NotFound(
                f"VM {ref.vm} in resource group {ref.resource_group} is not attached to any storage.",
                try_hint=f'attach it with POST /api/storage/<name>/attachments {{"vm": "{ref.vm}"}}',
                code=ErrorCode.ATTACHMENT_NOT_FOUND,
            )
        return attachment

    def request_verify(self, caller: Caller, ref: VmRef, idempotency_key: str | None) -> Submission:
        """Queue a check of the live mount (a read-only script run on the VM as root)."""
        self.access.require(caller, rbac.RUN_COMMANDS_WRITE, self.access.vm(ref.resource_group, ref.vm))
        if self.attachments.get(ref.resource_group, ref.vm) is None:
            raise NotFound(
                f"VM {ref.vm} in resource group {ref.resource_group} is not attached to any storage.",
                code=ErrorCode.ATTACHMENT_NOT_FOUND,
            )
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
        """Detaching a VM that is not attached is accepted and succeeds without changes."""
        existing = self.attachments.get(command.resource_group, command.vm)
        scope = self.access.vm(command.resource_group, command.vm)
        evicting = existing is not None and self.access.is_owner(caller, existing.storage)
        if not evicting:
            self.access.require(caller, rbac.RUN_COMMANDS_WRITE, scope)
        pinned = replace(command, storage=existing.storage if existing else None)  # evicted from it only
        return self.intake.submit_for(caller, pinned, idempotency_key)

    def _storage_readable(self, caller: Caller, attachment: Attachment) -> bool:
        storage = self.storage.storages.get(attachment.storage)
        return storage is not None and self.access.can_read(caller, storage)
