"""Microsoft.Compute through the real azure-mgmt-compute client: VMs with their instance view and
power actions, managed Run Commands whose scripts really run in the sandbox VM (exit code, output
truncated as Azure does, parameters as environment variables, timeouts, cancel, async execution),
and the older runCommand action."""

from __future__ import annotations

import time

import pytest
from azure.core.exceptions import HttpResponseError, ResourceExistsError
from azure.mgmt.compute.models import (
    HardwareProfile,
    LinuxConfiguration,
    NetworkInterfaceReference,
    NetworkProfile,
    OSProfile,
    RunCommandInput,
    RunCommandInputParameter,
    SshConfiguration,
    SshPublicKey,
    VirtualMachine,
    VirtualMachineRunCommand,
    VirtualMachineRunCommandScriptSource,
)

from tests.emulator.conftest import REGION, Azure, needs_sandbox

pytestmark = needs_sandbox
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOb laptop@example"


def create_vm(
    azure: Azure, name: str = "vm1", admin: str = "azureuser", computer_name: str | None = None
) -> VirtualMachine:
    subnet = azure.network("vnet1")
    nic = azure.rest.put(
        f"{azure.group_path()}/providers/Microsoft.Network/networkInterfaces/{name}-nic",
        {
            "location": REGION,
            "properties": {"ipConfigurations": [{"name": "ip", "properties": {"subnet": {"id": subnet}}}]},
        },
    )
    return azure.clients.compute.virtual_machines.begin_create_or_update(
        azure.group,
        name,
        VirtualMachine(
            location=REGION,
            tags={"azlin-storage": "st1"},
            hardware_profile=HardwareProfile(vm_size="Standard_B2s"),
            os_profile=OSProfile(
                computer_name=computer_name,
                admin_username=admin,
                admin_password="never-echoed",
                linux_configuration=LinuxConfiguration(
                    ssh=SshConfiguration(
                        public_keys=[SshPublicKey(path=f"/home/{admin}/.ssh/authorized_keys", key_data=KEY)]
                    )
                ),
            ),
            network_profile=NetworkProfile(
                network_interfaces=[NetworkInterfaceReference(id=nic["id"], primary=True)]
            ),
        ),
    ).result()


def run_command(
    azure: Azure, script: str, name: str = "rc1", vm: str = "vm1", **properties: object
) -> VirtualMachineRunCommand:
    parameters = properties.pop("parameters", {})
    assert isinstance(parameters, dict)
    azure.clients.compute.virtual_machine_run_commands.begin_create_or_update(
        azure.group,
        vm,
        name,
        VirtualMachineRunCommand(
            location=REGION,
            source=VirtualMachineRunCommandScriptSource(script=script),
            parameters=[RunCommandInputParameter(name=k, value=v) for k, v in parameters.items()],
            **properties,
        ),
    ).result()
    return azure.clients.compute.virtual_machine_run_commands.get_by_virtual_machine(
        azure.group, vm, name, expand="instanceView"
    )


def test_vm_create_reports_identity_admin_and_instance_view(azure: Azure) -> None:
    vm = create_vm(azure)
    assert vm.provisioning_state == "Succeeded"
    assert len(vm.vm_id) == 36 and vm.time_created is not None
    assert vm.os_profile.admin_username == "azureuser" and vm.os_profile.admin_password is None
    assert vm.tags == {"azlin-storage": "st1"}
    view = azure.clients.compute.virtual_machines.instance_view(azure.group, "vm1")
    assert [s.code for s in view.statuses] == ["ProvisioningState/succeeded", "PowerState/running"]
    assert view.vm_agent.statuses[0].display_status == "Ready"
    expanded = azure.clients.compute.virtual_machines.get(azure.group, "vm1", expand="instanceView")
    assert expanded.instance_view.computer_name == "vm1"


def test_admin_user_is_uid_1000_with_the_given_key_and_no_user_of_this_machine(azure: Azure) -> None:
    create_vm(azure)
    view = run_command(
        azure,
        'id azureuser\nstat -c "%U %a" /home/azureuser/.ssh/authorized_keys\n'
        "cat /home/azureuser/.ssh/authorized_keys\nawk -F: '$3>=1000 && $3<60000 {print $1}' /etc/passwd\n"
        "ls /home\n",
    ).instance_view
    assert view.exit_code == 0, view.error
    assert view.output.splitlines() == [
        "uid=1000(azureuser) gid=1000(azureuser) groups=1000(azureuser),27(sudo)",
        "azureuser 600",
        KEY,
        "azureuser",
        "azureuser",
    ]


