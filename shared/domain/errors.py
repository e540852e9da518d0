"""One error hierarchy for the whole service.

Every error carries a stable code, a message, the likely causes and a "try" hint: the seed's
"[ERROR] reason / Possible causes / Try:" pattern, as data. Two families:

- `DomainError`: final. The request or operation is wrong or impossible as asked; an HTTP caller
  gets a 4xx, a queued operation ends Failed and its message is acknowledged.
- `TransientError`: try again later. An HTTP caller gets 503 with `Retry-After`; the queue
  worker re-raises so the message is delivered again.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from enum import Enum
from typing import Any


class ErrorCode(str, Enum):
    """Every code a client can see. Stable: clients branch on these, never on messages."""

    WAITING_FOR_CHILDREN = "WaitingForChildren"
    VALIDATION_ERROR = "ValidationError"
    REQUEST_BODY_TOO_LARGE = "RequestBodyTooLarge"
    UNSUPPORTED_TIER = "UnsupportedTier"
    NOT_FOUND = "NotFound"
    STORAGE_NOT_FOUND = "StorageNotFound"
    OPERATION_NOT_FOUND = "OperationNotFound"
    ATTACHMENT_NOT_FOUND = "AttachmentNotFound"
    CONFLICT = "Conflict"
    STORAGE_IN_USE = "StorageInUse"
    STORAGE_EXISTS = "StorageExists"
    STORAGE_NAME_TAKEN = "StorageNameTaken"
    STORAGE_INCOMPATIBLE = "StorageIncompatible"
    STORAGE_DELETED = "StorageDeleted"
    STORAGE_NOT_DELETED = "StorageNotDeleted"
    SNAPSHOT_NOT_FOUND = "SnapshotNotFound"
    SNAPSHOT_LIMIT = "SnapshotLimit"
    NO_VM_ATTACHED = "NoVmAttached"
    RESOURCE_GROUP_NOT_FOUND = "ResourceGroupNotFound"
    NETWORK_NOT_FOUND = "NetworkNotFound"
    NETWORK_NOT_GUARDABLE = "NetworkNotGuardable"
    REGION_MISMATCH = "RegionMismatch"
    DNS_ZONE_UNKNOWN = "DnsZoneUnknown"
    DNS_ZONE_NOT_WRITABLE = "DnsZoneNotWritable"
    SHARE_TOO_SMALL = "ShareTooSmall"
    QUOTA_DOWNGRADE_NOT_ALLOWED = "QuotaDowngradeNotAllowed"
    AZURE_REJECTED = "AzureRejected"
    VM_ATTACHED_ELSEWHERE = "VmAttachedElsewhere"
    VM_AGENT_NOT_READY = "VmAgentNotReady"
    SCRIPT_FAILED = "ScriptFailed"  # a VM script (attach, detach, verify, restore) exited non-zero
    DEFAULT_STORAGE_NOT_SET = "DefaultStorageNotSet"
    IDEMPOTENCY_KEY_REUSED = "IdempotencyKeyReused"
    INVALID_TRANSITION = "InvalidTransition"
    AUTHORIZATION_FAILED = "AuthorizationFailed"
    UNAUTHENTICATED = "Unauthenticated"
    NOT_A_MEMBER = "NotAMember"
    NOT_AN_OWNER = "NotAnOwner"
    LAST_OWNER = "LastOwner"
    WRITER_UNKNOWN = "WriterUnknown"
    UNSUPPORTED_OPERATION = "UnsupportedOperation"
    RETRIES_EXHAUSTED = "RetriesExhausted"
    SERVICE_UNAVAILABLE = "ServiceUnavailable"
    THROTTLED = "Throttled"
    RESOURCE_BUSY = "ResourceBusy"
    LEASE_LOST = "LeaseLost"
    CONCURRENT_UPDATE = "ConcurrentUpdate"
    CONFIGURATION_ERROR = "ConfigurationError"
    INTERNAL_ERROR = "InternalError"
    # What the Functions host answers itself, before any function runs (local/host/).
    BAD_REQUEST = "BadRequest"
    METHOD_NOT_ALLOWED = "MethodNotAllowed"
    NOT_IMPLEMENTED = "NotImplemented"
    URI_TOO_LONG = "UriTooLong"
    REQUEST_HEADER_FIELDS_TOO_LARGE = "RequestHeaderFieldsTooLarge"
    HTTP_VERSION_NOT_SUPPORTED = "HttpVersionNotSupported"


class ServiceError(Exception):
    """Base of every error the service raises on purpose."""

    default_code: ErrorCode = ErrorCode.INTERNAL_ERROR

    def __init__(
        self,
        message: str,
        *,
        causes: Iterable[str] = (),
        try_hint: str | None = None,
        code: ErrorCode | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.causes = tuple(causes)
        self.try_hint = try_hint
        self.code = code or self.default_code

    def to_dict(self) -> dict[str, Any]:
        """The `error` object of the HTTP contract (and of a Failed operation)."""
        body: dict[str, Any] = {"code": self.code.value, "message": self.message}
        if self.causes:
            body["causes"] = list(self.causes)
        if self.try_hint:
            body["try"] = self.try_hint
        return body

    def __str__(self) -> str:
        lines = [f"[{self.code.value}] {self.message}"]
        lines += [f"  - {cause}" for cause in self.causes]
        if self.try_hint:
            lines.append(f"Try: {self.try_hint}")
        return "\n".join(lines)


class DomainError(ServiceError):
    """Final: retrying the same request cannot succeed."""


class ValidationError(DomainError):
    default_code = ErrorCode.VALIDATION_ERROR


class TooLarge(DomainError):
    """A request body past the service's limit: 413, nothing read further, nothing changed."""

    default_code = ErrorCode.REQUEST_BODY_TOO_LARGE


