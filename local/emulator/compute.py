"""Microsoft.Compute: virtual machines backed by sandbox VMs, their power actions, managed Run
Commands (`virtualMachines/{vm}/runCommands/{name}`) and the older `runCommand` action. Scripts
really run, as root, inside the VM; parameters become environment variables; output and error
keep their last 4 KB; a VM's agent is not ready for its first seconds after each boot."""

from __future__ import annotations

import copy
import re
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ClassVar

from local.emulator.arm import ArmError, Resource, ResourceId, bad_request, new_guid, now, reference
from local.emulator.kinds import Action, ResourceKind, Shape, Views, require
from local.emulator.network import NICS, _referenced, nfs_reachability, nic_address, vnet_of_subnet
from local.emulator.traffic import RunInterrupt
from local.sandbox import Execution, Network, SandboxError, SandboxVm

if TYPE_CHECKING:
    from local.emulator.core import Emulator

VMS = "Microsoft.Compute/virtualMachines"
RUN_COMMANDS = f"{VMS}/runCommands"
LINUX_USER = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")
# Names Azure refuses for the admin user of a Linux VM.
RESERVED_USERS = {
    "administrator",
    "admin",
    "user",
    "user1",
    "test",
    "user2",
    "test1",
    "user3",
    "admin1",
    "1",
    "123",
    "a",
    "actuser",
    "adm",
    "admin2",
    "aspnet",
    "backup",
    "console",
    "david",
    "guest",
    "john",
    "owner",
    "root",
    "server",
    "sql",
    "support",
    "support_388945a0",
    "sys",
    "test2",
    "test3",
    "user4",
    "user5",
    "bin",
    "daemon",
    "nobody",
    "sshd",
}
# A Linux VM's host name (osProfile.computerName, the VM's name when none is given): Compute refuses
# one over 64 characters or with any of these characters, 400 InvalidParameter in these words
# (hashicorp/terraform#15913, MicrosoftDocs/azure-docs#5601). resource-name-rules.md
# (Microsoft.Compute, virtualMachines) adds spaces and control characters, and no period or hyphen at
# the end (the words of that refusal are the emulator's: Azure's are not documented).
LINUX_HOST_NAME_MAX = 64
HOST_NAME_FORBIDDEN = frozenset("`~!@#$%^&*()=+_[]{}\\|;:'\",<>/?")
HOST_NAME_REFUSED = (
    "Linux host name cannot exceed 64 characters in length or contain the following characters: "
    "` ~ ! @ # $ % ^ & * ( ) = + _ [ ] { } \\ | ; : ' \" , < > / ?."
)
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
DEFAULT_TIMEOUT_SECONDS = 90 * 60
MAX_RUN_COMMANDS = 25
NOT_RUNNING = ("OperationNotAllowed", "The operation requires the VM to be running (or set to run).")


def _iso(moment: float | None) -> str | None:
    return None if moment is None else datetime.fromtimestamp(moment, UTC).isoformat(timespec="seconds")


def linux_host_name_problem(name: str) -> str | None:
    """Why Azure refuses `name` as a Linux VM's host name, or None when it takes it."""
    if len(name) > LINUX_HOST_NAME_MAX or any(
        c in HOST_NAME_FORBIDDEN or c.isspace() or not c.isprintable() for c in name
    ):
        return HOST_NAME_REFUSED
    if name.endswith((".", "-")):
        return "Linux host name cannot end with a period or a hyphen."
    return None


