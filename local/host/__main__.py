"""`python -m local.host [--port N] [--app module:attribute] [--host-json path]`: serve a function
app as `func start` would, with the app settings taken from the environment. Prints one line,
`Functions host listening on http://127.0.0.1:PORT`, once it serves; SIGTERM or Ctrl-C stop it
within a few seconds: as with Core Tools, functions still running then end with the process (their
queue messages are released for another delivery, so the work runs again: at least once)."""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any

import azure.functions as func

from .host import FunctionsHost

DEFAULT_PORT = 7071  # as Core Tools
SHUTDOWN_GRACE_SECONDS = 3.0  # how long running functions get to finish once asked to stop


def main(argv: list[str] | None = None) -> int:
    args = _arguments(argv)
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("azure").setLevel(logging.WARNING)  # the SDKs log every request at INFO
    host = FunctionsHost(_load_app(args.app), port=args.port, host_config=_read_host_json(args.host_json))
    stopping = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopping.set())
    host.start()
    print(f"Functions host listening on {host.url}", flush=True)
    stopping.wait()
    if not host.stop(grace=SHUTDOWN_GRACE_SECONDS):
        # The interpreter would wait for the threads still running functions: end them now.
        logging.shutdown()
        sys.stdout.flush()
        os._exit(0)
    return 0


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m local.host", description=__doc__)
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", DEFAULT_PORT)),
                        help="0 takes a free port (default: $PORT, else 7071)")
    parser.add_argument("--app", default="function_app:app", help="module:attribute of the FunctionApp")
    parser.add_argument("--host-json", type=Path, default=Path("host.json"))
    parser.add_argument("--log-level", default="INFO")
    return parser.parse_args(argv)


def _load_app(reference: str) -> func.FunctionApp:
    module, _, attribute = reference.partition(":")
    app = getattr(importlib.import_module(module), attribute or "app")
    if not isinstance(app, func.FunctionApp):
        raise SystemExit(f"{reference} is not an azure.functions.FunctionApp")
    return app


def _read_host_json(path: Path) -> dict[str, Any]:
    """host.json, or the host's defaults when there is none."""
    if not path.exists():
        logging.getLogger(__name__).warning("%s not found: host defaults apply", path)
        return {}
    config: dict[str, Any] = json.loads(path.read_text())
    return config


if __name__ == "__main__":
    raise SystemExit(main())
