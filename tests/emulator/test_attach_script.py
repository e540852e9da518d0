"""The attach script (`shared/scripts/attach.sh`) run for real in sandbox VMs through managed Run
Command: the home becomes the share without losing a byte, and every failure leaves the home
exactly as it was and the share untouched, or converges on the next attempt."""

from __future__ import annotations

import os
import shutil
import stat
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from local import playground
from shared.domain.mounting import ScriptRun
from shared.scripts import run_command_script
from tests.emulator.conftest import Azure, needs_sandbox
from tests.emulator.trees import BUILD, MANIFEST, digest, python

pytestmark = needs_sandbox
ATTACH = run_command_script("attach")
HOME = "/home/azureuser"
FILES = 1000


def run_script(
    azure: Azure, vm: str, script: str, timeout: int, **parameters: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Run a VM script through a managed Run Command; returns (its RESULT, the instance view)."""
    view = playground.run(azure.rest, azure.group, vm, script, parameters, timeout=timeout)
    run = ScriptRun(view["executionState"], view.get("exitCode"), view["output"], view["error"])
    return run.result or {}, view


def attach(
    azure: Azure, vm: str, spec: str, *, timeout: int = 120, **extra: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    return run_script(
        azure,
        vm,
        ATTACH,
        timeout,
        **{"NFS_ENDPOINT": spec, "MOUNT_POINT": HOME, "OWNER": "azureuser", **extra},
    )


def manifest(azure: Azure, vm: str, root: str, tag: str) -> tuple[str, int]:
    return digest(
        azure.run(vm, python(MANIFEST, "ROOT", "OUT"), ROOT=root, OUT=f"/var/tmp/manifest-{tag}.json")
    )


@pytest.fixture
def world(azure: Azure) -> dict[str, str]:
    subnet = azure.network("vnet1")
    spec = azure.nfs_storage(azure.unique("st"), subnet)
    azure.vm("vm1", subnet)
    built = azure.run(
        "vm1", python(BUILD, "ROOT", "COUNT", "OWNER"), ROOT=HOME, COUNT=str(FILES), OWNER="azureuser"
    )
    assert built["exitCode"] == 0, built["error"]
    return {"spec": spec, "subnet": subnet}


def fstab_lines(azure: Azure, vm: str) -> list[str]:
    return [line for line in azure.run(vm, "cat /etc/fstab\n")["output"].splitlines() if HOME in line]


def test_attach_to_an_empty_share_moves_the_whole_home_onto_it(azure: Azure, world: dict[str, str]) -> None:
    before = manifest(azure, "vm1", HOME, "before")
    assert before[1] > FILES

    result, view = attach(azure, "vm1", world["spec"])

    assert view["exitCode"] == 0 and result["success"] is True, view
    assert (result["backedUpFiles"], result["copiedFiles"]) == (before[1] - 1, before[1] - 1)
    assert result["ownerUid"] == 1000 and result["rolledBack"] is False
    assert manifest(azure, "vm1", HOME, "after") == before  # the share holds exactly the home
    assert manifest(azure, "vm1", result["backupPath"], "backup") == before  # and the backup is intact
    source = azure.run("vm1", f"findmnt -n -o SOURCE --mountpoint {HOME}\n")["output"].strip()
    assert source == world["spec"]
    assert fstab_lines(azure, "vm1") == [
        f"{world['spec']} {HOME} nfs vers=4,minorversion=1,sec=sys,nconnect=4,nosuid,nodev,_netdev,nofail 0 0"
    ]


def test_attach_again_changes_nothing(azure: Azure, world: dict[str, str]) -> None:
    first, _ = attach(azure, "vm1", world["spec"])
    after_first = manifest(azure, "vm1", HOME, "first")
    again, view = attach(azure, "vm1", world["spec"], OWNER_UID="1000")
    assert view["exitCode"] == 0 and again["alreadyAttached"] is True and again["copiedFiles"] == 0
    assert manifest(azure, "vm1", HOME, "again") == after_first
    assert len(fstab_lines(azure, "vm1")) == 1
    backups = azure.run("vm1", "ls -d /home/azureuser.azlin-backup-* | wc -l\n")["output"].strip()
    assert backups == "1" and first["backupPath"].startswith(HOME + ".azlin-backup-")


def test_a_second_vm_sees_the_shared_home_and_keeps_its_own_in_a_backup(
    azure: Azure, world: dict[str, str]
) -> None:
    attach(azure, "vm1", world["spec"])
    shared = manifest(azure, "vm1", HOME, "vm1")
    azure.vm("vm2", world["subnet"], key="ssh-ed25519 AAAAsecond vm2@laptop")
    own = azure.run(
        "vm2", 'echo "vm2 only" > /home/azureuser/mine.txt && chown azureuser: /home/azureuser/mine.txt\n'
    )
    assert own["exitCode"] == 0
    vm2_home = manifest(azure, "vm2", HOME, "vm2-own")

    result, view = attach(azure, "vm2", world["spec"], OWNER_UID="1000")

    assert view["exitCode"] == 0 and result["copiedFiles"] == 0, view
    assert manifest(azure, "vm2", result["backupPath"], "vm2-backup") == vm2_home
    keys = azure.run("vm2", f"cat {HOME}/.ssh/authorized_keys\n")["output"].splitlines()
    assert keys == ["ssh-ed25519 AAAAvm own@vm", "ssh-ed25519 AAAAsecond vm2@laptop"]  # merged, none lost
    written = azure.run(
        "vm2", f"echo from-vm2 > {HOME}/shared-note && cat {HOME}/projects/p1/src/'file 1.txt'\n"
    )
    assert written["output"] == "line 1\n" * 2
    assert azure.run("vm1", f"cat {HOME}/shared-note\n")["output"] == "from-vm2\n"
    assert manifest(azure, "vm1", HOME, "vm1-later")[1] == shared[1] + 1


def test_vms_attaching_at_once_publish_one_home_and_keep_every_key(
    azure: Azure, world: dict[str, str]
) -> None:
    """Three VMs attach to the empty share at the same moment, as a fleet does: the share's lock
    lets exactly one publish its home; the others see it published and keep theirs in a backup;
    every VM's key ends up in the shared authorized_keys."""
    vms = {"vm1": "ssh-ed25519 AAAAvm own@vm"}
    for name in ("vm2", "vm3"):
        vms[name] = f"ssh-ed25519 AAAA{name} {name}@laptop"
        azure.vm(name, world["subnet"], key=vms[name])
    for name in vms:
        azure.run(name, f"echo {name} > {HOME}/{name}-only && chown azureuser: {HOME}/{name}-only\n")
    before = {name: manifest(azure, name, HOME, f"{name}-before") for name in vms}

    with ThreadPoolExecutor(len(vms)) as pool:
        runs = dict(zip(vms, pool.map(lambda name: attach(azure, name, world["spec"]), vms), strict=True))

    assert all(view["exitCode"] == 0 and result["success"] for result, view in runs.values()), runs
    published = [name for name, (result, _) in runs.items() if result["copiedFiles"] > 0]
    assert len(published) == 1, runs
    publisher = published[0]
    for name, (result, _) in runs.items():
        assert manifest(azure, name, result["backupPath"], f"{name}-backup") == before[name]
        listing = azure.run(name, f"ls {HOME} | grep -- -only\n")["output"].split()
        assert listing == [f"{publisher}-only"]  # one home on the share, whichever VM it sees it from
        keys = azure.run(name, f"cat {HOME}/.ssh/authorized_keys\n")["output"].splitlines()
        assert sorted(keys) == sorted(set(vms.values())), keys  # nobody's key lost, none twice
    assert manifest(azure, publisher, HOME, "shared")[1] == before[publisher][1]


def test_a_system_account_home_is_never_shared(azure: Azure, world: dict[str, str]) -> None:
    before = manifest(azure, "vm1", HOME, "before")
    azure.run("vm1", "mkdir -p /home/daemon\n")
    result, view = attach(azure, "vm1", world["spec"], OWNER="daemon", MOUNT_POINT="/home/daemon")
    assert view["exitCode"] == 65 and "outside the range of normal users" in result["errors"][0], view
    assert manifest(azure, "vm1", HOME, "after") == before
    assert azure.run("vm1", "mountpoint -q /home/daemon || echo not-mounted\n")["output"] == "not-mounted\n"


def vm_state(azure: Azure, vm: str) -> str:
    """What a refused attach must leave as it was: mounts, fstab, the state directory, the homes."""
    return azure.run(vm, "findmnt -rn -o TARGET,SOURCE | sort; cat /etc/fstab; ls -la /var/lib/azlin 2>&1; "
                         "ls -la /home /opt /root /var/spool/cron 2>&1\n")["output"]


REFUSED_HOMES = [
    ("/var/spool/cron/crontabs", "crontabs", 64, "not a user's home"),
    ("/root/bin", "bin", 64, "not a user's home"),
    ("/opt/x", "x", 64, "not a user's home"),
    ("/home/azureuser/work", "work", 64, "not a user's home"),
    ("/home/azureuser/work", "azureuser", 64, "not a user's home"),
    ("/home/nosuchuser", "nosuchuser", 65, "does not exist"),
    ("/data/homes/azureuser", "azureuser", 64, "not a user's home"),  # a root only when the operator adds it
]


def test_the_script_refuses_anything_but_a_users_home(azure: Azure, world: dict[str, str]) -> None:
    azure.run("vm1", "mkdir -p /opt/x /var/spool/cron/crontabs /home/azureuser/work\n")
    before = vm_state(azure, "vm1"), manifest(azure, "vm1", HOME, "before")
    for mount_point, owner, code, why in REFUSED_HOMES:
        result, view = attach(azure, "vm1", world["spec"], MOUNT_POINT=mount_point, OWNER=owner)
        assert view["exitCode"] == code and why in result["errors"][0], (mount_point, view)
    assert (vm_state(azure, "vm1"), manifest(azure, "vm1", HOME, "after")) == before


def test_a_home_under_a_directory_a_user_can_write_is_refused(azure: Azure, world: dict[str, str]) -> None:
    azure.run("vm1", "mkdir -p /data/homes/azureuser && chown azureuser /data/homes/azureuser "
                     "&& chmod 0775 /data/homes && chgrp azureuser /data/homes\n")
    before = vm_state(azure, "vm1")
    result, view = attach(azure, "vm1", world["spec"], MOUNT_POINT="/data/homes/azureuser", HOME_ROOTS="/data/homes")
    assert view["exitCode"] == 65 and "writable by someone other than root" in result["errors"][0], view
    assert vm_state(azure, "vm1") == before
    azure.run("vm1", "chmod 0755 /data/homes && chgrp root /data/homes\n")  # the operator fixes it
    result, view = attach(azure, "vm1", world["spec"], MOUNT_POINT="/data/homes/azureuser", HOME_ROOTS="/data/homes")
    assert view["exitCode"] == 0 and result["success"] is True, view


def test_a_uid_mismatch_is_refused_before_anything_changes(azure: Azure, world: dict[str, str]) -> None:
    before = manifest(azure, "vm1", HOME, "before")
    result, view = attach(azure, "vm1", world["spec"], OWNER_UID="1234")
    assert view["exitCode"] == 65 and result["success"] is False
    assert "UID 1000 here" in result["errors"][0]
    assert manifest(azure, "vm1", HOME, "after") == before


@pytest.mark.parametrize("inject", ["unreachable", "fstab", "copy", "killed"])
def test_a_failure_at_any_step_leaves_the_home_exactly_as_it_was(
    azure: Azure, world: dict[str, str], inject: str
) -> None:
    before = manifest(azure, "vm1", HOME, "before")
    spec, timeout = world["spec"], 120
    if inject == "unreachable":  # an account no DNS knows: the mount is refused
        spec = "nosuchacct.file.core.windows.net:/nosuchacct/home"
    elif inject == "fstab":
        azure.run("vm1", "mount --bind -o ro /etc/fstab /etc/fstab\n")
    elif inject == "copy":  # the copy fails half way, as when the share fills up
        azure.run(
            "vm1",
            "mkdir -p /usr/local/bin && cat > /usr/local/bin/cp <<'EOF'\n#!/bin/bash\n"
            "/bin/cp \"$@\" 2>/dev/null; echo 'cp: error writing: No space left on device' >&2; exit 1\nEOF\n"
            "chmod +x /usr/local/bin/cp\n",
        )
    elif inject == "killed":  # Run Command's timeout kills the script while it copies
        azure.run(
            "vm1",
            "mkdir -p /usr/local/bin && cat > /usr/local/bin/cp <<'EOF'\n#!/bin/bash\nsleep 30\nEOF\n"
            "chmod +x /usr/local/bin/cp\n",
        )
        timeout = 3

    result, view = attach(azure, "vm1", spec, timeout=timeout)

    assert view["exitCode"] != 0
    if inject == "killed":  # the handler's way: Failed, exit code -1, the copy still running
        assert (view["executionState"], view["exitCode"]) == ("Failed", -1)
        assert azure.run("vm1", "pgrep -c -f 'sleep 30' || true\n")["output"] == "1\n"
        azure.run("vm1", "rm /usr/local/bin/cp\n")
        retried, again = attach(azure, "vm1", world["spec"])  # the next attempt
        assert again["exitCode"] == 0 and retried["success"] is True, again
        assert "ending what the killed run" in again["error"]  # it stopped the leftover copy first
        assert azure.run("vm1", "pgrep -c -f 'sleep 30' || true\n")["output"] == "0\n"
        assert manifest(azure, "vm1", HOME, "converged") == before
        return
    assert result["success"] is False and result["errors"], view
    assert azure.run("vm1", f"mountpoint -q {HOME} || echo unmounted\n")["output"] == "unmounted\n"
    assert manifest(azure, "vm1", HOME, "after") == before
    assert fstab_lines(azure, "vm1") == []
    listing = azure.run(
        "vm1", f"mkdir -p /mnt/check && mount -t nfs {world['spec']} /mnt/check && ls -A /mnt/check "
            "| grep -cvx .azlin-storage\n"
    )
    assert listing["output"].strip() == "0"  # the share is untouched


DETACH = run_command_script("detach")


def detach(azure: Azure, vm: str, spec: str, **extra: str) -> tuple[dict[str, Any], dict[str, Any]]:
    return run_script(azure, vm, DETACH, 120, **{"NFS_ENDPOINT": spec, "MOUNT_POINT": HOME, "OWNER": "azureuser", **extra})


def test_detach_restore_gives_back_exactly_the_original_home(azure: Azure, world: dict[str, str]) -> None:
    before = manifest(azure, "vm1", HOME, "before")
    attached, _ = attach(azure, "vm1", world["spec"])
    azure.run("vm1", f"echo shared-only > {HOME}/written-while-attached\n")
    result, view = detach(azure, "vm1", world["spec"], MODE="restore", BACKUP_PATH=attached["backupPath"])
    assert view["exitCode"] == 0 and result["success"] is True, view
    assert manifest(azure, "vm1", HOME, "restored") == before
    assert fstab_lines(azure, "vm1") == []
    share = azure.run(
        "vm1",
        f"mkdir -p /mnt/s && mount -t nfs {world['spec']} /mnt/s && cat /mnt/s/written-while-attached\n",
    )
    assert share["output"] == "shared-only\n"  # nothing on the share was deleted


def test_detach_copy_gives_exactly_the_shares_contents_and_keeps_the_backup(
    azure: Azure, world: dict[str, str]
) -> None:
    attached, _ = attach(azure, "vm1", world["spec"])
    azure.run("vm1", f"runuser -u azureuser -- sh -c 'echo new > {HOME}/new-on-share'\n")
    shared = manifest(azure, "vm1", HOME, "shared")
    result, view = detach(azure, "vm1", world["spec"], MODE="copy", BACKUP_PATH=attached["backupPath"])
    assert view["exitCode"] == 0 and result["success"] is True, view
    assert azure.run("vm1", f"mountpoint -q {HOME} || echo local\n")["output"] == "local\n"
    assert manifest(azure, "vm1", HOME, "copied") == shared
    assert result["keptPath"] == attached["backupPath"]
    assert azure.run("vm1", f"test -d {attached['backupPath']} && echo kept\n")["output"] == "kept\n"
    again, view = detach(azure, "vm1", world["spec"])
    assert view["exitCode"] == 0 and again["success"] is True  # not attached any more: success


def test_devices_and_setuid_files_on_the_share_give_nothing_here_and_are_not_copied_out(
    azure: Azure, world: dict[str, str]
) -> None:
    """Root on another VM may put device nodes and setuid-root files on the share. A sandbox VM's
    root (a user namespace) cannot make a device node, so this test, real root on the machine that
    holds the share's files, plays that VM."""
    attached, _ = attach(azure, "vm1", world["spec"])
    azure.run("vm1", f"runuser -u azureuser -- mkdir {HOME}/planted\n")
    account, share = world["spec"].rsplit(":/", 1)[1].split("/")
    planted = azure.emulator.machines.share_files(account, share) / "planted"
    os.mknod(planted / "zero", 0o666 | stat.S_IFCHR, os.makedev(1, 5))
    os.mknod(planted / "null", 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    shutil.copy("/bin/true", planted / "rootshell")
    os.chown(planted / "rootshell", 0, 0)
    os.chmod(planted / "rootshell", 0o4755)
    shutil.copy("/bin/true", planted / "groupshell")
    os.chmod(planted / "groupshell", 0o2755)

    opened = azure.run("vm1", f"head -c 1 {HOME}/planted/zero | wc -c\n")
    assert opened["output"] == "0\n" and "Permission denied" in opened["error"], opened
    without_nodev = azure.run("vm1", f"mkdir -p /run/dev-on && mount --bind {HOME} /run/dev-on "
                                     "&& mount -o remount,bind,nosuid,dev /run/dev-on "
                                     "&& head -c 1 /run/dev-on/planted/zero | wc -c; umount /run/dev-on\n")
    assert without_nodev["output"] == "1\n", without_nodev  # so it was nodev that refused it

    result, view = detach(azure, "vm1", world["spec"], MODE="copy", BACKUP_PATH=attached["backupPath"])
    assert view["exitCode"] == 0 and result["success"] is True, view
    assert any("2 device files on the share were not copied" in e for e in result["errors"]), result
    local = azure.run("vm1", f"find {HOME} \\( -type b -o -type c -o -perm /6000 \\) -printf '%p\\n'; "
                             f"stat -c '%n %U %a' {HOME}/planted/rootshell {HOME}/planted/groupshell\n")
    assert local["output"] == (f"{HOME}/planted/rootshell azureuser 755\n"
                               f"{HOME}/planted/groupshell azureuser 755\n"), local


# The home's user, racing the script: the keys root might read or write in the home, the share or
# the backup, and the script's temporary files, are swapped for links to /etc/shadow, again and
# again. (A .ssh swapped for a link to /etc is refused outright: test_keys_are_merged_...)
RACER = r"""
count=0
cp /home/azureuser/.ssh/authorized_keys /var/tmp/keys-stash
while [ -e /var/tmp/race-on ]; do
    for base in /home/azureuser /home/azureuser/.azlin-incoming-* /home/azureuser.azlin-backup-*; do
        [ -d "$base" ] || continue
        if ln -sfn /etc/shadow "$base/.ssh/authorized_keys" 2>/dev/null; then  # then the real file again
            cp /var/tmp/keys-stash "$base/.ssh/.keys-new" 2>/dev/null \
                && mv -fT "$base/.ssh/.keys-new" "$base/.ssh/authorized_keys" 2>/dev/null
        fi
        for temporary in "$base"/.ssh/.authorized_keys.* "$base"/.authorized_keys.*; do
            [ -e "$temporary" ] || [ -L "$temporary" ] && ln -sfn /etc/shadow "$temporary" 2>/dev/null
        done
    done
    count=$((count + 1))
done
echo "$count" > /var/tmp/race-count
"""
# A second racer does nothing but watch for the key merge's temporary file (globbing forks
# nothing, so it looks thousands of times a second) and swap it for a link the moment it appears.
TEMPORARY_RACER = r"""
while [ -e /var/tmp/race-on ]; do
    for temporary in /home/azureuser/.ssh/.authorized_keys.* /home/azureuser/.azlin-incoming-*/.ssh/.authorized_keys.*; do
        [ -f "$temporary" ] && [ ! -L "$temporary" ] && ln -sfn /etc/shadow "$temporary" 2>/dev/null \
            && hits=$((hits + 1))
    done
done
echo "${hits:-0}" > /var/tmp/race-hits
"""
ETC = "stat -c '%n %u %g %a %s' /etc/shadow /etc/passwd /etc; sha256sum /etc/shadow; ls -A /etc | sha256sum\n"
USERS_FILES = ("find / -xdev \\( -path /proc -o -path /home -o -path /var/tmp -o -path /tmp \\) -prune -o "
               "-user azureuser -print\n")


def test_a_user_racing_the_script_with_links_to_etc_shadow_changes_nothing_outside_the_home(
    azure: Azure, world: dict[str, str]
) -> None:
    etc, users_files = azure.run("vm1", ETC)["output"], azure.run("vm1", USERS_FILES)["output"]
    started = azure.run("vm1", "touch /var/tmp/race-on && chmod 0666 /var/tmp/race-on && "
                               "setsid runuser -u azureuser -- bash -c \"$RACER\" >/dev/null 2>&1 < /dev/null & "
                               "setsid runuser -u azureuser -- bash -c \"$TEMPORARY\" >/dev/null 2>&1 < /dev/null & "
                               "echo started\n", RACER=RACER, TEMPORARY=TEMPORARY_RACER)
    assert started["output"] == "started\n", started
    outcomes, errors = [], []
    for _ in range(3):
        result, view = attach(azure, "vm1", world["spec"])
        mounted = azure.run("vm1", f"mountpoint -q {HOME} && echo mounted || echo local\n")["output"].strip()
        if result["success"]:
            assert (view["exitCode"], mounted) == (0, "mounted"), view
            outcomes.append("attached")
            back, view = detach(azure, "vm1", world["spec"], MODE="restore", BACKUP_PATH=result["backupPath"])
            assert back["success"] is True, view
        else:  # failed cleanly: rolled back (or refused before it moved anything), the home on its disk
            assert mounted == "local" and result["backupPath"] is None, view
            outcomes.append("rolled back" if result["rolledBack"] else "refused")
            errors += result["errors"]
    azure.run("vm1", "rm -f /var/tmp/race-on; sleep 1\n")
    swaps = int(azure.run("vm1", "cat /var/tmp/race-count\n")["output"])
    hits = int(azure.run("vm1", "cat /var/tmp/race-hits\n")["output"])
    assert swaps >= 200, swaps  # the race really ran, hundreds of times
    assert azure.run("vm1", ETC)["output"] == etc  # /etc/shadow: same owner, mode and bytes
    assert azure.run("vm1", USERS_FILES)["output"] == users_files  # nothing outside the home became the user's
    print("race:", swaps, "swaps,", hits, "temporary files swapped;", outcomes, errors)


def test_a_reboot_remounts_and_a_vanished_storage_does_not_hang_it(
    azure: Azure, world: dict[str, str]
) -> None:
    attach(azure, "vm1", world["spec"])
    attached = manifest(azure, "vm1", HOME, "attached")
    azure.clients.compute.virtual_machines.begin_restart(azure.group, "vm1").result()
    assert manifest(azure, "vm1", HOME, "rebooted") == attached

    account = world["spec"].split(".")[0]
    azure.clients.storage.storage_accounts.delete(azure.group, account)
    azure.clients.compute.virtual_machines.begin_restart(azure.group, "vm1").result()
    after = azure.run(
        "vm1", f"mountpoint -q {HOME} || echo unmounted; touch /root/still-usable && echo usable\n"
    )
    assert after["output"] == "unmounted\nusable\n"


def test_hostile_values_are_refused_and_never_run(azure: Azure, world: dict[str, str]) -> None:
    before = manifest(azure, "vm1", HOME, "before")
    for field, value in (
        ("MOUNT_POINT", "/home/x$(touch /root/pwned)"),
        ("OWNER", "azureuser;touch /root/pwned"),
        ("NFS_ENDPOINT", world["spec"] + "`touch /root/pwned`"),
    ):
        result, view = attach(azure, "vm1", world["spec"], **{field: value})
        assert view["exitCode"] == 64 and result["success"] is False, (field, view)
    assert azure.run("vm1", "test -e /root/pwned && echo pwned || echo clean\n")["output"] == "clean\n"
    assert manifest(azure, "vm1", HOME, "after") == before


def test_the_nfs_client_is_installed_only_when_missing_after_the_package_manager_is_free(
    azure: Azure, world: dict[str, str]
) -> None:
    # A VM without mount.nfs, whose package manager is busy for a moment (a dpkg run); apt-get
    # here is a stand-in that records its call and puts the client back.
    setup = azure.run(
        "vm1",
        "set -e\n"
        "mkdir -p /usr/local/bin /var/lib/azlin-test\n"
        "mv /usr/sbin/mount.nfs /var/lib/azlin-test/mount.nfs\n"
        "printf '%s\\n' '#!/bin/bash' 'echo \"apt-get $*\" >> /var/lib/azlin-test/calls' "
        "'cp /var/lib/azlin-test/mount.nfs /usr/sbin/mount.nfs' > /usr/local/bin/apt-get\n"
        "chmod +x /usr/local/bin/apt-get\n"
        "cp /bin/sleep /usr/local/bin/dpkg\n"
        "nohup /usr/local/bin/dpkg 3 >/dev/null 2>&1 &\n",
    )
    assert setup["exitCode"] == 0, setup["error"]
    started = time.monotonic()
    result, view = attach(azure, "vm1", world["spec"], LOCK_WAIT_SECONDS="60")
    assert view["exitCode"] == 0 and result["success"] is True, view
    assert time.monotonic() - started >= 2  # it waited for dpkg to finish
    calls = azure.run("vm1", "cat /var/lib/azlin-test/calls\n")["output"].splitlines()
    assert len(calls) == 1 and "install" in calls[0] and calls[0].endswith("nfs-common")

    again, view = attach(azure, "vm1", world["spec"])
    assert again["alreadyAttached"] is True
    assert len(azure.run("vm1", "cat /var/lib/azlin-test/calls\n")["output"].splitlines()) == 1  # not again


def test_an_attach_killed_then_rebooted_is_undone_and_redone_in_full(
    azure: Azure, world: dict[str, str]
) -> None:
    before = manifest(azure, "vm1", HOME, "before")
    azure.run(
        "vm1",
        "mkdir -p /usr/local/bin && printf '%s\\n' '#!/bin/bash' 'sleep 30' > /usr/local/bin/cp "
        "&& chmod +x /usr/local/bin/cp\n",
    )
    _, killed = attach(azure, "vm1", world["spec"], timeout=3)
    assert (killed["executionState"], killed["exitCode"]) == ("Failed", -1)
    azure.run("vm1", "rm /usr/local/bin/cp\n")
    azure.clients.compute.virtual_machines.begin_restart(azure.group, "vm1").result()  # mounts gone

    result, view = attach(azure, "vm1", world["spec"])
    assert view["exitCode"] == 0 and result["copiedFiles"] == before[1] - 1, view
    assert manifest(azure, "vm1", HOME, "after") == before
    leftovers = azure.run("vm1", f"ls -A {HOME} | grep -c azlin-incoming || true\n")["output"].strip()
    assert leftovers == "0"


def test_keys_are_merged_line_by_line_and_never_read_through_a_link(
    azure: Azure, world: dict[str, str]
) -> None:
    attach(azure, "vm1", world["spec"])
    # The shared file ends without a newline; a user made their VM's key file a link to a secret.
    azure.run("vm1", f"printf 'ssh-ed25519 AAAAshared a@b' > {HOME}/.ssh/authorized_keys\n")
    azure.vm("vm2", world["subnet"])
    azure.run("vm2", f"ln -sf /etc/shadow {HOME}/.ssh/authorized_keys\n")
    _, view = attach(azure, "vm2", world["spec"], OWNER_UID="1000")
    assert view["exitCode"] == 0, view
    keys = azure.run("vm2", f"cat {HOME}/.ssh/authorized_keys\n")["output"]
    assert keys == "ssh-ed25519 AAAAshared a@b"  # untouched: nothing safe to merge
    assert "root:" not in keys

    azure.vm("vm3", world["subnet"], key="ssh-ed25519 AAAAthird c@d")
    attach(azure, "vm3", world["spec"], OWNER_UID="1000")
    merged = azure.run("vm3", f"cat {HOME}/.ssh/authorized_keys\n")["output"].splitlines()
    assert merged == ["ssh-ed25519 AAAAshared a@b", "ssh-ed25519 AAAAthird c@d"]


def test_a_repeated_attach_still_reports_the_backup(azure: Azure, world: dict[str, str]) -> None:
    first, _ = attach(azure, "vm1", world["spec"])
    again, _ = attach(azure, "vm1", world["spec"])
    assert again["alreadyAttached"] is True and again["backupPath"] == first["backupPath"]


def test_a_detach_interrupted_after_it_began_is_finished_by_the_next(
    azure: Azure, world: dict[str, str]
) -> None:
    before = manifest(azure, "vm1", HOME, "before")
    attached, _ = attach(azure, "vm1", world["spec"])
    azure.run("vm1", "mount --bind -o ro /etc/fstab /etc/fstab\n")
    failed, view = detach(azure, "vm1", world["spec"], MODE="restore", BACKUP_PATH=attached["backupPath"])
    assert view["exitCode"] == 74 and failed["success"] is False
    azure.run("vm1", "umount /etc/fstab\n")
    done, view = detach(azure, "vm1", world["spec"], MODE="restore", BACKUP_PATH=attached["backupPath"])
    assert view["exitCode"] == 0 and done["success"] is True, view
    assert manifest(azure, "vm1", HOME, "restored") == before
    assert fstab_lines(azure, "vm1") == []


def test_detach_of_a_share_not_mounted_now_restores_or_refuses_clearly(
    azure: Azure, world: dict[str, str]
) -> None:
    before = manifest(azure, "vm1", HOME, "before")
    attached, _ = attach(azure, "vm1", world["spec"])
    azure.run("vm1", f"umount {HOME}\n")  # as after a boot without the storage
    refused, view = detach(azure, "vm1", world["spec"], MODE="copy", BACKUP_PATH=attached["backupPath"])
    assert view["exitCode"] == 69 and "mode=restore" in refused["errors"][0]
    restored, view = detach(azure, "vm1", world["spec"], MODE="restore", BACKUP_PATH=attached["backupPath"])
    assert view["exitCode"] == 0 and restored["notAttached"] is False, view
    assert manifest(azure, "vm1", HOME, "restored") == before
    nothing, view = detach(azure, "vm1", world["spec"])
    assert view["exitCode"] == 0 and nothing["notAttached"] is True
