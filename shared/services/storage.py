"""Storage use cases on the HTTP side: read recorded storage, and accept create, resize and
delete requests after the checks that need no Azure call."""

from __future__ import annotations

from shared.domain.commands import CreateStorage, DeleteStorage, ResizeStorage
from shared.domain.costs import PriceBook, monthly_storage_cost, price_for
from shared.domain.errors import Conflict, ErrorCode, NotFound, ValidationError
from shared.domain.models import StorageInfo, StorageStatus
from shared.domain.requests import RequestDefaults, StorageRef
from shared.ports import AttachmentRepository, Page, StorageRepository

from .operations import OperationIntake, Submission


class StorageService:
    def __init__(self, storages: StorageRepository, attachments: AttachmentRepository,
                 intake: OperationIntake, defaults: RequestDefaults,
                 prices: PriceBook | None = None) -> None:
        self.storages = storages
        self.attachments = attachments
        self.intake = intake
        self.defaults = defaults
        self.prices = prices

    def list(self, resource_group: str | None, page_size: int,
             continuation: str | None) -> Page[StorageInfo]:
        return self.storages.list(resource_group, page_size, continuation)

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
        vms = tuple(sorted(a.vm for a in self.attachments.list_for_storage(storage.name)))
        price = price_for(storage.tier, storage.redundancy, self.prices)
        return StorageStatus(
            info=storage,
            used_gb=None,  # share usage is read from Resource Manager; unknown until it is
            utilization_percent=None,
            connected_vms=vms,
            cost_per_month=monthly_storage_cost(storage.size_gb, price),
            currency=price.currency,
            price_source=price.source.value,
        )

    def request_create(self, command: CreateStorage, idempotency_key: str | None) -> Submission:
        return self.intake.submit(command, idempotency_key)

    def request_resize(self, ref: StorageRef, size_gb: int,
                       idempotency_key: str | None) -> Submission:
        storage = self.get(ref)
        command = ResizeStorage(storage.name, storage.resource_group, size_gb)
        return self.intake.submit(command, idempotency_key)

    def request_delete(self, ref: StorageRef, force: bool,
                       idempotency_key: str | None) -> Submission:
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
                             "(each VM gets its home back) before deleting",
                    code=ErrorCode.STORAGE_IN_USE,
                )
        resource_group = ref.resource_group or self.defaults.resource_group
        if resource_group is None:
            raise ValidationError(
                "'resourceGroup' is required for storage this service has no record of.",
                try_hint="add ?resourceGroup=<name>",
            )
        return self.intake.submit(DeleteStorage(ref.name, resource_group, force), idempotency_key)