def test_reserved_admin_names_and_wrong_key_paths_are_refused(azure: Azure) -> None:
    for admin in ("root", "admin"):
        with pytest.raises(HttpResponseError) as refused:
            create_vm(azure, name=f"vm-{admin}", admin=admin)
        assert refused.value.error.code == "InvalidParameter"


def test_a_host_name_linux_refuses_is_refused_and_the_vm_name_is_the_default_one(azure: Azure) -> None:
    for name in ("Bad_Name!", "a" * 65, "ends-with-"):
        with pytest.raises(HttpResponseError) as refused:
            create_vm(azure, name=name)
        assert (refused.value.status_code, refused.value.error.code) == (400, "InvalidParameter")
        assert "Linux host name cannot" in refused.value.error.message
    # The rule is the host name's: a resource name with an underscore and a host name without one
    # is a VM.
    made = create_vm(azure, name="with_underscore", computer_name="with-hyphen")
    assert made.os_profile.computer_name == "with-hyphen"


def test_run_command_reports_exit_code_output_and_error(azure: Azure) -> None:
    create_vm(azure)
    view = run_command(
        azure,
        'echo "to stdout: $GREETING"\necho "to stderr" >&2\nexit 3\n',
        parameters={"GREETING": "hello; $(rm -rf /) 'quoted'"},
    ).instance_view
    assert view.execution_state == "Failed" and view.exit_code == 3
    assert view.output == "to stdout: hello; $(rm -rf /) 'quoted'\n"
    assert view.error == "to stderr\n"
    assert view.start_time is not None and view.end_time is not None
    assert view.execution_message == "Execution completed"


def test_run_command_keeps_the_last_4096_bytes(azure: Azure) -> None:
    create_vm(azure)
    view = run_command(azure, "head -c 5000 /dev/zero | tr '\\0' a\necho END\n").instance_view
    assert len(view.output.encode()) == 4096 and view.output.endswith("aaaaEND\n")


def test_run_command_runs_in_the_agent_directory_as_root_or_as_run_as_user(azure: Azure) -> None:
    create_vm(azure)
    view = run_command(azure, "pwd\nid -u\n").instance_view
    assert view.output.splitlines() == ["/var/lib/waagent/run-command-handler/download/rc1/0", "0"]
    as_user = run_command(azure, "id -un\n", name="rc2", run_as_user="azureuser").instance_view
    assert as_user.output == "azureuser\n"


def test_run_command_timeout_kills_only_the_script_and_reports_failed_minus_one(azure: Azure) -> None:
    # run-command-handler-linux: exec.CommandContext SIGKILLs the script's own process (no
    # process group), the state is Failed with exit code -1, never TimedOut; children live on.
    create_vm(azure)
    started = time.monotonic()
    script = "echo started\nsleep 41 &\ntrap 'echo trapped' EXIT\nsleep 30\necho never\n"
    view = run_command(azure, script, timeout_in_seconds=1).instance_view
    assert time.monotonic() - started < 10
    assert (view.execution_state, view.exit_code) == ("Failed", -1)
    assert view.execution_message.endswith("command terminated with exit status=-1")
    assert view.output == "started\n"  # no trap ran
    child = run_command(azure, "pgrep -x sleep -a | grep -c 'sleep 41' || true\n", name="rc2").instance_view
    assert child.output == "1\n"  # the script's child still runs


def test_a_parameter_with_an_empty_value_is_not_delivered(azure: Azure) -> None:
    # internal/exec/exec.go, SetEnvironmentVariables: `if value != ""`.
    create_vm(azure)
    script = 'echo "${SET-unset} ${EMPTY-unset}"\n'
    view = run_command(azure, script, parameters={"SET": "x", "EMPTY": ""}).instance_view
    assert view.output == "x unset\n"


