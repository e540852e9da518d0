"""Accepting work: record a Pending operation, queue it, answer at once.

`Idempotency-Key`: the same key and the same request return the same operation and queue
nothing new; the same key with a different request is refused. Keys are remembered for 24 hours.
A request whose message could not be queued answers 503; a replay with the same key queues it,
and so does the stall sweep (`requeue_stalled`, on a timer) if the process died in between.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from shared.domain import rbac
from shared.domain.commands import Command, params_of
from shared.domain.errors import (
    Conflict,
    DomainError,
    ErrorCode,
    NotFound,
    PermissionDenied,
    TransientError,
)
from shared.domain.identity import Caller, Principal
from shared.domain.messages import canonical_operation_id
from shared.domain.operations import (
    ANY_OPERATION,
    UNDER_WAY,
    Operation,
    OperationFilter,
    OperationKind,
    OperationStatus,
    requester_subject,
    storage_subject,
    vm_subject,
)
from shared.logs import for_operation
from shared.ports import (
    Clock,
    IdempotencyRecord,
    IdempotencyStore,
    OperationQueue,
    OperationRepository,
    Page,
    StorageRepository,
    Tracing,
)
from shared.tracing import NO_TRACING

from .access import AccessControl

log = logging.getLogger(__name__)
IDEMPOTENCY_WINDOW = timedelta(hours=24)
STALLED_AFTER = timedelta(minutes=15)


@dataclass(frozen=True)
class Submission:
    operation: Operation
    replayed: bool  # an earlier request with the same Idempotency-Key created it


class OperationIntake:
    def __init__(self, operations: OperationRepository, idempotency: IdempotencyStore,
                 queue: OperationQueue, clock: Clock, tracing: Tracing = NO_TRACING) -> None:
        self.operations = operations
        self.idempotency = idempotency
        self.queue = queue
        self.clock = clock
        self.tracing = tracing

    def submit_for(self, caller: Caller, command: Command, idempotency_key: str | None, *,
                   storage: str | None = None) -> Submission:
        """What a caller asks for. Their Idempotency-Key is theirs alone: one caller's key never
        returns another's operation."""
        key = None if idempotency_key is None else f"caller:{caller.object_id}:{idempotency_key}"
        return self.submit(command, key, requested_by=caller.principal, storage=storage)

    def submit(self, command: Command, idempotency_key: str | None = None, *,
               requested_by: Principal | None = None, storage: str | None = None,
               parent: str | None = None) -> Submission:
        """Record and queue the operation `command` asks for, once per `idempotency_key` (a key
        the service makes, such as an event's, or a caller's scoped by `submit_for`)."""
        params = params_of(command)
        now = self.clock.now()
        concerns = storage or command.storage_name
        trace = self.tracing.carrier()  # kept on the record: every delivery continues this trace
        operation = Operation.new(command.KIND, command.target, params, now, requested_by=requested_by,
                                  storage=concerns, parent=parent, trace=trace)
        if idempotency_key is None:
            return Submission(self._record_and_queue(operation, None), replayed=False)
        holder = self._claim(operation, idempotency_key)
        if holder.operation_id == operation.id:
            return Submission(self._record_and_queue(operation, holder), replayed=False)
        earlier = Operation.new(command.KIND, command.target, params, holder.created_at,
                                operation_id=holder.operation_id, requested_by=requested_by, storage=concerns,
                                parent=parent, trace=trace)
        return Submission(self._record_and_queue(earlier, holder), replayed=True)

    def refuse(self, command: Command, error: DomainError, idempotency_key: str | None = None, *,
               requested_by: Principal | None = None, storage: str | None = None) -> Submission:
        """Record an operation Failed from the start, queued never: a request that came by event,
        where no caller gets a 400 or a 403, so the storage's owners see who asked. With a key, a
        repeated event records nothing new."""
        now = self.clock.now()
        pending = Operation.new(command.KIND, command.target, params_of(command), now,
                                requested_by=requested_by, storage=storage or command.storage_name)
        operation = pending.fail(error, now)
        if idempotency_key is None:
            return Submission(self.operations.add(operation), replayed=False)
        holder = self._claim(pending, idempotency_key, queued=True)  # nothing will ever send it
        if holder.operation_id != operation.id:
            return Submission(self.get(holder.operation_id), replayed=True)
        return Submission(self.operations.add(operation), replayed=False)

    def list_about(self, subject: str, page_size: int, continuation: str | None,
                   only: OperationFilter = ANY_OPERATION) -> Page[Operation]:
        return self.operations.list_about(subject, page_size, continuation, only)

    def get(self, operation_id: str) -> Operation:
        canonical = canonical_operation_id(operation_id)
        operation = self.operations.get(canonical) if canonical else None
        if operation is None:
            raise NotFound(
                "No such operation.",
                causes=[f"no operation has the id {operation_id[:64]!r}"],
                try_hint="use the Location header of the 202 answer that started it",
                code=ErrorCode.OPERATION_NOT_FOUND,
            )
        return operation

    def requeue_stalled(self) -> int:
        """Queue again every Pending operation that no worker started within STALLED_AFTER: its
        message was lost between recording and sending (a crash, a queue outage). A duplicate
        message is harmless; a missing one would leave the operation Pending forever."""
        now = self.clock.now()
        stalled = self.operations.list_stalled(now - STALLED_AFTER)
        for operation in stalled:
            self.queue.send(operation.id)
            notice = TransientError(f"No worker started it within {STALLED_AFTER}; queued again.")
            with contextlib.suppress(TransientError):  # the message went out; the note is a nicety
                self.operations.save(operation.note_retry(notice, now))
            for_operation(log, operation.id).warning("stalled: queued again")
        return len(stalled)

    def _claim(self, operation: Operation, key: str, *, queued: bool = False) -> IdempotencyRecord:
        """The record holding `key` afterwards: this operation's, or an earlier request's with
        the same fingerprint; an earlier request that asked for something else is refused."""
        now = self.clock.now()
        claim = IdempotencyRecord(key, fingerprint(operation), operation.id, now, queued)
        holder = self.idempotency.claim(claim, expired_before=now - IDEMPOTENCY_WINDOW)
        if holder.fingerprint != claim.fingerprint:
            raise Conflict(
                "This Idempotency-Key was already used for a different request.",
                causes=[f"the key belongs to operation {holder.operation_id}"],
                try_hint="use a new key for a new request",
                code=ErrorCode.IDEMPOTENCY_KEY_REUSED,
            )
        return holder

    def _record_and_queue(self, operation: Operation, claim: IdempotencyRecord | None) -> Operation:
        """Idempotent: re-recording returns the existing record, and of all the requests with one
        Idempotency-Key exactly one sends the message (the one that reserves the send)."""
        recorded = self.operations.add(operation)
        if recorded.status is not OperationStatus.PENDING:
            return recorded  # a worker already has it
        if claim is not None and (claim.queued or not self.idempotency.reserve_send(claim)):
            return recorded  # an earlier or concurrent request with this key sends it
        oplog = for_operation(log, recorded.id)
        try:
            self.queue.send(recorded.id)
        except TransientError as err:
            oplog.warning("could not be queued: %s", err.message)
            if claim is None:  # nobody can replay it: do not leave it Pending
                self._quietly(self.operations.save, recorded.fail(err, self.clock.now()))
            else:  # a replay with the same key sends it
                self._quietly(self.idempotency.release_send, claim)
            raise
        oplog.info("%s %s accepted", recorded.kind.value, recorded.target)
        return recorded

    @staticmethod
    def _quietly(write: Callable[[Any], object], value: Any) -> None:
        """Best effort while already failing; if it fails too, the stall sweep repairs it."""
        try:
            write(value)
        except TransientError as err:
            log.warning("could not record it either: %s", err.message)


