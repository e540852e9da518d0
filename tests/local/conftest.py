"""Fixtures for the local Functions host: a host on a free port per test, stopped after it, and a
small HTTP client over a real socket."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import azure.functions as func
import pytest

from local.host import FunctionsHost

# host.json for quick queue tests: failed messages visible again at once, polls at most 0.2 s apart.
FAST_QUEUES = {"extensions": {"queues": {"visibilityTimeout": "00:00:00", "maxPollingInterval": "00:00:00.2"}}}


@dataclass
class Answer:
    status: int
    headers: Mapping[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def call(url: str, method: str = "GET", body: Any = None, headers: Mapping[str, str] | None = None) -> Answer:
    """One HTTP request; `body` is sent as is when bytes, else as JSON."""
    data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method, headers=dict(headers or {}))
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return Answer(response.status, response.headers, response.read())
    except urllib.error.HTTPError as err:
        return Answer(err.code, err.headers, err.read())


def eventually(condition: Callable[[], Any], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {timeout} s")
        time.sleep(0.02)


@pytest.fixture
def serve() -> Iterator[Callable[..., FunctionsHost]]:
    """serve(app, environ=..., host_config=...) -> a started host on a free port."""
    hosts: list[FunctionsHost] = []

    def start(app: func.FunctionApp, **options: Any) -> FunctionsHost:
        host = FunctionsHost(app, port=0, **options)
        host.start()
        hosts.append(host)
        return host

    yield start
    for host in hosts:
        host.stop()


@pytest.fixture
def queue_name() -> str:
    """A queue of this test's own on the shared Azurite."""
    return "q" + uuid.uuid4().hex[:16]
