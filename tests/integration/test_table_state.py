"""The Table Storage adapters against Azurite."""

from __future__ import annotations

import contextlib
from dataclasses import replace
from datetime import timedelta

import pytest

from shared.adapters.tables import MAX_PROPERTY_CHARS
from shared.bootstrap import Container
from shared.domain.errors import ConcurrentUpdate, Conflict, ErrorCode, ValidationError
from shared.domain.models import Attachment, AttachmentHealth, Redundancy, StorageInfo, Tier, nfs_endpoint
from shared.domain.operations import Operation, OperationKind, OperationStatus
from shared.ports import IdempotencyRecord
from tests.fakes import FakeClock


def storage(name: str, group: str = "rg1", *, clock: FakeClock) -> StorageInfo:
    return StorageInfo(name, group, "eastus", Tier.PREMIUM, Redundancy.LRS, 100, nfs_endpoint(name),
                       clock.now())


def attachment(vm: str, store: str = "teamhome", group: str = "rg1", *, clock: FakeClock) -> Attachment:
    return Attachment(store, vm, group, "/home/azureuser", clock.now(), vm_id=f"id-{vm}")


class TestOperations:
    def test_add_get_and_conditional_save(self, app: Container, clock: FakeClock) -> None:
        op = Operation.new(OperationKind.CREATE_STORAGE, "storage/x", {"name": "x", "sizeGb": 100},
                           clock.now())
        stored = app.operations.add(op)
        assert stored.etag and stored == op
        loaded = app.operations.get(op.id)
        assert loaded == op and loaded is not None and loaded.etag == stored.etag

        running = app.operations.save(loaded.start(clock.now()))
        assert app.operations.get(op.id) == running
        with pytest.raises(ConcurrentUpdate):  # a writer holding the old ETag loses
            app.operations.save(loaded.fail(ValidationError("late"), clock.now()))
        assert app.operations.get(op.id).status is OperationStatus.RUNNING  # type: ignore[union-attr]

    def test_adding_twice_returns_the_first_record(self, app: Container, clock: FakeClock) -> None:
        op = Operation.new(OperationKind.CREATE_STORAGE, "storage/x", {"name": "x"}, clock.now())
        app.operations.add(op)
        again = app.operations.add(replace(op, target="storage/other"))
        assert again.target == "storage/x"

    def test_a_parent_sees_its_children_end_even_when_one_is_submitted_again(
        self, app: Container, clock: FakeClock
    ) -> None:
        parent = app.operations.add(Operation.new(OperationKind.RECONCILE, "reconcile/x", {"run": "x"}, clock.now()))
        children = [app.operations.add(Operation.new(OperationKind.RECONCILE_VM, f"vm/rg/vm{n}", {}, clock.now(),
                                                     parent=parent.id)) for n in range(3)]
        assert app.operations.children_running(parent.id)
        for child in children:
            app.operations.save(child.start(clock.now()).succeed({}, clock.now()))
        assert not app.operations.children_running(parent.id)
        app.operations.add(replace(children[0], etag=None))  # a redelivered parent submits it again
        assert not app.operations.children_running(parent.id)
        assert sorted(c.id for c in app.operations.children(parent.id)) == sorted(c.id for c in children)

    def test_the_stall_sweep_reads_only_operations_never_started(self, app: Container, clock: FakeClock) -> None:
        waiting = app.operations.add(Operation.new(OperationKind.VERIFY_VM, "vm/rg/a", {}, clock.now()))
        started = app.operations.add(Operation.new(OperationKind.VERIFY_VM, "vm/rg/b", {}, clock.now()))
        app.operations.save(started.start(clock.now()))
        clock.advance(600)
        fresh = app.operations.add(Operation.new(OperationKind.VERIFY_VM, "vm/rg/c", {}, clock.now()))
        stalled = {o.id for o in app.operations.list_stalled(clock.now() - timedelta(minutes=5))}
        assert waiting.id in stalled and started.id not in stalled and fresh.id not in stalled
        index = app.state.table("OperationIndex")
        left = {row["operationId"] for row in index.query_entities("PartitionKey eq 'pending'")}
        assert started.id not in left and {waiting.id, fresh.id} <= left  # the started one's row is gone

    def test_unknown_id_is_none(self, app: Container) -> None:
        assert app.operations.get("6e0b3f2a-5a43-4b7e-9a57-3f0c2d7d1c11") is None

    def test_nested_values_survive_storage(self, app: Container, clock: FakeClock) -> None:
        op = Operation.new(OperationKind.ATTACH_VM, "vm/rg/vm", {"vm": "v", "nested": {"a": [1, 2]}},
                           clock.now()).start(clock.now()).advance("step", 1, 3, clock.now())
        app.operations.add(op)
        assert app.operations.get(op.id) == op

    def test_oversized_values_are_refused_not_truncated(self, app: Container, clock: FakeClock) -> None:
        op = Operation.new(OperationKind.ATTACH_VM, "vm/rg/vm", {"blob": "x" * MAX_PROPERTY_CHARS},
                           clock.now())
        with pytest.raises(ValueError, match="Table Storage holds"):
            app.operations.add(op)


