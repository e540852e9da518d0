"""Auto-attach: a VM created (or updated) with the auto-attach tag naming a storage, or in a
resource group with a default storage and no tag, gets an attach operation queued, but only when
the principal that wrote the VM is an owner or a member of that storage: a tag is a request, and
only those the storage's owners let in may make it. Anyone else's VM is not touched; an operation
is recorded Failed (`NotAMember`, naming who asked) so the owners see it. The attach runs a root
script on the VM, so the writer must also be one Azure lets run commands there
(`runCommands/write`): writing a VM is not enough.

The handler answers fast: one read of the VM, no Run Command. Idempotent: the attach is recorded
with an Idempotency-Key made of the VM's immutable `vmId` and the storage, and a refusal with that
key and its reason, so repeated and out-of-order events for the same VM record nothing new, and a
VM already attached queues nothing at all; an event id already handled is dropped before the VM
is read. A refusal does not hold the attach's key: once its reason is gone (the storage created,
the writer made a member), a later attempt queues the attach. A tag value of `none` opts out. Who
wrote the VM is remembered, so a storage's create (`attach_waiting`) and the reconcile timer apply
the same rule later."""

from __future__ import annotations

import logging

from shared.domain import rbac
from shared.domain import validation as v
from shared.domain.commands import AttachVm
from shared.domain.errors import (
    DomainError,
    ErrorCode,
    NotFound,
    PermissionDenied,
    ServiceError,
    ValidationError,
)
from shared.domain.events import OPT_OUT, Asked, VmWritten, auto_attach_key, refusal_key, who_asked
from shared.domain.identity import Writer
from shared.domain.mounting import TaggedVm
from shared.domain.operations import (
    Operation,
    OperationFilter,
    OperationKind,
    OperationStatus,
    storage_subject,
)
from shared.ports import (
    AttachmentRepository,
    Clock,
    DefaultStorageRepository,
    HandledEvents,
    StorageAccessRepository,
    StorageRepository,
    VmCloud,
)

from .access import AccessControl
from .operations import OperationIntake

log = logging.getLogger(__name__)
# Refused auto-attaches a storage's create reads, by page: enough for a fleet tagged in advance.
WAITING_PAGE, WAITING_PAGES = 100, 10


