"""Queue triggers over a real (Azurite) queue, with the host's delivery rules.

`QueuePump` delivers and settles messages: delete on success; on failure the message is visible
again after `visibilityTimeout`, and the failure of its `maxDequeueCount`-th delivery moves it to
`<queue>-poison` (created if missing); a message that is not valid base64 goes there at once.
Tests step through it with `run_once`/`drain`. `QueuePoller` runs a pump in the background the
way the host's queue listener does.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import logging
import re
import threading
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any

from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.functions.queue import QueueMessage
from azure.storage.queue import QueueClient
from azure.storage.queue import QueueMessage as StoredMessage

from .index import FunctionIndex

log = logging.getLogger(__name__)

MAX_BATCH = 32  # the most messages Queue Storage hands out per receive
MIN_POLLING_INTERVAL = 0.1  # seconds: the host's first back-off step, and its floor
# A received message stays invisible this long while its function runs, renewed at half of it (the
# host's values), so no other delivery of it can start meanwhile.
LEASE_SECONDS = 600
TIMESPAN = re.compile(r"(?:(\d+)\.)?(\d+):(\d+):(\d+(?:\.\d+)?)")


@dataclass(frozen=True)
class QueueOptions:
    """host.json `extensions.queues`, defaulting as the host does; maxPollingInterval defaults to
    2 s, the host's value when it runs locally (1 minute in Azure)."""

    message_encoding: str = "base64"
    max_dequeue_count: int = 5
    visibility_timeout: float = 0.0
    max_polling_interval: float = 2.0
    batch_size: int = 16
    new_batch_threshold: int = 8

    @classmethod
    def from_host_json(cls, host: Mapping[str, Any]) -> QueueOptions:
        queues = host.get("extensions", {}).get("queues", {})
        batch_size = int(queues.get("batchSize", cls.batch_size))
        options = cls(
            message_encoding=str(queues.get("messageEncoding", cls.message_encoding)).lower(),
            max_dequeue_count=int(queues.get("maxDequeueCount", cls.max_dequeue_count)),
            visibility_timeout=timespan_seconds(queues.get("visibilityTimeout", "00:00:00")),
            max_polling_interval=timespan_seconds(queues.get("maxPollingInterval", "00:00:02")),
            batch_size=batch_size,
            new_batch_threshold=int(queues.get("newBatchThreshold", batch_size // 2)))
        options.check()
        return options

    def check(self) -> None:
        if self.message_encoding not in ("base64", "none"):
            raise ValueError(f"messageEncoding {self.message_encoding!r}: base64 or none")
        if not 1 <= self.batch_size <= MAX_BATCH:
            raise ValueError(f"batchSize {self.batch_size}: 1 to {MAX_BATCH}")
        if self.max_dequeue_count < 1 or self.new_batch_threshold < 0:
            raise ValueError("maxDequeueCount must be at least 1, newBatchThreshold at least 0")
        if self.max_polling_interval < MIN_POLLING_INTERVAL:
            raise ValueError(f"maxPollingInterval must be at least {MIN_POLLING_INTERVAL} s")


DEFAULTS = QueueOptions()


def timespan_seconds(text: str) -> float:
    """A .NET TimeSpan as host.json writes it, `[d.]hh:mm:ss[.fff]`, in seconds."""
    found = TIMESPAN.fullmatch(str(text).strip())
    if found is None:
        raise ValueError(f"{text!r} is not a timespan ([d.]hh:mm:ss)")
    days, hours, minutes, seconds = found.groups()
    return int(days or 0) * 86400 + int(hours) * 3600 + int(minutes) * 60 + float(seconds)


class QueuePump:
    """Delivers one queue's messages to its trigger and settles them by the host's rules."""

    def __init__(self, index: FunctionIndex, connection_string: str, queue_name: str,
                 options: QueueOptions = DEFAULTS) -> None:
        self.index = index
        self.queue_name = queue_name
        # No encode/decode policies: the pump decodes itself, so poison gets the message unchanged.
        self.queue = QueueClient.from_connection_string(connection_string, queue_name)
        self.poison = QueueClient.from_connection_string(connection_string, queue_name + "-poison")
        self.options = options
        self.failures: list[BaseException] = []

    def receive(self, max_messages: int, lease_seconds: int) -> list[StoredMessage]:
        try:
            return list(self.queue.receive_messages(max_messages=max_messages,
                                                    visibility_timeout=lease_seconds))
        except ResourceNotFoundError:  # nothing was ever sent to it: as the host, keep polling
            return []

    def run_once(self) -> int:
        """Deliver every message visible now, once; returns how many were delivered."""
        batch = self.receive(MAX_BATCH, LEASE_SECONDS)
        for message in batch:
            self.process(message)
        return len(batch)

    def drain(self, rounds: int = 20) -> int:
        """Deliver until no message is visible; returns the number of deliveries."""
        total = 0
        for _ in range(rounds):
            delivered = self.run_once()
            if not delivered:
                return total
            total += delivered
        raise RuntimeError(f"{self.queue_name} still had messages after {rounds} rounds")

    def process(self, message: StoredMessage, settling: AbstractContextManager[Any] | None = None) -> None:
        """Deliver one received message and settle it; `settling` is held while it is settled
        (the poller's lease, so a renewal cannot change the pop receipt under the settle)."""
        settling = nullcontext() if settling is None else settling
        try:
            body = self._decode(message.content)
        except ValueError:
            log.error("%s: message %s is not valid base64; moved to poison", self.queue_name, message.id)
            with settling:
                self._to_poison(message)
            return
        try:
            self.index.deliver_message(self.queue_name, _trigger_message(message, body))
        except Exception as err:
            log.warning("%s: delivery %d of message %s failed", self.queue_name, message.dequeue_count,
                        message.id, exc_info=True)
            self.failures.append(err)
            with settling:
                self._settle_failure(message)
        else:
            with settling:
                self.queue.delete_message(message)

    def _decode(self, content: str) -> bytes:
        if self.options.message_encoding == "none":
            return content.encode()
        try:
            return base64.b64decode(content, validate=True)
        except binascii.Error as err:
            raise ValueError(str(err)) from None

    def _settle_failure(self, message: StoredMessage) -> None:
        if (message.dequeue_count or 0) >= self.options.max_dequeue_count:
            log.error("%s: message %s failed %d deliveries; moved to poison", self.queue_name, message.id,
                      message.dequeue_count)
            self._to_poison(message)
        else:
            self.queue.update_message(message, visibility_timeout=int(self.options.visibility_timeout))

    def _to_poison(self, message: StoredMessage) -> None:
        with contextlib.suppress(ResourceExistsError):
            self.poison.create_queue()
        self.poison.send_message(message.content)
        self.queue.delete_message(message)


def _trigger_message(message: StoredMessage, body: bytes) -> QueueMessage:
    return QueueMessage(id=message.id, body=body, dequeue_count=message.dequeue_count,
                        insertion_time=message.inserted_on, expiration_time=message.expires_on,
                        time_next_visible=message.next_visible_on, pop_receipt=message.pop_receipt)


class Released(Exception):
    """The host released the message while its function ran (it stopped): the delivery that
    ends later does not settle it."""


class Lease:
    """A received message not settled yet. The poller renews its invisibility while the function
    runs; settling holds the lease so no renewal changes the pop receipt meanwhile, and ends it
    so none hides the message again afterwards."""

    def __init__(self, message: StoredMessage) -> None:
        self.message = message
        self.renewed_at = time.monotonic()
        self._lock = threading.Lock()
        self._settled = False
        self._released = False

    def __enter__(self) -> Lease:
        self._lock.acquire()
        if self._released:
            self._lock.release()
            raise Released(self.message.id)
        return self

    def __exit__(self, *exc: object) -> None:
        self._settled = True
        self._lock.release()

    def renew(self, queue: QueueClient, seconds: int) -> None:
        with self._lock:
            if not self._settled:
                self._take(queue.update_message(self.message, visibility_timeout=seconds).pop_receipt)

    def release(self, queue: QueueClient, seconds: int) -> None:
        """Make the message visible again after `seconds`, as a failed delivery is, instead of
        at the end of its lease: its function did not finish."""
        with self._lock:
            if self._settled:
                return
            self._settled = self._released = True
            queue.update_message(self.message, visibility_timeout=seconds)

    def adopt(self, again: StoredMessage) -> None:
        """The message was received again (this lease lapsed): only the new pop receipt settles it."""
        with self._lock:
            if not self._settled:
                self._take(again.pop_receipt)

    def _take(self, pop_receipt: str | None) -> None:
        self.message.pop_receipt = pop_receipt
        self.renewed_at = time.monotonic()


class QueuePoller:
    """The host's queue listener for one trigger: fetches up to batchSize messages whenever at most
    newBatchThreshold are running, runs them on its own thread pool, and polls again at once
    after a hit, backing off (doubling up to maxPollingInterval) while the queue is empty."""

    def __init__(self, pump: QueuePump, lease_seconds: int = LEASE_SECONDS) -> None:
        self.pump = pump
        self.options = pump.options
        self.lease_seconds = lease_seconds
        self._leases: dict[str, Lease] = {}
        self._leases_lock = threading.Lock()
        self._stopping = threading.Event()
        self._pool = ThreadPoolExecutor(self.options.batch_size + self.options.new_batch_threshold,
                                        thread_name_prefix=f"queue-{pump.queue_name}")
        self._thread = threading.Thread(target=self._poll, name=f"poll-{pump.queue_name}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, grace: float | None = None) -> list[str]:
        """Stop fetching and let the running deliveries finish and settle, for at most `grace`
        seconds when given: the messages still running then are released (see Lease.release) and
        left to their threads. Returns the ids of the messages released."""
        self._stopping.set()
        self._thread.join()
        if grace is None:
            self._pool.shutdown(wait=True)
            return []
        self._pool.shutdown(wait=False, cancel_futures=True)
        deadline = time.monotonic() + grace
        while self._running() and time.monotonic() < deadline:
            time.sleep(0.05)
        with self._leases_lock:
            left = list(self._leases.values())
        for lease in left:
            try:
                lease.release(self.pump.queue, int(self.options.visibility_timeout))
            except Exception as err:  # storage unreachable: the message comes back when its lease ends
                log.warning("%s: message %s not released: %s", self.pump.queue_name, lease.message.id, err)
            else:
                log.warning("%s: message %s was still running at shutdown; released for another delivery",
                            self.pump.queue_name, lease.message.id)
        return [lease.message.id for lease in left]

    def _running(self) -> int:
        with self._leases_lock:
            return len(self._leases)

    def _poll(self) -> None:
        delay = 0.0
        while not self._stopping.wait(min(delay, self.lease_seconds / 2)):
            try:
                self._renew_leases()
                delay = self._fetch(delay)
            except Exception:  # storage unreachable: the listener stays up and tries again
                log.exception("%s: polling failed", self.pump.queue_name)
                delay = self.options.max_polling_interval

    def _fetch(self, delay: float) -> float:
        """Start the messages visible now, if there is room; returns the wait before the next poll."""
        with self._leases_lock:
            running = len(self._leases)
        if running > self.options.new_batch_threshold:
            return MIN_POLLING_INTERVAL
        batch = self.pump.receive(self.options.batch_size, self.lease_seconds)
        for message in batch:
            self._start(Lease(message))
        if batch:
            return 0.0
        return min(max(delay * 2, MIN_POLLING_INTERVAL), self.options.max_polling_interval)

    def _start(self, lease: Lease) -> None:
        with self._leases_lock:
            running = self._leases.get(lease.message.id)
            if running is not None:  # its lease lapsed: never run one message twice at once
                log.warning("%s: message %s is still running; not delivered again", self.pump.queue_name,
                            lease.message.id)
                running.adopt(lease.message)
                return
            self._leases[lease.message.id] = lease
        self._pool.submit(self._deliver, lease)

    def _deliver(self, lease: Lease) -> None:
        try:
            self.pump.process(lease.message, settling=lease)
        except Released:  # the host stopped meanwhile; another delivery settles it
            log.info("%s: message %s ended after it was released", self.pump.queue_name, lease.message.id)
        except Exception:  # settling failed (storage down, or a lapsed lease): it will come back
            log.exception("%s: settling message %s failed", self.pump.queue_name, lease.message.id)
        finally:
            with self._leases_lock:
                del self._leases[lease.message.id]

    def _renew_leases(self) -> None:
        with self._leases_lock:
            leases = list(self._leases.values())
        due = time.monotonic() - self.lease_seconds / 2
        for lease in leases:
            if lease.renewed_at <= due:
                lease.renew(self.pump.queue, self.lease_seconds)
