"""The API's OpenAPI 3.1 document, served at /api/openapi.json.

Response schemas are generated from the domain models by the same rules that serialise them, so
the document cannot drift from what the API answers; a test checks that its paths are exactly the
registered routes.
"""

from __future__ import annotations

from enum import Enum
from functools import cache
from typing import Any

from shared.domain import validation
from shared.domain.costs import CostReport, StorageCost, VmCost
from shared.domain.data_protection import ShareSnapshot
from shared.domain.digests import AttachmentFinding, CostDigest, GroupDigest, StorageFinding, UnattachedVm
from shared.domain.errors import ErrorCode
from shared.domain.identity import Principal
from shared.domain.models import (
    Attachment,
    DefaultStorage,
    DetachMode,
    MountInfo,
    Redundancy,
    StorageAccess,
    StorageInfo,
    StorageStatus,
    Tier,
    VerifiedAttachment,
    VmHealth,
)
from shared.domain.operations import Operation, OperationKind, OperationStatus, Progress, Waiting
from shared.domain.serialization import json_schema

TITLE = "azlin storage service"
VERSION = "0.1.0"
_MODELS = (Operation, Progress, Principal, StorageInfo, StorageAccess, StorageStatus, VmHealth, Attachment,
           MountInfo, VerifiedAttachment, DefaultStorage, CostReport, VmCost, StorageCost, CostDigest,
           GroupDigest, StorageFinding, AttachmentFinding, UnattachedVm, ShareSnapshot, Waiting)


def _ref(model: type | str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{model if isinstance(model, str) else model.__name__}"}


def _param(name: str, where: str, schema: dict[str, Any], description: str,
           required: bool = False) -> dict[str, Any]:
    return {"name": name, "in": where, "required": required or where == "path",
            "schema": schema, "description": description}


_TEXT = {"type": "string"}
_FLAG = {"type": "boolean"}
P_NAME = _param("name", "path", {"type": "string", "pattern": "^[a-z0-9]{3,24}$"},
                "Storage account name: 3-24 lowercase letters and digits.")
P_VM = _param("vm", "path", {"type": "string", "maxLength": 64}, "Virtual machine name.")
P_SNAPSHOT = _param("snapshot", "path", {"type": "string", "examples": ["2026-12-03T02:00:00.0000000Z"]},
                    "A snapshot's id, as the snapshot list gives it.")
P_ID = _param("id", "path", {"type": "string", "format": "uuid"}, "Operation id.")
P_GROUP = _param("resourceGroup", "query", {"type": "string", "maxLength": 90},
                 "Resource group; defaults to the service's DEFAULT_RESOURCE_GROUP.")
P_STORAGE_GROUP = _param("resourceGroup", "query", {"type": "string", "maxLength": 90},
                         "Only match storage in this resource group.")
P_RG = _param("group", "path", {"type": "string", "maxLength": 90}, "Resource group name.")
P_KEY = _param("Idempotency-Key", "header",
               {"type": "string", "maxLength": validation.MAX_IDEMPOTENCY_KEY_LENGTH},
               "Repeat a request safely: the same key and body return the same operation (24 h).")


def _enum_list(choices: type[Enum]) -> dict[str, Any]:
    """A comma-separated list of an enum's values (the service matches them without regard to case)."""
    names = "|".join(str(c.value) for c in choices)
    return {"type": "string", "pattern": f"^({names})(,({names}))*$",
            "examples": [",".join(str(c.value) for c in list(choices)[:2])]}


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"content": {"application/json": {"schema": schema}}}


def _error(description: str) -> dict[str, Any]:
    return {"description": description, **_json(_ref("Error"))}


def _ok(schema: dict[str, Any], description: str = "OK") -> dict[str, Any]:
    return {"200": {"description": description, **_json(schema)}}


_ACCEPTED = {"202": {
    "description": "Accepted: poll the operation at Location.",
    "headers": {"Location": {"schema": {"type": "string", "format": "uri"}},
                "Retry-After": {"schema": {"type": "integer"}}},
    **_json(_ref(Operation)),
}}
_COMMON_ERRORS = {"400": _error("Bad input; nothing was changed."),
                  "503": _error("A dependency is unavailable; retry after Retry-After seconds.")}
