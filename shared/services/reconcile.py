"""The reconcile timer's work: check every recorded attachment against the VM, act on what it
finds, and attach tagged VMs whose creation event was missed.

One read-only Run Command per attached VM (the verify script), up to eight VMs at a time. Then,
per health:
- healthy, or not checkable now (VM stopped, agent busy): recorded, nothing else;
- unmounted: re-attached (an AttachVm with `repair`) when auto-heal is on;
- wrong source: recorded and reported, never healed: something else was mounted on the home on
  purpose or by mistake, and unmounting it could hide files someone is using; a person decides;
- VM gone (deleted, or recreated under the same name): the record is removed; the VM's disk went
  with it, and the share keeps every file;
- storage gone: recorded and reported; the VM keeps whatever its fstab's `nofail` line allows.

VMs that ask for a storage (tag or group default) but have no attachment follow auto-attach's
rule: attached only when the principal that wrote them (remembered from their event) is an owner
or member of the storage. A VM whose writer is unknown (its event was missed) is never attached:
it is listed in the run's findings, which the daily digest reports.

Safe to repeat: a run only reads, records health and findings, and queues idempotent operations.
"""

from __future__ import annotations

import logging
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime

from shared.domain.commands import AttachVm
from shared.domain.digests import UnattachedVm
from shared.domain.errors import ServiceError
from shared.domain.identity import Principal
from shared.domain.models import Attachment, AttachmentHealth, VerifiedAttachment
from shared.domain.provisioning import CloudAccount
from shared.domain.serialization import format_time
from shared.ports import AttachmentRepository, Clock, ReconcileFindings, StorageCloud, VmCloud

from .auto_attach import AutoAttachService
from .mounting import MountService
from .operations import OperationIntake

log = logging.getLogger(__name__)
PARALLEL_CHECKS = 8
WRITER_UNKNOWN = ("who wrote it is unknown (its creation event was missed), so it was not attached; "
                  "an owner or member of the storage can attach it through the API")


@dataclass(frozen=True)
class ReconcileReport:
    started_at: datetime
    checked: int
    health: dict[str, int]  # attachments per health
    healed: tuple[str, ...] = ()  # repair operations queued
    removed: tuple[str, ...] = ()  # "resourceGroup/vm" of records removed (VM gone)
    attach_queued: tuple[str, ...] = ()  # attaches queued (or refused) for VMs asking for a storage
    not_attached: tuple[UnattachedVm, ...] = ()  # VMs asking for a storage whose writer is unknown
    errors: tuple[str, ...] = ()
    other_access: tuple[str, ...] = ()  # ways to a share's endpoint the service did not make


class ReconcileService:
    def __init__(
        self,
        attachments: AttachmentRepository,
        vms: VmCloud,
        cloud: StorageCloud,
        mounts: MountService,
        auto_attach: AutoAttachService,
        intake: OperationIntake,
        findings: ReconcileFindings,
        clock: Clock,
        *,
        auto_heal: bool,
    ) -> None:
        self.findings = findings
        self.attachments = attachments
        self.vms = vms
        self.cloud = cloud
        self.mounts = mounts
        self.auto_attach = auto_attach
        self.intake = intake
        self.clock = clock
        self.auto_heal = auto_heal

    def run(self) -> ReconcileReport:
        started = self.clock.now()
        listed = [a for a in self.cloud.list_accounts(None) if a.managed]  # one listing
        accounts = {a.name for a in listed}
        health: Counter[str] = Counter()
        healed: list[str] = []
        removed: list[str] = []
        errors: list[str] = []
        attachments = self.attachments.list_all()

        def check(attachment: Attachment) -> VerifiedAttachment | ServiceError:
            try:
                return self.mounts.check(attachment, storage_exists=attachment.storage in accounts)
            except ServiceError as err:  # this VM could not be asked now; the others still are
                return err

        # Each check waits on a Run Command for seconds: ask the VMs side by side.
        with ThreadPoolExecutor(max_workers=PARALLEL_CHECKS, thread_name_prefix="reconcile") as pool:
            results = list(pool.map(check, attachments))
        for attachment, checked in zip(attachments, results, strict=True):
            if isinstance(checked, ServiceError):
                errors.append(f"{attachment.resource_group}/{attachment.vm}: {checked.message}")
                health[AttachmentHealth.UNKNOWN.value] += 1
                continue
            health[checked.health.value] += 1
            if checked.health is AttachmentHealth.VM_GONE:
                try:  # only this VM's record: not one written meanwhile for a recreated VM
                    self.mounts.release_network(attachment)  # its address may go to another VM
                    self.attachments.remove(attachment.resource_group, attachment.vm, vm_id=attachment.vm_id)
                except ServiceError as err:
                    errors.append(f"{attachment.resource_group}/{attachment.vm}: {err.message}")
                    continue
                removed.append(f"{attachment.resource_group}/{attachment.vm}")
            elif checked.health is AttachmentHealth.UNMOUNTED and self.auto_heal:
                healed.append(self._heal(checked.attachment, started))
        queued, waiting = self._attach_missed(started, errors)
        other_access = self._other_access(listed, self.attachments.list_all(), errors)
        report = ReconcileReport(
            started,
            len(attachments),
            dict(health),
            tuple(healed),
            tuple(removed),
            tuple(queued),
            tuple(waiting),
            tuple(errors),
            tuple(other_access),
        )
        try:
            self.findings.save(list(waiting), started)
        except ServiceError as err:
            errors.append(f"recording the findings: {err.message}")
        log.info(
            "reconcile: %d attachment(s) checked %s; healed %d, removed %d, attach queued %d, "
            "not attached (writer unknown) %d, errors %d",
            report.checked,
            dict(health),
            len(healed),
            len(removed),
            len(queued),
            len(waiting),
            len(errors),
        )
        return report


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
    def _heal(self, attachment: Attachment, started: datetime) -> str:
        command = AttachVm(
            attachment.storage, attachment.vm, attachment.resource_group, attachment.mount_point, repair=True,
            vm_id=attachment.vm_id,
        )
        key = f"reconcile-repair:{attachment.vm_id}:{format_time(started)}"  # one per run and VM
        timer = Principal.service("reconcile timer")
        operation = self.intake.submit(command, key, requested_by=timer).operation
        log.warning(
            "VM %s: %s on the share of %s; repair %s queued",
            attachment.vm,
            attachment.last_error,
            attachment.storage,
            operation.id,
        )
        return operation.id

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
