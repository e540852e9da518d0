"""App settings, read once from the environment into a frozen value.

Nothing else in the code reads `os.environ`, except `shared.schedules` (the timers' schedules,
needed while the functions are indexed, before anything else loads). Every problem with the
settings is reported at once as a `ConfigurationError` naming the setting, so an operator fixes
them in one pass.
"""

from __future__ import annotations

import ipaddress
import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from .domain import validation as v
from .domain.data_protection import DataProtection
from .domain.errors import ConfigurationError, ValidationError
from .domain.requests import RequestDefaults
from .schedules import DEFAULTS, timer_schedule

STORAGE_SETTING = "AzureWebJobsStorage"
DEFAULT_ARM_ENDPOINT = "https://management.azure.com"
DEFAULT_RETAIL_PRICES_ENDPOINT = "https://prices.azure.com/api/retail/prices"
DEFAULT_AUTHORITY = "https://login.microsoftonline.com"
_SCOPE_NAME = re.compile(r"[A-Za-z0-9._-]{1,64}")
_TABLE_PREFIX = re.compile(r"[A-Za-z][A-Za-z0-9]{0,29}")


@dataclass(frozen=True)
class StorageConnection:
    """How to reach the app's own queues and tables: a connection string (Azurite, keys) or
    identity-based service URIs (`AzureWebJobsStorage__*`, as deployed)."""

    connection_string: str | None = field(default=None, repr=False)
    table_endpoint: str | None = None
    queue_endpoint: str | None = None
    client_id: str | None = None  # user-assigned managed identity; None: DefaultAzureCredential


@dataclass(frozen=True)
class IdentitySettings:
    """Who the API trusts and who the app is.

    - Callers: Entra ID access tokens of tenant `tenant_id` for the API whose client id is
      `audience` (`api://<audience>` is accepted too), carrying the delegated scope `scope` when a
      user calls; the issuer and signing keys come from `authority`'s OpenID configuration.
    - The app: its managed identity (client id `app_client_id`) calls Resource Manager, and is the
      federated credential with which the API's app registration asks for on-behalf-of tokens. On
      the local emulator (`ARM_CREDENTIAL=emulator`) it signs in with `emulator_secret` instead.
    """

    tenant_id: str | None = None
    audience: str | None = None
    authority: str = DEFAULT_AUTHORITY
    scope: str = "user_impersonation"
    app_client_id: str | None = None
    emulator_secret: str | None = field(default=None, repr=False)
    ca_bundle: str | None = None  # trusted for a loopback authority (the local emulator)

    @property
    def configured(self) -> bool:
        return bool(self.tenant_id and self.audience)

    @property
    def emulated(self) -> bool:
        return _is_loopback(urlsplit(self.authority).hostname or "")


