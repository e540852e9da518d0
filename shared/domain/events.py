"""Resource Manager events as the auto-attach needs them, from either delivery schema.

Only `Microsoft.Resources.ResourceWriteSuccess` with operationName exactly
`Microsoft.Compute/virtualMachines/write` (a VM created or updated) is of interest: run-command,
extension and every other write (our own Run Commands emit events too) are ignored."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

WRITE_SUCCESS = "Microsoft.Resources.ResourceWriteSuccess"
VM_WRITE = "Microsoft.Compute/virtualMachines/write"
VM_ID = re.compile(
    r"^/subscriptions/[^/]+/resourceGroups/(?P<group>[^/]+)/providers/"
    r"Microsoft\.Compute/virtualMachines/(?P<vm>[^/]+)$",
    re.IGNORECASE,
)
OPT_OUT = "none"


@dataclass(frozen=True)
class VmWritten:
    """A VM was created or updated."""

    event_id: str
    resource_group: str
    vm: str


def vm_written(event_id: str, event_type: str, subject: str, data: Any) -> VmWritten | None:
    """The VM a Resource Manager event is about, when it is a successful VM write; else None."""
    if event_type != WRITE_SUCCESS or not isinstance(data, dict) or data.get("operationName") != VM_WRITE:
        return None
    found = VM_ID.match(str(data.get("resourceUri") or subject or ""))
    if found is None:
        return None
    return VmWritten(event_id, found.group("group"), found.group("vm"))


def auto_attach_key(vm_id: str, storage: str) -> str:
    """One attach per VM and storage, whatever the number of events about it."""
    return f"auto-attach:{vm_id}:{storage}"
