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

from local import identities
from local.azurite import Azurite
from local.emulator import Config, LocalAzure
from local.host import FunctionIndex
from local.inbox import Inbox
from local.prices import RetailPricesStandIn
from local.rest import ArmRest
from shared import bootstrap
from shared.bootstrap import Container
from shared.domain.messages import OPERATIONS_QUEUE, POISON_QUEUE
from shared.domain.operations import Patience
from shared.settings import Settings
from tests.contract.documented import check_answer
from tests.fakes import FakeClock

SUBSCRIPTION = "6e0b3f2a-5a43-4b7e-9a57-3f0c2d7d1c11"
OTHER_SUBSCRIPTION = "0b6f1e2d-3c4a-4d5e-8f70-91a2b3c4d5e6"
DEFAULT_GROUP = "rg-default"
ADMIN = "alice"  # the tests' own set-up acts as alice: Owner of both subscriptions


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Lines a test recorded as its `summary` property (the Schemathesis run's summary), shown
    whether it passed or failed, with pytest-xdist too (properties travel in the reports)."""
    for status in ("passed", "failed"):
        for report in terminalreporter.stats.get(status, []):
            for name, value in getattr(report, "user_properties", ()):
                if name == "summary" and report.when == "call":
                    terminalreporter.write_line(f"{report.nodeid}: {value}")


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
        identities.register(azure.emulator, SUBSCRIPTION)
        identities.person(azure.emulator, ADMIN, roles=[("Owner", f"/subscriptions/{SUBSCRIPTION}"),
                                                         ("Owner", f"/subscriptions/{OTHER_SUBSCRIPTION}")])
        rest = arm_as(azure)
        rest.put(rest.group_path(DEFAULT_GROUP), {"location": "eastus"})  # DEFAULT_RESOURCE_GROUP
        identities.manage(azure.emulator, SUBSCRIPTION, DEFAULT_GROUP)
        Client.alice = identities.token_source(azure.emulator, ADMIN)
        Client.azure = azure
        yield azure


@pytest.fixture(scope="session")
def app_identity(local_azure: LocalAzure) -> identities.Identities:
    return identities.register(local_azure.emulator, SUBSCRIPTION)


def object_id(name: str) -> str:
    """The object id of a principal of the session's tenant (alice, bob, ...)."""
    assert Client.azure is not None, "the session's emulator is not started"
    return Client.azure.emulator.tenant.get(name).object_id


def existing_group(group: str, region: str = "westeurope") -> str:
    """A resource group the session's alice made and the app manages (made once, then kept)."""
    azure = Client.azure
    assert azure is not None, "the session's emulator is not started"
    rest = arm_as(azure)
    if azure.emulator.get(rest.group_path(group)) is None:
        rest.put(rest.group_path(group), {"location": region})
        identities.manage(azure.emulator, SUBSCRIPTION, group)
    return group


def arm_as(azure: LocalAzure, name: str = ADMIN, subscription: str = SUBSCRIPTION) -> ArmRest:
    """Resource Manager called as `name` (a person of the emulator's tenant)."""
    return ArmRest(azure.url, str(azure.ca_path), subscription,
                   identities.token_source(azure.emulator, name, arm=True))


def managed_group(azure: LocalAzure, region: str, prefix: str = "rg-") -> str:
    """A new resource group (made by alice) that the app manages, as infra/ grants it."""
    group = prefix + uuid.uuid4().hex[:8]
    rest = arm_as(azure)
    rest.put(rest.group_path(group), {"location": region})
    identities.manage(azure.emulator, SUBSCRIPTION, group)
    return group


@pytest.fixture(scope="session")
def retail_prices() -> Iterator[RetailPricesStandIn]:
    """The Retail Prices API's stand-in, two items a page so that every lookup follows pages."""
    prices = RetailPricesStandIn(page_size=2)
    yield prices
    prices.stop()


@pytest.fixture
def environment(azurite: str, local_azure: LocalAzure, retail_prices: RetailPricesStandIn,
                app_identity: identities.Identities) -> dict[str, str]:
    """App settings for one test: its own tables (a unique prefix) on the shared Azurite, and
    Resource Manager and the tenant at the shared local emulator."""
    return {
        "AzureWebJobsStorage": azurite,
        "AZURE_SUBSCRIPTION_ID": SUBSCRIPTION,
        "DEFAULT_RESOURCE_GROUP": DEFAULT_GROUP,
        "STATE_TABLE_PREFIX": "t" + uuid.uuid4().hex[:16],
        "ARM_ENDPOINT": local_azure.url,
        "ARM_CA_BUNDLE": str(local_azure.ca_path),
        "RETAIL_PRICES_ENDPOINT": retail_prices.url,
        **app_identity.app_settings(),
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
              heartbeat_seconds: float | None = None, tracing: Any = None) -> Container:
        # A VM agent that is not ready is looked at again at once (the fake clock decides the
        # deadline); the growth of the real delays is a unit test.
        container = Container(app_settings or settings, clock=clock, handlers=handlers,
                              heartbeat_seconds=heartbeat_seconds,
                              arm_options={"polling_interval": 0, "retry_total": 0},
                              patience=Patience(first_delay_seconds=0, max_delay_seconds=0),
                              tracing=tracing)
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
    """Calls the function app through its index, as the host would route the request, with a
    bearer token from `token`: alice's unless another is given, none with `anonymous=True`."""

    base = "https://azlin.test"
    alice: Callable[[], str] | None = None  # set by the session's emulator
    azure: LocalAzure | None = None

    def __init__(self, index: FunctionIndex, token: Callable[[], str] | None = None, *,
                 anonymous: bool = False, contract: bool = True) -> None:
        self.index = index
        self.token = None if anonymous else (token or Client.alice)
        self.contract = contract  # False: the app runs stand-in handlers, whose results are no kind's

    def call(self, method: str, path: str, body: Any = None, *, query: Mapping[str, str] | None = None,
             headers: Mapping[str, str] | None = None, raw: bytes | None = None) -> Answer:
        url = self.base + path + (f"?{urlencode(query)}" if query else "")
        data = raw if raw is not None else (b"" if body is None else json.dumps(body).encode())
        sent = dict(headers or {})
        if self.token is not None and not any(k.lower() == "authorization" for k in sent):
            sent["Authorization"] = f"Bearer {self.token()}"
        answer = Answer(self.index.http(method, url, body=data, headers=sent))
        # Every answer a test sees is one the OpenAPI document gives (tests/contract/documented.py).
        if self.contract:
            check_answer(method, path, answer.status, answer.headers, answer.mimetype, answer.body)
        return answer

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
    """The API called as alice."""
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