_CALLER_ERRORS = {
    "404": _error("Not found; ResourceGroupNotFound when a resource group the request names does not exist."),
    "401": {"description": "No valid Entra ID access token for the API (WWW-Authenticate: Bearer); "
                           "nothing was read or changed.", **_json(_ref("Error"))},
    "403": _error("The caller may not do this: the missing Azure action and scope (AuthorizationFailed), "
                  "or the missing ownership or membership of the storage (NotAnOwner, NotAMember)."),
}


def _op(operation_id: str, summary: str, responses: dict[str, Any], *, params: tuple[Any, ...] = (),
        body: dict[str, Any] | None = None, anonymous: bool = False) -> dict[str, Any]:
    if P_KEY in params:  # any mutation can meet a reused key
        responses = {"409": _error("Conflict; IdempotencyKeyReused when the key was used for "
                                   "another request."), **responses}
    errors = _COMMON_ERRORS if anonymous else {**_CALLER_ERRORS, **_COMMON_ERRORS}
    op: dict[str, Any] = {"operationId": operation_id, "summary": summary, "parameters": list(params),
                          "responses": {**errors, **responses}}
    if body is not None:
        op["requestBody"] = {"required": True, **_json(body)}
        op["responses"]["413"] = _error("RequestBodyTooLarge: the body is over 64 KB; nothing was changed.")
    if anonymous:
        op["security"] = []
    return op


