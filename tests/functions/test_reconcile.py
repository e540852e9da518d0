"""The reconcile timer end to end: real attachments on sandbox VMs, broken on the VM the way they
break in life (unmounted, something else mounted over the home, VM deleted, storage gone, an event
never delivered), then the timer, then the queue."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from local import identities, playground
from shared.domain.commands import AttachVm
from shared.domain.models import Attachment
from shared.domain.operations import Operation
from shared.settings import Settings
from tests.conftest import arm_as
from tests.emulator.conftest import needs_sandbox
from tests.fakes import FakeClock
from tests.functions.conftest import REGION, Stack, unique
from tests.functions.test_attachments import (
    HOME,
    about,
    attach,
    deliver_events_about,
    manifest,
    run,
    script_runs,
    storage,
    vm,
)

pytestmark = needs_sandbox
__all__ = ["storage"]  # the fixture, shared with test_attachments


def health(stack: Stack, vm_name: str) -> dict[str, Any]:
    answer = stack.api.get(f"/api/vms/{vm_name}/attachment", query={"resourceGroup": stack.group})
    assert answer.status == 200, answer
    body: dict[str, Any] = answer.json()
    return body


def reconcile(stack: Stack) -> dict[str, Any]:
    """The timer's next run, a RECONCILE_INTERVAL after the last (each VM is checked once in an
    interval), with every operation it queues run to its end; returns the run's report."""
    stack.app.clock.advance(stack.app.settings.reconcile_interval_minutes * 60)
    stack.api.index.fire_timer("reconcile_attachments")
    drain(stack)
    parents = [o for o in operations_of(stack) if o.kind.value == "Reconcile"]
    latest = max(parents, key=lambda o: o.created_at)
    assert latest.status.value == "Succeeded", latest
    return dict(latest.result or {}) | {"checks": {
        o.target.rsplit("/", 1)[-1]: o.result for o in operations_of(stack) if o.parent == latest.id}}


def operations_of(stack: Stack) -> list[Operation]:
    ids = [entity["PartitionKey"] for entity in stack.app.state.table("Operations").list_entities()]
    return [o for o in (stack.app.operations.get(operation_id) for operation_id in ids) if o is not None]


def queued_repairs(stack: Stack) -> list[Operation]:
    return [o for o in operations_of(stack) if o.params.get("repair")]


def drain(stack: Stack) -> None:
    for _ in range(10):
        if not stack.pump.drain():
            break