class NotFound(DomainError):
    default_code = ErrorCode.NOT_FOUND


class Conflict(DomainError):
    default_code = ErrorCode.CONFLICT


class InvalidTransition(DomainError):
    default_code = ErrorCode.INVALID_TRANSITION


class PermissionDenied(DomainError):
    """Not allowed: the caller lacks an Azure action at a scope (AuthorizationFailed), or is not an
    owner or member of the storage (NotAnOwner, NotAMember). An HTTP caller gets 403."""

    default_code = ErrorCode.AUTHORIZATION_FAILED


class Unauthenticated(DomainError):
    """No valid Entra ID access token for the API: 401 with `WWW-Authenticate: Bearer`."""

    default_code = ErrorCode.UNAUTHENTICATED


class TransientError(ServiceError):
    """Worth retrying: the same request may succeed later."""

    default_code = ErrorCode.SERVICE_UNAVAILABLE

    def __init__(
        self,
        message: str,
        *,
        causes: Iterable[str] = (),
        try_hint: str | None = None,
        code: ErrorCode | None = None,
        retry_after: int | None = None,
    ) -> None:
        super().__init__(message, causes=causes, try_hint=try_hint, code=code)
        self.retry_after = retry_after


class ResourceBusy(TransientError):
    """Someone holds the lock on the resource: `holder` names the operation (possibly another
    delivery of the same one), `until` is when its lease runs out unless renewed."""

    default_code = ErrorCode.RESOURCE_BUSY

    def __init__(self, message: str, *, holder: str | None = None, until: datetime | None = None,
                 causes: Iterable[str] = (), try_hint: str | None = None,
                 retry_after: int | None = None) -> None:
        super().__init__(message, causes=causes, try_hint=try_hint, retry_after=retry_after)
        self.holder = holder
        self.until = until


class NotReadyYet(TransientError):
    """Something that becomes ready on its own (a new VM's agent): the worker looks again later,
    with growing delays, until the operation's deadline, without spending queue deliveries."""

    default_code = ErrorCode.VM_AGENT_NOT_READY


class WaitingForChildren(TransientError):
    """A parent operation (a reconcile run, a forced delete) whose child operations, one per VM,
    are still running: the worker looks again after `delay_seconds`, with no deadline of its own
    (each child ends by its own rules), its locks released meanwhile."""

    default_code = ErrorCode.WAITING_FOR_CHILDREN

    def __init__(self, message: str, *, delay_seconds: int) -> None:
        super().__init__(message, retry_after=delay_seconds)
        self.delay_seconds = delay_seconds


class LeaseLost(TransientError):
    """A lock's lease ran out and someone else took it: stop, and write nothing more."""

    default_code = ErrorCode.LEASE_LOST


class ConcurrentUpdate(TransientError):
    """A conditional write lost a race; re-read and try again."""

    default_code = ErrorCode.CONCURRENT_UPDATE


class ConfigurationError(TransientError):
    """A required app setting is missing or malformed; retrying helps once an operator fixes it."""

    default_code = ErrorCode.CONFIGURATION_ERROR

