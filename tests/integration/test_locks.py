"""Per-resource locks on Table Storage (Azurite): leases, expiry, and races between workers."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest

from shared.adapters.tables import TableLockManager
from shared.bootstrap import Container
from shared.domain.errors import ErrorCode, ResourceBusy, TransientError
from shared.ports import Lease
from tests.fakes import FakeClock

KEY = "storage:teamhome"


def race(workers: int, attempt: Callable[[int], Lease]) -> tuple[list[Lease], list[Exception]]:
    """Start `workers` threads at the same instant, each calling attempt(i) once."""
    barrier = threading.Barrier(workers)
    won: list[Lease] = []
    lost: list[Exception] = []

    def run(i: int) -> None:
        barrier.wait()
        try:
            won.append(attempt(i))
        except Exception as err:  # collected, asserted below
            lost.append(err)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return won, lost


class TestLease:
    def test_held_lock_is_busy_until_released(self, app: Container) -> None:
        lease = app.locks.acquire(KEY, "owner-a", "op-a")
        with pytest.raises(ResourceBusy) as err:
            app.locks.acquire(KEY, "owner-b", "op-b")
        assert "op-a" in err.value.message and err.value.code is ErrorCode.RESOURCE_BUSY
        app.locks.release(lease)
        assert app.locks.acquire(KEY, "owner-b", "op-b").owner == "owner-b"

    def test_expired_lease_is_taken_over_and_the_old_holder_loses_it(self, app: Container,
                                                                     clock: FakeClock) -> None:
        old = app.locks.acquire(KEY, "owner-a", "op-a")
        clock.advance(app.settings.lock_lease_seconds + 1)
        new = app.locks.acquire(KEY, "owner-b", "op-b")
        with pytest.raises(TransientError) as err:
            app.locks.renew(old)
        assert err.value.code is ErrorCode.LEASE_LOST
        app.locks.release(old)  # a stale release must not free the new holder's lock
        with pytest.raises(ResourceBusy):
            app.locks.acquire(KEY, "owner-c", "op-c")
        app.locks.release(new)

    def test_renewal_extends_the_lease(self, app: Container, clock: FakeClock) -> None:
        lease = app.locks.acquire(KEY, "owner-a", "op-a")
        clock.advance(app.settings.lock_lease_seconds - 10)
        renewed = app.locks.renew(lease)
        assert renewed.expires_at > lease.expires_at
        clock.advance(20)  # past the first lease, within the renewed one
        with pytest.raises(ResourceBusy):
            app.locks.acquire(KEY, "owner-b", "op-b")

    def test_release_of_a_missing_lock_is_fine(self, app: Container) -> None:
        lease = app.locks.acquire(KEY, "owner-a", "op-a")
        app.locks.release(lease)
        app.locks.release(lease)

    def test_locks_are_independent_per_resource(self, app: Container) -> None:
        app.locks.acquire("vm:rg:vm1", "a", "op-a")
        app.locks.acquire("vm:rg:vm2", "b", "op-b")


class TestRaces:
    def test_two_workers_racing_for_a_free_lock(self, app: Container) -> None:
        for round_ in range(10):
            key = f"storage:race{round_}"
            won, lost = race(2, lambda i, key=key: app.locks.acquire(key, f"owner-{i}", f"op-{i}"))
            assert len(won) == 1, (won, lost)
            assert len(lost) == 1 and isinstance(lost[0], ResourceBusy)

    def test_many_workers_racing_for_an_expired_lock(self, app: Container, clock: FakeClock) -> None:
        """Each worker has its own clients (as separate instances would); all see the lease as
        expired, all try to take it over with the ETag they read: exactly one succeeds."""
        app.locks.acquire(KEY, "crashed", "op-crashed")
        clock.advance(app.settings.lock_lease_seconds + 1)
        managers = [TableLockManager(Container(app.settings, clock=clock).state, clock,
                                     app.settings.lock_lease_seconds) for _ in range(8)]
        won, lost = race(8, lambda i: managers[i].acquire(KEY, f"owner-{i}", f"op-{i}"))
        assert len(won) == 1, (won, lost)
        assert len(lost) == 7 and all(isinstance(err, ResourceBusy) for err in lost)
        holder = won[0]
        with pytest.raises(ResourceBusy):
            app.locks.acquire(KEY, "late", "op-late")
        app.locks.release(holder)
