"""Attach and detach end to end: the HTTP functions, the queue, the worker, Resource Manager (the
emulator) and the VM scripts running for real in sandbox VMs."""

from __future__ import annotations

import shlex
from typing import Any

import pytest
import yaml

from local import playground
from local.host.index import FunctionIndex
from shared.domain.provisioning import DEFAULT_SUBNET, DEFAULT_VNET
from tests.emulator.conftest import needs_sandbox
from tests.emulator.trees import BUILD, MANIFEST, digest, python
from tests.fakes import FakeClock
from tests.functions.conftest import REGION, Stack, unique

pytestmark = needs_sandbox
HOME = "/home/azureuser"


def vm(
    stack: Stack,
    name: str,
    vnet: str = DEFAULT_VNET,
    subnet: str = DEFAULT_SUBNET,
    key: str = "ssh-ed25519 AAAAfirst me@laptop",
    tags: dict[str, str] | None = None,
) -> None:
    subnet_id = f"{playground.providers(stack.rest, stack.group)}/Microsoft.Network/virtualNetworks/{vnet}/subnets/{subnet}"
    playground.vm(stack.rest, stack.group, name, subnet_id, REGION, key=key, tags=tags)


def run(stack: Stack, vm_name: str, script: str, **parameters: str) -> dict[str, Any]:
    return playground.run(stack.rest, stack.group, vm_name, script, parameters)


def manifest(stack: Stack, vm_name: str, root: str = HOME) -> tuple[str, int]:
    return digest(
        run(stack, vm_name, python(MANIFEST, "ROOT", "OUT"), ROOT=root, OUT="/var/tmp/manifest.json")
    )


def script_runs(stack: Stack, action: str) -> int:
    """Run Commands the service started (PUT) for attach or detach scripts."""
    return sum(
        1 for e in stack.log.snapshot() if e.method == "PUT" and f"/runCommands/azlin-{action}-" in e.path
    )


def attach(stack: Stack, storage: str, vm_name: str, **body: Any) -> dict[str, Any]:
    return stack.run(
        stack.api.post(
            f"/api/storage/{storage}/attachments", {"vm": vm_name, "resourceGroup": stack.group, **body}
        )
    )


@pytest.fixture
def storage(stack: Stack) -> str:
    name = unique()
    assert stack.create(name)["status"] == "Succeeded"
    vm(stack, "vm1")
    built = run(
        stack, "vm1", python(BUILD, "ROOT", "COUNT", "OWNER"), ROOT=HOME, COUNT="300", OWNER="azureuser"
    )
    assert built["exitCode"] == 0, built["error"]
    return name


def test_attach_share_and_detach_through_the_service(stack: Stack, storage: str) -> None:
    home = manifest(stack, "vm1")
    operation = attach(stack, storage, "vm1")

    assert operation["status"] == "Succeeded", operation
    assert operation["progress"] == {"step": "Done", "done": 4, "total": 4}
    mount = operation["result"]["mount"]
    assert mount["copiedFiles"] == home[1] - 1 and mount["backupPath"].startswith(HOME + ".azlin-backup-")
    assert manifest(stack, "vm1") == home
    record = stack.api.get("/api/vms/vm1/attachment", query={"resourceGroup": stack.group}).json()
    assert (record["storage"], record["mountPoint"], record["backupPath"]) == (
        storage,
        HOME,
        mount["backupPath"],
    )
    assert record["vmId"] and record["owner"] == "azureuser"
    # The attach script checked the live mount's source: healthy and verified now, never "unknown".
    assert (record["health"], record["lastVerifiedAt"]) == ("healthy", operation["updatedAt"]), record
    assert stack.api.get(f"/api/storage/{storage}").json()["ownerUid"] == 1000
    status = stack.api.get(f"/api/storage/{storage}/status").json()
    assert status["connectedVms"] == ["vm1"] and [a["health"] for a in status["attachments"]] == ["healthy"]
    assert script_runs(stack, "attach") == 1

    vm(stack, "vm2", key="ssh-ed25519 AAAAsecond me@desktop")
    second = attach(stack, storage, "vm2")
    assert second["status"] == "Succeeded" and second["result"]["mount"]["copiedFiles"] == 0, second
    assert manifest(stack, "vm2")[1] == home[1]
    run(stack, "vm2", f"echo hello-from-vm2 > {HOME}/note")
    assert run(stack, "vm1", f"cat {HOME}/note")["output"] == "hello-from-vm2\n"

    detached = stack.run(
        stack.api.delete("/api/vms/vm1/attachment", query={"resourceGroup": stack.group, "mode": "restore"})
    )
    assert detached["status"] == "Succeeded" and detached["result"]["unmount"]["success"] is True, detached
    assert manifest(stack, "vm1") == home
    assert stack.api.get("/api/vms/vm1/attachment", query={"resourceGroup": stack.group}).status == 404
    again = stack.api.delete("/api/vms/vm1/attachment", query={"resourceGroup": stack.group})
    assert (again.status, again.json()["error"]["code"]) == (404, "AttachmentNotFound")  # said, not a bare Succeeded