def _paths() -> dict[str, dict[str, Any]]:
    not_found = {"404": _error("Not found.")}
    mutation = (P_KEY,)
    return {
        "/api/storage": {
            "post": _op("create_storage", "Create NFS storage (a premium FileStorage account with "
                        "share 'home' behind a private endpoint). The same request again repairs it.",
                        {**_ACCEPTED, "409": _error("StorageExists: it exists with other settings (the "
                                                    "causes name them; PATCH changes the size).")},
                        params=mutation, body=_ref("CreateStorageRequest")),
            "get": _op("list_storage", "List storage recorded by the service.",
                       _ok(_ref("StorageList")), params=(
                           P_STORAGE_GROUP,
                           _param("$top", "query", {"type": "integer", "minimum": 1, "maximum": 1000},
                                  "Page size (default 100)."),
                           _param("$skipToken", "query", _TEXT, "Continuation from nextLink."))),
        },
        "/api/storage/{name}": {
            "get": _op("get_storage", "Get one storage; while its create is under way, state Creating "
                       "and the operation to follow.",
                       {**_ok({"oneOf": [_ref(StorageInfo), _ref("InFlight")]}), **not_found},
                       params=(P_NAME, P_STORAGE_GROUP)),
            "patch": _op("resize_storage", "Grow, or shrink where Azure allows it.",
                         {**_ACCEPTED, **not_found}, params=(P_NAME, P_STORAGE_GROUP, *mutation),
                         body=_ref("ResizeStorageRequest")),
            "delete": _op("delete_storage", "Delete storage; refused while VMs are attached "
                          "unless force.", {**_ACCEPTED, "409": _error("StorageInUse: VMs are attached."),
                                            "404": _error("StorageNotFound: this service never made it "
                                                          "(or purged it).")},
                          params=(P_NAME, P_STORAGE_GROUP,
                                  _param("force", "query", _FLAG, "Detach attached VMs safely first."),
                                  _param("mode", "query", {"type": "string",
                                                           "enum": [m.value for m in DetachMode]},
                                         "With force, how each VM is detached: copy (default: it keeps "
                                         "the shared files) or restore (its pre-attach home)."),
                                  _param("purge", "query", _FLAG, "Delete for good, now, a storage "
                                         "already deleted (kept until purgeAfter otherwise)."),
                                  *mutation)),
        },
        "/api/storage/{name}/undelete": {
            "post": _op("undelete_storage", "Bring back a deleted storage within its window (owners, with "
                        "what creating it took): its endpoint, DNS name and network rule again.",
                        {**_ACCEPTED, **not_found, "409": _error("StorageNotDeleted.")},
                        params=(P_NAME, P_STORAGE_GROUP, *mutation)),
        },
        "/api/storage/{name}/snapshots": {
            "get": _op("list_snapshots", "The share's snapshots, newest first; the service's own say why "
                       "and when they are removed (SNAPSHOT_RETENTION_DAYS).",
                       {**_ok(_ref("SnapshotList")), **not_found}, params=(P_NAME, P_STORAGE_GROUP)),
            "post": _op("take_snapshot", "A snapshot now (owners, with fileServices/shares/write).",
                        {"201": {"description": "Taken.", **_json(_ref(ShareSnapshot))}, **not_found,
                         "409": _error("SnapshotLimit: the share has 200; or StorageDeleted.")},
                        params=(P_NAME, P_STORAGE_GROUP)),
        },
        "/api/storage/{name}/snapshots/{snapshot}/restore": {
            "post": _op("restore_from_snapshot", "Put back one path of the home from a snapshot, through "
                        "an attached VM the caller may run commands on; a path that exists gets the "
                        "snapshot's version beside it (<path>.restored-<stamp>).",
                        {**_ACCEPTED, **not_found, "409": _error("NoVmAttached, or StorageDeleted.")},
                        params=(P_NAME, P_SNAPSHOT, P_STORAGE_GROUP, *mutation), body=_ref("RestoreRequest")),
        },
        "/api/storage/{name}/access": {
            "get": _op("get_storage_access", "Who may use the storage: its owners and members (owners only).",
                       {**_ok(_ref(StorageAccess)), **not_found}, params=(P_NAME, P_STORAGE_GROUP)),
            "put": _op("set_storage_access", "Replace its owners and members (owners only, with "
                       "Microsoft.Storage/storageAccounts/write on it); the last owner cannot be removed.",
                       {**_ok(_ref(StorageAccess)), **not_found,
                        "409": _error("LastOwner: at least one owner stays; or ConcurrentUpdate.")},
                       params=(P_NAME, P_STORAGE_GROUP), body=_ref("StorageAccessRequest")),
        },
        "/api/storage/{name}/status": {
            "get": _op("storage_status", "Usage, attached VMs and monthly cost.",
                       {**_ok(_ref(StorageStatus)), **not_found}, params=(P_NAME, P_STORAGE_GROUP)),
        },
        "/api/storage/{name}/cloud-init": {
            "get": _op("storage_cloud_init", "cloud-config that makes the share a new VM's home from its "
                       "first boot (the attach script, run once by cloud-init).", {
                "200": {"description": "OK", "content": {"text/cloud-config": {"schema": _TEXT}}},
                **not_found, "400": _error("user or mountPoint is not valid.")},
                params=(P_NAME, P_STORAGE_GROUP,
                        _param("user", "query", _TEXT, "Whose home (default azureuser)."),
                        _param("mountPoint", "query", _TEXT, "Where (default /home/<user>)."))),
        },
        "/api/storage/{name}/attachments": {
            "post": _op("attach_vm", "Make a VM's home directory the shared share.",
                        {**_ACCEPTED, **not_found,
                         "409": _error("VmAttachedElsewhere: detach it from its storage first.")},
                        params=(P_NAME, *mutation), body=_ref("AttachRequest")),
        },
        "/api/vms/{vm}/attachment/verify": {
            "post": _op("verify_attachment", "Check the live mount on the VM (a read-only script run "
                        "through Run Command); the operation's result is the VerifiedAttachment.",
                        {**_ACCEPTED, **not_found}, params=(P_VM, P_GROUP, *mutation)),
        },
        "/api/vms/{vm}/attachment": {
            "get": _op("get_attachment", "The VM's recorded attachment (its health as last checked); with "
                       "verify=true, a new check is queued and `verifying` links to its operation.", {
                **_ok({"oneOf": [{"allOf": [_ref(Attachment), {"type": "object", "properties": {
                    "verifying": {**_ref("OperationLink"), "description": "The queued check (verify=true "
                                                                          "only)."}}}]},
                    _ref("InFlight")]}),
                **not_found},
                params=(P_VM, P_GROUP, _param("verify", "query", _FLAG, "Queue a check of the live mount."))),
            "delete": _op("detach_vm", "Give the VM a local home directory again.",
                          {**_ACCEPTED, "404": _error("AttachmentNotFound: neither attached nor being "
                                                      "attached.")},
                          params=(P_VM, P_GROUP, _param(
                              "mode", "query", {"type": "string", "enum": [m.value for m in DetachMode]},
                              "copy (default): copy the shared home to the VM; restore: put back "
                              "the pre-attach home."), *mutation)),
        },
        "/api/operations/{id}": {
            "get": _op("get_operation", "Poll an operation.", {**_ok(_ref(Operation)), **not_found},
                       params=(P_ID,)),
        },
        "/api/operations": {
            "get": _op("list_operations", "The operations asked of a storage (and of the VMs on it, the "
                       "auto-attaches it refused included) or of a VM, or else the ones the caller "
                       "asked for; newest first. A filtered page may hold fewer than $top: follow "
                       "nextLink until it is absent.",
                       {**_ok(_ref("OperationList")), **not_found},
                       params=(_param("storage", "query", P_NAME["schema"], "A storage: its operations."),
                               _param("vm", "query", P_VM["schema"], "A VM (with resourceGroup)."),
                               P_GROUP,
                               _param("status", "query", _enum_list(OperationStatus),
                                      "Only these statuses (comma-separated)."),
                               _param("kind", "query", _enum_list(OperationKind),
                                      "Only these kinds (comma-separated)."),
                               _param("$top", "query", {"type": "integer", "minimum": 1, "maximum": 100},
                                      "Page size (default 20)."),
                               _param("$skipToken", "query", _TEXT, "Continuation from nextLink."))),
        },
        "/api/resource-groups/{group}/default-storage": {
            "put": _op("set_default_storage", "Attach the group's new VMs to this storage when their "
                       "auto-attach tag names none.", {**_ok(_ref(DefaultStorage)), **not_found},
                       params=(P_RG,), body=_ref("DefaultStorageRequest")),
            "get": _op("get_default_storage", "The group's default storage.",
                       {**_ok(_ref(DefaultStorage)), **not_found}, params=(P_RG,)),
            "delete": _op("clear_default_storage", "Stop attaching the group's untagged new VMs.",
                          {"204": {"description": "Cleared (or was not set)."}}, params=(P_RG,)),
        },
        "/api/costs": {
            "get": _op("get_costs", "Monthly cost of the recorded storage and of the VMs, with the "
                       "price source of each amount.", _ok(_ref(CostReport)),
                       params=(_param("resourceGroup", "query", {"type": "string", "maxLength": 90},
                                      "Only this resource group (default: all)."),)),
        },
        "/api/digests": {
            "post": _op("make_digest", "Today's cost digest on demand: the stored one (200), else made "
                        "now (201); with force=true made again from the figures now, replacing "
                        "today's, and posted again. Only for whoever may read every resource group.",
                        {**_ok(_ref("DigestDocument")),
                         "201": {"description": "Made now.", **_json(_ref("DigestDocument"))}},
                        params=(_param("force", "query", _FLAG, "Make it again even if today's exists."),)),
        },
        "/api/digests/latest": {
            "get": _op("latest_digest", "The latest daily cost digest, and its Markdown rendering.",
                       {**_ok(_ref("DigestDocument")), **not_found}),
        },
        "/api/health": {
            "get": _op("health", "Liveness; with ready=true, readiness of each dependency.", {
                **_ok(_ref("Health")), "503": _error("A dependency is not ready.")},
                params=(_param("ready", "query", _FLAG, "Also check dependencies."),), anonymous=True),
        },
        "/api/openapi.json": {
            "get": _op("openapi_document", "This document.", _ok({"type": "object"}), anonymous=True),
        },
    }


