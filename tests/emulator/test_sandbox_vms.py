"""Sandbox VMs: what a script writes stays in its VM and persists there; this machine never changes;
NFS mounts follow Azure's network rules and share one set of files between VMs; a reboot remounts
what fstab lists."""

from __future__ import annotations

import uuid
from pathlib import Path

from azure.mgmt.storage.models import StorageAccountUpdateParameters

from tests.emulator.conftest import Azure, host_snapshot, needs_sandbox

pytestmark = needs_sandbox
MOUNT = (
    'set -e\nmkdir -p /mnt/home\nmount -t nfs -o vers=4,minorversion=1,sec=sys,nconnect=4 "$SPEC" /mnt/home\n'
)


def test_a_script_changes_its_vm_only_and_the_next_run_sees_it(azure: Azure) -> None:
    before = host_snapshot()
    marker = uuid.uuid4().hex
    subnet = azure.network("vnet1")
    azure.vm("vm1", subnet)
    azure.vm("vm2", subnet)
    write = azure.run(
        "vm1",
        'set -e\necho "# $MARK" >> /etc/fstab\nmkdir -p /home/azureuser/project\n'
        'echo "$MARK" > /home/azureuser/project/notes\nuseradd alice\n'
        'for d in /root /var /tmp /opt; do echo "$MARK" > "$d/azlin-$MARK"; done\n',
        MARK=marker,
    )
    assert write["exitCode"] == 0, write["error"]

    again = azure.run(
        "vm1",
        "tail -1 /etc/fstab\ncat /home/azureuser/project/notes\nid -u alice\ncat /root/azlin-$MARK\n",
        MARK=marker,
    )
    other = azure.run(
        "vm2",
        'grep -c "$MARK" /etc/fstab; ls /home; id alice 2>&1; ls /root /tmp /var /opt | grep -c azlin-\n',
        MARK=marker,
    )

    assert again["output"].splitlines() == [f"# {marker}", marker, "1001", marker]
    assert other["output"].splitlines() == ["0", "azureuser", "id: 'alice': no such user", "0"]
    assert host_snapshot() == before
    assert not any(Path(d, f"azlin-{marker}").exists() for d in ("/root", "/var", "/tmp", "/opt"))


def test_a_share_mounted_in_two_vms_shows_one_vms_write_to_the_other(azure: Azure) -> None:
    before = host_snapshot()
    subnet = azure.network("vnet1")
    spec = azure.nfs_storage(azure.unique("st"), subnet)
    azure.vm("vm1", subnet)
    azure.vm("vm2", subnet)

    first = azure.run(
        "vm1",
        MOUNT + 'findmnt -n -o SOURCE /mnt/home\necho "from vm1" > /mnt/home/hello\n'
        "chown azureuser: /mnt/home/hello\n",
        SPEC=spec,
    )
    second = azure.run(
        "vm2",
        MOUNT + 'cat /mnt/home/hello\nstat -c %U /mnt/home/hello\necho "from vm2" >> /mnt/home/hello\n',
        SPEC=spec,
    )
    back = azure.run("vm1", "cat /mnt/home/hello\n")

    assert first["exitCode"] == 0, first["error"]
    assert first["output"].splitlines() == [spec]
    assert second["output"].splitlines() == ["from vm1", "azureuser"]
    assert back["output"] == "from vm1\nfrom vm2\n"
    assert host_snapshot() == before


def test_a_vm_in_an_unlinked_unpeered_vnet_cannot_mount(azure: Azure) -> None:
    here = azure.network("vnet1", "10.1.0.0/16", "10.1.0.0/24")
    elsewhere = azure.network("vnet2", "10.2.0.0/16", "10.2.0.0/24")
    spec = azure.nfs_storage(azure.unique("st"), here)
    azure.vm("far", elsewhere)

    refused = azure.run("far", MOUNT, SPEC=spec)
    assert refused["exitCode"] == 32
    assert refused["error"] == "mount.nfs: Connection timed out\n"
    unknown = azure.run("far", MOUNT, SPEC="nosuchacct.file.core.windows.net:/nosuchacct/home")
    assert unknown["error"] == (
        "mount.nfs: Failed to resolve server nosuchacct.file.core.windows.net: Name or service not known\n"
    )