def test_attaching_twice_runs_the_script_once(stack: Stack, storage: str) -> None:
    assert attach(stack, storage, "vm1")["status"] == "Succeeded"
    stack.log.clear()
    again = attach(stack, storage, "vm1")
    assert again["status"] == "Succeeded" and again["result"]["changed"] is False
    assert script_runs(stack, "attach") == 0
    fstab = run(stack, "vm1", "grep -c ' /home/azureuser ' /etc/fstab")["output"]
    assert fstab == "1\n"


def test_a_redelivered_attach_reads_the_run_it_started(stack: Stack, storage: str) -> None:
    # The first delivery fails after the script ran (deleting the Run Command fails); the second
    # finds the Run Command of its operation and reads its result instead of running it again.
    stack.azure.emulator.faults.add("DELETE", r"/runCommands/azlin-attach-", status=500, count=1)
    operation = attach(stack, storage, "vm1")
    assert operation["status"] == "Succeeded" and operation["attempts"] == 2, operation
    assert script_runs(stack, "attach") == 1


def test_a_run_under_the_operations_name_without_its_nonce_is_not_taken_as_its_result(
    stack: Stack, storage: str
) -> None:
    """Someone who may write run commands plants one under the name the attach will use, with a
    forged RESULT: the service does not take it, deletes it, and runs the real script."""
    answer = stack.api.post(f"/api/storage/{storage}/attachments", {"vm": "vm1", "resourceGroup": stack.group})
    name = f"azlin-attach-{answer.json()['id']}-1"
    forged = ('echo \'RESULT {"success":true,"mountPoint":"/home/azureuser","backedUpFiles":0,"copiedFiles":0,'
              '"backupPath":"/nowhere","rolledBack":false,"alreadyAttached":true,"ownerUid":1000,"errors":[]}\'')
    stack.rest.put(f"{playground.providers(stack.rest, stack.group)}/Microsoft.Compute/virtualMachines/vm1/runCommands/{name}",
                   {"location": REGION, "properties": {"source": {"script": forged}}})
    operation = stack.run(answer)
    assert operation["status"] == "Succeeded", operation
    mount = operation["result"]["mount"]
    assert mount["backupPath"] != "/nowhere" and mount["backupPath"].startswith(HOME + ".azlin-backup-"), mount
    assert "nonce" not in mount  # the secret stays with the operation
    assert f"/{storage}/home" in run(stack, "vm1", f"findmnt -n -o SOURCE --mountpoint {HOME}")["output"]
    started = [e.path.rsplit("/", 1)[1] for e in stack.log.snapshot()
               if e.method == "PUT" and "/runCommands/azlin-attach-" in e.path]
    assert started == [name, name[:-1] + "2"]  # the forged run, then the real script under the next name


