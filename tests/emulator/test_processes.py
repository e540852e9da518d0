"""Nothing the local Azure starts outlives the process that started it, even when that process is
killed: Azurite, the storage fabric and every VM's namespaces go with it."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.emulator.conftest import needs_sandbox

ROOT = Path(__file__).resolve().parents[2]
STARTER = """
import sys, threading, time
from pathlib import Path
from local.azurite import Azurite
from local.sandbox import Fabric, Network, SandboxVm
root = Path(sys.argv[1])
fabric = Fabric(root)
fabric.start()
# VMs are created from worker threads in the emulator: that thread ends long before the process.
worker = threading.Thread(target=lambda: SandboxVm(root / "vm", "vm", fabric, root).create("azureuser", [], Network()))
worker.start(); worker.join()
Azurite(root / "azurite.log")
print("ready", flush=True)
time.sleep(600)
"""


def processes_mentioning(text: str) -> list[int]:
    """Processes whose command line or environment holds `text`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if text.encode() in (entry / "environ").read_bytes() + (entry / "cmdline").read_bytes():
                found.append(int(entry.name))
        except OSError:
            continue
    return found


@needs_sandbox
def test_children_die_with_a_killed_parent(tmp_path: Path) -> None:
    starter = subprocess.Popen([sys.executable, "-c", STARTER, str(tmp_path)], cwd=ROOT, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert starter.stdout is not None
    line = starter.stdout.readline()  # "ready", or the end of output when the starter failed
    assert line == "ready\n", line + starter.communicate(timeout=30)[0]
    children = [pid for pid in processes_mentioning(str(tmp_path)) if pid != starter.pid]
    assert len(children) >= 3  # fabric, VM, Azurite (and their helpers)

    starter.send_signal(signal.SIGKILL)
    starter.wait()
    deadline = time.monotonic() + 10
    while processes_mentioning(str(tmp_path)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert processes_mentioning(str(tmp_path)) == []
