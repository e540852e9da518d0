"""The API's OpenAPI 3.1 document, served at /api/openapi.json.

It states exactly what the service accepts and answers. Request schemas are written from the
validation rules themselves (the patterns, ranges and enums of shared.domain.validation, which
the service matches whole), shaped by the service's settings where they change what a request
needs (a default resource group makes `resourceGroup` optional; HOME_ROOTS adds mount points).
Response schemas are generated from the domain models by the same rules that serialise them, an
operation's `params` from its command; every status an operation can answer is listed, the
Functions host's own refusals included. Tests check that its paths are exactly the registered
routes, that its patterns accept what the service accepts and nothing else, and that every answer
the tests see is documented.
"""

from __future__ import annotations

import dataclasses
from enum import Enum
from functools import cache
from typing import Any

from shared.domain import validation as v
from shared.domain.commands import COMMANDS
from shared.domain.costs import CostReport, StorageCost, VmCost
from shared.domain.data_protection import MAX_RESTORE_PATH, RESTORE_PATH, SNAPSHOT_ID, ShareSnapshot
from shared.domain.digests import AttachmentFinding, CostDigest, GroupDigest, StorageFinding, UnattachedVm
from shared.domain.errors import ErrorCode
from shared.domain.identity import Principal
from shared.domain.models import (
    Attachment,
    AttachmentHealth,
    Billing,
    DefaultStorage,
    DetachMode,
    MountInfo,
    Redundancy,
    StorageAccess,
    StorageInfo,
    StorageState,
    StorageStatus,
    Tier,
    VerifiedAttachment,
    VmHealth,
)
from shared.domain.operations import Operation, OperationKind, OperationStatus, Progress, Waiting
from shared.domain.requests import (
    DEFAULT_OPERATIONS_PAGE,
    DEFAULT_PAGE_SIZE,
    MAX_OPERATIONS_PAGE,
    RequestDefaults,
)
from shared.domain.serialization import camel, json_schema

TITLE = "azlin storage service"
VERSION = "0.1.0"
MAX_BODY_BYTES = 64 * 1024  # functions.http.MAX_BODY_BYTES (not imported: it loads azure.functions)
_MODELS = (Progress, Principal, StorageInfo, StorageAccess, StorageStatus, VmHealth, Attachment,
           MountInfo, VerifiedAttachment, DefaultStorage, CostReport, VmCost, StorageCost, CostDigest,
           GroupDigest, StorageFinding, AttachmentFinding, UnattachedVm, ShareSnapshot, Waiting)


def whole(pattern: str) -> str:
    """A validation pattern as the document states it: anchored, matched whole."""
    return f"^(?:{pattern})$"


def _ref(model: type | str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{model if isinstance(model, str) else model.__name__}"}


def _param(name: str, where: str, schema: dict[str, Any], description: str,
           required: bool = False) -> dict[str, Any]:
    return {"name": name, "in": where, "required": required or where == "path",
            "schema": schema, "description": description}


def _text(pattern: str, min_length: int, max_length: int | None, description: str) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "string", "pattern": whole(pattern), "minLength": min_length}
    if max_length is not None:
        schema["maxLength"] = max_length
    return {**schema, "description": description}


def _enum(choices: type[Enum] | tuple[str, ...], description: str | None = None) -> dict[str, Any]:
    values = [c.value for c in choices] if isinstance(choices, type) else list(choices)
    schema: dict[str, Any] = {"type": "string", "enum": values}
    return {**schema, "description": description} if description else schema


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    """An optional member: the service reads `null` as absent."""
    if isinstance(schema.get("type"), str) and "oneOf" not in schema and "$ref" not in schema:
        nullable = {**schema, "type": [schema["type"], "null"]}
        if "enum" in schema:
            nullable["enum"] = [*schema["enum"], None]
        return nullable
    return {"anyOf": [schema, {"type": "null"}]}


_TEXT = {"type": "string"}
_BOOL = {"type": "boolean"}
STORAGE_NAME = _text(v.STORAGE_NAME, 3, 24, "Storage account name: 3-24 lowercase letters and digits.")
RESOURCE_GROUP = _text(v.RESOURCE_GROUP, 1, 90, "Resource group name, as Azure allows it: 1-90 letters, "
                       "digits, '_', '-', '.', '(' and ')', not ending with '.'; `\\w` is Unicode-aware, as "
                       "in Resource Manager's own pattern (letters and digits of any script).")
VM_NAME = _text(v.VM_NAME, 1, 64, "Linux VM name: 1-64 letters, digits, '.', '_' or '-', starting with a "
                "letter or digit and not ending with '.' or '-'.")
NETWORK_NAME = _text(v.NETWORK_NAME, 1, 80, "VNet or subnet name: 1-80 letters, digits, '_', '.' or '-', "
                     "starting with a letter or digit and ending with a letter, digit or '_'.")
REGION = _text(v.REGION, 2, None, "Azure region: its name (eastus) or display name (East US); spaces "
               "are dropped and letters lower-cased.")
LINUX_USER = _text(v.LINUX_USER, 1, 32, "Linux user name: 1-32 lowercase letters, digits, '_' or '-', "
                   "starting with a letter or '_'.")