def test_a_vm_that_lies_about_its_owner_uid_is_refused_and_nothing_is_recorded(stack: Stack, storage: str) -> None:
    """Root on a hostile VM controls what its runs report: here its bash rewrites the RESULT."""
    lie = run(stack, "vm1", "cp /usr/bin/bash /usr/local/lib/bash.real && printf '%s\\n' '#!/usr/local/lib/bash.real' "
                            "'set -o pipefail' '/usr/local/lib/bash.real \"$@\" | sed \"s/\\\"ownerUid\\\":[-0-9]*/"
                            "\\\"ownerUid\\\":$(cat /etc/liar-uid)/\"' > /run/liar && chmod 0755 /run/liar "
                            "&& mv -f /run/liar /usr/bin/bash && echo 0 > /etc/liar-uid && echo lying")
    assert lie["output"] == "lying\n", lie
    for uid in ("0",):  # -1, 60001, non-numbers: the same rule, tests/unit/test_untrusted.py
        run(stack, "vm1", f"echo {uid} > /etc/liar-uid")
        operation = attach(stack, storage, "vm1")
        assert operation["status"] == "Failed", operation
        assert "owner UID outside the range of normal users" in operation["error"]["message"], operation["error"]
        assert f"ownerUid: '{uid}'" in operation["error"]["causes"][0], operation["error"]
        assert "ownerUid" not in stack.api.get(f"/api/storage/{storage}").json(), uid
        assert stack.api.get("/api/vms/vm1/attachment", query={"resourceGroup": stack.group}).status == 404


def test_a_vm_whose_network_cannot_reach_the_storage_fails_clearly_untouched(
    stack: Stack, storage: str
) -> None:
    base = f"{stack.rest.group_path(stack.group)}/providers/Microsoft.Network/virtualNetworks"
    stack.rest.put(
        f"{base}/island",
        {
            "location": REGION,
            "properties": {
                "addressSpace": {"addressPrefixes": ["10.77.0.0/16"]},
                "subnets": [{"name": "default", "properties": {"addressPrefix": "10.77.0.0/24"}}],
            },
        },
    )
    vm(stack, "far", vnet="island", subnet="default")
    stack.log.clear()
    operation = attach(stack, storage, "far")
    assert (operation["status"], operation["error"]["code"]) == ("Failed", "NetworkNotFound")
    assert "peer the two VNets" in operation["error"]["try"]
    assert script_runs(stack, "attach") == 0

    for local, remote in (("island", DEFAULT_VNET), (DEFAULT_VNET, "island")):
        stack.rest.put(
            f"{base}/{local}/virtualNetworkPeerings/to-{remote}",
            {
                "properties": {
                    "remoteVirtualNetwork": {"id": f"{base}/{remote}"},
                    "allowVirtualNetworkAccess": True,
                }
            },
        )
    peered = attach(stack, storage, "far")
    assert peered["status"] == "Succeeded", peered  # the zone is linked to the island VNet on the way
    zone = f"{stack.rest.group_path(stack.group)}/providers/Microsoft.Network/privateDnsZones"
    links = stack.rest.get(f"{zone}/privatelink.file.core.windows.net/virtualNetworkLinks")["value"]
    assert [link["properties"]["virtualNetwork"]["id"].rsplit("/", 1)[-1] for link in links
            if link["name"].startswith("azlin-island-")] == ["island"]


def test_only_a_users_home_may_be_a_mount_point(stack: Stack, storage: str) -> None:
    for bad in ("/var/spool/cron/crontabs", "/root/bin", "/opt/x", "/home/azureuser/work"):
        answer = stack.api.post(f"/api/storage/{storage}/attachments",
                                {"vm": "vm1", "resourceGroup": stack.group, "mountPoint": bad})
        assert (answer.status, answer.json()["error"]["code"]) == (400, "ValidationError"), bad
    before = manifest(stack, "vm1"), run(stack, "vm1", "findmnt -rn -o TARGET | sort; cat /etc/fstab\n")["output"]
    operation = attach(stack, storage, "vm1", mountPoint="/home/nosuchuser")
    assert operation["status"] == "Failed", operation
    failed = operation["error"]
    assert "user nosuchuser does not exist on this VM" in str(failed), failed
    # A script that exits non-zero has its own code, its exit code and its last lines.
    assert failed["code"] == "ScriptFailed" and "The attach script failed on vm1" in failed["message"], failed
    assert failed["causes"][1:] == ["the attach script exited with code 65",  # lib.sh: no such user
                                    "its last error output: attach: user nosuchuser does not exist on this VM"]
    after = manifest(stack, "vm1"), run(stack, "vm1", "findmnt -rn -o TARGET | sort; cat /etc/fstab\n")["output"]
    assert after == before
    assert stack.api.get("/api/vms/vm1/attachment", query={"resourceGroup": stack.group}).status == 404


