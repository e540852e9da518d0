"""Who asks: the caller of an HTTP request (from its validated Entra ID token) and the principal
an operation records as `requestedBy`.

Users, groups and service principals are all principals. A user's token is delegated (it carries
`scp`) and lists the user's groups; a service principal's token is app-only. Groups never call:
they reach the service through their members' tokens.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import Enum


class PrincipalKind(str, Enum):
    USER = "User"
    SERVICE_PRINCIPAL = "ServicePrincipal"
    GROUP = "Group"
    SERVICE = "Service"  # the service itself, on its own schedule (a reconcile repair)
    UNKNOWN = "Unknown"  # an event whose writer Azure did not name


@dataclass(frozen=True)
class Principal:
    """Who asked for an operation, as people read it: `requestedBy`."""

    object_id: str
    name: str
    kind: PrincipalKind

    @classmethod
    def service(cls, what: str) -> Principal:
        """The service itself as the requester (no object id: it acts with its own identity)."""
        return cls("", f"azlin storage service ({what})", PrincipalKind.SERVICE)


@dataclass(frozen=True)
class Caller:
    """An authenticated caller. `token` is kept for the on-behalf-of exchange only (never logged
    or stored). `groups_complete` is False when the token could not list every group (Entra's
    overage: more than 200 groups), so a membership through a group may go unseen."""

    principal: Principal
    tenant_id: str
    groups: frozenset[str] = frozenset()
    token: str = field(default="", repr=False, compare=False)
    groups_complete: bool = True

    @property
    def object_id(self) -> str:
        return self.principal.object_id

    @property
    def delegated(self) -> bool:
        """A user's own token: Azure answers what *they* may do through on-behalf-of."""
        return self.principal.kind is PrincipalKind.USER

    @property
    def identities(self) -> frozenset[str]:
        """The object ids a grant to this caller can name: itself and its groups."""
        return frozenset({self.object_id, *self.groups})

    def is_in(self, object_ids: Iterable[str]) -> bool:
        return not self.identities.isdisjoint(object_ids)


@dataclass(frozen=True)
class Writer:
    """The principal that wrote a VM, from its Resource Manager event: the writer's object id
    (`data.claims`) and the principal of the role assignment that let it write
    (`data.authorization.evidence.principalId`: the writer itself, or a group it belongs to)."""

    principal: Principal
    evidence_principal: str | None = None

    @property
    def identities(self) -> frozenset[str]:
        ids = {self.principal.object_id} if self.principal.kind is not PrincipalKind.UNKNOWN else set()
        if self.evidence_principal:
            ids.add(self.evidence_principal)
        return frozenset(i for i in ids if i)
