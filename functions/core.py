"""The one door from the trigger functions into `shared`, opened on first use.

Indexing the app happens on every cold start, HTTP included, and needs only the decorated
functions. The domain, services and adapters (tens of dataclasses, then the SDKs) load when a
function first runs: `core.requests.create_storage(...)` imports `shared.domain.requests` then.
Imports are thread-safe (the import system locks each module), so concurrent first calls are fine.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_MODULES = {
    "bootstrap": "shared.bootstrap",
    "digests": "shared.domain.digests",
    "errors": "shared.domain.errors",
    "events": "shared.domain.events",
    "openapi": "functions.openapi",
    "operations": "shared.domain.operations",
    "requests": "shared.domain.requests",
    "serialization": "shared.domain.serialization",
    "tracing": "shared.tracing",
    "validation": "shared.domain.validation",
}

if TYPE_CHECKING:
    from functions import openapi
    from shared import bootstrap, tracing
    from shared.domain import digests, errors, events, operations, requests, serialization, validation

    __all__ = [
        "bootstrap", "digests", "errors", "events", "openapi", "operations", "requests", "serialization",
        "tracing", "validation",
    ]
else:

    def __getattr__(name: str) -> Any:
        if name not in _MODULES:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        module = importlib.import_module(_MODULES[name])
        globals()[name] = module
        return module
