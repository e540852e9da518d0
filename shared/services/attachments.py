"""Attachment use cases on the HTTP side: read a VM's recorded attachment, and accept attach and
detach requests after the checks that need no Azure call."""

from __future__ import annotations

from shared.domain.commands import AttachVm, DetachVm
from shared.domain.errors import ErrorCode, NotFound
from shared.domain.models import Attachment, attached_elsewhere
from shared.domain.requests import StorageRef, VmRef
from shared.ports import AttachmentRepository

from .operations import OperationIntake, Submission
from .storage import StorageService


class AttachmentService:
    def __init__(self, attachments: AttachmentRepository, storage: StorageService,
                 intake: OperationIntake) -> None:
        self.attachments = attachments
        self.storage = storage
        self.intake = intake

    def get(self, ref: VmRef) -> Attachment:
        attachment = self.attachments.get(ref.resource_group, ref.vm)
        if attachment is None:
            raise NotFound(
                f"VM {ref.vm} in resource group {ref.resource_group} is not attached to any storage.",
                try_hint=f"attach it with POST /api/storage/<name>/attachments {{\"vm\": \"{ref.vm}\"}}",
                code=ErrorCode.ATTACHMENT_NOT_FOUND,
            )
        return attachment

    def request_attach(self, command: AttachVm, idempotency_key: str | None) -> Submission:
        self.storage.get(StorageRef(command.storage, None))
        existing = self.attachments.get(command.resource_group, command.vm)
        if existing is not None and existing.storage != command.storage:
            raise attached_elsewhere(command.vm, existing)
        return self.intake.submit(command, idempotency_key)

    def request_detach(self, command: DetachVm, idempotency_key: str | None) -> Submission:
        """Detaching a VM that is not attached is accepted and succeeds without changes."""
        return self.intake.submit(command, idempotency_key)