def test_reconcile_checks_every_attachment_heals_forgets_and_catches_missed_events(
    stack: Stack, storage: str, clock: FakeClock
) -> None:
    assert attach(stack, storage, "vm1")["status"] == "Succeeded"
    vm(stack, "vm2")
    assert attach(stack, storage, "vm2")["status"] == "Succeeded"
    shared = manifest(stack, "vm1")
    first_backup = health(stack, "vm1")["backupPath"]
    stack.app.attachments.add(Attachment(storage, "ghost", stack.group, HOME, clock.now(), "gone-vm-id"))
    stack.app.attachments.add(Attachment("stnotthere1", "vm9", stack.group, HOME, clock.now(), "id-9"))

    reconcile(stack)
    assert (health(stack, "vm1")["health"], health(stack, "vm2")["health"]) == ("healthy", "healthy")
    assert health(stack, "vm1")["lastVerifiedAt"] == health(stack, "vm2")["lastVerifiedAt"] is not None
    assert stack.api.get("/api/vms/ghost/attachment", query={"resourceGroup": stack.group}).status == 404
    gone = health(stack, "vm9")
    assert (gone["health"], gone["lastError"]) == ("storageGone", "storage stnotthere1 no longer exists")
    assert script_runs(stack, "verify") == 2  # one read-only run per live VM, none for the others

    # vm1: someone unmounts the home and keeps working in the bare directory.
    assert run(stack, "vm1", f"umount {HOME} && echo wip > {HOME}/while-unmounted")["exitCode"] == 0
    # vm2: something else is mounted over the home.
    assert run(stack, "vm2", f"mount -t tmpfs scratch {HOME}")["exitCode"] == 0
    # vm3: tagged for the storage, but its creation event never arrived.
    vm(stack, "vm3", tags={"azlin-storage": storage})
    clock.advance(900)
    report = reconcile(stack)
    unmounted, wrong = report["checks"]["vm1"], report["checks"]["vm2"]
    assert (unmounted["health"], unmounted["error"]) == ("unmounted", f"nothing is mounted on {HOME}")
    assert wrong["health"] == "wrongSource" and "mounted from scratch" in wrong["error"]
    assert report["health"] == {"unmounted": 1, "wrongSource": 1, "storageGone": 1}
    repairs = queued_repairs(stack)
    assert [op.target for op in repairs] == [f"vm/{stack.group}/vm1"]  # never the wrong source
    assert report["healed"] == [repairs[0].id] and unmounted["repair"] == repairs[0].id
    assert [op.status.value for op in queued_repairs(stack)] == ["Succeeded"]
    assert run(stack, "vm1", f"findmnt -n -o SOURCE {HOME}")["output"].strip().endswith(f"/{storage}/home")
    assert manifest(stack, "vm1") == shared  # the share's files, untouched
    kept = run(stack, "vm1", f"cat {HOME}.azlin-backup-*/while-unmounted")
    assert kept["output"] == "wip\n"  # what was written meanwhile, kept in a new backup
    recorded = health(stack, "vm1")
    assert recorded["health"] == "healthy" and recorded["backupPath"] == first_backup  # kept for a restore
    # The missed VM: who wrote it is unknown, so whether they may join the storage is too. It is
    # left alone (nothing ran on it) and listed for the digest.
    assert stack.api.get("/api/vms/vm3/attachment", query={"resourceGroup": stack.group}).status == 404
    assert [(w.vm, w.storage) for w in stack.app.findings.latest()] == [("vm3", storage)]
    assert run(stack, "vm3", f"mountpoint -q {HOME} || echo local")["output"] == "local\n"

    clock.advance(900)
    reconcile(stack)
    assert [health(stack, name)["health"] for name in ("vm1", "vm2")] == ["healthy", "wrongSource"]
    assert len(queued_repairs(stack)) == 1  # nothing new: vm2 waits for a person
    status = stack.api.get(f"/api/storage/{storage}/status").json()
    assert {a["vm"]: a["health"] for a in status["attachments"]} == {"vm1": "healthy", "vm2": "wrongSource"}
    digest_of_today = stack.app.digests.run()
    (group,) = [g for g in digest_of_today.groups if g.resource_group == stack.group]
    assert [(w.vm, w.storage) for w in group.not_attached] == [("vm3", storage)]
    assert attach(stack, storage, "vm3")["status"] == "Succeeded"  # its owner attaches it on purpose
    reconcile(stack)
    assert stack.app.findings.latest() == []


def test_with_auto_heal_off_an_unmounted_home_is_only_reported(
    stack: Stack, storage: str, clock: FakeClock, make_app: Any, environment: dict[str, str]
) -> None:
    stack.app = make_app(app_settings=Settings.from_environ({**environment, "AUTO_HEAL": "false"}))
    assert attach(stack, storage, "vm1")["status"] == "Succeeded"
    assert run(stack, "vm1", f"umount {HOME}")["exitCode"] == 0
    reconcile(stack)
    assert health(stack, "vm1")["health"] == "unmounted"
    assert queued_repairs(stack) == [] and stack.pump.drain() == 0
    assert run(stack, "vm1", f"mountpoint -q {HOME} || echo bare")["output"] == "bare\n"


def test_a_deallocated_vm_is_not_checked_and_says_why(stack: Stack, storage: str) -> None:
    assert attach(stack, storage, "vm1")["status"] == "Succeeded"
    stack.rest.post(f"{stack.rest.group_path(stack.group)}/providers/Microsoft.Compute/virtualMachines/vm1/deallocate")
    reconcile(stack)
    found = health(stack, "vm1")
    assert (found["health"], found["lastError"]) == ("unknown", "VM vm1 is deallocated: not checked")
    assert found["lastVerifiedAt"] is not None and queued_repairs(stack) == []
    assert script_runs(stack, "verify") == 0


def delete_vm(stack: Stack, name: str) -> None:
    base = f"{stack.rest.group_path(stack.group)}/providers"
    stack.rest.delete(f"{base}/Microsoft.Compute/virtualMachines/{name}")
    stack.rest.delete(f"{base}/Microsoft.Network/networkInterfaces/{name}-nic")


