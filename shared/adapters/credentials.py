"""Credentials for Azure clients, created once per process.

- The app's own storage is reached with its managed identity when no connection string is set
  (`AzureWebJobsStorage__*`, as deployed); a user-assigned identity is picked by client id.
- Resource Manager is called as the app's managed identity (`default`), or, on the local emulator
  (`emulator`), as the service principal that stands in for it there (client id and secret, signed
  in at the emulator's tenant).
- A user's permissions are asked as that user: an on-behalf-of token for Resource Manager, which
  the API's app registration gets with the managed identity as its federated credential (a token
  of the identity for `api://AzureADTokenExchange`), never with a secret.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential

    from shared.settings import IdentitySettings

TOKEN_EXCHANGE_SCOPE = "api://AzureADTokenExchange/.default"  # noqa: S105 an audience, not a secret


@cache
def managed_identity(client_id: str | None) -> TokenCredential:
    from azure.identity import DefaultAzureCredential

    return DefaultAzureCredential(managed_identity_client_id=client_id)


def _authority_options(identity: IdentitySettings) -> dict[str, Any]:
    """Where the app signs in: Entra ID, or the local emulator (its own CA, no instance
    discovery: that would ask login.microsoftonline.com about a loopback authority)."""
    if not identity.emulated:
        return {"authority": identity.authority}
    options: dict[str, Any] = {"authority": identity.authority, "disable_instance_discovery": True}
    if identity.ca_bundle:
        options["connection_verify"] = identity.ca_bundle
    return options


@cache
def resource_manager(kind: str, identity: IdentitySettings) -> TokenCredential:
    """The app's credential for Resource Manager: `default` (managed identity in Azure, `az login`
    on a workstation) or `emulator`. Settings accept `emulator` only with a loopback authority."""
    if kind == "emulator":
        from azure.identity import ClientSecretCredential

        assert identity.tenant_id and identity.app_client_id and identity.emulator_secret
        return ClientSecretCredential(identity.tenant_id, identity.app_client_id, identity.emulator_secret,
                                      **_authority_options(identity))
    from azure.identity import DefaultAzureCredential

    return DefaultAzureCredential()


@cache
def _assertion_source(kind: str, identity: IdentitySettings) -> TokenCredential:
    if kind == "emulator":
        return resource_manager(kind, identity)
    from azure.identity import ManagedIdentityCredential

    return ManagedIdentityCredential(client_id=identity.app_client_id)


def client_assertion(kind: str, identity: IdentitySettings) -> Callable[[], str]:
    """What the API's app registration signs in with: a fresh token of the app's identity for the
    token exchange audience (its federated credential)."""
    source = _assertion_source(kind, identity)
    return lambda: source.get_token(TOKEN_EXCHANGE_SCOPE).token


def on_behalf_of(kind: str, identity: IdentitySettings, user_token: str) -> TokenCredential:
    """A credential that acts as the user whose API token is `user_token`."""
    from azure.identity import OnBehalfOfCredential

    assert identity.tenant_id and identity.audience
    return OnBehalfOfCredential(identity.tenant_id, identity.audience, user_assertion=user_token,
                                client_assertion_func=client_assertion(kind, identity),
                                **_authority_options(identity))
