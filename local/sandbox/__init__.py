"""Sandbox VMs for the Azure emulator: real Linux environments, made of namespaces, in which Run
Command scripts execute for real as root (never deployed; needs root and util-linux `unshare`).

- `Fabric` is the NFS service: a mount namespace of its own where each share is mounted once,
  under a source name equal to its NFS address (`<account>.file.core.windows.net:/<account>/<share>`).
- `SandboxVm` is one VM: a full overlay of this machine's root whose changes persist in the VM's own
  directory, entered in new user, mount, PID, UTS, IPC and network namespaces created inside the
  fabric's, so the fabric's shares are visible to the VM's `mount.nfs` helper
  (`vmroot/usr/sbin/mount.nfs`) and nothing the VM mounts or writes reaches this machine or another
  VM. The VM's root is root of its own user namespace only, and its root directory is pivoted.

A reboot is a new set of namespaces over the same directory, followed by `mount -a`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from local.processes import spawn

log = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent
BOOT_SCRIPT = HERE / "boot.sh"
FABRIC_SCRIPT = HERE / "fabric.sh"
VM_FILES = HERE / "vmroot"
SCRIPT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# Directories a fresh Azure image has empty; made opaque so this machine's content never shows.
OPAQUE_DIRS = {"home": 0o755, "root": 0o700, "tmp": 0o1777, "var/tmp": 0o1777}
OPAQUE_XATTR = "trusted.overlay.opaque"
# What the idle loop of boot.sh and fabric.sh runs; its parent is the namespaces' first process.
IDLE_CMDLINE = b"sleep\x0086400\x00"


class SandboxError(RuntimeError):
    pass


def sandbox_unavailable_reason() -> str | None:
    """Why sandboxes cannot run here, or None when they can (root and unshare are needed)."""
    if os.geteuid() != 0:
        return "sandbox VMs need root (mount namespaces and overlayfs)"
    for tool in ("unshare", "nsenter", "mount"):
        if shutil.which(tool) is None:
            return f"sandbox VMs need {tool} (util-linux)"
    if not Path("/usr/bin/python3").exists():
        return "sandbox VMs need /usr/bin/python3 (Debian's python3) to enter their user namespace"
    probe = subprocess.run(
        ["unshare", "--mount", "--pid", "--fork", "--", "true"], capture_output=True, check=False
    )
    if probe.returncode != 0:
        return "unshare failed: " + probe.stderr.decode(errors="replace").strip()
    return None


def _holder(command: list[str], env: dict[str, str], what: str) -> tuple[subprocess.Popen[bytes], int]:
    """Start a namespace-holding process; returns it and the PID (as this machine sees it) of the
    idle PID-1-like loop inside its namespaces, once setup is done and the loop runs."""
    process = spawn(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                    start_new_session=True)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process.poll() is not None:
            error = process.stderr.read().decode(errors="replace") if process.stderr else ""
            raise SandboxError(f"{what} failed to start: {error.strip()}")
        idle = [pid for pid in _descendants(process.pid) if _cmdline(pid) == IDLE_CMDLINE]
        if idle:
            return process, _parent(idle[0])
        time.sleep(0.02)
    _stop(process)
    raise SandboxError(f"{what} did not start within 20 s")


def _descendants(pid: int) -> list[int]:
    try:
        children = [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []
    return children + [d for child in children for d in _descendants(child)]


def _parent(pid: int) -> int:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat.rsplit(")", 1)[1].split()[1])


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)


def _run(command: list[str], what: str) -> None:
    result = subprocess.run(command, capture_output=True, check=False)
    if result.returncode != 0:
        raise SandboxError(f"{what}: {result.stderr.decode(errors='replace').strip()}")


class Fabric:
    """The NFS service of the emulator: every share's files, mounted once, seen by every VM."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.mounts = directory / "fabric"
        self.data = directory / "shares"
        self.work = directory / "share-work"
        self.empty = directory / "empty"
        self.snapshots = directory / "snapshots"
        self._holder: subprocess.Popen[bytes] | None = None
        self._pid = 0
        self._lock = threading.Lock()

    def start(self) -> None:
        for path in (self.mounts, self.data, self.work, self.empty):
            path.mkdir(parents=True, exist_ok=True)
        env = {"PATH": SCRIPT_PATH, "FABRIC_DIR": str(self.mounts)}
        self._holder, self._pid = _holder(
            ["unshare", "--mount", "--pid", "--fork", "--kill-child", "--propagation", "private", "--",
             str(FABRIC_SCRIPT)],
            env,
            "the storage fabric",
        )

    @property
    def pid(self) -> int:
        if self._holder is None or self._holder.poll() is not None:
            raise SandboxError("the storage fabric is not running")
        return self._pid

    def data_dir(self, account: str, share: str) -> Path:
        return self.data / account / share

    def add_share(self, account: str, share: str, *, tls: bool = False) -> Path:
        """Create (or keep) a share's files and mount them under its NFS address; idempotent. A
        share of an account that requires secure transfer is reached only through aznfs's TLS
        tunnel, which mounts it from a local stunnel port: the kernel shows the source as
        `127.0.0.1:/<account>/<share>` (Azure/AZNFS-mount src/nfsv4mountscript.sh), and so does
        its mount here."""
        with self._lock:
            data, work = self.data_dir(account, share), self.work / account / share
            data.mkdir(parents=True, exist_ok=True)
            work.mkdir(parents=True, exist_ok=True)
            target = self.mounts / account / share
            spec = f"{'127.0.0.1' if tls else account + '.file.core.windows.net'}:/{account}/{share}"
            script = (
                'mkdir -p "$1"; mountpoint -q "$1" || mount -t overlay "$2" '
                '-o "lowerdir=$3,upperdir=$4,workdir=$5" "$1"'
            )
            _run(
                [
                    "nsenter",
                    "-t",
                    str(self.pid),
                    "-m",
                    "--",
                    "/bin/bash",
                    "-c",
                    script,
                    "_",
                    str(target),
                    spec,
                    str(self.empty),
                    str(data),
                    str(work),
                ],
                f"mounting share {spec}",
            )
            return data

    def remove_share(self, account: str, share: str) -> None:
        """Unmount a share everywhere it is not in use and delete its files; idempotent."""
        with self._lock:
            target = self.mounts / account / share
            script = 'if mountpoint -q "$1"; then umount -l "$1"; fi; rmdir "$1" 2>/dev/null || true'
            _run(
                ["nsenter", "-t", str(self.pid), "-m", "--", "/bin/bash", "-c", script, "_", str(target)],
                f"unmounting share {account}/{share}",
            )
            shutil.rmtree(self.data_dir(account, share), ignore_errors=True)
            shutil.rmtree(self.work / account / share, ignore_errors=True)
        for name in self.snapshot_names(account, share):  # a snapshot cannot outlive its share
            self.drop_snapshot(account, share, name)

    # -- share snapshots: read-only copies, reached over NFS as <share>/.snapshot/<name> ---------

    def snapshot_dir(self, account: str, share: str, name: str) -> Path:
        return self.snapshots / account / share / name

    def snapshot_names(self, account: str, share: str) -> list[str]:
        folder = self.snapshots / account / share
        return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []

    def take_snapshot(self, account: str, share: str, name: str) -> None:
        """Copy the share's files as they are now (owners, modes, links, devices kept) and mount
        the copy read-only for the VMs: an overlay without an upper layer cannot be written, by
        root either, nor remounted writable."""
        with self._lock:
            copy = self.snapshot_dir(account, share, name)
            copy.parent.mkdir(parents=True, exist_ok=True)
            _run(["cp", "-a", "--", f"{self.data_dir(account, share)}/.", str(copy)],
                 f"copying share {account}/{share} into snapshot {name}")
            self._mount_snapshot(account, share, name)

    def mount_snapshot(self, account: str, share: str, name: str) -> None:
        """Mount a snapshot copied before (the emulator started again on its files)."""
        with self._lock:
            self._mount_snapshot(account, share, name)

    def _mount_snapshot(self, account: str, share: str, name: str) -> None:
        copy = self.snapshot_dir(account, share, name)
        if self._holder is None:
            return
        target = self.mounts / account / f"{share}@snapshots" / name
        script = ('mkdir -p "$1"; mountpoint -q "$1" || mount -t overlay "$2" -o "lowerdir=$3:$4" "$1"')
        _run(["nsenter", "-t", str(self.pid), "-m", "--", "/bin/bash", "-c", script, "_", str(target),
              f"{account}.file.core.windows.net:/{account}/{share}/.snapshot/{name}", str(copy),
              str(self.empty)], f"mounting snapshot {name} of {account}/{share}")

    def drop_snapshot(self, account: str, share: str, name: str) -> None:
        with self._lock:
            if self._holder is not None:
                target = self.mounts / account / f"{share}@snapshots" / name
                script = 'if mountpoint -q "$1"; then umount -l "$1"; fi; rmdir "$1" 2>/dev/null || true'
                _run(["nsenter", "-t", str(self.pid), "-m", "--", "/bin/bash", "-c", script, "_",
                      str(target)], f"unmounting snapshot {name} of {account}/{share}")
            shutil.rmtree(self.snapshot_dir(account, share, name), ignore_errors=True)

    def usage_bytes(self, account: str, share: str) -> int:
        """Bytes held by a share's files, each hard-linked file counted once."""
        seen: set[int] = set()
        total = 0
        for folder, _dirs, files in os.walk(self.data_dir(account, share)):
            for name in files:
                try:
                    info = os.lstat(os.path.join(folder, name))
                except OSError:
                    continue
                if info.st_ino not in seen:
                    seen.add(info.st_ino)
                    total += info.st_size
        return total

    def stop(self) -> None:
        if self._holder is not None:
            _stop(self._holder)
            self._holder = None