@pytest.mark.parametrize("event", [True, False], ids=["by-its-event", "event-missed"])
def test_a_vm_recreated_under_the_same_name_gets_a_record_of_its_own(
    stack: Stack, storage: str, clock: FakeClock, event: bool
) -> None:
    vm(stack, "vm2", tags={"azlin-storage": storage})
    assert attach(stack, storage, "vm2")["status"] == "Succeeded"
    first = health(stack, "vm2")
    delete_vm(stack, "vm2")
    vm(stack, "vm2", tags={"azlin-storage": storage})  # the same name, a new vmId
    if event:
        deliver_events_about(stack, "vm2")
        drain(stack)  # the event's attach runs long before the next reconcile
        assert health(stack, "vm2")["vmId"] != first["vmId"]  # the old VM's record was replaced
    clock.advance(900)
    reconcile(stack)  # without the event: the old record goes (vmGone); who wrote the new VM is unknown
    drain(stack)
    reconcile(stack)
    if not event:
        assert stack.api.get("/api/vms/vm2/attachment", query={"resourceGroup": stack.group}).status == 404
        assert [w.vm for w in stack.app.findings.latest()] == ["vm2"]  # left for a person to attach
        assert attach(stack, storage, "vm2")["status"] == "Succeeded"
        reconcile(stack)
    second = health(stack, "vm2")
    assert (second["vmId"] != first["vmId"], second["storage"], second["health"]) == (True, storage, "healthy")
    refused = stack.api.delete(f"/api/storage/{storage}")
    assert refused.status == 409 and refused.json()["error"]["code"] == "StorageInUse"


def test_a_repair_queued_before_a_detach_does_not_undo_it(stack: Stack, storage: str) -> None:
    assert attach(stack, storage, "vm1")["status"] == "Succeeded"
    assert run(stack, "vm1", f"umount {HOME}")["exitCode"] == 0
    record = stack.app.attachments.get(stack.group, "vm1")
    assert record is not None
    answer = stack.api.delete("/api/vms/vm1/attachment", query={"resourceGroup": stack.group, "mode": "restore"})
    # A reconcile check found it unmounted before the worker reached the detach: it queued a repair.
    stack.app.intake.submit(AttachVm(storage, "vm1", stack.group, record.mount_point, repair=True,
                                     vm_id=record.vm_id))
    assert len(queued_repairs(stack)) == 1
    drain(stack)
    (repair,) = queued_repairs(stack)
    assert stack.run(answer)["status"] == "Succeeded"
    assert repair.status.value == "Succeeded" and repair.result == {
        "vm": "vm1", "changed": False, "note": "not attached any more: nothing to repair"}
    assert stack.api.get("/api/vms/vm1/attachment", query={"resourceGroup": stack.group}).status == 404
    assert run(stack, "vm1", f"mountpoint -q {HOME} || echo local")["output"] == "local\n"


def test_a_group_default_is_for_new_vms_and_a_detach_sticks(stack: Stack, storage: str, clock: FakeClock) -> None:
    # vm1 existed before the default was set: it is never given another home by it.
    clock.advance((datetime.now(UTC) - clock.now()).total_seconds() + 1)  # the service's clock: now
    assert stack.api.put(f"/api/resource-groups/{stack.group}/default-storage", {"storage": storage}).status == 200
    vm(stack, "tagged", tags={"azlin-storage": storage})
    assert attach(stack, storage, "tagged")["status"] == "Succeeded"  # through the API
    detached = stack.run(stack.api.delete("/api/vms/tagged/attachment", query={"resourceGroup": stack.group}))
    assert detached["status"] == "Succeeded"
    vm(stack, "tagged", tags={"azlin-storage": storage, "team": "b"})  # an update event after the detach
    deliver_events_about(stack, "tagged")
    clock.advance(900)
    reconcile(stack)
    drain(stack)
    for name in ("vm1", "tagged"):
        assert stack.api.get(f"/api/vms/{name}/attachment", query={"resourceGroup": stack.group}).status == 404
    assert run(stack, "vm1", f"mountpoint -q {HOME} || echo local")["output"] == "local\n"
    assert attach(stack, storage, "tagged")["status"] == "Succeeded"  # attached on request again