def fingerprint(operation: Operation) -> str:
    """What a request asked for, independent of JSON spacing, member order and defaults."""
    canonical = json.dumps({"kind": operation.kind.value, "params": operation.params},
                           sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


class OperationReads:
    """Operations as their readers see them: an operation is readable by whoever may read its
    target (the storage, or the VM), and always by whoever asked for it."""

    def __init__(self, intake: OperationIntake, access: AccessControl, storages: StorageRepository) -> None:
        self.intake = intake
        self.access = access
        self.storages = storages

    def get(self, caller: Caller, operation_id: str) -> Operation:
        operation = self.intake.get(operation_id)
        if not self._readable(caller, operation):
            raise PermissionDenied(
                f"You may not read operation {operation.id}.",
                causes=[f"it acts on {operation.target}, which you may not read, and you did not ask for it"],
                try_hint="ask whoever may read its target (an owner of the storage, or of the VM)",
                code=ErrorCode.AUTHORIZATION_FAILED)
        return operation

    def in_flight(self, caller: Caller, subject: str, kind: OperationKind) -> Operation | None:
        """The newest operation of `kind` about `subject` still under way, if the caller may read it."""
        page = self.intake.list_about(subject, 1, None, OperationFilter(UNDER_WAY, frozenset({kind})))
        operation = next(iter(page.items), None)
        return operation if operation is not None and self._readable(caller, operation) else None

    def about_storage(self, caller: Caller, name: str, page_size: int, continuation: str | None,
                      only: OperationFilter = ANY_OPERATION) -> Page[Operation]:
        """Everything asked of a storage and of the VMs on it, the auto-attaches it refused
        included: its owners see who asked for what."""
        storage = self.storages.get(name)
        if storage is None:
            raise NotFound(f"Storage {name} is not known to this service.",
                           try_hint="list what exists with GET /api/storage",
                           code=ErrorCode.STORAGE_NOT_FOUND)
        self.access.require_read(caller, storage)
        return self.intake.list_about(storage_subject(name), page_size, continuation, only)

    def about_vm(self, caller: Caller, group: str, vm: str, page_size: int,
                 continuation: str | None, only: OperationFilter = ANY_OPERATION) -> Page[Operation]:
        self.access.require(caller, rbac.VM_READ, self.access.vm(group, vm))
        return self.intake.list_about(vm_subject(group, vm), page_size, continuation, only)

    def asked_by(self, caller: Caller, page_size: int, continuation: str | None,
                 only: OperationFilter = ANY_OPERATION) -> Page[Operation]:
        """What the caller asked for, whatever it was about: anyone may list their own."""
        return self.intake.list_about(requester_subject(caller.object_id), page_size, continuation, only)

    def _readable(self, caller: Caller, operation: Operation) -> bool:
        if operation.requested_by is not None and operation.requested_by.object_id == caller.object_id:
            return True
        storage = self.storages.get(operation.storage) if operation.storage else None
        if storage is not None and self.access.can_read(caller, storage):
            return True
        kind, _, rest = operation.target.partition("/")
        try:
            if kind == "vm":
                group, _, vm = rest.partition("/")
                return self.access.may(caller, rbac.VM_READ, self.access.vm(group, vm))
            group = str(operation.params.get("resourceGroup") or "")
            return bool(group) and self.access.may(caller, rbac.STORAGE_READ, self.access.group(group))
        except NotFound:  # its resource group is gone: only who asked (or the storage's readers) may
            return False
