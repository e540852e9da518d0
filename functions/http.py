"""HTTP plumbing for the API functions: reading requests, JSON answers, the error shape, and the
guard that turns every failure into that shape (never a stack trace)."""

from __future__ import annotations

import functools
import json
import logging
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlencode, urlsplit

import azure.functions as func

from shared.domain import validation
from shared.domain.errors import (
    Conflict,
    ErrorCode,
    InvalidTransition,
    NotFound,
    NotImplementedYet,
    PermissionDenied,
    ServiceError,
    TransientError,
    ValidationError,
)
from shared.domain.serialization import to_json
from shared.services.operations import Submission

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 64 * 1024
OPERATION_RETRY_AFTER = 5  # seconds a client should wait before polling an operation
_STATUS: list[tuple[type[ServiceError], int]] = [
    (ValidationError, 400), (PermissionDenied, 403), (NotFound, 404), (Conflict, 409),
    (InvalidTransition, 409), (NotImplementedYet, 501), (TransientError, 503),
]

Handler = Callable[[func.HttpRequest], func.HttpResponse]


def guarded(handler: Handler) -> Handler:
    """Answer every ServiceError in the contract's error shape; anything else is our bug: log it
    and answer a 500 in the same shape, without internals."""

    @functools.wraps(handler)
    def wrapper(req: func.HttpRequest) -> func.HttpResponse:
        try:
            return handler(req)
        except ServiceError as err:
            status = status_for(err)
            level = logging.WARNING if status >= 500 else logging.INFO
            log.log(level, "%s %s -> %d %s", req.method, urlsplit(req.url).path, status, err.code.value)
            return error_response(err)
        except Exception:
            log.exception("%s %s failed unexpectedly", req.method, urlsplit(req.url).path)
            return error_response(ServiceError("The service failed unexpectedly.",
                                               try_hint="try again; if it persists, report it",
                                               code=ErrorCode.INTERNAL_ERROR))

    return wrapper


def status_for(err: ServiceError) -> int:
    return next((status for kind, status in _STATUS if isinstance(err, kind)), 500)


def json_response(body: Any, status: int = 200,
                  headers: Mapping[str, str] | None = None) -> func.HttpResponse:
    return func.HttpResponse(json.dumps(body), status_code=status, mimetype="application/json",
                             headers=dict(headers or {}))


def error_response(err: ServiceError) -> func.HttpResponse:
    headers = {}
    if isinstance(err, TransientError):
        headers["Retry-After"] = str(err.retry_after or OPERATION_RETRY_AFTER)
    return json_response({"error": err.to_dict()}, status_for(err), headers)


def accepted(req: func.HttpRequest, submission: Submission) -> func.HttpResponse:
    """202: the operation, where to poll it, and how long to wait first."""
    operation = submission.operation
    headers = {"Location": absolute(req, f"/api/operations/{operation.id}"),
               "Retry-After": str(OPERATION_RETRY_AFTER)}
    if submission.replayed:
        headers["Idempotent-Replayed"] = "true"
    return json_response(to_json(operation), 202, headers)


def absolute(req: func.HttpRequest, path: str, query: Mapping[str, str] | None = None) -> str:
    parts = urlsplit(req.url)
    return f"{parts.scheme}://{parts.netloc}{path}" + (f"?{urlencode(query)}" if query else "")


def read_json(req: func.HttpRequest) -> object:
    """The body as JSON; None when empty. Ambiguous JSON (duplicate members, NaN) is refused."""
    raw = req.get_body() or b""
    if len(raw) > MAX_BODY_BYTES:
        raise ValidationError("The request body is too large.",
                              causes=[f"{len(raw)} bytes; the limit is {MAX_BODY_BYTES}"])
    if not raw.strip():
        return None
    try:
        return json.loads(raw, object_pairs_hook=_unique_members, parse_constant=_no_constants)
    except (ValueError, RecursionError) as err:
        raise ValidationError("The request body is not valid JSON.",
                              causes=[str(err)[:200]],
                              try_hint="send a JSON object with Content-Type: application/json") from None


def query(req: func.HttpRequest) -> dict[str, str]:
    return dict(req.params)


def route(req: func.HttpRequest, name: str) -> str:
    return str(req.route_params.get(name, ""))


def idempotency_key(req: func.HttpRequest) -> str | None:
    value = req.headers.get("Idempotency-Key")
    return None if value is None else validation.idempotency_key(value)


def _unique_members(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    duplicates = sorted(key for key, count in Counter(key for key, _ in pairs).items() if count > 1)
    if duplicates:
        raise ValueError(f"duplicate members: {', '.join(duplicates)}")
    return dict(pairs)


def _no_constants(name: str) -> None:
    raise ValueError(f"{name} is not a JSON number")
