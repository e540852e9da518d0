"""Timers fired by the host's scheduler on their NCRONTAB schedules: on time, never overlapping
themselves, surviving their own failures, and at startup when asked."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import azure.functions as func

from local.host import FunctionsHost
from tests.local.conftest import eventually

Serve = Callable[..., FunctionsHost]


def test_a_timer_every_second_fires_repeatedly_without_overlapping_itself(serve: Serve) -> None:
    """Each run of `slow` takes 1.1 s: a scheduler that ignored the running one would start the
    next a second later, while it still runs."""
    runs: list[tuple[float, float, bool]] = []
    failures: list[float] = []
    lock = threading.Lock()
    app = func.FunctionApp()

    @app.schedule(schedule="*/1 * * * * *", arg_name="timer")
    def slow(timer: func.TimerRequest) -> None:
        started = time.monotonic()
        time.sleep(1.1)
        with lock:
            runs.append((started, time.monotonic(), timer.past_due))

    @app.schedule(schedule="*/1 * * * * *", arg_name="timer")
    def failing(timer: func.TimerRequest) -> None:
        failures.append(time.monotonic())
        raise RuntimeError("bug")

    serve(app)
    eventually(lambda: len(runs) >= 2 and len(failures) >= 2, timeout=4.5)
    with lock:
        (_, first_end, first_late), (second_start, _, second_late) = runs[:2]
    assert second_start >= first_end
    assert not first_late and not second_late


def test_run_on_startup_fires_at_once(serve: Serve) -> None:
    ran: list[Any] = []
    app = func.FunctionApp()

    @app.schedule(schedule="0 0 0 1 1 *", arg_name="timer", run_on_startup=True)
    def warm_up(timer: func.TimerRequest) -> None:
        ran.append(timer.past_due)

    serve(app)
    eventually(lambda: ran == [False], timeout=2)