def test_peering_and_a_zone_link_make_the_share_reachable(azure: Azure) -> None:
    here = azure.network("vnet1", "10.1.0.0/16", "10.1.0.0/24")
    elsewhere = azure.network("vnet2", "10.2.0.0/16", "10.2.0.0/24")
    spec = azure.nfs_storage(azure.unique("st"), here)
    azure.vm("far", elsewhere)
    vnets = {
        name: f"{azure.group_path()}/providers/Microsoft.Network/virtualNetworks/{name}"
        for name in ("vnet1", "vnet2")
    }

    azure.link(vnets["vnet2"])  # the name now resolves, but no route to the endpoint yet
    assert azure.run("far", MOUNT, SPEC=spec)["error"] == "mount.nfs: Connection timed out\n"
    for local, remote in (("vnet1", "vnet2"), ("vnet2", "vnet1")):
        azure.rest.put(
            f"{vnets[local]}/virtualNetworkPeerings/to-{remote}",
            {
                "properties": {
                    "remoteVirtualNetwork": {"id": vnets[remote]},
                    "allowVirtualNetworkAccess": True,
                }
            },
        )
    mounted = azure.run("far", MOUNT + "findmnt -n -o SOURCE /mnt/home\n", SPEC=spec)
    assert mounted["exitCode"] == 0, mounted["error"]
    assert mounted["output"] == spec + "\n"


def test_a_missing_share_is_access_denied(azure: Azure) -> None:
    subnet = azure.network("vnet1")
    spec = azure.nfs_storage(azure.unique("st"), subnet)
    azure.vm("vm1", subnet)
    wrong = spec.replace("/home", "/other")
    refused = azure.run("vm1", MOUNT, SPEC=wrong)
    assert refused["exitCode"] == 32
    assert refused["error"] == f"mount.nfs: access denied by server while mounting {wrong}\n"


def test_a_reboot_unmounts_and_mount_a_restores_fstab_entries(azure: Azure) -> None:
    subnet = azure.network("vnet1")
    spec = azure.nfs_storage(azure.unique("st"), subnet)
    azure.vm("vm1", subnet)
    setup = azure.run(
        "vm1",
        MOUNT + 'echo data > /mnt/home/f\necho "$SPEC /mnt/home nfs '
        'vers=4,minorversion=1,sec=sys,_netdev,nofail 0 0" >> /etc/fstab\n'
        "mkdir -p /mnt/scratch && mount -t tmpfs scratch /mnt/scratch\n",
        SPEC=spec,
    )
    assert setup["exitCode"] == 0, setup["error"]

    azure.clients.compute.virtual_machines.begin_restart(azure.group, "vm1").result()

    after = azure.run(
        "vm1",
        "findmnt -n -o SOURCE /mnt/home\ncat /mnt/home/f\nmountpoint -q /mnt/scratch || echo scratch-gone\n",
    )
    assert after["output"].splitlines() == [spec, "data", "scratch-gone"]
    log = azure.run("vm1", "tail -1 /var/log/azlin-nfs-mount.log\n")["output"]
    assert f"{spec} /mnt/home " in log and "_netdev" in log and "nofail" in log


def test_requiring_secure_transfer_again_denies_plain_nfs_mounts(azure: Azure) -> None:
    subnet = azure.network("vnet1")
    account = azure.unique("st")
    spec = azure.nfs_storage(account, subnet)
    azure.vm("vm1", subnet)
    azure.clients.storage.storage_accounts.update(
        azure.group, account, StorageAccountUpdateParameters(enable_https_traffic_only=True))
    refused = azure.run("vm1", MOUNT, SPEC=spec)
    assert refused["exitCode"] == 32
    assert refused["error"] == f"mount.nfs: access denied by server while mounting {spec}\n"


