"""The function app as the host indexes it: every route of the design, the queue triggers, the
timers and the Event Grid trigger. A blueprint that is declared but not registered would vanish
silently; this catches it."""

from __future__ import annotations

import json

import function_app
from local.host import FunctionIndex

# The design's HTTP table (docs/design.md), route by route, and issue 6's additions.
DESIGN_ROUTES = {
    ("PUT", "resource-groups/{group}/default-storage"), ("GET", "resource-groups/{group}/default-storage"),
    ("DELETE", "resource-groups/{group}/default-storage"), ("GET", "digests/latest"),
    ("POST", "storage"), ("GET", "storage"), ("GET", "storage/{name}"), ("GET", "storage/{name}/status"),
    ("PATCH", "storage/{name}"), ("DELETE", "storage/{name}"), ("POST", "storage/{name}/attachments"),
    ("GET", "vms/{vm}/attachment"), ("DELETE", "vms/{vm}/attachment"), ("GET", "operations/{id}"),
    ("GET", "costs"), ("GET", "storage/{name}/cloud-init"), ("GET", "health"), ("GET", "openapi.json"),
    # access control: who may use a storage, and what was asked of a storage or a VM
    ("GET", "storage/{name}/access"), ("PUT", "storage/{name}/access"), ("GET", "operations"),
    # issue 13: checking a VM's live mount is an operation, never inside a request
    ("POST", "vms/{vm}/attachment/verify"),
    # issue 14: a delete is kept for undelete; share snapshots, and a restore from one
    ("POST", "storage/{name}/undelete"), ("GET", "storage/{name}/snapshots"), ("POST", "storage/{name}/snapshots"),
    ("POST", "storage/{name}/snapshots/{snapshot}/restore"),
    # issue 16: today's cost digest made (again) on demand
    ("POST", "digests"),
}


def test_http_functions_cover_exactly_the_design_routes(functions: FunctionIndex) -> None:
    registered = {(method, route.template) for route in functions.http_routes for method in route.methods}
    assert registered == DESIGN_ROUTES


def test_the_host_asks_no_function_key_the_app_asks_for_a_token(functions: FunctionIndex) -> None:
    """A function key would let its holder act with the service's whole power: no route takes
    one. Every route but health and the OpenAPI document checks the caller's bearer token (the
    tests of tests/functions/test_access.py call each without one)."""
    assert {route.auth_level for route in functions.http_routes} == {"ANONYMOUS"}


def test_queue_timer_and_event_grid_triggers(functions: FunctionIndex) -> None:
    assert set(functions.queue_triggers) == {"operations", "operations-poison"}
    assert set(functions.timers) == {"requeue_stalled_operations", "reconcile_attachments", "refresh_costs",
                                     "send_cost_digest", "snapshot_shares", "purge_deleted_storage",
                                     "remove_old_records"}
    assert functions.timers["reconcile_attachments"][0].schedule == "0 */15 * * * *"
    assert functions.timers["snapshot_shares"][0].schedule == "0 0 2 * * *"
    assert set(functions.event_grid) == {"on_resource_event"}


def test_function_names_are_unique_and_bindings_use_the_app_storage_setting() -> None:
    index = FunctionIndex(function_app.app)
    assert len(index.names) == len(index.http_routes) + 2 + 7 + 1  # routes, queues, timers, Event Grid
    function_app.app.functions_bindings = None
    for function in function_app.app.get_functions():
        for binding in json.loads(function.get_function_json())["bindings"]:
            if binding["type"].startswith("queue"):
                assert binding["connection"] == "AzureWebJobsStorage"


def test_routes_match_like_the_host(functions: FunctionIndex) -> None:
    matched = functions.match("GET", "/api/storage/teamhome/status")
    assert matched is not None and matched[0].name == "storage_status" and matched[1] == {"name": "teamhome"}
    matched = functions.match("DELETE", "/api/vms/vm%2D1/attachment")
    assert matched is not None and matched[1] == {"vm": "vm-1"}
    assert functions.match("PUT", "/api/storage") is None
    assert functions.match("GET", "/storage") is None


def test_host_json_declares_what_the_code_relies_on() -> None:
    with open("host.json") as file:
        host = json.load(file)
    assert host["version"] == "2.0"
    assert host["extensionBundle"] == {"id": "Microsoft.Azure.Functions.ExtensionBundle",
                                       "version": "[4.*, 5.0.0)"}
    queues = host["extensions"]["queues"]
    assert queues["messageEncoding"] == "base64"  # what shared.adapters.queues sends
    assert queues["maxDequeueCount"] == 5  # deliveries before operations-poison
    assert host["extensions"]["http"]["routePrefix"] == "api"  # Location headers say /api/...
    hours, minutes, seconds = (int(part) for part in host["functionTimeout"].split(":"))
    assert 0 < hours * 3600 + minutes * 60 + seconds <= 3600


def test_nothing_local_or_test_only_is_deployed() -> None:
    with open(".funcignore") as file:
        ignored = {line.strip() for line in file if line.strip() and not line.startswith("#")}
    assert {"local/", "tests/", "bench/", ".venv/", "node_modules/", "local.settings.json"} <= ignored


def test_the_event_grid_trigger_ignores_every_event_but_a_vm_write(functions: FunctionIndex) -> None:
    """Run-command, extension and delete events, and other types, are acknowledged untouched:
    the handler returns before it needs any setting or dependency."""
    vm = "/subscriptions/S/resourceGroups/rg1/providers/Microsoft.Compute/virtualMachines/vm1"
    for operation, event_type, subject in (
            ("Microsoft.Compute/virtualMachines/runCommands/write", "ResourceWriteSuccess", vm + "/runCommands/x"),
            ("Microsoft.Compute/virtualMachines/extensions/write", "ResourceWriteSuccess", vm + "/extensions/y"),
            ("Microsoft.Compute/virtualMachines/delete", "ResourceDeleteSuccess", vm),
            ("Microsoft.Compute/virtualMachines/write", "ResourceWriteFailure", vm)):
        functions.publish("on_resource_event", {
            "id": "6f0c", "topic": "/subscriptions/S", "subject": subject, "dataVersion": "2",
            "eventType": f"Microsoft.Resources.{event_type}",
            "data": {"operationName": operation, "resourceUri": subject}})