def test_a_vm_attached_elsewhere_is_refused_at_once(stack: Stack, storage: str) -> None:
    assert attach(stack, storage, "vm1")["status"] == "Succeeded"
    other = unique()
    assert stack.create(other)["status"] == "Succeeded"
    refused = stack.api.post(f"/api/storage/{other}/attachments", {"vm": "vm1", "resourceGroup": stack.group})
    assert (refused.status, refused.json()["error"]["code"]) == (409, "VmAttachedElsewhere")


def test_a_vm_whose_agent_is_not_ready_is_retried_until_it_is(stack: Stack, storage: str) -> None:
    stack.azure.emulator.faults.add(
        "PUT", r"/runCommands/azlin-attach-", status=409, code="VMAgentNotReady", count=2
    )
    operation = attach(stack, storage, "vm1")
    assert operation["status"] == "Succeeded", operation
    assert operation["attempts"] == 3 and operation["lastError"]["code"] == "VmAgentNotReady"
    assert script_runs(stack, "attach") == 3  # two refused by Azure, one that ran
    assert not stack.pump.failures  # looked at again by a new message, no delivery spent


def test_a_vm_whose_agent_never_gets_ready_fails_clearly_after_the_deadline(
    stack: Stack, storage: str, clock: FakeClock
) -> None:
    stack.azure.emulator.faults.add(
        "PUT", r"/runCommands/azlin-attach-", status=409, code="VMAgentNotReady", count=3
    )
    answer = stack.api.post(f"/api/storage/{storage}/attachments", {"vm": "vm1", "resourceGroup": stack.group})
    stack.pump.run_once()
    stack.pump.run_once()
    clock.advance(21 * 60)  # past VM_AGENT_WAIT_MINUTES (20)
    operation = stack.run(answer)
    assert operation["status"] == "Failed" and operation["attempts"] == 3, operation
    assert operation["error"]["code"] == "VmAgentNotReady"
    assert "within 20 minutes" in operation["error"]["message"]
    assert stack.api.get("/api/vms/vm1/attachment", query={"resourceGroup": stack.group}).status == 404


def address(stack: Stack, vm_name: str) -> str:
    nic = stack.arm(f"Microsoft.Network/networkInterfaces/{vm_name}-nic")
    return str(nic["properties"]["ipConfigurations"][0]["properties"]["privateIPAddress"])


def verify(stack: Stack, vm_name: str = "vm1") -> dict[str, Any]:
    return stack.run(stack.api.post(f"/api/vms/{vm_name}/attachment/verify",
                                    query={"resourceGroup": stack.group}))


def test_verify_is_an_operation_that_reports_the_live_mount_and_records_health(
    stack: Stack, storage: str
) -> None:
    assert attach(stack, storage, "vm1")["status"] == "Succeeded"
    checked = verify(stack)
    assert (checked["status"], checked["kind"]) == ("Succeeded", "VerifyVm"), checked
    healthy = checked["result"]
    assert healthy["health"] == "healthy", healthy
    live = healthy["live"]
    assert (live["nfsEndpoint"], live["mountPoint"], live["inFstab"]) == (
        f"{storage}.file.core.windows.net:/{storage}/home",
        HOME,
        True,
    )
    before = manifest(stack, "vm1")

    run(stack, "vm1", f"umount {HOME}")
    # ?verify=true answers at once: the last recorded check, and a link to the new one.
    query = {"resourceGroup": stack.group, "verify": "true"}
    answer = stack.api.get("/api/vms/vm1/attachment", query=query)
    assert answer.status == 200 and answer.json()["health"] == "healthy"
    link = answer.json()["verifying"]
    assert link["status"] == "Pending" and link["location"].endswith(f"/api/operations/{link['operationId']}")
    for _ in range(5):
        stack.pump.drain()
    unmounted = stack.api.get(f"/api/operations/{link['operationId']}").json()["result"]
    assert (unmounted["health"], unmounted["live"]) == ("unmounted", None)
    recorded = stack.api.get("/api/vms/vm1/attachment", query={"resourceGroup": stack.group}).json()
    assert recorded["health"] == "unmounted" and recorded["lastVerifiedAt"] == unmounted["verifiedAt"]
    run(stack, "vm1", f"mount {HOME}")  # the fstab line brings it back
    assert manifest(stack, "vm1") == before
    missing = stack.api.post("/api/vms/nosuchvm/attachment/verify", query={"resourceGroup": stack.group})
    assert (missing.status, missing.json()["error"]["code"]) == (404, "AttachmentNotFound")