def test_an_account_requiring_secure_transfer_lets_in_tls_mounts_only(azure: Azure) -> None:
    # encryption-in-transit-for-nfs-shares.md: with secure transfer required, only aznfs (TLS)
    # mounts; aznfs mounts from its local stunnel port, so the kernel shows 127.0.0.1
    # (Azure/AZNFS-mount src/nfsv4mountscript.sh).
    subnet = azure.network("vnet1")
    account = azure.unique("st")
    spec = azure.nfs_storage(account, subnet, secure_transfer=True)
    azure.vm("vm1", subnet)
    plain = azure.run("vm1", MOUNT, SPEC=spec)
    assert (plain["exitCode"], plain["error"]) == (32, f"mount.nfs: access denied by server while mounting {spec}\n")
    notls = azure.run("vm1", "mkdir -p /mnt/p && mount -t aznfs -o vers=4.1,notls \"$SPEC\" /mnt/p\n", SPEC=spec)
    assert notls["exitCode"] == 32
    tls = azure.run("vm1", 'mkdir -p /mnt/t && mount -t aznfs -o vers=4,minorversion=1,sec=sys "$SPEC" /mnt/t '
                           '&& findmnt -n -o SOURCE --mountpoint /mnt/t && touch /mnt/t/written\n', SPEC=spec)
    assert (tls["exitCode"], tls["output"]) == (0, f"127.0.0.1:/{account}/home\n"), tls


def test_scripts_get_the_agents_environment_not_this_machines(azure: Azure) -> None:
    azure.vm("vm1", azure.network("vnet1"))
    view = azure.run("vm1", 'echo "home=${HOME:-unset} path=$PATH"\nenv | grep -c "^PYTEST" || true\n')
    assert view["output"].splitlines() == [
        "home=unset path=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "0"]


def test_a_vm_has_its_own_devices_processes_and_hostname(azure: Azure) -> None:
    azure.vm("vm1", azure.network("vnet1"))
    view = azure.run("vm1", "hostname\nls /dev | tr '\\n' ' '\necho\nps -e -o pid= | wc -l\n"
                            "echo x > /dev/null && head -c 4 /dev/urandom | wc -c\nls /sys | wc -l\n")
    lines = view["output"].splitlines()
    assert lines[0] == "vm1"
    assert set(lines[1].split()) == {"null", "zero", "full", "random", "urandom", "tty", "pts", "shm", "ptmx",
                                     "fd", "stdin", "stdout", "stderr"}
    assert int(lines[2]) < 10  # PID 1 of the VM, its idle sleep, this script's processes: not this machine's
    assert lines[3] == "4"
    assert lines[4] == "0"  # no sysfs of this machine


ESCAPE = """
import os
marker = os.environ["MARKER"]
os.makedirs("/jail", exist_ok=True)
keep = os.open("/", os.O_RDONLY)
os.chroot("/jail")
os.fchdir(keep)
for _ in range(64):
    os.chdir("..")
os.chroot(".")
for where in ("/tmp", "/root", "/var/tmp"):
    open(f"{where}/{marker}", "w").write("escaped")
print("wrote")
"""


def test_root_in_a_vm_cannot_reach_this_machine(azure: Azure) -> None:
    marker = "escape-" + uuid.uuid4().hex
    before = host_snapshot()
    azure.vm("vm1", azure.network("vnet1"))
    escape = azure.run("vm1", f"python3 - <<'EOF'\n{ESCAPE}\nEOF\n", MARKER=marker)
    pattern = Path("/proc/sys/kernel/core_pattern").read_text()
    kernel = azure.run("vm1", f"echo '|/tmp/{marker}' > /proc/sys/kernel/core_pattern 2>&1; echo rc=$?\n"
                              "mknod /tmp/disk b 8 0 2>&1; echo rc=$?\n"
                              "mount -o remount,rw /proc/sys 2>&1; echo rc=$?\n")
    assert not any(Path(d, marker).exists() for d in ("/tmp", "/root", "/var/tmp"))
    assert escape["output"] in ("wrote\n", "")  # it wrote, if at all, inside the VM
    results = [line for line in kernel["output"].splitlines() if line.startswith("rc=")]
    assert results == ["rc=1", "rc=1", "rc=32"], kernel
    assert Path("/proc/sys/kernel/core_pattern").read_text() == pattern
    assert host_snapshot() == before
