"""Event Grid deliveries as the host's webhook receives them: a JSON array of events in the Event
Grid schema or the CloudEvents 1.0 schema, turned into what the Python worker hands a function."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import azure.functions as func
from azure.functions import meta
from azure.functions.eventgrid import EventGridEventInConverter

VALIDATION_EVENT = "Microsoft.EventGrid.SubscriptionValidationEvent"


def parse_batch(body: bytes) -> list[dict[str, Any]]:
    """The posted events; ValueError unless the body is a JSON array of events."""
    try:
        events = json.loads(body)
    except ValueError as err:  # also UnicodeDecodeError
        raise ValueError(f"the body is not JSON: {err}") from None
    if not isinstance(events, list):
        raise ValueError("Event Grid posts a JSON array of events")
    for event in events:
        _check_event(event)
    return events


def trigger_event(event: Mapping[str, Any]) -> func.EventGridEvent | func.CloudEvent:
    """What the function receives: the worker's own converter picks the schema (`specversion`
    means CloudEvents) and parses the event time."""
    _check_event(event)
    decoded = EventGridEventInConverter.decode(meta.Datum(json.dumps(event), "json"), trigger_metadata=None)
    assert isinstance(decoded, func.EventGridEvent | func.CloudEvent)
    return decoded


def validation_code(events: list[dict[str, Any]]) -> str:
    """The code a subscription validation handshake must echo back."""
    for event in events:
        if event.get("eventType") == VALIDATION_EVENT and isinstance(event.get("data"), dict):
            return str(event["data"].get("validationCode", ""))
    raise ValueError(f"a validation request carries a {VALIDATION_EVENT}")


def _check_event(event: Any) -> None:
    if not (isinstance(event, dict) and "id" in event and ("specversion" in event or "eventType" in event)):
        raise ValueError("each event is an object with an id and an eventType (or a CloudEvents specversion)")
