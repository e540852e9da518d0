"""The emulator's engine: a store of resources, Resource Manager's request rules (api-version,
authentication, resource groups, parents), long-running operations, events, faults and the log.
Resource types are plugged in from the provider modules."""

from __future__ import annotations

import copy
import json
import logging
import re
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from local.emulator.arm import (
    API_VERSION,
    ArmError,
    Request,
    Resource,
    ResourceId,
    Response,
    bad_request,
    new_guid,
    parse_path,
)
from local.emulator.authorization import CURRENT, Authorization, Caller, required_action
from local.emulator.events import (
    ACTION_SUCCESS,
    DELETE_SUCCESS,
    WRITE_SUCCESS,
    EventPublisher,
    operation_name,
    resource_event,
)
from local.emulator.kinds import Action, ResourceKind, Shape
from local.emulator.tenant import ARM_AUDIENCES, InvalidToken, Tenant
from local.emulator.traffic import Faults, LoggedRequest, RequestLog

if TYPE_CHECKING:
    from local.emulator.machines import Machines

log = logging.getLogger(__name__)

MONITOR = re.compile(
    r"/(operations|operationresults|asyncoperations|privatednsoperationstatuses|"
    r"privatednsoperationresults)/([0-9a-f-]{36})$",
    re.IGNORECASE,
)
STATUS_MONITORS = {"operations", "privatednsoperationstatuses"}
BUSY_STATES = frozenset({"Creating", "Updating", "Deleting", "Accepted"})  # the others answer like Location


@dataclass
class Config:
    """What tests and `make dev` tune. Azure's own values are noted where they differ."""

    polls_before_done: int = 1  # in-progress answers before a finished operation says so
    retry_after: int | None = None  # Retry-After on operations (Azure: 10-60 s); None: none sent
    agent_ready_seconds: float = 0.0  # a new or rebooted VM answers VMAgentNotReady this long
    nfs_timeout_seconds: float = 2.0  # how long an unreachable NFS mount hangs (Azure: minutes)
    run_command_output_bytes: int = 4096  # Run Command keeps the last 4 KB of output and of error
    event_webhook: str | None = None  # where Event Grid events are posted


@dataclass
class Operation:
    """A long-running operation, as its monitor URLs report it."""

    id: str
    shape: Shape
    resource_key: str | None
    polls_left: int
    done: threading.Event = field(default_factory=threading.Event)
    status: str = "InProgress"
    error: ArmError | None = None
    result: dict[str, Any] | None = None
    returns_resource: bool = True
    started: str = ""
    group_scope: str | None = None  # the resource group of the request that started it


