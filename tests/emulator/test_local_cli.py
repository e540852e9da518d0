"""`python -m local vm ...` as a newcomer uses it (issue 16): a separate process against the test
session's emulator, through a `dev.env` naming it as `make dev` writes one. Mistakes get one clear
line and a non-zero exit, never a traceback; the commands wait where Azure makes a person wait."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from local import dev
from tests.conftest import SUBSCRIPTION
from tests.emulator.conftest import Azure, needs_sandbox

ROOT = Path(__file__).resolve().parents[2]
Cli = Callable[..., subprocess.CompletedProcess[str]]

pytestmark = needs_sandbox


@pytest.fixture
def cli(azure: Azure, tmp_path: Path) -> Cli:
    """`python -m local` as alice, in the test's resource group, with the VNet `make dev` makes; run
    from a directory of the test's own, where relative paths are looked for."""
    azure.network(dev.VNET)
    (tmp_path / "dev.env").write_text(
        f"ARM_ENDPOINT={azure.local.url}\nARM_CA_BUNDLE={azure.local.ca_path}\n"
        f"AZURE_SUBSCRIPTION_ID={SUBSCRIPTION}\nDEFAULT_RESOURCE_GROUP={azure.group}\n"
    )
    env = {**os.environ, "AZLIN_LOCAL_DIR": str(tmp_path), "PYTHONPATH": str(ROOT)}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "local", *args], cwd=tmp_path, env=env, text=True,
                              capture_output=True, timeout=120, check=False)

    return run


def one_error_line(done: subprocess.CompletedProcess[str]) -> str:
    """The single line a failed command printed (and that it failed without a traceback)."""
    assert done.returncode != 0, done.stdout
    assert "Traceback" not in done.stderr, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    return lines[0]


def test_a_name_azure_refuses_is_one_line_and_creates_nothing(azure: Azure, cli: Cli) -> None:
    for name in ("Bad_Name!", "a" * 65):
        line = one_error_line(cli("vm", "create", name))
        assert line.startswith(f"error: VM name '{name}' is not valid: Linux host name cannot exceed 64"), line
    assert cli("vm", "list").stdout == ""
    nics = azure.rest.get(f"{azure.group_path()}/providers/Microsoft.Network/networkInterfaces")["value"]
    assert nics == []


def test_a_missing_script_file_is_one_line(cli: Cli) -> None:
    assert cli("vm", "create", "vm1").returncode == 0
    line = one_error_line(cli("vm", "run", "vm1", "--script", "nope.sh"))
    assert line == "error: cannot read the script nope.sh: No such file or directory"


def test_deleting_a_vm_that_does_not_exist_says_so(azure: Azure, cli: Cli) -> None:
    line = one_error_line(cli("vm", "delete", "ghost"))
    assert line == f"error: VM ghost does not exist in resource group {azure.group}"


def test_run_after_restart_waits_for_the_agent(azure: Azure, cli: Cli) -> None:
    assert cli("vm", "create", "vm1").returncode == 0
    azure.emulator.config.agent_ready_seconds = 3  # as `make dev` has it: after each boot
    restarted = cli("vm", "restart", "vm1")
    assert restarted.returncode == 0, restarted.stderr
    ran = cli("vm", "run", "vm1", "--", "echo", "up")
    assert (ran.returncode, ran.stdout) == (0, "up\n"), ran.stderr
    assert ran.stderr == "waiting for the VM agent of vm1 to be ready...\n"
    # Each refusal left a Failed Run Command in Azure: the CLI deleted them (a VM holds 25 at most).
    assert azure.rest.get(f"{azure.group_path()}/providers/Microsoft.Compute/virtualMachines/vm1/runCommands"
                          )["value"] == []


def test_stop_start_and_deallocate_are_computes_power_actions(azure: Azure, cli: Cli) -> None:
    assert cli("vm", "create", "vm1").returncode == 0
    stopped = cli("vm", "stop", "vm1")
    assert (stopped.returncode, stopped.stdout) == (0, "vm1: VM stopped\n"), stopped.stderr
    refused = one_error_line(cli("vm", "run", "vm1", "--", "true"))
    assert refused == ("error: 409 OperationNotAllowed: The operation requires the VM to be running (or set to "
                       "run). vm1 is stopped: start it with `python -m local vm start vm1`")
    deallocated = cli("vm", "deallocate", "vm1")
    assert (deallocated.returncode, deallocated.stdout) == (0, "vm1: VM deallocated\n"), deallocated.stderr
    assert "VM deallocated" in cli("vm", "list").stdout
    assert "since the VM is either deallocated" in one_error_line(cli("vm", "stop", "vm1"))
    started = cli("vm", "start", "vm1")
    assert (started.returncode, started.stdout) == (0, "vm1: VM running\n"), started.stderr
    assert cli("vm", "run", "vm1", "--", "echo", "back").stdout == "back\n"
    kinds = azure.emulator.requests.kinds()
    assert all(kinds.get(f"POST Microsoft.Compute/virtualMachines/{action}") for action in
               ("powerOff", "deallocate", "start")), kinds
    line = one_error_line(cli("vm", "start", "ghost"))
    assert line == f"error: VM ghost does not exist in resource group {azure.group}"


def test_output_that_filled_run_commands_limit_says_it_was_truncated(
        azure: Azure, cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    assert cli("vm", "create", "vm1").returncode == 0
    long = cli("vm", "run", "vm1", "--", "sh", "-c", "seq 2000; seq 3 >&2")
    assert long.returncode == 0 and long.stdout.endswith("\n1999\n2000\n")
    assert len(long.stdout.encode()) == 4096
    assert long.stderr == "1\n2\n3\n(output truncated to the last 4096 bytes by Run Command)\n"
    monkeypatch.setattr(azure.emulator.config, "run_command_output_bytes", 100)  # the limit is asked
    both = cli("vm", "run", "vm1", "--", "sh", "-c", "seq 100; seq 100 >&2")
    assert both.stderr.endswith("(output truncated to the last 100 bytes by Run Command)\n"
                                "(error output truncated to the last 100 bytes by Run Command)\n")
    short = cli("vm", "run", "vm1", "--", "echo", "short")
    assert (short.stdout, short.stderr) == ("short\n", "")