def test_cloud_init_gives_a_new_vm_the_shared_home_from_its_first_boot(stack: Stack, storage: str) -> None:
    assert attach(stack, storage, "vm1")["status"] == "Succeeded"  # the share now holds a home
    shared = manifest(stack, "vm1")
    answer = stack.api.get(f"/api/storage/{storage}/cloud-init", query={"resourceGroup": stack.group})
    config = yaml.safe_load(answer.body)
    assert answer.body.startswith(b"#cloud-config\n") and "nfs-common" in config["packages"]

    vm(stack, "born", key="ssh-ed25519 AAAAnewborn me@laptop")
    # Play cloud-init's write_files and runcmd modules, as root, in the new VM.
    steps = []
    for item in config["write_files"]:
        assert item["encoding"] == "b64" and item["permissions"] == "0700"
        steps.append(
            f'mkdir -p "$(dirname {shlex.quote(item["path"])})" && '
            f"echo {shlex.quote(item['content'])} | base64 -d > {shlex.quote(item['path'])} && "
            f"chmod {item['permissions']} {shlex.quote(item['path'])}"
        )
    steps += [shlex.join(command) for command in config["runcmd"]]
    # Not yet admitted (only attached VMs reach the share): the boot's attach fails, home untouched.
    own = manifest(stack, "born")
    refused = run(stack, "born", "set -e\n" + "\n".join(steps) + "\n")
    assert refused["exitCode"] == 69 and "timed out" in refused["error"], refused
    assert manifest(stack, "born") == own
    # Its creation event (the VM carries the storage's tag) admits it; here the test does.
    recorded = stack.app.storages.get(storage)
    assert recorded is not None and stack.app.mounts.guard.admit(recorded, address(stack, "born"))
    booted = run(stack, "born", "set -e\n" + "\n".join(steps) + "\n")
    assert booted["exitCode"] == 0, booted["error"]
    assert '"success":true' in booted["output"]
    assert manifest(stack, "born")[1] == shared[1]  # the shared home (its keys file now merged), not its own
    keys = run(stack, "born", f"cat {HOME}/.ssh/authorized_keys")["output"].splitlines()
    assert keys == ["ssh-ed25519 AAAAvm own@vm", "ssh-ed25519 AAAAnewborn me@laptop"]
    fstab = run(stack, "born", "grep ' /home/azureuser ' /etc/fstab")["output"]
    assert fstab.endswith(" aznfs vers=4,minorversion=1,sec=sys,nconnect=4,nosuid,nodev,_netdev,nofail 0 0\n")


def test_a_forced_delete_leaves_every_attached_vm_the_shared_files(stack: Stack, storage: str) -> None:
    assert attach(stack, storage, "vm1")["status"] == "Succeeded"
    run(stack, "vm1", f"runuser -u azureuser -- sh -c 'echo written-on-the-share > {HOME}/latest'")
    shared = manifest(stack, "vm1")
    deleted = stack.run(stack.api.delete(f"/api/storage/{storage}", query={"force": "true"}))
    assert deleted["status"] == "Succeeded", deleted
    assert manifest(stack, "vm1") == shared  # nothing written on the share went with the account
    assert run(stack, "vm1", f"mountpoint -q {HOME} || echo local")["output"] == "local\n"
    assert stack.api.get("/api/vms/vm1/attachment", query={"resourceGroup": stack.group}).status == 404
    assert stack.api.get(f"/api/storage/{storage}").json()["state"] == "Deleted"  # kept for undelete
    assert not [k for k in stack.ours() if k.startswith("Microsoft.Network/privateEndpoints/")]


