"""Microsoft.Authorization for the emulator: role definitions (Azure's built-in roles and custom
ones), role assignments and deny assignments at any scope, the caller's permissions, and the check
Resource Manager makes on every request before a provider sees it.

The rules, with their sources (MicrosoftDocs/azure-docs `articles/role-based-access-control/`
unless named otherwise; Azure/azure-rest-api-specs `specification/authorization/resource-manager/
Microsoft.Authorization/stable/2022-04-01/` for shapes):
- a request needs one action at its scope: `{namespace}/{types...}/read|write|delete`, or
  `{type}/{action}/action` for a POST (`resource-provider-operations.md`); ARM checks it before the
  provider runs (`overview.md`, "How Azure RBAC determines if a user has access"); a
  long-running operation's monitor needs its read action at the operation's resource group, though
  its URL names only the subscription (azure-docs `articles/azure-resource-manager/management/
  async-operations.md`, "Permission for tracking async status");
- an action string is matched case-insensitively, `*` standing for any text, `/` included
  (`role-definitions.md`, `custom-roles.md`); a role's NotActions subtract from its own Actions
  only: NotActions are not a deny (`role-definitions.md`);
- permissions are the union of every role assignment at the scope or above, to the principal or
  to a group it belongs to, nested groups included (`overview.md`, "Multiple role assignments",
  "Groups");
- a deny assignment (`deny-assignments.md`) blocks a matching action for its principals (all
  principals when it names the zero GUID, SystemDefined) except its excluded ones, at its scope and
  below unless `doNotApplyToChildScopes`; it is checked only once a role allows the action;
- refusals: `AuthorizationFailed`, `LinkedAuthorizationFailed` (an action on another resource the
  request names: a subnet to join, a zone to write into), `DenyAssignmentAuthorizationFailed`,
  with the message templates Azure answers (quoted in the functions below);
- `$filter` of the role assignment list (`role-assignments-list-rest.md`, the spec's
  `RoleAssignmentFilterParameter`): none = at, above and below the scope; `atScope()` = at or
  above; `principalId eq '{id}'` = that principal anywhere around the scope; `assignedTo('{id}')`
  = a user or service principal, groups included (transitively); `atScope() and assignedTo(...)`
  combines them; `atScope()` with `principalId eq` is refused (Azure CLI `role/custom.py`);
- the permissions API (`Permissions_ListForResourceGroup`, `Permissions_ListForResource`) answers
  the caller's own permission blocks at the scope, one per role of an applicable assignment, and
  reflects no deny assignment; calling it needs `Microsoft.Authorization/permissions/read`.
"""

from __future__ import annotations

import contextvars
import copy
import json
import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from local.emulator.arm import ArmError, Request, ResourceId, Response, bad_request, new_guid, now, parse_path

if TYPE_CHECKING:
    from local.emulator.core import Emulator

AUTHORIZATION = "/providers/microsoft.authorization/"
ROLE_DEFINITIONS = "Microsoft.Authorization/roleDefinitions"
ROLE_ASSIGNMENTS = "Microsoft.Authorization/roleAssignments"
DENY_ASSIGNMENTS = "Microsoft.Authorization/denyAssignments"
ALL_PRINCIPALS = "00000000-0000-0000-0000-000000000000"
BUILT_IN_ROLES = Path(__file__).with_name("data") / "builtin_roles.json"
VERBS = {"GET": "read", "HEAD": "read", "PUT": "write", "PATCH": "write", "DELETE": "delete"}
# Where a provider publishes another action than the rule gives.
DECLARED = {
    # checkNameAvailability is a POST that the storage provider publishes as a read
    "microsoft.storage/checknameavailability/action": "Microsoft.Storage/checkNameAvailability/read",
    # the storage provider's polling action ("Poll Asynchronous Operation")
    "microsoft.storage/locations/asyncoperations/read": "Microsoft.Storage/operations/read",
    # compute monitors: the provider publishes locations/operations/read for both
    "microsoft.compute/locations/operationresults/read": "Microsoft.Compute/locations/operations/read",
}
_FILTER = re.compile(
    r"^\s*(?:(?P<at>atScope\(\))|principalId\s+eq\s+'(?P<pid>[0-9a-fA-F-]{36})'"
    r"|assignedTo\('(?P<to>[0-9a-fA-F-]{36})'\))\s*$"
)