SNAPSHOT = {**_text(SNAPSHOT_ID, 20, 28, "A snapshot's id (its time, as Azure writes it), as the snapshot "
                    "list gives it."), "examples": ["2026-12-03T02:00:00.0000000Z"]}
OBJECT_ID = {**_text(v.OBJECT_ID, 36, 36, "An Entra ID object id (a GUID, either case)."), "format": "uuid"}
IDEMPOTENCY_KEY = _text(v.IDEMPOTENCY_KEY, 1, v.MAX_IDEMPOTENCY_KEY_LENGTH,
                        "1-255 printable ASCII characters without spaces.")


def _page_size(maximum: int, default: int) -> dict[str, Any]:
    return _param("$top", "query", {"type": "integer", "minimum": 1, "maximum": maximum},
                  f"Page size, 1-{maximum} (default {default}).")


def _flag(name: str, description: str) -> dict[str, Any]:
    return _param(name, "query", _BOOL, f"{description} `true` or `false` (default false).")


def _enum_list(choices: type[Enum]) -> dict[str, Any]:
    """A comma-separated list of an enum's values, as `validation.one_of_each` reads it."""
    return {"type": "string", "pattern": whole(v.one_of_each_pattern(choices)), "minLength": 1,
            "examples": [",".join(str(c.value) for c in list(choices)[:2])]}


def size_schema(billing: Billing) -> dict[str, Any]:
    low, high = v.SHARE_GIB_RANGE[billing]
    return {"oneOf": [
        {"type": "integer", "minimum": low, "maximum": high},
        {"type": "string", "pattern": whole(v.size_pattern(billing)), "examples": ["300GiB", "1TiB"]}],
        "description": f"GiB: a whole number from {low} to {high} ({billing.value}), or text: that number "
                       "bare or with GiB or GB, or a whole number of TiB with TiB or TB (units in any case; "
                       "GB and TB are read as GiB and TiB). Storage is answered as sizeGb (a number of GiB)."}


def mount_point_schema(roots: tuple[str, ...]) -> dict[str, Any]:
    homes = " or ".join(f"{root}/<user>" for root in roots)
    return _text(v.mount_point_pattern(roots), 2, v.MAX_MOUNT_POINT,
                 f"A user's home: {homes} (HOME_ROOTS adds roots), the user a Linux user name.")


def _in_range(limits: tuple[int, int], what: str) -> dict[str, Any]:
    return {"type": "integer", "minimum": limits[0], "maximum": limits[1], "description": what}


def _not_null(*names: str) -> dict[str, Any]:
    """These members are present and not null (the service reads null as absent)."""
    return {"required": list(names), "properties": {n: {"not": {"type": "null"}} for n in names}}


# -- responses --------------------------------------------------------------------------------------

def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"content": {"application/json": {"schema": schema}}}


def _error(description: str, headers: dict[str, Any] | None = None) -> dict[str, Any]:
    answer = {"description": description, **_json(_ref("Error"))}
    return {**answer, "headers": headers} if headers else answer


def _ok(schema: dict[str, Any], description: str = "OK") -> dict[str, Any]:
    return {"200": {"description": description, **_json(schema)}}


_RETRY_AFTER = {"Retry-After": {"required": True, "schema": {"type": "integer", "minimum": 0},
                                "description": "Seconds to wait before trying again."}}
_ACCEPTED = {"202": {
    "description": "Accepted: poll the operation at Location.",
    "headers": {"Location": {"required": True, "schema": {"type": "string", "format": "uri"}},
                **_RETRY_AFTER,
                "Idempotent-Replayed": {"schema": {"type": "string", "enum": ["true"]},
                                        "description": "The Idempotency-Key was seen: the same operation."}},
    **_json(_ref("Operation")),
}}
# What the Functions host answers itself, whatever the operation (local/host/ answers these in the
# error shape; Azure's front end answers them too).
_HOST = {
    "400": _error("Bad input (ValidationError; the causes name every problem), or a request the host "
                  "could not read (BadRequest); nothing was changed."),
    "413": _error("RequestBodyTooLarge: a body over what the host takes (FUNCTIONS_REQUEST_BODY_SIZE_LIMIT, "
                  f"100 MB), or over {MAX_BODY_BYTES // 1024} KB for an operation that reads one."),
    "414": _error("UriTooLong: the request line is longer than the host reads."),
    "431": _error("RequestHeaderFieldsTooLarge: too many or too long headers."),
    "500": _error("InternalError: the service failed unexpectedly (a bug, whatever the request; report it)."),
    "501": _error("NotImplemented: a transfer coding other than chunked."),
    "503": _error("A dependency is unavailable (ServiceUnavailable, Throttled, ConfigurationError...); "
                  "retry after Retry-After seconds.", _RETRY_AFTER),
}
_CALLER = {
    "401": _error("Unauthenticated: no valid Entra ID access token for the API; nothing was read or changed.",
                  {"WWW-Authenticate": {"required": True, "schema": {"type": "string"},
                                        "description": 'Bearer realm="azlin-storage", with '
                                                       'error="invalid_token" when a token was sent.'}}),
    "403": _error("The caller may not do this: the missing Azure action and scope (AuthorizationFailed), "
                  "or the missing ownership or membership of the storage (NotAnOwner, NotAMember)."),
    "404": _error("Not found; ResourceGroupNotFound when a resource group the request names does not exist."),
}


