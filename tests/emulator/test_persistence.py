"""The emulator kept across a restart (`make dev KEEP=1`): a second LocalAzure on the same
directory serves the first one's resources, people, roles and run command results, with the
shares' files mounted again and the VM booted again on its own disk."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from local import identities, playground
from local.emulator import LocalAzure
from local.rest import ArmRest
from tests.emulator.conftest import needs_sandbox

pytestmark = needs_sandbox
SUBSCRIPTION = "00000000-0000-4000-8000-0000000ee001"
GROUP, REGION = "kept", "eastus"


def as_alice(azure: LocalAzure) -> ArmRest:
    return ArmRest(azure.url, str(azure.ca_path), SUBSCRIPTION,
                   identities.token_source(azure.emulator, "alice", arm=True))


def run_command(rest: ArmRest, path: str) -> dict[str, Any]:
    view: dict[str, Any] = rest.get(f"{path}?$expand=instanceView")["properties"]["instanceView"]
    return view


def test_a_kept_emulator_starts_again_where_it_stopped(tmp_path: Path) -> None:
    first = LocalAzure(tmp_path / "azure", keep=True).start()
    try:
        app = identities.register(first.emulator, SUBSCRIPTION)
        identities.person(first.emulator, "alice", roles=[("Owner", f"/subscriptions/{SUBSCRIPTION}")])
        carol = identities.person(first.emulator, "carol", groups=["team"],
                                  roles=[("Reader", f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{GROUP}")])
        rest = as_alice(first)
        rest.put(rest.group_path(GROUP), {"location": REGION})
        subnet = playground.network(rest, GROUP, "vnet1", REGION)
        playground.vm(rest, GROUP, "vm1", subnet, REGION, admin="azureuser", key="ssh-ed25519 AAAAC3 t@x")
        playground.nfs_storage(rest, GROUP, "keptfiles1", subnet, REGION)
        vm_path = f"{playground.providers(rest, GROUP)}/Microsoft.Compute/virtualMachines/vm1"
        rest.put(f"{vm_path}/runCommands/mark", {"location": REGION, "properties": {
            "source": {"script": "echo written > /root/mark; echo done"}}})
        before = run_command(rest, f"{vm_path}/runCommands/mark")
        assert before["executionState"] == "Succeeded" and before["output"] == "done\n"
        share_files = first.machines.share_files("keptfiles1", "home")
        (share_files / "kept.txt").write_text("on the share\n")
    finally:
        first.stop()

    second = LocalAzure(tmp_path / "azure", keep=True).start()
    try:
        assert second.loaded is not None and (second.loaded.storage_accounts, second.loaded.vms) == (1, 1)
        assert identities.register(second.emulator, SUBSCRIPTION).app_secret == app.app_secret  # the same app
        again = second.emulator.tenant.get("carol")
        assert again.object_id == carol.object_id and again.members == set()
        assert second.emulator.tenant.groups_of(carol.object_id)  # still in her group
        rest = as_alice(second)  # alice's Owner assignment came back with her
        assert rest.get(f"{playground.providers(rest, GROUP)}/Microsoft.Storage/storageAccounts/keptfiles1")[
            "properties"]["provisioningState"] == "Succeeded"
        kept_run = run_command(rest, f"{vm_path}/runCommands/mark")
        assert (kept_run["executionState"], kept_run["output"]) == ("Succeeded", "done\n")
        view = rest.get(f"{vm_path}/instanceView")
        assert view["statuses"][-1]["code"] == "PowerState/running"
        deadline = time.monotonic() + 30  # booted again: its agent is ready after a moment
        while True:
            try:
                ran = playground.run(rest, GROUP, "vm1", "cat /root/mark; ls /home", timeout=60)
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
        assert ran["output"].startswith("written\n"), ran
        assert (second.machines.share_files("keptfiles1", "home") / "kept.txt").read_text() == "on the share\n"
    finally:
        second.stop()
