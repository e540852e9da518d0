from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from shared.domain.errors import DomainError, ErrorCode, InvalidTransition, TransientError
from shared.domain.operations import (
    TRANSITIONS,
    Operation,
    OperationEvent,
    OperationKind,
    OperationStatus,
    Progress,
    next_status,
)

S, E = OperationStatus, OperationEvent
NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)

# The whole machine, written out cell by cell: (status, event) -> next status, or None (refused).
EXPECTED = {
    (S.PENDING, E.START): S.RUNNING,
    (S.PENDING, E.PROGRESS): None,
    (S.PENDING, E.RETRY): S.PENDING,
    (S.PENDING, E.SUCCEED): None,
    (S.PENDING, E.FAIL): S.FAILED,
    (S.RUNNING, E.START): S.RUNNING,
    (S.RUNNING, E.PROGRESS): S.RUNNING,
    (S.RUNNING, E.RETRY): S.RUNNING,
    (S.RUNNING, E.SUCCEED): S.SUCCEEDED,
    (S.RUNNING, E.FAIL): S.FAILED,
    **{(S.SUCCEEDED, e): None for e in E},
    **{(S.FAILED, e): None for e in E},
}


def test_every_cell_is_specified() -> None:
    assert set(EXPECTED) == {(s, e) for s in S for e in E}


@pytest.mark.parametrize(("status", "event"), sorted(EXPECTED, key=lambda c: (c[0].value, c[1].value)))
def test_cell(status: OperationStatus, event: OperationEvent) -> None:
    expected = EXPECTED[(status, event)]
    if expected is None:
        with pytest.raises(InvalidTransition) as err:
            next_status(status, event)
        assert err.value.code is ErrorCode.INVALID_TRANSITION
        assert status.value in err.value.message
    else:
        assert next_status(status, event) is expected


def test_the_table_holds_no_cell_beyond_the_specification() -> None:
    assert {k: v for k, v in EXPECTED.items() if v is not None} == dict(TRANSITIONS)


def _operation() -> Operation:
    return Operation.new(OperationKind.CREATE_STORAGE, "storage/abc", {"name": "abc"}, NOW)


class TestOperation:
    def test_new_operations_are_pending_with_a_uuid(self) -> None:
        op = _operation()
        assert op.status is S.PENDING and op.attempts == 0
        assert len(op.id) == 36 and op.created_at == op.updated_at == NOW

    def test_a_run_to_success(self) -> None:
        later = NOW + timedelta(seconds=5)
        op = _operation().start(later).advance("Creating the share", 2, 5, later)
        assert op.status is S.RUNNING and op.attempts == 1
        assert op.progress == Progress("Creating the share", 2, 5)
        done = op.succeed({"name": "abc"}, later)
        assert done.status is S.SUCCEEDED and done.result == {"name": "abc"}
        assert done.progress == Progress("Done", 5, 5)
        assert done.updated_at == later and done.created_at == NOW
        assert done.is_terminal

    def test_redelivery_after_a_crash_resumes_and_counts_the_attempt(self) -> None:
        op = _operation().start(NOW).start(NOW)
        assert op.status is S.RUNNING and op.attempts == 2

    def test_failure_records_the_error_shape(self) -> None:
        err = DomainError("nope", causes=["because"], try_hint="other", code=ErrorCode.STORAGE_IN_USE)
        op = _operation().start(NOW).fail(err, NOW)
        assert op.status is S.FAILED
        assert op.error == {"code": "StorageInUse", "message": "nope", "causes": ["because"], "try": "other"}

    def test_a_retry_keeps_the_status_and_remembers_why(self) -> None:
        op = _operation().note_retry(TransientError("busy", code=ErrorCode.RESOURCE_BUSY), NOW)
        assert op.status is S.PENDING and op.last_error == {"code": "ResourceBusy", "message": "busy"}

    @pytest.mark.parametrize(("done", "total"), [(-1, 3), (4, 3)])
    def test_progress_must_be_in_range(self, done: int, total: int) -> None:
        with pytest.raises(ValueError):
            _operation().start(NOW).advance("x", done, total, NOW)

    def test_finished_operations_refuse_everything(self) -> None:
        done = _operation().start(NOW).succeed(None, NOW)
        for attempt in (lambda: done.start(NOW), lambda: done.fail(DomainError("x"), NOW),
                        lambda: done.succeed({}, NOW), lambda: done.advance("x", 0, 1, NOW)):
            with pytest.raises(InvalidTransition):
                attempt()


def test_waiting_for_a_vm_agent_backs_off_until_the_deadline() -> None:
    from shared.domain.operations import Patience

    patience = Patience()
    assert [patience.delay(attempt) for attempt in range(1, 9)] == [5, 10, 20, 40, 80, 160, 240, 240]
    assert patience.delay(10_000) == 240
    created = datetime(2026, 1, 1, tzinfo=UTC)
    operation = Operation.new(OperationKind.ATTACH_VM, "vm/rg/vm1", {}, created)
    assert not patience.expired(operation, created + timedelta(minutes=19, seconds=59))
    assert patience.expired(operation, created + timedelta(minutes=20))


def test_a_busy_resource_is_looked_at_soon_then_less_often() -> None:
    from shared.domain.errors import ResourceBusy
    from shared.services.worker import MAX_DEFER_SECONDS, defer_seconds

    operation = Operation.new(OperationKind.ATTACH_VM, "vm/rg/vm1", {}, NOW)
    busy = ResourceBusy("storage:x is busy")
    assert defer_seconds(operation, busy, NOW) == 1  # a short first look
    assert defer_seconds(operation, busy, NOW + timedelta(seconds=8)) == 4  # half the time waited
    assert defer_seconds(operation, busy, NOW + timedelta(minutes=5)) == MAX_DEFER_SECONDS
    ending = ResourceBusy("busy", holder="op-2", until=NOW + timedelta(minutes=5, seconds=2))
    assert defer_seconds(operation, ending, NOW + timedelta(minutes=5)) == 3  # the holder's lease ends first