class AutoAttachService:
    def __init__(
        self,
        vms: VmCloud,
        attachments: AttachmentRepository,
        defaults: DefaultStorageRepository,
        storages: StorageRepository,
        access: StorageAccessRepository,
        control: AccessControl,
        intake: OperationIntake,
        events: HandledEvents,
        clock: Clock,
        tag: str,
    ) -> None:
        self.vms = vms
        self.attachments = attachments
        self.defaults = defaults
        self.storages = storages
        self.access = access
        self.control = control
        self.intake = intake
        self.events = events
        self.clock = clock
        self.tag = tag

    def on_vm_written(self, written: VmWritten) -> str | None:
        """Queue (or refuse) the attach a VM write asks for; the id of the attach queued, or None
        when none was. The event is remembered only once handled: a failure leaves it to Event Grid."""
        if self.events.seen(written.event_id):
            log.info("event %s: handled already (redelivered)", written.event_id)
            return None
        vm = self.vms.get_vm(written.resource_group, written.vm)
        if vm is None:
            log.info("event %s: VM %s is gone; nothing to attach", written.event_id, written.vm)
            operation = None
        else:
            operation = self.attach_if_wanted(vm, self._asked(vm, written).by, f"event {written.event_id}")
        self.events.remember(written.event_id, self.clock.now())
        return operation

    def attach_if_wanted(self, vm: TaggedVm, writer: Writer | None, why: str) -> str | None:
        storage = self.storage_wanted(vm, why)
        return None if storage is None else self.attach_as(vm, storage, writer, why)

    def attach_waiting(self, storage: str) -> list[str]:
        """After `storage` was created: the VMs that asked for it before it existed (their
        auto-attach refused `StorageNotFound`, listed in its operations) are judged again as
        their event was (the tag must still ask for it, the writer must be allowed); the attach
        operations queued. Best effort: a VM this cannot read now is left to the reconcile timer,
        which applies the same rule."""
        why = f"storage {storage} created"
        queued: list[str] = []
        for vm_id, group, name in self._refused_for_lack_of(storage):
            try:
                vm = self.vms.get_vm(group, name)
                if vm is None or vm.vm_id != vm_id or self.storage_wanted(vm, why) != storage:
                    continue  # gone, recreated, or asks for something else now
                operation = self.attach_as(vm, storage, self.who_asked(vm), why)
            except ServiceError as err:
                log.warning("%s: VM %s waits for the reconcile timer: %s", why, name, err.message)
                continue
            if operation is not None:
                queued.append(operation)
        return queued

    def _refused_for_lack_of(self, storage: str) -> list[tuple[str, str, str]]:
        """(vmId, resource group, name) of each VM whose auto-attach was refused because
        `storage` did not exist, once each."""
        only = OperationFilter(frozenset({OperationStatus.FAILED}), frozenset({OperationKind.ATTACH_VM}))
        found: dict[str, tuple[str, str, str]] = {}
        continuation: str | None = None
        for _ in range(WAITING_PAGES):
            page = self.intake.list_about(storage_subject(storage), WAITING_PAGE, continuation, only)
            for operation in page.items:
                waiting = _waiting_vm(operation)
                if waiting is not None:
                    found.setdefault(waiting[0], waiting)
            continuation = page.continuation
            if continuation is None:
                break
        return list(found.values())

    def who_asked(self, vm: TaggedVm) -> Writer | None:
        """Who made the VM ask for what it asks for now (from its events), or None: unknown."""
        asked = self.attachments.asked_of(vm.vm_id)
        wanted = self.wanted_storage(vm)
        return asked.by if asked is not None and asked.storage == _kept(wanted) else None

    def _asked(self, vm: TaggedVm, written: VmWritten) -> Asked:
        """What the VM asks for since this write, and who asked: the writer of the write that
        made it ask (its creation, or a change of its tag), never one who changed something else
        later, so an owner's routine write never carries a non-member's tag through."""
        before = self.attachments.asked_of(vm.vm_id)
        wanted = _kept(self.wanted_storage(vm))
        asked = Asked(wanted, who_asked(written, wanted, before))
        if asked != before:
            self.attachments.remember_ask(vm.vm_id, asked)
        return asked

    def storage_wanted(self, vm: TaggedVm, why: str) -> str | None:
        """The storage `vm` asks for, unless it is attached or was detached on purpose; a tag
        value that is no storage name is refused (recorded) here."""
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
            return v.storage_account_name(wanted, self.tag)
        except ValidationError as err:
            refusal = ValidationError(
                f"VM {vm.name}'s tag {self.tag}={wanted[:100]!r} names no storage.",
                causes=err.causes,
                try_hint=f"set the tag to a storage name (3-24 lowercase letters and digits), or to "
                f"{OPT_OUT}",
            )
            self._refuse(vm, wanted, refusal, None, why)
            return None

    def attach_as(self, vm: TaggedVm, storage: str, writer: Writer | None, why: str) -> str | None:
        """Queue the attach if `writer` may join `storage`, else record why not; the id of the
        attach queued now, or None: refused (recorded), or queued before."""
        refusal = self._refusal(vm, storage, writer)
        if refusal is not None:
            self._refuse(vm, storage, refusal, writer, why)
            return None
        assert writer is not None
        command = AttachVm(storage, vm.name, vm.resource_group, vm_id=vm.vm_id)
        try:
            submission = self.intake.submit(
                command, auto_attach_key(vm.vm_id, storage), requested_by=writer.principal
            )
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
            f" (asked before: {submission.operation.status.value})" if submission.replayed else "",
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

    def _refusal(self, vm: TaggedVm, storage: str, writer: Writer | None) -> DomainError | None:
        if self.storages.get(storage) is None:
            return NotFound(
                f"VM {vm.name} asks for storage {storage}, which this service does not know (yet).",
                try_hint=f"create the storage (POST /api/storage): the VM is attached then, if who "
                f"wrote it may join it; or correct the {self.tag} tag",
                code=ErrorCode.STORAGE_NOT_FOUND,
            )
        if writer is None or not writer.principal.object_id:
            return PermissionDenied(
                f"VM {vm.name} asks for storage {storage}, but who wrote it is unknown.",
                causes=[
                    "its event names no writer, so whether they may join the storage and run commands "
                    "on the VM cannot be told"
                ],
                try_hint=f"an owner or member attaches it: POST /api/storage/{storage}/attachments",
                code=ErrorCode.WRITER_UNKNOWN,
            )
        access = self.access.get(storage)
        if access is None or not access.open_to(writer.identities):
            who = writer.principal
            return PermissionDenied(
                f"{who.name} ({who.object_id}) wrote VM {vm.name} asking for storage {storage}, but "
                "is not an owner or a member of it; the VM was not touched.",
                causes=[
                    f"the writer's {who.kind.value.lower()} id and its role's principal are not among "
                    f"the owners and members of {storage}"
                ],
                try_hint=f"an owner can make them a member (PUT /api/storage/{storage}/access): the "
                f"reconcile timer attaches this VM then, or now: POST /api/storage/{storage}/attachments",
                code=ErrorCode.NOT_A_MEMBER,
            )
        vm_scope = self.control.vm(vm.resource_group, vm.name)
        if not self.control.principal_may(writer.principal, rbac.RUN_COMMANDS_WRITE, vm_scope):
            who = writer.principal
            return PermissionDenied(
                f"{who.name} ({who.object_id}) wrote VM {vm.name} asking for storage {storage}, but may not "
                f"run commands on it, which attaching does; the VM was not touched.",
                causes=[f"no role of theirs allows {rbac.RUN_COMMANDS_WRITE} over scope '{vm_scope}'"],
                try_hint=f"give them a role with {rbac.RUN_COMMANDS_WRITE} on the VM (Virtual Machine "
                "Contributor has it), or let an owner or member who has it attach the VM through the API",
                code=ErrorCode.AUTHORIZATION_FAILED,
            )
        return None

    def _refuse(
        self, vm: TaggedVm, storage: str, refusal: DomainError, writer: Writer | None, why: str
    ) -> None:
        """An operation Failed from the start, so the owner sees why at /api/operations (no one
        gets a 403 for an event); the same reason again records nothing new."""
        command = AttachVm(storage, vm.name, vm.resource_group, vm_id=vm.vm_id)
        submission = self.intake.refuse(
            command,
            refusal,
            refusal_key(vm.vm_id, storage, refusal.code.value),
            requested_by=writer.principal if writer else None,
        )
        log.warning("%s: %s (operation %s%s)", why, refusal.message, submission.operation.id,
                    ", recorded before" if submission.replayed else "")


def _waiting_vm(operation: Operation) -> tuple[str, str, str] | None:
    """The VM of an auto-attach refused for lack of its storage: (vmId, group, name)."""
    params, error = operation.params, operation.error or {}
    if error.get("code") != ErrorCode.STORAGE_NOT_FOUND.value or not params.get("vmId"):
        return None
    return str(params["vmId"]), str(params.get("resourceGroup") or ""), str(params.get("vm") or "")


def _kept(wanted: str | None) -> str | None:
    """What is remembered of a tag's value: enough to tell it changed."""
    return None if wanted is None else wanted[:200]
