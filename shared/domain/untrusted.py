"""Text the service does not control: what a VM reports (its root can make a run's output say
anything: mount sources, errors, file names) and what tags on a VM say. Before it is kept in a
record, written to a log, shown in a Markdown digest or posted to a webhook it is bounded in
length and escaped here, so a VM cannot flood a record, forge log lines, or ping a channel."""

from __future__ import annotations

import re
from typing import Any

MAX_TEXT = 300  # characters of one value kept
MAX_ITEMS = 20  # items of one list, keys of one object
MAX_DEPTH = 4

# Chat mentions that notify everyone: Slack, Teams and GitHub-flavoured renderers.
_MENTION = re.compile(r"@(?=(channel|here|everyone|all|room)\b)", re.IGNORECASE)
_MARKDOWN = re.compile(r"([\\`*_{}\[\]()#+\-!|<>~])")
WORD_JOINER = "\u2060"  # invisible; keeps '@' from starting a mention


def text(value: object, limit: int = MAX_TEXT, *, keep_end: bool = False) -> str:
    """`value` as one line of printable text: control and other unprintable characters written
    as escapes, at most `limit` characters (its end instead when `keep_end`, for error output)."""
    shown = "".join(ch if ch.isprintable() else _escape(ch) for ch in str(value))
    if len(shown) <= limit:
        return shown
    cut = len(shown) - limit
    if keep_end:
        return f"({cut} characters before) …{shown[-limit:]}"
    return f"{shown[:limit]}… ({cut} more characters)"


def from_vm(value: Any, depth: int = 0) -> Any:
    """A VM's JSON answer, bounded: strings as `text`, lists and objects cut to MAX_ITEMS, no
    deeper than MAX_DEPTH; numbers, booleans and null as they are."""
    if isinstance(value, bool) or value is None or isinstance(value, (int, float)):
        return value
    if depth >= MAX_DEPTH:
        return text(value, 80)
    if isinstance(value, list):
        return [from_vm(item, depth + 1) for item in value[:MAX_ITEMS]]
    if isinstance(value, dict):
        return {text(key, 60): from_vm(item, depth + 1) for key, item in list(value.items())[:MAX_ITEMS]}
    return text(value)


def markdown(value: object) -> str:
    """Untrusted text inside a Markdown line: no formatting, links, HTML or mentions survive."""
    return _MENTION.sub("@" + WORD_JOINER, _MARKDOWN.sub(r"\\\1", text(value)))


def _escape(ch: str) -> str:
    code = ord(ch)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"
