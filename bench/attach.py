"""Attach wall time for a 10,000-file home, against `cp -a` of the same tree in the same sandbox VM,
and their ratio. Both run through a managed Run Command on the local emulator, so both include its
small fixed cost; the attach also stages a mount, moves the home aside, copies into the share,
merges keys, writes fstab and verifies.

    python bench/attach.py [files] [runs]
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from local import identities, playground
from local.emulator import Config, LocalAzure
from local.rest import ArmRest
from shared.scripts import run_command_script
from tests.emulator.trees import BUILD, python

ATTACH = run_command_script("attach")
SUBSCRIPTION = "6e0b3f2a-5a43-4b7e-9a57-3f0c2d7d1c11"
GROUP = "bench-attach"
REGION, HOME = "eastus", "/home/azureuser"


def timed_run(rest: ArmRest, vm: str, script: str, **parameters: str) -> tuple[float, dict[str, Any]]:
    """A Run Command round trip (the same for both sides), with its wall time in seconds."""
    started = time.perf_counter()
    view = playground.run(rest, GROUP, vm, script, parameters, timeout=3600)
    if view["exitCode"] != 0:
        raise RuntimeError(f"script failed: {view['error'] or view['output']}")
    return time.perf_counter() - started, view


def main(files: int, runs: int) -> None:
    attach_times, copy_times = [], []
    with tempfile.TemporaryDirectory() as scratch:
        azure = LocalAzure(Path(scratch), Config(polls_before_done=0)).start()
        try:
            _, rest = identities.owner_session(azure.emulator, SUBSCRIPTION, GROUP, REGION, azure.url,
                                               str(azure.ca_path))
            subnet = playground.network(rest, GROUP, "vnet", REGION)
            for index in range(runs):
                vm = f"vm{index}"
                playground.vm(rest, GROUP, vm, subnet, REGION)
                timed_run(
                    rest,
                    vm,
                    python(BUILD, "ROOT", "COUNT", "OWNER"),
                    ROOT=HOME,
                    COUNT=str(files),
                    OWNER="azureuser",
                )
                copy, _ = timed_run(rest, vm, f"cp -a {HOME} /var/tmp/copy && sync\n")
                spec = playground.nfs_storage(rest, GROUP, f"bench{uuid.uuid4().hex[:8]}", subnet, REGION)
                attach, view = timed_run(
                    rest, vm, ATTACH + "sync\n", NFS_ENDPOINT=spec, MOUNT_POINT=HOME, OWNER="azureuser"
                )
                result = json.loads(str(view["output"]).splitlines()[-1].removeprefix("RESULT "))
                assert result["success"] and result["copiedFiles"] >= files, result
                copy_times.append(copy)
                attach_times.append(attach)
        finally:
            azure.stop()
    attach_ms, copy_ms = statistics.median(attach_times) * 1000, statistics.median(copy_times) * 1000
    print(f"home of {files} files (+ dotfiles, links, an 8 MiB file), {runs} runs, medians:")
    print(f"  attach (Run Command)        {attach_ms:8.0f} ms")
    print(f"  cp -a (Run Command)         {copy_ms:8.0f} ms")
    print(f"  ratio attach / cp -a        {attach_ms / copy_ms:8.2f}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 10_000, int(sys.argv[2]) if len(sys.argv) > 2 else 3)
