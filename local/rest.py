"""A small Resource Manager REST client for local tools (`python -m local`, `make dev`, test
setup): plain HTTPS with the emulator's CA, long-running operations followed to the end. The
product itself uses the azure-mgmt clients."""

from __future__ import annotations

import json
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

API_VERSIONS = {
    "microsoft.resources": "2024-03-01",
    "microsoft.authorization": "2022-04-01",
    "microsoft.storage": "2026-09-01",
    "microsoft.network": "2026-03-01",
    "microsoft.compute": "2026-04-01",
}
PRIVATE_DNS_API_VERSION = "2024-06-01"


class ArmRequestError(RuntimeError):
    def __init__(self, status: int, body: Any) -> None:
        error = (body or {}).get("error", {}) if isinstance(body, dict) else {}
        # A failed long-running operation arrives in a 200 answer: the status says nothing then.
        where = f"{status} " if status != 200 else ""
        super().__init__(f"{where}{error.get('code', '')}: {error.get('message', body)}")
        self.status, self.code, self.body = status, error.get("code", ""), body


@dataclass(frozen=True)
class Answer:
    status: int
    body: Any
    headers: dict[str, str]


def api_version(path: str) -> str:
    lowered = path.lower()
    if "/privatednszones" in lowered:
        return PRIVATE_DNS_API_VERSION
    marker = lowered.rfind("/providers/")
    if marker < 0:
        return API_VERSIONS["microsoft.resources"]
    namespace = lowered[marker + len("/providers/") :].split("/", 1)[0]
    return API_VERSIONS.get(namespace, API_VERSIONS["microsoft.resources"])


class ArmRest:
    """Calls the emulator as whoever `token` gives an access token for Resource Manager."""

    def __init__(self, base_url: str, ca_path: str, subscription: str, token: Callable[[], str]) -> None:
        self.base_url = base_url.rstrip("/")
        self.subscription = subscription
        self.token = token
        self.context = ssl.create_default_context(cafile=ca_path)

    def group_path(self, group: str) -> str:
        return f"/subscriptions/{self.subscription}/resourceGroups/{group}"

    def call(self, method: str, path_or_url: str, body: Any = None) -> Answer:
        url = path_or_url if path_or_url.startswith("https://") else (
            self.base_url + quote(path_or_url, safe="/?&=$:,%"))  # a $filter's spaces and quotes
        if "api-version=" not in url:
            url += ("&" if "?" in url else "?") + f"api-version={api_version(url)}"
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            url,
            data=data,
            method=method,
            headers={"Authorization": f"Bearer {self.token()}", "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, context=self.context, timeout=120) as response:
                raw = response.read()
                return Answer(response.status, json.loads(raw) if raw else None, dict(response.headers))
        except urllib.error.HTTPError as error:
            raw = error.read()
            raise ArmRequestError(error.code, json.loads(raw) if raw else None) from None

    def wait(self, answer: Answer, path: str | None = None, *, timeout: float = 600) -> Any:
        """Follow a long-running operation to its end; returns the final body."""
        monitor = answer.headers.get("Azure-AsyncOperation") or answer.headers.get("Location")
        if monitor is None:  # an update answered 200 + Azure-AsyncOperation is followed too
            return answer.body
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            polled = self.call("GET", monitor)
            status = (polled.body or {}).get("status") if isinstance(polled.body, dict) else None
            if polled.status == 202 or status in ("InProgress", "Running", "Accepted"):
                time.sleep(min(float(polled.headers.get("Retry-After", 0.05)), 2))
                continue
            if status in ("Failed", "Canceled"):
                raise ArmRequestError(200, polled.body)
            if "Azure-AsyncOperation" in answer.headers and path is not None:
                return self.call("GET", path).body
            return polled.body
        raise TimeoutError(f"operation {monitor} did not finish in {timeout} s")

    def put(self, path: str, body: Any) -> Any:
        return self.wait(self.call("PUT", path, body), path)

    def get(self, path: str) -> Any:
        return self.call("GET", path).body

    def post(self, path: str, body: Any = None) -> Any:
        return self.wait(self.call("POST", path, body if body is not None else {}))

    def delete(self, path: str) -> None:
        self.wait(self.call("DELETE", path))
