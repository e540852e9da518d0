"""The emulator's control API as tools in another process call it (`python -m local`, `make demo`):
the tenant's people and their access tokens. Loopback only, like the emulator itself."""

from __future__ import annotations

import json
import ssl
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

TOKEN_REUSE_SECONDS = 50 * 60  # tokens live an hour; a fresh one well before that


class ControlError(RuntimeError):
    pass


class Control:
    def __init__(self, base_url: str, ca_path: str) -> None:
        self.base_url = base_url.rstrip("/")
        self.context = ssl.create_default_context(cafile=ca_path)

    def call(self, method: str, route: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(f"{self.base_url}/_emulator/{route}", data=data, method=method,
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, context=self.context, timeout=30) as answer:
                raw = answer.read()
                return json.loads(raw) if raw else None
        except urllib.error.HTTPError as error:
            detail = json.loads(error.read() or b"{}").get("error", {})
            raise ControlError(f"{detail.get('code', error.code)}: {detail.get('message', '')}") from None

    def add_user(self, name: str, groups: list[str] | None = None) -> dict[str, Any]:
        answer: dict[str, Any] = self.call("POST", "principals", {"name": name, "kind": "User",
                                                                   "groups": groups or []})
        return answer

    def principal(self, name: str) -> dict[str, Any]:
        for found in self.call("GET", "principals")["value"]:
            if name.lower() in (str(found["name"]).lower(), str(found["objectId"]).lower()):
                return dict(found)
        raise ControlError(f"no user, group or service principal named {name!r} (python -m local user add)")

    def token(self, name: str, *, arm: bool = False, lifetime: int = 3600) -> str:
        answer = self.call("POST", "tokens", {"principal": name, "for": "arm" if arm else "api",
                                              "lifetimeSeconds": lifetime})
        return str(answer["accessToken"])

    def token_source(self, name: str, *, arm: bool = False) -> Callable[[], str]:
        """`name`'s tokens, each reused until it is 50 minutes old."""
        lock = threading.Lock()
        held: list[tuple[str, float]] = []

        def current() -> str:
            with lock:
                if not held or time.monotonic() - held[0][1] > TOKEN_REUSE_SECONDS:
                    held[:] = [(self.token(name, arm=arm), time.monotonic())]
                return held[0][0]

        return current