def test_a_tag_that_is_no_storage_name_gives_a_failed_operation_once(stack: Stack, storage: str) -> None:
    vm(stack, "odd", tags={"azlin-storage": "Team_Home"})
    assert deliver_events_about(stack, "odd") == 1
    stack.azure.emulator.events.flush()
    for event in [e for e in stack.azure.emulator.events.published if about(stack, e, "odd")]:
        stack.api.index.publish("on_resource_event", {**event, "id": "another-delivery-" + event["id"]})
    operations = [o for o in stack.app.state.table("Operations").list_entities() if "vm/" in str(o.get("target"))]
    assert len(operations) == 1 and stack.pump.drain() == 0  # recorded, never queued
    failed = stack.api.get(f"/api/operations/{operations[0]['PartitionKey']}").json()
    assert (failed["status"], failed["error"]["code"]) == ("Failed", "ValidationError")
    assert "tag azlin-storage='Team_Home' names no storage" in failed["error"]["message"]


def vm_operations(stack: Stack, vm_name: str) -> list[dict[str, Any]]:
    answer = stack.api.get("/api/operations", query={"vm": vm_name, "resourceGroup": stack.group})
    assert answer.status == 200, answer
    return list(answer.json()["value"])


@pytest.mark.parametrize("missed", [False, True], ids=["on-create", "by-reconcile"])
def test_a_vm_tagged_for_a_storage_not_made_yet_is_attached_once_it_is(stack: Stack, missed: bool) -> None:
    """The newcomer's order: a VM tagged first, its storage created after. The refusal waits for
    the storage: its create queues the attach (or, had it missed the VM, the reconcile timer
    does). The rules stay: a VM whose writer may not join is still not touched."""
    name = unique()
    base = f"{playground.providers(stack.rest, stack.group)}/Microsoft.Network/virtualNetworks"
    stack.rest.put(f"{base}/teamnet", {"location": REGION, "properties": {
        "addressSpace": {"addressPrefixes": ["10.88.0.0/16"]},
        "subnets": [{"name": "default", "properties": {"addressPrefix": "10.88.0.0/24"}}]}})
    subnet = f"{base}/teamnet/subnets/default"
    vm(stack, "early", vnet="teamnet", subnet="default", tags={"azlin-storage": name})
    bob = "user-" + uuid.uuid4().hex[:8]  # may write VMs in the group; never a member of the storage
    identities.person(stack.azure.emulator, bob,
                      roles=[("Virtual Machine Contributor", stack.rest.group_path(stack.group))])
    playground.vm(arm_as(stack.azure, bob), stack.group, "theirs", subnet, REGION, tags={"azlin-storage": name})
    for vm_name in ("early", "theirs"):
        assert deliver_events_about(stack, vm_name) == 1
        (refused,) = vm_operations(stack, vm_name)
        assert (refused["status"], refused["error"]["code"]) == ("Failed", "StorageNotFound"), refused
    stack.azure.emulator.events.flush()
    for event in [e for e in stack.azure.emulator.events.published if about(stack, e, "early")]:
        stack.api.index.publish("on_resource_event", {**event, "id": "another-delivery-" + event["id"]})
    assert len(vm_operations(stack, "early")) == 1 and stack.pump.drain() == 0  # a duplicate: nothing new

    if missed:  # the create's own look at the VM fails: the reconcile timer is the fallback
        stack.azure.emulator.faults.add("GET", r"/virtualMachines/early$", status=500, count=1)
    created = stack.create(name, vnet="teamnet", subnet="default")
    assert created["status"] == "Succeeded", created
    if missed:
        assert "attachQueued" not in created["result"]
        assert stack.api.get("/api/vms/early/attachment", query={"resourceGroup": stack.group}).status == 404
        assert len(reconcile(stack)["attachQueued"]) == 1
    else:
        assert len(created["result"]["attachQueued"]) == 1
    drain(stack)
    attached = health(stack, "early")
    assert (attached["storage"], attached["health"]) == (name, "healthy")
    assert run(stack, "early", f"findmnt -n -o SOURCE {HOME}")["output"].strip().endswith(f"/{name}/home")
    # bob's VM: now refused for what it is, a writer who is not a member; nothing ran on it.
    assert stack.api.get("/api/vms/theirs/attachment", query={"resourceGroup": stack.group}).status == 404
    assert sorted(o["error"]["code"] for o in vm_operations(stack, "theirs")) == ["NotAMember", "StorageNotFound"]
    assert not [e for e in stack.log.snapshot() if "/virtualMachines/theirs/runCommands" in e.path]

    for vm_name in ("early", "theirs"):  # their events again, and the timer: nothing new
        deliver_events_about(stack, vm_name)
    reconcile(stack)
    assert script_runs(stack, "attach") == 1
    assert len(vm_operations(stack, "theirs")) == 2
