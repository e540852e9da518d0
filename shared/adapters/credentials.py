"""Credentials for Azure clients, created once per process.

The app's own storage is reached with its managed identity when no connection string is set
(`AzureWebJobsStorage__*`, as deployed); a user-assigned identity is picked by client id.
"""

from __future__ import annotations

import time
from functools import cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from azure.core.credentials import AccessToken, TokenCredential


@cache
def managed_identity(client_id: str | None) -> TokenCredential:
    from azure.identity import DefaultAzureCredential

    return DefaultAzureCredential(managed_identity_client_id=client_id)


class EmulatorToken:
    """A static bearer token for the local Resource Manager emulator, which checks only that one
    is sent. Settings accept `ARM_CREDENTIAL=emulator` only with a loopback `ARM_ENDPOINT`, so this
    never reaches Azure."""

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        from azure.core.credentials import AccessToken

        return AccessToken("local-emulator-token", int(time.time()) + 3600)


@cache
def resource_manager(kind: str) -> TokenCredential:
    """The credential for Resource Manager: `default` (managed identity in Azure, `az login` on a
    workstation) or `emulator`."""
    if kind == "emulator":
        return EmulatorToken()
    from azure.identity import DefaultAzureCredential

    return DefaultAzureCredential()