@dataclass(frozen=True)
class Settings:
    storage: StorageConnection
    subscription_id: str
    defaults: RequestDefaults = field(default_factory=RequestDefaults)
    arm_endpoint: str = DEFAULT_ARM_ENDPOINT
    arm_ca_bundle: str | None = None
    arm_credential: str = "default"
    auto_attach_tag: str = "azlin-storage"
    retail_prices_endpoint: str = DEFAULT_RETAIL_PRICES_ENDPOINT
    cost_digest_webhook_url: str | None = field(default=None, repr=False)
    table_prefix: str = "azlin"
    lock_lease_seconds: int = 300
    vm_agent_wait_minutes: int = 20  # how long an attach waits for a new VM's agent
    # A run that says Running but reports nothing new this long has stopped (its VM rebooted
    # under it): the script runs again. Azure refreshes a run's output about every 15 s.
    run_stall_seconds: int = 90
    auto_heal: bool = True  # the reconcile timer re-attaches unmounted attachments
    # Each VM's mount is verified about once per interval, spread over the reconcile timer's runs
    # (shared.domain.reconciling); 0: every VM on every run.
    reconcile_interval_minutes: int = 60
    # The app's budget of Run Command calls to Resource Manager, shared by its instances
    # (shared/adapters/arm_budget.py); docs/scale.md says where the defaults come from.
    # Compute refills 500 Run Command writes a minute per subscription and region
    # (compute-throttling-limits.md), and Resource Manager 1,500 reads a minute per principal
    # (request-limits-and-throttling.md): the app keeps to 80% of each, leaving room to the rest.
    retention_days: int = 30  # ended operations, idempotency keys, handled events, digests
    run_command_writes_per_minute: int = 400
    run_command_reads_per_minute: int = 1200
    reconcile_schedule: str = DEFAULTS["RECONCILE_SCHEDULE"]
    # The privatelink.file.core.windows.net zone every storage's name is published in (a hub's
    # central zone); None: the zone linked to the endpoint's VNet, else one of the service's own.
    private_dns_zone_id: str | None = None
    identity: IdentitySettings = field(default_factory=IdentitySettings)
    protection: DataProtection = field(default_factory=DataProtection)
    # Traces go to Application Insights when set; else the app makes no spans at all.
    applicationinsights_connection_string: str | None = field(default=None, repr=False)

    @classmethod
    def from_environ(cls, env: Mapping[str, str]) -> Settings:
        reader = _Reader(env)
        settings = cls(
            storage=reader.storage(),
            subscription_id=reader.subscription_id(),
            defaults=RequestDefaults(
                resource_group=reader.optional("DEFAULT_RESOURCE_GROUP", v.resource_group_name),
                region=reader.optional("DEFAULT_REGION", v.region_name),
                vnet=reader.optional("DEFAULT_VNET", v.network_name),
                subnet=reader.optional("DEFAULT_SUBNET", v.network_name),
                home_roots=reader.home_roots(),
            ),
            arm_endpoint=reader.url("ARM_ENDPOINT", DEFAULT_ARM_ENDPOINT),
            arm_ca_bundle=env.get("ARM_CA_BUNDLE") or None,
            arm_credential=reader.arm_credential(),
            auto_attach_tag=env.get("AUTO_ATTACH_TAG") or "azlin-storage",
            retail_prices_endpoint=reader.url("RETAIL_PRICES_ENDPOINT", DEFAULT_RETAIL_PRICES_ENDPOINT),
            cost_digest_webhook_url=reader.optional_url("COST_DIGEST_WEBHOOK_URL"),
            table_prefix=reader.table_prefix(),
            lock_lease_seconds=reader.seconds("LOCK_LEASE_SECONDS", 300),
            vm_agent_wait_minutes=reader.whole("VM_AGENT_WAIT_MINUTES", 20, 1, 240),
            run_stall_seconds=reader.whole("RUN_STALL_SECONDS", 90, 2, 3600),
            auto_heal=reader.flag("AUTO_HEAL", True),
            reconcile_interval_minutes=reader.whole("RECONCILE_INTERVAL", 60, 0, 7 * 24 * 60),
            reconcile_schedule=timer_schedule(env, "RECONCILE_SCHEDULE"),
            retention_days=reader.whole("RETENTION_DAYS", 30, 1, 3650),
            run_command_writes_per_minute=reader.whole("RUN_COMMAND_WRITES_PER_MINUTE", 400, 1, 10_000),
            run_command_reads_per_minute=reader.whole("RUN_COMMAND_READS_PER_MINUTE", 1200, 1, 100_000),
            private_dns_zone_id=reader.optional("PRIVATE_DNS_ZONE_ID", v.private_dns_zone_id),
            identity=reader.identity(),
            protection=DataProtection(
                delete_retention_days=reader.whole("DELETE_RETENTION_DAYS", 7, 0, 365),
                snapshot_retention_days=reader.whole("SNAPSHOT_RETENTION_DAYS", 7, 1, 365),
            ),
            applicationinsights_connection_string=env.get("APPLICATIONINSIGHTS_CONNECTION_STRING") or None,
        )
        reader.raise_if_any()
        return settings


