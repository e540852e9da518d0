"""The worker: runs one queued operation to its end, safely under at-least-once delivery.

For each message: load the operation (finished ones are acknowledged untouched), take the locks
of every resource it mutates, mark it Running, run the handler for its kind while a heartbeat
keeps the locks, and end it Succeeded or Failed.

- A `DomainError` ends it Failed and acknowledges the message.
- A busy resource spends no delivery: the message is sent again with a delay and this one is
  acknowledged. When the lock is held by another delivery of the *same* operation (a duplicate
  message, or a crashed worker whose lease has not run out) nothing is written: only the lock
  holder writes the operation.
- Something not ready yet (`NotReadyYet`: a new VM's agent) is looked at again after growing
  delays, again without spending deliveries, until the `Patience` deadline; then it ends Failed.
- A parent whose children still run (`WaitingForChildren`) is looked at again after the delay it
  names, its locks released meanwhile; it has no deadline: each child ends by its own rules.
- Throttling with a Retry-After (Azure's 429, or the app's own call budget) sends the message again
  after it, again without spending a delivery: a fleet slows down instead of failing.
- Any other `TransientError`, or an unexpected exception, is recorded as `lastError` and
  re-raised, so the host delivers the message again; after the last delivery the poison handler
  (`give_up`) ends it Failed with the reason, unless a live delivery of it is still running.

Each wait but a duplicate's is recorded on the operation (`waitingFor`: why, and when it is
looked at again) and cleared once it runs on. Handlers must make every step safe to run twice.
"""

from __future__ import annotations

import contextvars
import logging
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

from shared.domain import messages
from shared.domain.commands import Command, command_for, locks_of
from shared.domain.errors import (
    DomainError,
    ErrorCode,
    LeaseLost,
    NotReadyYet,
    ResourceBusy,
    ServiceError,
    TransientError,
    WaitingForChildren,
)
from shared.domain.operations import Operation, OperationKind, Patience, Waiting
from shared.logs import OperationLog, for_operation
from shared.ports import Clock, Lease, LockManager, OperationQueue, OperationRepository, Tracing
from shared.tracing import NO_TRACING, record

log = logging.getLogger(__name__)

Handler = Callable[[Command, "OperationContext"], Mapping[str, Any] | None]
# A resource is usually busy with a short operation: the first look again comes after a second,
# later ones after half the time waited so far (so a long holder is not polled needlessly), never
# more than MAX_DEFER_SECONDS apart. Each look costs a queue message and a few table reads.
MIN_DEFER_SECONDS = 1
MAX_DEFER_SECONDS = 10
MAX_THROTTLED_SECONDS = 300  # a throttled call is tried again after its Retry-After, at most this
# A delivery that raised is seen again after host.json's queues.visibilityTimeout: the next look
# an operation retried after an error announces (`waitingFor.nextLookAt`).
REDELIVERY_SECONDS = 30


