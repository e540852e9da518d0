"""What tests and benchmarks steer and observe on the emulator: injected faults and the request log."""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from local.emulator.arm import ArmError

DEFAULT_MESSAGES = {
    "TooManyRequests": "Number of requests for subscription exceeded the limit. Please try again later.",
    "SubscriptionRequestsThrottled": "Number of 'write' requests for subscription exceeded. "
    "Please try again after '1' seconds.",
    "InternalServerError": "An internal server error occurred. Please try again.",
    "AuthorizationFailed": "The client does not have authorization to perform this action over "
    "this scope, or the scope is invalid.",
    "VMAgentNotReady": "The VM agent is not ready to process run commands.",
    "Conflict": "The request conflicts with the current state of the resource.",
}


@dataclass
class Fault:
    """Make the next `count` requests whose method and path match fail with `status` and `code`
    (after waiting `delay` seconds), or only be delayed when `status` is 0."""

    method: str
    path_pattern: str
    status: int = 0
    code: str = ""
    message: str = ""
    count: int = 1
    retry_after: int | None = None
    delay: float = 0.0
    matched: int = 0

    def __post_init__(self) -> None:
        self._pattern = re.compile(self.path_pattern, re.IGNORECASE)

    def matches(self, method: str, path: str) -> bool:
        return self.method in ("*", method.upper()) and bool(self._pattern.search(path))

    def error(self, path: str) -> ArmError:
        headers = {"Retry-After": str(self.retry_after)} if self.retry_after is not None else {}
        code = self.code or "InternalServerError"
        message = self.message or DEFAULT_MESSAGES.get(code, f"Injected fault on {path}.")
        return ArmError(self.status, code, message, headers=headers)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Fault:
        return cls(
            method=str(data.get("method", "*")).upper(),
            path_pattern=str(data["pathPattern"]),
            status=int(data.get("status", 0)),
            code=str(data.get("code", "")),
            message=str(data.get("message", "")),
            count=int(data.get("count", 1)),
            retry_after=data.get("retryAfter"),
            delay=float(data.get("delaySeconds", 0)),
        )


@dataclass
class RunInterrupt:
    """Interrupt the next `count` managed Run Commands whose name matches once their output
    (stdout or stderr) shows `marker`: `"timeout"` kills the script as the handler's timeout does,
    `"restart"` restarts the VM under it."""

    name_pattern: str
    marker: str
    action: str  # "timeout" or "restart"
    count: int = 1
    fired: int = 0

    def __post_init__(self) -> None:
        if self.action not in ("timeout", "restart"):
            raise ValueError(f"unknown interrupt {self.action!r}")
        self._pattern = re.compile(self.name_pattern)