class VirtualMachines(ResourceKind):
    type_name = VMS
    put_shape = Shape.ASYNC_OPERATION
    delete_shape = Shape.ASYNC_OPERATION

    def validate(
        self, emu: Emulator, rid: ResourceId, body: dict[str, Any], existing: Resource | None
    ) -> dict[str, Any]:
        stored = super().validate(emu, rid, body, existing)
        props = stored["properties"]
        require(
            bool((props.get("hardwareProfile") or {}).get("vmSize")),
            "InvalidParameter",
            "Required parameter 'hardwareProfile.vmSize' is missing (null).",
        )
        os_profile = props.get("osProfile") or {}
        if existing is not None:
            before = existing.properties.get("osProfile", {})
            for field in ("adminUsername", "computerName"):
                if field in os_profile and os_profile[field] != before.get(field):
                    raise ArmError(
                        409,
                        "PropertyChangeNotAllowed",
                        f"Changing property 'osProfile.{field}' is not allowed.",
                    )
            props["osProfile"] = before
        else:
            props["osProfile"] = {
                k: v for k, v in os_profile.items() if k not in ("adminPassword", "customData")
            }
            props["osProfile"].setdefault("computerName", rid.name)
            self._validate_os_profile(rid, props["osProfile"])
        nics = (props.get("networkProfile") or {}).get("networkInterfaces") or []
        require(
            bool(nics),
            "InvalidParameter",
            "At least one network interface is required: 'networkProfile.networkInterfaces'.",
        )
        for nic_ref in nics:
            nic = _referenced(emu, nic_ref, rid, NICS, join=f"{NICS}/join/action")
            owner = nic.internal.get("virtual_machine")
            if owner and owner.lower() != rid.key:
                raise bad_request(
                    "NicInUse", f"Network Interface {nic.id} is used by existing resource {owner}."
                )
        return stored

    @staticmethod
    def _validate_os_profile(rid: ResourceId, os_profile: dict[str, Any]) -> None:
        problem = linux_host_name_problem(str(os_profile["computerName"]))
        require(problem is None, "InvalidParameter", str(problem))
        admin = str(os_profile.get("adminUsername") or "")
        require(
            bool(admin), "InvalidParameter", "Required parameter 'osProfile.adminUsername' is missing (null)."
        )
        require(
            bool(LINUX_USER.match(admin)) and admin.lower() not in RESERVED_USERS,
            "InvalidParameter",
            "The Admin Username specified is not allowed.",
        )
        keys = ((os_profile.get("linuxConfiguration") or {}).get("ssh") or {}).get("publicKeys") or []
        for key in keys:
            require(
                key.get("path") == f"/home/{admin}/.ssh/authorized_keys",
                "InvalidParameter",
                f"The value of parameter linuxConfiguration.ssh.publicKeys.path is invalid: it must be "
                f"/home/{admin}/.ssh/authorized_keys.",
            )
            require(
                str(key.get("keyData", "")).startswith(("ssh-", "ecdsa-")),
                "InvalidParameter",
                "The value of parameter linuxConfiguration.ssh.publicKeys.keyData is invalid.",
            )

    def provision(self, emu: Emulator, resource: Resource, created: bool) -> None:
        for nic_ref in resource.properties["networkProfile"]["networkInterfaces"]:
            nic = emu.get(str(reference(nic_ref)))
            if nic is not None:
                nic.internal["virtual_machine"] = str(resource.id)
        if not created:
            return
        resource.internal.update({"vm_id": new_guid(), "created": now(), "power": "starting"})
        os_profile = resource.properties["osProfile"]
        keys = [
            k["keyData"]
            for k in ((os_profile.get("linuxConfiguration") or {}).get("ssh") or {}).get("publicKeys", [])
        ]
        if emu.machines.unavailable is None:
            vm = sandbox_of(emu, resource)
            try:
                vm.create(os_profile["adminUsername"], keys, network_of(emu, resource))
            except SandboxError as error:
                raise ArmError(
                    500, "OSProvisioningInternalError", f"OS provisioning failed: {error}"
                ) from None
        resource.internal.update({"power": "running", "booted_at": time.monotonic()})

    def deleted(self, emu: Emulator, resource: Resource) -> None:
        for nic in emu.find(
            NICS, lambda n: str(n.internal.get("virtual_machine", "")).lower() == resource.id.key
        ):
            nic.internal.pop("virtual_machine", None)
        emu.machines.forget(resource.id.key)

    def view(self, emu: Emulator, resource: Resource, query: dict[str, Any]) -> dict[str, Any]:
        body = super().view(emu, resource, query)
        props = body["properties"]
        props["vmId"] = resource.internal.get("vm_id", "")
        if resource.internal.get("created"):
            props["timeCreated"] = resource.internal["created"]
        props.setdefault(
            "storageProfile", {"osDisk": {"osType": "Linux", "createOption": "FromImage"}, "dataDisks": []}
        )
        # A VM listing with statusOnly=true carries each VM's instance view (power state).
        expanded = "instanceview" in str(query.get("$expand", "")).lower()
        if expanded or str(query.get("statusOnly")).lower() == "true":
            props["instanceView"] = instance_view(emu, resource)
        return body

    views: ClassVar[Views] = {"instanceview": lambda emu, vm, query: instance_view(emu, vm)}