class TestIdempotencyKeys:
    def test_first_claim_wins_until_it_expires(self, app: Container, clock: FakeClock) -> None:
        now = clock.now()
        first = IdempotencyRecord("key-1", "fp-a", "op-a", now)
        assert app.idempotency.claim(first, expired_before=now - timedelta(hours=24)) == first
        second = IdempotencyRecord("key-1", "fp-b", "op-b", now)
        assert app.idempotency.claim(second, expired_before=now - timedelta(hours=24)) == first

        later = now + timedelta(hours=25)
        third = IdempotencyRecord("key-1", "fp-c", "op-c", later)
        assert app.idempotency.claim(third, expired_before=later - timedelta(hours=24)) == third

    def test_queued_mark(self, app: Container, clock: FakeClock) -> None:
        now = clock.now()
        record = IdempotencyRecord("key/with#odd?chars", "fp", "op", now)
        app.idempotency.claim(record, expired_before=now)
        assert app.idempotency.reserve_send(app.idempotency.claim(record, expired_before=now))
        again = app.idempotency.claim(replace(record, operation_id="other"), expired_before=now)
        assert again.queued and again.operation_id == "op"


class TestStorages:
    def test_save_get_delete(self, app: Container, clock: FakeClock) -> None:
        info = storage("teamhome", clock=clock)
        app.storages.save(info)
        assert app.storages.get("teamhome") == info
        app.storages.save(replace(info, size_gb=200))
        assert app.storages.get("teamhome").size_gb == 200  # type: ignore[union-attr]
        app.storages.delete("teamhome")
        app.storages.delete("teamhome")  # already gone: still fine
        assert app.storages.get("teamhome") is None

    def test_list_filters_by_resource_group_case_insensitively(self, app: Container, clock: FakeClock) -> None:
        for name, group in [("aaa", "RG1"), ("bbb", "rg2"), ("ccc", "rg1")]:
            app.storages.save(storage(name, group, clock=clock))
        assert [s.name for s in app.storages.list("rg1", 100, None).items] == ["aaa", "ccc"]
        assert len(app.storages.list(None, 100, None).items) == 3

    def test_list_pages_with_an_opaque_continuation(self, app: Container, clock: FakeClock) -> None:
        names = [f"store{i:02d}" for i in range(7)]
        for name in names:
            app.storages.save(storage(name, clock=clock))
        seen, token, pages = [], None, 0
        while True:
            page = app.storages.list(None, 3, token)
            seen += [s.name for s in page.items]
            pages += 1
            if page.continuation is None:
                break
            token = page.continuation
        assert seen == names and pages == 3

    def test_tokens_in_azures_own_format_are_passed_through(self, app: Container, clock: FakeClock) -> None:
        """Real Table Storage continuations look like '1!8!U21pdGg-' (Azurite's are plain base64);
        one this table did not issue is a client error, not a 500."""
        import base64
        import json

        from shared.adapters.tables import _decode_token

        azure_style = {"PartitionKey": "1!8!c3RvcmFnZQ--", "RowKey": "1!12!c3RvcmUwMQ--"}
        token = base64.urlsafe_b64encode(json.dumps(azure_style).encode()).decode()
        assert _decode_token(token) == azure_style  # reaches the service as issued
        # Azurite may refuse a token it did not issue: that must be a client error, nothing worse.
        with contextlib.suppress(ValidationError):
            app.storages.list(None, 3, token)

    @pytest.mark.parametrize("token", ["not-base64!", "e30", "eyJQYXJ0aXRpb25LZXkiOiAxfQ==",
                                       "eyJYIjogImEifQ==", "eyJSb3dLZXkiOiAiYVxuYiJ9"])
    def test_forged_continuations_are_refused(self, app: Container, token: str) -> None:
        with pytest.raises(ValidationError, match="skipToken"):
            app.storages.list(None, 3, token)


class TestAttachments:
    def test_add_get_list_remove(self, app: Container, clock: FakeClock) -> None:
        one, two = attachment("vm1", clock=clock), attachment("vm2", group="rg2", clock=clock)
        app.attachments.add(one)
        app.attachments.add(two)
        app.attachments.add(attachment("vm3", "otherhome", clock=clock))
        assert app.attachments.get("RG1", "VM1") == one
        assert app.attachments.list_for_storage("teamhome") == [one, two]
        app.attachments.remove("rg1", "vm1")
        app.attachments.remove("rg1", "vm1")
        assert app.attachments.get("rg1", "vm1") is None
        assert app.attachments.list_for_storage("teamhome") == [two]

    def test_a_vm_has_one_attachment(self, app: Container, clock: FakeClock) -> None:
        first = app.attachments.add(attachment("vm1", clock=clock))
        clock.advance(60)
        assert app.attachments.add(attachment("vm1", clock=clock)) == first  # same storage: as it was
        with pytest.raises(Conflict) as err:
            app.attachments.add(attachment("vm1", "otherhome", clock=clock))
        assert err.value.code is ErrorCode.VM_ATTACHED_ELSEWHERE
        assert app.attachments.list_for_storage("otherhome") == []

    def test_prefixes_of_storage_names_do_not_leak_into_listings(self, app: Container, clock: FakeClock) -> None:
        app.attachments.add(attachment("vm1", "home", clock=clock))
        app.attachments.add(attachment("vm2", "home2", clock=clock))
        assert [a.vm for a in app.attachments.list_for_storage("home")] == ["vm1"]

    def test_save_updates_both_views_but_never_resurrects(self, app: Container, clock: FakeClock) -> None:
        one = app.attachments.add(attachment("vm1", clock=clock))
        healthy = replace(one, health=AttachmentHealth.HEALTHY, last_verified_at=clock.now())
        app.attachments.save(healthy)
        assert app.attachments.get("rg1", "vm1") == healthy
        assert app.attachments.list_for_storage("teamhome") == [healthy]
        app.attachments.remove("rg1", "vm1")
        with pytest.raises(ConcurrentUpdate):
            app.attachments.save(healthy)
        assert app.attachments.get("rg1", "vm1") is None
