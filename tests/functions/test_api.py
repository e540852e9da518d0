"""The HTTP API through the indexed functions, on Azurite: what each route answers, what it
records and what it queues."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import pytest

from local import identities
from local.azurite import DEV_ACCOUNT_KEY
from local.emulator import LocalAzure
from local.host import FunctionIndex, QueuePump
from shared import bootstrap
from shared.bootstrap import Container
from shared.domain.messages import OPERATIONS_QUEUE
from shared.domain.models import Attachment, Redundancy, StorageAccess, StorageInfo, Tier, nfs_endpoint
from shared.settings import Settings, StorageConnection
from tests.conftest import ADMIN, DEFAULT_GROUP, SUBSCRIPTION, Client, arm_as, object_id
from tests.fakes import FakeClock

Queued = Callable[[], list[str]]


def record_storage(app: Container, clock: FakeClock, name: str = "teamhome", group: str = DEFAULT_GROUP,
                   owner: str = ADMIN) -> StorageInfo:
    """A storage as a finished create leaves it: its record, and its creator as its owner."""
    info = StorageInfo(name, group, "eastus", Tier.PREMIUM, Redundancy.LRS, 200, nfs_endpoint(name), clock.now())
    app.storages.save(info)
    app.access_records.add(StorageAccess(name, owners=(object_id(owner),)))
    return info


def record_attachment(app: Container, clock: FakeClock, vm: str, storage: str = "teamhome") -> Attachment:
    return app.attachments.add(Attachment(storage, vm, DEFAULT_GROUP, "/home/azureuser", clock.now()))


def post_at_once(api: Client, count: int, body: Any, headers: dict[str, str]) -> list[Any]:
    """`count` identical POSTs released at the same instant from their own threads."""
    barrier = threading.Barrier(count)
    answers: list[Any] = []

    def post() -> None:
        barrier.wait()
        answers.append(api.post("/api/storage", body, headers=headers))

    threads = [threading.Thread(target=post) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return answers


def assert_error(answer: Any, status: int, code: str) -> dict[str, Any]:
    assert answer.status == status, answer
    assert answer.mimetype == "application/json"
    error: dict[str, Any] = answer.json()["error"]
    assert error["code"] == code and error["message"]
    return error


class TestCreateStorage:
    def test_accepts_records_pending_and_queues(self, api: Client, app: Container, queued: Queued) -> None:
        answer = api.post("/api/storage", {"name": "teamhome", "size": "1TiB", "redundancy": "ZRS"})
        assert answer.status == 202, answer
        op = answer.json()
        assert answer.headers["Location"] == f"https://azlin.test/api/operations/{op['id']}"
        assert answer.headers["Retry-After"] == "5"
        assert op["status"] == "Pending" and op["kind"] == "CreateStorage" and op["target"] == "storage/teamhome"
        assert op["params"] == {"name": "teamhome", "resourceGroup": DEFAULT_GROUP, "region": None,
                                "tier": "Premium", "redundancy": "ZRS", "sizeGb": 1024, "vnet": None,
                                "subnet": None, "encryptionInTransit": True, "billing": "provisionedV2",
                                "iops": None, "throughputMibps": None, "guardSubnet": False}
        assert queued() == [op["id"]]
        assert api.get(f"/api/operations/{op['id']}").json() == op

    def test_bad_input_is_400_and_records_nothing(self, api: Client, app: Container, queued: Queued) -> None:
        error = assert_error(api.post("/api/storage", {"name": "Bad Name", "size": 5, "tier": "Standard"}),
                             400, "ValidationError")
        assert len(error["causes"]) == 3 and "try" in error
        assert queued() == []
        assert list(app.state.table("Operations").list_entities()) == []

    def test_standard_tier_explains_why(self, api: Client) -> None:
        error = assert_error(api.post("/api/storage", {"name": "teamhome", "tier": "Standard"}),
                             400, "UnsupportedTier")
        assert "SSD (premium)" in error["causes"][0]

    @pytest.mark.parametrize("raw", [b"{", b"[1,2]", b'{"name": "a", "name": "b"}', b'{"size": NaN}',
                                     b"\xff\xfe{}", b"[" * 5000 + b"]" * 5000, b'"just a string"'])
    def test_malformed_bodies_are_400(self, api: Client, raw: bytes) -> None:
        assert_error(api.post("/api/storage", raw=raw), 400, "ValidationError")

    def test_text_no_utf_8_can_carry_is_400_not_500(self, api: Client) -> None:
        """A lone surrogate (valid JSON escape, no character) never reaches a validator or a record."""
        assert_error(api.post("/api/storage", raw=b'{"name": "\\ud800"}'), 400, "ValidationError")
        answer = api.post("/api/storage/teamhome/snapshots/2026-12-03T02:00:00Z/restore", raw=b'{"path": "a\\udfff"}')
        assert_error(answer, 400, "ValidationError")

    def test_oversized_bodies_are_413(self, api: Client, queued: Queued) -> None:
        assert_error(api.post("/api/storage", {"name": "teamhome", "pad": "x" * 70_000}), 413, "RequestBodyTooLarge")
        assert queued() == []


class TestIdempotencyKey:
    def test_same_key_and_body_return_the_same_operation_and_queue_nothing_new(
            self, api: Client, queued: Queued) -> None:
        key = {"Idempotency-Key": "8c1f1c52-9a61-4d0a-9d8d-0d5c2a7f3e10"}
        first = api.post("/api/storage", {"name": "teamhome"}, headers=key)
        again = api.post("/api/storage", {"size": 100, "name": "teamhome"}, headers=key)  # same request
        assert first.status == again.status == 202
        assert again.json()["id"] == first.json()["id"]
        assert again.headers["Idempotent-Replayed"] == "true"
        assert queued() == [first.json()["id"]]

    def test_same_key_with_another_request_is_refused(self, api: Client, queued: Queued) -> None:
        key = {"Idempotency-Key": "k-1"}
        api.post("/api/storage", {"name": "teamhome"}, headers=key)
        assert_error(api.post("/api/storage", {"name": "otherhome"}, headers=key), 409, "IdempotencyKeyReused")
        assert len(queued()) == 1

    def test_without_a_key_each_request_is_new(self, api: Client, queued: Queued) -> None:
        first = api.post("/api/storage", {"name": "teamhome"}).json()["id"]
        second = api.post("/api/storage", {"name": "teamhome"}).json()["id"]
        assert first != second and sorted(queued()) == sorted([first, second])

    def test_concurrent_requests_with_one_key_queue_one_message(self, api: Client, queued: Queued) -> None:
        for round_ in range(5):
            answers = post_at_once(api, 3, {"name": "teamhome"}, {"Idempotency-Key": f"race-{round_}"})
            assert [a.status for a in answers] == [202, 202, 202]
            assert len({a.json()["id"] for a in answers}) == 1
        ids = queued()
        assert len(ids) == len(set(ids)) == 5

    def test_unusable_key_is_400(self, api: Client, queued: Queued) -> None:
        assert_error(api.post("/api/storage", {"name": "teamhome"}, headers={"Idempotency-Key": "a b"}),
                     400, "ValidationError")
        assert queued() == []


@pytest.fixture
def in_azure(local_azure: LocalAzure) -> Iterator[Callable[[str, str], None]]:
    """Create a storage account of ours in the emulator (the list joins records with Azure)."""
    rest = arm_as(local_azure)
    groups: set[str] = set()

    def create(name: str, group: str = DEFAULT_GROUP) -> None:
        if group not in groups and group != DEFAULT_GROUP:  # the session's default group stays
            rest.put(rest.group_path(group), {"location": "eastus"})
            identities.manage(local_azure.emulator, SUBSCRIPTION, group)  # as infra/ grants it
            groups.add(group)
        rest.put(f"{rest.group_path(group)}/providers/Microsoft.Storage/storageAccounts/{name}", {
            "location": "eastus", "sku": {"name": "Premium_LRS"}, "kind": "FileStorage",
            "tags": {"managed-by": "azlin"}})

    yield create
    for group in groups:
        rest.delete(rest.group_path(group))


class TestReadingStorage:
    def test_get_and_list_from_recorded_state(self, api: Client, app: Container, clock: FakeClock,
                                              in_azure: Callable[[str, str], None]) -> None:
        record_storage(app, clock, "teamhome", "rg1")
        record_storage(app, clock, "otherhome", "rg2")
        in_azure("teamhome", "rg1")
        in_azure("otherhome", "rg2")
        got = api.get("/api/storage/teamhome")
        assert got.status == 200 and got.json()["nfsEndpoint"] == "teamhome.file.core.windows.net:/teamhome/home"
        assert api.get("/api/storage/teamhome", query={"resourceGroup": "RG1"}).status == 200
        assert_error(api.get("/api/storage/teamhome", query={"resourceGroup": "rg2"}), 404, "StorageNotFound")
        assert [s["name"] for s in api.get("/api/storage").json()["value"]] == ["otherhome", "teamhome"]
        assert [s["name"] for s in api.get("/api/storage", query={"resourceGroup": "rg2"}).json()["value"]] == [
            "otherhome"]

    def test_list_follows_next_links(self, api: Client, app: Container, clock: FakeClock,
                                     in_azure: Callable[[str, str], None]) -> None:
        for i in range(5):
            record_storage(app, clock, f"store{i}")
            in_azure(f"store{i}", DEFAULT_GROUP)
        names, answer = [], api.get("/api/storage", query={"$top": "2"}).json()
        while True:
            names += [s["name"] for s in answer["value"]]
            if "nextLink" not in answer:
                break
            link = answer["nextLink"].removeprefix(Client.base)
            path, _, qs = link.partition("?")
            answer = api.get(path + "?" + qs).json()
        assert names == [f"store{i}" for i in range(5)]

    def test_unknown_storage_is_404(self, api: Client) -> None:
        error = assert_error(api.get("/api/storage/nosuchstore"), 404, "StorageNotFound")
        assert "GET /api/storage" in error["try"]
        assert_error(api.get("/api/storage/nosuchstore/status"), 404, "StorageNotFound")

    def test_status_reports_unknown_usage_as_null_never_zero(self, api: Client, app: Container,
                                                            clock: FakeClock) -> None:
        record_storage(app, clock)
        record_attachment(app, clock, "vm2")
        record_attachment(app, clock, "vm1")
        status = api.get("/api/storage/teamhome/status").json()
        assert status["usedGb"] is None and status["utilizationPercent"] is None
        assert status["connectedVms"] == ["vm1", "vm2"]
        assert status["costPerMonth"] == 32.0  # 200 GiB at the stand-in's eastus Premium LRS 0.16
        assert (status["currency"], status["priceSource"]) == ("USD", "retail")
        assert [(a["vm"], a["health"], a["lastVerifiedAt"]) for a in status["attachments"]] == [
            ("vm1", "unknown", None), ("vm2", "unknown", None)]


class TestStorageMutations:
    def test_resize_needs_recorded_storage(self, api: Client, app: Container, clock: FakeClock,
                                           queued: Queued) -> None:
        assert_error(api.patch("/api/storage/teamhome", {"size": 300}), 404, "StorageNotFound")
        record_storage(app, clock)
        answer = api.patch("/api/storage/teamhome", {"size": "300GiB"})
        assert answer.status == 202
        assert answer.json()["params"] == {"name": "teamhome", "resourceGroup": DEFAULT_GROUP, "sizeGb": 300,
                                           "iops": None, "throughputMibps": None}
        assert queued() == [answer.json()["id"]]
        assert_error(api.patch("/api/storage/teamhome", {"size": 99}), 400, "ValidationError")

    def test_delete_is_refused_while_vms_are_attached(self, api: Client, app: Container, clock: FakeClock,
                                                      queued: Queued) -> None:
        record_storage(app, clock)
        record_attachment(app, clock, "vm1")
        error = assert_error(api.delete("/api/storage/teamhome"), 409, "StorageInUse")
        assert "vm1" in error["causes"][0]
        assert queued() == []
        forced = api.delete("/api/storage/teamhome", query={"force": "true"})
        assert forced.status == 202 and forced.json()["params"]["force"] is True

    def test_delete_of_a_storage_never_made_says_so(self, api: Client, app: Container, queued: Queued) -> None:
        error = assert_error(api.delete("/api/storage/gonestore"), 404, "StorageNotFound")
        assert "gonestore" in error["message"] and queued() == []
        assert_error(api.delete("/api/storage/gonestore", query={"force": "perhaps"}), 400, "ValidationError")
        # Owners recorded without a storage: a create under way, or one whose worker died. The
        # worker decides what of it is left in Azure.
        app.access_records.add(StorageAccess("halfmade", owners=(object_id(ADMIN),)))
        answer = api.delete("/api/storage/halfmade")
        assert answer.status == 202 and answer.json()["params"]["resourceGroup"] == DEFAULT_GROUP
        assert queued() == [answer.json()["id"]]

    def test_create_again_with_other_settings_is_a_conflict_never_a_resize(
            self, api: Client, app: Container, clock: FakeClock, queued: Queued) -> None:
        record_storage(app, clock)  # 200 GiB, Premium LRS, provisioned v1, plain NFS
        same = {"name": "teamhome", "size": 200, "billing": "provisionedV1", "encryptionInTransit": "off"}
        again = api.post("/api/storage", same)
        assert again.status == 202 and queued() == [again.json()["id"]]  # the same request repairs
        error = assert_error(api.post("/api/storage", {**same, "size": 300}), 409, "StorageExists")
        assert error["causes"] == ["size: is 200, asked 300"] and "PATCH /api/storage/teamhome" in error["try"]
        error = assert_error(api.post("/api/storage", {"name": "teamhome"}), 409, "StorageExists")
        assert error["causes"] == ["billing: is provisionedV1, asked provisionedV2", "size: is 200, asked 100",
                                   "encryptionInTransit: is off, asked required"]
        assert len(queued()) == 1 and app.storages.get("teamhome").size_gb == 200


class TestAttachments:
    def test_attach_needs_recorded_storage(self, api: Client, queued: Queued) -> None:
        assert_error(api.post("/api/storage/teamhome/attachments", {"vm": "vm1"}), 404, "StorageNotFound")
        assert queued() == []

    def test_attach_is_accepted(self, api: Client, app: Container, clock: FakeClock, queued: Queued) -> None:
        record_storage(app, clock)
        answer = api.post("/api/storage/teamhome/attachments",
                          {"vm": "vm1", "resourceGroup": DEFAULT_GROUP, "mountPoint": "/home/dev"})
        assert answer.status == 202
        assert answer.json()["params"] == {"storage": "teamhome", "vm": "vm1", "resourceGroup": DEFAULT_GROUP,
                                           "mountPoint": "/home/dev", "repair": False, "vmId": None}
        assert answer.json()["target"] == f"vm/{DEFAULT_GROUP}/vm1"

    def test_a_vm_attached_elsewhere_is_a_conflict(self, api: Client, app: Container, clock: FakeClock,
                                                   queued: Queued) -> None:
        record_storage(app, clock, "teamhome")
        record_storage(app, clock, "otherhome")
        record_attachment(app, clock, "vm1", storage="otherhome")
        assert_error(api.post("/api/storage/teamhome/attachments", {"vm": "vm1"}), 409, "VmAttachedElsewhere")
        assert api.post("/api/storage/otherhome/attachments", {"vm": "vm1"}).status == 202
        assert len(queued()) == 1

    def test_unsafe_mount_points_are_refused(self, api: Client, app: Container, clock: FakeClock) -> None:
        record_storage(app, clock)
        for bad in ["/home/a;reboot", "/etc", "relative", "/home/../root", "/opt/x", "/root/bin"]:
            assert_error(api.post("/api/storage/teamhome/attachments", {"vm": "vm1", "mountPoint": bad}),
                         400, "ValidationError")

    def test_get_attachment(self, api: Client, app: Container, clock: FakeClock, functions: FunctionIndex,
                            queued: Queued) -> None:
        assert_error(api.get("/api/vms/vm1/attachment"), 404, "AttachmentNotFound")
        record_attachment(app, clock, "vm1")
        got = api.get("/api/vms/vm1/attachment").json()
        assert got["storage"] == "teamhome" and got["health"] == "unknown" and got["lastVerifiedAt"] is None
        # verify=true never waits on a VM: the recorded health, and the check queued.
        answer = api.get("/api/vms/vm1/attachment", query={"verify": "true"}).json()
        assert answer["health"] == "unknown" and queued() == [answer["verifying"]["operationId"]]
        QueuePump(functions, app.settings.storage.connection_string or "", OPERATIONS_QUEUE).drain()
        verified = api.get(f"/api/operations/{answer['verifying']['operationId']}").json()["result"]
        # Recorded only: neither the storage account nor the VM exists in Azure (the emulator).
        assert (verified["health"], verified["live"]) == ("storageGone", None)
        recorded = api.get("/api/vms/vm1/attachment").json()
        assert recorded["health"] == "storageGone" and recorded["lastVerifiedAt"] == verified["verifiedAt"]
        assert recorded["lastError"] == "storage teamhome no longer exists"

    def test_detach_of_a_vm_never_attached_says_so(self, api: Client, app: Container, clock: FakeClock,
                                                   queued: Queued) -> None:
        error = assert_error(api.delete("/api/vms/vm1/attachment", query={"mode": "restore"}), 404,
                             "AttachmentNotFound")
        assert "vm1" in error["message"] and DEFAULT_GROUP in error["message"]
        assert_error(api.delete("/api/vms/vm1/attachment", query={"mode": "wipe"}), 400, "ValidationError")
        assert_error(api.delete("/api/vms/-vm1/attachment"), 400, "ValidationError")
        record_attachment(app, clock, "vm1")
        answer = api.delete("/api/vms/vm1/attachment", query={"mode": "restore"})
        assert answer.status == 202 and answer.json()["params"]["mode"] == "restore"
        assert queued() == [answer.json()["id"]]

    def test_an_attach_under_way_is_what_the_attachment_answers(self, api: Client, app: Container,
                                                                clock: FakeClock, queued: Queued) -> None:
        record_storage(app, clock)
        attaching = api.post("/api/storage/teamhome/attachments", {"vm": "vm1"}).json()
        got = api.get("/api/vms/vm1/attachment")
        assert got.status == 200
        assert got.json() == {"vm": "vm1", "resourceGroup": DEFAULT_GROUP, "storage": "teamhome",
                              "state": "Attaching",
                              "operation": {"operationId": attaching["id"], "status": "Pending",
                                            "location": f"https://azlin.test/api/operations/{attaching['id']}"}}
        # A detach now is accepted: it runs after the attach (the VM's lock orders them).
        assert api.delete("/api/vms/vm1/attachment").status == 202
        assert_error(api.get("/api/vms/vm2/attachment"), 404, "AttachmentNotFound")

    def test_a_storage_being_created_answers_creating(self, api: Client, queued: Queued) -> None:
        creating = api.post("/api/storage", {"name": "newhome"}).json()
        got = api.get("/api/storage/newhome")
        assert got.status == 200 and got.json()["state"] == "Creating"
        assert got.json()["operation"]["operationId"] == creating["id"]
        assert got.json()["resourceGroup"] == DEFAULT_GROUP
        assert_error(api.get("/api/storage/newhome", query={"resourceGroup": "elsewhere"}), 404, "StorageNotFound")


class TestOtherRoutes:
    @pytest.mark.parametrize("operation_id", ["6e0b3f2a-5a43-4b7e-9a57-3f0c2d7d1c11", "nope", "..%2F..",
                                              "x" * 200])
    def test_unknown_operations_are_404(self, api: Client, operation_id: str) -> None:
        assert_error(api.get(f"/api/operations/{operation_id}"), 404, "OperationNotFound")

    def test_a_resource_groups_default_storage(self, api: Client, app: Container, clock: FakeClock,
                                               in_azure: Callable[[str, str], None]) -> None:
        path = "/api/resource-groups/rg1/default-storage"
        assert_error(api.get(path), 404, "ResourceGroupNotFound")
        assert_error(api.put(path, {"storage": "teamhome"}), 404, "StorageNotFound")
        record_storage(app, clock)
        assert_error(api.put(path, {"storage": "teamhome"}), 404, "ResourceGroupNotFound")
        in_azure("teamhome", "rg1")
        assert_error(api.get(path), 404, "DefaultStorageNotSet")
        for bad in ({}, {"storage": "Team_Home"}, {"storage": "teamhome", "extra": 1}, [1]):
            assert_error(api.put(path, bad), 400, "ValidationError")
        assert_error(api.put("/api/resource-groups/bad%2Fgroup/default-storage", {"storage": "teamhome"}),
                     400, "ValidationError")
        assert app.default_storages.get("rg1") is None  # nothing changed by any of those
        answer = api.put(path, {"storage": "teamhome"})
        assert answer.status == 200 and answer.json()["storage"] == "teamhome"
        assert api.get("/api/resource-groups/RG1/default-storage").json()["storage"] == "teamhome"
        assert api.delete(path).status == 204
        assert api.delete(path).status == 204  # clearing what is not set is fine
        assert_error(api.get(path), 404, "DefaultStorageNotSet")

    def test_cloud_init_is_a_cloud_config_for_recorded_storage(self, api: Client, app: Container,
                                                              clock: FakeClock) -> None:
        assert_error(api.get("/api/storage/teamhome/cloud-init"), 404, "StorageNotFound")
        record_storage(app, clock)
        answer = api.get("/api/storage/teamhome/cloud-init", query={"user": "dev"})
        assert answer.status == 200 and answer.mimetype == "text/cloud-config"
        assert answer.body.startswith(b"#cloud-config\n") and b'"MOUNT_POINT=/home/dev"' in answer.body
        for bad in ({"user": "Root User"}, {"mountPoint": "/etc"}, {"mountPoint": "relative"},
                    {"user": "dev", "mountPoint": "/home/other"}, {"mountPoint": "/home/azureuser/work"}):
            assert_error(api.get("/api/storage/teamhome/cloud-init", query=bad), 400, "ValidationError")

    def test_health_is_liveness_and_readiness_asks_dependencies(self, api: Client) -> None:
        assert api.get("/api/health").json() == {"status": "ok"}
        ready = api.get("/api/health", query={"ready": "true"})
        assert ready.status == 200
        assert ready.json() == {"status": "ok", "checks": {"tables": "ok", "queue operations": "ok"}}


class TestStalledOperations:
    def test_the_sweep_queues_operations_no_worker_started(self, app: Container, api: Client, clock: FakeClock,
                                                           functions: FunctionIndex, queued: Queued) -> None:
        from shared.domain.operations import Operation, OperationKind

        lost = app.operations.add(Operation.new(OperationKind.CREATE_STORAGE, "storage/lost",
                                                {"name": "lost", "resourceGroup": DEFAULT_GROUP}, clock.now()))
        started = app.operations.add(Operation.new(OperationKind.CREATE_STORAGE, "storage/busy",
                                                   {"name": "busy", "resourceGroup": DEFAULT_GROUP}, clock.now()))
        app.operations.save(started.start(clock.now()))
        clock.advance(16 * 60)
        fresh = api.post("/api/storage", {"name": "fresh"}).json()["id"]
        functions.fire_timer("requeue_stalled_operations")
        assert sorted(queued()) == sorted([fresh, lost.id])
        assert "queued again" in api.get(f"/api/operations/{lost.id}").json()["lastError"]["message"]
        functions.fire_timer("requeue_stalled_operations")  # touched: not again within 15 minutes
        assert len(queued()) == 2


class TestDependencyDown:
    def test_unreachable_storage_is_503_with_retry_after(self, functions: FunctionIndex,
                                                         settings: Settings) -> None:
        dead = ("DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
                f"AccountKey={DEV_ACCOUNT_KEY};QueueEndpoint=http://127.0.0.1:9/devstoreaccount1;"
                "TableEndpoint=http://127.0.0.1:9/devstoreaccount1;")
        bootstrap.use(Container(replace(settings, storage=StorageConnection(connection_string=dead))))
        try:
            client = Client(functions)
            answer = client.post("/api/storage", {"name": "teamhome"})
            error = assert_error(answer, 503, "ServiceUnavailable")
            assert answer.headers["Retry-After"] == "5" and "could not be reached" in error["message"]
            ready = client.get("/api/health", query={"ready": "true"})
            assert ready.status == 503 and ready.json()["status"] == "unavailable"
        finally:
            bootstrap.use(None)

    def test_a_queue_outage_answers_503_and_a_replay_with_the_key_queues_it(
            self, functions: FunctionIndex, settings: Settings, make_app: Callable[..., Container],
            queued: Queued) -> None:
        working = bootstrap.container()
        assert settings.storage.connection_string
        no_queue = settings.storage.connection_string.replace(
            settings.storage.connection_string.split("QueueEndpoint=")[1].split(";")[0],
            "http://127.0.0.1:9/devstoreaccount1")
        bootstrap.use(Container(replace(settings, storage=StorageConnection(connection_string=no_queue))))
        client = Client(functions)
        key = {"Idempotency-Key": "outage-1"}
        assert_error(client.post("/api/storage", {"name": "teamhome"}, headers=key), 503, "ServiceUnavailable")
        unkeyed = client.post("/api/storage", {"name": "teamhome"})
        assert_error(unkeyed, 503, "ServiceUnavailable")
        recorded = list(working.state.table("Operations").list_entities())
        assert sorted(e["status"] for e in recorded) == ["Failed", "Pending"]  # unkeyed: not left Pending

        bootstrap.use(working)
        replay = client.post("/api/storage", {"name": "teamhome"}, headers=key)
        assert replay.status == 202 and replay.headers["Idempotent-Replayed"] == "true"
        assert queued() == [replay.json()["id"]]

    def test_refused_credentials_are_503_naming_the_cause(self, functions: FunctionIndex,
                                                          settings: Settings) -> None:
        assert settings.storage.connection_string
        wrong_key = settings.storage.connection_string.replace(DEV_ACCOUNT_KEY, "d3Jvbmcta2V5" * 8)
        bootstrap.use(Container(replace(settings, storage=StorageConnection(connection_string=wrong_key))))
        try:
            client = Client(functions)
            error = assert_error(client.get("/api/storage"), 503, "ConfigurationError")
            assert "refused the app's credentials" in error["message"]
            ready = client.get("/api/health", query={"ready": "true"})
            assert ready.status == 503 and "refused" in ready.json()["checks"]["tables"]
        finally:
            bootstrap.use(None)

    def test_missing_settings_are_503_naming_them(self, functions: FunctionIndex,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.delenv("AzureWebJobsStorage", raising=False)
        monkeypatch.delenv("AZURE_SUBSCRIPTION_ID", raising=False)
        bootstrap.use(None)
        try:
            error = assert_error(Client(functions).get("/api/storage"), 503, "ConfigurationError")
            assert any("AZURE_SUBSCRIPTION_ID" in cause for cause in error["causes"])
            assert Client(functions).get("/api/health").status == 200  # liveness needs no settings
        finally:
            bootstrap.use(None)


class TestListingOperations:
    def test_the_callers_own_newest_first_narrowed_by_status_and_kind(
            self, api: Client, app: Container, clock: FakeClock, queued: Queued) -> None:
        from shared.domain.identity import Principal, PrincipalKind
        from shared.domain.operations import Operation, OperationKind

        record_storage(app, clock)
        mine = []
        for body in ({"name": "homea"}, {"name": "homeb"}):
            mine.append(api.post("/api/storage", body).json()["id"])
            clock.advance(1)
        mine.append(api.post("/api/storage/teamhome/attachments", {"vm": "vm1"}).json()["id"])
        someone = Principal("0f0f0f0f-0000-4000-8000-000000000001", "someone", PrincipalKind.USER)
        app.operations.add(Operation.new(OperationKind.CREATE_STORAGE, "storage/theirs", {}, clock.now(),
                                         requested_by=someone))
        listed = api.get("/api/operations").json()
        assert [o["id"] for o in listed["value"]] == mine[::-1] and "nextLink" not in listed
        creates = api.get("/api/operations", query={"kind": "CreateStorage"}).json()["value"]
        assert [o["id"] for o in creates] == mine[1::-1]
        assert api.get("/api/operations", query={"status": "Succeeded,Failed"}).json()["value"] == []
        pending = api.get("/api/operations", query={"status": "Pending", "kind": "AttachVm,CreateStorage"})
        assert len(pending.json()["value"]) == 3
        about = api.get("/api/operations", query={"storage": "teamhome", "kind": "AttachVm"}).json()["value"]
        assert [o["id"] for o in about] == [mine[2]]

    def test_a_filtered_page_never_skips_a_match(self, api: Client, app: Container, clock: FakeClock,
                                                 queued: Queued) -> None:
        asked = []
        for n in range(5):
            asked.append(api.post("/api/storage", {"name": f"home{n}"}).json()["id"])
            clock.advance(1)
            api.post(f"/api/storage/home{n}/attachments", {"vm": "vm1"})  # 404: not recorded, nothing added
        seen, link = [], "/api/operations?kind=CreateStorage&$top=2"
        while link:
            page = api.get(link.replace("https://azlin.test", "")).json()
            seen += [o["id"] for o in page["value"]]
            link = page.get("nextLink", "")
            assert "kind=CreateStorage" in link or not link
        assert seen == asked[::-1]

    @pytest.mark.parametrize("query", [{"status": "Done"}, {"kind": "Attach"}, {"status": ""},
                                       {"storage": "teamhome", "vm": "vm1"}, {"status": "Pending,,"},
                                       {"kind": "createstorage"}, {"status": "Pending, Running"}])
    def test_unknown_filters_are_400(self, api: Client, query: dict[str, str]) -> None:
        error = assert_error(api.get("/api/operations", query=query), 400, "ValidationError")
        assert error["try"]
