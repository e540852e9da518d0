"""`FunctionsHost`: the HTTP server, a poller per queue trigger and the timer scheduler for one
function app, in this process.

The app reads its settings from `os.environ` (or whatever it was given, e.g. a test container
installed with `shared.bootstrap.use`): the host does not set them, so set them before starting.
`environ` only tells the host where the queue triggers' connection settings are.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from types import TracebackType
from typing import Any, TypeVar

import azure.functions as func

from . import cors
from .bodies import body_limit
from .index import Binding, FunctionIndex
from .queues import QueueOptions, QueuePoller, QueuePump
from .server import HostServer
from .timers import TimerScheduler

log = logging.getLogger(__name__)

DEFAULT_CONNECTION = "AzureWebJobsStorage"  # what a trigger naming no connection uses
T = TypeVar("T")


class InvocationPool(ThreadPoolExecutor):
    """The host's pool for timer and on-demand runs, knowing whether any is still going."""

    def __init__(self) -> None:
        super().__init__(thread_name_prefix="invoke")
        self._going: set[Future[Any]] = set()
        self._going_lock = threading.Lock()

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        future = super().submit(fn, *args, **kwargs)
        with self._going_lock:
            self._going.add(future)
        future.add_done_callback(self._done)
        return future

    def _done(self, future: Future[Any]) -> None:
        with self._going_lock:
            self._going.discard(future)

    def busy(self) -> bool:
        with self._going_lock:
            return bool(self._going)


class FunctionsHost:
    """Serves one app; start once, stop once (or use it as a context manager)."""

    def __init__(self, app: func.FunctionApp, *, port: int = 0, environ: Mapping[str, str] | None = None,
                 host_config: Mapping[str, Any] | None = None) -> None:
        self.index = FunctionIndex(app)
        self._port = port
        self._environ = os.environ if environ is None else environ
        self._queue_options = QueueOptions.from_host_json(host_config or {})
        self._pool = InvocationPool()  # timers and admin runs
        self._scheduler = TimerScheduler(self.index, self._pool)
        self._pollers: list[QueuePoller] = []
        self._server: HostServer | None = None

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the host is not started")
        return f"http://127.0.0.1:{self._server.server_port}"

    def start(self) -> None:
        self._pollers = [poller for binding in self.index.queue_triggers.values()
                         if (poller := self._poller(binding)) is not None]
        # Binds: the port is ours. The platform's settings (CORS, the body limit) come with the app's.
        self._server = HostServer(self._port, self.index, self._run_later,
                                  body_limit=body_limit(self._environ),
                                  cors=cors.Cors.from_setting(self._environ.get(cors.SETTING)))
        for poller in self._pollers:
            poller.start()
        self._scheduler.start()
        # A short poll interval: shutdown() waits for the serving loop to notice it.
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1}, name="http",
                         daemon=True).start()
        log.info("serving %d function(s) at %s", len(self.index.names), self.url)

    def stop(self, grace: float | None = None) -> bool:
        """Stop taking work (HTTP, timers, queues), then let the runs already going finish: all of
        them, or those that do within `grace` seconds (the queue messages of the others are
        released for another delivery; their threads are left running). True when none was left."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        self._scheduler.stop()
        deadline = None if grace is None else time.monotonic() + grace
        released = []
        for poller in self._pollers:
            released += poller.stop(None if deadline is None else max(0.0, deadline - time.monotonic()))
        self._pool.shutdown(wait=grace is None, cancel_futures=grace is not None)
        if deadline is not None:
            while self._pool.busy() and time.monotonic() < deadline:
                time.sleep(0.05)
            if self._pool.busy():
                log.warning("timer or on-demand runs were still going at shutdown; they end with the host")
                return False
        return not released


    def __enter__(self) -> FunctionsHost:
        self.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.stop()

    def _poller(self, binding: Binding) -> QueuePoller | None:
        setting = binding.trigger.connection or DEFAULT_CONNECTION
        connection = self._environ.get(setting, "")
        if not connection:  # as on the host: this listener does not start, the others do
            log.error("%s: app setting %s is not set; its queue is not polled", binding.name, setting)
            return None
        return QueuePoller(QueuePump(self.index, connection, binding.trigger.queue_name, self._queue_options))

    def _run_later(self, run: Callable[[], None]) -> None:
        self._pool.submit(self._logged, run)

    @staticmethod
    def _logged(run: Callable[[], None]) -> None:
        try:
            run()
        except Exception:
            log.exception("an on-demand run failed")
