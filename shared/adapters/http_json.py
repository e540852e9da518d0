"""Plain HTTPS JSON calls for the two non-Azure-SDK dependencies: the Azure Retail Prices API
(read, paged) and the cost digest's incoming webhook (post). Standard library only: neither
needs an SDK, and importing this module costs the cold start nothing."""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode, urlsplit

from shared.domain.errors import TransientError

log = logging.getLogger(__name__)
TIMEOUT_SECONDS = 15
MAX_PAGES = 100  # a region's Premium Files or one VM size is a page or two; stop a runaway loop
MAX_BODY_BYTES = 8 * 2**20


def _request(url: str, **options: Any) -> urllib.request.Request:
    # The settings accept only https URLs, or http to this machine; links are checked by callers.
    if urlsplit(url).scheme not in ("https", "http"):
        raise TransientError(f"Refusing to call a non-HTTP URL ({urlsplit(url).scheme}:).")
    return urllib.request.Request(url, **options)  # noqa: S310 (scheme checked above)


def _send(request: urllib.request.Request, what: str) -> bytes:
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as answer:  # noqa: S310
            return bytes(answer.read(MAX_BODY_BYTES))
    except urllib.error.HTTPError as err:
        raise TransientError(f"{what} answered HTTP {err.code}.", causes=[str(err.reason)],
                             retry_after=60) from err
    except (urllib.error.URLError, TimeoutError, OSError) as err:
        raise TransientError(f"{what} could not be reached.", causes=[type(err).__name__],
                             retry_after=60) from err


def origin(url: str) -> tuple[str, str, int | None]:
    """Scheme, host and port, the default port made explicit: Azure's NextPageLink names :443."""
    parts = urlsplit(url)
    try:
        port = parts.port or {"https": 443, "http": 80}.get(parts.scheme)
    except ValueError:  # a port that is not a number
        port = -1
    return parts.scheme.lower(), (parts.hostname or "").lower(), port


class RetailPricesApi:
    name = "retail prices"

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint
        self._origin = origin(endpoint)

    def items(self, odata_filter: str) -> list[dict[str, Any]]:
        url: str | None = f"{self.endpoint}?{urlencode({'$filter': odata_filter})}"
        found: list[dict[str, Any]] = []
        for _ in range(MAX_PAGES):
            if url is None:
                return found
            if origin(url) != self._origin:  # follow links only to the API itself
                raise TransientError("The Retail Prices API sent a next page elsewhere.", causes=[url[:200]])
            page = self._page(url)
            found += [item for item in page.get("Items") or [] if isinstance(item, dict)]
            url = page.get("NextPageLink") or None
        raise TransientError(f"The Retail Prices API gave more than {MAX_PAGES} pages.")

    def _page(self, url: str) -> dict[str, Any]:
        request = _request(url, headers={"Accept": "application/json"})
        try:
            page = json.loads(_send(request, "The Retail Prices API"))
        except ValueError as err:
            raise TransientError("The Retail Prices API answered something other than JSON.") from err
        if not isinstance(page, dict):
            raise TransientError("The Retail Prices API answered an unexpected shape.")
        return page


class JsonWebhook:
    def post(self, url: str, body: Mapping[str, Any], idempotency_key: str) -> None:
        request = _request(
            url, data=json.dumps(body).encode(), method="POST",
            headers={"Content-Type": "application/json", "Idempotency-Key": idempotency_key})
        _send(request, "The cost digest webhook")
