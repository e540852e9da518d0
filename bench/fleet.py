"""A fleet joining one share: one VM attached alone, then N at once, through the API of the local
stack (`make dev`: the one running, else one started for the run).

    python bench/fleet.py [N] [--reconcile]        (default N: 8)

Creates a storage and N+1 VMs (each agent answering a Run Command first, as a scale set's VMs are
ready before their tags bring them), attaches vm 0 alone, then POSTs N attaches at the same moment.
Prints each VM's time from acceptance to Succeeded (the service's own timestamps), the fleet's
wall time (first acceptance to last end) and the ratio fleet / single
(goal: at most 1.5 for N = 8), and checks what must hold: every attach Succeeded, each VM's key is
in the shared authorized_keys, and exactly one attach published its home onto the share.

With --reconcile it then runs the reconcile timer once over the N+1 attached VMs (on a stack it
starts itself, with RECONCILE_INTERVAL=0 so every VM is due) and prints the run's wall time and its
Resource Manager calls per VM: the figures docs/scale.md builds on.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
import uuid
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from local import dev, playground
from local.control import Control
from local.demo import Demo, DemoFailed, _running_stack
from local.rest import ArmRequestError
from shared import bootstrap
from shared.settings import Settings

HOME = "/home/azureuser"


def attach(demo: Demo, vm: str) -> tuple[float, dict[str, Any]]:
    """POST the attach and wait for its end; (seconds from acceptance to end, the operation).

    The times are the service's own (`createdAt` to `updatedAt` of the ended operation), so the
    bench polls as gently as a portal would: eight clients polling every 0.1 s were a load of their
    own on the two cores they measure."""
    body = {"vm": vm, "resourceGroup": demo.group}
    status, operation = demo.api.call("POST", f"/storage/{demo.storage}/attachments", body)
    if status != 202:
        raise DemoFailed(f"attach {vm} answered {status}: {operation}")
    while operation["status"] not in ("Succeeded", "Failed"):
        time.sleep(0.5)
        operation = demo.api.ok("GET", f"/operations/{operation['id']}")
    return (moment(operation["updatedAt"]) - moment(operation["createdAt"])).total_seconds(), operation


def moment(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def wait_for_agent(demo: Demo, vm: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            demo.run_on(vm, "true")
            return
        except ArmRequestError as err:
            if "VMAgentNotReady" not in str(err) or time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def main(count: int, reconcile: bool) -> int:
    log_file = Path(__file__).resolve().parents[1] / ".local" / "logs" / "fleet.log"
    log_file.parent.mkdir(parents=True, exist_ok=True)
    logging.basicConfig(filename=log_file, filemode="w", level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s %(threadName)s: %(message)s")
    logging.getLogger("azure").setLevel(logging.WARNING)
    settings = None if reconcile else _running_stack()
    parts = None
    if settings is None:
        print("starting a local stack (as `make dev`)", flush=True)
        if reconcile:
            os.environ["RECONCILE_INTERVAL"] = "0"  # every attached VM is due at once
        parts, settings = dev.start(0)
    try:
        control = Control(settings["ARM_ENDPOINT"], settings["ARM_CA_BUNDLE"])
        demo = Demo(settings)
        status = measure(demo, control, count, log_file)
        if reconcile and status == 0:
            status = measure_reconcile(control, settings, count + 1)
        return status
    finally:
        if parts is not None:
            parts.close()


def measure(demo: Demo, control: Control, count: int, log_file: Path) -> int:
    tag = uuid.uuid4().hex[:4]
    vms = [f"fleet-{tag}-{n}" for n in range(count + 1)]
    keys = {vm: f"ssh-ed25519 AAAAfleet{n}{tag} {vm}@bench" for n, vm in enumerate(vms)}
    demo.api.finish(demo.api.ok("POST", "/storage", {"name": demo.storage, "resourceGroup": demo.group}, 202))
    threads = [threading.Thread(target=playground.vm, kwargs={"key": keys[vm]},
                                args=(demo.rest, demo.group, vm, demo.subnet, demo.region)) for vm in vms]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for vm in vms:
        wait_for_agent(demo, vm)

    single, first = attach(demo, vms[0])
    results: dict[str, tuple[float, dict[str, Any]]] = {}
    start = threading.Barrier(count)

    def one(vm: str) -> None:
        start.wait()
        results[vm] = attach(demo, vm)

    control.call("DELETE", "requests")
    workers = [threading.Thread(target=one, args=(vm,)) for vm in vms[1:]]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    ended = [operation for _, operation in results.values()]
    fleet = (max(moment(o["updatedAt"]) for o in ended)
             - min(moment(o["createdAt"]) for o in ended)).total_seconds()

    print(f"storage {demo.storage}; {count} VMs attached at once after one alone")
    print(f"  {vms[0]:<18} {single:6.1f} s  {first['status']} (alone)")
    for vm in vms[1:]:
        seconds, operation = results[vm]
        print(f"  {vm:<18} {seconds:6.1f} s  {operation['status']}")
    print(f"single attach            {single:6.1f} s")
    print(f"fleet of {count} wall time     {fleet:6.1f} s")
    print(f"ratio fleet / single     {fleet / single:6.2f}  (goal: at most 1.5)")
    logged = control.call("GET", "requests")["value"]
    calls = Counter(r["kind"].replace("Microsoft.", "") for r in logged)
    print(f"Resource Manager calls per attach of the fleet ({count} attaches):")
    for kind, n in sorted(calls.items(), key=lambda item: -item[1]):
        print(f"  {n / count:6.1f}  {kind}")

    operations = [first] + [operation for _, operation in results.values()]
    failed = [o for o in operations if o["status"] != "Succeeded"]
    # Only the keys' short ids: Run Command keeps the last 4 KB of output, less than 100 keys' lines.
    ids = f"grep -o 'AAAAfleet[0-9]*{tag} ' {HOME}/.ssh/authorized_keys | sort -u"
    found = demo.run_on(vms[0], ids).split()
    missing = [vm for vm in vms if keys[vm].split()[1] not in found]
    publishers = [o for o in operations
                  if o["status"] == "Succeeded" and o["result"]["mount"]["copiedFiles"] > 0]
    print(f"every attach Succeeded:  {not failed}")
    print(f"every key shared:        {not missing}{'' if not missing else f' (missing: {missing})'}")
    print(f"homes published:         {len(publishers)}  (must be 1)")
    print(f"(the stack's log, when the bench started it: {log_file})")
    return 0 if not failed and not missing and len(publishers) == 1 else 1


def measure_reconcile(control: Control, settings: dict[str, str], attached: int) -> int:
    """One reconcile run over every attached VM, through its child operations: what the timer
    does (the same call, on the stack this process started)."""
    app = bootstrap.Container(Settings.from_environ(settings))  # the host's tables, from this process
    control.call("DELETE", "requests")
    began = time.monotonic()
    run = app.reconcile.start()
    while not run.is_terminal and time.monotonic() - began < 1800:
        time.sleep(0.2)
        run = app.operations.get(run.id) or run
    wall = time.monotonic() - began
    children = app.operations.children(run.id)
    calls = Counter(r["kind"].replace("Microsoft.", "") for r in control.call("GET", "requests")["value"])
    print(f"reconcile of {attached} VMs: {run.status.value} in {wall:.1f} s through {len(children)} child "
          f"operations; health {(run.result or {}).get('health')}")
    print("Resource Manager calls per VM checked:")
    for kind, n in sorted(calls.items(), key=lambda item: -item[1]):
        print(f"  {n / attached:6.2f}  {kind}")
    return 0 if run.status.value == "Succeeded" and len(children) == attached else 1


if __name__ == "__main__":
    arguments = [a for a in sys.argv[1:] if not a.startswith("--")]
    sys.exit(main(int(arguments[0]) if arguments else 8, "--reconcile" in sys.argv))
