"""Credentials for Azure clients, created once per process.

The app's own storage is reached with its managed identity when no connection string is set
(`AzureWebJobsStorage__*`, as deployed); a user-assigned identity is picked by client id.
"""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential


@cache
def managed_identity(client_id: str | None) -> TokenCredential:
    from azure.identity import DefaultAzureCredential

    return DefaultAzureCredential(managed_identity_client_id=client_id)
