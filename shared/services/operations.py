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

from shared.domain.commands import Command, params_of
from shared.domain.errors import Conflict, DomainError, ErrorCode, NotFound, TransientError
from shared.domain.messages import canonical_operation_id
from shared.domain.operations import Operation, OperationStatus
from shared.logs import for_operation
from shared.ports import Clock, IdempotencyRecord, IdempotencyStore, OperationQueue, OperationRepository

log = logging.getLogger(__name__)
IDEMPOTENCY_WINDOW = timedelta(hours=24)
STALLED_AFTER = timedelta(minutes=15)


@dataclass(frozen=True)
class Submission:
    operation: Operation
    replayed: bool  # an earlier request with the same Idempotency-Key created it


class OperationIntake:
    def __init__(self, operations: OperationRepository, idempotency: IdempotencyStore,
                 queue: OperationQueue, clock: Clock) -> None:
        self.operations = operations
        self.idempotency = idempotency
        self.queue = queue
        self.clock = clock

    def submit(self, command: Command, idempotency_key: str | None = None) -> Submission:
        params = params_of(command)
        now = self.clock.now()
        operation = Operation.new(command.KIND, command.target, params, now)
        if idempotency_key is None:
            return Submission(self._record_and_queue(operation, None), replayed=False)
        holder = self._claim(operation, idempotency_key)
        if holder.operation_id == operation.id:
            return Submission(self._record_and_queue(operation, holder), replayed=False)
        earlier = Operation.new(command.KIND, command.target, params, holder.created_at,
                                operation_id=holder.operation_id)
        return Submission(self._record_and_queue(earlier, holder), replayed=True)

    def refuse(self, command: Command, error: DomainError, idempotency_key: str) -> Submission:
        """Record an operation Failed from the start, queued never: for a request that came by
        event, where no caller gets a 400. The key makes a repeated event record nothing new."""
        now = self.clock.now()
        pending = Operation.new(command.KIND, command.target, params_of(command), now)
        holder = self._claim(pending, idempotency_key, queued=True)  # nothing will ever send it
        operation = pending.fail(error, now)
        if holder.operation_id != operation.id:
            return Submission(self.get(holder.operation_id), replayed=True)
        return Submission(self.operations.add(operation), replayed=False)

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
