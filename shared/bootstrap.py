"""The composition root: the one place that builds adapters and services and wires them together.

Everything is built on first use and cached for the life of the process, so indexing the function
app imports no SDK and a warm instance reuses its clients. Tests build a `Container` with their
own settings, clock or handlers and install it with `use`.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Mapping
from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any

from .domain.messages import OPERATIONS_QUEUE, POISON_QUEUE
from .domain.operations import OperationKind, Patience
from .ports import Clock, Probe, Tracing
from .services.access import AccessControl
from .services.attachments import AttachmentService
from .services.data_protection import DataProtectionService
from .services.default_storage import DefaultStorageService
from .services.operations import OperationIntake, OperationReads
from .services.provisioning import StorageProvisioner
from .services.storage import StorageService
from .services.worker import Handler, OperationWorker
from .settings import Settings
from .tracing import NO_TRACING

if TYPE_CHECKING:
    from .adapters.arm import ArmClients
    from .adapters.arm_access import ArmAccessReader
    from .adapters.arm_storage import ArmStorageCloud
    from .adapters.arm_vms import ArmVmCloud
    from .adapters.entra import EntraTokenValidator
    from .adapters.queues import StorageQueue
    from .adapters.tables import (
        TableAccessRepository,
        TableAttachmentRepository,
        TableCallBudget,
        TableDefaultStorageRepository,
        TableDigestRepository,
        TableHandledEvents,
        TableIdempotencyStore,
        TableLockManager,
        TableOperationRepository,
        TablePendingAdmissions,
        TablePriceCache,
        TableReconcileFindings,
        TableState,
        TableStorageRepository,
    )
    from .services.auto_attach import AutoAttachService
    from .services.costs import CostService
    from .services.digests import DigestService
    from .services.mounting import MountService
    from .services.private_dns import PrivateDnsPublisher
    from .services.reconcile import ReconcileService
    from .services.retention import RetentionService


log = logging.getLogger(__name__)


class Container:
    def __init__(self, settings: Settings, *, clock: Clock | None = None,
                 handlers: Mapping[OperationKind, Handler] | None = None,
                 heartbeat_seconds: float | None = None,
                 arm_options: Mapping[str, Any] | None = None,
                 patience: Patience | None = None, tracing: Tracing | None = None) -> None:
        self.settings = settings
        self._clock = clock
        self._handlers = handlers
        self._heartbeat_seconds = heartbeat_seconds
        # Resource Manager client options. In Azure the SDK retries a throttled or failed request
        # a few times itself (honouring Retry-After) before the queue's retry takes over.
        self._arm_options = dict(arm_options) if arm_options is not None else {"retry_total": 3}
        self._patience = patience or Patience(
            deadline=timedelta(minutes=settings.vm_agent_wait_minutes))
        self._tracing = tracing  # a test's own (an in-memory exporter); else from settings

    @cached_property
    def tracing(self) -> Tracing:
        """Spans exported to Application Insights when its connection string is set; else none,
        and OpenTelemetry is never imported. Configured on first use, not at cold start."""
        if self._tracing is not None:
            return self._tracing
        connection_string = self.settings.applicationinsights_connection_string
        if not connection_string:
            return NO_TRACING
        from .adapters.tracing import OpenTelemetryTracing, export_to_application_insights

        try:
            export_to_application_insights(connection_string)
        except Exception:  # a bad connection string must not take the service down with it
            log.exception("traces are off: APPLICATIONINSIGHTS_CONNECTION_STRING could not be used")
            return NO_TRACING
        return OpenTelemetryTracing()

    @cached_property
    def clock(self) -> Clock:
        from .adapters.clock import SystemClock

        return self._clock or SystemClock()

    def _trace_context(self) -> dict[str, str]:
        """What each queue message carries; tracing is built at the first send, not before."""
        return self.tracing.carrier()

    # State and queue (adapters) -------------------------------------------------------------

    @cached_property
    def state(self) -> TableState:
        from .adapters.tables import TableState

        return TableState(self.settings.storage, self.settings.table_prefix)

    @cached_property
    def operations(self) -> TableOperationRepository:
        from .adapters.tables import TableOperationRepository

        return TableOperationRepository(self.state)

    @cached_property
    def idempotency(self) -> TableIdempotencyStore:
        from .adapters.tables import TableIdempotencyStore

        return TableIdempotencyStore(self.state)

    @cached_property
    def storages(self) -> TableStorageRepository:
        from .adapters.tables import TableStorageRepository

        return TableStorageRepository(self.state)

    @cached_property
    def access_records(self) -> TableAccessRepository:
        from .adapters.tables import TableAccessRepository

        return TableAccessRepository(self.state)

    @cached_property
    def findings(self) -> TableReconcileFindings:
        from .adapters.tables import TableReconcileFindings

        return TableReconcileFindings(self.state)

    @cached_property
    def attachments(self) -> TableAttachmentRepository:
        from .adapters.tables import TableAttachmentRepository

        return TableAttachmentRepository(self.state)

    @cached_property
    def default_storages(self) -> TableDefaultStorageRepository:
        from .adapters.tables import TableDefaultStorageRepository

        return TableDefaultStorageRepository(self.state)

    @cached_property
    def handled_events(self) -> TableHandledEvents:
        from .adapters.tables import TableHandledEvents

        return TableHandledEvents(self.state)

    @cached_property
    def admissions(self) -> TablePendingAdmissions:
        from .adapters.tables import TablePendingAdmissions

        return TablePendingAdmissions(self.state, self.clock)

    @cached_property
    def locks(self) -> TableLockManager:
        from .adapters.tables import TableLockManager

        return TableLockManager(self.state, self.clock, self.settings.lock_lease_seconds)

    @cached_property
    def queue(self) -> StorageQueue:
        from .adapters.queues import StorageQueue

        return StorageQueue(self.settings.storage, OPERATIONS_QUEUE, trace=self._trace_context)

    @cached_property
    def poison_queue(self) -> StorageQueue:
        from .adapters.queues import StorageQueue

        return StorageQueue(self.settings.storage, POISON_QUEUE, trace=self._trace_context)

    @cached_property
    def arm(self) -> ArmClients:
        from .adapters.arm import ArmClients

        return ArmClients(self.settings, budget=self.call_budget, **self._arm_options)

    @cached_property
    def retention(self) -> RetentionService:
        from .adapters.tables import TableRetention
        from .services.retention import RetentionService

        return RetentionService(TableRetention(self.state, self.operations, self.clock), self.clock,
                                self.settings.retention_days)

    @cached_property
    def call_budget(self) -> TableCallBudget:
        from .adapters.clock import SystemClock
        from .adapters.tables import TableCallBudget
        from .domain.budget import Bucket

        def per_minute(calls: int) -> Bucket:  # a minute's calls may go at once, then an even pace
            return Bucket(capacity=calls, per_second=calls / 60)

        # Real time always: the budget paces real calls, whatever clock the services are given.
        return TableCallBudget(self.state, SystemClock(), {
            "runCommandWrite": per_minute(self.settings.run_command_writes_per_minute),
            "runCommandRead": per_minute(self.settings.run_command_reads_per_minute)})

    @cached_property
    def tokens(self) -> EntraTokenValidator:
        """Validates the API's bearer tokens; PyJWT loads with the first request, not at import."""
        from .adapters.entra import EntraTokenValidator

        return EntraTokenValidator(self.settings.identity)

    @cached_property
    def access_reader(self) -> ArmAccessReader:
        from .adapters.arm_access import ArmAccessReader

        return ArmAccessReader(self.arm)

    @cached_property
    def access(self) -> AccessControl:
        return AccessControl(lambda: self.access_reader, self.access_records, self.settings.subscription_id)

    @cached_property
    def vms(self) -> ArmVmCloud:
        from .adapters.arm_vms import ArmVmCloud

        return ArmVmCloud(self.arm, stall_seconds=self.settings.run_stall_seconds)

    @cached_property
    def mounts(self) -> MountService:
        from .services.mounting import MountService
        from .services.network_guard import NetworkGuard

        return MountService(self.vms, self.cloud, self.storages, self.attachments, self.clock, self.dns,
                            self.settings.defaults.home_roots,
                            guard=NetworkGuard(self.cloud, self.locks, self.admissions),
                            snapshot=self.data_protection.before)

    @cached_property
    def dns(self) -> PrivateDnsPublisher:
        from .services.private_dns import PrivateDnsPublisher

        return PrivateDnsPublisher(self.cloud, self.settings.private_dns_zone_id)

    @cached_property
    def auto_attach(self) -> AutoAttachService:
        from .services.auto_attach import AutoAttachService

        return AutoAttachService(self.vms, self.attachments, self.default_storages, self.storages,
                                 self.access_records, self.access, self.intake, self.handled_events,
                                 self.clock, self.settings.auto_attach_tag)

    @cached_property
    def reconcile(self) -> ReconcileService:
        from .services.reconcile import ReconcileService

        return ReconcileService(self.attachments, self.vms, self.cloud, self.mounts, self.auto_attach,
                                self.intake, self.operations, self.findings, self.clock,
                                auto_heal=self.settings.auto_heal,
                                interval=timedelta(minutes=self.settings.reconcile_interval_minutes),
                                schedule=self.settings.reconcile_schedule)

    @cached_property
    def price_cache(self) -> TablePriceCache:
        from .adapters.tables import TablePriceCache

        return TablePriceCache(self.state)

    @cached_property
    def digest_records(self) -> TableDigestRepository:
        from .adapters.tables import TableDigestRepository

        return TableDigestRepository(self.state)

    @cached_property
    def costs(self) -> CostService:
        from .adapters.http_json import RetailPricesApi
        from .services.costs import CostService

        return CostService(self.storages, RetailPricesApi(self.settings.retail_prices_endpoint),
                           self.price_cache, self.clock, self.access, vms=lambda: self.vms)

    @cached_property
    def digests(self) -> DigestService:
        from .adapters.http_json import JsonWebhook
        from .services.digests import DigestService

        return DigestService(self.costs, self.storage.used_gb, self.attachments, self.digest_records,
                             JsonWebhook(), self.clock, self.settings.cost_digest_webhook_url, self.findings)

    @cached_property
    def cloud(self) -> ArmStorageCloud:
        from .adapters.arm_storage import ArmStorageCloud

        return ArmStorageCloud(self.arm)

    @property
    def probes(self) -> list[Probe]:
        return [self.state, self.queue]

    # Services ----------------------------------------------------------------------------------

    @cached_property
    def intake(self) -> OperationIntake:
        return OperationIntake(self.operations, self.idempotency, self.queue, self.clock, self.tracing)

    @cached_property
    def operation_reads(self) -> OperationReads:
        return OperationReads(self.intake, self.access, self.storages)

    @cached_property
    def storage(self) -> StorageService:
        return StorageService(self.storages, self.attachments, self.intake, self.access,
                              self.settings.defaults, self.clock, cloud=lambda: self.cloud,
                              reads=self.operation_reads, price=self.costs.price_of)

    @cached_property
    def data_protection(self) -> DataProtectionService:
        return DataProtectionService(self.storages, self.attachments, self.access, self.intake, self.clock,
                                     self.settings.protection, cloud=lambda: self.cloud)

    @cached_property
    def provisioner(self) -> StorageProvisioner:
        return StorageProvisioner(self.cloud, self.storages, self.attachments, self.access_records,
                                  self.operations, self.clock, self.settings.defaults, self.dns,
                                  intake=self.intake, protection=self.settings.protection,
                                  snapshot=self.data_protection.before,
                                  waiting=self.auto_attach.attach_waiting)

    @cached_property
    def attachment(self) -> AttachmentService:
        return AttachmentService(self.attachments, self.storage, self.intake, self.access,
                                 self.operation_reads)

    @cached_property
    def default_storage(self) -> DefaultStorageService:
        return DefaultStorageService(self.default_storages, self.storage, self.access, self.clock,
                                     cloud=lambda: self.cloud)

    @cached_property
    def worker(self) -> OperationWorker:
        handlers = self._handlers if self._handlers is not None else self._operation_handlers()
        return OperationWorker(self.operations, self.locks, self.queue, self.poison_queue, self.clock,
                               handlers, heartbeat_seconds=self._heartbeat_seconds
                               or self.settings.lock_lease_seconds / 3, patience=self._patience,
                               tracing=self.tracing)

    def _operation_handlers(self) -> dict[OperationKind, Handler]:
        """The service that runs each operation kind; kinds without one end Failed with
        UnsupportedOperation. Each service (and the SDKs it imports) is built on first use."""
        return {
            OperationKind.CREATE_STORAGE: self._step("provisioner", "create"),
            OperationKind.RESIZE_STORAGE: self._step("provisioner", "resize"),
            OperationKind.DELETE_STORAGE: self._step("provisioner", "delete"),
            OperationKind.UNDELETE_STORAGE: self._step("provisioner", "undelete"),
            OperationKind.PURGE_STORAGE: self._step("provisioner", "purge"),
            OperationKind.RESTORE_SNAPSHOT: self._step("mounts", "restore"),
            OperationKind.ATTACH_VM: self._step("mounts", "attach"),
            OperationKind.DETACH_VM: self._step("mounts", "detach"),
            OperationKind.VERIFY_VM: self._step("mounts", "verify_operation"),
            OperationKind.RECONCILE: self._step("reconcile", "run"),
            OperationKind.RECONCILE_VM: self._step("reconcile", "check_one"),
        }

    def _step(self, service: str, step: str) -> Handler:
        def run(command: Any, context: Any) -> Any:
            return getattr(getattr(self, service), step)(command, context)  # built here, on first use

        return run


_current: Container | None = None
_lock = threading.Lock()


def container() -> Container:
    """The process-wide container, built from the environment on first use."""
    global _current
    with _lock:
        if _current is None:
            _current = Container(Settings.from_environ(os.environ))
        return _current


def use(replacement: Container | None) -> None:
    """Install a container (tests), or None to rebuild from the environment on next use."""
    global _current
    with _lock:
        _current = replacement
