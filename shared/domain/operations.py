"""Operations: the unit of queued work, and the state machine that governs them.

    Pending --start--> Running --succeed--> Succeeded
       |                 |  ^
       |                 |  +-- start (redelivered after a crash: resume), progress, retry
       +--fail-----------+--fail--> Failed
       +-- retry (a transient error before the work began)

Terminal states accept no event. The table below is the whole machine; anything not in it raises
`InvalidTransition`.
"""

from __future__ import annotations

import re
import secrets
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import Enum
from typing import Any

from .errors import InvalidTransition, NotReadyYet, ResourceBusy, ServiceError, WaitingForChildren
from .identity import Principal, PrincipalKind
from .serialization import OMIT_IF_NONE

_STORAGE_NAME = re.compile(r"[a-z0-9]{3,24}")


class OperationStatus(str, Enum):
    PENDING = "Pending"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"


class OperationEvent(str, Enum):
    START = "start"
    PROGRESS = "progress"
    RETRY = "retry"  # a transient failure was recorded; the queue will deliver again
    SUCCEED = "succeed"
    FAIL = "fail"


class OperationKind(str, Enum):
    CREATE_STORAGE = "CreateStorage"
    RESIZE_STORAGE = "ResizeStorage"
    DELETE_STORAGE = "DeleteStorage"
    ATTACH_VM = "AttachVm"
    DETACH_VM = "DetachVm"
    VERIFY_VM = "VerifyVm"
    UNDELETE_STORAGE = "UndeleteStorage"
    PURGE_STORAGE = "PurgeStorage"
    RESTORE_SNAPSHOT = "RestoreSnapshot"
    RECONCILE = "Reconcile"  # a parent: one ReconcileVm per VM due, then the run's report
    RECONCILE_VM = "ReconcileVm"


_P, _R = OperationStatus.PENDING, OperationStatus.RUNNING
TRANSITIONS: Mapping[tuple[OperationStatus, OperationEvent], OperationStatus] = {
    (_P, OperationEvent.START): _R,
    (_P, OperationEvent.RETRY): _P,
    (_P, OperationEvent.FAIL): OperationStatus.FAILED,
    (_R, OperationEvent.START): _R,
    (_R, OperationEvent.PROGRESS): _R,
    (_R, OperationEvent.RETRY): _R,
    (_R, OperationEvent.SUCCEED): OperationStatus.SUCCEEDED,
    (_R, OperationEvent.FAIL): OperationStatus.FAILED,
}
TERMINAL = frozenset({OperationStatus.SUCCEEDED, OperationStatus.FAILED})


def next_status(status: OperationStatus, event: OperationEvent) -> OperationStatus:
    try:
        return TRANSITIONS[(status, event)]
    except KeyError:
        raise InvalidTransition(
            f"An operation that is {status.value} cannot {event.value}.",
            causes=[f"allowed from {status.value}: "
                    + (", ".join(e.value for (s, e) in TRANSITIONS if s is status) or "nothing (final)")],
        ) from None


@dataclass(frozen=True)
class Progress:
    step: str
    done: int
    total: int


class WaitReason(str, Enum):
    LOCK = "lock"  # another operation holds a lock on what this one changes (`operation`)
    VM_AGENT = "vmAgent"  # the VM's agent is not ready yet (a new VM)
    RETRY = "retry"  # an error worth trying again (`errorCode`)
    CHILDREN = "children"  # a parent whose child operations still run


@dataclass(frozen=True)
class Waiting:
    """Why an operation that is not finished is not running now, and when the worker looks at
    it again: set when the worker defers or retries it, cleared when it runs on."""

    reason: WaitReason
    next_look_at: datetime
    message: str
    operation: str | None = field(default=None, metadata=OMIT_IF_NONE)  # the lock's holder
    error_code: str | None = field(default=None, metadata=OMIT_IF_NONE)

    @classmethod
    def on(cls, error: ServiceError, next_look_at: datetime) -> Waiting:
        if isinstance(error, ResourceBusy):
            return cls(WaitReason.LOCK, next_look_at, error.message, operation=error.holder)
        if isinstance(error, WaitingForChildren):
            return cls(WaitReason.CHILDREN, next_look_at, error.message)
        reason = WaitReason.VM_AGENT if isinstance(error, NotReadyYet) else WaitReason.RETRY
        return cls(reason, next_look_at, error.message, error_code=error.code.value)


