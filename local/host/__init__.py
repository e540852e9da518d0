"""A local Azure Functions host, standing in for Core Tools' `func start` (never deployed).

It serves any `azure.functions.FunctionApp` in this process with the host's semantics: HTTP
functions under `/api`, the admin and Event Grid webhook endpoints (`server`), queue triggers
polled on Azure Storage or Azurite (`queues`), and NCRONTAB timers (`timers`, `ncrontab`).
Start it with `python -m local.host` or, in tests, `with FunctionsHost(app, environ=...) as host`.
"""

from .host import FunctionsHost
from .index import Binding, FunctionIndex, HttpRoute
from .queues import QueueOptions, QueuePoller, QueuePump

__all__ = ["Binding", "FunctionIndex", "FunctionsHost", "HttpRoute", "QueueOptions", "QueuePoller",
           "QueuePump"]
