"""The reconcile timer's work: check recorded attachments against their VMs, act on what it
finds, and attach tagged VMs whose creation event was missed.

Each occurrence of the timer queues one `Reconcile` operation, a parent: it queues a child
`ReconcileVm` operation per attachment due (`shared.domain.reconciling`: each VM about once per
RECONCILE_INTERVAL, spread over the runs), and ends once they all ended, with their results in its
report. The work flows through the queue, so any number of instances share it and nothing
depends on one function run living for N Run Commands. A child runs the VM's read-only verify
script, then, per health:
- healthy, or not checkable now (VM stopped, agent busy): recorded, nothing else;
- unmounted: re-attached (an AttachVm with `repair`) when auto-heal is on;
- wrong source: recorded and reported, never healed: something else was mounted on the home on
  purpose or by mistake, and unmounting it could hide files someone is using; a person decides;
- VM gone (deleted, or recreated under the same name): the record is removed; the VM's disk went
  with it, and the share keeps every file;
- storage gone: recorded and reported; the VM keeps whatever its fstab's `nofail` line allows.

When its children have ended, the parent attaches VMs that ask for a storage (tag or group
default) but have no attachment, as auto-attach would: only when the principal that wrote them
(remembered from their event) is an owner or member of the storage. A VM whose writer is unknown
(its event was missed) is never attached: it is listed in the run's findings, which the daily
digest reports. Then it looks for other ways into each share than the service made.

Safe to repeat: children have idempotency keys (a parent redelivered mid fan-out finds the ones it
queued), each child only reads, records health and queues idempotent operations.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from shared.domain.commands import AttachVm, Reconcile, ReconcileVm
from shared.domain.digests import UnattachedVm
from shared.domain.errors import ServiceError, WaitingForChildren
from shared.domain.identity import Principal
from shared.domain.models import Attachment, AttachmentHealth
from shared.domain.ncrontab import Schedule
from shared.domain.operations import Operation, OperationStatus
from shared.domain.provisioning import CloudAccount
from shared.domain.reconciling import due_for_check
from shared.domain.serialization import format_time
from shared.ports import (
    AttachmentRepository,
    Clock,
    OperationRepository,
    ReconcileFindings,
    StorageCloud,
    VmCloud,
)

from .auto_attach import AutoAttachService
from .mounting import MountService
from .operations import OperationIntake
from .worker import OperationContext

log = logging.getLogger(__name__)
WRITER_UNKNOWN = ("who wrote it is unknown (its creation event was missed), so it was not attached; "
                  "an owner or member of the storage can attach it through the API")
RUN_STEPS = ("Queuing a check per VM due", "Waiting for the checks", "Attaching VMs whose event was missed",
             "Looking for other ways in")
TIMER = Principal.service("reconcile timer")
# How soon a parent looks at its children again, by look: a fallback, since the last child to end
# wakes its parent at once.
CHILD_LOOK_SECONDS = (30, 60, 120, 300)


class ReconcileService:
    def __init__(
        self,
        attachments: AttachmentRepository,
        vms: VmCloud,
        cloud: StorageCloud,
        mounts: MountService,
        auto_attach: AutoAttachService,
        intake: OperationIntake,
        operations: OperationRepository,
        findings: ReconcileFindings,
        clock: Clock,
        *,
        auto_heal: bool,
        interval: timedelta = timedelta(hours=1),
        schedule: str = "0 */15 * * * *",
    ) -> None:
        self.findings = findings
        self.attachments = attachments
        self.vms = vms
        self.cloud = cloud
        self.mounts = mounts
        self.auto_attach = auto_attach
        self.intake = intake
        self.operations = operations
        self.clock = clock
        self.auto_heal = auto_heal
        self.interval = interval
        self.schedule = Schedule.parse(schedule)

    # -- the timer ---------------------------------------------------------------------------------

    def start(self) -> Operation:
        """Queue this occurrence's run: one per occurrence, however often the timer fires."""
        now = self.clock.now()
        occurrence = format_time(now.replace(second=0, microsecond=0))
        submission = self.intake.submit(Reconcile(occurrence), f"reconcile:{occurrence}", requested_by=TIMER)
        return submission.operation

    def period(self, now: datetime) -> timedelta:
        first = self.schedule.next_after(now)
        return self.schedule.next_after(first) - first

    # -- the parent --------------------------------------------------------------------------------

    def run(self, command: Reconcile, context: OperationContext) -> Mapping[str, Any]:
        operation = context.operation
        done = operation.progress.done if operation.progress else 0
        if done == 0:
            context.progress(RUN_STEPS[0], 0, len(RUN_STEPS))
            due = due_for_check(self.attachments.list_all(), operation.created_at, self.interval,
                                self.period(operation.created_at))
            self.fan_out(command, operation, due)
            context.progress(RUN_STEPS[1], 1, len(RUN_STEPS))
        if self.operations.children_running(operation.id):
            look = min(max(0, operation.attempts - 1), len(CHILD_LOOK_SECONDS) - 1)
            raise WaitingForChildren("Checks of this run's VMs are still running.",
                                     delay_seconds=CHILD_LOOK_SECONDS[look])
        return self._report(command, context)

    def fan_out(self, command: Reconcile, parent: Operation, attachments: list[Attachment]) -> None:
        """Queue a check per attachment, each once per run whoever queues it: a delivery that
        died midway and the one after it queue the same children, never a second of any."""
        for attachment in attachments:
            child = ReconcileVm(attachment.vm, attachment.resource_group, attachment.vm_id, command.run)
            vm = attachment.vm_id or f"{attachment.resource_group}/{attachment.vm}"
            key = f"reconcile:{command.run}:{vm}"
            self.intake.submit(child, key, requested_by=TIMER, storage=attachment.storage, parent=parent.id)

    def _report(self, command: Reconcile, context: OperationContext) -> dict[str, Any]:
        children = self.operations.children(context.operation.id)
        health: Counter[str] = Counter()
        healed: list[str] = []
        removed: list[str] = []
        errors: list[str] = []
        for child in children:
            if child.status is not OperationStatus.SUCCEEDED or child.result is None:
                health[AttachmentHealth.UNKNOWN.value] += 1
                errors.append(f"{child.target.removeprefix('vm/')}: {(child.error or {}).get('message')}")
                continue
            health[str(child.result.get("health"))] += 1
            if child.result.get("repair"):
                healed.append(str(child.result["repair"]))
            if child.result.get("removed"):
                removed.append(child.target.removeprefix("vm/"))
        context.progress(RUN_STEPS[2], 2, len(RUN_STEPS))
        started = context.operation.created_at
        queued, waiting = self._attach_missed(started, errors)
        context.progress(RUN_STEPS[3], 3, len(RUN_STEPS))
        listed = [a for a in self.cloud.list_accounts(None) if a.managed]
        other_access = self._other_access(listed, self.attachments.list_all(), errors)
        try:
            self.findings.save(list(waiting), started)
        except ServiceError as err:
            errors.append(f"recording the findings: {err.message}")
        log.info("reconcile %s: %d attachment(s) checked %s; healed %d, removed %d, attach queued %d, "
                 "not attached (writer unknown) %d, errors %d", command.run, len(children), dict(health),
                 len(healed), len(removed), len(queued), len(waiting), len(errors))
        return {"run": command.run, "checked": len(children), "health": dict(health), "healed": healed,
                "removed": removed, "attachQueued": queued,
                "notAttached": [{"vm": w.vm, "resourceGroup": w.resource_group, "storage": w.storage}
                                for w in waiting],
                "errors": errors, "otherAccess": other_access}

    # -- a child -----------------------------------------------------------------------------------

    def check_one(self, command: ReconcileVm, context: OperationContext) -> Mapping[str, Any]:
        """Verify one attachment and act on its health."""
        context.progress("Checking the live mount on the VM", 0, 1)
        attachment = self.attachments.get(command.resource_group, command.vm)
        answer: dict[str, Any] = {"vm": command.vm, "resourceGroup": command.resource_group}
        if attachment is None or attachment.vm_id != command.vm_id:
            return answer | {"health": "detached", "note": "no longer attached: nothing to check"}
        checked = self.mounts.check(attachment, run_key=context.operation.id, nonce=context.operation.nonce)
        answer |= {"storage": attachment.storage, "health": checked.health.value,
                   "error": checked.attachment.last_error}
        if checked.health is AttachmentHealth.VM_GONE:
            # Only this VM's record: not one written meanwhile for a recreated VM.
            self.mounts.release_network(attachment)  # its address may go to another VM
            self.attachments.remove(attachment.resource_group, attachment.vm, vm_id=attachment.vm_id)
            answer["removed"] = True
        elif checked.health is AttachmentHealth.UNMOUNTED and self.auto_heal:
            answer["repair"] = self._heal(checked.attachment, command.run)
        return answer

    def _heal(self, attachment: Attachment, run: str) -> str:
        command = AttachVm(
            attachment.storage, attachment.vm, attachment.resource_group, attachment.mount_point, repair=True,
            vm_id=attachment.vm_id,
        )
        key = f"reconcile-repair:{attachment.vm_id}:{run}"  # one per run and VM
        operation = self.intake.submit(command, key, requested_by=TIMER).operation
        log.warning(
            "VM %s: %s on the share of %s; repair %s queued",
            attachment.vm,
            attachment.last_error,
            attachment.storage,
            operation.id,
        )
        return operation.id

    def _other_access(self, accounts: list[CloudAccount], attachments: list[Attachment],
                      errors: list[str]) -> list[str]:
        """Someone opened another path to a share's data: say so (a WARNING and the report)."""
        found = [f"{a.name}: {path} was not made by the service"
                 for a in accounts for path in a.other_paths()]
        for name in sorted(a.name for a in accounts):
            try:
                storage = self.mounts.storages.get(name)
                if storage is not None:
                    attached = {a.address for a in attachments if a.storage == name and a.address}
                    found += self.mounts.guard.audit(storage, attached)
            except ServiceError as err:
                errors.append(f"{name}: checking who reaches it: {err.message}")
        for finding in found:
            log.warning("reconcile: another way in: %s", finding)
        return found
    def _attach_missed(self, started: datetime, errors: list[str]) -> tuple[list[str], list[UnattachedVm]]:
        """VMs asking for a storage (tag or group default) that have no attachment: attached (or
        refused) as their writer may; listed when the writer is unknown."""
        queued: list[str] = []
        waiting: list[UnattachedVm] = []
        try:
            vms = self.vms.list_vms()
        except ServiceError as err:
            errors.append(f"listing VMs: {err.message}")
            return [], []
        why = f"reconcile {format_time(started)}"
        for vm in vms:
            try:
                storage = self.auto_attach.storage_wanted(vm, why)
                if storage is None:
                    continue
                writer = self.auto_attach.who_asked(vm)
                if writer is None or not writer.principal.object_id:
                    waiting.append(UnattachedVm(vm.name, vm.resource_group, storage, WRITER_UNKNOWN))
                    continue
                operation = self.auto_attach.attach_as(vm, storage, writer, why)
            except ServiceError as err:
                errors.append(f"{vm.resource_group}/{vm.name}: {err.message}")
                continue
            if operation is not None:
                queued.append(operation)
        return queued, waiting