def _op(operation_id: str, summary: str, responses: dict[str, Any], *, params: tuple[Any, ...] = (),
        body: dict[str, Any] | None = None, anonymous: bool = False) -> dict[str, Any]:
    answers = {**_HOST, **({} if anonymous else _CALLER)}
    if any(p["name"] == "Idempotency-Key" for p in params):  # any mutation can meet a reused key
        answers["409"] = _error("Conflict; IdempotencyKeyReused when the key was used for another request.")
    answers |= responses
    op: dict[str, Any] = {"operationId": operation_id, "summary": summary, "parameters": list(params),
                          "responses": dict(sorted(answers.items()))}
    if body is not None:
        op["requestBody"] = {"required": True, **_json(body)}
    if anonymous:
        op["security"] = []
    return op


# -- paths ------------------------------------------------------------------------------------------

def _paths(defaults: RequestDefaults) -> dict[str, dict[str, Any]]:
    name = _param("name", "path", STORAGE_NAME, STORAGE_NAME["description"])
    vm = _param("vm", "path", VM_NAME, VM_NAME["description"])
    snapshot = _param("snapshot", "path", SNAPSHOT, SNAPSHOT["description"])
    operation_id = _param("id", "path", {"type": "string", "format": "uuid"},
                          "Operation id (any other text is an operation that does not exist: 404).")
    vm_group = _param("resourceGroup", "query", RESOURCE_GROUP, "The VM's resource group" + (
        f"; default {defaults.resource_group} (DEFAULT_RESOURCE_GROUP)." if defaults.resource_group
        else " (required: the service has no DEFAULT_RESOURCE_GROUP)."),
        required=defaults.resource_group is None)
    storage_group = _param("resourceGroup", "query", RESOURCE_GROUP,
                           "Only match storage in this resource group.")
    group = _param("group", "path", RESOURCE_GROUP, "Resource group name.")
    key = _param("Idempotency-Key", "header", IDEMPOTENCY_KEY,
                 "Repeat a request safely: the same key and body return the same operation (24 h).")
    skip = _param("$skipToken", "query", _TEXT, "Continuation from nextLink (other text: 400).")
    mode = _param("mode", "query", _enum(DetachMode), "copy (default): copy the shared home to the VM; "
                  "restore: put back the pre-attach home.")
    not_found = {"404": _error("Not found.")}
    mutation = (key,)
    return {
        "/api/storage": {
            "post": _op("create_storage", "Create NFS storage (a premium FileStorage account with "
                        "share 'home' behind a private endpoint). The same request again repairs it.",
                        {**_ACCEPTED, "409": _error("StorageExists: it exists with other settings (the "
                                                    "causes name them; PATCH changes the size); "
                                                    "StorageNameTaken; IdempotencyKeyReused.")},
                        params=mutation, body=_ref("CreateStorageRequest")),
            "get": _op("list_storage", "List storage recorded by the service.",
                       _ok(_ref("StorageList")),
                       params=(storage_group, _page_size(v.MAX_PAGE_SIZE, DEFAULT_PAGE_SIZE), skip)),
        },
        "/api/storage/{name}": {
            "get": _op("get_storage", "Get one storage; while its create is under way, state Creating "
                       "and the operation to follow.",
                       {**_ok({"oneOf": [_ref(StorageInfo), _ref("InFlight")]}), **not_found},
                       params=(name, storage_group)),
            "patch": _op("resize_storage", "Grow, or shrink where Azure allows it; for provisionedV2, "
                         "IOPS and throughput too. A size outside the range of the storage's billing "
                         "(provisionedV1: from 100 GiB), IOPS or throughput of provisionedV1 storage, or a "
                         "shrink below what its files use is 400.",
                         {**_ACCEPTED, **not_found, "409": _error("StorageDeleted; IdempotencyKeyReused.")},
                         params=(name, storage_group, *mutation), body=_ref("ResizeStorageRequest")),
            "delete": _op("delete_storage", "Delete storage; refused while VMs are attached "
                          "unless force.", {**_ACCEPTED, "409": _error("StorageInUse: VMs are attached; "
                                                                       "StorageNotDeleted (purge); "
                                                                       "IdempotencyKeyReused."),
                                            "404": _error("StorageNotFound: this service never made it "
                                                          "(or purged it).")},
                          params=(name, storage_group, _flag("force", "Detach attached VMs safely first."),
                                  _param("mode", "query", _enum(DetachMode),
                                         "With force, how each VM is detached: copy (default: it keeps "
                                         "the shared files) or restore (its pre-attach home)."),
                                  _flag("purge", "Delete for good, now, a storage already deleted (kept "
                                        "until purgeAfter otherwise)."),
                                  *mutation)),
        },
        "/api/storage/{name}/undelete": {
            "post": _op("undelete_storage", "Bring back a deleted storage within its window (owners, with "
                        "what creating it took): its endpoint, DNS name and network rule again.",
                        {**_ACCEPTED, **not_found, "409": _error("StorageNotDeleted; IdempotencyKeyReused.")},
                        params=(name, storage_group, *mutation)),
        },
        "/api/storage/{name}/snapshots": {
            "get": _op("list_snapshots", "The share's snapshots, newest first; the service's own say why "
                       "and when they are removed (SNAPSHOT_RETENTION_DAYS).",
                       {**_ok(_ref("SnapshotList")), **not_found}, params=(name, storage_group)),
            "post": _op("take_snapshot", "A snapshot now (owners, with fileServices/shares/write).",
                        {"201": {"description": "Taken.", **_json(_ref(ShareSnapshot))}, **not_found,
                         "409": _error("SnapshotLimit: the share has 200; or StorageDeleted.")},
                        params=(name, storage_group)),
        },
        "/api/storage/{name}/snapshots/{snapshot}/restore": {
            "post": _op("restore_from_snapshot", "Put back one path of the home from a snapshot, through "
                        "an attached VM the caller may run commands on; a path that exists gets the "
                        "snapshot's version beside it (<path>.restored-<stamp>).",
                        {**_ACCEPTED, **not_found, "409": _error("NoVmAttached, StorageDeleted or "
                                                                 "IdempotencyKeyReused.")},
                        params=(name, snapshot, storage_group, *mutation), body=_ref("RestoreRequest")),
        },
        "/api/storage/{name}/access": {
            "get": _op("get_storage_access", "Who may use the storage: its owners and members (owners only).",
                       {**_ok(_ref(StorageAccess)), **not_found}, params=(name, storage_group)),
            "put": _op("set_storage_access", "Replace its owners and members (owners only, with "
                       "Microsoft.Storage/storageAccounts/write on it); the last owner cannot be removed, "
                       "and a principal in both lists is 400.",
                       {**_ok(_ref(StorageAccess)), **not_found,
                        "409": _error("LastOwner: at least one owner stays.")},
                       params=(name, storage_group), body=_ref("StorageAccessRequest")),
        },
        "/api/storage/{name}/status": {
            "get": _op("storage_status", "Usage, attached VMs and monthly cost.",
                       {**_ok(_ref(StorageStatus)), **not_found}, params=(name, storage_group)),
        },
        "/api/storage/{name}/cloud-init": {
            "get": _op("storage_cloud_init", "cloud-config that makes the share a new VM's home from its "
                       "first boot (the attach script, run once by cloud-init). A mountPoint that is not "
                       "the home of user is 400.", {
                "200": {"description": "OK", "content": {"text/cloud-config": {"schema": _TEXT}}},
                **not_found, "409": _error("StorageDeleted: undelete it first.")},
                params=(name, storage_group,
                        _param("user", "query", LINUX_USER, "Whose home (default: mountPoint's user, else "
                               "azureuser)."),
                        _param("mountPoint", "query", mount_point_schema(defaults.home_roots),
                               "Where: that user's home (default /home/<user>)."))),
        },
        "/api/storage/{name}/attachments": {
            "post": _op("attach_vm", "Make a VM's home directory the shared share.",
                        {**_ACCEPTED, **not_found,
                         "409": _error("VmAttachedElsewhere: detach it from its storage first; "
                                       "StorageDeleted; IdempotencyKeyReused.")},
                        params=(name, *mutation), body=_ref("AttachRequest")),
        },
        "/api/vms/{vm}/attachment/verify": {
            "post": _op("verify_attachment", "Check the live mount on the VM (a read-only script run "
                        "through Run Command); the operation's result is the VerifiedAttachment.",
                        {**_ACCEPTED, **not_found}, params=(vm, vm_group, *mutation)),
        },
        "/api/vms/{vm}/attachment": {
            "get": _op("get_attachment", "The VM's recorded attachment (its health as last checked); with "
                       "verify=true, a new check is queued and `verifying` links to its operation.", {
                **_ok({"oneOf": [_ref("AttachmentAnswer"), _ref("InFlight")]}),
                **not_found},
                params=(vm, vm_group, _flag("verify", "Queue a check of the live mount."))),
            "delete": _op("detach_vm", "Give the VM a local home directory again.",
                          {**_ACCEPTED, "404": _error("AttachmentNotFound: neither attached nor being "
                                                      "attached.")},
                          params=(vm, vm_group, mode, *mutation)),
        },
        "/api/operations/{id}": {
            "get": _op("get_operation", "Poll an operation.", {**_ok(_ref("Operation")), **not_found},
                       params=(operation_id,)),
        },
        "/api/operations": {
            "get": _op("list_operations", "The operations asked of a storage (and of the VMs on it, the "
                       "auto-attaches it refused included) or of a VM, or else the ones the caller "
                       "asked for; newest first. Naming both storage and vm is 400. A filtered page may "
                       "hold fewer than $top: follow nextLink until it is absent.",
                       {**_ok(_ref("OperationList")), **not_found},
                       params=(_param("storage", "query", STORAGE_NAME, "A storage: its operations."),
                               _param("vm", "query", VM_NAME, "A VM: its operations (with resourceGroup)."),
                               _param("resourceGroup", "query", RESOURCE_GROUP, "The vm's resource group" + (
                                   f" (default {defaults.resource_group})" if defaults.resource_group
                                   else " (required with vm)") + "; without vm it is checked and not used."),
                               _param("status", "query", _enum_list(OperationStatus),
                                      "Only these statuses (comma-separated)."),
                               _param("kind", "query", _enum_list(OperationKind),
                                      "Only these kinds (comma-separated)."),
                               _page_size(MAX_OPERATIONS_PAGE, DEFAULT_OPERATIONS_PAGE), skip)),
        },
        "/api/resource-groups/{group}/default-storage": {
            "put": _op("set_default_storage", "Attach the group's new VMs to this storage when their "
                       "auto-attach tag names none.", {**_ok(_ref(DefaultStorage)), **not_found},
                       params=(group,), body=_ref("DefaultStorageRequest")),
            "get": _op("get_default_storage", "The group's default storage.",
                       {**_ok(_ref(DefaultStorage)), **not_found}, params=(group,)),
            "delete": _op("clear_default_storage", "Stop attaching the group's untagged new VMs.",
                          {"204": {"description": "Cleared (or was not set)."}}, params=(group,)),
        },
        "/api/costs": {
            "get": _op("get_costs", "Monthly cost of the recorded storage and of the VMs, with the "
                       "price source of each amount.", _ok(_ref(CostReport)),
                       params=(_param("resourceGroup", "query", RESOURCE_GROUP,
                                      "Only this resource group (default: all)."),)),
        },
        "/api/digests": {
            "post": _op("make_digest", "Today's cost digest on demand: the stored one (200), else made "
                        "now (201); with force=true made again from the figures now, replacing "
                        "today's, and posted again. Only for whoever may read every resource group.",
                        {**_ok(_ref("DigestDocument")),
                         "201": {"description": "Made now.", **_json(_ref("DigestDocument"))}},
                        params=(_flag("force", "Make it again even if today's exists."),)),
        },
        "/api/digests/latest": {
            "get": _op("latest_digest", "The latest daily cost digest, and its Markdown rendering.",
                       {**_ok(_ref("DigestDocument")), **not_found}),
        },
        "/api/health": {
            "get": _op("health", "Liveness; with ready=true, readiness of each dependency.", {
                **_ok(_ref("Health")),
                "503": {"description": "A dependency is not ready (Health, unavailable), or the service's "
                                       "settings are not (Error).", "headers": _RETRY_AFTER,
                        **_json({"oneOf": [_ref("Health"), _ref("Error")]})}},
                params=(_flag("ready", "Also check dependencies."),), anonymous=True),
        },
        "/api/openapi.json": {
            "get": _op("openapi_document", "This document.", _ok({"type": "object"}), anonymous=True),
        },
    }


