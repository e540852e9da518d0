"""CORS as the platform answers it for a Function App, before any function runs.

On Azure the Function App's CORS setting (`siteConfig.cors.allowedOrigins`; Core Tools:
`Host.CORS` in local.settings.json or `func start --cors`, a comma-separated list) makes the
platform answer preflights and add `Access-Control-Allow-Origin` to responses for the origins
listed, `*` for any (https://learn.microsoft.com/azure/azure-functions/functions-how-to-use-azure-function-app-settings#cors).
Locally the setting is `CORS_ALLOWED_ORIGINS`. As ASP.NET Core's CORS middleware, which serves it
in the host, a preflight is answered 204 whatever its origin; only an allowed origin gets the
`Access-Control-*` headers, so the browser refuses the others.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from email.message import Message

SETTING = "CORS_ALLOWED_ORIGINS"
# What a portal sends the API: its token, JSON, and the key that makes a write idempotent.
ALLOWED_HEADERS = ("Authorization", "Content-Type", "Idempotency-Key")
DEFAULT_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")  # a path no function serves
MAX_AGE_SECONDS = 3600  # browsers cache a preflight this long (Chromium caps it at 7200)


def _origin_key(origin: str) -> str:
    return origin.strip().rstrip("/").lower()


@dataclass(frozen=True)
class Cors:
    origins: frozenset[str]  # as _origin_key leaves them
    any_origin: bool

    @classmethod
    def from_setting(cls, text: str | None) -> Cors | None:
        """The setting's origins; None when it is unset or empty (CORS off)."""
        origins = {_origin_key(part) for part in (text or "").split(",") if part.strip()}
        if not origins:
            return None
        return cls(frozenset(origins - {"*"}), "*" in origins)

    def allow_origin(self, origin: str | None) -> str | None:
        """The Access-Control-Allow-Origin value for a request from `origin`, None when refused."""
        if not origin:
            return None
        if self.any_origin:
            return "*"
        return origin if _origin_key(origin) in self.origins else None

    def response_headers(self, request_headers: Message) -> dict[str, str]:
        """What an actual (not preflight) response carries."""
        headers = {"Vary": "Origin"}  # the answer depends on Origin: caches must key on it
        allowed = self.allow_origin(request_headers.get("Origin"))
        if allowed is not None:
            headers["Access-Control-Allow-Origin"] = allowed
        return headers

    def preflight_headers(self, request_headers: Message, methods: Iterable[str]) -> dict[str, str]:
        """The answer to a preflight: the methods the path takes and the headers a portal sends."""
        headers = self.response_headers(request_headers)
        if "Access-Control-Allow-Origin" not in headers:
            return headers
        headers.update({
            "Access-Control-Allow-Methods": ", ".join(sorted(methods) or DEFAULT_METHODS),
            "Access-Control-Allow-Headers": ", ".join(ALLOWED_HEADERS),
            "Access-Control-Max-Age": str(MAX_AGE_SECONDS),
        })
        return headers


def is_preflight(method: str, headers: Message) -> bool:
    asked = headers.get("Access-Control-Request-Method")
    return method == "OPTIONS" and bool(headers.get("Origin") and asked)
