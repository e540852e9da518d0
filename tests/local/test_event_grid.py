"""The Event Grid webhook as Event Grid calls it: arrays of events in either schema, the
subscription validation handshake, and the status codes Event Grid retries on."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import azure.functions as func
import pytest

from local.host import FunctionsHost
from tests.local.conftest import call

VM = "/subscriptions/S/resourceGroups/rg1/providers/Microsoft.Compute/virtualMachines/vm1"
NOTIFICATION = {"aeg-event-type": "Notification", "Content-Type": "application/json"}


def event(number: int) -> dict[str, Any]:
    return {"id": f"e{number}", "topic": "/subscriptions/S", "subject": VM, "dataVersion": "2",
            "eventType": "Microsoft.Resources.ResourceWriteSuccess", "eventTime": "2024-03-01T12:00:00.1234567Z",
            "metadataVersion": "1", "data": {"resourceUri": VM, "number": number}}


@pytest.fixture
def received() -> list[Any]:
    return []


@pytest.fixture
def url(serve: Callable[..., FunctionsHost], received: list[Any]) -> str:
    app = func.FunctionApp()

    @app.event_grid_trigger(arg_name="event")
    def on_event(event: func.EventGridEvent) -> None:
        received.append(event)

    @app.event_grid_trigger(arg_name="event")
    def failing(event: func.EventGridEvent) -> None:
        raise RuntimeError("bug")

    return f"{serve(app).url}/runtime/webhooks/eventgrid?functionName="


def test_each_event_of_a_delivery_reaches_the_function(url: str, received: list[Any]) -> None:
    answer = call(url + "on_event", "POST", [event(1), event(2)], headers=NOTIFICATION)
    assert answer.status == 200
    assert [e.id for e in received] == ["e1", "e2"]
    first = received[0]
    assert isinstance(first, func.EventGridEvent)
    assert (first.event_type, first.subject, first.topic, first.data_version) == (
        "Microsoft.Resources.ResourceWriteSuccess", VM, "/subscriptions/S", "2")
    assert first.get_json() == {"resourceUri": VM, "number": 1}
    assert first.event_time == datetime(2024, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)


def test_cloud_events_arrive_as_cloud_events(url: str, received: list[Any]) -> None:
    cloud = {"specversion": "1.0", "id": "c1", "source": "/subscriptions/S", "type": "Microsoft.Resources.ResourceWriteSuccess",
             "time": "2024-03-01T12:00:00Z", "subject": VM, "datacontenttype": "application/json",
             "data": {"resourceUri": VM}}
    # No aeg-event-type header: a notification, as for deliveries that omit it.
    assert call(url + "ON_EVENT", "POST", [cloud]).status == 200
    (got,) = received
    assert isinstance(got, func.CloudEvent)
    assert (got.id, got.source, got.type, got.subject) == ("c1", "/subscriptions/S", cloud["type"], VM)
    assert got.time == datetime(2024, 3, 1, 12, tzinfo=UTC) and got.get_json() == {"resourceUri": VM}


def test_the_subscription_validation_handshake_echoes_the_code(url: str, received: list[Any]) -> None:
    validation = {"id": "v1", "topic": "/subscriptions/S", "subject": "", "dataVersion": "2",
                  "eventType": "Microsoft.EventGrid.SubscriptionValidationEvent", "eventTime": "2024-03-01T12:00:00Z",
                  "data": {"validationCode": "512d38b6-c7b8-40c8-89fe-f46f9e9622b6"}}
    answer = call(url + "on_event", "POST", [validation], headers={"aeg-event-type": "SubscriptionValidation"})
    assert answer.status == 200
    assert answer.json() == {"validationResponse": "512d38b6-c7b8-40c8-89fe-f46f9e9622b6"}
    assert received == []

    handshake = call(url + "on_event", "OPTIONS", headers={"WebHook-Request-Origin": "eventgrid.azure.net"})
    assert handshake.status == 200 and handshake.headers["WebHook-Allowed-Origin"] == "eventgrid.azure.net"


@pytest.mark.parametrize("body", [b"", b"not json", b'{"id": "e1", "eventType": "x"}', b"[1, 2]",
                                  b'[{"eventType": "no id"}]', b'[{"id": "no type"}]', b"\xff\xfe"])
def test_malformed_deliveries_are_400s_and_deliver_nothing(url: str, received: list[Any], body: bytes) -> None:
    assert call(url + "on_event", "POST", body, headers=NOTIFICATION).status == 400
    assert received == []


def test_a_failing_function_is_a_500_so_event_grid_retries(url: str) -> None:
    assert call(url + "failing", "POST", [event(1)], headers=NOTIFICATION).status == 500


def test_unknown_functions_are_404s_and_the_path_ignores_case(url: str) -> None:
    assert call(url + "nobody", "POST", [event(1)], headers=NOTIFICATION).status == 404
    assert call(url.replace("eventgrid", "EventGrid") + "on_event", "POST", [event(1)]).status == 200