def _request_schemas() -> dict[str, Any]:
    size = {"oneOf": [{"type": "integer", "minimum": validation.MIN_SHARE_GIB,
                       "maximum": validation.MAX_SHARE_GIB},
                      {"type": "string", "examples": ["100", "100GiB", "1TiB"]}],
            "description": "GiB; GB and TB are read as GiB and TiB. Premium NFS: 100-102400 GiB. "
                           "Storage is answered as sizeGb (a number of GiB)."}
    return {
        "CreateStorageRequest": {
            "type": "object", "required": ["name"], "additionalProperties": False,
            "properties": {"name": P_NAME["schema"], "resourceGroup": P_GROUP["schema"],
                           "region": _TEXT,
                           "tier": {"type": "string", "enum": [t.value for t in Tier],
                                    "description": "Standard cannot serve NFS and is refused."},
                           "redundancy": {"type": "string", "enum": [r.value for r in Redundancy]},
                           "size": size,
                           "vnet": {**_TEXT, "description": "VNet (in the resource group) whose subnet holds "
                                    "the private endpoint; default: settings, else the service's azlin-vnet"},
                           "subnet": {**_TEXT, "description": "subnet of `vnet`; default: default"},
                           "guardSubnet": {**_FLAG, "description": "Let the service put its network "
                                           "security group on `subnet` (it must hold only private "
                                           "endpoints and no group of its own): only attached VMs "
                                           "reach the share. Needs subnets/write on it."}}},
        "StorageAccessRequest": {
            "type": "object", "required": ["owners", "members"], "additionalProperties": False,
            "properties": {role: {"type": "array", "maxItems": validation.MAX_PRINCIPALS,
                                  "items": {"type": "string", "format": "uuid"},
                                  "description": f"Object ids of the {role}: users, groups, service "
                                                 "principals."}
                           for role in ("owners", "members")}},
        "DefaultStorageRequest": {"type": "object", "required": ["storage"], "additionalProperties": False,
                                  "properties": {"storage": P_NAME["schema"]}},
        "ResizeStorageRequest": {"type": "object", "required": ["size"],
                                 "additionalProperties": False, "properties": {"size": size}},
        "RestoreRequest": {
            "type": "object", "required": ["path"], "additionalProperties": False,
            "properties": {"path": {"type": "string", "maxLength": 1024,
                                    "description": "Relative to the home, no '.' or '..' components."},
                           "vm": {**P_VM["schema"], "description": "The attached VM to restore through "
                                  "(default: the first healthy one the caller may use)."},
                           "resourceGroup": {**P_GROUP["schema"], "description": "The VM's group."}}},
        "AttachRequest": {
            "type": "object", "required": ["vm"], "additionalProperties": False,
            "properties": {"vm": P_VM["schema"], "resourceGroup": P_GROUP["schema"],
                           "mountPoint": {"type": "string", "pattern": "^/",
                                          "description": "Default: the VM admin user's home."}}},
    }


