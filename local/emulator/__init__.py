"""A local Azure Resource Manager for tests, benchmarks and `make dev` (never deployed).

`LocalAzure` serves resource groups, Microsoft.Storage, Microsoft.Network (including private DNS)
and Microsoft.Compute over HTTPS, faithful to what `azure-facts.md` records, so the product's
azure-mgmt clients run against it unchanged: only the endpoint, the CA bundle and the credential
differ. VMs are sandboxes in which Run Command scripts really run; NFS shares are real files.

    with LocalAzure(tmp_path) as azure:
        client = StorageManagementClient(StaticToken(), SUBSCRIPTION, base_url=azure.url,
                                         connection_verify=str(azure.ca_path))
"""

from __future__ import annotations

from pathlib import Path
from types import TracebackType

from local.emulator import compute, network, persistence, storage
from local.emulator.core import Config, Emulator
from local.emulator.machines import Machines
from local.emulator.server import EmulatorServer

__all__ = ["Config", "Emulator", "LocalAzure"]

RESOURCE_KINDS = (
    storage.ResourceGroups(),
    storage.StorageAccounts(),
    storage.FileServices(),
    storage.FileShares(),
    network.VirtualNetworks(),
    network.Subnets(),
    network.Peerings(),
    network.NetworkInterfaces(),
    network.PrivateEndpoints(),
    network.PrivateDnsZoneGroups(),
    network.PrivateDnsZones(),
    network.VirtualNetworkLinks(),
    network.ARecords(),
    network.NetworkSecurityGroups(),
    network.SecurityRules(),
    network.ApplicationSecurityGroups(),
    compute.VirtualMachines(),
    compute.RunCommands(),
)


class LocalAzure:
    """The emulator, its machines and its HTTPS server, started and stopped together."""

    def __init__(self, directory: Path, config: Config | None = None, *, port: int = 0,
                 keep: bool = False) -> None:
        """`keep`: start from the state saved in `directory` (when there is one) and save it there
        on stop (persistence.py)."""
        self.directory = directory.resolve()
        self.keep = keep
        self.loaded: persistence.Loaded | None = None  # what was kept, once started
        self.emulator = Emulator(self.directory, config)
        self.machines = Machines(self.directory / "machines")
        self.emulator.machines = self.machines
        for kind in RESOURCE_KINDS:
            self.emulator.register(kind)
        self.emulator.provider_actions[("microsoft.storage", "checknameavailability")] = (
            storage.check_name_availability
        )
        self.server = EmulatorServer(self.emulator, self.directory, port=port)

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def ca_path(self) -> Path:
        return self.server.ca_path

    def start(self) -> LocalAzure:
        self.machines.start()
        if self.keep and persistence.saved(self.directory):
            self.loaded = persistence.load(self.emulator)
        self.server.start()
        return self

    def stop(self, wait: float = 10) -> None:
        """Stop serving, give running operations `wait` seconds, save the state when kept, stop
        the machines."""
        self.server.stop()
        self.emulator.wait_for_operations(timeout=wait)
        self.emulator.close()
        if self.keep:
            persistence.save(self.emulator)
        self.machines.close()

    def __enter__(self) -> LocalAzure:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.stop()
