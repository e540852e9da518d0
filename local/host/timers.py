"""Timer triggers: one scheduler thread fires each timer at the next occurrence of its NCRONTAB
schedule (UTC), on the host's invocation pool.

As on the host, a timer never runs twice at once: while a run is going it has no next occurrence,
and one is planned from the moment the run ends (so occurrences missed meanwhile are skipped).
A run that starts more than a second after its occurrence is past due. Failures are logged; the
timer simply waits for its next occurrence.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import Executor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from shared.domain.ncrontab import Schedule

from .index import FunctionIndex

log = logging.getLogger(__name__)

PAST_DUE_AFTER = timedelta(seconds=1)


@dataclass
class Timer:
    name: str
    schedule: Schedule
    run_on_startup: bool
    due: datetime | None = None  # None while a run is going


class TimerScheduler:
    def __init__(self, index: FunctionIndex, pool: Executor) -> None:
        self._index = index
        self._pool = pool
        self._timers = [Timer(name, Schedule.parse(binding.trigger.schedule),
                              bool(binding.trigger.run_on_startup))
                        for name, binding in index.timers.items()]
        self._changed = threading.Condition()
        self._stopping = False
        self._thread = threading.Thread(target=self._loop, name="timers", daemon=True)

    def start(self) -> None:
        now = datetime.now(UTC)
        with self._changed:
            for timer in self._timers:
                if timer.run_on_startup:
                    self._fire(timer, past_due=False)
                else:
                    timer.due = timer.schedule.next_after(now)
                    log.info("timer %s: next run at %s", timer.name, timer.due.isoformat())
        self._thread.start()

    def stop(self) -> None:
        """Fire nothing more; runs already going finish on the pool."""
        with self._changed:
            self._stopping = True
            self._changed.notify()
        self._thread.join()

    def _loop(self) -> None:
        with self._changed:
            while not self._stopping:
                now = datetime.now(UTC)
                for timer in self._timers:
                    if timer.due is not None and timer.due <= now:
                        self._fire(timer, past_due=now - timer.due > PAST_DUE_AFTER)
                self._changed.wait(self._seconds_to_next(now))

    def _seconds_to_next(self, now: datetime) -> float | None:
        upcoming = [timer.due for timer in self._timers if timer.due is not None]
        return max((min(upcoming) - now).total_seconds(), 0.0) if upcoming else None

    def _fire(self, timer: Timer, *, past_due: bool) -> None:
        timer.due = None
        self._pool.submit(self._run, timer, past_due)

    def _run(self, timer: Timer, past_due: bool) -> None:
        try:
            self._index.fire_timer(timer.name, past_due)
        except Exception:
            log.exception("timer %s failed", timer.name)
        finally:
            with self._changed:
                timer.due = timer.schedule.next_after(datetime.now(UTC))
                self._changed.notify()
