"""Attach wall time for a 10,000-file home, against `cp -a` of the same tree in the same sandbox VM,
and their ratio. Both run through a managed Run Command on the local emulator, so both include its
small fixed cost; the attach also stages a mount, moves the home aside, copies into the share,
merges keys, writes fstab and verifies.

    python bench/attach.py [files] [runs]
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from local.emulator import Config, LocalAzure
from local.rest import ArmRest
from shared.scripts import run_command_script
from tests.emulator.trees import BUILD, python

ATTACH = run_command_script("attach")
SUBSCRIPTION = "6e0b3f2a-5a43-4b7e-9a57-3f0c2d7d1c11"
REGION, HOME = "eastus", "/home/azureuser"


class Bench:
    def __init__(self, azure: LocalAzure) -> None:
        self.rest = ArmRest(azure.url, str(azure.ca_path), SUBSCRIPTION)
        self.group = self.rest.group_path("bench-attach")
        self.rest.put(self.group, {"location": REGION})
        self.base = f"{self.group}/providers"
        self.rest.put(
            f"{self.base}/Microsoft.Network/virtualNetworks/vnet",
            {
                "location": REGION,
                "properties": {
                    "addressSpace": {"addressPrefixes": ["10.0.0.0/16"]},
                    "subnets": [{"name": "default", "properties": {"addressPrefix": "10.0.0.0/24"}}],
                },
            },
        )
        self.subnet = f"{self.base}/Microsoft.Network/virtualNetworks/vnet/subnets/default"
        zone = f"{self.base}/Microsoft.Network/privateDnsZones/privatelink.file.core.windows.net"
        self.rest.put(zone, {"location": "global"})
        self.rest.put(
            f"{zone}/virtualNetworkLinks/vnet",
            {
                "location": "global",
                "properties": {
                    "virtualNetwork": {"id": f"{self.base}/Microsoft.Network/virtualNetworks/vnet"}
                },
            },
        )

    def storage(self) -> str:
        name = "bench" + uuid.uuid4().hex[:8]
        account = self.rest.put(
            f"{self.base}/Microsoft.Storage/storageAccounts/{name}",
            {
                "location": REGION,
                "sku": {"name": "Premium_LRS"},
                "kind": "FileStorage",
                "properties": {"supportsHttpsTrafficOnly": False},
            },
        )
        self.rest.put(
            f"{self.base}/Microsoft.Storage/storageAccounts/{name}/fileServices/default/shares/home",
            {"properties": {"enabledProtocols": "NFS", "shareQuota": 100}},
        )
        self.rest.put(
            f"{self.base}/Microsoft.Network/privateEndpoints/{name}",
            {
                "location": REGION,
                "properties": {
                    "subnet": {"id": self.subnet},
                    "privateLinkServiceConnections": [
                        {
                            "name": "f",
                            "properties": {"privateLinkServiceId": account["id"], "groupIds": ["file"]},
                        }
                    ],
                },
            },
        )
        zone = f"{self.base}/Microsoft.Network/privateDnsZones/privatelink.file.core.windows.net"
        self.rest.put(
            f"{self.base}/Microsoft.Network/privateEndpoints/{name}/privateDnsZoneGroups/default",
            {
                "properties": {
                    "privateDnsZoneConfigs": [{"name": "f", "properties": {"privateDnsZoneId": zone}}]
                }
            },
        )
        return f"{name}.file.core.windows.net:/{name}/home"

    def vm(self) -> str:
        name = "vm" + uuid.uuid4().hex[:6]
        nic = self.rest.put(
            f"{self.base}/Microsoft.Network/networkInterfaces/{name}",
            {
                "location": REGION,
                "properties": {
                    "ipConfigurations": [{"name": "ip", "properties": {"subnet": {"id": self.subnet}}}]
                },
            },
        )
        self.rest.put(
            f"{self.base}/Microsoft.Compute/virtualMachines/{name}",
            {
                "location": REGION,
                "properties": {
                    "hardwareProfile": {"vmSize": "Standard_B2s"},
                    "osProfile": {"adminUsername": "azureuser"},
                    "networkProfile": {"networkInterfaces": [{"id": nic["id"]}]},
                },
            },
        )
        return name

    def run(self, vm: str, script: str, **parameters: str) -> tuple[float, dict[str, object]]:
        path = f"{self.base}/Microsoft.Compute/virtualMachines/{vm}/runCommands/r{uuid.uuid4().hex[:8]}"
        started = time.perf_counter()
        self.rest.put(
            path,
            {
                "location": REGION,
                "properties": {
                    "source": {"script": script},
                    "timeoutInSeconds": 3600,
                    "parameters": [{"name": k, "value": v} for k, v in parameters.items()],
                },
            },
        )
        elapsed = time.perf_counter() - started
        view = self.rest.get(path + "?$expand=instanceView")["properties"]["instanceView"]
        self.rest.delete(path)
        if view["exitCode"] != 0:
            raise RuntimeError(f"script failed: {view['error'] or view['output']}")
        return elapsed, view


def main(files: int, runs: int) -> None:
    attach_times, copy_times = [], []
    with tempfile.TemporaryDirectory() as scratch:
        azure = LocalAzure(Path(scratch), Config(polls_before_done=0)).start()
        try:
            bench = Bench(azure)
            for _ in range(runs):
                vm = bench.vm()
                bench.run(
                    vm,
                    python(BUILD, "ROOT", "COUNT", "OWNER"),
                    ROOT=HOME,
                    COUNT=str(files),
                    OWNER="azureuser",
                )
                copy, _ = bench.run(vm, f"cp -a {HOME} /var/tmp/copy && sync\n")
                attach, view = bench.run(
                    vm, ATTACH + "sync\n", NFS_ENDPOINT=bench.storage(), MOUNT_POINT=HOME, OWNER="azureuser"
                )
                result = json.loads(str(view["output"]).splitlines()[-1].removeprefix("RESULT "))
                assert result["success"] and result["copiedFiles"] >= files, result
                copy_times.append(copy)
                attach_times.append(attach)
        finally:
            azure.stop()
    attach_ms, copy_ms = statistics.median(attach_times) * 1000, statistics.median(copy_times) * 1000
    print(f"home of {files} files (+ dotfiles, links, an 8 MiB file), {runs} runs, medians:")
    print(f"  attach (Run Command)        {attach_ms:8.0f} ms")
    print(f"  cp -a (Run Command)         {copy_ms:8.0f} ms")
    print(f"  ratio attach / cp -a        {attach_ms / copy_ms:8.2f}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 10_000, int(sys.argv[2]) if len(sys.argv) > 2 else 3)
