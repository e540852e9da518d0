"""The host's view of a function app: `app.get_functions()` indexed the way the Functions host does,
and each kind of function invoked the way the Python worker does.

HTTP requests are matched against route templates (prefix `/api`, case-insensitive like the host's
routing, literal segments before parameters, route values percent-decoded), queue messages go to
the trigger bound to their queue, timers and Event Grid events to their functions by name. Only
triggers are bound: a function declaring any other binding is refused when the app is indexed.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NamedTuple
from urllib.parse import parse_qsl, unquote, urlsplit

import azure.functions as func
from azure.functions.queue import QueueMessage
from azure.functions.timer import TimerRequest

from .events import trigger_event

ROUTE_PREFIX = "api"
ALL_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "TRACE")  # when none is named
HTTP_OUTPUT = ("http", "$return")  # the response binding every v2 HTTP function declares


class Binding(NamedTuple):
    """One indexed function: its trigger (first, so `timers[name][0]` is the trigger) and its code."""

    trigger: Any
    function: Callable[..., Any]
    name: str

    @property
    def kind(self) -> str:
        return str(self.trigger.get_binding_name())

    def invoke(self, value: Any) -> Any:
        """Call the function with its trigger value by parameter name, as the worker does; an
        `async def` function runs to completion on an event loop of its own."""
        result = self.function(**{self.trigger.name: value})
        if inspect.iscoroutine(result):
            result = asyncio.run(result)
        return result


@dataclass(frozen=True)
class HttpRoute:
    name: str
    template: str
    methods: frozenset[str]
    auth_level: str
    pattern: re.Pattern[str]
    literal_segments: int
    binding: Binding

    @property
    def function(self) -> Callable[..., Any]:
        return self.binding.function

    @classmethod
    def from_template(cls, name: str, template: str, methods: frozenset[str], auth_level: str,
                      binding: Binding) -> HttpRoute:
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
        pattern = re.compile("/".join(parts), re.IGNORECASE)
        return cls(name, template, methods, auth_level, pattern, literals, binding)


class FunctionIndex:
    def __init__(self, app: func.FunctionApp) -> None:
        app.functions_bindings = None  # get_functions() refuses to index the same app twice
        self.http_routes: list[HttpRoute] = []
        self.queue_triggers: dict[str, Binding] = {}
        self.timers: dict[str, Binding] = {}
        self.event_grid: dict[str, Binding] = {}
        self.names: set[str] = set()
        self._by_name: dict[str, Binding] = {}  # lower-cased: the host's function names ignore case
        for function in app.get_functions():
            self._add(function)
        # The host tries literal segments before parameters: /storage/x/status before /storage/{name}
        self.http_routes.sort(key=lambda r: -r.literal_segments)

    def _add(self, function: Any) -> None:
        name, trigger = function.get_function_name(), function.get_trigger()
        binding = Binding(trigger, function.get_user_function(), name)
        _check_supported(binding, function.get_bindings())
        self.names.add(name)
        self._by_name[name.lower()] = binding
        if binding.kind == "httpTrigger":
            methods = frozenset(str(getattr(m, "value", m)).upper() for m in trigger.methods or ALL_METHODS)
            level = str(getattr(trigger.auth_level, "value", trigger.auth_level)).upper()
            self.http_routes.append(HttpRoute.from_template(name, trigger.route, methods, level, binding))
        elif binding.kind == "queueTrigger":
            if trigger.queue_name in self.queue_triggers:
                raise ValueError(f"{name}: queue {trigger.queue_name} already has a trigger")
            self.queue_triggers[trigger.queue_name] = binding
        elif binding.kind == "timerTrigger":
            self.timers[name] = binding
        elif binding.kind == "eventGridTrigger":
            self.event_grid[name] = binding
        else:
            raise ValueError(f"{name}: trigger type {binding.kind} is not supported by the local host")

    def function(self, name: str) -> Binding | None:
        return self._by_name.get(name.lower())

    def match(self, method: str, path: str) -> tuple[HttpRoute, dict[str, str]] | None:
        prefix = f"/{ROUTE_PREFIX}/"
        if not path.lower().startswith(prefix):
            return None
        relative = path[len(prefix):]
        for route in self.http_routes:
            found = route.pattern.fullmatch(relative)
            if found and method.upper() in route.methods:
                return route, {k: unquote(v) for k, v in found.groupdict().items()}
        return None

    def methods_for(self, path: str) -> frozenset[str]:
        """Every method taken by the functions whose route matches `path`; empty when none does."""
        prefix = f"/{ROUTE_PREFIX}/"
        if not path.lower().startswith(prefix):
            return frozenset()
        relative = path[len(prefix):]
        return frozenset(m for r in self.http_routes if r.pattern.fullmatch(relative) for m in r.methods)

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
        response: func.HttpResponse = route.binding.invoke(request)
        return response

    def deliver(self, queue_name: str, text: str, dequeue_count: int = 1) -> None:
        """Hand a (decoded) queue message to the trigger bound to that queue."""
        self.deliver_message(queue_name, _local_message(text.encode(), dequeue_count))

    def deliver_message(self, queue_name: str, message: QueueMessage) -> None:
        self.queue_triggers[queue_name].invoke(message)

    def fire_timer(self, name: str, past_due: bool = False) -> None:
        binding = self.timers[name]
        binding.invoke(TimerRequest(past_due=past_due, schedule_status={},
                                    schedule={"schedule": binding.trigger.schedule}))

    def publish(self, name: str, event: Mapping[str, Any]) -> None:
        """Deliver one event (a member of the posted array), Event Grid or CloudEvents schema."""
        self.event_grid[name].invoke(trigger_event(event))

    def on_demand(self, name: str, text: str) -> Callable[[], None]:
        """The run the admin endpoint asks for, ready to start: a timer fires (not past due), a
        queue trigger gets `text` as its message, an Event Grid trigger `text` as one event.
        KeyError for an unknown function, ValueError for an HTTP one or input that is no event."""
        binding = self.function(name)
        if binding is None:
            raise KeyError(name)
        if binding.kind == "timerTrigger":
            return lambda: self.fire_timer(binding.name)
        if binding.kind == "queueTrigger":
            return lambda: self.deliver(binding.trigger.queue_name, text)
        if binding.kind == "eventGridTrigger":
            event = trigger_event(json.loads(text))
            return lambda: binding.invoke(event)
        raise ValueError(f"{binding.name} is an HTTP function: call its route")


def _check_supported(binding: Binding, bindings: list[Any]) -> None:
    others = [b for b in bindings if b is not binding.trigger and (b.type, b.name) != HTTP_OUTPUT]
    if others:
        raise ValueError(f"{binding.name}: the local host binds triggers only, not "
                         f"{', '.join(b.type for b in others)}")
    if binding.trigger.name not in inspect.signature(binding.function).parameters:
        raise ValueError(f"{binding.name}: the function has no parameter {binding.trigger.name!r}")


def _local_message(body: bytes, dequeue_count: int) -> QueueMessage:
    return QueueMessage(id=str(uuid.uuid4()), body=body, dequeue_count=dequeue_count,
                        insertion_time=datetime.now(UTC), pop_receipt="local")