def sandbox_of(emu: Emulator, vm: Resource) -> SandboxVm:
    return emu.machines.vm(vm.id.key, vm.id.name)


def primary_nic(emu: Emulator, vm: Resource) -> Resource | None:
    nics = vm.properties.get("networkProfile", {}).get("networkInterfaces", [])
    primary = next((n for n in nics if (n.get("properties") or {}).get("primary")), nics[0] if nics else None)
    return emu.get(str(reference(primary))) if primary else None


def vm_vnet(emu: Emulator, vm: Resource) -> str:
    nic = primary_nic(emu, vm)
    if nic is None:
        return ""
    subnet = nic.properties["ipConfigurations"][0]["properties"]["subnet"]
    return vnet_of_subnet(str(reference(subnet)))


def network_of(emu: Emulator, vm: Resource) -> Network:
    """What Azure's network lets a VM reach now: given to everything that runs in it."""
    reachable = nfs_reachability(emu, vm_vnet(emu, vm), vm_address(emu, vm))
    return Network(reachable, emu.config.nfs_timeout_seconds)


def vm_address(emu: Emulator, vm: Resource) -> str:
    """The private IP address of the VM's primary NIC."""
    nic = primary_nic(emu, vm)
    return nic_address(nic) if nic is not None else ""


def agent_ready(emu: Emulator, vm: Resource) -> bool:
    booted = vm.internal.get("booted_at")
    return booted is not None and time.monotonic() - booted >= emu.config.agent_ready_seconds


def instance_view(emu: Emulator, vm: Resource) -> dict[str, Any]:
    power = vm.internal.get("power", "starting")
    ready = agent_ready(emu, vm) and power == "running"
    agent_status = (
        {
            "code": "ProvisioningState/succeeded",
            "level": "Info",
            "displayStatus": "Ready",
            "message": "GuestAgent is running and accepting new configurations.",
            "time": now(),
        }
        if ready
        else {
            "code": "ProvisioningState/Unavailable",
            "level": "Warning",
            "displayStatus": "Not Ready",
            "message": "VM status blob is found but not yet populated.",
            "time": now(),
        }
    )
    state = vm.properties.get("provisioningState", "Succeeded")
    return {
        "computerName": vm.properties.get("osProfile", {}).get("computerName", vm.id.name),
        "osName": "ubuntu",
        "osVersion": "22.04",
        "vmAgent": {"vmAgentVersion": "2.9.1.1", "statuses": [agent_status]},
        "statuses": [
            {
                "code": f"ProvisioningState/{state.lower()}",
                "level": "Info",
                "displayStatus": f"Provisioning {state.lower()}",
                "time": now(),
            },
            {"code": f"PowerState/{power}", "level": "Info", "displayStatus": f"VM {power}"},
        ],
    }


def _require_running(vm: Resource) -> None:
    if vm.internal.get("power") != "running":
        raise ArmError(409, *NOT_RUNNING)


def _require_agent(emu: Emulator, vm: Resource) -> None:
    if not agent_ready(emu, vm):
        raise ArmError(
            409,
            "VMAgentNotReady",
            f"VM agent on VM '{vm.id.name}' has not reported latest status yet. "
            "The VM may still be starting; retry in a few seconds.",
        )
    if emu.machines.unavailable is not None:
        raise ArmError(
            409, "VMAgentNotReady", f"Sandbox VMs are unavailable here: {emu.machines.unavailable}"
        )


PowerAction = Callable[["Emulator", Resource, dict[str, Any]], dict[str, Any] | None]


def _power(state: str, boot: bool) -> PowerAction:
    def run(emu: Emulator, vm: Resource, body: dict[str, Any]) -> dict[str, Any] | None:
        sandbox = sandbox_of(emu, vm)
        sandbox.shutdown()
        vm.internal["power"] = state
        if boot:
            if emu.machines.unavailable is None:
                sandbox.boot(network_of(emu, vm))
            vm.internal.update({"power": "running", "booted_at": time.monotonic()})
        return None

    return run


