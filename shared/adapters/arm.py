"""Resource Manager clients (azure-mgmt-storage, -network, -privatedns, -compute), created on
first use and cached: `azure.mgmt.network` alone takes about a second to import, so nothing here is
imported before a worker needs it. The endpoint, CA bundle and credential come from settings,
which is all that differs between Azure and the local emulator."""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING, Any

from shared.adapters import credentials

if TYPE_CHECKING:
    from azure.mgmt.compute import ComputeManagementClient
    from azure.mgmt.network import NetworkManagementClient
    from azure.mgmt.privatedns import PrivateDnsManagementClient
    from azure.mgmt.storage import StorageManagementClient

    from shared.settings import Settings


class ArmClients:
    def __init__(self, settings: Settings, **client_options: Any) -> None:
        self.settings = settings
        # Tests pass polling_interval=0 so long-running operations poll without sleeping.
        self.client_options = client_options

    def _options(self) -> dict[str, Any]:
        options: dict[str, Any] = {"base_url": self.settings.arm_endpoint, **self.client_options}
        if self.settings.arm_ca_bundle:
            options["connection_verify"] = self.settings.arm_ca_bundle
        return options

    @property
    def _credential(self) -> Any:
        return credentials.resource_manager(self.settings.arm_credential)

    @cached_property
    def storage(self) -> StorageManagementClient:
        from azure.mgmt.storage import StorageManagementClient

        return StorageManagementClient(self._credential, self.settings.subscription_id, **self._options())

    @cached_property
    def network(self) -> NetworkManagementClient:
        from azure.mgmt.network import NetworkManagementClient

        return NetworkManagementClient(self._credential, self.settings.subscription_id, **self._options())

    @cached_property
    def private_dns(self) -> PrivateDnsManagementClient:
        from azure.mgmt.privatedns import PrivateDnsManagementClient

        return PrivateDnsManagementClient(self._credential, self.settings.subscription_id, **self._options())

    @cached_property
    def compute(self) -> ComputeManagementClient:
        from azure.mgmt.compute import ComputeManagementClient

        return ComputeManagementClient(self._credential, self.settings.subscription_id, **self._options())
