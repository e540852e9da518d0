"""What a caller may do at a scope, as Azure answers it (Microsoft.Authorization, 2022-04-01):

- a user: `GET {scope}/providers/Microsoft.Authorization/permissions`, called as the user through
  the on-behalf-of flow: the permission blocks of every role they hold there, by any path (their
  own assignments, their groups', inherited ones); a user without even the right to read their
  permissions holds nothing there;
- a service principal (app-only token: on-behalf-of needs a user): its role assignments at the
  scope and above, `$filter=atScope() and assignedTo('{objectId}')` (groups included), and the
  roles they name, read with the app's identity;
- either: the deny assignments at the scope and above (`$filter=atScope()`), read with the app's
  identity, since the permissions API does not reflect them.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

from azure.core.exceptions import ClientAuthenticationError, HttpResponseError

from shared.domain.errors import ConfigurationError, PermissionDenied, Unauthenticated
from shared.domain.identity import Caller
from shared.domain.rbac import Access, Denial, Grant

from . import credentials
from .arm_errors import arm_errors

if TYPE_CHECKING:
    from azure.mgmt.authorization import AuthorizationManagementClient

    from .arm import ArmClients

log = logging.getLogger(__name__)
T = TypeVar("T")
ROLE_CACHE_SECONDS = 300
# Entra's refusals of the on-behalf-of exchange that are the app registration's fault, not the
# caller's: no consent, unknown client, bad secret or assertion, no matching federated credential.
REGISTRATION_FAULTS = frozenset({"65001", "700016", "7000215", "7000222", "70021", "700024"})
MAX_CALLER_CLIENTS = 256


class ArmAccessReader:
    def __init__(self, clients: ArmClients) -> None:
        self.clients = clients
        self._lock = threading.Lock()
        self._roles: dict[str, tuple[float, tuple[Grant, ...]]] = {}
        self._denied: dict[str, tuple[float, tuple[Denial, ...]]] = {}
        self._as_caller: OrderedDict[str, AuthorizationManagementClient] = OrderedDict()

    def access(self, caller: Caller, scope: str) -> Access:
        grants = (
            self._user_grants(caller, scope) if caller.delegated else self._principal_grants(caller, scope)
        )
        return Access(scope, grants, self._denials(scope))

    # -- a user, on their behalf ------------------------------------------------------------------

    def _user_grants(self, caller: Caller, scope: str) -> tuple[Grant, ...]:
        client = self._client_of(caller)
        with _as_user(), arm_errors(f"read your permissions at {scope}"):
            try:
                blocks = list(_permissions(client, scope))
            except HttpResponseError as err:
                if err.status_code == 403:  # not even Microsoft.Authorization/permissions/read there
                    return ()
                raise
        return tuple(Grant(tuple(b.actions or ()), tuple(b.not_actions or ())) for b in blocks)

    def _client_of(self, caller: Caller) -> AuthorizationManagementClient:
        """One client per caller token, so the on-behalf-of token it got is reused."""
        key = hashlib.sha256(caller.token.encode()).hexdigest()
        with self._lock:
            client = self._as_caller.get(key)
            if client is None:
                settings = self.clients.settings
                credential = credentials.on_behalf_of(
                    settings.arm_credential, settings.identity, caller.token
                )
                client = self._as_caller[key] = self.clients.authorization_as(credential)
                while len(self._as_caller) > MAX_CALLER_CLIENTS:
                    self._as_caller.popitem(last=False)
            self._as_caller.move_to_end(key)
            return client

    # -- a service principal, read with the app's identity ----------------------------------------

    def _principal_grants(self, caller: Caller, scope: str) -> tuple[Grant, ...]:
        with _as_app(), arm_errors(f"read the role assignments at {scope}"):
            assignments = list(
                self.clients.authorization.role_assignments.list_for_scope(
                    scope, filter=f"atScope() and assignedTo('{caller.object_id}')"
                )
            )
        grants: list[Grant] = []
        for assignment in assignments:  # atScope(): each applies here (one from a management group too)
            # An assignment with a condition (ABAC) holds only where its condition does, which
            # this service cannot evaluate: it is not counted (fail closed).
            if assignment.condition or not assignment.role_definition_id:
                continue
            grants += self._role(assignment.role_definition_id)
        return tuple(grants)

    def _role(self, role_definition_id: str) -> tuple[Grant, ...]:
        def read() -> tuple[Grant, ...]:
            with _as_app(), arm_errors(f"read the role definition {role_definition_id}"):
                role = self.clients.authorization.role_definitions.get_by_id(role_definition_id)
            return tuple(
                Grant(tuple(p.actions or ()), tuple(p.not_actions or ())) for p in role.permissions or ()
            )

        return self._remembered(self._roles, role_definition_id.lower(), read)

    def _denials(self, scope: str) -> tuple[Denial, ...]:
        """Everyone's deny assignments at the scope and above: the same for every caller, so read
        once per scope within ROLE_CACHE_SECONDS."""

        def read() -> tuple[Denial, ...]:
            with _as_app(), arm_errors(f"read the deny assignments at {scope}"):
                found = list(
                    self.clients.authorization.deny_assignments.list_for_scope(scope, filter="atScope()")
                )
            return _applying(found, scope)

        return self._remembered(self._denied, scope.lower(), read)

    def _remembered(self, store: dict[str, tuple[float, T]], key: str, read: Callable[[], T]) -> T:
        """What `read` answered for `key` within ROLE_CACHE_SECONDS, else its new answer."""
        now = time.monotonic()
        with self._lock:
            cached = store.get(key)
        if cached is not None and now - cached[0] < ROLE_CACHE_SECONDS:
            return cached[1]
        answer = read()
        with self._lock:
            store[key] = (now, answer)
        return answer


def _applying(found: list[Any], scope: str) -> tuple[Denial, ...]:
    """The deny assignments of an atScope() listing (at the scope or above, a management group
    included) that apply at `scope`: all but those above it that spare child scopes."""
    denials = []
    for denial in found:
        at = denial.scope or ""
        if denial.do_not_apply_to_child_scopes and at.rstrip("/").lower() != scope.rstrip("/").lower():
            continue
        for block in denial.permissions or ():
            denials.append(
                Denial(
                    denial.deny_assignment_name or denial.name or "",
                    at,
                    tuple(block.actions or ()),
                    tuple(block.not_actions or ()),
                    frozenset(p.id for p in denial.principals or () if p.id),
                    frozenset(p.id for p in denial.exclude_principals or () if p.id),
                )
            )
    return tuple(denials)


def _permissions(client: AuthorizationManagementClient, scope: str) -> Any:
    """The permissions API for a resource group or a resource (`{resource id}/providers/...`)."""
    parts = [p for p in scope.split("/") if p]
    group = parts[3]
    if len(parts) == 4:
        return client.permissions.list_for_resource_group(group)
    namespace, rest = parts[5], parts[6:]
    types, names = rest[0::2], rest[1::2]
    parent = "/".join(f"{t}/{n}" for t, n in zip(types[:-1], names[:-1], strict=True))
    return client.permissions.list_for_resource(group, namespace, parent, types[-1], names[-1])


@contextmanager
def _as_user() -> Iterator[None]:
    """The on-behalf-of exchange can fail for the user's token (revoked, app-only) or for the
    app's registration (no consent to act for users on Resource Manager)."""
    try:
        yield
    except ClientAuthenticationError as err:
        text = str(err.message or err).splitlines()[0][:300]
        if any(f"AADSTS{code}:" in text for code in REGISTRATION_FAULTS):
            raise ConfigurationError(
                "The API's app registration may not act for users on Resource Manager.",
                causes=[text],
                try_hint="grant it the delegated user_impersonation "
                "permission of Azure Service Management, with consent (docs/deploy.md)",
            ) from err
        raise Unauthenticated(
            "Azure would not act on your behalf with this token.",
            causes=[text],
            try_hint="sign in again and get a new token for the API",
        ) from err


@contextmanager
def _as_app() -> Iterator[None]:
    """The app's identity failing to read Microsoft.Authorization is a deployment fault, not the
    caller's: a 503 that names the missing role, never a 403 to the caller."""
    try:
        yield
    except PermissionDenied as err:  # Azure's own words (the identity's ids) go to the log only
        log.warning("the app's identity was refused: %s %s", err.message, " ".join(err.causes))
        raise ConfigurationError(
            "The service's identity may not read Azure role assignments here.",
            causes=[err.message],
            try_hint="give the service's identity its roles from infra/ "
            "(Microsoft.Authorization/*/read actions)",
        ) from err