def test_a_vm_holds_at_most_25_managed_run_commands(azure: Azure) -> None:
    # azure-compute-docs run-command-overview.md: "limited to 25".
    create_vm(azure)
    for index in range(25):
        run_command(azure, "true\n", name=f"rc{index}", async_execution=True)
    with pytest.raises(HttpResponseError) as full:
        run_command(azure, "true\n", name="rc25")
    assert full.value.status_code == 409
    assert "maximum number of managed Run commands (max=25, current=25)" in full.value.error.message
    run_command(azure, "echo again\n", name="rc3")  # a PUT to one it holds is not a new one
    azure.clients.compute.virtual_machine_run_commands.begin_delete(azure.group, "vm1", "rc0").result()
    assert run_command(azure, "echo room\n", name="rc25").instance_view.output == "room\n"


def test_a_run_whose_vm_restarts_under_it_stays_running_forever(azure: Azure) -> None:
    # Only the handler writes a run's status; after the reboot it finds the sequence number
    # processed and runs nothing (internal/cmds/cmds.go): the last status stays.
    create_vm(azure)
    azure.emulator.faults.interrupt_run("^rc1$", "halfway", "restart")
    view = run_command(azure, "echo halfway\nsleep 2\necho never\n", async_execution=True).instance_view
    deadline = time.monotonic() + 10
    while "halfway" not in (view.output or "") and time.monotonic() < deadline:
        time.sleep(0.1)
        view = azure.clients.compute.virtual_machine_run_commands.get_by_virtual_machine(
            azure.group, "vm1", "rc1", expand="instanceView").instance_view
    time.sleep(3)
    view = azure.clients.compute.virtual_machine_run_commands.get_by_virtual_machine(
        azure.group, "vm1", "rc1", expand="instanceView").instance_view
    assert (view.execution_state, view.exit_code, view.end_time) == ("Running", None, None)
    assert view.output == "halfway\n"
    again = run_command(azure, "echo halfway\nsleep 2\necho never\n", async_execution=True).instance_view
    assert again.execution_state == "Running"  # the same PUT again: not run again
    assert run_command(azure, "uptime -s >/dev/null && echo up\n", name="rc2").instance_view.output == "up\n"


def test_async_execution_returns_while_running_and_delete_cancels(azure: Azure) -> None:
    create_vm(azure)
    view = run_command(azure, "echo begun\nsleep 30\n", async_execution=True).instance_view
    assert view.execution_state == "Running"
    azure.clients.compute.virtual_machine_run_commands.begin_delete(azure.group, "vm1", "rc1").result()
    assert (
        list(azure.clients.compute.virtual_machine_run_commands.list_by_virtual_machine(azure.group, "vm1"))
        == []
    )
    marker = run_command(azure, "pgrep -f 'sleep 30' || echo none\n", name="rc2").instance_view
    assert marker.output == "none\n"


def test_the_same_run_command_again_does_not_run_twice(azure: Azure) -> None:
    create_vm(azure)
    script = "echo run >> /root/runs\nwc -l < /root/runs\n"
    first = run_command(azure, script).instance_view
    again = run_command(azure, script).instance_view
    changed = run_command(azure, script, parameters={"N": "2"}).instance_view
    assert (first.output, again.output, changed.output) == ("1\n", "1\n", "2\n")


def test_a_failed_script_fails_the_deployment_only_when_asked(azure: Azure) -> None:
    create_vm(azure)
    with pytest.raises(HttpResponseError) as failed:
        run_command(azure, "exit 4\n", treat_failure_as_deployment_failure=True)
    assert failed.value.error.code == "VMExtensionProvisioningError"
    view = azure.clients.compute.virtual_machine_run_commands.get_by_virtual_machine(
        azure.group, "vm1", "rc1", expand="instanceView"
    )
    assert view.provisioning_state == "Failed" and view.instance_view.exit_code == 4


def test_a_new_vm_agent_is_not_ready_at_first(azure: Azure) -> None:
    azure.emulator.config.agent_ready_seconds = 1.5
    create_vm(azure)
    assert (
        azure.clients.compute.virtual_machines.instance_view(azure.group, "vm1")
        .vm_agent.statuses[0]
        .display_status
        == "Not Ready"
    )
    with pytest.raises(HttpResponseError) as early:
        run_command(azure, "true\n")
    assert early.value.error.code == "VMAgentNotReady"
    time.sleep(1.6)
    assert run_command(azure, "echo ok\n").instance_view.output == "ok\n"


