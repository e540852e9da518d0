"""Resource Manager's own rules, fault injection, the request log, the control API and the Event
Grid events the emulator posts for every successful write, delete and action."""

from __future__ import annotations

import json
import ssl
import time
import urllib.error
import urllib.request
from typing import Any

import pytest
from azure.core.exceptions import HttpResponseError
from azure.mgmt.storage.models import StorageAccountCheckNameAvailabilityParameters

from local.rest import ArmRequestError
from tests.conftest import SUBSCRIPTION
from tests.emulator.conftest import REGION, Azure, needs_sandbox
from tests.emulator.test_storage_provider import nfs_account


def raw(
    azure: Azure, method: str, path: str, *, headers: dict[str, str] | None = None, body: bytes | None = None
) -> tuple[int, dict[str, str], Any]:
    context = ssl.create_default_context(cafile=str(azure.local.ca_path))
    request = urllib.request.Request(azure.local.url + path, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, context=context) as answer:
            data = answer.read()
            return answer.status, dict(answer.headers), json.loads(data) if data else None
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), json.loads(error.read() or b"null")


def auth(azure: Azure) -> dict[str, str]:
    return {"Authorization": f"Bearer {azure.rest.token()}"}


def test_api_version_is_required_and_errors_have_arms_shape(azure: Azure) -> None:
    status, headers, body = raw(azure, "GET", azure.group_path(), headers=auth(azure))
    assert status == 400
    assert body == {
        "error": {
            "code": "MissingApiVersionParameter",
            "message": "The api-version query parameter (?api-version=) is required for all requests.",
        }
    }
    assert headers["x-ms-request-id"]
    status, _, body = raw(azure, "GET", azure.group_path() + "?api-version=latest", headers=auth(azure))
    assert (status, body["error"]["code"]) == (400, "InvalidApiVersionParameter")


def test_requests_without_a_bearer_token_are_401(azure: Azure) -> None:
    status, _, body = raw(azure, "GET", azure.group_path() + "?api-version=2024-03-01")
    assert (status, body["error"]["code"]) == (401, "AuthenticationFailed")
    status, _, body = raw(
        azure, "GET", azure.group_path() + "?api-version=2024-03-01", headers={"Authorization": "Basic x"}
    )
    assert status == 401


def test_missing_resources_and_parents_are_404_with_arms_wording(azure: Azure) -> None:
    with pytest.raises(ArmRequestError) as missing:
        azure.rest.get(f"{azure.group_path()}/providers/Microsoft.Storage/storageAccounts/nosuch")
    assert missing.value.code == "ResourceNotFound"
    assert (
        f"The Resource 'Microsoft.Storage/storageAccounts/nosuch' under resource group '{azure.group}' "
        "was not found."
    ) in str(missing.value)
    with pytest.raises(ArmRequestError) as no_group:
        azure.rest.get(azure.group_path("rg-nosuch"))
    assert (no_group.value.status, no_group.value.code) == (404, "ResourceGroupNotFound")
    assert azure.rest.call("HEAD", azure.group_path()).status == 204
    with pytest.raises(ArmRequestError) as orphan:
        azure.rest.put(
            f"{azure.group_path()}/providers/Microsoft.Storage/storageAccounts/nosuch/fileServices/default/shares/home",
            {"properties": {}},
        )
    assert orphan.value.code == "ParentResourceNotFound"
    status, _, body = raw(
        azure,
        "PUT",
        f"{azure.group_path()}/providers/Microsoft.Storage/storageAccounts/x1y2z3?api-version=2026-09-01",
        headers={**auth(azure), "Content-Type": "application/json"},
        body=b"{not json",
    )
    assert (status, body["error"]["code"]) == (400, "InvalidRequestContent")


def test_names_are_read_from_the_percent_decoded_path(azure: Azure) -> None:
    group = azure.unique("rg-(decoded)")  # parentheses: clients send them as %28 and %29
    made = azure.rest.put(azure.group_path(group), {"location": REGION})
    assert made["name"] == group and made["id"].endswith(f"/resourceGroups/{group}")
    azure.rest.delete(azure.group_path(group))