@dataclass
class Execution:
    """One script run inside a VM; finished when `exit_code` or `timed_out`/`canceled` is set.
    `lost`: the VM went down under it (a reboot, a power-off), and with it whatever would report
    its end."""

    stdout_path: Path
    stderr_path: Path
    started_at: float = field(default_factory=time.time)
    ended_at: float | None = None
    exit_code: int | None = None
    timed_out: bool = False
    canceled: bool = False
    lost: bool = False
    process: subprocess.Popen[bytes] | None = None
    done: threading.Event = field(default_factory=threading.Event)

    def stdout(self) -> str:
        return self.stdout_path.read_bytes().decode(errors="replace")

    def stderr(self) -> str:
        return self.stderr_path.read_bytes().decode(errors="replace")

    def cancel(self) -> None:
        self.canceled = True
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):  # it may end between the check and the kill
                os.killpg(self.process.pid, signal.SIGKILL)

    def kill_script(self) -> None:
        """SIGKILL to the script's own bash process only, as the Run Command handler's timeout
        does (Go's exec.CommandContext; run-command-handler-linux internal/exec/exec.go): the
        processes it started live on, in the VM."""
        if self.process is None:
            return
        for pid in _descendants(self.process.pid):
            parts = _cmdline(pid).split(b"\0")
            if parts[:1] == [b"/bin/bash"] and len(parts) > 1 and parts[1].endswith(b"/script.sh"):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                return