def test_stopped_vm_refuses_run_commands_until_started(azure: Azure) -> None:
    create_vm(azure)
    azure.clients.compute.virtual_machines.begin_power_off(azure.group, "vm1").result()
    view = azure.clients.compute.virtual_machines.instance_view(azure.group, "vm1")
    assert view.statuses[1].code == "PowerState/stopped"
    with pytest.raises(ResourceExistsError) as refused:
        run_command(azure, "true\n")
    assert refused.value.error.code == "OperationNotAllowed"
    with pytest.raises(ResourceExistsError):
        azure.clients.compute.virtual_machines.begin_restart(azure.group, "vm1").result()
    azure.clients.compute.virtual_machines.begin_start(azure.group, "vm1").result()
    assert run_command(azure, "echo up\n").instance_view.output == "up\n"


def test_start_leaves_a_running_vm_running_and_power_off_refuses_a_deallocated_one(azure: Azure) -> None:
    create_vm(azure)
    vms = azure.clients.compute.virtual_machines
    run_command(azure, "sleep 299 >/dev/null 2>&1 &\n")  # a process of this boot
    vms.begin_start(azure.group, "vm1").result()
    assert run_command(azure, "pgrep -fx 'sleep 299'\n", name="rc2").instance_view.exit_code == 0  # no reboot
    vms.begin_deallocate(azure.group, "vm1").result()
    power = vms.instance_view(azure.group, "vm1").statuses[1]
    assert (power.code, power.display_status) == ("PowerState/deallocated", "VM deallocated")
    with pytest.raises(ResourceExistsError) as refused:
        vms.begin_power_off(azure.group, "vm1").result()
    assert refused.value.error.code == "OperationNotAllowed"
    assert refused.value.error.message == (
        "Operation 'powerOff' is not allowed on VM 'vm1' since the VM is either deallocated or marked to be "
        "deallocated."
    )
    vms.begin_start(azure.group, "vm1").result()
    assert vms.instance_view(azure.group, "vm1").statuses[1].code == "PowerState/running"
    assert run_command(azure, "pgrep -fx 'sleep 299' || echo gone\n", name="rc3").instance_view.output == "gone\n"


def test_run_command_action_reports_output_but_not_the_exit_code(azure: Azure) -> None:
    create_vm(azure)
    result = azure.clients.compute.virtual_machines.begin_run_command(
        azure.group,
        "vm1",
        RunCommandInput(
            command_id="RunShellScript",
            script=["echo out $WHO", "echo err >&2", "exit 5"],
            parameters=[RunCommandInputParameter(name="WHO", value="me")],
        ),
    ).result()
    assert [s.code for s in result.value] == ["ProvisioningState/succeeded"]
    assert result.value[0].message == "Enable succeeded: \n[stdout]\nout me\n\n[stderr]\nerr\n\n"


def test_run_command_action_allows_one_at_a_time(azure: Azure) -> None:
    create_vm(azure)
    azure.emulator.config.polls_before_done = 0
    first = azure.clients.compute.virtual_machines.begin_run_command(
        azure.group, "vm1", RunCommandInput(command_id="RunShellScript", script=["sleep 2"])
    )
    with pytest.raises(ResourceExistsError) as busy:
        azure.clients.compute.virtual_machines.begin_run_command(
            azure.group, "vm1", RunCommandInput(command_id="RunShellScript", script=["true"])
        ).result()
    assert busy.value.error.code == "Conflict"
    assert "Run command extension execution is in progress" in busy.value.error.message
    first.result()


def test_deleting_a_vm_frees_its_nic_and_its_sandbox(azure: Azure) -> None:
    create_vm(azure)
    sandbox = azure.local.machines.vms[
        next(iter(k for k in azure.local.machines.vms if "/vm1" in k and azure.group.lower() in k))
    ]
    azure.clients.compute.virtual_machines.begin_delete(azure.group, "vm1").result()
    assert not sandbox.directory.exists()
    azure.clients.network.network_interfaces.begin_delete(azure.group, "vm1-nic").result()
