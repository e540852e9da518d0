"""HTTP plumbing for the API functions: who calls (the bearer token), reading requests, JSON
answers, the error shape, and the guard that turns every failure into that shape (never a stack
trace) and makes each request a span (continuing the caller's W3C `traceparent`, if sent)."""

from __future__ import annotations

import functools
import json
import logging
from collections import Counter
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode, urlsplit

import azure.functions as func

from . import core

if TYPE_CHECKING:
    from shared.domain.errors import ServiceError
    from shared.domain.identity import Caller
    from shared.domain.operations import Operation
    from shared.ports import Page, Span, Tracing
    from shared.services.operations import Submission

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 64 * 1024
OPERATION_RETRY_AFTER = 5  # seconds a client should wait before polling an operation

Handler = Callable[[func.HttpRequest], func.HttpResponse]
CallerHandler = Callable[[func.HttpRequest, "Caller"], func.HttpResponse]
REALM = "azlin-storage"


def guarded(handler: Handler) -> Handler:
    """Answer every ServiceError in the contract's error shape; anything else is our bug: log it
    and answer a 500 in the same shape, without internals. Each request is a span."""

    @functools.wraps(handler)
    def answer(req: func.HttpRequest) -> func.HttpResponse:
        try:
            return handler(req)
        except core.errors.ServiceError as err:
            status = status_for(err)
            level = logging.WARNING if status >= 500 else logging.INFO
            log.log(level, "%s %s -> %d %s", req.method, urlsplit(req.url).path, status, err.code.value)
            response = error_response(err)
            if status == 401:  # RFC 6750: say how to authenticate; "invalid_token" when one was sent
                sent = bool(req.headers.get("Authorization"))
                response.headers["WWW-Authenticate"] = f'Bearer realm="{REALM}"' + (
                    ', error="invalid_token"' if sent else "")
            return response
        except Exception:
            log.exception("%s %s failed unexpectedly", req.method, urlsplit(req.url).path)
            return error_response(core.errors.ServiceError(
                "The service failed unexpectedly.", try_hint="try again; if it persists, report it",
                code=core.errors.ErrorCode.INTERNAL_ERROR))

    @functools.wraps(handler)
    def wrapper(req: func.HttpRequest) -> func.HttpResponse:
        with _request_span(req, handler.__name__) as span:
            response = answer(req)
            span.note({"http.response.status_code": response.status_code})
            if response.status_code >= 500:
                span.fail(f"answered {response.status_code}")
            return response

    return wrapper


def _request_span(req: func.HttpRequest, function: str) -> AbstractContextManager[Span]:
    """The request's server span: a child of the caller's span when it sent a W3C traceparent."""
    parts = urlsplit(req.url)
    parent = {name: value for name in ("traceparent", "tracestate") if (value := req.headers.get(name))}
    return _tracing().span(f"{req.method} {function}", kind="server", parent=parent, attributes={
        "http.request.method": req.method, "url.path": parts.path, "url.scheme": parts.scheme,
        "faas.trigger": "http", "faas.name": function})


def _tracing() -> Tracing:
    try:
        return core.bootstrap.container().tracing
    except core.errors.ServiceError:  # settings unusable: the handler answers that, untraced
        return core.tracing.NO_TRACING


def authenticated(handler: CallerHandler) -> Handler:
    """A route that acts as its caller: the bearer token is validated first (nothing else is read
    before), then the handler gets the caller. The function key plays no part."""

    @guarded
    @functools.wraps(handler)
    def wrapper(req: func.HttpRequest) -> func.HttpResponse:
        caller = caller_of(req)
        try:
            return handler(req, caller)
        except core.errors.PermissionDenied as refused:  # nothing is recorded; who tried is logged
            log.warning("%s %s refused for %s %s: [%s] %s", req.method, urlsplit(req.url).path,
                        caller.principal.kind.value, caller.object_id, refused.code.value, refused.message)
            raise

    return wrapper


def caller_of(req: func.HttpRequest) -> Caller:
    scheme, _, token = (req.headers.get("Authorization") or "").strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise core.errors.Unauthenticated(
            "The request has no access token for this API.",
            causes=["send Authorization: Bearer <an Entra ID access token for the API>"],
            try_hint="az account get-access-token --scope api://<API client id>/.default "
                     "(locally: python -m local token <user>)")
    return core.bootstrap.container().tokens.caller(token.strip())


