"""One local Azure (the emulator over HTTPS, its storage fabric and sandbox VMs) per test session;
each test gets its own resource group, a clean request log, no faults, and the real azure-mgmt
clients built by the product's own `ArmClients` from settings."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from azure.core.credentials import AccessToken

from local import identities, playground
from local.emulator import LocalAzure
from local.rest import ArmRest
from local.sandbox import sandbox_unavailable_reason
from shared.adapters.arm import ArmClients
from shared.settings import Settings
from tests.conftest import ADMIN, SUBSCRIPTION, Webhook, arm_as, managed_group

REGION = "eastus"


@dataclass
class Azure:
    """What one test works with: the emulator, a fresh resource group, SDK clients and REST, both
    as alice (Owner of the subscription): these tests exercise the emulator's providers as a
    person uses them."""

    local: LocalAzure
    group: str
    clients: ArmClients
    rest: ArmRest
    webhook: Webhook
    created: list[str] = field(default_factory=list)


    @property
    def emulator(self) -> Any:
        return self.local.emulator

    def group_path(self, group: str | None = None) -> str:
        return self.rest.group_path(group or self.group)

    def unique(self, prefix: str) -> str:
        return prefix + uuid.uuid4().hex[:8]

    def network(self, name: str, prefix: str = "10.0.0.0/16", subnet: str = "10.0.0.0/24") -> str:
        """A virtual network with one subnet `default`; returns the subnet id."""
        return playground.network(self.rest, self.group, name, REGION, space=prefix, subnet=subnet)

    def vm(self, name: str, subnet_id: str, *, admin: str = "azureuser", tags: dict[str, str] | None = None,
           key: str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHt test@laptop") -> dict[str, Any]:
        return playground.vm(self.rest, self.group, name, subnet_id, REGION, admin=admin, key=key, tags=tags)

    def nfs_storage(self, account: str, subnet_id: str, *, link_vnets: tuple[str, ...] = (),
                    secure_transfer: bool = False) -> str:
        return playground.nfs_storage(self.rest, self.group, account, subnet_id, REGION, link_vnets=link_vnets,
                                      secure_transfer=secure_transfer)

    def link(self, vnet_id: str) -> None:
        playground.link_zone(self.rest, self.group, vnet_id)

    def run(self, vm: str, script: str, **parameters: str) -> dict[str, Any]:
        """Run a script through a managed Run Command; returns its instance view."""
        return playground.run(self.rest, self.group, vm, script, parameters, timeout=120)


class TokenOf:
    """A TokenCredential over a source of access tokens."""

    def __init__(self, source: Callable[[], str]) -> None:
        self.source = source

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        return AccessToken(self.source(), int(time.time()) + 600)


def settings_for(azure: LocalAzure, subscription: str = SUBSCRIPTION) -> Settings:
    """The app's settings: Resource Manager at the emulator, called as the app's identity."""
    return Settings.from_environ(
        {
            "AzureWebJobsStorage": "UseDevelopmentStorage=true",
            "AZURE_SUBSCRIPTION_ID": subscription,
            "ARM_ENDPOINT": azure.url,
            "ARM_CA_BUNDLE": str(azure.ca_path),
            **identities.register(azure.emulator, SUBSCRIPTION).app_settings(),
        }
    )


def clients_for(azure: LocalAzure, subscription: str = SUBSCRIPTION) -> ArmClients:
    """The azure-mgmt clients, as alice."""
    return ArmClients(settings_for(azure, subscription),
                      credential=TokenOf(identities.token_source(azure.emulator, ADMIN, arm=True)),
                      polling_interval=0, retry_total=0)


@pytest.fixture
def azure(local_azure: LocalAzure, webhook: Webhook) -> Iterator[Azure]:
    emulator = local_azure.emulator
    emulator.config.polls_before_done = 1
    emulator.config.agent_ready_seconds = 0
    emulator.config.nfs_timeout_seconds = 0.2
    emulator.config.retry_after = None
    emulator.faults.clear()
    emulator.requests.clear()
    rest = arm_as(local_azure)
    group = managed_group(local_azure, REGION)
    yield Azure(local_azure, group, clients_for(local_azure), rest, webhook)
    emulator.faults.clear()
    emulator.authorization.drop_locks(rest.group_path(group))
    rest.delete(rest.group_path(group))


needs_sandbox = pytest.mark.skipif(
    sandbox_unavailable_reason() is not None,
    reason=f"sandbox VMs unavailable: {sandbox_unavailable_reason()}",
)


def host_snapshot() -> dict[str, Any]:
    """What a VM must never change on this machine."""

    def listing(path: str) -> list[str]:
        return sorted(os.listdir(path)) if os.path.isdir(path) else []

    return {
        "fstab": Path("/etc/fstab").read_bytes(),
        "passwd": Path("/etc/passwd").read_bytes(),
        "group": Path("/etc/group").read_bytes(),
        "home": listing("/home"),
        "root": listing("/root"),
        "mounts": sorted(line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()),
    }