def test_injected_throttling_reaches_the_sdk_with_retry_after_then_stops(azure: Azure) -> None:
    check = StorageAccountCheckNameAvailabilityParameters(
        name="someacct", type="Microsoft.Storage/storageAccounts"
    )
    azure.emulator.faults.add(
        "POST", r"/checkNameAvailability$", status=429, code="TooManyRequests", retry_after=7, count=2
    )
    for _ in range(2):
        with pytest.raises(HttpResponseError) as throttled:
            azure.clients.storage.storage_accounts.check_name_availability(account_name=check)
        assert throttled.value.status_code == 429 and throttled.value.error.code == "TooManyRequests"
        assert throttled.value.response.headers["Retry-After"] == "7"
    assert (
        azure.clients.storage.storage_accounts.check_name_availability(account_name=check).name_available
        is True
    )
    assert azure.emulator.requests.count("POST Microsoft.Storage/checkNameAvailability") == 3


@pytest.mark.parametrize(
    ("status", "code"), [(403, "AuthorizationFailed"), (500, "InternalServerError"), (409, "Conflict")]
)
def test_injected_errors_fail_long_running_writes(azure: Azure, status: int, code: str) -> None:
    azure.emulator.faults.add("PUT", r"/storageAccounts/[^/]+$", status=status, code=code)
    with pytest.raises(HttpResponseError) as failed:
        azure.clients.storage.storage_accounts.begin_create(
            azure.group, azure.unique("st"), nfs_account()
        ).result()
    assert (failed.value.status_code, failed.value.error.code) == (status, code)


def test_injected_faults_can_fail_the_polling_and_delay_requests(azure: Azure) -> None:
    azure.emulator.faults.add("GET", r"/asyncoperations/", status=500, code="InternalServerError")
    with pytest.raises(HttpResponseError) as failed:
        azure.clients.storage.storage_accounts.begin_create(
            azure.group, azure.unique("st"), nfs_account()
        ).result()
    assert failed.value.status_code == 500
    azure.emulator.faults.add("GET", r"/resourceGroups/[^/]+$", delay=0.5)
    started = time.monotonic()
    azure.rest.get(azure.group_path())
    assert time.monotonic() - started >= 0.5


@needs_sandbox
def test_injected_agent_not_ready_fails_a_run_command(azure: Azure) -> None:
    azure.vm("vm1", azure.network("vnet1"))
    azure.emulator.faults.add("PUT", r"/runCommands/", status=409, code="VMAgentNotReady")
    with pytest.raises(ArmRequestError) as refused:
        azure.run("vm1", "true\n")
    assert refused.value.code == "VMAgentNotReady"
    assert azure.run("vm1", "echo fine\n")["output"] == "fine\n"


def test_the_control_api_sets_faults_and_reads_the_log(azure: Azure) -> None:
    status, _, _ = raw(
        azure,
        "POST",
        "/_emulator/faults",
        headers={"Content-Type": "application/json"},
        body=json.dumps(
            {
                "method": "GET",
                "pathPattern": "/resourceGroups/",
                "status": 429,
                "code": "TooManyRequests",
                "retryAfter": 1,
                "count": 1,
            }
        ).encode(),
    )
    assert status == 201
    with pytest.raises(ArmRequestError) as throttled:
        azure.rest.get(azure.group_path())
    assert throttled.value.status == 429
    _, _, log = raw(azure, "GET", "/_emulator/requests")
    assert log["kinds"]["GET Microsoft.Resources/resourceGroups"] >= 1
    assert log["value"][-1]["status"] == 429
    status, _, config = raw(
        azure,
        "PATCH",
        "/_emulator/config",
        headers={"Content-Type": "application/json"},
        body=json.dumps({"polls_before_done": 3}).encode(),
    )
    assert status == 200 and config["polls_before_done"] == 3


