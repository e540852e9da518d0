"""Translate azure-core exceptions into the service's errors, by type and status, never by text.

Throttling (429), server errors (5xx), timeouts and connection failures are transient: the queue
retries them and the HTTP API answers 503 with Retry-After. A refused credential (401/403) is a
ConfigurationError: an operator must fix a setting or a role. Anything else an adapter did not
expect is a bug and propagates unchanged.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ServiceRequestError,
    ServiceResponseError,
)

from shared.domain.errors import ConfigurationError, ErrorCode, TransientError

P = ParamSpec("P")
R = TypeVar("R")
TRANSIENT_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
DEFAULT_RETRY_AFTER = 5


def transient_error(err: Exception, dependency: str) -> TransientError | None:
    """The TransientError `err` amounts to, or None when it is not transient."""
    status = getattr(err, "status_code", None)
    if isinstance(err, ClientAuthenticationError) or status in (401, 403):
        return ConfigurationError(
            f"{dependency} refused the app's credentials.",
            causes=[f"HTTP {status}" if status else type(err).__name__],
            try_hint="check the connection string, or the app identity's data roles on the account",
            retry_after=DEFAULT_RETRY_AFTER,
        )
    if isinstance(err, (ServiceRequestError, ServiceResponseError)):
        return TransientError(
            f"{dependency} could not be reached.",
            causes=[type(err).__name__],
            try_hint="try again shortly",
            retry_after=DEFAULT_RETRY_AFTER,
        )
    if isinstance(err, HttpResponseError) and status in TRANSIENT_STATUSES:
        throttled = status == 429
        return TransientError(
            f"{dependency} is {'throttling requests' if throttled else 'temporarily failing'}.",
            causes=[f"HTTP {status}"],
            try_hint="try again shortly",
            code=ErrorCode.THROTTLED if throttled else ErrorCode.SERVICE_UNAVAILABLE,
            retry_after=_retry_after(err),
        )
    return None


def translated(dependency: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Decorate an adapter method so transient azure-core errors become TransientError."""

    def decorate(method: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(method)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            try:
                return method(*args, **kwargs)
            except (HttpResponseError, ServiceRequestError, ServiceResponseError) as err:
                transient = transient_error(err, dependency)
                if transient is None:
                    raise
                raise transient from err

        return wrapper

    return decorate


def _retry_after(err: HttpResponseError) -> int:
    headers = getattr(err.response, "headers", None) or {}
    value = headers.get("Retry-After", "")
    return int(value) if re.fullmatch(r"[0-9]{1,5}", value) else DEFAULT_RETRY_AFTER