class SandboxVm:
    """One emulator VM. Its directory holds `upper` (everything the VM ever wrote), `work`
    (overlayfs's), and the outputs of its runs. The emulator writes nothing the VM can reach:
    what a run needs (the network rules, the script) travels into the VM's namespaces with it."""

    def __init__(self, directory: Path, name: str, fabric: Fabric, emulator_dir: Path) -> None:
        self.directory = directory
        self.name = name
        self.fabric = fabric
        self.emulator_dir = emulator_dir
        self._holder: subprocess.Popen[bytes] | None = None
        self._pid: int | None = None
        # Run outputs are numbered on from those already there (a VM kept across restarts).
        outputs = (directory / "runs").glob("*.out")
        self._runs = max((int(p.stem) for p in outputs if p.stem.isdigit()), default=0)
        self._lock = threading.Lock()
        self._executions: list[Execution] = []

    @property
    def running(self) -> bool:
        return self._holder is not None and self._holder.poll() is None

    def create(self, admin_user: str, ssh_public_keys: list[str], network: Network) -> None:
        """First boot of a new VM: an image like Azure's Linux ones, with the admin user
        (uid 1000) and its authorized SSH keys."""
        self._lay_out()
        self.boot(network, mount_all=False)
        keys = "\n".join(k.strip() for k in ssh_public_keys if k.strip())
        env = {"ADMIN_USER": admin_user, "SSH_KEYS": keys, "VM_NAME": self.name}
        result = self.run_now(PROVISION_SCRIPT, env, network, timeout=60)
        if result.exit_code != 0:
            raise SandboxError(f"provisioning {self.name} failed: {result.stderr().strip()}")

    def _lay_out(self) -> None:
        for sub in ("upper", "work", "merged", "runs"):
            (self.directory / sub).mkdir(parents=True, exist_ok=True)
        upper = self.directory / "upper"
        for relative, mode in OPAQUE_DIRS.items():
            path = upper / relative
            path.mkdir(parents=True, exist_ok=True)
            path.chmod(mode)
            os.setxattr(path, OPAQUE_XATTR, b"y")
        for source in sorted(VM_FILES.rglob("*"), key=lambda p: len(p.parts)):
            target = upper / source.relative_to(VM_FILES)
            if source.is_dir() and not source.is_symlink():
                target.mkdir(parents=True, exist_ok=True)
            elif source.is_symlink():
                target.unlink(missing_ok=True)
                target.symlink_to(os.readlink(source))
            else:
                shutil.copy2(source, target)

    def boot(self, network: Network, *, mount_all: bool = True) -> None:
        """Start the VM's namespaces; on a reboot, mount what /etc/fstab lists, as boot does."""
        with self._lock:
            if self.running:
                return
            env = {"PATH": SCRIPT_PATH, "VM_DIR": str(self.directory), "VM_HOSTNAME": self.name,
                   "FABRIC_DIR": str(self.fabric.mounts), "EMULATOR_DIR": str(self.emulator_dir)}
            command = ["nsenter", "-t", str(self.fabric.pid), "-m", "--", "unshare", "--mount", "--pid",
                       "--fork", "--kill-child", "--propagation", "unchanged", "--", str(BOOT_SCRIPT)]
            self._holder, self._pid = _holder(command, env, f"VM {self.name}")
        if mount_all:
            self.run_now("mount -a 2>&1 || true\n", {}, network, timeout=120)

    def shutdown(self) -> None:
        """Power off: every process of the VM ends and its mounts go with its namespaces. A run
        still going is lost: nothing in the VM is left to report its end."""
        with self._lock:
            for execution in self._executions:
                if not execution.done.is_set():
                    execution.lost = True
            self._executions = []
            if self._holder is not None:
                _stop(self._holder)
            self._holder, self._pid = None, None

    def destroy(self) -> None:
        self.shutdown()
        shutil.rmtree(self.directory, ignore_errors=True)

    def start(self, script: str, env: dict[str, str], network: Network, *, timeout: float | None,
              run_as: str | None = None, command_name: str = "script") -> Execution:
        """Run a script as root (or `run_as`) inside the VM, in the background, with `env` as its
        environment variables, in the working directory the Azure Linux agent uses. `network`
        says how each NFS server behaves from this VM now ("ok", "denied", "unreachable"; a server
        not named does not resolve): the VM's mount.nfs follows it."""
        with self._lock:
            if not self.running or self._pid is None:
                raise SandboxError(f"VM {self.name} is not running")
            self._runs += 1
            run_id, pid = f"{self._runs:06d}", self._pid
        outputs = self.directory / "runs"
        execution = Execution(outputs / f"{run_id}.out", outputs / f"{run_id}.err")
        hosts = [f"{host}={state}" for host, state in sorted(network.hosts.items())]
        command = ["nsenter", "-t", str(pid), "-U", "-m", "-u", "-n", "-i", "-p", "-r", "-w", "--",
                   "/usr/bin/env", "-i", f"PATH={SCRIPT_PATH}", *(f"{k}={v}" for k, v in env.items()),
                   "/bin/bash", "-c", LAUNCHER, "run-command", command_name, run_as or "",
                   f"{network.nfs_timeout_seconds:g}", *hosts]
        with execution.stdout_path.open("wb") as out, execution.stderr_path.open("wb") as err:
            execution.process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=out, stderr=err,
                                                 start_new_session=True)
        assert execution.process.stdin is not None
        with execution.process.stdin as stdin:
            stdin.write(script.encode())
        with self._lock:
            self._executions = [e for e in self._executions if not e.done.is_set()] + [execution]
        threading.Thread(target=self._wait, args=(execution, timeout), daemon=True,
                         name=f"vm-{self.name}-run-{run_id}").start()
        return execution

    def run_now(self, script: str, env: dict[str, str], network: Network, *,
                timeout: float | None = None) -> Execution:
        execution = self.start(script, env, network, timeout=timeout)
        execution.done.wait()
        return execution

    @staticmethod
    def _wait(execution: Execution, timeout: float | None) -> None:
        assert execution.process is not None
        try:
            execution.exit_code = execution.process.wait(timeout)
        except subprocess.TimeoutExpired:
            execution.timed_out = True
            execution.kill_script()
            execution.exit_code = execution.process.wait()
        execution.ended_at = time.time()
        execution.done.set()


