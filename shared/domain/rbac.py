"""Azure role-based access control, as Azure evaluates it, so the service can act as a faithful
deputy: it does for a caller only what Azure would let that caller do.

- Scopes nest: a grant at a subscription applies to its resource groups and their resources.
- An action string matches case-insensitively; `*` stands for any text, `/` included
  (`Microsoft.Storage/*`, `*/read`, `Microsoft.Authorization/*/Write`).
- A role's NotActions subtract from that role's Actions only: another role may still grant the
  action. Permissions are the union of every applicable role's.
- A deny assignment wins over every grant, for its principals (all of them when it names the
  zero GUID) minus its excluded ones, at its scope and below unless it applies to its scope only.

Sources: MicrosoftDocs/azure-docs `articles/role-based-access-control/role-definitions.md`,
`overview.md`, `deny-assignments.md`. Standard library only.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

ALL_PRINCIPALS = "00000000-0000-0000-0000-000000000000"

# The actions the service's requests need (see the access-control table in docs/access.md).
STORAGE_READ = "Microsoft.Storage/storageAccounts/read"
STORAGE_WRITE = "Microsoft.Storage/storageAccounts/write"
STORAGE_DELETE = "Microsoft.Storage/storageAccounts/delete"
SUBNET_JOIN = "Microsoft.Network/virtualNetworks/subnets/join/action"
VNET_WRITE = "Microsoft.Network/virtualNetworks/write"
SUBNET_WRITE = "Microsoft.Network/virtualNetworks/subnets/write"
NSG_WRITE = "Microsoft.Network/networkSecurityGroups/write"
NSG_JOIN = "Microsoft.Network/networkSecurityGroups/join/action"
RUN_COMMANDS_WRITE = "Microsoft.Compute/virtualMachines/runCommands/write"
VM_READ = "Microsoft.Compute/virtualMachines/read"
GROUP_READ = "Microsoft.Resources/subscriptions/resourceGroups/read"
GROUP_WRITE = "Microsoft.Resources/subscriptions/resourceGroups/write"
GRANT_ACCESS = "Microsoft.Authorization/roleAssignments/write"


def group_scope(subscription: str, group: str) -> str:
    return f"/subscriptions/{subscription}/resourceGroups/{group}"


def storage_scope(subscription: str, group: str, account: str) -> str:
    return f"{group_scope(subscription, group)}/providers/Microsoft.Storage/storageAccounts/{account}"


def vm_scope(subscription: str, group: str, vm: str) -> str:
    return f"{group_scope(subscription, group)}/providers/Microsoft.Compute/virtualMachines/{vm}"


def subnet_scope(subscription: str, group: str, vnet: str, subnet: str) -> str:
    network = f"{group_scope(subscription, group)}/providers/Microsoft.Network/virtualNetworks/{vnet}"
    return f"{network}/subnets/{subnet}"


def matches(pattern: str, action: str) -> bool:
    return _compiled(pattern).fullmatch(action) is not None


@lru_cache(maxsize=1024)
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(".*".join(re.escape(part) for part in pattern.split("*")), re.IGNORECASE)


def covers(outer: str, inner: str) -> bool:
    """Whether what holds at scope `outer` holds at `inner` (the same scope, or one below it)."""
    outer_parts = [p.lower() for p in outer.split("/") if p]
    inner_parts = [p.lower() for p in inner.split("/") if p]
    return inner_parts[: len(outer_parts)] == outer_parts


@dataclass(frozen=True)
class Grant:
    """One permission block of a role the caller holds at the scope: Actions minus NotActions."""

    actions: tuple[str, ...]
    not_actions: tuple[str, ...] = ()

    def allows(self, action: str) -> bool:
        return any(matches(a, action) for a in self.actions) and not any(
            matches(a, action) for a in self.not_actions
        )


@dataclass(frozen=True)
class Denial:
    """A deny assignment that applies at the scope it was read for."""

    name: str
    scope: str
    actions: tuple[str, ...]
    not_actions: tuple[str, ...]
    principals: frozenset[str]
    excluded: frozenset[str]

    def blocks(self, action: str, identities: Iterable[str], *, complete: bool = True) -> bool:
        """Whether it blocks `action` for a caller known by `identities` (itself and its groups).
        When the caller's groups are not all known (`complete` False), a deny naming anyone else
        may name a group of theirs: it is taken to apply (fail closed)."""
        ids = set(identities)
        named = (ALL_PRINCIPALS in self.principals or not self.principals.isdisjoint(ids)
                 or (not complete and bool(self.principals - ids)))
        spared = not self.excluded.isdisjoint(ids)
        return named and not spared and Grant(self.actions, self.not_actions).allows(action)


@dataclass(frozen=True)
class Access:
    """What one caller may do at one scope, as Azure answered it."""

    scope: str
    grants: tuple[Grant, ...] = ()
    denials: tuple[Denial, ...] = ()

    def granted(self, action: str) -> bool:
        return any(grant.allows(action) for grant in self.grants)

    def denial(self, action: str, identities: Iterable[str], *, complete: bool = True) -> Denial | None:
        ids = frozenset(identities)
        return next((d for d in self.denials if d.blocks(action, ids, complete=complete)), None)

    def allows(self, action: str, identities: Iterable[str], *, complete: bool = True) -> bool:
        return self.granted(action) and self.denial(action, identities, complete=complete) is None