@dataclass
class Throttle:
    """Azure's throttling of one kind of request, per subscription: at most `limit` matching
    requests in any `window_seconds`. Every matching answer carries
    `x-ms-ratelimit-remaining-resource: <policy>;<left>`; one over the limit is refused with 429,
    `Retry-After` (the seconds until the oldest counted request leaves the window) and the error
    Compute sends. Sources: MicrosoftDocs/azure-compute-docs
    articles/virtual-machines/troubleshooting-throttling-errors.md (429, the header, the error's
    code OperationNotAllowed with a TooManyRequests detail naming the policy) and
    compute-throttling-limits.md (policies are counted per subscription, region and minute)."""

    method: str
    path_pattern: str
    limit: int
    window_seconds: float
    policy: str
    refused: int = 0
    _times: list[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._pattern = re.compile(self.path_pattern, re.IGNORECASE)

    def count(self, method: str, path: str, now: float) -> dict[str, str]:
        """Count a request: the headers of its answer, or ArmError 429 when over the limit."""
        if self.method not in ("*", method.upper()) or not self._pattern.search(path):
            return {}
        self._times[:] = [t for t in self._times if t > now - self.window_seconds]
        if len(self._times) >= self.limit:
            self.refused += 1
            retry_after = max(1, int(self._times[0] + self.window_seconds - now + 0.999))
            raise ArmError(
                429, "OperationNotAllowed",
                "The server rejected the request because too many requests have been received for this "
                "subscription.",
                headers={"Retry-After": str(retry_after),
                         "x-ms-ratelimit-remaining-resource": f"Microsoft.Compute/{self.policy};0"},
                details=[{"code": "TooManyRequests", "target": self.policy,
                          "message": f'{{"operationGroup":"{self.policy}","allowedRequestCount":{self.limit},'
                                     f'"measuredRequestCount":{len(self._times) + 1}}}'}])
        self._times.append(now)
        left = self.limit - len(self._times)
        return {"x-ms-ratelimit-remaining-resource": f"Microsoft.Compute/{self.policy};{left}"}


class Faults:
    def __init__(self) -> None:
        self._rules: list[Fault] = []
        self._throttles: list[Throttle] = []
        self._interrupts: list[RunInterrupt] = []
        self._lock = threading.Lock()

    def interrupt_run(self, name_pattern: str, marker: str, action: str, *, count: int = 1) -> RunInterrupt:
        interrupt = RunInterrupt(name_pattern, marker, action, count)
        with self._lock:
            self._interrupts.append(interrupt)
        return interrupt

    def take_interrupt(self, name: str) -> RunInterrupt | None:
        """The first interrupt with runs left whose pattern matches `name`, with one run spent."""
        with self._lock:
            for interrupt in self._interrupts:
                if interrupt.count > 0 and interrupt._pattern.search(name):
                    interrupt.count -= 1
                    return interrupt
        return None

    def add(
        self,
        method: str,
        path_pattern: str,
        *,
        status: int = 0,
        code: str = "",
        message: str = "",
        count: int = 1,
        retry_after: int | None = None,
        delay: float = 0.0,
    ) -> Fault:
        return self.add_rule(
            Fault(method.upper(), path_pattern, status, code, message, count, retry_after, delay)
        )

    def add_rule(self, fault: Fault) -> Fault:
        with self._lock:
            self._rules.append(fault)
        return fault

    def throttle(self, method: str, path_pattern: str, *, limit: int, window_seconds: float,
                 policy: str) -> Throttle:
        throttle = Throttle(method.upper(), path_pattern, limit, window_seconds, policy)
        with self._lock:
            self._throttles.append(throttle)
        return throttle

    def count(self, method: str, path: str) -> dict[str, str]:
        """Throttles' headers for an answer to this request; ArmError 429 when one is over."""
        headers: dict[str, str] = {}
        with self._lock:
            for throttle in self._throttles:
                headers |= throttle.count(method, path, time.monotonic())
        return headers

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()
            self._interrupts.clear()
            self._throttles.clear()

    def take(self, method: str, path: str) -> Fault | None:
        """The first rule with deliveries left that matches, with one delivery spent."""
        with self._lock:
            for fault in self._rules:
                if fault.count > 0 and fault.matches(method, path):
                    fault.count -= 1
                    fault.matched += 1
                    return fault
        return None

    def apply(self, method: str, path: str) -> None:
        fault = self.take(method, path)
        if fault is None:
            return
        if fault.delay:
            time.sleep(fault.delay)
        if fault.status:
            raise fault.error(path)

    def to_json(self) -> list[dict[str, Any]]:
        with self._lock:
            return [
                {
                    "method": f.method,
                    "pathPattern": f.path_pattern,
                    "status": f.status,
                    "code": f.code,
                    "remaining": f.count,
                    "matched": f.matched,
                }
                for f in self._rules
            ]


@dataclass(frozen=True)
class LoggedRequest:
    """One request the emulator answered. `kind` names what was asked, e.g.
    `PUT Microsoft.Storage/storageAccounts`, `POST Microsoft.Compute/virtualMachines/runCommand`,
    `GET operation` for long-running-operation polls."""

    at: float
    method: str
    path: str
    api_version: str | None
    kind: str
    status: int
    request_id: str
    caller: str = ""  # the object id of who sent it (empty: no valid token)

    def to_json(self) -> dict[str, Any]:
        return {
            "at": self.at,
            "method": self.method,
            "path": self.path,
            "apiVersion": self.api_version,
            "kind": self.kind,
            "status": self.status,
            "requestId": self.request_id,
            "caller": self.caller,
        }


@dataclass
class RequestLog:
    entries: list[LoggedRequest] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, entry: LoggedRequest) -> None:
        with self._lock:
            self.entries.append(entry)

    def clear(self) -> None:
        with self._lock:
            self.entries.clear()

    def snapshot(self) -> list[LoggedRequest]:
        with self._lock:
            return list(self.entries)

    def count(self, kind: str | None = None, *, method: str | None = None) -> int:
        """How many requests of a kind (exact, or every kind when None) and method were answered."""
        return sum(
            1
            for e in self.snapshot()
            if (kind is None or e.kind == kind) and (method is None or e.method == method)
        )

    def kinds(self) -> dict[str, int]:
        counted: dict[str, int] = {}
        for entry in self.snapshot():
            counted[entry.kind] = counted.get(entry.kind, 0) + 1
        return counted
