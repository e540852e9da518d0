"""The emulator's state across restarts (`make dev KEEP=1`): resources, the tenant (people,
groups, app registrations, the signing key) and Microsoft.Authorization (custom roles, role and
deny assignments, locks), saved as JSON in the emulator's directory when it stops and loaded when
it starts. The files of shares, snapshots and VM disks live in that directory already; loading
mounts the shares again and boots the VMs that were running, as after a host reboot in Azure
(`mount -a`, and the VM agent not ready for `agent_ready_seconds`).

Not kept: long-running operations (a resource whose write was cut off loads as Failed, as an
interrupted deployment ends; writing it again repairs it), the request log, faults and Event Grid
events not delivered yet. A run command still running when the emulator stopped reports Running
for good, as one whose VM rebooted under it does.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from local.emulator.arm import Resource, parse_path
from local.emulator.compute import network_of, sandbox_of
from local.emulator.core import BUSY_STATES
from local.sandbox import Execution, SandboxError

if TYPE_CHECKING:
    from local.emulator.core import Emulator

log = logging.getLogger(__name__)

STATE_FILE = "emulator-state.json"
VERSION = 1
VMS = "microsoft.compute/virtualmachines"
SHARES = "microsoft.storage/storageaccounts/fileservices/shares"


@dataclass(frozen=True)
class Loaded:
    resources: int
    storage_accounts: int
    vms: int

    def __str__(self) -> str:
        return (f"{self.storage_accounts} storage account(s), {self.vms} VM(s), "
                f"{self.resources} resources in all")


def _encode(value: Any) -> Any:
    """What `internal` holds, as JSON: datetimes and run command executions are tagged."""
    if isinstance(value, datetime):
        return {"$datetime": value.isoformat()}
    if isinstance(value, Execution):
        finished = value.done.is_set()
        return {"$execution": {
            "stdout": str(value.stdout_path), "stderr": str(value.stderr_path),
            "started_at": value.started_at, "ended_at": value.ended_at, "exit_code": value.exit_code,
            "timed_out": value.timed_out, "canceled": value.canceled, "lost": value.lost or not finished}}
    if isinstance(value, dict):
        return {key: _encode(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_encode(item) for item in value]
    return value


def _decode(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {"$datetime"}:
            return datetime.fromisoformat(value["$datetime"])
        if set(value) == {"$execution"}:
            saved = value["$execution"]
            execution = Execution(Path(saved["stdout"]), Path(saved["stderr"]),
                                  started_at=saved["started_at"], ended_at=saved["ended_at"],
                                  exit_code=saved["exit_code"], timed_out=saved["timed_out"],
                                  canceled=saved["canceled"], lost=saved["lost"])
            execution.done.set()
            return execution
        return {key: _decode(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_decode(item) for item in value]
    return value


def save(emu: Emulator) -> Path:
    """Write the state (atomically: a stop cut short leaves the previous file)."""
    with emu.lock:
        resources = [{"id": str(r.id), "type": r.type, "body": r.body, "internal": _encode(r.internal)}
                     for r in emu.resources.values()]
    authorization = emu.authorization
    state = {
        "version": VERSION,
        "resources": resources,
        "tenant": emu.tenant.export(),
        "authorization": {"definitions": authorization.definitions, "assignments": authorization.assignments,
                          "denials": authorization.denials, "locks": authorization.locks},
    }
    path = emu.directory / STATE_FILE
    partial = path.with_suffix(".partial")
    partial.write_text(json.dumps(state))
    partial.replace(path)
    log.info("emulator state saved: %d resources", len(resources))
    return path


def saved(directory: Path) -> bool:
    return (directory / STATE_FILE).is_file()


def load(emu: Emulator) -> Loaded:
    """Put the saved state back, then mount the shares and boot the VMs that were running."""
    state = json.loads((emu.directory / STATE_FILE).read_text())
    if state.get("version") != VERSION:
        raise ValueError(f"{STATE_FILE} is of version {state.get('version')}, not {VERSION}")
    with emu.lock:
        for saved_resource in state["resources"]:
            rid = parse_path(saved_resource["id"])
            resource = Resource(rid, saved_resource["type"], saved_resource["body"],
                                _decode(saved_resource["internal"]))
            if resource.properties.get("provisioningState") in BUSY_STATES:
                resource.properties["provisioningState"] = "Failed"  # its operation ended with the emulator
            resource.internal.pop("action_running", None)
            emu.resources[rid.key] = resource
    emu.tenant.restore(state["tenant"])
    authorization = emu.authorization
    for name in ("definitions", "assignments", "denials", "locks"):
        getattr(authorization, name).update(state["authorization"][name])
    _mount_shares(emu)
    vms = _boot_vms(emu)
    accounts = len(emu.find("Microsoft.Storage/storageAccounts"))
    return Loaded(len(state["resources"]), accounts, vms)


def _mount_shares(emu: Emulator) -> None:
    for share in emu.find(SHARES, lambda r: r.properties.get("enabledProtocols") == "NFS"):
        account = emu.get(share.id.parent.parent) if share.id.parent and share.id.parent.parent else None
        tls = bool(account and account.properties.get("supportsHttpsTrafficOnly", True))
        emu.machines.share_added(share.id.names[0], share.id.name, tls=tls)
        for taken in (share.internal.get("snapshots") or {}).values():
            emu.machines.snapshot_restored(share.id.names[0], share.id.name, taken["directory"])


def _boot_vms(emu: Emulator) -> int:
    """Boot every VM that was running, side by side; returns how many VMs there are."""
    vms = emu.find(VMS)
    running = [vm for vm in vms if vm.internal.get("power") == "running"]

    def boot(vm: Resource) -> None:
        if emu.machines.unavailable is None:
            try:
                sandbox_of(emu, vm).boot(network_of(emu, vm))
            except SandboxError as error:
                log.warning("VM %s did not boot again: %s", vm.id.name, error)
                vm.internal["power"] = "stopped"
                return
        vm.internal["booted_at"] = time.monotonic()

    threads = [threading.Thread(target=boot, args=(vm,), name=f"boot-{vm.id.name}") for vm in running]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return len(vms)
