"""Storage use cases on the HTTP side: read recorded storage, and accept create, resize and
delete requests after the checks that need no Azure call."""

from __future__ import annotations

import logging
from collections.abc import Callable

from shared.domain.cloud_init import cloud_config
from shared.domain.commands import CreateStorage, DeleteStorage, ResizeStorage
from shared.domain.costs import FALLBACK_STORAGE_PRICE, StoragePrice, monthly_storage_cost, round_money
from shared.domain.errors import Conflict, ErrorCode, NotFound, ServiceError, ValidationError
from shared.domain.models import DetachMode, Redundancy, StorageInfo, StorageStatus, VmHealth
from shared.domain.requests import RequestDefaults, StorageRef
from shared.ports import AttachmentRepository, Page, StorageCloud, StorageRepository
from shared.scripts import run_command_script

from .operations import OperationIntake, Submission

log = logging.getLogger(__name__)
GIB = 2**30


class StorageService:
    """`cloud` is called on first need: building the service imports no Resource Manager SDK."""

    def __init__(self, storages: StorageRepository, attachments: AttachmentRepository,
                 intake: OperationIntake, defaults: RequestDefaults,
                 *, cloud: Callable[[], StorageCloud],
                 price: Callable[[str, Redundancy], StoragePrice] | None = None) -> None:
        self.storages = storages
        self.attachments = attachments
        self.intake = intake
        self.defaults = defaults
        self.cloud = cloud
        self.price = price or (lambda region, redundancy: FALLBACK_STORAGE_PRICE)

    def list(self, resource_group: str | None, page_size: int,
             continuation: str | None) -> Page[StorageInfo]:
        """Recorded storage whose account still exists in Azure: one page of records joined with
        one Resource Manager listing, never a call per account."""
        page = self.storages.list(resource_group, page_size, continuation)
        if not page.items:
            return page
        existing = {a.name for a in self.cloud().list_accounts(resource_group) if a.managed}
        return Page([s for s in page.items if s.name in existing], page.continuation)

    def get(self, ref: StorageRef) -> StorageInfo:
        storage = self.storages.get(ref.name)
        if storage is None or (ref.resource_group is not None
                               and storage.resource_group.lower() != ref.resource_group.lower()):
            where = f" in resource group {ref.resource_group}" if ref.resource_group else ""
            raise NotFound(
                f"Storage {ref.name} is not known to this service{where}.",
                causes=["it was never created through this service, or it was deleted"],
                try_hint="list what exists with GET /api/storage",
                code=ErrorCode.STORAGE_NOT_FOUND,
            )
        return storage

    def status(self, ref: StorageRef) -> StorageStatus:
        storage = self.get(ref)
        attached = sorted(self.attachments.list_for_storage(storage.name), key=lambda a: a.vm.lower())
        price = self.price(storage.region, storage.redundancy)
        used = self.used_gb(storage)
        return StorageStatus(
            info=storage,
            used_gb=used,
            utilization_percent=None if used is None else round(100 * used / storage.size_gb, 2),
            connected_vms=tuple(a.vm for a in attached),
            cost_per_month=round_money(monthly_storage_cost(storage.size_gb, price)),
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

    def cloud_init(self, ref: StorageRef, user: str, mount_point: str | None) -> str:
        """The cloud-config that gives a new VM this storage as `user`'s home from its first boot."""
        storage = self.get(ref)
        return cloud_config(storage, user, mount_point or f"/home/{user}", run_command_script("attach"))

    def request_create(self, command: CreateStorage, idempotency_key: str | None) -> Submission:
        return self.intake.submit(command, idempotency_key)

    def request_resize(self, ref: StorageRef, size_gb: int,
                       idempotency_key: str | None) -> Submission:
        storage = self.get(ref)
        command = ResizeStorage(storage.name, storage.resource_group, size_gb)
        return self.intake.submit(command, idempotency_key)

    def request_delete(self, ref: StorageRef, force: bool, idempotency_key: str | None,
                       detach_mode: DetachMode = DetachMode.COPY) -> Submission:
        """Deleting what is not recorded is still accepted: deletion is idempotent, and the
        worker decides whether anything of ours is left in Azure."""
        storage = self.storages.get(ref.name)
        if storage is not None:
            ref = StorageRef(storage.name, storage.resource_group)
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
        return self.intake.submit(command, idempotency_key)
