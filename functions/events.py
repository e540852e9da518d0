"""Event Grid trigger for Resource Manager events (VM writes). Auto-attach lands with its issue;
until then each event is logged and acknowledged."""

from __future__ import annotations

import logging

import azure.functions as func

bp = func.Blueprint()
log = logging.getLogger(__name__)


@bp.function_name("on_resource_event")
@bp.event_grid_trigger(arg_name="event")
def on_resource_event(event: func.EventGridEvent) -> None:
    log.info("event %s %s for %s: auto-attach is not served by this version yet",
             event.id, event.event_type, event.subject)