def _restart_check(emu: Emulator, vm: Resource, body: dict[str, Any]) -> None:
    _require_running(vm)


def _start(emu: Emulator, vm: Resource, body: dict[str, Any]) -> dict[str, Any] | None:
    """Start powers on a stopped or deallocated VM; a running one is left running, not rebooted
    (a reboot is Restart; VirtualMachines_Start in the Compute REST spec: "start a virtual machine")."""
    if vm.internal.get("power") == "running":
        return None
    return _power("running", boot=True)(emu, vm, body)


def _power_off_check(emu: Emulator, vm: Resource, body: dict[str, Any]) -> None:
    # Compute's PowerOff: "not allowed on a virtual machine that is being deallocated or has already
    # been deallocated" (REST spec, 2024-07-01 and later); Azure's answer is a 409 in these words
    # (microsoft/AzureTRE#4135, hashicorp/terraform-provider-azurerm#28218).
    if vm.internal.get("power") == "deallocated":
        raise ArmError(
            409,
            "OperationNotAllowed",
            f"Operation 'powerOff' is not allowed on VM '{vm.id.name}' since the VM is either deallocated "
            "or marked to be deallocated.",
        )


VirtualMachines.actions = {
    "start": Action(Shape.ASYNC_OPERATION, _start),
    "restart": Action(Shape.ASYNC_OPERATION, _power("running", boot=True), _restart_check),
    "poweroff": Action(Shape.ASYNC_OPERATION, _power("stopped", boot=False), _power_off_check),
    "deallocate": Action(Shape.ASYNC_OPERATION, _power("deallocated", boot=False)),
}


# -- managed Run Command --------------------------------------------------------------------------


def _parameters(props: dict[str, Any], field: str) -> dict[str, str]:
    """The named parameters the script gets as environment variables. One whose value is empty
    is not delivered at all (run-command-handler-linux internal/exec/exec.go,
    SetEnvironmentVariables: `if value != ""`): the script sees it unset."""
    found: dict[str, str] = {}
    for parameter in props.get(field) or []:
        name = str(parameter.get("name", ""))
        require(
            bool(ENV_NAME.match(name)),
            "InvalidParameter",
            f"Run command parameter name '{name}' in '{field}' is not a valid environment variable name.",
        )
        value = str(parameter.get("value", ""))
        if value:
            found[name] = value
    return found


def _tail(text: str, limit: int) -> str:
    """The end of `text` that fits in `limit` bytes of UTF-8, cut between characters."""
    data = text.encode()
    return data[-limit:].decode(errors="ignore") if len(data) > limit else text