# What a client does next with an answer (OpenAPI links): poll an accepted operation, then use
# what it made, by the names the request gave it.
_POLL = {"Poll": {"operationId": "get_operation", "parameters": {"path.id": "$response.body#/id"},
                  "description": "The operation this request queued."}}
_STORAGE_NEXT = ("get_storage", "storage_status", "resize_storage", "delete_storage", "attach_vm",
                 "list_snapshots", "take_snapshot", "get_storage_access", "storage_cloud_init")
_VM_NEXT = ("get_attachment", "verify_attachment", "detach_vm")


def _link(operation_id: str, **parameters: str) -> dict[str, Any]:
    return {"operationId": operation_id, "parameters": parameters}


def _with_links(paths: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Each answer's links: what the created or named storage, VM or group serves next."""
    nexts: dict[str, tuple[str, dict[str, dict[str, Any]]]] = {
        "create_storage": ("202", {o: _link(o, **{"path.name": "$request.body#/name"})
                                   for o in _STORAGE_NEXT}),
        "attach_vm": ("202", {o: _link(o, **{"path.vm": "$request.body#/vm"}) for o in _VM_NEXT}),
        "take_snapshot": ("201", {"restore_from_snapshot": _link(
            "restore_from_snapshot", **{"path.name": "$request.path.name",
                                        "path.snapshot": "$response.body#/id"})}),
        "set_default_storage": ("200", {o: _link(o, **{"path.group": "$request.path.group"})
                                        for o in ("get_default_storage", "clear_default_storage")}),
    }
    for item in paths.values():
        for op in item.values():
            links: dict[str, Any] = {}
            if "202" in op["responses"]:
                links |= _POLL
            status, more = nexts.get(op["operationId"], ("", {}))
            links |= more
            if links:
                success = status or "202"
                op["responses"][success] = {**op["responses"][success], "links": links}
    return paths


# -- request bodies ---------------------------------------------------------------------------------

def _request_schemas(defaults: RequestDefaults) -> dict[str, Any]:
    group_needed = defaults.resource_group is None
    group = {**RESOURCE_GROUP, "description": "Default: DEFAULT_RESOURCE_GROUP" + (
        f" ({defaults.resource_group})." if defaults.resource_group
        else ", which this service does not have.")}
    optional_group = {} if group_needed else {"resourceGroup": _nullable(group)}
    required_group = ["resourceGroup"] if group_needed else []
    vnet_rules: list[dict[str, Any]] = [
        {"if": {"required": ["guardSubnet"], "properties": {"guardSubnet": {"const": True}}},
         "then": _not_null("vnet")}]
    if defaults.vnet is None:  # a subnet is in the VNet the request names
        vnet_rules.append(_not_null("vnet") if defaults.subnet else
                          {"if": _not_null("subnet"), "then": _not_null("vnet")})
    v1 = Billing.PROVISIONED_V1.value
    return {
        "CreateStorageRequest": {
            "type": "object", "required": ["name", *required_group], "additionalProperties": False,
            "description": "Every member but name (and resourceGroup without a default) may be left out or "
                           "null. provisionedV1 takes no iops or throughputMibps and sizes from 100 GiB.",
            "properties": {
                "name": STORAGE_NAME,
                "resourceGroup": group if group_needed else _nullable(group),
                "region": _nullable({**REGION, "description": "Default: DEFAULT_REGION, else the resource "
                                     "group's."}),
                "tier": _nullable(_enum(Tier, "Premium, the only tier that serves NFS (Standard and the "
                                              "other HDD tiers are refused: UnsupportedTier).")),
                "redundancy": _nullable(_enum(Redundancy, "LRS (default) or ZRS.")),
                "billing": _nullable(_enum(Billing, "provisionedV2 (default) or provisionedV1.")),
                "size": _nullable(size_schema(Billing.PROVISIONED_V2)),
                "iops": _nullable(_in_range(v.IOPS_RANGE, "Provisioned IOPS (provisionedV2; default: "
                                                          "Azure's for the size).")),
                "throughputMibps": _nullable(_in_range(v.THROUGHPUT_RANGE, "Provisioned MiB/s "
                                                                           "(provisionedV2).")),
                "vnet": _nullable({**NETWORK_NAME, "description": "VNet (in the resource group) whose subnet "
                                   "holds the private endpoint; default: DEFAULT_VNET, else the service's "
                                   "azlin-vnet."}),
                "subnet": _nullable({**NETWORK_NAME, "description": "Subnet of `vnet`; default: "
                                     "DEFAULT_SUBNET, else default."}),
                "encryptionInTransit": _nullable(_enum(v.ENCRYPTION_IN_TRANSIT, "required (default: NFS "
                                                       "only through TLS mounts) or off (plain NFS 4.1).")),
                "guardSubnet": _nullable({**_BOOL, "description": "Let the service put its network "
                                          "security group on `subnet` (it must hold only private endpoints "
                                          "and no group of its own): only attached VMs reach the share. "
                                          "Needs `vnet`, and subnets/write on it."}),
            },
            "allOf": [
                {"if": {"required": ["billing"], "properties": {"billing": {"const": v1}}},
                 "then": {"properties": {"size": _nullable(size_schema(Billing.PROVISIONED_V1)),
                                         "iops": {"type": "null"}, "throughputMibps": {"type": "null"}}}},
                *vnet_rules],
        },
        "ResizeStorageRequest": {
            "type": "object", "additionalProperties": False,
            "description": "At least one of size, iops and throughputMibps, not null.",
            "properties": {"size": _nullable(size_schema(Billing.PROVISIONED_V2)),
                           "iops": _nullable(_in_range(v.IOPS_RANGE, "Provisioned IOPS (provisionedV2).")),
                           "throughputMibps": _nullable(_in_range(v.THROUGHPUT_RANGE,
                                                                  "Provisioned MiB/s (provisionedV2)."))},
            "anyOf": [_not_null("size"), _not_null("iops"), _not_null("throughputMibps")],
        },
        "StorageAccessRequest": {
            "type": "object", "required": ["owners", "members"], "additionalProperties": False,
            "description": "No principal in both lists.",
            "properties": {role: {"type": "array", "maxItems": v.MAX_PRINCIPALS, "items": OBJECT_ID,
                                  "description": f"Object ids of the {role}: users, groups, service "
                                                 "principals (repeats count once)."}
                           for role in ("owners", "members")}},
        "DefaultStorageRequest": {"type": "object", "required": ["storage"], "additionalProperties": False,
                                  "properties": {"storage": STORAGE_NAME}},
        "RestoreRequest": {
            "type": "object", "required": ["path"], "additionalProperties": False,
            "properties": {"path": _text(RESTORE_PATH, 1, MAX_RESTORE_PATH,
                                         "Relative to the home: not starting with '/', no '.' or '..' "
                                         "components, no control characters."),
                           "vm": _nullable({**VM_NAME, "description": "The attached VM to restore through "
                                            "(default: the first healthy one the caller may use)."}),
                           "resourceGroup": _nullable({**RESOURCE_GROUP, "description": "The VM's group "
                                                       "(with vm only)."})},
            "allOf": [{"if": _not_null("resourceGroup"), "then": _not_null("vm")},
                      *([{"if": _not_null("vm"), "then": _not_null("resourceGroup")}] if group_needed
                        else [])],
        },
        "AttachRequest": {
            "type": "object", "required": ["vm", *required_group], "additionalProperties": False,
            "properties": {"vm": VM_NAME, **({"resourceGroup": group} if group_needed else optional_group),
                           "mountPoint": _nullable({**mount_point_schema(defaults.home_roots),
                                                    "description": "Default: the VM admin user's home."})}},
    }


# -- answers ----------------------------------------------------------------------------------------

def _object(properties: dict[str, Any], required: tuple[str, ...] = (), description: str | None = None,
            closed: bool = True) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "properties": properties, "required": list(required)}
    if closed:
        schema["additionalProperties"] = False
    return {**schema, "description": description} if description else schema