def test_a_forced_delete_keeps_the_share_for_undelete_and_a_snapshot_brings_back_a_deleted_file(
        stack: Stack, storage: str) -> None:
    """Restore mode gives the VM its own home back and leaves what was written on the share there:
    a snapshot is taken first, the account is kept, and an undelete finds every file."""
    home = manifest(stack, "vm1")
    assert attach(stack, storage, "vm1")["status"] == "Succeeded"
    run(stack, "vm1", f"runuser -u azureuser -- sh -c 'echo written-on-the-share > {HOME}/latest'")
    shared = manifest(stack, "vm1")
    deleted = stack.run(stack.api.delete(f"/api/storage/{storage}", query={"force": "true", "mode": "restore"}))
    assert deleted["status"] == "Succeeded", deleted
    assert manifest(stack, "vm1") == home
    assert run(stack, "vm1", f"mountpoint -q {HOME} || echo local")["output"] == "local\n"
    assert stack.api.get("/api/vms/vm1/attachment", query={"resourceGroup": stack.group}).status == 404
    assert [s["reason"] for s in stack.api.get(f"/api/storage/{storage}/snapshots").json()["value"]] == [
        "beforeDetach"]

    assert stack.run(stack.api.post(f"/api/storage/{storage}/undelete", {}))["status"] == "Succeeded"
    assert attach(stack, storage, "vm1")["status"] == "Succeeded"
    assert manifest(stack, "vm1") == shared  # every file written on the share, byte for byte

    stack.api.index.fire_timer("snapshot_shares")  # the daily snapshot
    run(stack, "vm1", f"runuser -u azureuser -- rm -r {HOME}/latest {HOME}/notes")
    snapshots = stack.api.get(f"/api/storage/{storage}/snapshots").json()["value"]
    daily = next(s for s in snapshots if s["reason"] == "daily")
    restore = f"/api/storage/{storage}/snapshots/{daily['id']}/restore"
    for path in ("latest", "notes"):  # a file, and a directory of odd names and a hard link
        restored = stack.run(stack.api.post(restore, {"path": path}))
        assert restored["status"] == "Succeeded", restored["error"]
        assert (restored["result"]["restoredTo"], restored["result"]["vm"]) == (path, "vm1")
    assert manifest(stack, "vm1") == shared
    # A path that exists is never overwritten: the snapshot's version goes beside it.
    run(stack, "vm1", f"runuser -u azureuser -- sh -c 'echo changed > {HOME}/latest'")
    beside = stack.run(stack.api.post(restore, {"path": "latest"}))
    stamp = daily["id"][:19].replace("-", "").replace(":", "") + "Z"
    assert beside["result"]["restoredTo"] == f"latest.restored-{stamp}", beside
    shown = run(stack, "vm1", f"cat {HOME}/latest {HOME}/latest.restored-{stamp}")["output"]
    assert shown == "changed\nwritten-on-the-share\n"
    missing = stack.run(stack.api.post(restore, {"path": "never-there"}))
    assert (missing["status"], missing["error"]["code"]) == ("Failed", "ScriptFailed")
    assert missing["error"]["causes"][0] == "never-there is not in the snapshot", missing["error"]
    refused = stack.api.post(restore, {"path": "../../etc/shadow"})
    assert (refused.status, refused.json()["error"]["code"]) == (400, "ValidationError")


def test_detach_copy_through_the_service_keeps_the_shared_files_locally(stack: Stack, storage: str) -> None:
    assert attach(stack, storage, "vm1")["status"] == "Succeeded"
    run(stack, "vm1", f"runuser -u azureuser -- sh -c 'echo made-on-share > {HOME}/latest'")
    shared = manifest(stack, "vm1")
    detached = stack.run(stack.api.delete("/api/vms/vm1/attachment", query={"resourceGroup": stack.group}))
    assert detached["status"] == "Succeeded" and detached["result"]["unmount"]["mode"] == "copy", detached
    assert script_runs(stack, "detach") == 1
    assert manifest(stack, "vm1") == shared
    assert run(stack, "vm1", f"mountpoint -q {HOME} || echo local")["output"] == "local\n"