class RunCommands(ResourceKind):
    type_name = RUN_COMMANDS
    put_shape = Shape.ASYNC_OPERATION
    location_on_create = True
    delete_shape = Shape.LOCATION

    def validate(
        self, emu: Emulator, rid: ResourceId, body: dict[str, Any], existing: Resource | None
    ) -> dict[str, Any]:
        vm = emu.get(rid.parent) if rid.parent else None
        assert vm is not None
        stored = super().validate(emu, rid, body, existing)
        props = stored["properties"]
        source = props.get("source") or {}
        given = [k for k in ("script", "scriptUri", "commandId") if source.get(k)]
        require(
            len(given) == 1,
            "InvalidParameter",
            "Exactly one of 'source.script', 'source.scriptUri' and 'source.commandId' must be given.",
        )
        require(
            given[0] == "script",
            "InvalidParameter",
            "The emulator runs inline scripts only ('source.script'); it does not download 'scriptUri' or "
            "run built-in 'commandId' commands.",
        )
        _parameters(props, "parameters")
        _parameters(props, "protectedParameters")
        timeout = props.get("timeoutInSeconds", 0)
        require(
            isinstance(timeout, int) and timeout >= 0,
            "InvalidParameter",
            "'timeoutInSeconds' must be a whole number of seconds, 0 or more.",
        )
        runner = props.get("runAsUser")
        require(
            runner is None or bool(LINUX_USER.match(str(runner))),
            "InvalidParameter",
            f"'runAsUser' {runner!r} is not a valid Linux user name.",
        )
        _require_running(vm)
        if existing is None:
            held = [c for c in emu.children(vm.id) if c.type == RUN_COMMANDS]
            # "The maximum number of allowed Managed Run Commands is currently limited to 25"
            # (azure-compute-docs run-command-overview.md); the words are Azure's
            # (MicrosoftDocs/azure-docs issue 117976), the code and status are not documented.
            if len(held) >= MAX_RUN_COMMANDS:
                raise ArmError(
                    409,
                    "OperationNotAllowed",
                    f"The maximum number of managed Run commands (max={MAX_RUN_COMMANDS}, "
                    f"current={len(held)}) has been exceeded. Use fewer Run commands and retry the "
                    "request. To list Run commands, refer: https://aka.ms/RunCommandManaged#list-all-"
                    "deployed-runcommand-resources-on-a-vm-1 and then delete a Run command.",
                )
        return stored

    def provision(self, emu: Emulator, resource: Resource, created: bool) -> None:
        vm = emu.get(resource.id.parent) if resource.id.parent else None
        assert vm is not None
        definition = copy.deepcopy(resource.properties)
        definition.pop("provisioningState", None)
        if (
            resource.internal.get("definition") == definition
            and resource.internal.get("execution") is not None
        ):
            return  # the same command again: Azure does not run it a second time
        previous: Execution | None = resource.internal.get("execution")
        if previous is not None:
            previous.cancel()
        _require_agent(emu, vm)
        resource.internal["execution"] = None
        sandbox = sandbox_of(emu, vm)
        props = resource.properties
        env = {**_parameters(props, "parameters"), **_parameters(props, "protectedParameters")}
        timeout = props.get("timeoutInSeconds") or DEFAULT_TIMEOUT_SECONDS
        try:
            execution = sandbox.start(
                props["source"]["script"],
                env,
                network_of(emu, vm),
                timeout=timeout,
                run_as=props.get("runAsUser"),
                command_name=resource.id.name,
            )
        except SandboxError as error:
            raise ArmError(409, *NOT_RUNNING) from error
        resource.internal.update({"execution": execution, "definition": definition})
        interrupt = emu.faults.take_interrupt(resource.id.name)
        if interrupt is not None:
            threading.Thread(target=_interrupt, args=(emu, vm, execution, interrupt), daemon=True,
                             name=f"interrupt-{resource.id.name}").start()
        if props.get("asyncExecution"):
            return
        execution.done.wait()
        if props.get("treatFailureAsDeploymentFailure") and execution_state(execution) != "Succeeded":
            view = run_command_instance_view(emu, resource)
            raise ArmError(
                409,
                "VMExtensionProvisioningError",
                f"Run command {resource.id.name} {view['executionState'].lower()}: exit code "
                f"{view['exitCode']}. Error: {view['error']}",
            )

    def deleted(self, emu: Emulator, resource: Resource) -> None:
        execution: Execution | None = resource.internal.get("execution")
        if execution is not None:
            execution.cancel()

    def view(self, emu: Emulator, resource: Resource, query: dict[str, Any]) -> dict[str, Any]:
        body = super().view(emu, resource, query)
        body["properties"].pop("protectedParameters", None)
        body["properties"].setdefault("asyncExecution", False)
        body["properties"].setdefault("treatFailureAsDeploymentFailure", False)
        if "instanceview" in str(query.get("$expand", "")).lower():
            body["properties"]["instanceView"] = run_command_instance_view(emu, resource)
        return body


def _interrupt(emu: Emulator, vm: Resource, execution: Execution, interrupt: RunInterrupt) -> None:
    """Wait for the marker in the run's output, then kill the script as a timeout does, or
    restart the VM under it."""
    while not execution.done.is_set():
        if interrupt.marker in execution.stdout() or interrupt.marker in execution.stderr():
            interrupt.fired += 1
            if interrupt.action == "timeout":
                execution.timed_out = True
                execution.kill_script()
            else:
                _power("running", boot=True)(emu, vm, {})
            return
        time.sleep(0.01)


