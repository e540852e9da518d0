"""Ports: what the services need from the outside world, named by capability.

Adapters in `shared.adapters` implement them against Azure; services depend only on these.
Verbs follow the Azure SDK guidelines: `get` returns None for a missing record, `list` returns a
page (possibly empty), `delete`/`remove`/`release` succeed when the thing is already gone.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, Protocol, TypeVar

from .domain.costs import CachedPrice
from .domain.data_protection import ShareSnapshot, SnapshotReason
from .domain.digests import CostDigest, UnattachedVm
from .domain.events import Asked
from .domain.identity import Caller
from .domain.models import Attachment, DefaultStorage, StorageAccess, StorageInfo
from .domain.mounting import ScriptRun, VmFacts, VmSummary
from .domain.network_rules import EndpointPlace, SecurityRule, SubnetFacts
from .domain.operations import ANY_OPERATION, Operation, OperationFilter
from .domain.private_dns import DnsRecord, DnsZone, EndpointDns, VnetDns
from .domain.provisioning import AccountSpec, CloudAccount, CloudShare, Network
from .domain.rbac import Access

T = TypeVar("T")


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    continuation: str | None  # opaque; pass back to get the next page, None when done


@dataclass(frozen=True)
class IdempotencyRecord:
    key: str
    fingerprint: str  # what the first request asked for; a different ask with the same key is refused
    operation_id: str
    created_at: datetime
    queued: bool = False  # a request with this key sends (or sent) the message; no other may
    etag: str | None = field(default=None, compare=False)  # stored version, for conditional updates


@dataclass(frozen=True)
class Lease:
    key: str
    owner: str  # unique per holder; only the holder can renew or release
    holder: str  # for people: which operation holds it
    expires_at: datetime
    etag: str
    shared: bool = False  # one of many readers; an exclusive holder waits for all of them


class Clock(Protocol):
    def now(self) -> datetime: ...


class OperationRepository(Protocol):
    def add(self, operation: Operation) -> Operation:
        """Record a new operation; if one with the same id exists, return that one unchanged."""

    def get(self, operation_id: str) -> Operation | None: ...

    def save(self, operation: Operation) -> Operation:
        """Replace the record, only if unchanged since it was read (raises ConcurrentUpdate)."""

    def list_stalled(self, updated_before: datetime) -> list[Operation]:
        """Pending operations never started and untouched since `updated_before` (read through
        an index of the operations recorded Pending, never by scanning every operation)."""

    def children_running(self, parent: str) -> bool:
        """Whether a child operation of `parent` has not ended yet."""

    def children(self, parent: str) -> list[Operation]:
        """Every child operation of `parent`."""

    def list_about(self, subject: str, page_size: int, continuation: str | None,
                   only: OperationFilter = ANY_OPERATION) -> Page[Operation]:
        """Operations about `subject` (`operation_subjects`: a storage, a VM, who asked) that
        `only` matches, newest first."""

    def forget_about(self, subject: str) -> None:
        """Stop listing operations under `subject` (a deleted storage: the next storage of that
        name is someone else's). The operations stay readable by id."""


class IdempotencyStore(Protocol):
    def claim(self, record: IdempotencyRecord, expired_before: datetime) -> IdempotencyRecord:
        """Store `record` unless the key is held by a record newer than `expired_before`; return
        whichever record holds the key afterwards."""

    def reserve_send(self, record: IdempotencyRecord) -> bool:
        """Mark the key's operation as queued, only if the record is unchanged since `record` was
        read: of concurrent requests with one key, exactly one gets True and sends the message."""

    def release_send(self, record: IdempotencyRecord) -> None:
        """Undo a reservation whose message could not be sent, so a replay sends it."""


class StorageRepository(Protocol):
    def get(self, name: str) -> StorageInfo | None: ...

    def list(self, resource_group: str | None, page_size: int,
             continuation: str | None) -> Page[StorageInfo]: ...

    def save(self, storage: StorageInfo) -> None: ...

    def delete(self, name: str) -> None: ...


class StorageAccessRepository(Protocol):
    def get(self, storage: str) -> StorageAccess | None: ...

    def add(self, access: StorageAccess) -> StorageAccess:
        """Record a storage's first owners; if it has a record, return that one unchanged."""

    def save(self, access: StorageAccess) -> StorageAccess:
        """Replace it, only if unchanged since it was read (raises ConcurrentUpdate)."""

    def delete(self, storage: str) -> None: ...


class AttachmentRepository(Protocol):
    def get(self, resource_group: str, vm: str) -> Attachment | None: ...

    def list_for_storage(self, storage: str) -> list[Attachment]: ...

    def list_all(self) -> list[Attachment]: ...

    def add(self, attachment: Attachment) -> Attachment:
        """Record an attachment; a VM attached to the same storage returns the existing record,
        one attached to another storage raises Conflict (VmAttachedElsewhere)."""

    def save(self, attachment: Attachment) -> None:
        """Update an existing attachment (health, verification)."""

    def remove(self, resource_group: str, vm: str, *, vm_id: str | None = None) -> None:
        """Forget the VM's attachment; with `vm_id`, only a record of that VM (not one written
        meanwhile for a VM recreated under the same name)."""

    def mark_detached(self, vm_id: str, at: datetime) -> None:
        """Remember that this VM was detached on purpose: auto-attach leaves it alone."""

    def was_detached(self, vm_id: str) -> bool: ...

    def clear_detached(self, vm_id: str) -> None:
        """An explicit attach: auto-attach may act on it again after a later detach only."""

    def remember_ask(self, vm_id: str, asked: Asked) -> None:
        """What this VM asks for and who asked, from its events: the reconcile timer applies
        auto-attach's rule to it too."""

    def asked_of(self, vm_id: str) -> Asked | None: ...


class DefaultStorageRepository(Protocol):
    """Per resource group (names compared case-insensitively, as Azure does)."""

    def get(self, resource_group: str) -> DefaultStorage | None: ...

    def save(self, default: DefaultStorage) -> None: ...

    def remove(self, resource_group: str) -> None: ...


class LockManager(Protocol):
    def acquire(self, key: str, owner: str, holder: str, *, shared: bool = False) -> Lease:
        """Take the lock, or take over an expired one; raises ResourceBusy while someone else
        holds it. A shared lease is held by many at once (attaches to one storage) and excludes
        only the exclusive one (what changes the storage itself), and the other way round."""

    def renew(self, lease: Lease) -> Lease:
        """Extend a lease still held; raises LeaseLost (a TransientError) if it was taken over."""

    def release(self, lease: Lease) -> None: ...


class PendingAdmissions(Protocol):
    """Addresses waiting to be let into a storage's network rule: the attach that holds the rule
    next writes them all at once (a fleet's attaches share a few writes, not one each)."""

    def add(self, storage: str, address: str) -> None: ...

    def waiting(self, storage: str) -> set[str]:
        """Addresses added within the last few minutes (older ones belong to attaches that died)."""
        ...

    def remove(self, storage: str, addresses: set[str]) -> None: ...


class Retention(Protocol):
    def sweep(self, before: datetime, limit: int) -> dict[str, int]:
        """Remove records made before `before` (at most `limit`); how many of each kind went."""
        ...


class CallBudget(Protocol):
    """Token buckets for kinds of Resource Manager calls, shared by every instance of the app."""

    def take(self, kind: str) -> float:
        """Take a token: 0 when the call may go now, else the seconds until one is there."""
        ...

    def hold_off(self, kind: str, seconds: float) -> None:
        """Azure said to wait (a 429's Retry-After): no call of this kind for `seconds`."""


class OperationQueue(Protocol):
    def send(self, operation_id: str, delay_seconds: int = 0) -> None:
        """Queue a message naming the operation, with the trace context of the current span."""


SpanAttributes = Mapping[str, str | int | bool]


class Span(Protocol):
    def note(self, attributes: SpanAttributes) -> None: ...

    def fail(self, description: str) -> None:
        """Mark it an error (an exception leaving the span does so on its own)."""


class Tracing(Protocol):
    """OpenTelemetry, as the app needs it: spans that continue a trace whose W3C context
    (`traceparent`, `tracestate`) travelled in a request or a queue message."""

    def carrier(self) -> dict[str, str]:
        """The current span's trace context as W3C headers; {} outside any span."""

    def span(self, name: str, *, kind: str, parent: Mapping[str, str],
             attributes: SpanAttributes) -> AbstractContextManager[Span]:
        """A span (`kind`: server, consumer, internal), current while the block runs: a child of
        the context `parent` names, or the root of a new trace when it names none."""

    def current(self) -> Span:
        """The current span (one that ignores everything outside a span)."""


class StorageCloud(Protocol):
    """Resource Manager, as the storage lifecycle needs it. Reads return None for what does not
    exist; creates are idempotent PUTs that wait for the end of long-running operations; deletes
    succeed when the thing is already gone. Failures raise the service's errors: TransientError
    for throttling, server errors and timeouts, DomainError (PermissionDenied, ValidationError,
    NotFound, Conflict) for what retrying cannot fix."""

    def group_region(self, group: str) -> str | None: ...

    def get_account(self, group: str, name: str) -> CloudAccount | None: ...

    def name_available(self, name: str) -> tuple[bool, str]:
        """Whether the name is free anywhere in Azure, and Azure's reason when it is not."""
        ...

    def create_account(self, spec: AccountSpec) -> CloudAccount: ...

    def list_accounts(self, group: str | None) -> list[CloudAccount]:
        """Every account of the subscription (or group), in one listing."""
        ...

    def delete_account(self, group: str, name: str) -> None: ...

    def account_locked(self, group: str, name: str) -> bool: ...

    def lock_account(self, group: str, name: str) -> None:
        """A CanNotDelete lock on the account, lifted only by the service's own delete."""
        ...

    def unlock_account(self, group: str, name: str) -> None: ...

    def get_share(self, group: str, account: str, *, with_usage: bool = False) -> CloudShare | None: ...

    def put_share(self, group: str, account: str, quota_gib: int, iops: int | None = None,
                  throughput_mibps: int | None = None) -> CloudShare:
        """Create the NFS share `home`, or set its quota (and a v2 share's IOPS and throughput)."""
        ...

    def protect_shares(self, group: str, account: str, days: int) -> None:
        """Share soft delete on, keeping a deleted share `days` days (written only when it differs)."""
        ...

    def take_snapshot(self, group: str, account: str, reason: SnapshotReason) -> ShareSnapshot:
        """A snapshot of the share, labelled with why the service took it."""
        ...

    def list_snapshots(self, group: str, account: str) -> list[ShareSnapshot]: ...

    def delete_snapshot(self, group: str, account: str, snapshot: str) -> None:
        """Azure refuses while the account is locked: the caller lifts the lock around it."""
        ...

    def get_network(self, group: str, vnet: str, subnet: str) -> Network | None: ...

    def subnet_facts(self, group: str, vnet: str, subnet: str) -> SubnetFacts | None: ...

    def create_network(self, group: str, region: str, vnet: str, space: str, subnet: str,
                       prefix: str, tags: dict[str, str]) -> Network: ...

    def get_endpoint(self, group: str, name: str) -> str | None:
        """The private endpoint's id, if it exists."""
        ...

    def create_endpoint(self, group: str, name: str, region: str, subnet_id: str, account_id: str,
                        tags: dict[str, str]) -> str: ...

    def delete_endpoint(self, group: str, name: str) -> None: ...

    def endpoint_place(self, group: str, endpoint: str) -> EndpointPlace | None:
        """The endpoint's subnet and private address, and how that subnet is guarded now."""
        ...

    def guard_subnet(self, place: EndpointPlace, region: str, tags: dict[str, str]) -> str:
        """The service's network security group on the subnet, obeyed by endpoints; its id."""
        ...

    def security_rules(self, nsg_id: str) -> list[SecurityRule]: ...

    def put_security_rule(self, nsg_id: str, rule: SecurityRule) -> None: ...

    def delete_security_rule(self, nsg_id: str, name: str) -> None: ...

    def file_zones(self, configured: str | None) -> list[DnsZone]:
        """Every privatelink.file zone the identity may read, the configured one included."""
        ...

    def own_zone_id(self, group: str) -> str:
        """The id the service's own zone has (or would have) in `group`."""
        ...

    def create_zone(self, group: str, tags: dict[str, str]) -> str: ...

    def delete_zone(self, zone_id: str) -> None: ...

    def link_zone(self, zone_id: str, vnet_id: str, tags: dict[str, str]) -> None: ...

    def unlink_zone(self, zone_id: str, link: str) -> None: ...

    def zone_records(self, zone_id: str) -> list[DnsRecord]: ...

    def put_record(self, zone_id: str, name: str, address: str, tags: dict[str, str]) -> None: ...

    def delete_record(self, zone_id: str, name: str) -> None: ...

    def missing_actions(self, scope: str, actions: tuple[str, ...]) -> list[str]:
        """Which of `actions` the service's own identity may not do at `scope`."""
        ...

    def has_zone_group(self, group: str, endpoint: str) -> bool: ...

    def create_zone_group(self, group: str, endpoint: str, zone_id: str) -> None: ...

    def endpoint_dns(self, group: str, endpoint: str) -> EndpointDns | None:
        """The zone the endpoint's DNS zone group publishes in, with the endpoint's address."""
        ...

    def vnet_dns(self, vnet_id: str) -> VnetDns: ...

    def delete_network_if_unused(self, group: str, vnet: str) -> bool:
        """Delete a VNet this service created, unless anything is in it; True when deleted."""
        ...


class VmCloud(Protocol):
    """Virtual machines as attaching needs them, through Resource Manager."""

    stall_seconds: float  # a Running run that reports nothing new this long has stopped

    def get_vm(self, group: str, name: str) -> VmFacts | None: ...

    def list_vms(self) -> list[VmSummary]:
        """Every VM of the subscription with its power state, in one listing."""
        ...

    def endpoint_vnet(self, group: str, endpoint: str) -> str | None:
        """The VNet id of a private endpoint's subnet, or None when there is no endpoint."""
        ...

    def vnets_connected(self, vnet_a: str, vnet_b: str) -> bool:
        """Traffic flows between them: the same VNet, or peered (connected) both ways."""
        ...

    def run_script(self, vm: VmFacts, name: str, script: str, parameters: dict[str, str],
                   timeout_seconds: int, tags: dict[str, str] | None = None,
                   protected: dict[str, str] | None = None) -> ScriptRun:
        """Run a script through the managed Run Command `name` and wait for its end (or until it
        stalls); when a command of that name exists already, its run is awaited or read, never
        started again. `protected` values reach the script like `parameters`, but Azure never
        shows them (protectedParameters)."""
        ...

    def delete_run(self, vm: VmFacts, name: str) -> None: ...

    def delete_runs(self, vm: VmFacts, prefix: str) -> None:
        """Delete every run command of the VM whose name starts with `prefix`."""
        ...

    def sweep(self, vm: VmFacts) -> int:
        """Delete the service's run commands on the VM that ended over an hour ago."""
        ...


class TokenValidator(Protocol):
    def caller(self, token: str) -> Caller:
        """The caller an Entra ID access token for the API names; Unauthenticated when the token is
        not valid (signature, issuer, audience, expiry, tenant, scope)."""
        ...


class AccessReader(Protocol):
    """Azure's answer to "what may this caller do at this scope?": a user's own permissions (asked
    as the user, on their behalf), a service principal's role assignments and their roles, and
    the deny assignments that apply there."""

    def access(self, caller: Caller, scope: str) -> Access: ...


class HandledEvents(Protocol):
    """Event ids already acted on, so that a redelivered event is dropped before any read."""

    def seen(self, event_id: str) -> bool: ...

    def remember(self, event_id: str, at: datetime) -> None: ...


class PriceCache(Protocol):
    def get(self, key: str) -> CachedPrice | None: ...

    def save(self, price: CachedPrice) -> None: ...


class RetailPrices(Protocol):
    """The Azure Retail Prices API."""

    def items(self, odata_filter: str) -> list[dict[str, Any]]:
        """Every item matching the filter, all pages followed; TransientError when unreachable."""
        ...


class Webhook(Protocol):
    def post(self, url: str, body: Mapping[str, Any], idempotency_key: str) -> None:
        """POST JSON; any answer but 2xx, or no answer, raises TransientError."""
        ...


class DigestRepository(Protocol):
    def add(self, digest: CostDigest) -> CostDigest:
        """Record a new digest; if one with its id exists, return that one unchanged."""

    def get(self, digest_id: str) -> CostDigest | None: ...

    def latest(self, before: str | None = None) -> CostDigest | None:
        """The newest digest (with an id lower than `before`, when given)."""

    def save(self, digest: CostDigest) -> CostDigest:
        """Replace it, only if unchanged since it was read (raises ConcurrentUpdate)."""

    def undelivered(self) -> list[CostDigest]: ...

    def mark_due(self, digest_id: str) -> None:
        """The digest of that day is to be made: set before building, cleared once stored."""

    def due(self) -> list[str]: ...

    def clear_due(self, digest_id: str) -> None: ...


class ReconcileFindings(Protocol):
    """What the last reconcile run found that a person must decide: VMs left unattached."""

    def save(self, not_attached: list[UnattachedVm], at: datetime) -> None: ...

    def latest(self) -> list[UnattachedVm]: ...


class Probe(Protocol):
    """A dependency the readiness check can ask: does it answer?"""

    name: str

    def check(self) -> None: ...