@dataclass(frozen=True)
class Network:
    """What a VM's network lets it reach, as its mount.nfs applies it."""

    hosts: dict[str, str] = field(default_factory=dict)
    nfs_timeout_seconds: float = 2.0


# Runs inside the VM (as its root): writes the network rules and the script where the Azure Linux
# agent would keep it, then runs it. Arguments: command name, run-as user, NFS timeout, then
# host=state pairs; the script arrives on stdin. Values are arguments, never script text.
LAUNCHER = r"""set -eu
name=$1 user=$2 timeout=$3
shift 3
state=/run/azlin-emulator
mkdir -p "$state/hosts"
for pair in "$@"; do
    printf '%s\n' "${pair#*=}" > "$state/hosts/.$$" && mv -f "$state/hosts/.$$" "$state/hosts/${pair%%=*}"
done
for known in "$state/hosts/"*; do
    case " $* " in *" ${known##*/}="*) ;; *) rm -f "$known" ;; esac
done
printf '%s\n' "$timeout" > "$state/.timeout.$$" && mv -f "$state/.timeout.$$" "$state/nfs-timeout-seconds"
dir="/var/lib/waagent/run-command-handler/download/$name/0"
mkdir -p "$dir"
cat > "$dir/script.sh"
cd "$dir"
if [ -n "$user" ]; then exec runuser -u "$user" -- /bin/bash "$dir/script.sh" </dev/null; fi
exec /bin/bash "$dir/script.sh" </dev/null
"""


