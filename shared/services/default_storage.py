"""A resource group's default storage: what its new VMs are attached to when their auto-attach
tag names none (the tag's value `none` still opts a VM out).

Setting it is a decision about the storage and about the group: an owner of the storage with
`storageAccounts/write` on it, who may also write the group (`resourceGroups/write`). Reading it
needs `resourceGroups/read` on the group; clearing it `resourceGroups/write`."""

from __future__ import annotations

from collections.abc import Callable

from shared.domain import rbac
from shared.domain.errors import ErrorCode, NotFound
from shared.domain.identity import Caller
from shared.domain.models import DefaultStorage
from shared.domain.requests import StorageRef
from shared.ports import Clock, DefaultStorageRepository, StorageCloud

from .access import AccessControl
from .storage import StorageService


class DefaultStorageService:
    """`cloud` is called on first need: building the service imports no Resource Manager SDK."""

    def __init__(self, defaults: DefaultStorageRepository, storage: StorageService, access: AccessControl,
                 clock: Clock, *, cloud: Callable[[], StorageCloud]) -> None:
        self.defaults = defaults
        self.storage = storage
        self.access = access
        self.clock = clock
        self.cloud = cloud

    def set(self, caller: Caller, resource_group: str, storage: str) -> DefaultStorage:
        """Both must exist: the storage in this service's records, the group in Azure."""
        known = self.storage.find(StorageRef(storage, None))
        self.access.require_owner(caller, known, "make it a group's default")
        self.access.require(caller, rbac.STORAGE_WRITE, self.access.storage_scope(known))
        self.access.require(caller, rbac.GROUP_WRITE, self.access.group(resource_group))
        if self.cloud().group_region(resource_group) is None:
            raise NotFound(
                f"Resource group {resource_group} does not exist.",
                code=ErrorCode.RESOURCE_GROUP_NOT_FOUND,
                try_hint="check the name, or create it first (az group create)",
            )
        default = DefaultStorage(resource_group, known.name, self.clock.now())
        self.defaults.save(default)
        return default

    def get(self, caller: Caller, resource_group: str) -> DefaultStorage:
        self.access.require(caller, rbac.GROUP_READ, self.access.group(resource_group))
        default = self.defaults.get(resource_group)
        if default is None:
            raise NotFound(
                f"Resource group {resource_group} has no default storage.",
                code=ErrorCode.DEFAULT_STORAGE_NOT_SET,
                try_hint=f"set one with PUT /api/resource-groups/{resource_group}/default-storage "
                '{"storage": "<name>"}',
            )
        return default

    def clear(self, caller: Caller, resource_group: str) -> None:
        """Idempotent: clearing what is not set succeeds."""
        self.access.require(caller, rbac.GROUP_WRITE, self.access.group(resource_group))
        self.defaults.remove(resource_group)
