"""How long the local Azure takes for what the product's tests do most, through the real SDK
clients (no in-progress polls, so this is the emulator's and the sandbox's own cost): start the
emulator, create a VM (sandbox boot and provisioning), a managed Run Command round trip (PUT,
instance view, DELETE), and an NFS mount inside a VM. Also counts the ARM calls of one round trip.

    python bench/local_azure.py [runs]
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from azure.mgmt.compute.models import (
    RunCommandInputParameter,
    VirtualMachineRunCommand,
    VirtualMachineRunCommandScriptSource,
)

from local import identities, playground
from local.emulator import Config, LocalAzure
from shared.adapters.arm import ArmClients
from shared.settings import Settings

SUBSCRIPTION = "6e0b3f2a-5a43-4b7e-9a57-3f0c2d7d1c11"
GROUP, REGION = "bench", "eastus"
MOUNT = 'mkdir -p /mnt/h && mount -t nfs -o vers=4,minorversion=1,sec=sys "$SPEC" /mnt/h\n'
COUNTS = "ARM calls per round trip"


def timed(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return (time.perf_counter() - started) * 1000


def main(runs: int) -> None:
    figures: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as scratch:
        started = time.perf_counter()
        azure = LocalAzure(Path(scratch), Config(polls_before_done=0)).start()
        figures["emulator start"] = [(time.perf_counter() - started) * 1000]
        try:
            measure(azure, runs, figures)
        finally:
            azure.stop()
    for name, values in figures.items():
        unit = "" if name == COUNTS else " ms"
        print(f"{name:<34} median {statistics.median(values):8.1f}{unit}  (n={len(values)})")


def measure(azure: LocalAzure, runs: int, figures: dict[str, list[float]]) -> None:
    app_identity, rest = identities.owner_session(azure.emulator, SUBSCRIPTION, GROUP, REGION, azure.url,
                                                  str(azure.ca_path))
    subnet = playground.network(rest, GROUP, "vnet", REGION)
    settings = Settings.from_environ(
        {
            "AzureWebJobsStorage": "UseDevelopmentStorage=true",
            "AZURE_SUBSCRIPTION_ID": SUBSCRIPTION,
            "ARM_ENDPOINT": azure.url,
            "ARM_CA_BUNDLE": str(azure.ca_path),
            **app_identity.app_settings(),
        }
    )
    compute = ArmClients(settings, polling_interval=0, retry_total=0).compute
    spec = playground.nfs_storage(rest, GROUP, "benchacct", subnet, REGION)
    for index in range(runs):
        name = f"vm{index}"
        figures.setdefault("VM create (NIC + VM)", []).append(
            timed(lambda n=name: playground.vm(rest, GROUP, n, subnet, REGION))
        )
        azure.emulator.requests.clear()
        figures.setdefault("Run Command round trip", []).append(
            timed(lambda n=name: run(compute, n, "echo ok\n", {}))
        )
        figures.setdefault(COUNTS, []).append(azure.emulator.requests.count())
        figures.setdefault("Run Command mounting NFS", []).append(
            timed(lambda n=name: run(compute, n, MOUNT, {"SPEC": spec}))
        )


def run(compute: object, vm_name: str, script: str, parameters: dict[str, str]) -> None:
    commands = compute.virtual_machine_run_commands  # type: ignore[attr-defined]
    commands.begin_create_or_update(
        GROUP,
        vm_name,
        "bench",
        VirtualMachineRunCommand(
            location=REGION,
            source=VirtualMachineRunCommandScriptSource(script=script),
            parameters=[RunCommandInputParameter(name=k, value=v) for k, v in parameters.items()],
        ),
    ).result()
    view = commands.get_by_virtual_machine(GROUP, vm_name, "bench", expand="instanceView").instance_view
    if view.exit_code != 0:
        raise RuntimeError(f"script failed: {view.error}")
    commands.begin_delete(GROUP, vm_name, "bench").result()


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 9)
