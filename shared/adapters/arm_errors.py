"""Resource Manager failures as the service's errors, decided by status and ARM error code.

- Throttling (429), server errors, timeouts, connection failures, and "another operation is in
  progress" are transient: the queue retries (a 429's Retry-After is kept).
- `AuthorizationFailed` is PermissionDenied naming the action and scope the identity lacks.
- Azure refusing a value (400) is a ValidationError quoting Azure, so the field is named.
- A missing resource group is NotFound; other 404s and 409s are NotFound and Conflict.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

from azure.core.exceptions import HttpResponseError, ServiceRequestError, ServiceResponseError

from shared.domain.errors import (
    Conflict,
    ErrorCode,
    NotFound,
    PermissionDenied,
    ServiceError,
    TransientError,
    ValidationError,
)

from .azure_errors import DEFAULT_RETRY_AFTER, transient_error

RESOURCE_MANAGER = "Azure Resource Manager"
RETRYABLE_CODES = frozenset(
    {
        "AnotherOperationInProgress",
        "RetryableErrorDueToAnotherOperation",
        "OperationPreempted",
        "StorageAccountIsNotProvisioned",
    }
)
PERMISSION = re.compile(r"perform action '([^']+)' over scope '([^']+)'")


def arm_code(err: HttpResponseError) -> str:
    error = getattr(err, "error", None)
    return str(getattr(error, "code", None) or "")


def _azure_message(err: Exception) -> str:
    error = getattr(err, "error", None)
    return str(getattr(error, "message", None) or getattr(err, "message", None) or err)


def service_error(err: Exception, action: str) -> ServiceError | None:
    """The service error `err` amounts to while trying to `action` (e.g. "create the share")."""
    status = getattr(err, "status_code", None)
    code = arm_code(err) if isinstance(err, HttpResponseError) else ""
    if status == 403 or code == "AuthorizationFailed":
        return _permission_denied(err, action)
    if code in RETRYABLE_CODES:
        return TransientError(
            f"Azure is busy with another operation and could not {action} yet.",
            causes=[f"{code}: {_azure_message(err)}"],
            retry_after=DEFAULT_RETRY_AFTER,
        )
    transient = transient_error(err, RESOURCE_MANAGER)
    if transient is not None or not isinstance(err, HttpResponseError):
        return transient
    causes = [f"Azure said {code or status}: {_azure_message(err)}"]
    if code == "ContainerQuotaDowngradeNotAllowed":
        return Conflict(
            f"Could not {action}: Azure allows a smaller share only 24 hours after its last increase.",
            causes=causes,
            code=ErrorCode.QUOTA_DOWNGRADE_NOT_ALLOWED,
            try_hint="shrink it after the share's nextAllowedQuotaDowngradeTime",
        )
    if code == "ResourceGroupNotFound":
        return NotFound(
            f"Could not {action}: the resource group does not exist.",
            causes=causes,
            try_hint="create the resource group first, or name an existing one",
            code=ErrorCode.RESOURCE_GROUP_NOT_FOUND,
        )
    if status == 400:
        return ValidationError(
            f"Azure refused to {action}.",
            causes=causes,
            try_hint="correct the value Azure names, then submit the request again",
            code=ErrorCode.AZURE_REJECTED,
        )
    if status == 404:
        return NotFound(f"Could not {action}: Azure does not know the resource.", causes=causes)
    if status == 409:
        return Conflict(f"Could not {action}: it conflicts with what exists in Azure.", causes=causes)
    return None


def _permission_denied(err: Exception, action: str) -> PermissionDenied:
    message = _azure_message(err)
    found = PERMISSION.search(message)
    missing = f"'{found.group(1)}' on {found.group(2)}" if found else "the action"
    return PermissionDenied(
        f"The service's identity may not {action}: it lacks {missing}.",
        causes=[message],
        try_hint="assign the service's role (infra/, least privilege) to its identity at that scope, "
        "wait a few minutes for the assignment to apply, then submit the request again",
    )


@contextmanager
def arm_errors(action: str) -> Iterator[None]:
    """Raise the service's error for a Resource Manager failure inside the block."""
    try:
        yield
    except (HttpResponseError, ServiceRequestError, ServiceResponseError) as err:
        translated = service_error(err, action)
        if translated is None:
            raise
        raise translated from err