def _response_schemas() -> dict[str, Any]:
    return {
        **{model.__name__: json_schema(model, _ref) for model in _MODELS},
        "StorageList": {"type": "object", "required": ["value"], "additionalProperties": False,
                        "properties": {"value": {"type": "array", "items": _ref(StorageInfo)},
                                       "nextLink": {"type": "string", "format": "uri"}}},
        "SnapshotList": {"type": "object", "required": ["value"], "additionalProperties": False,
                         "properties": {"value": {"type": "array", "items": _ref(ShareSnapshot)}}},
        "OperationList": {"type": "object", "required": ["value"], "additionalProperties": False,
                          "properties": {"value": {"type": "array", "items": _ref(Operation)},
                                         "nextLink": {"type": "string", "format": "uri"}}},
        "OperationLink": {"type": "object", "required": ["operationId", "status", "location"],
                          "additionalProperties": False,
                          "properties": {"operationId": {"type": "string", "format": "uuid"},
                                         "status": {"type": "string",
                                                    "enum": [s.value for s in OperationStatus]},
                                         "location": {"type": "string", "format": "uri"}}},
        "InFlight": {"type": "object", "required": ["state", "operation"],
                     "description": "A resource an operation is still making: what it will be, and the "
                                    "operation to follow.",
                     "properties": {"state": {"type": "string", "enum": ["Creating", "Attaching"]},
                                    "name": _TEXT, "vm": _TEXT, "resourceGroup": _TEXT,
                                    "storage": {"type": ["string", "null"]},
                                    "operation": _ref("OperationLink")}},
        "DigestDocument": {"type": "object", "required": ["digest", "markdown"],
                           "additionalProperties": False,
                           "properties": {"digest": _ref(CostDigest), "markdown": _TEXT}},
        "Health": {"type": "object", "required": ["status"],
                   "properties": {"status": {"type": "string", "enum": ["ok", "unavailable"]},
                                  "checks": {"type": "object",
                                             "additionalProperties": {"type": "string"}}}},
        "Error": {"type": "object", "required": ["error"], "additionalProperties": False,
                  "properties": {"error": {
                      "type": "object", "required": ["code", "message"], "additionalProperties": False,
                      "properties": {"code": {"type": "string", "enum": [c.value for c in ErrorCode]},
                                     "message": _TEXT,
                                     "causes": {"type": "array", "items": _TEXT},
                                     "try": _TEXT}}}},
    }


@cache
def document() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {"title": TITLE, "version": VERSION,
                 "description": "Shared Linux home directories on Azure Files NFS for fleets of "
                                "Azure VMs. Mutations are asynchronous: they answer 202 with an "
                                "operation to poll."},
        "paths": _paths(),
        "components": {
            "schemas": {**_request_schemas(), **_response_schemas()},
            "securitySchemes": {
                "entraId": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT",
                            "description": "An Entra ID access token for the API's app registration "
                                           "(scope api://<API client id>/user_impersonation for a user; "
                                           "api://<API client id>/.default for a service principal)."}},
        },
        "security": [{"entraId": []}],
    }
