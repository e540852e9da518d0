"""Request bodies, read as the Functions host reads them: framed by Content-Length or chunked
transfer coding, and never more than the body size limit, read in small pieces so a client's
claim of a huge body costs nothing (the limit is checked before a byte is read).

Azure Functions refuses a request body past 100 MB (104,857,600 bytes) with 413 ("Limits",
https://learn.microsoft.com/azure/azure-functions/functions-bindings-http-webhook-trigger#limits);
the app setting FUNCTIONS_REQUEST_BODY_SIZE_LIMIT (bytes) moves the limit
(https://learn.microsoft.com/azure/azure-functions/functions-app-settings).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.message import Message
from io import BufferedIOBase

from shared.domain.errors import ErrorCode

log = logging.getLogger(__name__)

MAX_REQUEST_BODY_BYTES = 100 * 1024 * 1024
BODY_LIMIT_SETTING = "FUNCTIONS_REQUEST_BODY_SIZE_LIMIT"
READ_CHUNK = 64 * 1024  # the most read (and held) per read call
MAX_CHUNK_LINE = 4096  # a chunk-size line with extensions; a trailer line
MAX_TRAILERS = 100
DIGITS = re.compile(r"[0-9]+")
HEX = re.compile(rb"[0-9A-Fa-f]+")


@dataclass
class Refused(Exception):
    """A request the host answers itself, in the error shape, without running a function."""

    status: int
    code: ErrorCode
    message: str
    causes: list[str]
    try_hint: str
    headers: dict[str, str] = field(default_factory=dict)


def too_large(limit: int, what: str) -> Refused:
    return Refused(413, ErrorCode.REQUEST_BODY_TOO_LARGE,
                   "The request body is larger than this host accepts.",
                   [f"{what}; the limit is {limit} bytes"],
                   "send a smaller body (the API's own requests are a few hundred bytes)")


def bad_framing(cause: str) -> Refused:
    return Refused(400, ErrorCode.BAD_REQUEST, "The request body is not framed as HTTP/1.1 requires.",
                   [cause], "send Content-Length with the exact body size, or Transfer-Encoding: chunked")


def body_limit(environ: Mapping[str, str]) -> int:
    """The limit in force: the app setting when it is a positive whole number, else the default."""
    text = (environ.get(BODY_LIMIT_SETTING) or "").strip()
    if not text:
        return MAX_REQUEST_BODY_BYTES
    if DIGITS.fullmatch(text) and int(text) > 0:
        return int(text)
    log.error("%s=%r is not a positive number of bytes; the default %d applies", BODY_LIMIT_SETTING, text,
              MAX_REQUEST_BODY_BYTES)
    return MAX_REQUEST_BODY_BYTES


@dataclass
class Framing:
    """How a request's body is delimited: `length` bytes, or chunked (`length` None)."""

    length: int | None

    @classmethod
    def of(cls, headers: Message, limit: int) -> Framing:
        """Refused (400, 413, 501) for framing the host does not take, before any body is read."""
        codings = [coding.strip().lower() for value in headers.get_all("Transfer-Encoding") or []
                   for coding in value.split(",")]
        lengths = {v.strip() for v in headers.get_all("Content-Length") or []}
        if codings:
            if lengths:  # RFC 9112 §6.1: both may be a smuggling attempt; a server may refuse it
                raise bad_framing("both Transfer-Encoding and Content-Length were sent")
            if codings != ["chunked"]:
                raise Refused(501, ErrorCode.NOT_IMPLEMENTED,
                              "The request's transfer coding is not supported.",
                              [f"Transfer-Encoding: {', '.join(codings)}"], "send the body chunked or plain")
            return cls(None)
        if not lengths:
            return cls(0)
        if len(lengths) > 1 or not DIGITS.fullmatch(next(iter(lengths))):
            raise bad_framing(f"Content-Length {', '.join(sorted(lengths))!r} is not one number of bytes")
        length = int(next(iter(lengths)))
        if length > limit:
            raise too_large(limit, f"Content-Length is {length} bytes")
        return cls(length)


class Body:
    """One request's body, read once on first use. `complete` tells whether the connection holds
    nothing more of it (otherwise the host must not read a next request from it)."""

    def __init__(self, stream: BufferedIOBase, framing: Framing, limit: int) -> None:
        self._stream = stream
        self._framing = framing
        self._limit = limit
        self._read: bytes | None = None
        self.complete = framing.length == 0

    def read(self) -> bytes:
        if self._read is None:
            length = self._framing.length
            self._read = self._chunked() if length is None else self._exactly(length, "the body")
            self.complete = True
        return self._read

    def _exactly(self, size: int, what: str) -> bytes:
        parts, left = [], size
        while left:
            part = self._stream.read(min(left, READ_CHUNK))
            if not part:
                raise bad_framing(f"the connection ended {left} bytes before the end of {what}")
            parts.append(part)
            left -= len(part)
        return b"".join(parts)

    def _line(self) -> bytes:
        line = self._stream.readline(MAX_CHUNK_LINE + 1)
        if len(line) > MAX_CHUNK_LINE or not line.endswith(b"\n"):
            raise bad_framing("a chunk-size or trailer line is too long or unterminated")
        return line.rstrip(b"\r\n")

    def _chunked(self) -> bytes:
        parts, total = [], 0
        while True:
            size_text = self._line().split(b";", 1)[0].strip()
            if not HEX.fullmatch(size_text):
                raise bad_framing(f"chunk size {size_text[:40]!r} is not hexadecimal")
            size = int(size_text, 16)
            if size == 0:
                break
            total += size
            if total > self._limit:
                raise too_large(self._limit, f"the chunks sent so far hold {total} bytes")
            parts.append(self._exactly(size, "a chunk"))
            if self._line():
                raise bad_framing("a chunk is longer than its size says")
        for _ in range(MAX_TRAILERS):  # trailer fields, ignored, up to the empty line
            if not self._line():
                return b"".join(parts)
        raise bad_framing(f"more than {MAX_TRAILERS} trailer fields")
