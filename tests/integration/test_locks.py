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


class TestShared:
    """Attaches to one storage hold it shared; a resize or delete holds it alone."""

    def test_shared_holders_coexist_and_keep_the_exclusive_one_out(self, app: Container) -> None:
        first = app.locks.acquire(KEY, "attach-1", "op-1", shared=True)
        second = app.locks.acquire(KEY, "attach-2", "op-2", shared=True)
        with pytest.raises(ResourceBusy) as err:
            app.locks.acquire(KEY, "delete", "op-delete")
        assert err.value.holder in {"op-1", "op-2"}
        app.locks.release(first)
        with pytest.raises(ResourceBusy):
            app.locks.acquire(KEY, "delete", "op-delete")
        app.locks.release(second)
        writer = app.locks.acquire(KEY, "delete", "op-delete")  # the last reader gone
        with pytest.raises(ResourceBusy) as err:
            app.locks.acquire(KEY, "attach-3", "op-3", shared=True)
        assert err.value.holder == "op-delete"
        app.locks.release(writer)
        app.locks.release(app.locks.acquire(KEY, "attach-3", "op-3", shared=True))

    def test_a_refused_exclusive_acquire_leaves_nothing_held(self, app: Container) -> None:
        reader = app.locks.acquire(KEY, "attach-1", "op-1", shared=True)
        with pytest.raises(ResourceBusy):
            app.locks.acquire(KEY, "delete", "op-delete")
        app.locks.release(reader)
        app.locks.release(app.locks.acquire(KEY, "attach-2", "op-2", shared=True))  # no writer row was left

    def test_an_expired_reader_neither_blocks_a_writer_nor_keeps_its_lease(self, app: Container,
                                                                          clock: FakeClock) -> None:
        crashed = app.locks.acquire(KEY, "attach-crashed", "op-crashed", shared=True)
        renewed = app.locks.renew(app.locks.acquire(KEY, "attach-live", "op-live", shared=True))
        clock.advance(app.settings.lock_lease_seconds - 5)
        app.locks.renew(renewed)
        clock.advance(10)  # the crashed reader's lease ran out, the renewed one still runs
        with pytest.raises(ResourceBusy) as err:
            app.locks.acquire(KEY, "delete", "op-delete")
        assert err.value.holder == "op-live"
        clock.advance(app.settings.lock_lease_seconds)
        writer = app.locks.acquire(KEY, "delete", "op-delete")
        with pytest.raises(TransientError) as lost:
            app.locks.renew(crashed)
        assert lost.value.code is ErrorCode.LEASE_LOST
        app.locks.release(writer)

    def test_readers_and_writers_racing_never_hold_it_together(self, app: Container) -> None:
        for round_ in range(6):
            key = f"storage:mixed{round_}"
            won, lost = race(8, lambda i, key=key: app.locks.acquire(key, f"o-{i}", f"op-{i}", shared=i % 4 != 0))
            writers = [lease for lease in won if not lease.shared]
            assert len(writers) <= 1 and not (writers and len(won) > 1), won
            assert len(won) + len(lost) == 8 and all(isinstance(err, ResourceBusy) for err in lost)
            for lease in won:
                app.locks.release(lease)
