"""Resource Manager events as the auto-attach needs them, from either delivery schema.

Only `Microsoft.Resources.ResourceWriteSuccess` with operationName exactly
`Microsoft.Compute/virtualMachines/write` (a VM created or updated) is of interest: run-command,
extension and every other write (our own Run Commands emit events too) are ignored."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from .identity import Principal, PrincipalKind, Writer

WRITE_SUCCESS = "Microsoft.Resources.ResourceWriteSuccess"
VM_WRITE = "Microsoft.Compute/virtualMachines/write"
VM_ID = re.compile(
    r"^/subscriptions/[^/]+/resourceGroups/(?P<group>[^/]+)/providers/"
    r"Microsoft\.Compute/virtualMachines/(?P<vm>[^/]+)$",
    re.IGNORECASE,
)
OPT_OUT = "none"
# Claim names in `data.claims` (a flat map of strings, some under their long WS-Federation names:
# MicrosoftDocs/azure-docs `articles/event-grid/event-schema-resource-groups.md`).
OBJECT_ID_CLAIMS = ("http://schemas.microsoft.com/identity/claims/objectidentifier", "oid")
NAME_CLAIMS = ("http://schemas.xmlsoap.org/ws/2005/05/identity/claims/upn", "upn", "name", "appid")
SCOPE_CLAIMS = ("http://schemas.microsoft.com/identity/claims/scope", "scp")
_GUID = re.compile(r"^[0-9a-fA-F]{8}-?([0-9a-fA-F]{4}-?){3}[0-9a-fA-F]{12}$")


@dataclass(frozen=True)
class VmWritten:
    """A VM was created (`created`) or updated, by `writer` (None when the event names nobody)."""

    event_id: str
    resource_group: str
    vm: str
    writer: Writer | None = None
    created: bool = False


@dataclass(frozen=True)
class Asked:
    """What a VM asks for (its tag's value, or its group's default storage; None: nothing) and
    who asked: the writer of the event in which it came to ask for that, never a later writer
    who changed something else."""

    storage: str | None = None
    by: Writer | None = None


def who_asked(written: VmWritten, storage: str | None, before: Asked | None) -> Writer | None:
    """Who made the VM ask for `storage`: its creator, whoever's write changed what it asks for,
    or whoever asked before when it asks for the same; None when that cannot be known (an update
    of a VM whose creation was never seen)."""
    if written.created:
        return written.writer
    if before is None:
        return None
    return before.by if before.storage == storage else written.writer


def vm_written(event_id: str, event_type: str, subject: str, data: Any) -> VmWritten | None:
    """The VM a Resource Manager event is about, when it is a successful VM write; else None."""
    if event_type != WRITE_SUCCESS or not isinstance(data, dict) or data.get("operationName") != VM_WRITE:
        return None
    found = VM_ID.match(str(data.get("resourceUri") or subject or ""))
    if found is None:
        return None
    # Event Grid includes `httpRequest` only when an existing resource is updated (or deleted):
    # its absence marks a creation (event-schema-resource-groups.md, the data table).
    created = "httpRequest" not in data
    return VmWritten(event_id, found.group("group"), found.group("vm"), writer_of(data), created)


def writer_of(data: dict[str, Any]) -> Writer | None:
    """Who wrote the resource: the object id in the writer's claims, and the principal of the
    role assignment that allowed it (`authorization.evidence`, a group when the role came through
    one). GUIDs only: Azure writes the evidence's without dashes."""
    claims = _object(data.get("claims"))
    evidence = _object(_object(data.get("authorization")).get("evidence"))
    object_id = _guid(next((claims[n] for n in OBJECT_ID_CLAIMS if n in claims), None))
    evidence_id = _guid(evidence.get("principalId"))
    if object_id is None and evidence_id is None:
        return None
    delegated = any(n in claims for n in SCOPE_CLAIMS)
    kind = (PrincipalKind.USER if delegated else PrincipalKind.SERVICE_PRINCIPAL) if object_id else (
        PrincipalKind.UNKNOWN)
    name = next((str(claims[n]) for n in NAME_CLAIMS if claims.get(n)), object_id or "unknown")
    return Writer(Principal(object_id or "", name[:200], kind), evidence_id)


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _guid(value: Any) -> str | None:
    """A GUID in its usual form (8-4-4-4-12, lower case), or None for anything else."""
    text = str(value or "")
    if not _GUID.match(text):
        return None
    digits = text.replace("-", "").lower()
    return f"{digits[:8]}-{digits[8:12]}-{digits[12:16]}-{digits[16:20]}-{digits[20:]}"


def auto_attach_key(vm_id: str, storage: str) -> str:
    """One attach per VM and storage, whatever the number of events about it."""
    return f"auto-attach:{vm_id}:{storage}"


def refusal_key(vm_id: str, storage: str, code: str) -> str:
    """One refusal per VM, storage and reason, kept apart from the attach's key: a refusal is
    about the moment (no such storage yet, a writer not a member yet), so once its reason is gone
    a later attempt must find the attach's key free, not this Failed operation."""
    return f"{auto_attach_key(vm_id, storage)}:refused:{code}"
