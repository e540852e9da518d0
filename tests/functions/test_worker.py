"""The worker framework end to end: an HTTP request records and queues an operation in Azurite, a
queue pump with the host's delivery rules hands the real message to the `operations` trigger, and
failed deliveries end in `operations-poison` for the poison trigger. Test handlers stand in for
the storage and attachment services of later issues."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from local.functions_host import FunctionIndex, QueuePump
from shared.bootstrap import Container
from shared.domain import messages
from shared.domain.commands import Command, CreateStorage, storage_lock
from shared.domain.errors import Conflict, ErrorCode, ResourceBusy, TransientError
from shared.domain.messages import OPERATIONS_QUEUE, POISON_QUEUE
from shared.domain.operations import OperationKind
from shared.services.worker import OperationContext
from tests.conftest import Client
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
        return app, Client(functions), pump, poison

    yield start


def create(client: Client) -> str:
    answer = client.post("/api/storage", {"name": "teamhome", "resourceGroup": "rg1"})
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


def test_a_held_lock_leaves_the_operation_pending_until_it_is_free(run: Any) -> None:
    app, client, pump, _ = run(Script("created"))
    held = app.locks.acquire(storage_lock("teamhome"), "someone", "op-elsewhere")
    op_id = create(client)
    assert pump.run_once() == 1
    waiting = operation(client, op_id)
    assert waiting["status"] == "Pending" and waiting["attempts"] == 0
    assert waiting["lastError"]["code"] == "ResourceBusy" and "op-elsewhere" in waiting["lastError"]["message"]
    assert isinstance(pump.failures[0], ResourceBusy)
    app.locks.release(held)
    assert pump.drain() == 1
    assert operation(client, op_id)["status"] == "Succeeded"


def test_a_crashed_delivery_is_resumed_once_its_lease_expires(run: Any, clock: FakeClock) -> None:
    """A worker died mid-operation: the op is Running at step 1 of 2 and its lock is still held.
    The redelivered message waits for the lease, then resumes from the recorded progress."""
    def resumable(command: Command, context: OperationContext) -> dict[str, Any]:
        done = context.operation.progress.done if context.operation.progress else 0
        if done < 1:
            context.progress("Step one", 1, 2)
        context.progress("Step two", 2, 2)
        return {"resumedAfter": done}

    app, client, pump, _ = run(Script(resumable))
    op_id = create(client)
    crashed = app.operations.get(op_id)
    assert crashed is not None
    app.operations.save(crashed.start(clock.now()).advance("Step one", 1, 2, clock.now()))
    app.locks.acquire(storage_lock("teamhome"), "dead-worker", op_id)

    assert pump.run_once() == 1
    assert operation(client, op_id)["lastError"]["code"] == "ResourceBusy"
    clock.advance(app.settings.lock_lease_seconds + 1)
    assert pump.drain() == 1
    op = operation(client, op_id)
    assert op["status"] == "Succeeded" and op["result"] == {"resumedAfter": 1} and op["attempts"] == 2


def test_a_lost_lease_stops_the_handler_at_its_next_step(run: Any, clock: FakeClock) -> None:
    def slow(command: Command, context: OperationContext) -> dict[str, Any]:
        if context.operation.attempts == 1:
            clock.advance(app.settings.lock_lease_seconds + 1)  # this step took too long...
            app.locks.acquire(storage_lock("teamhome"), "usurper", "op-other")  # ...and it was taken
            context.progress("next", 1, 2)
            raise AssertionError("progress must not be recorded without the lock")
        return {"ok": True}

    app, client, pump, _ = run(Script(slow))
    op_id = create(client)
    assert pump.run_once() == 1
    op = operation(client, op_id)
    assert op["lastError"]["code"] == "LeaseLost" and op["progress"] is None


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
    app = make_app()  # the real container: no services registered yet
    conn = app.settings.storage.connection_string
    assert conn
    client = Client(functions)
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
