"""The emulator's machines: the storage fabric holding every NFS share's files, and one sandbox VM
per emulated virtual machine. Without root (or unshare) shares are plain directories and VMs exist
only as resources; running a script on them then fails with the reason."""

from __future__ import annotations

import hashlib
import logging
import shutil
import threading
from pathlib import Path

from local.sandbox import Fabric, SandboxVm, sandbox_unavailable_reason

log = logging.getLogger(__name__)


class Machines:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.unavailable = sandbox_unavailable_reason()
        self.fabric = Fabric(directory / "storage")
        self.vms: dict[str, SandboxVm] = {}
        self._lock = threading.Lock()

    def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        if self.unavailable is None:
            self.fabric.start()
        else:
            log.warning("sandbox VMs are off: %s", self.unavailable)

    def close(self) -> None:
        with self._lock:
            vms, self.vms = list(self.vms.values()), {}
        for vm in vms:
            vm.shutdown()
        self.fabric.stop()

    # -- shares -----------------------------------------------------------------------------------

    def share_added(self, account: str, share: str, *, tls: bool = False) -> None:
        if self.unavailable is None:
            self.fabric.add_share(account, share, tls=tls)
        else:
            self.fabric.data_dir(account, share).mkdir(parents=True, exist_ok=True)

    def share_removed(self, account: str, share: str) -> None:
        if self.unavailable is None:
            self.fabric.remove_share(account, share)
        else:
            shutil.rmtree(self.fabric.data_dir(account, share), ignore_errors=True)
            shutil.rmtree(self.fabric.snapshots / account / share, ignore_errors=True)

    def snapshot_taken(self, account: str, share: str, name: str) -> None:
        if self.unavailable is None:
            self.fabric.take_snapshot(account, share, name)
        else:
            shutil.copytree(self.fabric.data_dir(account, share),
                            self.fabric.snapshot_dir(account, share, name),
                            symlinks=True)

    def snapshot_restored(self, account: str, share: str, name: str) -> None:
        if self.unavailable is None:
            self.fabric.mount_snapshot(account, share, name)

    def snapshot_dropped(self, account: str, share: str, name: str) -> None:
        self.fabric.drop_snapshot(account, share, name)

    def snapshot_files(self, account: str, share: str, name: str) -> Path:
        """Where a snapshot's files are, for tests to compare (read, never write)."""
        return self.fabric.snapshot_dir(account, share, name)

    def share_usage(self, account: str, share: str) -> int:
        return self.fabric.usage_bytes(account, share)

    def share_files(self, account: str, share: str) -> Path:
        """Where a share's files are, for tests to compare byte for byte (read, never write)."""
        return self.fabric.data_dir(account, share)

    # -- VMs --------------------------------------------------------------------------------------

    def vm(self, resource_key: str, name: str) -> SandboxVm:
        """The sandbox of a VM resource (created on first use, not booted)."""
        with self._lock:
            found = self.vms.get(resource_key)
            if found is None:
                digest = hashlib.sha256(resource_key.encode()).hexdigest()[:10]
                found = SandboxVm(
                    self.directory / "vms" / f"{name}-{digest}", name, self.fabric, self.directory
                )
                self.vms[resource_key] = found
            return found

    def forget(self, resource_key: str) -> None:
        with self._lock:
            vm = self.vms.pop(resource_key, None)
        if vm is not None:
            vm.destroy()
