"""Queue triggers: run queued operations, and end the ones the queue gave up on.

A handler that returns acknowledges the message; one that raises makes the host deliver it
again (host.json: up to 5 deliveries, then `operations-poison`).
"""

from __future__ import annotations

import azure.functions as func

from shared.domain.messages import OPERATIONS_QUEUE, POISON_QUEUE

from . import core

bp = func.Blueprint()


@bp.queue_trigger(arg_name="msg", queue_name=OPERATIONS_QUEUE, connection="AzureWebJobsStorage")
def run_operation(msg: func.QueueMessage) -> None:
    core.bootstrap.container().worker.process(msg.get_body())


@bp.queue_trigger(arg_name="msg", queue_name=POISON_QUEUE, connection="AzureWebJobsStorage")
def give_up_operation(msg: func.QueueMessage) -> None:
    core.bootstrap.container().worker.give_up(msg.get_body())