def execution_state(execution: Execution | None) -> str:
    """As the Linux handler reports it (run-command-handler-linux internal/cmds/commandProcessor.go):
    a script killed by its timeout is `Failed` with exit code -1, never `TimedOut` (declared in
    internal/types/instanceview.go, never set); a run whose VM went down under it stays `Running`:
    only the handler writes its status, and after the reboot it finds the sequence number
    processed and runs nothing (internal/cmds/cmds.go, checkAndSaveSeqNum)."""
    if execution is None:
        return "Pending"
    if execution.lost or not execution.done.is_set():
        return "Running"
    if execution.canceled:
        return "Canceled"
    return "Succeeded" if execution.exit_code == 0 and not execution.timed_out else "Failed"


MESSAGES = {
    "Pending": "Execution is pending",
    "Running": "Execution in progress",
    "Succeeded": "Execution completed",
    "Failed": "Execution completed",
    "Canceled": "Execution canceled",
}
# The handler's words for a script its timeout killed (internal/exec/exec.go; exec_test.go).
KILLED_MESSAGE = "Execution failed: failed to execute command: command terminated with exit status=-1"


def run_command_instance_view(emu: Emulator, resource: Resource) -> dict[str, Any]:
    execution: Execution | None = resource.internal.get("execution")
    state = execution_state(execution)
    limit = emu.config.run_command_output_bytes
    view: dict[str, Any] = {
        "executionState": state,
        "executionMessage": MESSAGES[state],
        "output": "",
        "error": "",
        "statuses": None,
    }
    if execution is not None:
        view.update(
            {
                "output": _tail(execution.stdout(), limit),
                "error": _tail(execution.stderr(), limit),
                "startTime": _iso(execution.started_at),
                "endTime": None if state == "Running" else _iso(execution.ended_at),
            }
        )
        if state == "Failed" and execution.timed_out:
            view.update({"exitCode": -1, "executionMessage": KILLED_MESSAGE})
        elif state in ("Succeeded", "Failed"):
            view["exitCode"] = execution.exit_code
        elif state == "Canceled":
            view["exitCode"] = -1
    return view


# -- the older runCommand action ------------------------------------------------------------------


def _run_command_check(emu: Emulator, vm: Resource, body: dict[str, Any]) -> None:
    _require_running(vm)
    require(
        body.get("commandId") == "RunShellScript",
        "InvalidParameter",
        "The emulator supports commandId 'RunShellScript' only.",
    )
    require(
        isinstance(body.get("script"), list) and bool(body["script"]),
        "InvalidParameter",
        "'script' must be a non-empty list of lines.",
    )
    _parameters(body, "parameters")
    with emu.lock:
        if vm.internal.get("action_running"):
            raise ArmError(
                409,
                "Conflict",
                "Run command extension execution is in progress. Please wait for "
                "completion before invoking a run command.",
            )
        vm.internal["action_running"] = True


def _run_command_action(emu: Emulator, vm: Resource, body: dict[str, Any]) -> dict[str, Any]:
    try:
        _require_agent(emu, vm)
        sandbox = sandbox_of(emu, vm)
        script = "\n".join(str(line) for line in body["script"]) + "\n"
        execution = sandbox.start(
            script,
            _parameters(body, "parameters"),
            network_of(emu, vm),
            timeout=DEFAULT_TIMEOUT_SECONDS,
            command_name="RunShellScript",
        )
        execution.done.wait()
    except SandboxError as error:
        raise ArmError(409, *NOT_RUNNING) from error
    finally:
        vm.internal["action_running"] = False
    limit = emu.config.run_command_output_bytes
    # The exit code is not reported by this API: success means the extension ran the script.
    message = (
        f"Enable succeeded: \n[stdout]\n{_tail(execution.stdout(), limit)}\n[stderr]\n"
        f"{_tail(execution.stderr(), limit)}\n"
    )
    return {
        "value": [
            {
                "code": "ProvisioningState/succeeded",
                "level": "Info",
                "displayStatus": "Provisioning succeeded",
                "message": message,
            }
        ]
    }


VirtualMachines.actions = {
    **VirtualMachines.actions,
    "runcommand": Action(Shape.ASYNC_OPERATION, _run_command_action, _run_command_check),
}
