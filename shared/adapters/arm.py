"""Resource Manager clients (azure-mgmt-storage, -network, -privatedns, -compute, -authorization),
created on first use and cached: `azure.mgmt.network` alone takes about a second to import, so
nothing here is imported before a worker needs it. The endpoint, CA bundle and credential come
from settings, which is all that differs between Azure and the local emulator."""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING, Any

from shared.adapters import credentials

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential
    from azure.mgmt.authorization import AuthorizationManagementClient
    from azure.mgmt.compute import ComputeManagementClient
    from azure.mgmt.network import NetworkManagementClient
    from azure.mgmt.privatedns import PrivateDnsManagementClient
    from azure.mgmt.storage import StorageManagementClient

    from shared.ports import CallBudget
    from shared.settings import Settings


AUTHORIZATION_API_VERSION = "2022-04-01"


class ArmClients:
    def __init__(self, settings: Settings, *, credential: TokenCredential | None = None,
                 budget: CallBudget | None = None, **client_options: Any) -> None:
        self.settings = settings
        self.budget = budget  # Run Command calls draw on it (arm_budget.CallBudgetPolicy)
        self.credential = credential  # None: the app's identity (tools and tests may act as others)
        # Tests pass polling_interval=0 so long-running operations poll without sleeping.
        self.client_options = client_options
        self._dns_elsewhere: dict[str, PrivateDnsManagementClient] = {}
        self._network_elsewhere: dict[str, NetworkManagementClient] = {}

    def _options(self) -> dict[str, Any]:
        options: dict[str, Any] = {"base_url": self.settings.arm_endpoint, **self.client_options}
        if self.settings.arm_ca_bundle:
            options["connection_verify"] = self.settings.arm_ca_bundle
        return options

    @property
    def _credential(self) -> Any:
        return self.credential or credentials.resource_manager(self.settings.arm_credential,
                                                               self.settings.identity)

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

    def private_dns_in(self, subscription: str) -> PrivateDnsManagementClient:
        """Private DNS in any subscription (a hub's central zone often lives in its own)."""
        from azure.mgmt.privatedns import PrivateDnsManagementClient

        if subscription.lower() == self.settings.subscription_id.lower():
            return self.private_dns
        if subscription.lower() not in self._dns_elsewhere:
            self._dns_elsewhere[subscription.lower()] = PrivateDnsManagementClient(
                self._credential, subscription, **self._options())
        return self._dns_elsewhere[subscription.lower()]

    def network_in(self, subscription: str) -> NetworkManagementClient:
        """Virtual networks in any subscription (a VM's VNet may be in a hub's or a spoke's)."""
        from azure.mgmt.network import NetworkManagementClient

        if subscription.lower() == self.settings.subscription_id.lower():
            return self.network
        if subscription.lower() not in self._network_elsewhere:
            self._network_elsewhere[subscription.lower()] = NetworkManagementClient(
                self._credential, subscription, **self._options())
        return self._network_elsewhere[subscription.lower()]

    @cached_property
    def compute(self) -> ComputeManagementClient:
        from azure.mgmt.compute import ComputeManagementClient

        options = self._options()
        if self.budget is not None:
            from .arm_budget import CallBudgetPolicy

            options["per_retry_policies"] = [CallBudgetPolicy(self.budget)]
        return ComputeManagementClient(self._credential, self.settings.subscription_id, **options)

    @cached_property
    def authorization(self) -> AuthorizationManagementClient:
        """Microsoft.Authorization read with the app's identity (role and deny assignments)."""
        return self.authorization_as(self._credential)

    def authorization_as(self, credential: TokenCredential) -> AuthorizationManagementClient:
        """Microsoft.Authorization called with another credential (a user's, on their behalf)."""
        from azure.mgmt.authorization import AuthorizationManagementClient

        return AuthorizationManagementClient(credential, self.settings.subscription_id,
                                             api_version=AUTHORIZATION_API_VERSION, **self._options())
