"""The worker: runs one queued operation to its end, safely under at-least-once delivery.

For each message: load the operation (finished ones are acknowledged untouched), take the locks
of every resource it mutates, mark it Running, run the handler for its kind, and end it
Succeeded or Failed. A `DomainError` ends it Failed and acknowledges the message; a
`TransientError` (or an unexpected exception) is recorded as `lastError` and re-raised, so the
queue delivers the message again; after the last delivery the poison handler (`give_up`) ends it
Failed with the reason. Handlers must make every step safe to run twice.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from shared.domain import messages
from shared.domain.commands import Command, command_for
from shared.domain.errors import DomainError, ErrorCode, ServiceError, TransientError
from shared.domain.operations import Operation, OperationKind
from shared.logs import OperationLog, for_operation
from shared.ports import Clock, Lease, LockManager, OperationRepository

log = logging.getLogger(__name__)

Handler = Callable[[Command, "OperationContext"], Mapping[str, Any] | None]


class OperationContext:
    """What a handler gets besides its command: progress reporting that also keeps its locks."""

    def __init__(self, operation: Operation, operations: OperationRepository, locks: LockManager,
                 leases: list[Lease], clock: Clock) -> None:
        self.operation = operation
        self.leases = leases
        self.log: OperationLog = for_operation(log, operation.id)
        self._operations = operations
        self._locks = locks
        self._clock = clock

    def start(self) -> None:
        self.operation = self._operations.save(self.operation.start(self._clock.now()))
        self.log.info("started (attempt %d)", self.operation.attempts)

    def progress(self, step: str, done: int, total: int) -> None:
        """Record that `done` of `total` steps are finished and `step` is next."""
        self.heartbeat()
        self.operation = self._operations.save(
            self.operation.advance(step, done, total, self._clock.now()))
        self.log.info("step %d/%d: %s", done, total, step)

    def heartbeat(self) -> None:
        """Extend the locks during long steps; raises if a lock was lost."""
        self.leases[:] = [self._locks.renew(lease) for lease in self.leases]


class OperationWorker:
    def __init__(self, operations: OperationRepository, locks: LockManager, clock: Clock,
                 handlers: Mapping[OperationKind, Handler]) -> None:
        self.operations = operations
        self.locks = locks
        self.clock = clock
        self.handlers = handlers

    def process(self, body: bytes | str) -> None:
        operation = self._load(body)
        if operation is None:
            return
        try:
            command = command_for(operation)
            handler = self._handler(operation.kind)
        except DomainError as err:
            self._finish(operation.fail(err, self.clock.now()))
            return
        context = OperationContext(operation, self.operations, self.locks, [], self.clock)
        try:
            self._lock(command, context)
            context.start()
            result = handler(command, context)
            self._finish(context.operation.succeed(result, self.clock.now()))
        except DomainError as err:
            self._finish(context.operation.fail(err, self.clock.now()))
        except TransientError as err:
            self._note_retry(context.operation, err)
            raise
        except Exception as err:
            context.log.exception("failed unexpectedly; the queue will retry")
            unexpected = TransientError(f"Unexpected {type(err).__name__} in the worker.",
                                        code=ErrorCode.INTERNAL_ERROR)
            self._note_retry(context.operation, unexpected)
            raise
        finally:
            self._release(context)

    def give_up(self, body: bytes | str) -> None:
        """For a message the queue stopped retrying: end its operation Failed, saying why."""
        operation = self._load(body)
        if operation is None:
            return
        last = operation.last_error or {}
        error = DomainError(
            "The operation was retried until the queue gave up.",
            causes=[f"last error: [{last.get('code')}] {last.get('message')}"] if last else [
                "it failed on every delivery without recording an error"],
            try_hint="fix the cause above, then submit the request again",
            code=ErrorCode.RETRIES_EXHAUSTED,
        )
        self._finish(operation.fail(error, self.clock.now()))

    def _load(self, body: bytes | str) -> Operation | None:
        operation_id = messages.decode(body)
        if operation_id is None:
            log.error("ignoring a queue message that names no operation (%d bytes)", len(body))
            return None
        operation = self.operations.get(operation_id)
        if operation is None:
            for_operation(log, operation_id).warning("no such operation; message ignored")
            return None
        if operation.is_terminal:
            for_operation(log, operation_id).info("already %s; nothing to do", operation.status.value)
            return None
        return operation

    def _handler(self, kind: OperationKind) -> Handler:
        handler = self.handlers.get(kind)
        if handler is None:
            raise DomainError(f"{kind.value} operations are not served by this version.",
                              try_hint="upgrade the service, then submit the request again",
                              code=ErrorCode.UNSUPPORTED_OPERATION)
        return handler

    def _lock(self, command: Command, context: OperationContext) -> None:
        owner = uuid.uuid4().hex  # unique per delivery: a duplicate message cannot share the lock
        for key in sorted(command.lock_keys):  # one global order: no two workers deadlock
            context.leases.append(self.locks.acquire(key, owner, context.operation.id))

    def _finish(self, operation: Operation) -> None:
        self.operations.save(operation)
        error = operation.error or {}
        for_operation(log, operation.id).log(
            logging.INFO if not error else logging.WARNING, "%s %s",
            operation.status.value, f"[{error.get('code')}] {error.get('message')}" if error else "")

    def _note_retry(self, operation: Operation, err: ServiceError) -> None:
        oplog = for_operation(log, operation.id)
        oplog.warning("will be retried: [%s] %s", err.code.value, err.message)
        try:
            self.operations.save(operation.note_retry(err, self.clock.now()))
        except ServiceError as save_err:  # the retry must not depend on this record
            oplog.warning("could not record the retry: %s", save_err.message)

    def _release(self, context: OperationContext) -> None:
        for lease in context.leases:
            try:
                self.locks.release(lease)
            except ServiceError as err:  # the lease expires on its own
                context.log.warning("lock %s not released: %s", lease.key, err.message)