_SCRIPT_RESULT = {"type": "object", "description": "What the VM script reported (its RESULT line), bounded "
                                                   "and without its secret."}
_COUNT = {"type": "integer", "minimum": 0}
_STRINGS = {"type": "array", "items": _TEXT}


def _results() -> dict[str, dict[str, Any]]:
    """What a Succeeded operation of each kind has as its `result`."""
    kept = _object({"name": _TEXT, "resourceGroup": _TEXT, "deleted": {"const": True},
                    "state": _enum(StorageState),
                    "purgeAfter": {"type": ["string", "null"], "format": "date-time"},
                    "undelete": {**_TEXT, "description": "How to bring it back."}},
                   ("name", "resourceGroup", "deleted", "state", "purgeAfter", "undelete"),
                   "Deleted and kept until purgeAfter.")
    purged = _object({"name": _TEXT, "resourceGroup": _TEXT, "deleted": {**_BOOL, "description": "Whether an "
                      "account was deleted."}, "purged": {"const": True}, "alsoRemoved": _STRINGS},
                     ("name", "resourceGroup", "deleted", "purged", "alsoRemoved"), "Deleted for good.")
    not_purged = _object({"name": _TEXT, "purged": {"const": False}, "note": _TEXT},
                         ("name", "purged", "note"))
    created = json_schema(StorageInfo, _ref)  # the storage, and the waiting VMs it let in
    return {
        OperationKind.CREATE_STORAGE.value: {**created, "properties": {
            **created["properties"],
            "attachQueued": {**_STRINGS, "description": "The attaches queued for VMs tagged for it before it "
                                                        "existed."}}},
        OperationKind.RESIZE_STORAGE.value: _ref(StorageInfo),
        OperationKind.DELETE_STORAGE.value: {"oneOf": [kept, purged]},
        OperationKind.PURGE_STORAGE.value: {"oneOf": [purged, not_purged]},
        OperationKind.UNDELETE_STORAGE.value: _object({"storage": _ref(StorageInfo), "changed": _BOOL},
                                                      ("storage", "changed")),
        OperationKind.RESTORE_SNAPSHOT.value: _object(
            {"storage": _TEXT, "snapshot": _TEXT, "path": _TEXT, "vm": _TEXT,
             "restoredTo": {"type": ["string", "null"], "description": "Where the snapshot's version went."},
             "files": {"type": ["integer", "null"], "description": "How many files were put back."}},
            ("storage", "snapshot", "path", "vm", "restoredTo", "files")),
        OperationKind.ATTACH_VM.value: {"oneOf": [
            _object({"attachment": _ref(Attachment), "changed": _BOOL, "repaired": {"const": True},
                     "mount": _SCRIPT_RESULT}, ("attachment", "changed"),
                    "Attached (changed), repaired, or attached already (not changed, no mount)."),
            _object({"vm": _TEXT, "changed": {"const": False}, "note": _TEXT}, ("vm", "changed", "note"),
                    "A repair of a VM detached meanwhile: nothing to do.")]},
        OperationKind.DETACH_VM.value: _object(
            {"vm": _TEXT, "resourceGroup": _TEXT, "changed": _BOOL,
             "vmGone": {**_BOOL, "description": "The VM no longer exists: nothing was moved."},
             "unmount": {"anyOf": [_SCRIPT_RESULT, {"type": "null"}]}, "note": _TEXT},
            ("vm", "resourceGroup", "changed")),
        OperationKind.VERIFY_VM.value: _ref(VerifiedAttachment),
        OperationKind.RECONCILE.value: _object(
            {"run": _TEXT, "checked": _COUNT,
             "health": {"type": "object", "additionalProperties": _COUNT,
                        "description": "How many attachments were found in each health."},
             "healed": {**_STRINGS, "description": "The repair operations queued."},
             "removed": _STRINGS, "attachQueued": _STRINGS,
             "notAttached": {"type": "array", "items": _object(
                 {"vm": _TEXT, "resourceGroup": _TEXT, "storage": _TEXT},
                 ("vm", "resourceGroup", "storage"))},
             "errors": _STRINGS, "otherAccess": _STRINGS},
            ("run", "checked", "health", "healed", "removed", "attachQueued", "notAttached", "errors",
             "otherAccess")),
        OperationKind.RECONCILE_VM.value: _object(
            {"vm": _TEXT, "resourceGroup": _TEXT, "storage": _TEXT,
             "health": {"type": "string", "enum": [h.value for h in AttachmentHealth] + ["detached"]},
             "error": {"type": ["string", "null"]}, "note": _TEXT, "removed": {"const": True},
             "repair": {**_TEXT, "description": "The repair operation queued."}},
            ("vm", "resourceGroup", "health")),
    }


