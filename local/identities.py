"""The identities of the local stack, as a deployment has them in Azure:

- the API's app registration (`azlin-storage-api`): the audience of callers' tokens, with the
  delegated scope `user_impersonation`, trusting the app's identity as its federated credential
  (for the on-behalf-of exchange);
- the app's managed identity (`azlin-app`): holds exactly the custom roles `infra/main.bicep`
  defines, built from their single source `shared/adapters/arm_operations.py` (the subscription
  role at the subscription, the resource-group role at each group the service manages); locally it
  signs in with a secret, which settings accept for the emulator only;
- people to sign in as: `make dev` adds alice (Owner of the subscription) and bob (no role).

Used in process by `make dev`, the tests and the benchmarks; `python -m local` does the same
through the emulator's control API.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from local.emulator.core import Emulator
from local.emulator.tenant import ARM_SCOPE, Principal
from local.rest import ArmRest
from shared.adapters.arm_operations import RESOURCE_GROUP_OPERATIONS, SUBSCRIPTION_OPERATIONS

API_APP = "azlin-storage-api"
API_SCOPE = "user_impersonation"
APP_IDENTITY = "azlin-app"
GROUP_ROLE = "azlin storage service (resource groups)"
SUBSCRIPTION_ROLE = "azlin storage service (subscription reads)"


@dataclass(frozen=True)
class Identities:
    tenant_id: str
    authority: str
    api_client_id: str
    app_client_id: str
    app_object_id: str
    app_secret: str = field(repr=False)

    def app_settings(self) -> dict[str, str]:
        """What the function app is given: whom it trusts, and who it is."""
        return {
            "AUTH_TENANT_ID": self.tenant_id,
            "AUTH_AUDIENCE": self.api_client_id,
            "AUTH_AUTHORITY": self.authority,
            "AZURE_CLIENT_ID": self.app_client_id,
            "EMULATOR_IDENTITY_SECRET": self.app_secret,
            "ARM_CREDENTIAL": "emulator",
        }


def register(emu: Emulator, subscription: str) -> Identities:
    """The API and the app's identity with its roles (idempotent)."""
    tenant, authorization = emu.tenant, emu.authorization
    api = tenant.add("ServicePrincipal", API_APP, scope=API_SCOPE)
    app = tenant.add("ServicePrincipal", APP_IDENTITY, secret=secrets.token_urlsafe(24))
    tenant.trust(API_APP, APP_IDENTITY)
    everywhere = [f"/subscriptions/{subscription}"]  # infra/ lists the managed groups instead
    authorization.define(GROUP_ROLE, RESOURCE_GROUP_OPERATIONS, everywhere)
    authorization.define(SUBSCRIPTION_ROLE, SUBSCRIPTION_OPERATIONS, everywhere)
    _assign(emu, f"/subscriptions/{subscription}", app, SUBSCRIPTION_ROLE)
    assert api.app_id and app.app_id and app.secret
    return Identities(tenant.tenant_id, tenant.authority, api.app_id, app.app_id, app.object_id, app.secret)


def manage(emu: Emulator, subscription: str, group: str) -> None:
    """Let the app manage a resource group: its custom role there (infra/'s managed groups)."""
    scope = f"/subscriptions/{subscription}/resourceGroups/{group}"
    _assign(emu, scope, emu.tenant.get(APP_IDENTITY), GROUP_ROLE)


def person(emu: Emulator, name: str, *, groups: Iterable[str] = (),
           roles: Iterable[tuple[str, str]] = ()) -> Principal:
    """A user (idempotent), in `groups` (made when missing), holding `roles` as (role, scope)."""
    user = emu.tenant.add("User", name)
    for group in groups:
        emu.tenant.add("Group", group)
        emu.tenant.add_member(group, user.object_id)
    for role, scope in roles:
        _assign(emu, scope, user, role)
    return user


def token_source(emu: Emulator, name: str, *, arm: bool = False) -> Callable[[], str]:
    """Fresh access tokens of `name` (for the API, or for Resource Manager), each reused until
    a minute before it expires."""
    lock = threading.Lock()
    held: list[tuple[str, float]] = []

    def current() -> str:
        with lock:
            if not held or held[0][1] - time.time() < 60:
                principal = emu.tenant.get(name)
                api = emu.tenant.get(API_APP)
                scope = ARM_SCOPE if arm else f"api://{api.app_id}/.default"
                held[:] = [(emu.tenant.token(principal, scope), time.time() + 3600)]
            return held[0][0]

    return current


def _assign(emu: Emulator, scope: str, principal: Principal, role: str) -> None:
    definition = emu.authorization.role_named(role)
    assert definition is not None, role
    exists = any(a["properties"]["principalId"] == principal.object_id
                 and a["properties"]["scope"].lower() == scope.lower()
                 and a["properties"]["roleDefinitionId"].rsplit("/", 1)[-1] == definition["name"]
                 for a in list(emu.authorization.assignments.values()))
    if not exists:
        emu.authorization.assign(scope, principal.object_id, role)


def owner_session(emu: Emulator, subscription: str, group: str, region: str,
                  url: str, ca_path: str) -> tuple[Identities, ArmRest]:
    """For tools that start their own emulator (benchmarks): the app's identities, alice as Owner of
    the subscription, and a resource group (made by her) that the app manages; returns the
    identities and Resource Manager as alice."""
    app = register(emu, subscription)
    person(emu, "alice", roles=[("Owner", f"/subscriptions/{subscription}")])
    rest = ArmRest(url, ca_path, subscription, token_source(emu, "alice", arm=True))
    rest.put(rest.group_path(group), {"location": region})
    manage(emu, subscription, group)
    return app, rest