def test_every_message_delivered_twice_gives_one_copy_one_fstab_line_one_record(
    stack: Stack, storage: str
) -> None:
    answer = stack.api.post(
        f"/api/storage/{storage}/attachments", {"vm": "vm1", "resourceGroup": stack.group}
    )
    operation_id = answer.json()["id"]
    stack.app.queue.send(operation_id)  # the same message, twice on the queue
    operation = stack.run(answer)
    assert operation["status"] == "Succeeded", operation
    assert script_runs(stack, "attach") == 1
    assert run(stack, "vm1", "grep -c ' /home/azureuser ' /etc/fstab")["output"] == "1\n"
    assert run(stack, "vm1", "ls -d /home/azureuser.azlin-backup-* | wc -l")["output"] == "1\n"
    assert [a.vm for a in stack.app.attachments.list_for_storage(storage)] == ["vm1"]


def about(stack: Stack, event: dict[str, Any], vm_name: str) -> bool:
    """The event is about that VM (or its run commands) in this test's resource group."""
    subject = str(event["subject"]).lower()
    return f"/resourcegroups/{stack.group}/".lower() in subject and f"/virtualmachines/{vm_name}".lower() in subject


def deliver_events_about(stack: Stack, vm_name: str) -> int:
    """Hand the app's Event Grid function every event the emulator published about a VM (and its
    run commands), as the subscription would; returns how many were delivered."""
    stack.azure.emulator.events.flush()
    events = [e for e in stack.azure.emulator.events.published if about(stack, e, vm_name)]
    for event in events:
        stack.api.index.publish("on_resource_event", event)
    return len(events)


def vm_reads(stack: Stack, vm_name: str) -> int:
    return sum(1 for e in stack.log.snapshot() if e.method == "GET" and e.path.endswith(f"/virtualMachines/{vm_name}"))


def test_a_vm_created_with_the_tag_is_attached_by_its_event_alone(stack: Stack, storage: str) -> None:
    vm(stack, "tagged", tags={"azlin-storage": storage})
    assert deliver_events_about(stack, "tagged") == 1
    reads = vm_reads(stack, "tagged")
    assert reads >= 1
    deliver_events_about(stack, "tagged")  # redelivered
    assert vm_reads(stack, "tagged") == reads  # dropped by its event id before any read
    for _ in range(10):
        if not stack.pump.drain():
            break
    record = stack.api.get("/api/vms/tagged/attachment", query={"resourceGroup": stack.group})
    assert record.status == 200 and record.json()["storage"] == storage, record
    assert run(stack, "tagged", "findmnt -n -o SOURCE /home/azureuser")["output"].strip().endswith("/home")

    vm(stack, "tagged", tags={"azlin-storage": storage, "team": "a"})  # an update: a new write event
    deliver_events_about(stack, "tagged")  # every event again, its run commands' too, out of order
    stack.pump.drain()
    assert script_runs(stack, "attach") == 1


def test_untagged_opted_out_and_unknown_storage_vms(stack: Stack, storage: str) -> None:
    vm(stack, "plain")
    vm(stack, "optout", tags={"azlin-storage": "none"})
    vm(stack, "wrong", tags={"azlin-storage": "nosuchstorage1"})
    for name in ("plain", "optout", "wrong"):
        deliver_events_about(stack, name)
    stack.pump.drain()
    assert stack.api.get("/api/vms/plain/attachment", query={"resourceGroup": stack.group}).status == 404
    assert stack.api.get("/api/vms/optout/attachment", query={"resourceGroup": stack.group}).status == 404
    queued = [
        o["id"] for o in stack.app.state.table("Operations").list_entities() if "vm/" in str(o.get("target"))
    ]
    assert len(queued) == 1  # only the VM whose tag names a storage
    failed = stack.api.get(f"/api/operations/{queued[0]}").json()
    assert (failed["params"]["storage"], failed["status"]) == ("nosuchstorage1", "Failed")
    assert failed["error"]["code"] == "StorageNotFound"


def as_cloud_event(event: dict[str, Any]) -> dict[str, Any]:
    """The same event in the CloudEvents 1.0 schema (an event subscription's other choice)."""
    return {
        "specversion": "1.0",
        "type": event["eventType"],
        "source": event["topic"],
        "id": event["id"],
        "time": event["eventTime"],
        "subject": event["subject"],
        "datacontenttype": "application/json",
        "data": event["data"],
    }


