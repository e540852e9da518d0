"""The operations queue on Azurite: messages in the encoding the Functions host decodes."""

from __future__ import annotations

import base64
import json

from azure.storage.queue import QueueClient

from shared.bootstrap import Container
from shared.domain.messages import OPERATIONS_QUEUE

OP = "6e0b3f2a-5a43-4b7e-9a57-3f0c2d7d1c11"


def raw_queue(app: Container) -> QueueClient:
    """A client that applies no decoding: it sees the text exactly as stored, as the host does."""
    assert app.settings.storage.connection_string
    return QueueClient.from_connection_string(app.settings.storage.connection_string, OPERATIONS_QUEUE)


def test_messages_are_base64_json_as_host_json_declares(app: Container) -> None:
    app.queue.send(OP)
    (message,) = raw_queue(app).receive_messages(max_messages=5)
    text = base64.b64decode(message.content, validate=True).decode()  # fails if not base64
    assert json.loads(text) == {"operationId": OP}
    with open("host.json") as host:
        assert json.load(host)["extensions"]["queues"]["messageEncoding"] == "base64"


def test_delayed_messages_stay_invisible(app: Container) -> None:
    app.queue.send(OP, delay_seconds=60)
    assert raw_queue(app).peek_messages() == []
    assert raw_queue(app).get_queue_properties().approximate_message_count == 1


def test_probes_answer(app: Container) -> None:
    for probe in app.probes:
        probe.check()
