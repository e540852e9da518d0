"""`VmCloud` on Resource Manager, through azure-mgmt-compute and -network: VM facts, whether two
VNets reach each other, and scripts run as managed Run Commands (real exit code and output from
the instance view; a command that exists already is awaited or read, never run twice).

Imported only when a worker attaches or detaches: these SDKs take about a second to import."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.mgmt.compute.models import VirtualMachineRunCommand

from shared.domain.errors import Conflict, ErrorCode, NotReadyYet, TransientError
from shared.domain.mounting import ScriptRun, VmFacts, VmSummary

from .arm_errors import arm_code, arm_errors

if TYPE_CHECKING:
    from .arm import ArmClients

FINISHED = {"Succeeded", "Failed", "TimedOut", "Canceled"}
# How often a run is read while it goes: every 0.5 s for its first 5 s (a run that ends fast is
# seen ending), every 2 s until 30 s, then every 5 s: Azure refreshes a run's output about every
# 15 s, and each read spends the subscription's Compute reads (docs/scale.md).
POLLS = ((5, 0.5), (30, 2.0), (float("inf"), 5.0))
MAX_RUN_COMMANDS = 25  # per VM (azure-compute-docs run-command-overview.md)
LEFTOVER_AGE = timedelta(hours=1)


def _value(enum_or_text: Any) -> str:
    return str(getattr(enum_or_text, "value", enum_or_text) or "")


def _parts(resource_id: str) -> tuple[str, str]:
    """(resource group, name) of a resource id."""
    parts = resource_id.split("/")
    lowered = [p.lower() for p in parts]
    return parts[lowered.index("resourcegroups") + 1], parts[-1]


def _vnet_of(subnet_id: str) -> str:
    return subnet_id.split("/subnets/", maxsplit=1)[0]


class ArmVmCloud:
    def __init__(self, clients: ArmClients, stall_seconds: float = 90) -> None:
        self.clients = clients
        self.stall_seconds = stall_seconds

    def get_vm(self, group: str, name: str) -> VmFacts | None:
        with arm_errors(f"read VM {name}"):
            try:
                vm = self.clients.compute.virtual_machines.get(group, name, expand="instanceView")
            except ResourceNotFoundError:
                return None
            nics = vm.network_profile.network_interfaces if vm.network_profile else []
            primary = next((n for n in nics or [] if n.primary), (nics or [None])[0])
            vnet = address = ""
            if primary is not None and primary.id:
                nic_group, nic_name = _parts(primary.id)
                nic = self.clients.network.network_interfaces.get(nic_group, nic_name)
                subnet = nic.ip_configurations[0].subnet if nic.ip_configurations else None
                vnet = _vnet_of(str(subnet.id)) if subnet is not None and subnet.id else ""
                configs = nic.ip_configurations or []
                address = str(configs[0].private_ip_address or "") if configs else ""
        power = _power(vm)
        return VmFacts(
            name=name,
            resource_group=group,
            vm_id=str(vm.vm_id or ""),
            region=str(vm.location).replace(" ", "").lower(),
            admin_user=str(vm.os_profile.admin_username if vm.os_profile else ""),
            power_state=power,
            vnet_id=vnet,
            tags=dict(vm.tags or {}),
            time_created=vm.time_created,
            private_ip=address,
        )

    def list_vms(self) -> list[VmSummary]:
        """Two listings: the model (vmId, size, tags, creation time) and, with statusOnly, the
        power states; Azure's docs promise statusOnly only the run-time state, so neither is
        taken from the other."""
        with arm_errors("list the subscription's VMs"):
            found = list(self.clients.compute.virtual_machines.list_all())
            states = {
                str(vm.id).lower(): _power(vm)
                for vm in self.clients.compute.virtual_machines.list_all(status_only="true")
            }
        return [
            VmSummary(
                name=str(vm.name),
                resource_group=_parts(str(vm.id))[0],
                vm_id=str(vm.vm_id or ""),
                region=str(vm.location).replace(" ", "").lower(),
                size=_value(vm.hardware_profile.vm_size) if vm.hardware_profile else "",
                power_state=states.get(str(vm.id).lower(), ""),
                tags=dict(vm.tags or {}),
                time_created=vm.time_created,
            )
            for vm in found
        ]

    def endpoint_vnet(self, group: str, endpoint: str) -> str | None:
        with arm_errors(f"read private endpoint {endpoint}"):
            try:
                found = self.clients.network.private_endpoints.get(group, endpoint)
            except ResourceNotFoundError:
                return None
        return _vnet_of(str(found.subnet.id)) if found.subnet and found.subnet.id else None

    def vnets_connected(self, vnet_a: str, vnet_b: str) -> bool:
        if vnet_a.lower() == vnet_b.lower():
            return True
        return self._peered(vnet_a, vnet_b) and self._peered(vnet_b, vnet_a)

    def _peered(self, vnet: str, remote: str) -> bool:
        group, name = _parts(vnet)
        with arm_errors(f"read the peerings of VNet {name}"):
            try:
                peerings = list(self.clients.network.virtual_network_peerings.list(group, name))
            except ResourceNotFoundError:
                return False
        return any(
            p.remote_virtual_network is not None
            and str(p.remote_virtual_network.id).lower() == remote.lower()
            and _value(p.peering_state) == "Connected"
            and p.allow_virtual_network_access is not False
            for p in peerings
        )

    def run_script(
        self, vm: VmFacts, name: str, script: str, parameters: dict[str, str], timeout_seconds: int,
        tags: dict[str, str] | None = None, protected: dict[str, str] | None = None,
    ) -> ScriptRun:
        """Start the Run Command `name` unless it exists (a command is never run twice), then wait
        for its end. It runs asynchronously (the PUT returns once the script started), so a VM
        rebooting under it cannot hold a request open: a run whose output stops changing for
        `stall_seconds` while it says Running comes back `stalled` (its handler is gone)."""
        with arm_errors(f"run {name} on VM {vm.name}"), agent_errors(vm):
            existing = self._read(vm, name)
            if existing is None:
                body = VirtualMachineRunCommand(
                    {
                        "location": vm.region,
                        "tags": dict(tags or {}),
                        "properties": {
                            "source": {"script": script},
                            "timeoutInSeconds": timeout_seconds,
                            "asyncExecution": True,
                            "parameters": [{"name": k, "value": v} for k, v in parameters.items()],
                            "protectedParameters": [
                                {"name": k, "value": v} for k, v in (protected or {}).items()
                            ],
                        },
                    }
                )
                self._put(vm, name, body)
            return self._await(vm, name, timeout_seconds)

    def _put(self, vm: VmFacts, name: str, body: VirtualMachineRunCommand) -> None:
        """The PUT; a VM at Azure's limit of 25 managed run commands first loses the service's
        leftovers older than an hour, then is an error that says so."""
        commands = self.clients.compute.virtual_machine_run_commands
        for attempt in (1, 2):
            try:
                commands.begin_create_or_update(vm.resource_group, vm.name, name, body).result()
                return
            except HttpResponseError as error:
                if "maximum number of managed run commands" not in str(error.message).lower():
                    raise
                if attempt == 2 or not self.sweep(vm):
                    raise Conflict(
                        f"VM {vm.name} holds {MAX_RUN_COMMANDS} managed run commands, Azure's limit, "
                        "and none is a leftover of this service.",
                        causes=[str(error.message)[:300]],
                        code=ErrorCode.CONFLICT,
                        try_hint=f"delete run commands the VM no longer needs (az vm run-command list "
                        f"-g {vm.resource_group} --vm-name {vm.name}), then submit the request again",
                    ) from error

    def _await(self, vm: VmFacts, name: str, timeout_seconds: int) -> ScriptRun:
        started = time.monotonic()
        deadline = started + timeout_seconds + 60
        seen, changed_at = "", started
        while True:
            run = self._read(vm, name)
            if run is None:
                raise TransientError(f"Run Command {name} on {vm.name} disappeared; it is started again.")
            if run.state in FINISHED:
                return run
            now = time.monotonic()
            if run.output + run.error != seen:
                seen, changed_at = run.output + run.error, now
            if now - changed_at > self.stall_seconds or now > deadline:
                return replace(run, stalled=True)
            time.sleep(next(pause for until, pause in POLLS if now - started < until))

    def sweep(self, vm: VmFacts) -> int:
        """Delete the service's run commands (`azlin-*`) that ended, or started, over an hour ago:
        what a crash or an abandoned operation left behind. Returns how many went."""
        cutoff = datetime.now(UTC) - LEFTOVER_AGE
        stale = []
        for command in self._list(vm):
            view = command.instance_view
            moment = (view.end_time or view.start_time) if view is not None else None
            if str(command.name).startswith("azlin-") and moment is not None and moment < cutoff:
                stale.append(str(command.name))
        for name in stale:
            self.delete_run(vm, name)
        return len(stale)

    def delete_runs(self, vm: VmFacts, prefix: str) -> None:
        """Delete every run command of the VM whose name starts with `prefix` (an operation's)."""
        for command in self._list(vm):
            if str(command.name).startswith(prefix):
                self.delete_run(vm, str(command.name))

    def _list(self, vm: VmFacts) -> list[Any]:
        commands = self.clients.compute.virtual_machine_run_commands
        with arm_errors(f"list the run commands of VM {vm.name}"):
            return list(commands.list_by_virtual_machine(vm.resource_group, vm.name, expand="instanceView"))

    def _read(self, vm: VmFacts, name: str) -> ScriptRun | None:
        try:
            found = self.clients.compute.virtual_machine_run_commands.get_by_virtual_machine(
                vm.resource_group, vm.name, name, expand="instanceView"
            )
        except ResourceNotFoundError:
            return None
        view = found.instance_view
        state = _value(view.execution_state) if view is not None else ""
        if _value(found.provisioning_state) == "Failed" and state in ("", "Pending", "Unknown"):
            return None  # the extension never started it (e.g. the agent was not ready): run it again
        if view is None:
            return ScriptRun("Pending", None, "", "")
        return ScriptRun(state or "Pending", view.exit_code, view.output or "", view.error or "")

    def delete_run(self, vm: VmFacts, name: str) -> None:
        with arm_errors(f"delete Run Command {name} on VM {vm.name}"):
            self.clients.compute.virtual_machine_run_commands.begin_delete(
                vm.resource_group, vm.name, name
            ).result()


@contextmanager
def agent_errors(vm: VmFacts) -> Iterator[None]:
    """A VM that is starting or stopped: retry later, or say how to fix it."""
    try:
        yield
    except HttpResponseError as error:
        code = arm_code(error)
        if code in ("VMAgentNotReady", "VMAgentStatusCommunicationError"):
            raise NotReadyYet(
                f"The VM agent of {vm.name} is not ready yet.",
                causes=[str(error.message)],
                retry_after=15,
                try_hint="the operation is retried; a new VM's agent is ready within minutes",
            ) from error
        # Compute's throttling is OperationNotAllowed too, with 429 (troubleshooting-throttling-errors.md):
        # that one is left to arm_errors, which makes it Throttled with its Retry-After.
        if code == "OperationNotAllowed" and error.status_code != 429:
            raise Conflict(
                f"VM {vm.name} is not running.",
                causes=[str(error.message)],
                code=ErrorCode.CONFLICT,
                try_hint=f"start it (az vm start -n {vm.name}), then submit the request again",
            ) from error
        raise


def _power(vm: Any) -> str:
    """"running", "deallocated", ... from the instance view's PowerState status; "" if absent."""
    statuses = vm.instance_view.statuses if vm.instance_view and vm.instance_view.statuses else []
    return next((str(s.code).split("/", 1)[1] for s in statuses if str(s.code).startswith("PowerState/")), "")