def _params(kind: OperationKind) -> dict[str, Any]:
    """A command as an operation carries it (`params`); members with a default may be missing
    from records made before they existed."""
    command = COMMANDS[kind]
    schema = json_schema(command, _ref)
    schema["required"] = [camel(f.name) for f in dataclasses.fields(command)
                          if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    return schema


def _operations() -> dict[str, Any]:
    """Operation: one shape per kind (`kind` tells which), its params and result typed."""
    base = json_schema(Operation, _ref)
    results = _results()
    schemas: dict[str, Any] = {"ErrorDetail": _ERROR_DETAIL}
    mapping = {}
    for kind in OperationKind:
        variant = f"{kind.value}Operation"
        properties = {**base["properties"],
                      "kind": {"type": "string", "const": kind.value},
                      "params": _ref(f"{kind.value}Params"),
                      "result": {**results[kind.value], "description": "Its outcome (Succeeded only)."},
                      "error": {**_ref("ErrorDetail"), "description": "Why it Failed."},
                      "lastError": {**_ref("ErrorDetail"), "description": "The last transient failure "
                                                                          "(it was retried)."}}
        schemas[variant] = {**base, "properties": properties}
        schemas[f"{kind.value}Params"] = _params(kind)
        mapping[kind.value] = f"#/components/schemas/{variant}"
    schemas["Operation"] = {"oneOf": [{"$ref": target} for target in mapping.values()],
                            "discriminator": {"propertyName": "kind", "mapping": mapping}}
    return schemas


_ERROR_DETAIL = {
    "type": "object", "required": ["code", "message"], "additionalProperties": False,
    "properties": {"code": {"type": "string", "enum": [c.value for c in ErrorCode],
                            "description": "Stable: branch on it, never on the message."},
                   "message": _TEXT,
                   "causes": {"type": "array", "items": _TEXT},
                   "try": {**_TEXT, "description": "What to do instead."}}}


def _attachment_answer() -> dict[str, Any]:
    """An Attachment, and with verify=true the check queued (`verifying`)."""
    schema = json_schema(Attachment, _ref)
    verifying = {**_ref("OperationLink"), "description": "The queued check (verify=true only)."}
    return {**schema, "properties": {**schema["properties"], "verifying": verifying}}


def _response_schemas() -> dict[str, Any]:
    return {
        **{model.__name__: json_schema(model, _ref) for model in _MODELS},
        **_operations(),
        "StorageList": {"type": "object", "required": ["value"], "additionalProperties": False,
                        "properties": {"value": {"type": "array", "items": _ref(StorageInfo)},
                                       "nextLink": {"type": "string", "format": "uri"}}},
        "SnapshotList": {"type": "object", "required": ["value"], "additionalProperties": False,
                         "properties": {"value": {"type": "array", "items": _ref(ShareSnapshot)}}},
        "OperationList": {"type": "object", "required": ["value"], "additionalProperties": False,
                          "properties": {"value": {"type": "array", "items": _ref("Operation")},
                                         "nextLink": {"type": "string", "format": "uri"}}},
        "OperationLink": {"type": "object", "required": ["operationId", "status", "location"],
                          "additionalProperties": False,
                          "properties": {"operationId": {"type": "string", "format": "uuid"},
                                         "status": _enum(OperationStatus),
                                         "location": {"type": "string", "format": "uri"}}},
        "AttachmentAnswer": _attachment_answer(),
        "InFlight": {"type": "object", "required": ["state", "operation"], "additionalProperties": False,
                     "description": "A resource an operation is still making: what it will be, and the "
                                    "operation to follow.",
                     "properties": {"state": {"type": "string", "enum": ["Creating", "Attaching"]},
                                    "name": _TEXT, "vm": _TEXT, "resourceGroup": _TEXT,
                                    "storage": {"type": ["string", "null"]},
                                    "operation": _ref("OperationLink")}},
        "DigestDocument": {"type": "object", "required": ["digest", "markdown"],
                           "additionalProperties": False,
                           "properties": {"digest": _ref(CostDigest), "markdown": _TEXT}},
        "Health": {"type": "object", "required": ["status"], "additionalProperties": False,
                   "properties": {"status": {"type": "string", "enum": ["ok", "unavailable"]},
                                  "checks": {"type": "object",
                                             "additionalProperties": {"type": "string"}}}},
        "Error": {"type": "object", "required": ["error"], "additionalProperties": False,
                  "properties": {"error": _ref("ErrorDetail")}},
    }


NO_DEFAULTS = RequestDefaults()


@cache
def document(defaults: RequestDefaults = NO_DEFAULTS) -> dict[str, Any]:
    """The document for a service with these request defaults (its settings)."""
    return {
        "openapi": "3.1.0",
        "info": {"title": TITLE, "version": VERSION,
                 "description": "Shared Linux home directories on Azure Files NFS for fleets of "
                                "Azure VMs. Mutations are asynchronous: they answer 202 with an "
                                "operation to poll. Every error is an Error; a method a path does not "
                                "take is answered 405 with Allow. Unknown query parameters are ignored; "
                                "unknown body members are refused."},
        "paths": _with_links(_paths(defaults)),
        "components": {
            "schemas": {**_request_schemas(defaults), **_response_schemas()},
            "securitySchemes": {
                "entraId": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT",
                            "description": "An Entra ID access token for the API's app registration "
                                           "(scope api://<API client id>/user_impersonation for a user; "
                                           "api://<API client id>/.default for a service principal)."}},
        },
        "security": [{"entraId": []}],
    }
