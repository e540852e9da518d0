"""Event Grid trigger for Resource Manager events: a VM written (created or updated) with the
auto-attach tag gets an attach queued. Both delivery schemas arrive here (Event Grid and
CloudEvents). Only a failure worth retrying raises (Event Grid then delivers again)."""

from __future__ import annotations

import logging
from typing import Any

import azure.functions as func

from . import core

bp = func.Blueprint()
log = logging.getLogger(__name__)


@bp.function_name("on_resource_event")
@bp.event_grid_trigger(arg_name="event")
def on_resource_event(event: func.EventGridEvent) -> None:
    event_type = getattr(event, "event_type", None) or getattr(event, "type", None) or ""
    written = core.events.vm_written(str(event.id), str(event_type), str(event.subject or ""), _data(event))
    if written is None:
        return
    try:
        core.bootstrap.container().auto_attach.on_vm_written(written)
    except core.errors.DomainError as err:  # retrying the same event cannot help
        log.warning("event %s for VM %s not acted on: %s", event.id, written.vm, err)


def _data(event: Any) -> Any:
    try:
        return event.get_json()
    except ValueError:
        return None