@dataclass(frozen=True)
class Caller:
    """Who sent a request, from its token: the object id, the name Azure's messages show (the UPN
    of a user, the object id of a service principal), its groups (from the directory, as Resource
    Manager reads them) and the token's claims (for Event Grid events)."""

    object_id: str
    name: str
    kind: str
    principal_ids: frozenset[str]
    claims: dict[str, Any] = field(default_factory=dict, compare=False)

    def event_claims(self) -> dict[str, str]:
        """The token's claims as Event Grid carries them: a flat map of strings, some under the
        long WS-Federation names (`event-schema-resource-groups.md`)."""
        long_names = {
            "oid": "http://schemas.microsoft.com/identity/claims/objectidentifier",
            "tid": "http://schemas.microsoft.com/identity/claims/tenantid",
            "scp": "http://schemas.microsoft.com/identity/claims/scope",
            "upn": "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/upn",
            "sub": "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/nameidentifier",
        }
        flat: dict[str, str] = {}
        for name, value in self.claims.items():
            if name == "groups":
                continue  # Event Grid's claims show no groups list (only an overage pointer)
            text = value if isinstance(value, str) else json.dumps(value)
            flat[long_names.get(name, name)] = text
        if "name" in self.claims:
            flat["http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name"] = str(self.claims["name"])
        return flat


# The request being authorized, for the checks a provider makes on the other resources it names.
CURRENT: contextvars.ContextVar[tuple[Caller, str, str] | None] = contextvars.ContextVar(
    "authorizing", default=None
)


def matches(pattern: str, action: str) -> bool:
    return _pattern(pattern).fullmatch(action) is not None


@cache
def _pattern(pattern: str) -> re.Pattern[str]:
    return re.compile(re.escape(pattern).replace(r"\*", ".*"), re.IGNORECASE)


def covers(outer: str, inner: str) -> bool:
    """Whether a grant at scope `outer` applies at `inner`: the same scope or one below it."""
    outer, inner = outer.rstrip("/").lower(), inner.rstrip("/").lower()
    return outer == "" or inner == outer or inner.startswith(outer + "/")


def permits(block: dict[str, Any], action: str) -> bool:
    return any(matches(a, action) for a in block.get("actions") or []) and not any(
        matches(a, action) for a in block.get("notActions") or []
    )


def required_action(method: str, path: str) -> tuple[str, str]:
    """The action Resource Manager checks for a request, and the scope it checks it over (the
    request's path: a resource, a collection, a provider action or a monitor)."""
    scope = path.split("?", 1)[0].rstrip("/")
    cut = scope.lower().rfind(AUTHORIZATION)
    if cut >= 0:  # an extension resource at any scope: .../providers/Microsoft.Authorization/{type}
        kind = scope[cut + len(AUTHORIZATION) :].split("/", 1)[0]
        return f"Microsoft.Authorization/{kind}/{VERBS.get(method, 'read')}", scope
    rid = parse_path(scope)
    if rid.namespace is None:
        if rid.group is None:
            return f"Microsoft.Resources/subscriptions/{VERBS.get(method, 'read')}", scope
        return f"Microsoft.Resources/subscriptions/resourceGroups/{VERBS.get(method, 'read')}", scope
    if method == "POST":  # .../{type}/{name}/{action} over the resource, or a provider-level action
        action = "/".join([rid.namespace, *rid.types, "action"])
        if rid.names:
            scope = str(rid.owner)
    else:
        action = "/".join([rid.namespace, *rid.types, VERBS.get(method, "read")])
    return DECLARED.get(action.lower(), action), scope