def status_for(err: ServiceError) -> int:
    e = core.errors
    statuses: list[tuple[type[ServiceError], int]] = [
        (e.ValidationError, 400), (e.TooLarge, 413), (e.Unauthenticated, 401), (e.PermissionDenied, 403),
        (e.NotFound, 404), (e.Conflict, 409), (e.InvalidTransition, 409), (e.TransientError, 503)]
    return next((status for kind, status in statuses if isinstance(err, kind)), 500)


def to_json(value: Any) -> Any:
    return core.serialization.to_json(value)


def json_response(body: Any, status: int = 200,
                  headers: Mapping[str, str] | None = None) -> func.HttpResponse:
    return func.HttpResponse(json.dumps(body), status_code=status, mimetype="application/json",
                             headers=dict(headers or {}))


def error_response(err: ServiceError) -> func.HttpResponse:
    headers = {}
    if isinstance(err, core.errors.TransientError):
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


def operation_link(req: func.HttpRequest, submission: Submission) -> dict[str, str]:
    """Where a queued operation is polled, for answers that are not the operation itself."""
    return link(req, submission.operation)


def link(req: func.HttpRequest, operation: Operation) -> dict[str, str]:
    return {"operationId": operation.id, "status": operation.status.value,
            "location": absolute(req, f"/api/operations/{operation.id}")}


def resource_json(req: func.HttpRequest, resource: object) -> Any:
    """A resource as JSON; one an operation is still making says so (`state`) and links it."""
    if isinstance(resource, core.operations.InFlight):
        return {**resource.subject, "state": resource.state, "operation": link(req, resource.operation)}
    return to_json(resource)


def absolute(req: func.HttpRequest, path: str, query: Mapping[str, str] | None = None) -> str:
    parts = urlsplit(req.url)
    return f"{parts.scheme}://{parts.netloc}{path}" + (f"?{urlencode(query)}" if query else "")


def page_response(req: func.HttpRequest, path: str, page: Page[Any], filters: Mapping[str, str],
                  page_size: int) -> func.HttpResponse:
    """A page of a listing: `value`, and `nextLink` (the same filters) while more remain."""
    body: dict[str, object] = {"value": [to_json(item) for item in page.items]}
    if page.continuation:
        body["nextLink"] = absolute(req, path, {**filters, "$top": str(page_size),
                                                "$skipToken": page.continuation})
    return json_response(body)


def read_json(req: func.HttpRequest) -> object:
    """The body as JSON; None when empty. Ambiguous JSON (duplicate members, NaN) is refused, and
    so is text no UTF-8 can carry (a lone surrogate such as "\\ud800")."""
    raw = req.get_body() or b""
    if len(raw) > MAX_BODY_BYTES:
        raise core.errors.TooLarge("The request body is too large.",
                                   causes=[f"{len(raw)} bytes; the limit is {MAX_BODY_BYTES}"],
                                   try_hint="every request of this API fits in a few kilobytes")
    if not raw.strip():
        return None
    try:
        parsed = json.loads(raw, object_pairs_hook=_unique_members, parse_constant=_no_constants)
        json.dumps(parsed, ensure_ascii=False).encode()  # a lone surrogate: UnicodeEncodeError, a ValueError
        return parsed
    except (ValueError, RecursionError) as err:
        raise core.errors.ValidationError("The request body is not valid JSON.",
                              causes=[str(err)[:200]],
                              try_hint="send a JSON object with Content-Type: application/json") from None


def query(req: func.HttpRequest) -> dict[str, str]:
    return dict(req.params)


def route(req: func.HttpRequest, name: str) -> str:
    return str(req.route_params.get(name, ""))


def idempotency_key(req: func.HttpRequest) -> str | None:
    value = req.headers.get("Idempotency-Key")
    return None if value is None else core.validation.idempotency_key(value)


def _unique_members(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    duplicates = sorted(key for key, count in Counter(key for key, _ in pairs).items() if count > 1)
    if duplicates:
        raise ValueError(f"duplicate members: {', '.join(duplicates)}")
    return dict(pairs)


def _no_constants(name: str) -> None:
    raise ValueError(f"{name} is not a JSON number")