class OperationContext:
    """What a handler gets besides its command: progress reporting, and the leases on the
    resources it mutates, renewed by a heartbeat while it runs."""

    def __init__(self, operation: Operation, operations: OperationRepository, locks: LockManager,
                 clock: Clock) -> None:
        self.operation = operation
        self.leases: list[Lease] = []
        self.log: OperationLog = for_operation(log, operation.id)
        self._operations = operations
        self._locks = locks
        self._clock = clock
        self._renewing = threading.Lock()
        self._lost: LeaseLost | None = None

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
        """Extend the leases. A lease taken over by someone else raises LeaseLost, now and at
        every later call; a failed renewal (storage blip) raises only this once, since the lease
        still holds until it runs out and the next beat tries again."""
        with self._renewing:
            if self._lost is not None:
                raise self._lost
            try:
                for i, lease in enumerate(self.leases):
                    self.leases[i] = self._locks.renew(lease)
            except LeaseLost as err:
                self._lost = err
                raise

    @contextmanager
    def heartbeat_every(self, seconds: float) -> Iterator[None]:
        """Renew the leases every `seconds` in the background, so a single long step cannot
        outlive them; a lease that cannot be renewed stops the handler at its next progress."""
        stop = threading.Event()

        def beat() -> None:
            while not stop.wait(seconds):
                try:
                    self.heartbeat()
                except LeaseLost as err:
                    self.log.warning("heartbeat stopped: %s", err.message)
                    return
                except ServiceError as err:
                    self.log.warning("heartbeat missed, trying again: %s", err.message)

        # In the delivery's context: its lease renewals belong to its trace.
        thread = threading.Thread(target=contextvars.copy_context().run, args=(beat,),
                                  name=f"heartbeat-{self.operation.id}", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()


class OperationWorker:
    def __init__(self, operations: OperationRepository, locks: LockManager, queue: OperationQueue,
                 poison_queue: OperationQueue, clock: Clock, handlers: Mapping[OperationKind, Handler],
                 *, heartbeat_seconds: float, patience: Patience | None = None,
                 tracing: Tracing = NO_TRACING) -> None:
        self.operations = operations
        self.locks = locks
        self.queue = queue
        self.poison_queue = poison_queue
        self.clock = clock
        self.handlers = handlers
        self.heartbeat_seconds = heartbeat_seconds
        self.patience = patience or Patience()
        self.tracing = tracing

    def process(self, body: bytes | str) -> None:
        operation = self._load(body)
        if operation is None:
            return
        with self._delivery(messages.OPERATIONS_QUEUE, body, operation):
            self._run(operation)

    def _run(self, operation: Operation) -> None:
        try:
            command = command_for(operation)
            handler = self._handler(operation.kind)
        except DomainError as err:
            self._finish(operation.fail(err, self.clock.now()))
            return
        context = OperationContext(operation, self.operations, self.locks, self.clock)
        try:
            self._lock(locks_of(command), context)
            context.start()
            with context.heartbeat_every(self.heartbeat_seconds):
                result = handler(command, context)
            context.heartbeat()  # the end is recorded only while the locks are still ours
            self._finish(context.operation.succeed(result, self.clock.now()))
        except ResourceBusy as busy:
            self._defer(context.operation, busy, self.queue)
        except LeaseLost:
            context.log.warning("lost its lock; stopping without writing, the queue will retry")
            raise
        except DomainError as err:
            context.heartbeat()
            self._finish(context.operation.fail(err, self.clock.now()))
        except NotReadyYet as err:
            context.heartbeat()
            self._wait(context.operation, err)
        except WaitingForChildren as err:
            context.heartbeat()
            context.log.info("%s Looking again in %ds.", err.message, err.delay_seconds)
            waiting = self._waiting(err, err.delay_seconds)
            self._save_quietly(context.operation.note_wait(waiting, self.clock.now()))
            self.queue.send(context.operation.id, delay_seconds=err.delay_seconds)
        except TransientError as err:
            if err.code is ErrorCode.THROTTLED and err.retry_after:  # told when: no delivery spent
                delay = min(err.retry_after, MAX_THROTTLED_SECONDS)
                context.log.info("throttled (%s); looking again in %ds", err.message, delay)
                self._note_retry(context.operation, err, delay, routine=True)
                self.queue.send(context.operation.id, delay_seconds=delay)
                return
            self._note_retry(context.operation, err, REDELIVERY_SECONDS)
            raise
        except Exception as err:
            context.log.exception("failed unexpectedly; the queue will retry")
            unexpected = TransientError(f"Unexpected {type(err).__name__} in the worker.",
                                        code=ErrorCode.INTERNAL_ERROR)
            self._note_retry(context.operation, unexpected, REDELIVERY_SECONDS)
            raise
        finally:
            self._release(context)

    def give_up(self, body: bytes | str) -> None:
        """For a message the queue stopped retrying: end its operation Failed, saying why, under
        its locks. If a live delivery of it holds them, that delivery finishes it; check again
        when its lease would run out."""
        operation = self._load(body)
        if operation is None:
            return
        with self._delivery(messages.POISON_QUEUE, body, operation):
            self._give_up(operation)

    def _give_up(self, operation: Operation) -> None:
        context = OperationContext(operation, self.operations, self.locks, self.clock)
        try:
            self._lock(_lock_keys_of(operation), context)
        except ResourceBusy as busy:
            if busy.holder == operation.id:
                self._defer(operation, busy, self.poison_queue)
                return  # still running elsewhere
            # Held by another operation, so no delivery of this one is running: end it.
        try:
            self._finish(context.operation.fail(_retries_exhausted(operation), self.clock.now()))
        finally:
            self._release(context)

    @contextmanager
    def _delivery(self, queue: str, body: bytes | str, operation: Operation) -> Iterator[None]:
        """A span for this delivery, in the operation's trace (`messages.continued_trace`)."""
        message = messages.read(body)
        parent = messages.continued_trace(message.trace if message else {}, operation.trace)
        with self.tracing.span(f"process {queue}", kind="consumer", parent=parent,
                               attributes={"messaging.destination.name": queue}) as span:
            record(span, operation)
            yield

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

    def _lock(self, keys: Mapping[str, bool], context: OperationContext) -> None:
        """Take every lock (key -> shared) or none: a busy one raises ResourceBusy, and the
        ones taken are released by the caller."""
        owner = uuid.uuid4().hex  # unique per delivery: a duplicate message cannot share the lock
        for key in sorted(keys):  # one global order
            context.leases.append(self.locks.acquire(key, owner, context.operation.id, shared=keys[key]))

    def _defer(self, operation: Operation, busy: ResourceBusy, queue: OperationQueue) -> None:
        """Look again later, without spending a delivery: send the message anew with a delay
        (until the lease would run out, within bounds) and acknowledge this one."""
        delay = defer_seconds(operation, busy, self.clock.now())
        oplog = for_operation(log, operation.id)
        if busy.holder == operation.id:
            oplog.info("another delivery of it holds the lock; looking again in %ds", delay)
        else:
            oplog.info("waiting for a busy resource (%s); looking again in %ds", busy.message, delay)
            self._note_retry(operation, busy, delay, routine=True)  # no delivery of it runs: ours to write
        queue.send(operation.id, delay_seconds=delay)

    def _wait(self, operation: Operation, err: NotReadyYet) -> None:
        """Look again after a delay that grows with each attempt, or fail past the deadline."""
        if self.patience.expired(operation, self.clock.now()):
            self._finish(operation.fail(_waited_too_long(err, self.patience), self.clock.now()))
            return
        delay = self.patience.delay(operation.attempts)
        self._note_retry(operation, err, delay, routine=True)
        for_operation(log, operation.id).info("%s Looking again in %ds.", err.message, delay)
        self.queue.send(operation.id, delay_seconds=delay)

    def _finish(self, operation: Operation) -> None:
        self.operations.save(operation)
        record(self.tracing.current(), operation)
        error = operation.error or {}
        oplog = for_operation(log, operation.id)
        oplog.log(logging.INFO if not error else logging.WARNING, "%s %s",
                  operation.status.value, f"[{error.get('code')}] {error.get('message')}" if error else "")
        if operation.parent:
            self._wake(operation.parent, oplog)

    def _wake(self, parent: str, oplog: OperationLog) -> None:
        """The last child to end sends its parent's message at once (its own delayed look is the
        fallback, should this fail)."""
        try:
            if not self.operations.children_running(parent):
                self.queue.send(parent)
                oplog.info("the last child of %s: its parent looks again now", parent)
        except ServiceError as err:
            oplog.warning("could not wake the parent %s: %s", parent, err.message)

    def _note_retry(self, operation: Operation, err: ServiceError, delay: int, *,
                    routine: bool = False) -> None:
        """Record the error, and what the operation waits for until it is looked at again in
        `delay` seconds. A routine wait (a busy lock, an agent not ready, throttling) is logged
        at INFO by its caller; an error worth a look, here at WARNING."""
        if not routine:
            for_operation(log, operation.id).warning("will be retried: [%s] %s", err.code.value, err.message)
        retried = operation.note_retry(err, self.clock.now(), self._waiting(err, delay))
        record(self.tracing.current(), retried)
        self._save_quietly(retried)

    def _waiting(self, err: ServiceError, delay: int) -> Waiting:
        return Waiting.on(err, self.clock.now() + timedelta(seconds=delay))

    def _save_quietly(self, operation: Operation) -> None:
        try:
            self.operations.save(operation)
        except ServiceError as save_err:  # the retry must not depend on this record
            for_operation(log, operation.id).warning("could not record the retry: %s", save_err.message)

    def _release(self, context: OperationContext) -> None:
        for lease in context.leases:
            try:
                self.locks.release(lease)
            except ServiceError as err:  # the lease runs out on its own
                context.log.warning("lock %s not released: %s", lease.key, err.message)


def defer_seconds(operation: Operation, busy: ResourceBusy, now: datetime) -> int:
    """When to look again at a busy resource: soon at first, then after half the time waited so
    far, within bounds, and no later than a second past the holder's lease."""
    waited = (now - operation.created_at).total_seconds()
    delay = max(MIN_DEFER_SECONDS, min(MAX_DEFER_SECONDS, waited / 2))
    if busy.until is not None:
        delay = min(delay, max(MIN_DEFER_SECONDS, (busy.until - now).total_seconds() + 1))
    return int(delay)


def _lock_keys_of(operation: Operation) -> dict[str, bool]:
    try:
        return locks_of(command_for(operation))
    except DomainError:
        return {}  # unreadable parameters: nothing to lock, nothing can be running it


def _waited_too_long(err: NotReadyYet, patience: Patience) -> DomainError:
    minutes = int(patience.deadline.total_seconds() // 60)
    return DomainError(
        f"{err.message} It did not become ready within {minutes} minutes of the request.",
        causes=err.causes,
        try_hint="check that the VM booted and its Azure Linux agent runs "
        "(az vm get-instance-view), then submit the request again",
        code=err.code,
    )


def _retries_exhausted(operation: Operation) -> DomainError:
    last = operation.last_error or {}
    return DomainError(
        "The operation was retried until the queue gave up.",
        causes=[f"last error: [{last.get('code')}] {last.get('message')}"] if last else [
            "it failed on every delivery without recording an error"],
        try_hint="fix the cause above, then submit the request again",
        code=ErrorCode.RETRIES_EXHAUSTED,
    )