class Authorization:
    """The emulator's role definitions, role and deny assignments, and the checks made with them."""

    def __init__(self, emu: Emulator) -> None:
        self.emu = emu
        self._lock = threading.RLock()
        self.definitions: dict[str, dict[str, Any]] = {}  # by role definition name (a GUID), lower case
        self.assignments: dict[str, dict[str, Any]] = {}  # by id, lower case
        self.denials: dict[str, dict[str, Any]] = {}  # by id, lower case
        self.locks: dict[str, dict[str, Any]] = {}  # management locks, by id, lower case
        for role in json.loads(BUILT_IN_ROLES.read_text()):
            self.definitions[role["name"].lower()] = {
                "id": f"/providers/Microsoft.Authorization/roleDefinitions/{role['name']}",
                "name": role["name"],
                "type": ROLE_DEFINITIONS,
                "properties": {
                    "roleName": role["roleName"],
                    "type": "BuiltInRole",
                    "description": f"Built-in role; actions from {role['source']}",
                    "assignableScopes": ["/"],
                    "permissions": role["permissions"],
                },
            }

    # -- definitions and assignments (the control API and the ARM API both use these) ------------

    def define(
        self,
        role_name: str,
        actions: Iterable[str],
        assignable_scopes: Iterable[str],
        *,
        name: str | None = None,
        not_actions: Iterable[str] = (),
    ) -> dict[str, Any]:
        """A custom role (idempotent by name)."""
        with self._lock:
            existing = self.role_named(role_name)
            definition = existing or {"id": "", "name": name or new_guid(), "type": ROLE_DEFINITIONS}
            definition["properties"] = {
                "roleName": role_name,
                "type": "CustomRole",
                "description": "",
                "assignableScopes": list(assignable_scopes),
                "permissions": [
                    {
                        "actions": list(actions),
                        "notActions": list(not_actions),
                        "dataActions": [],
                        "notDataActions": [],
                    }
                ],
            }
            definition["id"] = f"/providers/Microsoft.Authorization/roleDefinitions/{definition['name']}"
            self.definitions[definition["name"].lower()] = definition
            return definition

    def role_named(self, role_name: str) -> dict[str, Any] | None:
        wanted = role_name.lower()
        with self._lock:
            return next(
                (
                    d
                    for d in self.definitions.values()
                    if d["properties"]["roleName"].lower() == wanted or d["name"].lower() == wanted
                ),
                None,
            )

    def assign(
        self,
        scope: str,
        principal_id: str,
        role: str,
        *,
        name: str | None = None,
        created_by: str | None = None,
    ) -> dict[str, Any]:
        """Assign `role` (a name or GUID) to a principal at `scope`, as PUT roleAssignments does."""
        definition = self.role_named(role.rsplit("/", 1)[-1])
        if definition is None:
            raise ArmError(
                404,
                "RoleDefinitionDoesNotExist",
                f"The specified role definition with ID '{role.rsplit('/', 1)[-1]}' does not exist.",
            )
        principal = self.emu.tenant.find(principal_id)
        if principal is None:
            raise bad_request(
                "PrincipalNotFound",
                f"Principal {principal_id.replace('-', '')} does not exist "
                f"in the directory {self.emu.tenant.tenant_id}. Check that you have the correct "
                "principal ID.",
            )
        scope = _canonical_scope(scope)
        # UNCONFIRMED wording: Azure refuses a role outside its assignable scopes; the text is the
        # one third-party guides quote.
        if not any(covers(s, scope) for s in definition["properties"]["assignableScopes"]):
            raise ArmError(
                403,
                "AuthorizationFailed",
                f"The role {definition['properties']['roleName']} is not available for "
                "assignment at the requested scope.",
            )
        subscription = scope.split("/")[2] if scope.startswith("/subscriptions/") else ""
        body: dict[str, Any] = {
            "id": f"{scope}/providers/Microsoft.Authorization/roleAssignments/{name or new_guid()}",
            "type": ROLE_ASSIGNMENTS,
            "properties": {
                "roleDefinitionId": f"/subscriptions/{subscription}/providers/Microsoft.Authorization/"
                f"roleDefinitions/{definition['name']}",
                "principalId": principal.object_id,
                "principalType": principal.kind,
                "scope": scope,
                "condition": None,
                "conditionVersion": None,
                "createdOn": now(),
                "updatedOn": now(),
                "createdBy": created_by,
                "updatedBy": created_by,
                "delegatedManagedIdentityResourceId": None,
                "description": None,
            },
        }
        body["name"] = body["id"].rsplit("/", 1)[-1]
        with self._lock:
            key = body["id"].lower()
            same = next((a for a in self.assignments.values() if _same_grant(a, body)), None)
            if key in self.assignments:
                if not _same_grant(self.assignments[key], body):
                    raise ArmError(
                        400,
                        "RoleAssignmentUpdateNotPermitted",
                        "Tenant ID, application ID, principal ID, and scope are not allowed to be updated.",
                    )
                return self.assignments[key]
            if same is not None:
                raise ArmError(
                    409,
                    "RoleAssignmentExists",
                    "The role assignment already exists.",
                    details=[{"code": "RoleAssignmentExists", "message": same["name"]}],
                )
            self.assignments[key] = body
        return body

    def forget(self, scope: str) -> None:
        """A deleted resource takes the role and deny assignments at it and below with it: they
        are extension resources of it (`role-assignments.md`, "scope")."""
        with self._lock:
            for store in (self.assignments, self.denials):
                for key in [k for k, v in store.items() if covers(scope, v["properties"]["scope"])]:
                    del store[key]

    def unassign(self, assignment_id: str) -> dict[str, Any] | None:
        with self._lock:
            return self.assignments.pop(assignment_id.lower(), None)

    def deny(
        self,
        scope: str,
        actions: Iterable[str],
        principals: Iterable[str],
        *,
        not_actions: Iterable[str] = (),
        exclude: Iterable[str] = (),
        child_scopes: bool = True,
        name: str = "deny",
    ) -> dict[str, Any]:
        """A deny assignment. Azure lets only itself create them (managed applications, blueprints,
        deployment stacks); the control API stands in for those."""
        scope = _canonical_scope(scope)
        assignment_name = new_guid()
        body: dict[str, Any] = {
            "id": f"{scope}/providers/Microsoft.Authorization/denyAssignments/{assignment_name}",
            "name": assignment_name,
            "type": DENY_ASSIGNMENTS,
            "properties": {
                "denyAssignmentName": name,
                "description": name,
                "permissions": [
                    {
                        "actions": list(actions),
                        "notActions": list(not_actions),
                        "dataActions": [],
                        "notDataActions": [],
                    }
                ],
                "scope": scope,
                "doNotApplyToChildScopes": not child_scopes,
                "principals": [self._principal_ref(p) for p in principals],
                "excludePrincipals": [self._principal_ref(p) for p in exclude],
                "isSystemProtected": True,
            },
        }
        with self._lock:
            self.denials[body["id"].lower()] = body
        return body

    def _principal_ref(self, who: str) -> dict[str, str]:
        if who in ("*", ALL_PRINCIPALS):
            return {"id": ALL_PRINCIPALS, "type": "SystemDefined"}
        principal = self.emu.tenant.get(who)
        return {"id": principal.object_id, "type": principal.kind}

    # -- evaluation -------------------------------------------------------------------------------

    def caller(self, claims: dict[str, Any]) -> Caller:
        object_id = str(claims.get("oid") or "")
        user = "scp" in claims
        groups = self.emu.tenant.groups_of(object_id)
        name = str(claims.get("upn") or claims.get("preferred_username") or object_id) if user else object_id
        return Caller(
            object_id, name, "User" if user else "ServicePrincipal", frozenset({object_id, *groups}), claims
        )

    def applicable(self, caller: Caller, scope: str) -> list[dict[str, Any]]:
        """The caller's role assignments that apply at `scope` (at it or above)."""
        with self._lock:
            return [
                a
                for a in self.assignments.values()
                if a["properties"]["principalId"] in caller.principal_ids
                and covers(a["properties"]["scope"], scope)
            ]

    def blocks_of(self, assignment: dict[str, Any]) -> list[dict[str, Any]]:
        definition = self.definitions.get(
            assignment["properties"]["roleDefinitionId"].rsplit("/", 1)[-1].lower()
        )
        return list(definition["properties"]["permissions"]) if definition else []

    def granting(self, caller: Caller, action: str, scope: str) -> dict[str, Any] | None:
        """The first role assignment that allows `action` at `scope`, or None."""
        for assignment in self.applicable(caller, scope):
            if any(permits(block, action) for block in self.blocks_of(assignment)):
                return assignment
        return None

    def denying(self, caller: Caller, action: str, scope: str) -> dict[str, Any] | None:
        with self._lock:
            denials = list(self.denials.values())
        for denial in denials:
            props = denial["properties"]
            at = props["scope"]
            if not covers(at, scope) or (
                props["doNotApplyToChildScopes"] and at.rstrip("/").lower() != scope.rstrip("/").lower()
            ):
                continue
            named = {p["id"] for p in props["principals"]}
            excluded = {p["id"] for p in props["excludePrincipals"]}
            applies = (ALL_PRINCIPALS in named or named & caller.principal_ids) and not (
                excluded & caller.principal_ids
            )
            if applies and any(permits(block, action) for block in props["permissions"]):
                return denial
        return None

    def may(self, caller: Caller, action: str, scope: str) -> bool:
        return (
            self.granting(caller, action, scope) is not None and self.denying(caller, action, scope) is None
        )

    def authorize(self, caller: Caller, action: str, scope: str) -> dict[str, Any]:
        """The evidence of the assignment that allows the request; raises Azure's 403 otherwise."""
        granted = self.granting(caller, action, scope)
        if granted is None:
            raise ArmError(
                403,
                "AuthorizationFailed",
                f"The client '{caller.name}' with object id '{caller.object_id}' does not have "
                f"authorization to perform action '{action}' over scope '{scope}' or the scope "
                "is invalid. If access was recently granted, please refresh your credentials.",
            )
        denied = self.denying(caller, action, scope)
        if denied is not None:
            raise _denied(caller, action, scope, denied)
        return self.evidence(granted)

    def authorize_linked(self, action: str, scope: str, *, shown_as: str | None = None) -> None:
        """A provider's check of another resource the request names (a subnet to join, a zone to
        write into): `LinkedAuthorizationFailed` names both actions and scopes. `shown_as` is the
        action as Azure prints it where that differs (the approval action lacks its prefix)."""
        current = CURRENT.get()
        if current is None:  # the emulator's own writes (a private endpoint's NIC) are not checked
            return
        caller, primary, primary_scope = current
        if self.granting(caller, action, scope) is None:
            raise ArmError(
                403,
                "LinkedAuthorizationFailed",
                f"The client '{caller.name}' with object id '{caller.object_id}' has permission "
                f"to perform action '{primary}' on scope '{primary_scope}'; however, it does not "
                f"have permission to perform action '{shown_as or action}' on the linked scope(s) "
                f"'{scope}' or the linked scope(s) are invalid.",
            )
        denied = self.denying(caller, action, scope)
        if denied is not None:
            raise _denied(caller, action, scope, denied)

    def evidence(self, assignment: dict[str, Any]) -> dict[str, Any]:
        """`data.authorization.evidence` of an Event Grid event: the assignment that allowed it."""
        props = assignment["properties"]
        role_id = props["roleDefinitionId"].rsplit("/", 1)[-1]
        definition = self.definitions.get(role_id.lower())
        return {
            "role": definition["properties"]["roleName"] if definition else role_id,
            "roleAssignmentScope": props["scope"],
            "roleAssignmentId": assignment["name"].replace("-", ""),
            "roleDefinitionId": role_id.replace("-", ""),
            "principalId": props["principalId"].replace("-", ""),
            "principalType": props["principalType"],
        }

    # -- management locks -------------------------------------------------------------------------
    # azure-docs articles/azure-resource-manager/management/lock-resources.md: a lock at a scope
    # applies to everything under it; CanNotDelete refuses every delete there (a resource group
    # holding a locked resource cannot be deleted either), ReadOnly every write and delete too;
    # only a caller allowed Microsoft.Authorization/locks/* may add or remove one. Shapes:
    # azure-rest-api-specs specification/resources/resource-manager/Microsoft.Authorization/
    # stable/2020-05-01/locks.json; the refusal is 409 ScopeLocked.

    def _locks(self, request: Request, caller: Caller, scope: str, name: str | None) -> Response:
        verb = {"PUT": "write", "DELETE": "delete"}.get(request.method, "read")
        self.authorize(caller, f"Microsoft.Authorization/locks/{verb}", scope or "/")
        if name is None:
            mine = [copy.deepcopy(lock) for key, lock in self.locks.items()
                    if key.startswith(f"{scope}/providers/microsoft.authorization/locks/".lower())]
            return Response(200, {"value": mine})
        lock_id = f"{scope}/providers/Microsoft.Authorization/locks/{name}"
        with self._lock:
            if request.method == "DELETE":
                return Response(200 if self.locks.pop(lock_id.lower(), None) else 204, None)
            if request.method == "GET":
                found = self.locks.get(lock_id.lower())
                if found is None:
                    raise ArmError(404, "LockNotFound", f"The lock '{name}' could not be found.")
                return Response(200, copy.deepcopy(found))
            body = request.body if isinstance(request.body, dict) else {}
            props = body.get("properties") or {}
            if props.get("level") not in ("CanNotDelete", "ReadOnly"):
                raise bad_request("LockLevelInvalid", "The lock level must be CanNotDelete or ReadOnly.")
            created = lock_id.lower() not in self.locks
            self.locks[lock_id.lower()] = {
                "id": lock_id, "name": name, "type": "Microsoft.Authorization/locks",
                "properties": {"level": props["level"], "notes": props.get("notes", "")}}
            return Response(201 if created else 200, copy.deepcopy(self.locks[lock_id.lower()]))

    def drop_locks(self, under: str) -> None:
        """Tests clean up: remove every lock at or below a scope, as its owner would first."""
        prefix = _canonical_scope(under).lower()
        with self._lock:
            for key in [k for k in self.locks if k == prefix or k.startswith(prefix + "/")]:
                del self.locks[key]

    def refuse_if_locked(self, method: str, path: str) -> None:
        """409 ScopeLocked for a delete (or, under ReadOnly, a write) at or above a locked scope,
        and for deleting a scope that holds a locked resource."""
        target = _canonical_scope(path.split("?", 1)[0]).lower()
        for lock in list(self.locks.values()):
            lock_id = lock["id"].lower()
            scope = lock_id[: lock_id.rfind("/providers/microsoft.authorization/locks/")]
            covers = target == scope or target.startswith(scope + "/")
            inside = method == "DELETE" and scope.startswith(target + "/")
            writes = method in ("PUT", "PATCH") and lock["properties"]["level"] == "ReadOnly"
            if (method == "DELETE" and (covers or inside)) or (writes and covers):
                raise ArmError(409, "ScopeLocked",
                               f"The scope '{path.split('?', 1)[0]}' cannot perform {method.lower()} "
                               f"operation because following scope(s) are locked: '{scope}'. Please remove "
                               "the lock and try again.")

    # -- the Microsoft.Authorization API ---------------------------------------------------------

    @staticmethod
    def handles(path: str) -> bool:
        return AUTHORIZATION in path.lower() or path.lower().startswith(AUTHORIZATION)

    def handle(self, request: Request, caller: Caller) -> Response:
        cut = request.path.lower().rfind(AUTHORIZATION)
        scope = _canonical_scope(request.path[:cut]) if cut > 0 else ""
        parts = [p for p in request.path[cut + len(AUTHORIZATION) :].split("/") if p]
        kind, name = (parts[0].lower(), parts[1] if len(parts) > 1 else None) if parts else ("", None)
        if scope:
            self._require_scope(scope)
        if kind == "permissions" and request.method == "GET" and name is None:
            self.authorize(caller, "Microsoft.Authorization/permissions/read", scope)
            return Response(
                200,
                {
                    "value": [
                        copy.deepcopy(block)
                        for a in self.applicable(caller, scope)
                        for block in self.blocks_of(a)
                    ]
                },
            )
        if kind == "locks":
            return self._locks(request, caller, scope, name)
        if kind == "roledefinitions":
            return self._definitions(request, caller, scope, name)
        if kind == "roleassignments":
            return self._assignments(request, caller, scope, name)
        if kind == "denyassignments" and request.method == "GET":
            self.authorize(caller, "Microsoft.Authorization/denyAssignments/read", scope or "/")
            if name is not None:
                found = self.denials.get(
                    f"{scope}/providers/microsoft.authorization/denyassignments/{name}".lower()
                )
                if found is None:
                    raise ArmError(
                        404, "DenyAssignmentNotFound", f"The deny assignment '{name}' does not exist."
                    )
                return Response(200, copy.deepcopy(found))
            with self._lock:
                denials = list(self.denials.values())
            return Response(
                200, {"value": [copy.deepcopy(d) for d in self._filtered(denials, scope, request)]}
            )
        raise ArmError(
            404, "NotFound", f"No HTTP resource was found that matches the request URI '{request.url}'."
        )

    def _definitions(self, request: Request, caller: Caller, scope: str, name: str | None) -> Response:
        if request.method == "GET":
            if scope:
                self.authorize(caller, "Microsoft.Authorization/roleDefinitions/read", scope)
            if name is not None:
                found = self.definitions.get(name.lower())
                if found is None:
                    raise ArmError(
                        404,
                        "RoleDefinitionDoesNotExist",
                        f"The specified role definition with ID '{name}' does not exist.",
                    )
                return Response(200, _at(found, scope))
            wanted = _role_name_filter(request.query.get("$filter"))
            with self._lock:
                found_all = [
                    d
                    for d in self.definitions.values()
                    if wanted is None or d["properties"]["roleName"].lower() == wanted.lower()
                ]
            return Response(200, {"value": [_at(d, scope) for d in found_all]})
        if request.method == "PUT" and name is not None:
            body = request.body if isinstance(request.body, dict) else {}
            props = body.get("properties") or {}
            scopes = props.get("assignableScopes") or [scope]
            for assignable in scopes:
                self.authorize(caller, "Microsoft.Authorization/roleDefinitions/write", assignable)
            permissions = (props.get("permissions") or [{}])[0]
            role = self.define(
                str(props.get("roleName") or name),
                permissions.get("actions") or [],
                scopes,
                name=name,
                not_actions=permissions.get("notActions") or [],
            )
            return Response(201, _at(role, scope))
        raise ArmError(405, "MethodNotAllowed", f"The method '{request.method}' is not allowed here.")

    def _assignments(self, request: Request, caller: Caller, scope: str, name: str | None) -> Response:
        if not scope:
            raise ArmError(400, "InvalidScope", "Role assignments need a scope.")
        assignment_id = f"{scope}/providers/Microsoft.Authorization/roleAssignments/{name}"
        if request.method == "GET" and name is None:
            self.authorize(caller, "Microsoft.Authorization/roleAssignments/read", scope)
            with self._lock:
                assignments = list(self.assignments.values())
            return Response(
                200, {"value": [copy.deepcopy(a) for a in self._filtered(assignments, scope, request)]}
            )
        if request.method == "GET":
            self.authorize(caller, "Microsoft.Authorization/roleAssignments/read", assignment_id)
            found = self.assignments.get(assignment_id.lower())
            if found is None:
                raise ArmError(404, "RoleAssignmentNotFound", "The role assignment '{name}' is not found.")
            return Response(200, copy.deepcopy(found))
        if request.method == "PUT" and name is not None:
            self.authorize(caller, "Microsoft.Authorization/roleAssignments/write", assignment_id)
            props = (request.body or {}).get("properties") if isinstance(request.body, dict) else None
            if (
                not isinstance(props, dict)
                or not props.get("roleDefinitionId")
                or not props.get("principalId")
            ):
                raise bad_request(
                    "InvalidRoleAssignmentRequest", "roleDefinitionId and principalId are required."
                )
            existed = assignment_id.lower() in self.assignments
            made = self.assign(
                scope,
                str(props["principalId"]),
                str(props["roleDefinitionId"]),
                name=name,
                created_by=caller.object_id,
            )
            return Response(200 if existed else 201, copy.deepcopy(made))
        if request.method == "DELETE" and name is not None:
            self.authorize(caller, "Microsoft.Authorization/roleAssignments/delete", assignment_id)
            removed = self.unassign(assignment_id)
            return Response(200, removed) if removed else Response(204)
        raise ArmError(405, "MethodNotAllowed", f"The method '{request.method}' is not allowed here.")

    def _filtered(self, items: list[dict[str, Any]], scope: str, request: Request) -> list[dict[str, Any]]:
        terms = [
            t for t in re.split(r"\s+and\s+", request.query.get("$filter") or "", flags=re.I) if t.strip()
        ]
        at_scope, principals = False, None
        for term in terms:
            found = _FILTER.match(term)
            if found is None:
                raise bad_request(
                    "UnsupportedQuery", f"The filter '{request.query.get('$filter')}' is not supported."
                )
            if found.group("at"):
                at_scope = True
            elif found.group("pid"):
                principals = frozenset({found.group("pid")})
            else:
                who = self.emu.tenant.find(found.group("to"))
                if who is None or who.kind == "Group":
                    raise bad_request(
                        "UnsupportedQuery",
                        "assignedTo() accepts the object id of a user or a service principal only.",
                    )
                principals = frozenset({who.object_id, *self.emu.tenant.groups_of(who.object_id)})
        if at_scope and any("principalid" in t.lower() for t in terms):
            raise bad_request(
                "UnsupportedQuery", "The filter 'atScope()' cannot be combined with 'principalId eq'."
            )

        def wanted(item: dict[str, Any]) -> bool:
            props = item["properties"]
            at = props["scope"]
            if at_scope and not covers(at, scope):
                return False
            if not (covers(at, scope) or covers(scope, at)):
                return False
            if principals is None:
                return True
            if "principalId" in props:
                return props["principalId"] in principals
            named = {p["id"] for p in props["principals"]}
            return bool(named & principals) or ALL_PRINCIPALS in named

        return [item for item in items if wanted(item)]

    def _require_scope(self, scope: str) -> None:
        rid = parse_path(scope)
        if rid.group is not None and self.emu.get(ResourceId(rid.subscription, rid.group)) is None:
            raise ArmError(404, "ResourceGroupNotFound", f"Resource group '{rid.group}' could not be found.")


