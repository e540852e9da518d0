"""Access control: every request acts as its caller, never with the service's own power.

Two questions, asked before anything is recorded or queued:
- what Azure lets the caller do at the target scope (`AccessReader`: their permissions there and
  the deny assignments), remembered per caller and scope for at most `CACHE_SECONDS`;
- whether the caller is an owner or a member of the storage (`StorageAccess` records): only
  owners change a storage or say who may use it; members may attach their VMs to it.

Refusals are `PermissionDenied` (403) naming the missing action and scope, or the missing
ownership or membership. Standard library only, through the ports.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable

from shared.domain import rbac
from shared.domain.errors import ErrorCode, NotFound, PermissionDenied
from shared.domain.identity import Caller, Principal, PrincipalKind
from shared.domain.models import StorageAccess, StorageInfo
from shared.ports import AccessReader, StorageAccessRepository

CACHE_SECONDS = 300  # Azure's answer is trusted this long; a revoked role stops working after it
MAX_CACHED = 10_000


class AccessControl:
    def __init__(
        self,
        reader: Callable[[], AccessReader],
        records: StorageAccessRepository,
        subscription_id: str,
        *,
        cache_seconds: float = CACHE_SECONDS,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.reader = reader  # built on first need: the Resource Manager SDK loads then
        self.records = records
        self.subscription_id = subscription_id
        self.cache_seconds = cache_seconds
        self.monotonic = monotonic
        self._cache: OrderedDict[tuple[str, bool, str], tuple[float, rbac.Access]] = OrderedDict()
        self._lock = threading.Lock()

    # -- scopes -----------------------------------------------------------------------------------

    def group(self, group: str) -> str:
        return rbac.group_scope(self.subscription_id, group)

    def storage_scope(self, storage: StorageInfo) -> str:
        return self.account(storage.resource_group, storage.name)

    def account(self, group: str, name: str) -> str:
        return rbac.storage_scope(self.subscription_id, group, name)

    def vm(self, group: str, vm: str) -> str:
        return rbac.vm_scope(self.subscription_id, group, vm)

    def subnet(self, group: str, vnet: str, subnet: str) -> str:
        return rbac.subnet_scope(self.subscription_id, group, vnet, subnet)

    # -- Azure's answer ---------------------------------------------------------------------------

    def access(self, caller: Caller, scope: str) -> rbac.Access:
        """Azure's answer, remembered per caller and scope for CACHE_SECONDS: a role given or
        taken away applies here within that time, and a caller cannot make the service ask Azure
        again by fetching new tokens. A user's own answer (on their behalf) and the one read from
        their role assignments (as an event's writer) are kept apart."""
        key = (caller.object_id, caller.delegated, scope.lower())
        now = self.monotonic()
        with self._lock:
            cached = self._cache.get(key)
            if cached is not None and now - cached[0] < self.cache_seconds:
                return cached[1]
        answer = self.reader().access(caller, scope)
        with self._lock:
            self._cache[key] = (now, answer)
            self._cache.move_to_end(key)
            while len(self._cache) > MAX_CACHED:
                self._cache.popitem(last=False)
        return answer

    def may(self, caller: Caller, action: str, scope: str) -> bool:
        return self.access(caller, scope).allows(action, caller.identities, complete=caller.groups_complete)

    def principal_may(self, principal: Principal, action: str, scope: str) -> bool:
        """Whether Azure lets a principal that is not calling (an event's writer) do `action`:
        its role assignments (its groups' included) and the deny assignments, read by the app,
        since there is no token of theirs to ask with."""
        absent = Caller(
            Principal(principal.object_id, principal.name, PrincipalKind.SERVICE_PRINCIPAL),
            "",
            groups_complete=False,
        )  # its groups are not known here
        return self.may(absent, action, scope)

    def require(self, caller: Caller, action: str, scope: str) -> None:
        """Refuse, naming the action and the scope, unless Azure lets the caller do `action` there."""
        access = self.access(caller, scope)
        complete = caller.groups_complete
        if access.allows(action, caller.identities, complete=complete):
            return
        denial = access.granted(action) and access.denial(action, caller.identities, complete=complete)
        cause = (
            f"the deny assignment '{denial.name}' at {denial.scope} blocks it"
            if denial
            else f"no role of yours at {scope} or above allows {action}"
        )
        raise PermissionDenied(
            f"You may not perform '{action}' over scope '{scope}'.",
            causes=[cause, f"caller: {caller.principal.name} ({caller.object_id})"],
            try_hint="ask an owner of that scope for a role that includes this action (or to lift the "
            "deny assignment); a new role assignment takes up to 5 minutes to apply here",
            code=ErrorCode.AUTHORIZATION_FAILED,
        )

    # -- owners and members -----------------------------------------------------------------------

    def record(self, storage: str) -> StorageAccess:
        """The storage's owners and members; a storage recorded before access control has none."""
        return self.records.get(storage) or StorageAccess(storage, owners=())

    def is_owner(self, caller: Caller, storage: str) -> bool:
        return self.record(storage).owned_by(caller.identities)

    def require_owner(self, caller: Caller, storage: StorageInfo, doing: str) -> StorageAccess:
        """The storage's record, once the caller is found to be an owner of it."""
        record = self.record(storage.name)
        if record.owned_by(caller.identities):
            return record
        if not record.owners and self.may(caller, rbac.GRANT_ACCESS, self.storage_scope(storage)):
            return record  # no owner recorded yet: whoever may grant access to the account in Azure may
        raise self.not_owner(caller, storage.name, doing)

    def require_name_free_or_owned(self, caller: Caller, group: str, storage: str, doing: str) -> None:
        """A name whose owners are recorded without a storage (a create under way, or one whose
        worker died) is theirs, and whoever may grant access to that account in Azure."""
        record = self.record(storage)
        if (
            record.owners
            and not record.owned_by(caller.identities)
            and not self.may(caller, rbac.GRANT_ACCESS, self.account(group, storage))
        ):
            raise self.not_owner(caller, storage, doing)

    @staticmethod
    def not_owner(caller: Caller, storage: str, doing: str) -> PermissionDenied:
        return PermissionDenied(
            f"Only an owner of storage {storage} may {doing}.",
            causes=[
                f"{caller.principal.name} ({caller.object_id}) is not one of its owners" + _incomplete(caller)
            ],
            try_hint=f"ask an owner to add you: PUT /api/storage/{storage}/access",
            code=ErrorCode.NOT_AN_OWNER,
        )

    def require_member(self, caller: Caller, storage: StorageInfo, doing: str) -> None:
        if self.record(storage.name).open_to(caller.identities):
            return
        raise PermissionDenied(
            f"Only an owner or a member of storage {storage.name} may {doing}.",
            causes=[f"{caller.principal.name} ({caller.object_id}) is neither" + _incomplete(caller)],
            try_hint=f"ask an owner to make you a member: PUT /api/storage/{storage.name}/access",
            code=ErrorCode.NOT_A_MEMBER,
        )

    def can_read(self, caller: Caller, storage: StorageInfo) -> bool:
        """Owners and members, and whoever may read storage accounts in its resource group."""
        return self.record(storage.name).open_to(caller.identities) or self._may_or_gone(
            caller, rbac.STORAGE_READ, self.group(storage.resource_group)
        )

    def require_read(self, caller: Caller, storage: StorageInfo) -> None:
        if self.can_read(caller, storage):
            return
        scope = self.group(storage.resource_group)
        raise PermissionDenied(
            f"You may not read storage {storage.name}.",
            causes=[
                f"you are neither an owner nor a member, and no role of yours allows "
                f"{rbac.STORAGE_READ} over scope '{scope}'"
            ],
            try_hint="ask an owner to make you a member, or ask for the Reader role on its resource group",
            code=ErrorCode.AUTHORIZATION_FAILED,
        )

    def readable_groups(self, caller: Caller, groups: set[str]) -> set[str]:
        """The resource groups (lower case) the caller may read; one that no longer exists is
        nobody's to read (Azure answers nothing about it)."""
        return {g for g in groups if self._may_or_gone(caller, rbac.GROUP_READ, self.group(g))}

    def _may_or_gone(self, caller: Caller, action: str, scope: str) -> bool:
        try:
            return self.may(caller, action, scope)
        except NotFound:
            return False


def _incomplete(caller: Caller) -> str:
    if caller.groups_complete:
        return ""
    return " (your token does not list all your groups, so a membership through a group was not seen)"
