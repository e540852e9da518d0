"""A stand-in for the Functions host's dispatch, for workstations and tests (never deployed).

It indexes `function_app.app.get_functions()` the way the host does and invokes the indexed user
functions: HTTP requests are matched against route templates (prefix `/api`, literal segments
before parameters, route values percent-decoded), queue messages go to the trigger bound to their
queue, timers and Event Grid events to their functions by name.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

import azure.functions as func
from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.functions.queue import QueueMessage
from azure.functions.timer import TimerRequest
from azure.storage.queue import QueueClient, TextBase64DecodePolicy, TextBase64EncodePolicy

ROUTE_PREFIX = "api"


@dataclass(frozen=True)
class HttpRoute:
    name: str
    template: str
    methods: frozenset[str]
    auth_level: str
    pattern: re.Pattern[str]
    literal_segments: int
    function: Any

    @classmethod
    def from_template(cls, name: str, template: str, methods: frozenset[str], auth_level: str,
                      function: Any) -> HttpRoute:
        parts, literals = [], 0
        for segment in template.split("/"):
            if segment.startswith("{") and segment.endswith("}"):
                param = segment[1:-1]
                if not param.isidentifier():
                    raise ValueError(f"route {template}: only plain {{name}} parameters are supported")
                parts.append(f"(?P<{param}>[^/]+)")
            else:
                parts.append(re.escape(segment))
                literals += 1
        return cls(name, template, methods, auth_level, re.compile("/".join(parts)), literals, function)


class FunctionIndex:
    def __init__(self, app: func.FunctionApp) -> None:
        app.functions_bindings = None  # get_functions() refuses to index the same app twice
        self.http_routes: list[HttpRoute] = []
        self.queue_triggers: dict[str, Any] = {}
        self.timers: dict[str, Any] = {}
        self.event_grid: dict[str, Any] = {}
        self.names: set[str] = set()
        for function in app.get_functions():
            self._add(function)
        # The host tries literal segments before parameters: /storage/x/status before /storage/{name}
        self.http_routes.sort(key=lambda r: -r.literal_segments)

    def _add(self, function: Any) -> None:
        name, trigger = function.get_function_name(), function.get_trigger()
        user = function.get_user_function()
        kind = trigger.get_binding_name()
        self.names.add(name)
        if kind == "httpTrigger":
            methods = frozenset(m.value if hasattr(m, "value") else str(m) for m in trigger.methods)
            level = str(getattr(trigger.auth_level, "value", trigger.auth_level)).upper()
            self.http_routes.append(HttpRoute.from_template(name, trigger.route, methods, level, user))
        elif kind == "queueTrigger":
            self.queue_triggers[trigger.queue_name] = user
        elif kind == "timerTrigger":
            self.timers[name] = (trigger, user)
        elif kind == "eventGridTrigger":
            self.event_grid[name] = user
        else:
            raise ValueError(f"{name}: trigger type {kind} is not supported by the local host")

    def match(self, method: str, path: str) -> tuple[HttpRoute, dict[str, str]] | None:
        relative = path.removeprefix(f"/{ROUTE_PREFIX}/")
        if relative == path:
            return None
        for route in self.http_routes:
            found = route.pattern.fullmatch(relative)
            if found and method.upper() in route.methods:
                return route, {k: unquote(v) for k, v in found.groupdict().items()}
        return None

    def http(self, method: str, url: str, *, body: bytes = b"",
             headers: Mapping[str, str] | None = None) -> func.HttpResponse:
        """Invoke the function a request routes to; 404 like the host when none does."""
        parts = urlsplit(url)
        matched = self.match(method, parts.path)
        if matched is None:
            return func.HttpResponse(status_code=404)
        route, params = matched
        request = func.HttpRequest(method.upper(), url, headers=dict(headers or {}),
                                   params=dict(parse_qsl(parts.query, keep_blank_values=True)),
                                   route_params=params, body=body)
        response: func.HttpResponse = route.function(request)
        return response

    def deliver(self, queue_name: str, text: str, dequeue_count: int = 1) -> None:
        """Hand a (decoded) queue message to the trigger bound to that queue."""
        self.queue_triggers[queue_name](QueueMessage(
            id=f"local-{dequeue_count}", body=text.encode(), dequeue_count=dequeue_count,
            insertion_time=datetime.now(UTC), pop_receipt="local"))

    def fire_timer(self, name: str, past_due: bool = False) -> None:
        trigger, user = self.timers[name]
        user(TimerRequest(past_due=past_due, schedule_status={}, schedule={"schedule": trigger.schedule}))

    def publish(self, name: str, event: Mapping[str, Any]) -> None:
        """Deliver one Event Grid schema event (a member of the posted array)."""
        self.event_grid[name](func.EventGridEvent(
            id=event["id"], data=event.get("data", {}), topic=event.get("topic", ""),
            subject=event.get("subject", ""), event_type=event.get("eventType", ""),
            event_time=None, data_version=event.get("dataVersion", "")))


class QueuePump:
    """The host's delivery rules for one queue trigger, over a real (Azurite) queue: receive,
    invoke, delete on success; on failure make the message visible again after
    `visibility_timeout` seconds; when a failed delivery was the `max_dequeue_count`-th, move the
    message to `<queue>-poison`, as the host does."""

    def __init__(self, index: FunctionIndex, connection_string: str, queue_name: str, *,
                 max_dequeue_count: int = 5, visibility_timeout: int = 0) -> None:
        def client(name: str) -> QueueClient:
            return QueueClient.from_connection_string(
                connection_string, name, message_encode_policy=TextBase64EncodePolicy(),
                message_decode_policy=TextBase64DecodePolicy())

        self.index = index
        self.queue_name = queue_name
        self.queue = client(queue_name)
        self.poison = client(queue_name + "-poison")
        self.max_dequeue_count = max_dequeue_count
        self.visibility_timeout = visibility_timeout
        self.failures: list[BaseException] = []

    def run_once(self) -> int:
        """Deliver every message visible now, once; returns how many were delivered."""
        delivered = 0
        try:
            batch = list(self.queue.receive_messages(max_messages=32, visibility_timeout=60))
        except ResourceNotFoundError:  # nothing was ever sent to it: as the host, keep polling
            return 0
        for message in batch:
            delivered += 1
            try:
                self.index.deliver(self.queue_name, message.content, message.dequeue_count)
            except Exception as err:
                self.failures.append(err)
                if message.dequeue_count >= self.max_dequeue_count:
                    self._to_poison(message)
                else:
                    self.queue.update_message(message, visibility_timeout=self.visibility_timeout)
            else:
                self.queue.delete_message(message)
        return delivered

    def drain(self, rounds: int = 20) -> int:
        """Deliver until no message is visible; returns the number of deliveries."""
        total = 0
        for _ in range(rounds):
            delivered = self.run_once()
            if not delivered:
                return total
            total += delivered
        raise RuntimeError(f"{self.queue_name} still had messages after {rounds} rounds")

    def _to_poison(self, message: Any) -> None:
        with contextlib.suppress(ResourceExistsError):
            self.poison.create_queue()
        self.poison.send_message(message.content)
        self.queue.delete_message(message)