class Emulator:
    """Azure Resource Manager for one machine. `handle()` answers a request; `server.py` serves it
    over HTTPS; provider modules register resource types through `register()`."""

    def __init__(self, directory: Path, config: Config | None = None) -> None:
        self.directory = directory
        self.config = config or Config()
        self.resources: dict[str, Resource] = {}
        self.kinds: dict[str, ResourceKind] = {}
        self.provider_actions: dict[tuple[str, str], Callable[[Emulator, Request], Response]] = {}
        self.operations: dict[str, Operation] = {}
        self.lock = threading.RLock()
        self.faults = Faults()
        self.requests = RequestLog()
        self.events = EventPublisher(lambda: self.config.event_webhook)
        self.tenant = Tenant()
        self.authorization = Authorization(self)
        self.machines: Machines  # set by LocalAzure before serving
        self.closing = False  # set when it stops: operations cut off then are no bugs of its own

    # -- registry and store ---------------------------------------------------------------------

    def register(self, kind: ResourceKind) -> None:
        self.kinds[kind.type_name.lower()] = kind

    def kind_of(self, rid: ResourceId) -> ResourceKind:
        kind = self.kinds.get(rid.type_name.lower())
        if kind is None:
            raise bad_request(
                "InvalidResourceType",
                f"The resource type '{'/'.join(rid.types)}' could not be found in the "
                f"namespace '{rid.namespace}' for api version in use.",
            )
        return kind

    def get(self, rid: ResourceId | str) -> Resource | None:
        key = rid.lower() if isinstance(rid, str) else rid.key
        with self.lock:
            return self.resources.get(key)

    def find(self, type_name: str, where: Callable[[Resource], bool] = lambda r: True) -> list[Resource]:
        with self.lock:
            return [r for r in self.resources.values() if r.type.lower() == type_name.lower() and where(r)]

    def children(self, rid: ResourceId) -> list[Resource]:
        prefix = rid.key + "/"
        with self.lock:
            return [r for k, r in self.resources.items() if k.startswith(prefix)]

    def put_internal(
        self, rid: ResourceId, body: dict[str, Any], *, internal: dict[str, Any] | None = None
    ) -> Resource:
        """Store a resource an RP creates on its own (a private endpoint's NIC, a DNS record)."""
        resource = Resource(
            rid,
            rid.type_name,
            {**body, "id": str(rid), "name": rid.name, "type": rid.type_name},
            internal or {},
        )
        with self.lock:
            self.resources[rid.key] = resource
        return resource

    def remove(self, resource: Resource) -> None:
        """Delete a resource and everything under it, children first, with their side effects."""
        for child in sorted(self.children(resource.id), key=lambda r: -len(r.id.key)):
            self._drop(child)
        self._drop(resource)

    def _drop(self, resource: Resource) -> None:
        with self.lock:
            if self.resources.pop(resource.id.key, None) is None:
                return
        kind = self.kinds.get(resource.type.lower())
        if kind is not None:
            kind.deleted(self, resource)
        self.authorization.forget(str(resource.id))

    # -- requests ---------------------------------------------------------------------------------

    def handle(self, request: Request) -> Response:
        kind = "unknown"
        try:
            kind = self._kind_label(request)
            throttled = self.faults.count(request.method, request.path)
            response = self._answer(request)
            response.headers.update(throttled)
        except ArmError as error:
            response = Response(error.status, error.body(), dict(error.headers))
        except Exception as error:  # the emulator's own bug: answer as ARM would, keep serving
            log.exception("emulator failed on %s %s", request.method, request.path)
            response = Response(500, {"error": {"code": "InternalServerError", "message": str(error)}})
        response.headers.setdefault("x-ms-request-id", request.request_id)
        response.headers.setdefault(
            "x-ms-correlation-request-id",
            request.headers.get("x-ms-correlation-request-id", request.request_id),
        )
        self.requests.add(
            LoggedRequest(
                time.time(),
                request.method,
                request.path,
                request.api_version,
                kind,
                response.status,
                request.request_id,
                request.caller.object_id if request.caller else "",
            )
        )
        return response

    def _kind_label(self, request: Request) -> str:
        if MONITOR.search(request.path):
            return "GET operation"
        try:
            rid = parse_path(request.path)
        except ArmError:
            return f"{request.method} invalid"
        return f"{request.method} {rid.type_name}"

    def _answer(self, request: Request) -> Response:
        self.faults.apply(request.method, request.path)
        caller = request.caller = self._authenticate(request)
        if not request.api_version:
            raise bad_request(
                "MissingApiVersionParameter",
                "The api-version query parameter (?api-version=) is required for all requests.",
            )
        if not API_VERSION.match(request.api_version):
            raise bad_request(
                "InvalidApiVersionParameter", f"The api-version '{request.api_version}' is invalid."
            )
        if Authorization.handles(request.path):
            return self.authorization.handle(request, caller)
        monitor = MONITOR.search(request.path)
        if monitor:
            return self._monitor(monitor.group(1).lower(), monitor.group(2), request, caller)
        rid = parse_path(request.path)
        if rid.namespace is None and rid.group is None:
            raise ArmError(404, "InvalidResourceNamespace", "Subscriptions are not served by the emulator.")
        action, scope = required_action(request.method, request.path)
        request.evidence = self.authorization.authorize(caller, action, scope)
        if request.method in ("PUT", "PATCH", "DELETE"):
            self.authorization.refuse_if_locked(request.method, request.path)
        authorizing = CURRENT.set((caller, action, scope))  # for the checks of linked resources
        try:
            if rid.is_resource:
                return self._on_resource(rid, request)
            return self._on_collection_or_action(rid, request)
        finally:
            CURRENT.reset(authorizing)

    def _authenticate(self, request: Request) -> Caller:
        """The caller of a request with a valid Resource Manager token; ARM's 401 otherwise."""
        header = request.headers.get("authorization", "")
        challenge = {"WWW-Authenticate": f'Bearer authorization_uri="{self.tenant.authority}/'
                                         f'{self.tenant.tenant_id}", error="invalid_token"'}
        if not header:
            raise ArmError(
                401, "AuthenticationFailed", "Authentication failed. The 'Authorization' header is missing.",
                headers=challenge,
            )
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise ArmError(
                401,
                "AuthenticationFailed",
                "Authentication failed. The 'Authorization' header is provided in an invalid format.",
                headers=challenge,
            )
        try:
            claims = self.tenant.decode(token.strip(), audiences=ARM_AUDIENCES)
        except InvalidToken as error:
            raise ArmError(401, error.code, error.message, headers=challenge) from None
        return self.authorization.caller(claims)

    def _on_resource(self, rid: ResourceId, request: Request) -> Response:
        kind = self.kind_of(rid)
        self._require_scope(rid)
        special = kind.special(self, rid, request)
        if special is not None:
            return special
        if request.method == "GET":
            resource = self._existing(rid)
            return Response(200, kind.view(self, resource, request.query))
        if request.method == "HEAD":
            return Response(204 if self.get(rid) else 404)
        if request.method == "PUT":
            return self._put(kind, rid, request)
        if request.method == "PATCH":
            return self._patch(kind, rid, request)
        if request.method == "DELETE":
            return self._delete(kind, rid, request)
        raise ArmError(405, "MethodNotAllowed", f"The method '{request.method}' is not allowed here.")

    def _require_scope(self, rid: ResourceId) -> None:
        """The resource group and the parent must exist, as ARM checks before the provider."""
        if rid.group is not None and rid.namespace is not None:
            group = ResourceId(rid.subscription, rid.group)
            if self.get(group) is None:
                raise ArmError(
                    404,
                    "ResourceGroupNotFound",
                    f"Resource group '{rid.group}' could not be found.",
                    headers={"x-ms-failure-cause": "gateway"},
                )
        parent = rid.parent
        if parent is not None and self.get(parent) is None:
            raise ArmError(
                404,
                "ParentResourceNotFound",
                "Can not perform requested operation on nested resource. Parent resource "
                f"'{'/'.join(parent.names)}' not found.",
            )

    def _existing(self, rid: ResourceId) -> Resource:
        resource = self.get(rid)
        if resource is None and rid.namespace is None:
            raise ArmError(404, "ResourceGroupNotFound", f"Resource group '{rid.group}' could not be found.")
        if resource is None:
            where = f" under resource group '{rid.group}'" if rid.group else ""
            raise ArmError(
                404,
                "ResourceNotFound",
                f"The Resource '{rid.type_name.split('/', 1)[0]}/{'/'.join(_pairs(rid))}'{where} "
                "was not found. For more details please go to https://aka.ms/ARMResourceNotFoundFix",
            )
        return resource

    def _body(self, request: Request) -> dict[str, Any]:
        if not isinstance(request.body, dict):
            raise bad_request(
                "InvalidRequestContent", "The request content was invalid and could not be deserialized."
            )
        return request.body

    def _put(self, kind: ResourceKind, rid: ResourceId, request: Request) -> Response:
        body = self._body(request)
        with self.lock:
            existing = self.get(rid)
            self._require_idle(existing)
            stored = self._validated(kind, rid, body, existing)
            resource = existing or Resource(rid, kind.type_name, {})
            resource.body = {"id": str(rid), "name": rid.name, "type": kind.type_name, **stored}
            shape = kind.put_shape
            if shape is not Shape.SYNC:
                resource.properties["provisioningState"] = (
                    kind.creating_state if existing is None else "Updating"
                )
            self.resources[rid.key] = resource
        return self._write(kind, resource, request, shape, created=existing is None)

    def _patch(self, kind: ResourceKind, rid: ResourceId, request: Request) -> Response:
        if not kind.patchable:
            raise ArmError(405, "MethodNotAllowed", f"PATCH is not supported on {kind.type_name}.")
        patch = self._body(request)
        with self.lock:
            existing = self._existing(rid)
            self._require_idle(existing)
            merged = _merge(copy.deepcopy(existing.body), patch)
            merged.get("properties", {}).pop("provisioningState", None)
            stored = self._validated(kind, rid, merged, existing)
            existing.body = {"id": str(rid), "name": rid.name, "type": kind.type_name, **stored}
            # Storage answers PATCH synchronously; the other providers as they answer PUT.
            shape = Shape.SYNC if kind.put_shape is Shape.LOCATION else kind.put_shape
            if shape is not Shape.SYNC:
                existing.properties["provisioningState"] = "Updating"
        return self._write(kind, existing, request, shape, created=False)

    @staticmethod
    def _require_idle(resource: Resource | None) -> None:
        """One write at a time per resource, as Azure's providers refuse a second one."""
        if resource is not None and resource.properties.get("provisioningState") in BUSY_STATES:
            raise ArmError(
                409,
                "AnotherOperationInProgress",
                f"Another operation on this or dependent resource is in progress. "
                f"Resource '{resource.id.name}'.",
            )

    def _validated(
        self, kind: ResourceKind, rid: ResourceId, body: dict[str, Any], existing: Resource | None
    ) -> dict[str, Any]:
        try:
            return kind.validate(self, rid, body, existing)
        except (AttributeError, TypeError, KeyError, ValueError) as error:  # a value of the wrong shape
            raise bad_request(
                "InvalidRequestContent",
                f"The request content was invalid and could not be deserialized: {error}.",
            ) from None

    def _write(
        self, kind: ResourceKind, resource: Resource, request: Request, shape: Shape, *, created: bool
    ) -> Response:
        def work() -> dict[str, Any] | None:
            kind.provision(self, resource, created)
            with self.lock:
                if self.get(resource.id) is not resource:
                    raise ArmError(
                        409, "OperationCanceled", "The resource was deleted while this operation was running."
                    )
                resource.properties["provisioningState"] = "Succeeded"
            self._emit(WRITE_SUCCESS, resource.id, "write", request, updated=not created)
            return None

        if shape is Shape.SYNC:
            work()
            return Response(201 if created else 200, kind.view(self, resource, {}))
        operation = self._start(shape, resource, work, request=request)
        return self._accepted(
            shape,
            operation,
            request,
            kind.view(self, resource, {}),
            created,
            location=kind.location_on_create,
        )

    def _delete(self, kind: ResourceKind, rid: ResourceId, request: Request) -> Response:
        with self.lock:
            resource = self.get(rid)
            if resource is None:
                return Response(204)
            self._require_idle(resource)
            kind.check_delete(self, resource)
            if kind.delete_shape is not Shape.SYNC:
                resource.properties["provisioningState"] = "Deleting"

        def work() -> dict[str, Any] | None:
            self.remove(resource)
            self._emit(DELETE_SUCCESS, rid, "delete", request, updated=True)
            return None

        if kind.delete_shape is Shape.SYNC:
            work()
            return Response(200)
        operation = self._start(kind.delete_shape, resource, work, request=request, returns_resource=False)
        return self._accepted(kind.delete_shape, operation, request, None, created=False, delete=True)

    def _on_collection_or_action(self, rid: ResourceId, request: Request) -> Response:
        trailing = rid.trailing or ""
        owner = rid.owner
        if not owner.names and owner.namespace is not None:
            handler = self.provider_actions.get((owner.namespace.lower(), trailing.lower()))
            if handler is not None and request.method == "POST":
                return handler(self, request)
        collection_type = f"{owner.type_name}/{trailing}".lower() if owner.names else rid.type_name.lower()
        if request.method == "GET" and collection_type in self.kinds:
            return self._list(rid, collection_type, request.query)
        if not owner.names:
            raise bad_request(
                "InvalidResourceType",
                f"The resource type '{trailing}' could not be found in the namespace '{rid.namespace}'.",
            )
        owner_kind = self.kind_of(owner)
        self._require_scope(owner)
        resource = self._existing(owner)
        if request.method == "GET" and trailing.lower() in owner_kind.views:
            return Response(200, owner_kind.views[trailing.lower()](self, resource, request.query))
        action = owner_kind.actions.get(trailing.lower())
        if action is None or request.method != "POST":
            raise ArmError(
                404, "NotFound", f"No HTTP resource was found that matches the request URI '{request.url}'."
            )
        return self._action(owner, resource, trailing, action, request)

    def _list(self, rid: ResourceId, collection_type: str, query: dict[str, Any]) -> Response:
        owner = rid.owner
        if owner.names:
            scope = owner.key + "/"
        elif rid.group is not None:
            if self.get(ResourceId(rid.subscription, rid.group)) is None:
                raise ArmError(
                    404, "ResourceGroupNotFound", f"Resource group '{rid.group}' could not be found."
                )
            scope = ResourceId(rid.subscription, rid.group).key + "/"
        else:
            scope = f"/subscriptions/{rid.subscription}/".lower()
        kind = self.kinds[collection_type]
        with self.lock:
            found = [
                r
                for k, r in self.resources.items()
                if r.type.lower() == collection_type and k.startswith(scope)
            ]
        return Response(
            200, {"value": [item for r in sorted(found, key=lambda r: r.id.key)
                            for item in kind.listing(self, r, query)]}
        )

    def _action(
        self, owner: ResourceId, resource: Resource, name: str, action: Action, request: Request
    ) -> Response:
        body = request.body if isinstance(request.body, dict) else {}
        if action.check is not None:
            action.check(self, resource, body)

        def work() -> dict[str, Any] | None:
            result = action.run(self, resource, body)
            self._emit(ACTION_SUCCESS, owner, f"{name}/action", request, updated=True)
            return result

        if action.shape is Shape.SYNC:
            result = work()
            return Response(200 if result is not None else 204, result)
        operation = self._start(action.shape, None, work, request=request, returns_resource=False)
        return self._accepted(action.shape, operation, request, None, created=False, delete=True)

    # -- long-running operations ------------------------------------------------------------------

    def _start(
        self,
        shape: Shape,
        resource: Resource | None,
        work: Callable[[], dict[str, Any] | None],
        *,
        request: Request,
        returns_resource: bool = True,
    ) -> Operation:
        operation = Operation(
            new_guid(),
            shape,
            resource.id.key if resource else None,
            self.config.polls_before_done,
            returns_resource=returns_resource,
            started=_iso_now(),
            group_scope=_group_scope(request.path),
        )
        with self.lock:
            self.operations[operation.id] = operation

        def run() -> None:
            try:
                operation.result = work()
                operation.status = "Succeeded"
            except ArmError as error:
                operation.status, operation.error = "Failed", error
                if resource is not None and self.get(resource.id) is resource:
                    resource.properties["provisioningState"] = "Failed"
            except Exception as error:  # the emulator's own bug: fail the operation, keep serving
                if self.closing:  # its machines went away under it
                    log.warning("long-running operation %s cut off by the stop: %s", operation.id, error)
                else:
                    log.exception("long-running operation %s failed", operation.id)
                operation.status = "Failed"
                operation.error = ArmError(500, "InternalServerError", str(error))
                if resource is not None and self.get(resource.id) is resource:
                    resource.properties["provisioningState"] = "Failed"
            operation.done.set()

        threading.Thread(target=run, name=f"lro-{operation.id[:8]}", daemon=True).start()
        return operation

    def _monitor_urls(self, operation: Operation, request: Request, rid: ResourceId) -> dict[str, str]:
        base, version = request.base_url, request.api_version
        namespace = rid.namespace or "Microsoft.Resources"
        if operation.shape is Shape.ASYNC_202:  # private DNS: resource-group scoped monitors
            scope = (
                f"{base}/subscriptions/{rid.subscription}/resourceGroups/{rid.group}/providers/{namespace}"
            )
            query = f"{operation.id}?api-version={version}"
            return {
                "Azure-AsyncOperation": f"{scope}/privateDnsOperationStatuses/{query}",
                "Location": f"{scope}/privateDnsOperationResults/{query}",
            }
        location = self._location_of(rid)
        scope = f"{base}/subscriptions/{rid.subscription}/providers/{namespace}/locations/{location}"
        if operation.shape is Shape.LOCATION and namespace.lower() == "microsoft.storage":
            return {"Location": f"{scope}/asyncoperations/{operation.id}?monitor=true&api-version={version}"}
        if operation.shape is Shape.LOCATION:
            return {"Location": f"{scope}/operationResults/{operation.id}?api-version={version}"}
        return {
            "Azure-AsyncOperation": f"{scope}/operations/{operation.id}?api-version={version}",
            "Location": f"{scope}/operationResults/{operation.id}?monitor=true&api-version={version}",
        }

    def _location_of(self, rid: ResourceId) -> str:
        for candidate in (rid, rid.owner, *_ancestors(rid)):
            resource = self.get(candidate)
            if resource is not None and resource.body.get("location"):
                return str(resource.body["location"])
        return "global"

    def _accepted(
        self,
        shape: Shape,
        operation: Operation,
        request: Request,
        body: dict[str, Any] | None,
        created: bool,
        *,
        delete: bool = False,
        location: bool = False,
    ) -> Response:
        """The first answer of a long-running operation. `location`: a PUT answered 201 carries
        a Location header besides Azure-AsyncOperation (managed Run Commands do)."""
        rid = parse_path(request.path)
        headers = self._monitor_urls(operation, request, rid)
        if self.config.retry_after is not None:
            headers["Retry-After"] = str(self.config.retry_after)
        if shape is Shape.ASYNC_OPERATION and not delete:
            if not (location and created):
                headers.pop("Location", None)
            return Response(201 if created else 200, body, headers)
        return Response(202, None, headers)

    def _monitor(self, which: str, operation_id: str, request: Request, caller: Caller) -> Response:
        # A monitor's URL names only the subscription, yet Resource Manager authorizes it with the
        # permissions held at the resource group of the operation: whoever may act only on the
        # resource can start an operation but not track it (MicrosoftDocs/azure-docs
        # articles/azure-resource-manager/management/async-operations.md, "Permission for
        # tracking async status").
        operation = self.operations.get(operation_id.lower())
        action, scope = required_action("GET", request.path)
        where = operation.group_scope if operation and operation.group_scope else scope
        self.authorization.authorize(caller, action, where)
        if operation is None:
            raise ArmError(404, "OperationNotFound", f"The operation '{operation_id}' could not be found.")
        retry = {"Retry-After": str(self.config.retry_after)} if self.config.retry_after is not None else {}
        finished = operation.done.is_set()
        if operation.polls_left > 0 or not finished:
            operation.polls_left = max(0, operation.polls_left - 1)
            if which in STATUS_MONITORS:
                return Response(
                    200,
                    {
                        "id": request.path,
                        "name": operation.id,
                        "status": "InProgress",
                        "startTime": operation.started,
                    },
                    retry,
                )
            return Response(202, None, {"Location": request.url, **retry})
        if which in STATUS_MONITORS:
            answer: dict[str, Any] = {
                "id": request.path,
                "name": operation.id,
                "status": operation.status,
                "startTime": operation.started,
                "endTime": _iso_now(),
            }
            if operation.error is not None:
                answer["error"] = operation.error.body()["error"]
            return Response(200, answer)
        if operation.error is not None:  # a Location monitor answers the failure itself
            return Response(operation.error.status, operation.error.body())
        if operation.result is not None:
            return Response(200, operation.result)
        resource = self.resources.get(operation.resource_key or "")
        if operation.returns_resource and resource is not None:
            kind = self.kinds[resource.type.lower()]
            return Response(200, kind.view(self, resource, {}))
        return Response(204)

    def wait_for_operations(self, timeout: float = 30) -> None:
        """Block until every long-running operation finished (for tests and tools)."""
        deadline = time.monotonic() + timeout
        for operation in list(self.operations.values()):
            operation.done.wait(max(0.0, deadline - time.monotonic()))

    # -- events -----------------------------------------------------------------------------------

    def _emit(self, event_type: str, rid: ResourceId, verb: str, request: Request, *, updated: bool) -> None:
        self.events.publish(
            resource_event(
                event_type,
                rid,
                operation_name(rid, verb),
                method=request.method,
                url=request.url,
                correlation_id=request.request_id,
                updated=updated,
                caller=request.caller,
                evidence=request.evidence,
            )
        )

    def close(self) -> None:
        self.closing = True
        self.events.close()


def _pairs(rid: ResourceId) -> Iterable[str]:
    for type_segment, name in zip(rid.types, rid.names, strict=False):
        yield f"{type_segment}/{name}"


def _ancestors(rid: ResourceId) -> Iterable[ResourceId]:
    parent = rid.parent
    while parent is not None:
        yield parent
        parent = parent.parent
    if rid.group is not None:
        yield ResourceId(rid.subscription, rid.group)


def _merge(target: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """JSON merge patch, as ARM applies PATCH bodies."""
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(target.get(key), dict):
            _merge(target[key], value)
        elif value is None:
            target.pop(key, None)
        else:
            target[key] = copy.deepcopy(value)
    return target


def _iso_now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime())


def dumps(body: Any) -> bytes:
    return b"" if body is None else json.dumps(body).encode()


def _group_scope(path: str) -> str | None:
    rid = parse_path(path)
    return f"/subscriptions/{rid.subscription}/resourceGroups/{rid.group}" if rid.group else None