# First boot of an Azure Linux image: no user of this machine is a user of the VM; the admin user
# gets uid 1000 and the SSH keys given in osProfile, as the Azure Linux agent provisions them.
PROVISION_SCRIPT = r"""set -euo pipefail
awk -F: '$3 >= 1000 && $3 < 60000 {print $1}' /etc/passwd | while read -r user; do
    userdel "$user" 2>/dev/null || true
done
awk -F: '$3 >= 1000 && $3 < 60000 {print $1}' /etc/group | while read -r group; do
    groupdel "$group" 2>/dev/null || true
done
echo "$VM_NAME" > /etc/hostname
groupadd -f sudo
useradd --create-home --uid 1000 --user-group --groups sudo --shell /bin/bash "$ADMIN_USER"
if [ -n "$SSH_KEYS" ]; then
    install -d -m 0700 -o "$ADMIN_USER" -g "$ADMIN_USER" "/home/$ADMIN_USER/.ssh"
    printf '%s\n' "$SSH_KEYS" > "/home/$ADMIN_USER/.ssh/authorized_keys"
    chown "$ADMIN_USER:$ADMIN_USER" "/home/$ADMIN_USER/.ssh/authorized_keys"
    chmod 0600 "/home/$ADMIN_USER/.ssh/authorized_keys"
fi
"""