def wait_for(predicate: Any, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not predicate():
        time.sleep(0.02)


def events_about(azure: Azure, text: str) -> list[dict[str, Any]]:
    return [e for e in azure.webhook.events() if text in e["subject"]]


def test_successful_writes_and_deletes_post_event_grid_events(azure: Azure) -> None:
    name = azure.unique("st")
    azure.clients.storage.storage_accounts.begin_create(azure.group, name, nfs_account()).result()
    azure.clients.storage.storage_accounts.delete(azure.group, name)
    wait_for(lambda: len(events_about(azure, f"/storageAccounts/{name}")) == 2)

    write, delete = events_about(azure, f"/storageAccounts/{name}")
    account_id = f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{azure.group}/providers/Microsoft.Storage/storageAccounts/{name}"
    assert write["eventType"] == "Microsoft.Resources.ResourceWriteSuccess"
    assert write["subject"] == account_id and write["topic"] == f"/subscriptions/{SUBSCRIPTION}"
    assert (write["dataVersion"], write["metadataVersion"]) == ("2", "1")
    data = write["data"]
    assert data["operationName"] == "Microsoft.Storage/storageAccounts/write"
    assert data["resourceUri"] == account_id and data["resourceProvider"] == "Microsoft.Storage"
    assert data["status"] == "Succeeded" and data["subscriptionId"] == SUBSCRIPTION
    assert {"authorization", "claims", "correlationId", "tenantId"} <= set(data)
    assert "httpRequest" not in data  # present only for updates and deletes
    assert delete["eventType"] == "Microsoft.Resources.ResourceDeleteSuccess"
    assert delete["data"]["operationName"] == "Microsoft.Storage/storageAccounts/delete"
    assert delete["data"]["httpRequest"]["method"] == "DELETE"
    assert azure.webhook.headers[-1]["aeg-event-type"] == "Notification"
    assert all(len(post) == 1 for post in azure.webhook.posts)  # one event per request, still an array


def test_failed_writes_post_no_event(azure: Azure) -> None:
    with pytest.raises(HttpResponseError):
        azure.clients.storage.storage_accounts.begin_create(azure.group, "x", nfs_account()).result()
    azure.emulator.events.flush()
    assert events_about(azure, "/storageAccounts/x") == []


@needs_sandbox
def test_vm_and_run_command_events_carry_their_own_operation_names(azure: Azure) -> None:
    azure.vm("vm9", azure.network("vnet1"), tags={"azlin-storage": "st1"})
    azure.run("vm9", "true\n")
    azure.rest.put(
        f"{azure.group_path()}/providers/Microsoft.Compute/virtualMachines/vm9",
        {
            "location": REGION,
            "tags": {"azlin-storage": "st1", "team": "a"},
            "properties": azure.rest.get(
                f"{azure.group_path()}/providers/Microsoft.Compute/virtualMachines/vm9"
            )["properties"],
        },
    )
    wait_for(lambda: len(events_about(azure, "/virtualMachines/vm9")) >= 4)
    names = [
        (e["eventType"].rsplit(".", 1)[1], e["data"]["operationName"])
        for e in events_about(azure, "/virtualMachines/vm9")
    ]
    assert names == [
        ("ResourceWriteSuccess", "Microsoft.Compute/virtualMachines/write"),
        ("ResourceWriteSuccess", "Microsoft.Compute/virtualMachines/runCommands/write"),
        ("ResourceDeleteSuccess", "Microsoft.Compute/virtualMachines/runCommands/delete"),
        ("ResourceWriteSuccess", "Microsoft.Compute/virtualMachines/write"),
    ]
    update = events_about(azure, "/virtualMachines/vm9")[-1]
    assert "httpRequest" in update["data"]  # an update, not a creation


@pytest.mark.parametrize(("path", "body"), [
    ("Microsoft.Storage/storageAccounts/x1y2z3", {"location": REGION, "sku": "Premium_LRS", "kind": "FileStorage"}),
    ("Microsoft.Network/virtualNetworks/v1", {"location": REGION, "properties": "x"}),
    ("Microsoft.Network/virtualNetworks/v1", {"location": REGION, "properties": {
        "addressSpace": {"addressPrefixes": ["10.0.0.0/16"]}, "subnets": ["default"]}}),
    ("Microsoft.Network/virtualNetworks/v1", {"location": REGION, "properties": {
        "addressSpace": {"addressPrefixes": "10.0.0.0/16"}}}),
])
def test_bodies_of_the_wrong_shape_are_400_never_500(azure: Azure, path: str, body: dict[str, Any]) -> None:
    with pytest.raises(ArmRequestError) as refused:
        azure.rest.put(f"{azure.group_path()}/providers/{path}", body)
    assert refused.value.status == 400, refused.value


def test_a_vnet_with_a_bad_inline_subnet_is_refused_at_once(azure: Azure) -> None:
    with pytest.raises(ArmRequestError) as refused:
        azure.rest.put(f"{azure.group_path()}/providers/Microsoft.Network/virtualNetworks/v1", {
            "location": REGION, "properties": {"addressSpace": {"addressPrefixes": ["10.0.0.0/16"]},
                                               "subnets": [{"name": "a", "properties": {"addressPrefix": "10.9.0.0/24"}}]}})
    assert (refused.value.status, refused.value.code) == (400, "NetcfgSubnetRangeOutsideVnet")
    with pytest.raises(ArmRequestError):
        azure.rest.get(f"{azure.group_path()}/providers/Microsoft.Network/virtualNetworks/v1")


@needs_sandbox
def test_one_write_at_a_time_and_no_success_for_what_was_deleted_meanwhile(azure: Azure) -> None:
    azure.vm("vm1", azure.network("vnet1"))
    command = f"{azure.group_path()}/providers/Microsoft.Compute/virtualMachines/vm1/runCommands/slow"
    accepted = azure.rest.call("PUT", command, {"location": REGION, "properties": {"source": {"script": "sleep 3\n"}}})
    assert accepted.status == 201 and accepted.body["properties"]["provisioningState"] == "Creating"
    for method, body in (("PATCH", {"properties": {"timeoutInSeconds": 5}}), ("DELETE", None), ("PUT", {
            "location": REGION, "properties": {"source": {"script": "true\n"}}})):
        with pytest.raises(ArmRequestError) as busy:
            azure.rest.call(method, command, body)
        assert (busy.value.status, busy.value.code) == (409, "AnotherOperationInProgress"), method

    azure.rest.delete(f"{azure.group_path()}/providers/Microsoft.Compute/virtualMachines/vm1")
    with pytest.raises(ArmRequestError) as canceled:
        azure.rest.wait(accepted, command)
    assert canceled.value.code in ("OperationCanceled", "OperationNotAllowed")
    azure.emulator.events.flush()
    assert [e for e in azure.emulator.events.published if e["subject"].endswith("/runCommands/slow")
            and e["eventType"].endswith("WriteSuccess")] == []


def test_the_event_webhook_can_change_while_serving(azure: Azure) -> None:
    status, _, _ = raw(azure, "PATCH", "/_emulator/config", headers={"Content-Type": "application/json"},
                       body=json.dumps({"event_webhook": None}).encode())
    try:
        assert status == 200
        posted = len(azure.webhook.posts)
        azure.rest.put(f"{azure.group_path()}/providers/Microsoft.Network/privateDnsZones/quiet.example",
                       {"location": "global"})
        azure.emulator.events.flush()
        assert len(azure.webhook.posts) == posted
        bad, _, _ = raw(azure, "PATCH", "/_emulator/config", headers={"Content-Type": "application/json"},
                        body=json.dumps({"polls_before_done": "x"}).encode())
        assert bad == 400
    finally:
        azure.emulator.config.event_webhook = azure.webhook.url