class _Reader:
    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env
        self.causes: list[str] = []

    def raise_if_any(self) -> None:
        if self.causes:
            raise ConfigurationError(
                "The service's app settings are incomplete or invalid.",
                causes=self.causes,
                try_hint="fix these app settings (local.settings.json on a workstation) and restart",
            )

    def storage(self) -> StorageConnection:
        if conn := self.env.get(STORAGE_SETTING):
            return StorageConnection(connection_string=conn)
        prefix = STORAGE_SETTING + "__"
        account = self.env.get(prefix + "accountName")
        table = self.env.get(prefix + "tableServiceUri") or (
            account and f"https://{account}.table.core.windows.net")
        queue = self.env.get(prefix + "queueServiceUri") or (
            account and f"https://{account}.queue.core.windows.net")
        if not (table and queue):
            self.causes.append(f"{STORAGE_SETTING} is not set: give a connection string, or "
                               f"{prefix}accountName (or {prefix}tableServiceUri and "
                               f"{prefix}queueServiceUri) for identity-based access")
            return StorageConnection()
        return StorageConnection(table_endpoint=table, queue_endpoint=queue,
                                 client_id=self.env.get(prefix + "clientId") or None)

    def subscription_id(self) -> str:
        value = self.env.get("AZURE_SUBSCRIPTION_ID", "")
        try:
            return str(uuid.UUID(value))
        except ValueError:
            self.causes.append("AZURE_SUBSCRIPTION_ID must be the subscription's GUID"
                               + ("" if value else " (it is not set)"))
            return ""

    def optional(self, name: str, validate: Callable[[object, str], str]) -> str | None:
        value = self.env.get(name)
        if not value:
            return None
        try:
            return validate(value, name)
        except ValidationError as err:
            self.causes += [f"{name}: {cause}" for cause in err.causes]
            return None

    def home_roots(self) -> tuple[str, ...]:
        try:
            return v.home_roots(self.env.get("HOME_ROOTS") or "/home", "HOME_ROOTS")
        except ValidationError as err:
            self.causes += [f"HOME_ROOTS: {cause}" for cause in err.causes]
            return v.DEFAULT_HOME_ROOTS

    def url(self, name: str, default: str) -> str:
        return self.optional_url(name) or default

    def optional_url(self, name: str) -> str | None:
        value = self.env.get(name)
        if not value:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("https", "http") or not parts.hostname:
            self.causes.append(f"{name} must be an http(s) URL")
            return None
        if parts.scheme == "http" and not _is_loopback(parts.hostname):
            self.causes.append(f"{name} must use https unless it points at this machine")
            return None
        return value.rstrip("/")

    def arm_credential(self) -> str:
        kind = self.env.get("ARM_CREDENTIAL") or "default"
        if kind not in ("default", "emulator"):
            self.causes.append(f"ARM_CREDENTIAL must be 'default' or 'emulator', got {kind!r}")
            return "default"
        host = urlsplit(self.env.get("ARM_ENDPOINT") or DEFAULT_ARM_ENDPOINT).hostname or ""
        if kind == "emulator" and not _is_loopback(host):
            self.causes.append("ARM_CREDENTIAL=emulator is accepted only when ARM_ENDPOINT "
                               "is a loopback address (the local emulator)")
            return "default"
        return kind

    def identity(self) -> IdentitySettings:
        authority = self.url("AUTH_AUTHORITY", DEFAULT_AUTHORITY)
        if not authority.startswith("https://"):
            self.causes.append("AUTH_AUTHORITY must be an https URL")
        identity = IdentitySettings(
            tenant_id=self.guid("AUTH_TENANT_ID"),
            audience=self.guid("AUTH_AUDIENCE", prefix="api://"),
            authority=authority,
            scope=self.env.get("AUTH_SCOPE") or "user_impersonation",
            app_client_id=self.guid("AZURE_CLIENT_ID"),
            emulator_secret=self.env.get("EMULATOR_IDENTITY_SECRET") or None,
            ca_bundle=self.env.get("ARM_CA_BUNDLE") or None,
        )
        if not _SCOPE_NAME.fullmatch(identity.scope):
            self.causes.append("AUTH_SCOPE must be a scope name such as user_impersonation")
        if identity.emulator_secret and not identity.emulated:
            self.causes.append("EMULATOR_IDENTITY_SECRET is accepted only when AUTH_AUTHORITY is a "
                               "loopback address (the local emulator)")
        if self.env.get("ARM_CREDENTIAL") == "emulator" and not (
                identity.emulated and identity.emulator_secret and identity.app_client_id
                and identity.tenant_id):
            self.causes.append("ARM_CREDENTIAL=emulator needs AUTH_TENANT_ID, AUTH_AUTHORITY (the "
                               "emulator), AZURE_CLIENT_ID and EMULATOR_IDENTITY_SECRET")
        return identity

    def guid(self, name: str, *, prefix: str = "") -> str | None:
        value = self.env.get(name)
        if not value:
            return None
        try:
            return str(uuid.UUID(value.removeprefix(prefix)))
        except ValueError:
            self.causes.append(f"{name} must be a GUID" + (f" (or {prefix}<GUID>)" if prefix else ""))
            return None

    def table_prefix(self) -> str:
        prefix = self.env.get("STATE_TABLE_PREFIX") or "azlin"
        if not _TABLE_PREFIX.fullmatch(prefix):
            self.causes.append("STATE_TABLE_PREFIX must be 1-30 letters and digits, "
                               "starting with a letter")
            return "azlin"
        return prefix

    def seconds(self, name: str, default: int) -> int:
        value = self.env.get(name)
        if not value:
            return default
        if not re.fullmatch(r"[0-9]{1,4}", value) or not 10 <= int(value) <= 3600:
            self.causes.append(f"{name} must be a whole number of seconds from 10 to 3600")
            return default
        return int(value)


    def whole(self, name: str, default: int, low: int, high: int) -> int:
        value = self.env.get(name)
        if not value:
            return default
        if not re.fullmatch(r"[0-9]{1,6}", value) or not low <= int(value) <= high:
            self.causes.append(f"{name} must be a whole number from {low} to {high}")
            return default
        return int(value)

    def flag(self, name: str, default: bool) -> bool:
        value = (self.env.get(name) or "").strip().lower()
        if not value:
            return default
        if value not in ("true", "false", "1", "0"):
            self.causes.append(f"{name} must be true or false")
            return default
        return value in ("true", "1")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
