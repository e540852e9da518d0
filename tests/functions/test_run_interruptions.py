"""Runs stopped from outside, as Azure stops them: the Linux handler's timeout SIGKILLs the script
(Failed, exit code -1, children left running), a VM restarting under a run leaves it Running for
ever. Each attach below is one request; the service sees the run stopped, runs the script again
under a new name, and the script's state file finishes or undoes what the stopped run began. The
home must equal the original tree, byte for byte, with no run, lock or leftover on the VM."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest

from local import playground
from shared.bootstrap import Container
from shared.settings import Settings
from tests.emulator.conftest import needs_sandbox
from tests.functions.conftest import Stack
from tests.functions.test_attachments import HOME, attach, manifest, run, script_runs, storage, verify, vm

pytestmark = needs_sandbox
__all__ = ["storage"]  # the fixture: a storage, and vm1 with a home of 300 files


@pytest.fixture
def quick(make_app: Callable[..., Container], settings: Settings) -> Container:
    """The service, told a run is stalled after 3 s without news (Azure: 90 s)."""
    return make_app(app_settings=replace(settings, run_stall_seconds=3))


def runs_on(stack: Stack, vm_name: str) -> list[str]:
    path = f"{playground.providers(stack.rest, stack.group)}/Microsoft.Compute/virtualMachines/{vm_name}/runCommands"
    return sorted(command["name"] for command in stack.rest.get(path)["value"])


def leftovers(stack: Stack, vm_name: str) -> str:
    """What an attach must never leave: its lock held, a state file, an unpublished copy, a process."""
    return str(run(stack, vm_name, "flock -n /var/lib/azlin/lock true || echo lock-held\n"
                                   "ls /var/lib/azlin/attach-*.state 2>/dev/null\n"
                                   f"ls -A {HOME} | grep azlin-incoming\n"
                                   "pgrep -f 'cp -a' || true\n")["output"])


@pytest.mark.parametrize(("marker", "action"), [
    ("attach: copying the home onto the share", "timeout"),
    ("attach: moving the home aside", "restart"),
    ("attach: copying the home onto the share", "restart"),
    ("attach: publishing the copy", "restart"),
])
def test_an_attach_stopped_from_outside_finishes_without_a_second_request(
    stack: Stack, quick: Container, storage: str, marker: str, action: str
) -> None:
    home = manifest(stack, "vm1")
    interrupt = stack.azure.emulator.faults.interrupt_run(r"^azlin-attach-", marker, action)
    operation = attach(stack, storage, "vm1")
    assert operation["status"] == "Succeeded", operation
    assert interrupt.fired == 1 and script_runs(stack, "attach") == 2  # one request, two runs
    assert runs_on(stack, "vm1") == []
    assert leftovers(stack, "vm1") == ""
    assert manifest(stack, "vm1") == home
    checked = verify(stack)
    assert checked["result"]["health"] == "healthy", checked


def test_a_detach_killed_by_its_timeout_finishes_without_a_second_request(
    stack: Stack, quick: Container, storage: str
) -> None:
    assert attach(stack, storage, "vm1")["status"] == "Succeeded"
    shared = manifest(stack, "vm1")
    stack.azure.emulator.faults.interrupt_run(r"^azlin-detach-", "detach: copying the share", "timeout")
    detached = stack.run(stack.api.delete("/api/vms/vm1/attachment", query={"resourceGroup": stack.group}))
    assert detached["status"] == "Succeeded", detached
    assert script_runs(stack, "detach") == 2 and runs_on(stack, "vm1") == []
    assert run(stack, "vm1", f"mountpoint -q {HOME} || echo local\n")["output"] == "local\n"
    assert manifest(stack, "vm1") == shared  # the share's files, now on the VM's own disk
    assert leftovers(stack, "vm1") == ""


def test_a_vm_that_keeps_stopping_the_script_fails_clearly_and_the_next_attach_recovers(
    stack: Stack, quick: Container, storage: str
) -> None:
    home = manifest(stack, "vm1")
    stack.azure.emulator.faults.interrupt_run(r"^azlin-attach-", "attach: copying the home", "timeout", count=3)
    failed = attach(stack, storage, "vm1")
    assert (failed["status"], failed["error"]["code"]) == ("Failed", "Conflict"), failed
    assert "stopped from outside 3 times" in failed["error"]["message"]
    assert runs_on(stack, "vm1") == []
    again = attach(stack, storage, "vm1")
    assert again["status"] == "Succeeded", again
    assert manifest(stack, "vm1") == home and leftovers(stack, "vm1") == ""


def test_more_operations_than_free_run_command_slots_leave_no_run_command_behind(
    stack: Stack, storage: str
) -> None:
    """Each attach, verify and detach deletes its runs. The VM holds 23 run commands of someone
    else's, so 2 of Azure's 25 are free: nine operations in a row still succeed, and after each
    the VM holds exactly the other 23 (one leaked run would fill the VM within two)."""
    vm(stack, "cycler")
    base = f"{playground.providers(stack.rest, stack.group)}/Microsoft.Compute/virtualMachines/cycler/runCommands"
    theirs = sorted(f"theirs-{index}" for index in range(23))
    for name in theirs:
        stack.rest.put(f"{base}/{name}", {"location": "westeurope", "properties": {
            "source": {"script": "true"}, "asyncExecution": True}})
    for cycle in range(3):
        attached = attach(stack, storage, "cycler")
        assert attached["status"] == "Succeeded" and runs_on(stack, "cycler") == theirs, (cycle, attached)
        assert verify(stack, "cycler")["result"]["health"] == "healthy"
        assert runs_on(stack, "cycler") == theirs
        detached = stack.run(stack.api.delete("/api/vms/cycler/attachment",
                                              query={"resourceGroup": stack.group, "mode": "restore"}))
        assert detached["status"] == "Succeeded" and runs_on(stack, "cycler") == theirs, (cycle, detached)
    assert script_runs(stack, "attach") == 3


def test_a_vm_at_azures_limit_of_25_run_commands(stack: Stack, storage: str) -> None:
    vm(stack, "full")
    base = f"{playground.providers(stack.rest, stack.group)}/Microsoft.Compute/virtualMachines/full/runCommands"
    body: dict[str, Any] = {"location": "westeurope", "properties": {
        "source": {"script": "true"}, "asyncExecution": True}}
    for index in range(25):  # someone else's
        stack.rest.put(f"{base}/theirs-{index}", body)
    refused = attach(stack, storage, "full")
    assert (refused["status"], refused["error"]["code"]) == ("Failed", "Conflict"), refused
    assert "holds 25 managed run commands" in refused["error"]["message"]
    assert len(runs_on(stack, "full")) == 25  # nothing of theirs removed

    for index in range(5):  # the service's own, from an operation abandoned two hours ago
        stack.rest.delete(f"{base}/theirs-{index}")
        stack.rest.put(f"{base}/azlin-attach-abandoned{index}-1", body)
        command = stack.azure.emulator.get(f"{base}/azlin-attach-abandoned{index}-1")
        execution = command.internal["execution"]
        execution.done.wait(10)
        execution.started_at -= 7200
        execution.ended_at -= 7200
    attached = attach(stack, storage, "full")
    assert attached["status"] == "Succeeded", attached
    assert runs_on(stack, "full") == sorted(f"theirs-{i}" for i in range(5, 25))
