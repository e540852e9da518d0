"""Auto-attach: a VM created (or updated) with the auto-attach tag naming a storage, or in a
resource group with a default storage and no tag, gets an attach operation queued. The handler
answers fast: one read of the VM, no Run Command. Idempotent: the attach is submitted with an
Idempotency-Key made of the VM's immutable `vmId` and the storage, so repeated and out-of-order
events for the same VM queue nothing new, and a VM already attached queues nothing at all; an
event id already handled is dropped before the VM is read. A tag value of `none` opts out."""

from __future__ import annotations

import logging

from shared.domain import validation as v
from shared.domain.commands import AttachVm
from shared.domain.errors import ErrorCode, ServiceError, ValidationError
from shared.domain.events import OPT_OUT, VmWritten, auto_attach_key
from shared.domain.mounting import TaggedVm
from shared.ports import AttachmentRepository, Clock, DefaultStorageRepository, HandledEvents, VmCloud

from .operations import OperationIntake

log = logging.getLogger(__name__)


class AutoAttachService:
    def __init__(
        self,
        vms: VmCloud,
        attachments: AttachmentRepository,
        defaults: DefaultStorageRepository,
        intake: OperationIntake,
        events: HandledEvents,
        clock: Clock,
        tag: str,
    ) -> None:
        self.vms = vms
        self.attachments = attachments
        self.defaults = defaults
        self.intake = intake
        self.events = events
        self.clock = clock
        self.tag = tag

    def on_vm_written(self, written: VmWritten) -> str | None:
        """Queue the attach a VM write asks for; the operation id, or None when there is none.
        The event is remembered only once handled: a failure leaves it to Event Grid's retry."""
        if self.events.seen(written.event_id):
            log.info("event %s: handled already (redelivered)", written.event_id)
            return None
        vm = self.vms.get_vm(written.resource_group, written.vm)
        if vm is None:
            log.info("event %s: VM %s is gone; nothing to attach", written.event_id, written.vm)
            operation = None
        else:
            operation = self.attach_if_wanted(vm, f"event {written.event_id}")
        self.events.remember(written.event_id, self.clock.now())
        return operation

    def attach_if_wanted(self, vm: TaggedVm, why: str) -> str | None:
        """Queue the attach `vm` asks for unless it is attached, or was detached on purpose; the
        operation id, or None."""
        wanted = self.wanted_storage(vm)
        if wanted is None:
            return None
        existing = self.attachments.get(vm.resource_group, vm.name)
        if existing is not None and existing.vm_id == vm.vm_id:
            return None
        if self.attachments.was_detached(vm.vm_id):
            log.info("%s: VM %s was detached on purpose; attach it through the API to resume", why, vm.name)
            return None
        try:
            storage = v.storage_account_name(wanted, self.tag)
        except ValidationError as err:
            return self._refuse(vm, wanted, err, why)
        command = AttachVm(storage, vm.name, vm.resource_group)
        try:
            submission = self.intake.submit(command, auto_attach_key(vm.vm_id, storage))
        except ServiceError as err:
            if err.code is not ErrorCode.IDEMPOTENCY_KEY_REUSED:
                raise
            return None
        log.info(
            "%s: VM %s wants storage %s: attach %s%s",
            why,
            vm.name,
            storage,
            submission.operation.id,
            " (already queued)" if submission.replayed else "",
        )
        return None if submission.replayed else submission.operation.id

    def wanted_storage(self, vm: TaggedVm) -> str | None:
        """What the VM asks for: its tag's value (any VM: the tag is the owner's request), else its
        resource group's default storage, for VMs created after the default was set (an existing
        VM is never given another home because a default appeared); None when neither applies or
        the tag opts out."""
        tagged = next((value for key, value in vm.tags.items() if key.lower() == self.tag.lower()), None)
        if tagged is not None and tagged.strip():
            return None if tagged.strip().lower() == OPT_OUT else tagged.strip()
        default = self.defaults.get(vm.resource_group)
        if default is None or vm.time_created is None or vm.time_created < default.set_at:
            return None
        return default.storage

    def _refuse(self, vm: TaggedVm, wanted: str, err: ValidationError, why: str) -> str | None:
        """A tag value that cannot be a storage name: an operation Failed from the start, so the
        owner sees why at /api/operations (no one gets a 400 for an event)."""
        refusal = ValidationError(
            f"VM {vm.name}'s tag {self.tag}={wanted[:100]!r} names no storage.",
            causes=err.causes,
            try_hint=f"set the tag to a storage name (3-24 lowercase letters and digits), or to {OPT_OUT}",
        )
        command = AttachVm(wanted, vm.name, vm.resource_group)
        submission = self.intake.refuse(command, refusal, auto_attach_key(vm.vm_id, wanted))
        log.warning("%s: %s (operation %s)", why, refusal.message, submission.operation.id)
        return None if submission.replayed else submission.operation.id