def _denied(caller: Caller, action: str, scope: str, denial: dict[str, Any]) -> ArmError:
    props = denial["properties"]
    return ArmError(
        403,
        "DenyAssignmentAuthorizationFailed",
        f"The client '{caller.name}' with object id '{caller.object_id}' has permission to perform "
        f"action '{action}' on scope '{scope}'; however, the access is denied because of the deny "
        f"assignment with name '{props['denyAssignmentName']}' and Id "
        f"'{denial['name'].replace('-', '')}' at scope '{props['scope']}'.",
    )


def _same_grant(a: dict[str, Any], b: dict[str, Any]) -> bool:
    pa, pb = a["properties"], b["properties"]
    return bool(
        pa["principalId"] == pb["principalId"]
        and pa["scope"].lower() == pb["scope"].lower()
        and pa["roleDefinitionId"].rsplit("/", 1)[-1].lower()
        == pb["roleDefinitionId"].rsplit("/", 1)[-1].lower()
    )


def _canonical_scope(scope: str) -> str:
    """`/a/b` from `a/b/`, `/a//b` (the SDK writes an empty parent path as `//`)."""
    scope = "/" + "/".join(part for part in scope.split("/") if part)
    return "" if scope == "/" else scope


def _at(definition: dict[str, Any], scope: str) -> dict[str, Any]:
    """A role definition as read at a scope: its id carries the subscription it was read in."""
    body = copy.deepcopy(definition)
    subscription = scope.split("/")[2] if scope.startswith("/subscriptions/") else None
    if subscription:
        body["id"] = (
            f"/subscriptions/{subscription}/providers/Microsoft.Authorization/roleDefinitions/{body['name']}"
        )
    return body


def _role_name_filter(text: str | None) -> str | None:
    if not text:
        return None
    found = re.fullmatch(r"\s*roleName\s+eq\s+'([^']+)'\s*", text)
    if found is None:
        raise bad_request("UnsupportedQuery", f"The filter '{text}' is not supported.")
    return found.group(1)
