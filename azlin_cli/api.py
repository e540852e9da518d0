"""The service's HTTP API, as the CLI calls it: JSON in, JSON out, errors in the service's own
words (`message`, `causes`, `try`)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import requests

from .settings import Config

TIMEOUT_SECONDS = 60


@dataclass
class ApiError(Exception):
    """An answer that is not a success, with the service's error when it sent one."""

    status: int
    code: str
    message: str
    causes: list[str] = field(default_factory=list)
    hint: str | None = None

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


class Api:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.session = requests.Session()
        self._credential: Any = None

    def call(self, method: str, path: str, body: Any = None,
             query: dict[str, str | None] | None = None) -> tuple[int, Any, dict[str, str]]:
        """(status, JSON answer or None, headers); raises ApiError for any status of 400 or more."""
        url = path if path.startswith("http") else f"{self.config.api_url}{path}"
        params = {k: v for k, v in (query or {}).items() if v is not None}
        headers = {"Authorization": f"Bearer {self.token()}", "Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        try:
            answer = self.session.request(method, url, params=params, headers=headers,
                                          data=None if body is None else json.dumps(body),
                                          timeout=TIMEOUT_SECONDS)
        except requests.RequestException as err:
            raise ApiError(0, "Unreachable", f"Could not reach {self.config.api_url}.", [str(err)[:300]],
                           "check the API URL (azlin-storage login), or start `make dev`") from None
        payload = _json_of(answer)
        if answer.status_code >= 400:
            raise _error_of(answer.status_code, payload)
        return answer.status_code, payload, dict(answer.headers)

    def get(self, path: str, **query: str | None) -> Any:
        return self.call("GET", path, query=query)[1]

    def token(self) -> str:
        if self.config.token:
            return self.config.token
        if not self.config.scope:
            raise ApiError(0, "NotSignedIn", "No token for the API.",
                           [f"configuration from {self.config.source or 'nowhere'} names no scope"],
                           "run `azlin-storage login --api-url <url> --scope api://<API client id>/.default`")
        return str(self.credential().get_token(self.config.scope).token)

    def credential(self) -> Any:
        """azure-identity: a device code on a headless box (`login --device-code`, cached on disk),
        else DefaultAzureCredential (the environment, a managed identity, az login, ...)."""
        if self._credential is None:
            from . import signin

            self._credential = signin.credential(self.config)
        return self._credential


def _json_of(answer: requests.Response) -> Any:
    if not answer.content:
        return None
    try:
        return answer.json()
    except ValueError:
        return None


def _error_of(status: int, payload: Any) -> ApiError:
    error = payload.get("error") if isinstance(payload, dict) else None
    if isinstance(error, dict):
        return ApiError(status, str(error.get("code", status)), str(error.get("message", "")),
                        [str(c) for c in error.get("causes") or []], error.get("try"))
    return ApiError(status, str(status), f"The API answered {status} without an error body.")
