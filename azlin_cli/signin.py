"""Signing in to the API's app registration with azure-identity (imported only when a token is
needed: against `make dev`, or with AZLIN_API_TOKEN, it never is)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .settings import Config, config_file

CACHE_NAME = "azlin-storage"  # the token cache azure-identity keeps on disk (msal-extensions)


def record_file() -> Path:
    """Who signed in with a device code: lets later runs get tokens silently from the cache."""
    return config_file().with_name("authentication-record.json")


def credential(config: Config) -> Any:
    from azure.identity import (
        AuthenticationRecord,
        DefaultAzureCredential,
        DeviceCodeCredential,
        TokenCachePersistenceOptions,
    )

    if not config.device_code:
        return DefaultAzureCredential(exclude_interactive_browser_credential=True,
                                      **({"tenant_id": config.tenant} if config.tenant else {}))
    cache = TokenCachePersistenceOptions(name=CACHE_NAME, allow_unencrypted_storage=True)
    record = record_file()
    known = AuthenticationRecord.deserialize(record.read_text()) if record.is_file() else None
    return DeviceCodeCredential(tenant_id=config.tenant, cache_persistence_options=cache,
                                authentication_record=known)


def sign_in(config: Config) -> str:
    """Ask for a token now (a device code prompts here); keep the record of who signed in."""
    found = credential(config)
    if config.device_code and config.scope:
        record = found.authenticate(scopes=[config.scope])
        record_file().write_text(record.serialize())
        return str(json.loads(record.serialize()).get("username", "signed in"))
    assert config.scope
    found.get_token(config.scope)
    return "signed in"
