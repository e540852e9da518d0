"""Shared fixtures: Azurite once per run on free ports, a fresh set of tables per test, the
function app indexed as the host indexes it, and an HTTP client that calls the indexed functions."""

from __future__ import annotations

import contextlib
import json
import os
import uuid
from collections.abc import Callable, Iterator, Mapping
from typing import Any
from urllib.parse import urlencode

import pytest
from azure.core.exceptions import ResourceNotFoundError
from azure.storage.queue import QueueClient, TextBase64DecodePolicy

from local.azurite import Azurite
from local.emulator import Config, LocalAzure
from local.host import FunctionIndex
from local.inbox import Inbox
from local.prices import RetailPricesStandIn
from shared import bootstrap
from shared.bootstrap import Container
from shared.domain.messages import OPERATIONS_QUEUE, POISON_QUEUE
from shared.domain.operations import Patience
from shared.settings import Settings
from tests.fakes import FakeClock

SUBSCRIPTION = "6e0b3f2a-5a43-4b7e-9a57-3f0c2d7d1c11"
DEFAULT_GROUP = "rg-default"


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """With AZLIN_NO_SKIPS=1 (CI), a skipped test fails the run: CI has everything tests need."""
    if os.environ.get("AZLIN_NO_SKIPS") == "1" and exitstatus == 0:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        skipped = reporter.stats.get("skipped", []) if reporter else []
        if skipped:
            print(f"\n{len(skipped)} test(s) skipped, and AZLIN_NO_SKIPS=1 forbids skips")
            session.exitstatus = 1


@pytest.fixture(scope="session")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Azurite on free loopback ports; yields its connection string."""
    try:
        storage = Azurite(tmp_path_factory.mktemp("azurite") / "azurite.log")
    except FileNotFoundError as missing:
        pytest.fail(str(missing), pytrace=False)
    yield storage.connection_string
    storage.stop()


class Webhook(Inbox):
    """An Event Grid subscriber: records every posted array."""

    def __init__(self) -> None:
        super().__init__(path="/runtime/webhooks/eventgrid?functionName=f")

    @property
    def posts(self) -> list[list[dict[str, Any]]]:
        return self.accepted

    def events(self) -> list[dict[str, Any]]:
        return [event for post in self.posts for event in post]


@pytest.fixture(scope="session")
def webhook() -> Iterator[Webhook]:
    hook = Webhook()
    yield hook
    hook.stop()


@pytest.fixture(scope="session")
def local_azure(tmp_path_factory: pytest.TempPathFactory, webhook: Webhook) -> Iterator[LocalAzure]:
    with LocalAzure(tmp_path_factory.mktemp("azure"), Config(event_webhook=webhook.url)) as azure:
        yield azure


@pytest.fixture(scope="session")
def retail_prices() -> Iterator[RetailPricesStandIn]:
    """The Retail Prices API's stand-in, two items a page so that every lookup follows pages."""
    prices = RetailPricesStandIn(page_size=2)
    yield prices
    prices.stop()


@pytest.fixture
def environment(azurite: str, local_azure: LocalAzure, retail_prices: RetailPricesStandIn) -> dict[str, str]:
    """App settings for one test: its own tables (a unique prefix) on the shared Azurite, and
    Resource Manager at the shared local emulator."""
    return {
        "AzureWebJobsStorage": azurite,
        "AZURE_SUBSCRIPTION_ID": SUBSCRIPTION,
        "DEFAULT_RESOURCE_GROUP": DEFAULT_GROUP,
        "STATE_TABLE_PREFIX": "t" + uuid.uuid4().hex[:16],
        "ARM_ENDPOINT": local_azure.url,
        "ARM_CA_BUNDLE": str(local_azure.ca_path),
        "ARM_CREDENTIAL": "emulator",
        "RETAIL_PRICES_ENDPOINT": retail_prices.url,
    }


@pytest.fixture
def settings(environment: dict[str, str]) -> Settings:
    return Settings.from_environ(environment)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def make_app(settings: Settings, clock: FakeClock) -> Iterator[Callable[..., Container]]:
    """Build and install the process-wide container, with test handlers if given. The shared
    `operations` queue is emptied so each test sees only its own messages."""
    def build(handlers: Mapping[Any, Any] | None = None, app_settings: Settings | None = None,
              heartbeat_seconds: float | None = None) -> Container:
        # A VM agent that is not ready is looked at again at once (the fake clock decides the
        # deadline); the growth of the real delays is a unit test.
        container = Container(app_settings or settings, clock=clock, handlers=handlers,
                              heartbeat_seconds=heartbeat_seconds,
                              arm_options={"polling_interval": 0, "retry_total": 0},
                              patience=Patience(first_delay_seconds=0, max_delay_seconds=0))
        container.queue.check()  # creates the queue
        container.queue.client.clear_messages()
        poison = QueueClient.from_connection_string(container.settings.storage.connection_string or "",
                                                    POISON_QUEUE)
        with contextlib.suppress(ResourceNotFoundError):
            poison.clear_messages()
        bootstrap.use(container)
        return container

    yield build
    bootstrap.use(None)


@pytest.fixture
def app(make_app: Callable[..., Container]) -> Container:
    return make_app()


@pytest.fixture(scope="session")
def functions() -> FunctionIndex:
    import function_app

    return FunctionIndex(function_app.app)


class Answer:
    """An HTTP answer from an indexed function."""

    def __init__(self, response: Any) -> None:
        self.status = response.status_code
        self.headers = dict(response.headers)
        self.mimetype = response.mimetype
        self.body = response.get_body()

    def json(self) -> Any:
        return json.loads(self.body)

    def __repr__(self) -> str:
        return f"<Answer {self.status} {self.body[:300]!r}>"


class Client:
    """Calls the function app through its index, as the host would route the request."""

    base = "https://azlin.test"

    def __init__(self, index: FunctionIndex) -> None:
        self.index = index

    def call(self, method: str, path: str, body: Any = None, *, query: Mapping[str, str] | None = None,
             headers: Mapping[str, str] | None = None, raw: bytes | None = None) -> Answer:
        url = self.base + path + (f"?{urlencode(query)}" if query else "")
        data = raw if raw is not None else (b"" if body is None else json.dumps(body).encode())
        return Answer(self.index.http(method, url, body=data, headers=headers))

    def get(self, path: str, **kw: Any) -> Answer:
        return self.call("GET", path, **kw)

    def post(self, path: str, body: Any = None, **kw: Any) -> Answer:
        return self.call("POST", path, body, **kw)

    def put(self, path: str, body: Any = None, **kw: Any) -> Answer:
        return self.call("PUT", path, body, **kw)

    def patch(self, path: str, body: Any = None, **kw: Any) -> Answer:
        return self.call("PATCH", path, body, **kw)

    def delete(self, path: str, **kw: Any) -> Answer:
        return self.call("DELETE", path, **kw)


@pytest.fixture
def api(app: Container, functions: FunctionIndex) -> Client:
    return Client(functions)


@pytest.fixture
def queued(app: Container) -> Callable[[], list[str]]:
    """The operation ids waiting on the `operations` queue (peeked, not consumed)."""
    assert app.settings.storage.connection_string
    client = QueueClient.from_connection_string(app.settings.storage.connection_string, OPERATIONS_QUEUE,
                                                message_decode_policy=TextBase64DecodePolicy())

    def peek() -> list[str]:
        return [json.loads(m.content)["operationId"] for m in client.peek_messages(max_messages=32)]

    return peek
