"""Queue triggers polled by the host on Azurite, with the host's rules: a handled message is
deleted, a failing one is delivered again until its 5th failure moves it to `<queue>-poison`,
invalid base64 goes there at once, and a long run keeps its message to itself."""

from __future__ import annotations

import base64
import json
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import azure.functions as func
import pytest
from azure.storage.queue import QueueClient, TextBase64EncodePolicy

from local.host import FunctionIndex, FunctionsHost, QueueOptions, QueuePoller, QueuePump
from tests.local.conftest import FAST_QUEUES, eventually

Serve = Callable[..., FunctionsHost]


def queue_app(queue_name: str, handler: Callable[[func.QueueMessage], None]) -> func.FunctionApp:
    app = func.FunctionApp()
    app.queue_trigger(arg_name="msg", queue_name=queue_name, connection="QueueStorage")(handler)
    return app


def send(azurite: str, queue_name: str, text: str, *, encode: bool = True) -> QueueClient:
    policy = TextBase64EncodePolicy() if encode else None
    client = QueueClient.from_connection_string(azurite, queue_name, message_encode_policy=policy)
    client.create_queue()
    client.send_message(text)
    return client


def waiting(client: QueueClient) -> int:
    """Messages on the queue, visible or not."""
    return int(client.get_queue_properties().approximate_message_count)


def poisoned(azurite: str, queue_name: str) -> list[str]:
    poison = QueueClient.from_connection_string(azurite, queue_name + "-poison")
    try:
        return [m.content for m in poison.peek_messages(max_messages=32)]
    except Exception:  # not created yet
        return []


def test_a_handled_message_is_delivered_once_with_its_metadata_and_deleted(
        azurite: str, queue_name: str, serve: Serve) -> None:
    got: list[func.QueueMessage] = []

    def handle(msg: func.QueueMessage) -> None:
        got.append(msg)

    serve(queue_app(queue_name, handle), environ={"QueueStorage": azurite}, host_config=FAST_QUEUES)
    queue = send(azurite, queue_name, json.dumps({"operationId": "x"}))
    eventually(lambda: got and waiting(queue) == 0)
    (message,) = got
    assert message.get_json() == {"operationId": "x"}
    assert message.dequeue_count == 1
    assert message.id and message.pop_receipt
    assert message.insertion_time is not None and message.expiration_time > message.insertion_time


def test_a_failing_message_moves_to_poison_after_five_deliveries(
        azurite: str, queue_name: str, serve: Serve) -> None:
    deliveries: list[int] = []

    def fail(msg: func.QueueMessage) -> None:
        deliveries.append(msg.dequeue_count)
        raise RuntimeError("always")

    serve(queue_app(queue_name, fail), environ={"QueueStorage": azurite}, host_config=FAST_QUEUES)
    queue = send(azurite, queue_name, "hello")
    eventually(lambda: poisoned(azurite, queue_name))
    assert deliveries == [1, 2, 3, 4, 5]
    assert [base64.b64decode(m) for m in poisoned(azurite, queue_name)] == [b"hello"]  # unchanged
    assert waiting(queue) == 0


def test_a_message_that_is_not_base64_goes_to_poison_undelivered(
        azurite: str, queue_name: str, serve: Serve) -> None:
    got: list[func.QueueMessage] = []

    def handle(msg: func.QueueMessage) -> None:
        got.append(msg)

    serve(queue_app(queue_name, handle), environ={"QueueStorage": azurite}, host_config=FAST_QUEUES)
    send(azurite, queue_name, "not base64!", encode=False)
    eventually(lambda: poisoned(azurite, queue_name) == ["not base64!"])
    assert got == []


def test_a_long_run_keeps_its_message_invisible_and_then_settles_it(
        azurite: str, queue_name: str, caplog: pytest.LogCaptureFixture) -> None:
    """With a 2 s lease renewed every second, a 3 s run is the only delivery (the message is
    never received again meanwhile), and its settle, with the renewed pop receipt, deletes it."""
    running, overlapped, finished = threading.Event(), threading.Event(), threading.Event()

    def slow(msg: func.QueueMessage) -> None:
        if running.is_set():
            overlapped.set()
        running.set()
        time.sleep(3)
        finished.set()

    index = FunctionIndex(queue_app(queue_name, slow))
    pump = QueuePump(index, azurite, queue_name, QueueOptions(max_polling_interval=0.2))
    poller = QueuePoller(pump, lease_seconds=2)
    queue = send(azurite, queue_name, "slow")
    poller.start()
    try:
        assert finished.wait(10)
    finally:
        poller.stop()
    assert not overlapped.is_set() and pump.failures == []
    assert waiting(queue) == 0
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING and r.name.startswith("local.")]


def test_options_come_from_host_json() -> None:
    with open("host.json") as file:
        options = QueueOptions.from_host_json(json.load(file))
    assert options == QueueOptions(message_encoding="base64", max_dequeue_count=5, visibility_timeout=30,
                                   max_polling_interval=1, batch_size=8, new_batch_threshold=4)
    defaults = QueueOptions.from_host_json({})
    assert (defaults.max_dequeue_count, defaults.visibility_timeout, defaults.batch_size) == (5, 0, 16)
    assert defaults.max_polling_interval == 2  # the host's local default; 1 minute in Azure


@pytest.mark.parametrize("queues", [{"messageEncoding": "utf8"}, {"batchSize": 33}, {"maxDequeueCount": 0},
                                    {"maxPollingInterval": "00:00:00.01"}, {"visibilityTimeout": "30"}])
def test_invalid_queue_options_are_refused(queues: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        QueueOptions.from_host_json({"extensions": {"queues": queues}})


def test_a_stop_with_a_grace_releases_the_messages_still_running(azurite: str, queue_name: str) -> None:
    """A stop (Ctrl-C) waits `grace` seconds for running functions, then gives their messages
    back at once instead of leaving them hidden for the rest of their 10-minute lease."""
    started, finish = threading.Event(), threading.Event()
    done: list[str] = []

    def handle(msg: func.QueueMessage) -> None:
        started.set()
        finish.wait(30)
        done.append(msg.get_body().decode())

    host = FunctionsHost(queue_app(queue_name, handle), environ={"QueueStorage": azurite},
                         host_config=FAST_QUEUES)
    host.start()
    client = send(azurite, queue_name, "slow")
    assert started.wait(10)
    began = time.monotonic()
    assert host.stop(grace=0.5) is False  # something was left running
    assert time.monotonic() - began < 3
    visible = client.receive_messages(visibility_timeout=60)
    assert [base64.b64decode(m.content) for m in visible] == [b"slow"]  # another delivery can take it
    finish.set()  # the abandoned run ends later: it must not settle a message that is not its own
    time.sleep(0.3)
    assert done == ["slow"] and waiting(client) == 1


def test_a_stop_with_a_grace_returns_true_when_nothing_was_running(azurite: str, queue_name: str) -> None:
    host = FunctionsHost(queue_app(queue_name, lambda msg: None), environ={"QueueStorage": azurite},
                         host_config=FAST_QUEUES)
    host.start()
    assert host.stop(grace=0.5) is True