@dataclass(frozen=True)
class Operation:
    id: str
    kind: OperationKind
    target: str  # what it acts on, for people: "storage/teamhome", "vm/rg1/vm1"
    params: Mapping[str, Any]  # the validated command, as JSON
    status: OperationStatus
    created_at: datetime
    updated_at: datetime
    progress: Progress | None = None
    result: Mapping[str, Any] | None = field(default=None, metadata=OMIT_IF_NONE)
    error: Mapping[str, Any] | None = field(default=None, metadata=OMIT_IF_NONE)
    last_error: Mapping[str, Any] | None = field(default=None, metadata=OMIT_IF_NONE)
    attempts: int = 0
    # Who asked (None on records from before callers were known), and the storage it concerns
    # (its own, or the one a VM is attached to): the storage's owners see it in its listing.
    requested_by: Principal | None = field(default=None, metadata=OMIT_IF_NONE)
    storage: str | None = field(default=None, metadata=OMIT_IF_NONE)
    # The operation that queued this one as its child (a reconcile run, a forced delete): the
    # parent ends once all its children have ended, and reports their results.
    parent: str | None = field(default=None, metadata=OMIT_IF_NONE)
    waiting_for: Waiting | None = field(default=None, metadata=OMIT_IF_NONE)
    etag: str | None = field(default=None, compare=False, metadata={"json": False})
    # A secret of this operation, handed to its VM scripts in a protected parameter (never shown
    # by Azure) and echoed in their RESULT: a run command's output is this operation's only if it
    # carries it. Stored, never serialised for callers ("" on records from before it existed).
    nonce: str = field(default="", compare=False, repr=False, metadata={"json": False})
    # The W3C trace context of the request that recorded it: every delivery continues that trace,
    # even one sent again by the stall sweep. Stored, never serialised ({} on older records).
    trace: Mapping[str, str] = field(default_factory=dict, compare=False, repr=False,
                                     metadata={"json": False})

    @classmethod
    def new(cls, kind: OperationKind, target: str, params: Mapping[str, Any], now: datetime,
            operation_id: str | None = None, *, requested_by: Principal | None = None,
            storage: str | None = None, parent: str | None = None,
            trace: Mapping[str, str] | None = None) -> Operation:
        return cls(id=operation_id or str(uuid.uuid4()), kind=kind, target=target, params=params,
                   status=OperationStatus.PENDING, created_at=now, updated_at=now,
                   requested_by=requested_by, storage=storage, parent=parent, nonce=secrets.token_hex(16),
                   trace=dict(trace or {}))

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL

    def start(self, now: datetime) -> Operation:
        return self._apply(OperationEvent.START, now, attempts=self.attempts + 1)

    def advance(self, step: str, done: int, total: int, now: datetime) -> Operation:
        if not 0 <= done <= total:
            raise ValueError(f"progress {done}/{total} is out of range")
        return self._apply(OperationEvent.PROGRESS, now, progress=Progress(step, done, total))

    def note_retry(self, error: ServiceError, now: datetime, waiting: Waiting | None = None) -> Operation:
        return self._apply(OperationEvent.RETRY, now, last_error=error.to_dict(), waiting_for=waiting)

    def note_wait(self, waiting: Waiting, now: datetime) -> Operation:
        """Waiting without an error (a parent for its children)."""
        return self._apply(OperationEvent.RETRY, now, waiting_for=waiting)

    def succeed(self, result: Mapping[str, Any] | None, now: datetime) -> Operation:
        progress = self.progress and Progress("Done", self.progress.total, self.progress.total)
        return self._apply(OperationEvent.SUCCEED, now, result=result or {}, progress=progress)

    def fail(self, error: ServiceError, now: datetime) -> Operation:
        return self._apply(OperationEvent.FAIL, now, error=error.to_dict())

    def _apply(self, event: OperationEvent, now: datetime, **changes: Any) -> Operation:
        changes.setdefault("waiting_for", None)  # any other step means it no longer waits
        return replace(self, status=next_status(self.status, event), updated_at=now, **changes)


@dataclass(frozen=True)
class Patience:
    """How long an operation waits for something that becomes ready on its own (a new VM's
    agent): it is looked at again after delays doubling from `first_delay` up to `max_delay`,
    until `deadline` has passed since the operation was requested, then it fails."""

    first_delay_seconds: int = 5  # a few cheap reads more, against a new VM's agent ready sooner
    max_delay_seconds: int = 240
    deadline: timedelta = timedelta(minutes=20)

    def delay(self, attempt: int) -> int:
        """Seconds to wait after the `attempt`-th try (1-based) found it not ready."""
        return min(self.max_delay_seconds, self.first_delay_seconds * (1 << max(0, min(attempt, 30) - 1)))

    def expired(self, operation: Operation, now: datetime) -> bool:
        return now - operation.created_at >= self.deadline


def storage_subject(name: str) -> str:
    return f"storage|{name.lower()}"


def vm_subject(resource_group: str, vm: str) -> str:
    return f"vm|{resource_group.lower()}|{vm.lower()}"


# Callers who asked through the API list "their" operations; the service's own work (reconcile,
# events whose writer is unknown) is listed under its targets only.
ASKING_KINDS = frozenset({PrincipalKind.USER, PrincipalKind.SERVICE_PRINCIPAL})


def requester_subject(object_id: str) -> str:
    return f"requester|{object_id.lower()}"


def operation_subjects(operation: Operation) -> list[str]:
    """What an operation is listed under: its target, the storage it concerns, and who asked for
    it. A name that cannot be a storage account's (a refused tag value) is listed under nothing
    but its VM."""
    kind, _, rest = operation.target.partition("/")
    names = [rest] if kind == "storage" else []
    names += [operation.storage] if operation.storage else []
    subjects = []
    if kind == "vm":
        group, _, vm = rest.partition("/")
        subjects.append(vm_subject(group, vm))
    for name in names:
        if _STORAGE_NAME.fullmatch(name) and storage_subject(name) not in subjects:
            subjects.append(storage_subject(name))
    if operation.requested_by is not None and operation.requested_by.kind in ASKING_KINDS:
        subjects.append(requester_subject(operation.requested_by.object_id))
    return subjects


@dataclass(frozen=True)
class OperationFilter:
    """Which operations a listing shows: any of these statuses, any of these kinds (empty: all)."""

    statuses: frozenset[OperationStatus] = frozenset()
    kinds: frozenset[OperationKind] = frozenset()

    def matches(self, operation: Operation) -> bool:
        return ((not self.statuses or operation.status in self.statuses)
                and (not self.kinds or operation.kind in self.kinds))


ANY_OPERATION = OperationFilter()
UNDER_WAY = frozenset({OperationStatus.PENDING, OperationStatus.RUNNING})


@dataclass(frozen=True)
class InFlight:
    """A resource an operation is still making: what a GET of it answers until it exists (its
    state, what it will be, and the operation to follow), instead of "not found"."""

    state: str  # "Creating", "Attaching"
    subject: Mapping[str, Any]  # what it will be, in the API's names
    operation: Operation
