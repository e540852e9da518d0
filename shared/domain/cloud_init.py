"""cloud-config for new VMs whose home should be the shared storage from their first boot (the
seed's `--shared-home`): the NFS client package, and the same attach script the service runs
through Run Command, run once by cloud-init with its values as arguments (never shell text). So a
VM born with the shared home gets exactly what an attach gives: backup, copy into an empty share,
merged SSH keys, one fstab line with `_netdev,nofail`, a verified mount, or its home untouched."""

from __future__ import annotations

import base64
import json

from .models import StorageInfo

SCRIPT_PATH = "/var/lib/azlin/attach.sh"


def cloud_config(storage: StorageInfo, user: str, mount_point: str, script: str,
                 home_roots: tuple[str, ...] = ("/home",)) -> str:
    """The `#cloud-config` document; every value is a JSON string, which YAML reads as is."""
    def text(value: str) -> str:
        return json.dumps(value)

    owner_uid = "" if storage.owner_uid is None else str(storage.owner_uid)
    encryption = "tls" if storage.encryption_in_transit else ""  # the script installs aznfs if missing
    command = ["env", f"NFS_ENDPOINT={storage.nfs_endpoint}", f"MOUNT_POINT={mount_point}", f"OWNER={user}",
               f"OWNER_UID={owner_uid}", f"ENCRYPTION={encryption}", f"HOME_ROOTS={':'.join(home_roots)}",
               "bash", SCRIPT_PATH]
    encoded = base64.b64encode(script.encode()).decode()
    return "\n".join([
        "#cloud-config",
        f"# Shared home for {user}: {storage.nfs_endpoint} on {mount_point} (azlin storage {storage.name}).",
        "package_update: true",
        "packages:",
        "  - nfs-common",
        "write_files:",
        f"  - path: {text(SCRIPT_PATH)}",
        "    owner: \"root:root\"",
        "    permissions: \"0700\"",
        "    encoding: b64",
        f"    content: {encoded}",
        "runcmd:",
        f"  - [{', '.join(text(part) for part in command)}]",
        "",
    ])
