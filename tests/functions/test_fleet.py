"""Fleets: many VMs of one storage at once, as a scale set brings them. The worker runs on the
host's own queue poller (side by side, as on Azure), against Azurite and the emulator with
sandbox VMs."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

import pytest

from local.host.queues import QueuePoller
from shared.domain.commands import Reconcile
from shared.domain.models import Attachment
from shared.domain.operations import Operation
from shared.domain.reconciling import due_for_check
from tests.emulator.conftest import needs_sandbox
from tests.functions.conftest import Stack, unique
from tests.functions.test_attachments import HOME, run, script_runs, vm
from tests.functions.test_reconcile import operations_of

pytestmark = needs_sandbox


def fleet(stack: Stack, count: int, prefix: str) -> dict[str, str]:
    """`count` VMs made side by side in the storage's network, each with a key of its own."""
    keys = {f"{prefix}{n}": f"ssh-ed25519 AAAA{prefix}{n} {prefix}{n}@laptop" for n in range(count)}
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda name: vm(stack, name, key=keys[name]), keys))
    return keys


@contextmanager
def host_worker(stack: Stack) -> Iterator[None]:
    """The Functions host's queue poller: up to batchSize deliveries at once."""
    poller = QueuePoller(stack.pump)
    poller.start()
    try:
        yield
    finally:
        poller.stop()


def wait_for(stack: Stack, ids: list[str], timeout: float = 240) -> list[Operation]:
    """The operations' records once all ended (the timer's own are no caller's to read)."""
    deadline = time.monotonic() + timeout
    while True:
        operations = [o for o in (stack.app.operations.get(i) for i in ids) if o is not None]
        if all(o.is_terminal for o in operations) or time.monotonic() > deadline:
            return operations
        time.sleep(0.5)


def test_a_fleet_attaches_side_by_side_and_slows_down_when_throttled(
    stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    """Eight VMs ask at once while Compute lets only 3 Run Command writes through in 3 seconds:
    every attach still ends Succeeded (a 429 sends the operation back after its Retry-After, and
    the shared budget holds every instance off), exactly one home is published onto the empty
    share, and every VM's key is in the shared authorized_keys."""
    storage = unique()
    assert stack.create(storage)["status"] == "Succeeded"
    keys = fleet(stack, 8, "fleet")
    throttle = stack.azure.emulator.faults.throttle("PUT", r"/runCommands/azlin-attach-", limit=3,
                                                    window_seconds=3, policy="PutRunCommand3Sec")
    answers = [stack.api.post(f"/api/storage/{storage}/attachments", {"vm": vm, "resourceGroup": stack.group})
               for vm in keys]
    assert all(answer.status == 202 for answer in answers)
    with host_worker(stack):
        operations = wait_for(stack, [answer.json()["id"] for answer in answers])

    assert [o.status.value for o in operations] == ["Succeeded"] * 8, [o.error for o in operations]
    assert throttle.refused > 0  # Azure said no, more than once
    assert any((o.last_error or {}).get("code") == "Throttled" for o in operations)
    assert "runCommandWrite throttled by Azure: every instance holds off" in caplog.text
    assert sum(1 for o in operations if (o.result or {})["mount"]["copiedFiles"] > 0) == 1
    shared = run(stack, "fleet0", f"cat {HOME}/.ssh/authorized_keys")["output"].splitlines()
    assert sorted(shared) == sorted(keys.values())


def test_reconcile_of_30_vms_runs_through_child_operations_even_when_a_worker_dies_midway(
    stack: Stack, make_app: Any
) -> None:
    """A run queues one check per VM. Its first delivery takes the message, queues ten checks and
    dies. Those ten run; the last to end wakes the run, which queues the other twenty and none of
    the ten again, and ends once they have. When the dead delivery's message comes back, the run
    is over: each VM was verified once."""
    storage = unique()
    assert stack.create(storage)["status"] == "Succeeded"
    names = list(fleet(stack, 30, "node"))
    for name in names:  # recorded as attached, and found unmounted by its check
        vm_id = stack.arm(f"Microsoft.Compute/virtualMachines/{name}")["properties"]["vmId"]
        stack.app.attachments.add(Attachment(storage, name, stack.group, HOME, stack.app.clock.now(), vm_id))
    app = make_app(app_settings=replace(stack.app.settings, auto_heal=False))  # checks only

    parent = app.reconcile.start()
    (taken,) = stack.pump.queue.receive_messages(max_messages=1, visibility_timeout=120)  # the delivery that dies
    due = due_for_check(app.attachments.list_for_storage(storage), parent.created_at, app.reconcile.interval,
                        app.reconcile.period(parent.created_at))
    app.reconcile.fan_out(Reconcile(parent.params["run"]), parent, due[:10])  # all it did
    with host_worker(stack):
        (done,) = wait_for(stack, [parent.id])
    stack.pump.queue.update_message(taken, visibility_timeout=0)  # the dead delivery's lease runs out
    stack.run_queued()

    children = [o for o in operations_of(stack) if o.parent == parent.id]
    assert done.status.value == "Succeeded", (done.progress, done.last_error, done.attempts,
                                              sorted((c.status.value, c.attempts) for c in children))
    assert (done.result or {})["checked"] == 30 and (done.result or {})["health"] == {"unmounted": 30}
    children = [o for o in operations_of(stack) if o.parent == parent.id]
    assert sorted(o.target.rsplit("/", 1)[-1] for o in children) == sorted(names)  # one each
    assert all(o.status.value == "Succeeded" for o in children)
    assert script_runs(stack, "verify") == 30  # each VM's script ran once
