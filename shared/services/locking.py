"""Short critical sections under a lock of the LockManager, waited for in-process.

The worker takes an operation's locks before it starts and defers the whole operation when one is
busy. Some steps inside an operation need one resource to themselves only for a moment (writing a
storage's network rule): those wait for it here, polling, instead of giving up the operation."""

from __future__ import annotations

import logging
import random
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from shared.domain.errors import ResourceBusy, ServiceError
from shared.ports import LockManager

log = logging.getLogger(__name__)
FIRST_POLL_SECONDS = 0.1
MAX_POLL_SECONDS = 1.0


@contextmanager
def held(locks: LockManager, key: str, holder: str, *, wait_seconds: float = 120,
         sleep: Callable[[float], None] = time.sleep,
         monotonic: Callable[[], float] = time.monotonic) -> Iterator[None]:
    """Run the body holding `key` alone. Waits while someone else holds it (polls growing from
    0.1 s to 1 s, with jitter so waiters do not move in step); past `wait_seconds` the last
    ResourceBusy is raised, and the operation is looked at again later like any busy one."""
    owner = uuid.uuid4().hex
    deadline = monotonic() + wait_seconds
    poll = FIRST_POLL_SECONDS
    while True:
        try:
            lease = locks.acquire(key, owner, holder)
            break
        except ResourceBusy:
            if monotonic() >= deadline:
                raise
            sleep(poll * random.uniform(0.5, 1.5))  # noqa: S311 - jitter, not a secret
            poll = min(MAX_POLL_SECONDS, poll * 2)
    try:
        yield
    finally:
        try:
            locks.release(lease)
        except ServiceError as err:  # the lease runs out on its own
            log.warning("lock %s not released: %s", key, err.message)
