"""Child processes that die with the process that started them, however it ends (even SIGKILL):
Azurite and the sandboxes' namespace holders must never outlive a test run or `make dev`.

Linux sends a child's "parent death signal" when the *thread* that forked it ends, not the process,
and the emulator starts VMs from short-lived worker threads. So every such child is forked by one
thread that lives as long as the process."""

from __future__ import annotations

import ctypes
import queue
import signal
import subprocess
import threading
from concurrent.futures import Future
from typing import Any

PR_SET_PDEATHSIG = 1
_requests: queue.Queue[tuple[list[str], dict[str, Any], Future[subprocess.Popen[bytes]]]] = queue.Queue()
_started = threading.Lock()
_spawner: threading.Thread | None = None


def _die_with_parent() -> None:
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def _serve() -> None:
    while True:
        command, options, result = _requests.get()
        try:
            result.set_result(subprocess.Popen(command, preexec_fn=_die_with_parent, **options))  # noqa: PLW1509
        except BaseException as error:
            result.set_exception(error)


def spawn(command: list[str], **options: Any) -> subprocess.Popen[bytes]:
    """`subprocess.Popen(command, **options)`, killed (SIGKILL) when this process ends."""
    global _spawner  # noqa: PLW0603
    with _started:
        if _spawner is None:
            _spawner = threading.Thread(target=_serve, name="child-spawner", daemon=True)
            _spawner.start()
    result: Future[subprocess.Popen[bytes]] = Future()
    _requests.put((command, options, result))
    return result.result()
