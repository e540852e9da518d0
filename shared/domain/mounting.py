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

from .errors import Conflict

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
    private_ip: str = ""  # of its primary NIC: what the endpoint's network rules name


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
    """A Run Command as it ended: its state, exit code, and the last 4 KB of output and error.
    `stalled`: it still said Running, but reported nothing new for too long (the VM rebooted
    under it, or its handler died: Azure never reports such a run again)."""

    state: str  # Succeeded, Failed, Canceled; Running when stalled
    exit_code: int | None
    output: str
    error: str
    stalled: bool = False

    @property
    def interrupted(self) -> bool:
        """Stopped from outside, not by the script: its timeout (the handler's SIGKILL: Failed,
        exit code -1, and no RESULT, which the script always prints), a reboot or a dead agent
        (stalled), or a delete (Canceled). The script's state file lets a new run finish or undo
        what it began."""
        killed = self.state == "Failed" and self.exit_code == -1 and self.result is None
        return killed or self.stalled or self.state == "Canceled"

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


# Runs of one script for one operation: a run stopped from outside is followed by a new one
# under a new name (the same name again would not run: Azure sees unchanged settings).
MAX_RUN_ATTEMPTS = 3


def run_command_name(action: str, key: str, attempt: int = 1) -> str:
    return f"{run_command_prefix(action, key)}{attempt}"


def run_command_prefix(action: str, key: str) -> str:
    """What the names of every run of one script for one operation start with."""
    return f"azlin-{action}-{key}-"


def script_budget(timeout_seconds: int) -> int:
    """How long a script may work, below its run's timeout: room to roll back and report."""
    return max(timeout_seconds - max(30, timeout_seconds // 10), 10)


def heartbeat_seconds(stall_seconds: float) -> int:
    """How often a script says it is alive: several beats fit in the time that means stalled
    (Azure refreshes a run's output about every 15 s)."""
    return max(1, min(10, int(stall_seconds // 9)))


MIN_OWNER_UID, MAX_OWNER_UID = 1000, 60000  # the range of normal users (useradd's defaults)


def owner_uid(reported: object, vm: str) -> int:
    """The UID a first attach found: a VM's word, taken only in the range of normal users (a VM
    that says 0 would have every later VM's home owned by root)."""
    in_range = isinstance(reported, int) and MIN_OWNER_UID <= reported <= MAX_OWNER_UID
    if isinstance(reported, bool) or not isinstance(reported, int) or not in_range:
        raise Conflict(
            f"VM {vm} reported an owner UID outside the range of normal users.",
            causes=[f"ownerUid: {str(reported)[:40]!r}; accepted: {MIN_OWNER_UID}-{MAX_OWNER_UID}"],
            try_hint="check the VM's user and the attach script on it",
        )
    return reported