def test_a_resource_groups_default_storage_attaches_untagged_vms_from_cloud_events(
    stack: Stack, storage: str
) -> None:
    answer = stack.api.put(f"/api/resource-groups/{stack.group}/default-storage", {"storage": storage})
    assert answer.status == 200, answer
    vm(stack, "plain")  # no tag: the group's default applies
    vm(stack, "optout", tags={"azlin-storage": "none"})
    stack.azure.emulator.events.flush()
    for name in ("plain", "optout"):
        events = [e for e in stack.azure.emulator.events.published if about(stack, e, name)]
        assert events and all(e["eventType"] for e in events)
        for event in events:
            stack.api.index.publish("on_resource_event", as_cloud_event(event))
            stack.api.index.publish("on_resource_event", as_cloud_event(event))  # redelivered
    for _ in range(10):
        if not stack.pump.drain():
            break
    attached = stack.api.get("/api/vms/plain/attachment", query={"resourceGroup": stack.group})
    assert attached.status == 200 and attached.json()["storage"] == storage
    assert stack.api.get("/api/vms/optout/attachment", query={"resourceGroup": stack.group}).status == 404
    assert script_runs(stack, "attach") == 1


def test_the_share_is_mounted_nosuid_nodev_and_verify_checks_it(stack: Stack, storage: str) -> None:
    """A setuid-root binary root on one VM put on the share gives nobody root on another."""
    assert attach(stack, storage, "vm1")["status"] == "Succeeded"
    vm(stack, "vm2", key="ssh-ed25519 AAAAsecond me@desktop")
    assert attach(stack, storage, "vm2")["status"] == "Succeeded"
    planted = run(stack, "vm1", f"cp /usr/bin/id {HOME}/rootid && chown root:root {HOME}/rootid && chmod 4755 {HOME}/rootid")
    assert planted["exitCode"] == 0, planted
    ran = run(stack, "vm2", f"runuser -u azureuser -- {HOME}/rootid -u")
    assert ran["output"] == "1000\n", ran  # the setuid bit does not count on this mount
    fstab = run(stack, "vm2", f"grep ' {HOME} ' /etc/fstab")["output"].split()
    assert {"nosuid", "nodev"} <= set(fstab[3].split(","))
    assert verify(stack, "vm2")["result"]["health"] == "healthy"

    run(stack, "vm2", f"mount -o remount,bind,suid,dev {HOME}")
    unsafe = verify(stack, "vm2")["result"]
    assert (unsafe["health"], unsafe["attachment"]["lastError"]) == (
        "unsafeMount", f"{HOME} is mounted without nosuid,nodev"), unsafe


def test_a_hostile_mount_source_reaches_records_and_the_digest_bounded_and_escaped(
    stack: Stack, storage: str, functions: FunctionIndex
) -> None:
    """Root on a VM mounts something of its own on the home, under a source name written to
    ping a channel and format the digest: it is a wrong source, shown as text."""
    assert attach(stack, storage, "vm1")["status"] == "Succeeded"
    source = "**@channel** [urgent](https://evil.example) <!here>" + "x" * 2000
    mounted = run(stack, "vm1", f"umount -l {HOME} && mount -t tmpfs -o size=1m {shlex.quote(source)} {HOME} "
                                "&& echo mounted")
    assert mounted["output"] == "mounted\n", mounted
    checked = verify(stack)["result"]
    assert checked["health"] == "wrongSource", checked
    error = checked["attachment"]["lastError"]
    assert error.startswith(f"{HOME} is mounted from **@channel** [urgent](https://evil.example) <!here>xxx")
    assert len(error) < 500 and "more characters" in error  # bounded in the record
    functions.fire_timer("send_cost_digest")
    markdown = stack.api.get("/api/digests/latest").json()["markdown"]
    (line,) = [line for line in markdown.splitlines() if "VM **vm1**" in line]
    assert "@channel" not in line and "[urgent](" not in line and "<!here>" not in line, line
    assert r"\*\*@" + "\u2060" + r"channel\*\* \[urgent\]\(https://evil.example\) \<\!here\>" in line, line
