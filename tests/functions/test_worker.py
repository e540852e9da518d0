"""The worker framework end to end: an HTTP request records and queues an operation in Azurite, a
queue pump with the host's delivery rules hands the real message to the `operations` trigger, and
failed deliveries end in `operations-poison` for the poison trigger. Test handlers stand in for
the storage and attachment services of later issues."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from local.host import FunctionIndex, QueuePump
from shared.bootstrap import Container
from shared.domain import messages
from shared.domain.commands import Command, CreateStorage, storage_lock
from shared.domain.errors import Conflict, ErrorCode, LeaseLost, NotReadyYet, ResourceBusy, TransientError
from shared.domain.messages import OPERATIONS_QUEUE, POISON_QUEUE
from shared.domain.operations import Operation, OperationKind
from shared.domain.serialization import format_time
from shared.services import worker
from shared.services.worker import OperationContext
from tests.conftest import DEFAULT_GROUP, Client
from tests.fakes import FakeClock

CREATE = OperationKind.CREATE_STORAGE


class Script:
    """A test handler that plays a list of outcomes, one per delivery, and records every call."""

    def __init__(self, *outcomes: Any) -> None:
        self.outcomes = list(outcomes)
        self.calls: list[tuple[Command, int]] = []

    def __call__(self, command: Command, context: OperationContext) -> dict[str, Any]:
        self.calls.append((command, context.operation.attempts))
        outcome = self.outcomes.pop(0) if len(self.outcomes) > 1 else self.outcomes[0]
        if isinstance(outcome, BaseException):
            raise outcome
        if callable(outcome):
            return outcome(command, context)  # type: ignore[no-any-return]
        return {"outcome": outcome}


@pytest.fixture
def run(make_app: Callable[..., Container], functions: FunctionIndex) -> Iterator[Callable[..., Any]]:
    """run(handler) -> (app, client, pumps): the app wired with `handler` for CreateStorage."""
    def start(handler: Any, **handlers: Any) -> tuple[Container, Client, QueuePump, QueuePump]:
        app = make_app({CREATE: handler, **handlers})
        conn = app.settings.storage.connection_string
        assert conn
        pump = QueuePump(functions, conn, OPERATIONS_QUEUE)
        poison = QueuePump(functions, conn, POISON_QUEUE)
        return app, Client(functions, contract=False), pump, poison

    yield start


def create(client: Client) -> str:
    answer = client.post("/api/storage", {"name": "teamhome", "resourceGroup": DEFAULT_GROUP})
    assert answer.status == 202, answer
    return str(answer.json()["id"])


def operation(client: Client, op_id: str) -> dict[str, Any]:
    answer = client.get(f"/api/operations/{op_id}")
    assert answer.status == 200
    return dict(answer.json())


def test_success_records_progress_and_result_and_releases_the_lock(run: Any) -> None:
    def two_steps(command: Command, context: OperationContext) -> dict[str, Any]:
        assert isinstance(command, CreateStorage) and command.name == "teamhome"
        context.progress("Creating the storage account", 1, 3)
        context.progress("Creating the share", 2, 3)
        return {"name": command.name}

    app, client, pump, _ = run(Script(two_steps))
    op_id = create(client)
    assert pump.drain() == 1
    op = operation(client, op_id)
    assert op["status"] == "Succeeded" and op["result"] == {"name": "teamhome"}
    assert op["progress"] == {"step": "Done", "done": 3, "total": 3} and op["attempts"] == 1
    assert "error" not in op
    app.locks.release(app.locks.acquire(storage_lock("teamhome"), "next", "next-op"))  # free again


def test_a_domain_error_ends_the_operation_and_acknowledges_the_message(run: Any) -> None:
    refusal = Conflict("Name taken in another subscription.", causes=["AlreadyExists"], try_hint="pick another",
                       code=ErrorCode.CONFLICT)
    _, client, pump, poison = run(Script(refusal))
    op_id = create(client)
    assert pump.drain() == 1 and pump.failures == []
    op = operation(client, op_id)
    assert op["status"] == "Failed"
    assert op["error"] == {"code": "Conflict", "message": "Name taken in another subscription.",
                           "causes": ["AlreadyExists"], "try": "pick another"}
    assert poison.drain() == 0


def test_a_transient_error_is_retried_and_remembered(run: Any) -> None:
    handler = Script(TransientError("ARM is throttling.", code=ErrorCode.THROTTLED), "created")
    _, client, pump, _ = run(handler)
    op_id = create(client)
    assert pump.run_once() == 1
    between = operation(client, op_id)
    assert between["status"] == "Running"
    assert between["lastError"] == {"code": "Throttled", "message": "ARM is throttling."}
    assert pump.drain() == 1
    done = operation(client, op_id)
    assert done["status"] == "Succeeded" and done["attempts"] == 2 and done["result"] == {"outcome": "created"}
    assert [attempt for _, attempt in handler.calls] == [1, 2]


def test_after_five_failed_deliveries_the_poison_trigger_fails_it_with_the_reason(run: Any) -> None:
    handler = Script(TransientError("Resource Manager answered 503.", code=ErrorCode.SERVICE_UNAVAILABLE))
    _, client, pump, poison = run(handler)
    op_id = create(client)
    assert pump.drain() == 5 and len(handler.calls) == 5
    assert operation(client, op_id)["status"] == "Running"
    assert poison.drain() == 1
    op = operation(client, op_id)
    assert op["status"] == "Failed" and op["attempts"] == 5
    assert op["error"]["code"] == "RetriesExhausted"
    assert "Resource Manager answered 503." in op["error"]["causes"][0]
    assert pump.drain() == 0


def test_unexpected_exceptions_are_retried_like_transient_ones(run: Any) -> None:
    _, client, pump, _ = run(Script(KeyError("bug"), "fine"))
    op_id = create(client)
    assert pump.drain() == 2
    op = operation(client, op_id)
    assert op["status"] == "Succeeded" and op["lastError"]["code"] == "InternalError"


def waiting(app: Container) -> int:
    """Messages on the operations queue, including delayed (deferred) ones."""
    return int(app.queue.client.get_queue_properties().approximate_message_count)


def test_a_held_lock_defers_the_operation_without_spending_a_delivery(run: Any, functions: FunctionIndex) -> None:
    app, client, pump, _ = run(Script("created"))
    held = app.locks.acquire(storage_lock("teamhome"), "someone", "op-elsewhere")
    op_id = create(client)
    assert pump.run_once() == 1 and pump.failures == []  # acknowledged, not failed
    pending = operation(client, op_id)
    assert pending["status"] == "Pending" and pending["attempts"] == 0
    assert pending["lastError"]["code"] == "ResourceBusy" and "op-elsewhere" in pending["lastError"]["message"]
    assert pump.run_once() == 0 and waiting(app) == 1  # sent again, with a delay
    app.locks.release(held)
    functions.deliver(OPERATIONS_QUEUE, messages.encode(op_id))  # the delayed message arrives
    assert operation(client, op_id)["status"] == "Succeeded"


def test_a_waiting_operation_says_what_for_and_when_it_looks_again_until_it_runs_on(
        run: Any, functions: FunctionIndex, clock: FakeClock, caplog: pytest.LogCaptureFixture) -> None:
    handler = Script(NotReadyYet("The VM agent of vm1 is not ready yet."),
                     TransientError("Resource Manager answered 503."), "created")
    app, client, _, _ = run(handler)
    held = app.locks.acquire(storage_lock("teamhome"), "someone", "op-elsewhere")
    op_id = create(client)
    later = format_time(clock.now() + timedelta(seconds=1))  # the first look again at a busy lock
    with caplog.at_level(logging.INFO, logger=worker.__name__):
        functions.deliver(OPERATIONS_QUEUE, messages.encode(op_id))
        busy = operation(client, op_id)
        assert busy["status"] == "Pending" and busy["waitingFor"] == {
            "reason": "lock", "operation": "op-elsewhere", "nextLookAt": later,
            "message": "storage:teamhome is busy with operation op-elsewhere."}, busy
        app.locks.release(held)
        functions.deliver(OPERATIONS_QUEUE, messages.encode(op_id))  # the agent is not ready
        agent = operation(client, op_id)
        assert agent["waitingFor"] == {"reason": "vmAgent", "errorCode": "VmAgentNotReady",
                                       "nextLookAt": format_time(clock.now()),
                                       "message": "The VM agent of vm1 is not ready yet."}, agent
        with pytest.raises(TransientError):  # an error: the host delivers the message again
            functions.deliver(OPERATIONS_QUEUE, messages.encode(op_id))
        retry = operation(client, op_id)
        assert retry["waitingFor"] == {
            "reason": "retry", "errorCode": "ServiceUnavailable", "message": "Resource Manager answered 503.",
            "nextLookAt": format_time(clock.now() + timedelta(seconds=worker.REDELIVERY_SECONDS))}, retry
    routine = [r for r in caplog.records if "busy" in r.getMessage() or "not ready" in r.getMessage()]
    assert routine and {r.levelno for r in routine} == {logging.INFO}  # routine waits are no warnings
    assert [r.levelno for r in caplog.records if "503" in r.getMessage()] == [logging.WARNING]
    functions.deliver(OPERATIONS_QUEUE, messages.encode(op_id))
    done = operation(client, op_id)
    assert done["status"] == "Succeeded" and "waitingFor" not in done, done  # running on cleared it


def test_the_redelivery_delay_the_worker_announces_is_host_jsons() -> None:
    host = json.loads((Path(__file__).parents[2] / "host.json").read_text())
    minutes_seconds = host["extensions"]["queues"]["visibilityTimeout"].split(":")
    assert int(minutes_seconds[1]) * 60 + int(minutes_seconds[2]) == worker.REDELIVERY_SECONDS


def test_a_duplicate_delivery_during_a_run_writes_nothing_and_the_run_completes(
        run: Any, functions: FunctionIndex) -> None:
    def with_duplicate(command: Command, context: OperationContext) -> dict[str, Any]:
        context.progress("Step one", 1, 2)
        functions.deliver(OPERATIONS_QUEUE, messages.encode(context.operation.id), dequeue_count=1)
        context.progress("Step two", 2, 2)  # would raise ConcurrentUpdate had the duplicate written
        return {"ok": True}

    handler = Script(with_duplicate)
    app, client, pump, _ = run(handler)
    op_id = create(client)
    assert pump.run_once() == 1 and pump.failures == []
    op = operation(client, op_id)
    assert op["status"] == "Succeeded" and "lastError" not in op and len(handler.calls) == 1
    assert waiting(app) == 1  # the duplicate looks again later...
    functions.deliver(OPERATIONS_QUEUE, messages.encode(op_id))
    assert operation(client, op_id) == op  # ...and finds it finished


def test_the_poison_handler_leaves_a_running_operation_to_its_delivery(
        run: Any, functions: FunctionIndex) -> None:
    def poisoned_meanwhile(command: Command, context: OperationContext) -> dict[str, Any]:
        functions.deliver(POISON_QUEUE, messages.encode(context.operation.id))
        context.progress("Still mine", 1, 1)
        return {"ok": True}

    _, client, pump, poison = run(Script(poisoned_meanwhile))
    op_id = create(client)
    pump.run_once()
    assert operation(client, op_id)["status"] == "Succeeded" and pump.failures == []
    poison_client = poison.queue
    assert poison_client.get_queue_properties().approximate_message_count == 1  # it checks again later
    functions.deliver(POISON_QUEUE, messages.encode(op_id))
    assert operation(client, op_id)["status"] == "Succeeded"


def test_the_poison_handler_ends_an_operation_waiting_behind_another(run: Any, functions: FunctionIndex) -> None:
    app, client, _, _ = run(Script("created"))
    app.locks.acquire(storage_lock("teamhome"), "someone", "op-elsewhere")
    op_id = create(client)
    functions.deliver(POISON_QUEUE, messages.encode(op_id))
    op = operation(client, op_id)
    assert op["status"] == "Failed" and op["error"]["code"] == "RetriesExhausted"


def test_a_crashed_delivery_is_resumed_once_its_lease_runs_out(run: Any, clock: FakeClock,
                                                              functions: FunctionIndex) -> None:
    """A worker died mid-operation: the op is Running at step 1 of 2 and its lock is still held
    by it. Redeliveries spend nothing while the lease lasts, then resume from the progress."""
    def resumable(command: Command, context: OperationContext) -> dict[str, Any]:
        done = context.operation.progress.done if context.operation.progress else 0
        if done < 1:
            context.progress("Step one", 1, 2)
        context.progress("Step two", 2, 2)
        return {"resumedAfter": done}

    app, client, _, _ = run(Script(resumable))
    op_id = create(client)
    crashed = app.operations.get(op_id)
    assert crashed is not None
    app.operations.save(crashed.start(clock.now()).advance("Step one", 1, 2, clock.now()))
    app.locks.acquire(storage_lock("teamhome"), "dead-worker", op_id)
    before = operation(client, op_id)

    for _ in range(7):  # more redeliveries than maxDequeueCount: none is spent
        functions.deliver(OPERATIONS_QUEUE, messages.encode(op_id))
        clock.advance(30)
    assert operation(client, op_id) == before  # the lock holder's record is left alone
    clock.advance(app.settings.lock_lease_seconds)
    functions.deliver(OPERATIONS_QUEUE, messages.encode(op_id))
    op = operation(client, op_id)
    assert op["status"] == "Succeeded" and op["result"] == {"resumedAfter": 1} and op["attempts"] == 2


def test_the_heartbeat_keeps_the_locks_through_a_long_step(make_app: Callable[..., Container], clock: FakeClock,
                                                           functions: FunctionIndex) -> None:
    seen: list[str] = []

    def long_step(command: Command, context: OperationContext) -> dict[str, Any]:
        clock.advance(app.settings.lock_lease_seconds * 2)  # one step, longer than a lease
        time.sleep(0.3)  # real time for a few heartbeats
        try:
            app.locks.acquire(storage_lock("teamhome"), "intruder", "op-intruder")
            seen.append("taken")
        except ResourceBusy:
            seen.append("kept")
        context.progress("after the long step", 1, 1)
        return {}

    app = make_app({CREATE: Script(long_step)}, heartbeat_seconds=0.05)
    client = Client(functions, contract=False)
    op_id = create(client)
    functions.deliver(OPERATIONS_QUEUE, messages.encode(op_id))
    assert seen == ["kept"] and operation(client, op_id)["status"] == "Succeeded"


def test_a_lost_lease_stops_the_handler_and_writes_nothing(run: Any, clock: FakeClock) -> None:
    def slow(command: Command, context: OperationContext) -> dict[str, Any]:
        clock.advance(app.settings.lock_lease_seconds + 1)  # this step took too long...
        app.locks.acquire(storage_lock("teamhome"), "usurper", context.operation.id)  # ...a redelivery took it
        context.progress("next", 1, 2)
        raise AssertionError("progress must not be recorded without the lock")

    app, client, pump, _ = run(Script(slow))
    op_id = create(client)
    assert pump.run_once() == 1
    op = operation(client, op_id)
    assert op["status"] == "Running" and op["progress"] is None and "lastError" not in op
    assert pump.failures[0].code.value == "LeaseLost"  # type: ignore[attr-defined]


def test_a_finished_operation_is_never_run_again(run: Any, functions: FunctionIndex) -> None:
    handler = Script("created")
    _, client, pump, _ = run(handler)
    op_id = create(client)
    pump.drain()
    before = operation(client, op_id)
    functions.deliver(OPERATIONS_QUEUE, messages.encode(op_id), dequeue_count=2)  # redelivered
    functions.deliver(POISON_QUEUE, messages.encode(op_id))
    assert operation(client, op_id) == before and len(handler.calls) == 1


def test_kinds_without_a_service_fail_clearly(make_app: Callable[..., Container], functions: FunctionIndex) -> None:
    app = make_app(handlers={})  # a version serving no kind of operation
    conn = app.settings.storage.connection_string
    assert conn
    client = Client(functions, contract=False)
    op_id = create(client)
    QueuePump(functions, conn, OPERATIONS_QUEUE).drain()
    op = operation(client, op_id)
    assert op["status"] == "Failed" and op["error"]["code"] == "UnsupportedOperation"


@pytest.mark.parametrize("body", ["", "garbage", '{"operationId": "not-a-uuid"}',
                                  '{"operationId": "6e0b3f2a-5a43-4b7e-9a57-3f0c2d7d1c11"}'])
def test_messages_naming_no_operation_are_acknowledged_and_change_nothing(
        run: Any, functions: FunctionIndex, body: str) -> None:
    app, *_ = run(Script("created"))
    functions.deliver(OPERATIONS_QUEUE, body)
    functions.deliver(POISON_QUEUE, body)
    assert list(app.state.table("Operations").list_entities()) == []


def test_two_messages_for_one_operation_run_it_once(run: Any, functions: FunctionIndex) -> None:
    """At-least-once delivery: a duplicate message finds the operation finished."""
    handler = Script("created")
    app, client, pump, _ = run(handler)
    op_id = create(client)
    app.queue.send(op_id)
    assert pump.drain() == 2
    assert len(handler.calls) == 1 and operation(client, op_id)["status"] == "Succeeded"


def test_a_handler_that_finishes_after_losing_its_lease_records_nothing(run: Any, clock: FakeClock) -> None:
    def finishes_late(command: Command, context: OperationContext) -> dict[str, Any]:
        clock.advance(app.settings.lock_lease_seconds + 1)
        app.locks.acquire(storage_lock("teamhome"), "redelivery", context.operation.id)
        return {"late": True}

    app, client, pump, _ = run(Script(finishes_late))
    op_id = create(client)
    pump.run_once()
    op = operation(client, op_id)
    assert op["status"] == "Running" and "result" not in op


class FlakyRenewals:
    """The real lock manager, whose first renewal fails as a storage blip would."""

    def __init__(self, real: Any) -> None:
        self.real, self.failed = real, False

    def acquire(self, *args: Any) -> Any:
        return self.real.acquire(*args)

    def release(self, lease: Any) -> None:
        self.real.release(lease)

    def renew(self, lease: Any) -> Any:
        if not self.failed:
            self.failed = True
            raise TransientError("Table Storage could not be reached.")
        return self.real.renew(lease)


def test_a_missed_heartbeat_is_not_a_lost_lease(app: Container, clock: FakeClock) -> None:
    op = app.operations.add(Operation.new(CREATE, "storage/teamhome", {}, clock.now()))
    context = OperationContext(op, app.operations, FlakyRenewals(app.locks), clock)  # type: ignore[arg-type]
    context.leases.append(app.locks.acquire(storage_lock("teamhome"), "me", op.id))
    with pytest.raises(TransientError):
        context.heartbeat()
    context.heartbeat()  # the lease was still ours: the next beat renews it
    clock.advance(app.settings.lock_lease_seconds + 1)
    app.locks.acquire(storage_lock("teamhome"), "usurper", "other")
    for _ in range(2):  # a lease taken over stays lost
        with pytest.raises(LeaseLost):
            context.heartbeat()
