"""Keeps the app's Run Command calls within a budget shared by all its instances.

A pipeline policy on the Compute client: before each attempt of a Run Command call it takes a
token from the call's bucket (shared.domain.budget, kept in Table Storage), sleeping while the
bucket is empty; a 429 empties the bucket for its Retry-After, so every instance slows down; a
response whose `x-ms-ratelimit-remaining-resource` shows a policy at 0 does the same for a second.
A wait longer than `max_wait_seconds` is not slept in the worker: it raises Throttled, and the
operation is looked at again later (troubleshooting-throttling-errors.md: honour Retry-After)."""

from __future__ import annotations

import logging
import math
import re
import time
from collections.abc import Callable
from typing import Any

from azure.core.pipeline import PipelineRequest, PipelineResponse
from azure.core.pipeline.policies import SansIOHTTPPolicy

from shared.domain.errors import ErrorCode, TransientError
from shared.ports import CallBudget

log = logging.getLogger(__name__)
RUN_COMMAND_WRITE, RUN_COMMAND_READ = "runCommandWrite", "runCommandRead"
_RUN_COMMAND = re.compile(r"/providers/Microsoft\.Compute/virtualMachines/[^/]+/runCommands(/|\?|$)", re.I)
_REMAINING = re.compile(r";\s*(\d+)")


def call_kind(method: str, url: str) -> str | None:
    """The budget a request draws on: Run Command writes (PUT, DELETE) and reads."""
    if not _RUN_COMMAND.search(url):
        return None
    return RUN_COMMAND_READ if method.upper() == "GET" else RUN_COMMAND_WRITE


class CallBudgetPolicy(SansIOHTTPPolicy):  # type: ignore[type-arg]
    def __init__(self, budget: CallBudget, *, max_wait_seconds: float = 30,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.budget = budget
        self.max_wait_seconds = max_wait_seconds
        self.sleep = sleep

    def on_request(self, request: PipelineRequest[Any]) -> None:
        kind = call_kind(request.http_request.method, request.http_request.url)
        if kind is None:
            return
        waited = 0.0
        while (wait := self.budget.take(kind)) > 0:
            if waited + wait > self.max_wait_seconds:
                raise TransientError(
                    f"The service's budget of {kind} calls to Resource Manager is spent for now.",
                    causes=[f"waited {waited:.0f} s; the next call may go in {wait:.0f} s"],
                    try_hint="nothing to do: the operation is looked at again then",
                    code=ErrorCode.THROTTLED, retry_after=math.ceil(wait))
            self.sleep(wait)
            waited += wait
        if waited:
            log.info("%s: waited %.1f s for the call budget", kind, waited)

    def on_response(self, request: PipelineRequest[Any], response: PipelineResponse[Any, Any]) -> None:
        kind = call_kind(request.http_request.method, request.http_request.url)
        if kind is None:
            return
        headers = response.http_response.headers
        if response.http_response.status_code == 429:
            seconds = _seconds(headers.get("Retry-After")) or 10.0
            log.warning("%s throttled by Azure: every instance holds off for %.0f s", kind, seconds)
            self.budget.hold_off(kind, seconds)
            return
        policies = headers.get("x-ms-ratelimit-remaining-resource") or ""
        remaining = [int(n) for n in _REMAINING.findall(policies)]
        if remaining and min(remaining) == 0:
            self.budget.hold_off(kind, 1.0)


def _seconds(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None
