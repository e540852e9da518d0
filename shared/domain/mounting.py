"""What attaching a VM needs to know and decide, without Azure: the VM's facts, the script's
RESULT line, and the names the Run Commands get.

One attach (or detach) is one managed Run Command named after its operation, so a redelivered
message finds the command it already started instead of running the script a second time."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

RESULT_PREFIX = "RESULT "
# A large home copies in minutes (Azure's own limit is 90). Below host.json's functionTimeout
# (30 min) with room for polling: the worker sees the end of the script, never the host's kill.
SCRIPT_TIMEOUT_SECONDS = 1500


@dataclass(frozen=True)
class VmFacts:
    name: str
    resource_group: str
    vm_id: str
    region: str
    admin_user: str
    power_state: str  # "running", "stopped", "deallocated", ...
    vnet_id: str
    tags: Mapping[str, str] = field(default_factory=dict)
    time_created: datetime | None = None  # Azure's properties.timeCreated


class TaggedVm(Protocol):
    """What deciding on an auto-attach needs of a VM."""

    @property
    def name(self) -> str: ...

    @property
    def resource_group(self) -> str: ...

    @property
    def vm_id(self) -> str: ...

    @property
    def tags(self) -> Mapping[str, str]: ...

    @property
    def time_created(self) -> datetime | None: ...


@dataclass(frozen=True)
class VmSummary:
    """A VM as the subscription's VM listing shows it (no network details)."""

    name: str
    resource_group: str
    vm_id: str
    region: str
    size: str  # e.g. Standard_B2s
    power_state: str  # "running", "deallocated", ...; "" when unknown
    tags: Mapping[str, str] = field(default_factory=dict)
    time_created: datetime | None = None


@dataclass(frozen=True)
class ScriptRun:
    """A finished Run Command: its state, exit code, and the last 4 KB of output and error."""

    state: str  # Succeeded, Failed, TimedOut, Canceled
    exit_code: int | None
    output: str
    error: str

    @property
    def result(self) -> dict[str, Any] | None:
        """The script's RESULT object (its last such line), or None when it printed none."""
        for line in reversed(self.output.splitlines()):
            if line.startswith(RESULT_PREFIX):
                try:
                    value = json.loads(line.removeprefix(RESULT_PREFIX))
                except ValueError:
                    return None
                return value if isinstance(value, dict) else None
        return None


def run_command_name(action: str, operation_id: str) -> str:
    return f"azlin-{action}-{operation_id}"


def home_owner(mount_point: str, admin_user: str) -> str:
    """Whose home a mount point is: /home/<user> is <user>'s, anything else the admin user's."""
    parts = mount_point.strip("/").split("/")
    return parts[1] if len(parts) == 2 and parts[0] == "home" else admin_user
