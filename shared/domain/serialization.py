"""Dataclass models <-> the JSON shapes of the HTTP contract (camelCase) and of stored records.

One converter for every model, driven by type hints, so the wire shape cannot drift from the
model. A field whose metadata says `omit_if_none` disappears from JSON when it is None (the
contract's optional members such as an operation's `result?`); other None fields stay as `null`,
which is how the contract says "unknown".
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from enum import Enum
from typing import Any, TypeVar

T = TypeVar("T")

OMIT_IF_NONE = {"omit_if_none": True}
_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.capitalize() for part in rest)


def format_time(moment: datetime) -> str:
    """Fixed-width UTC ISO 8601, so stored timestamps also sort as text."""
    if moment.tzinfo is None:
        raise ValueError("naive datetimes are ambiguous; use timezone-aware UTC")
    return moment.astimezone(UTC).strftime(_TIME_FORMAT)


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def to_json(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        out = {}
        for field in dataclasses.fields(value):
            if not field.metadata.get("json", True):
                continue
            item = getattr(value, field.name)
            if item is None and field.metadata.get("omit_if_none"):
                continue
            out[camel(field.name)] = to_json(item)
        return out
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, datetime):
        return format_time(value)
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, Mapping):
        return {str(k): to_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_json(v) for v in value]
    return value


def from_json(cls: type[T], data: Mapping[str, Any]) -> T:
    """Build a dataclass from its JSON shape; unknown keys are ignored, missing ones take the
    field's default (and raise if it has none)."""
    hints = _hints(cls)
    kwargs = {}
    for field in dataclasses.fields(cls):  # type: ignore[arg-type]
        key = camel(field.name)
        if key in data:
            kwargs[field.name] = _convert(hints[field.name], data[key])
    return cls(**kwargs)


_HINTS: dict[type, dict[str, Any]] = {}


def _hints(cls: type) -> dict[str, Any]:
    if cls not in _HINTS:
        _HINTS[cls] = typing.get_type_hints(cls)
    return _HINTS[cls]


def _convert(hint: Any, value: Any) -> Any:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None:
            return None
        (inner,) = [arg for arg in args if arg is not type(None)]
        return _convert(inner, value)
    if origin is tuple:
        return tuple(_convert(args[0], item) for item in value)
    if hint is Any or origin in (dict, Mapping) or hint in (dict, Mapping):
        return value
    if isinstance(hint, type) and issubclass(hint, Enum):
        return hint(value)
    if hint is datetime:
        return parse_time(value)
    if hint is Decimal:
        return Decimal(str(value))
    if dataclasses.is_dataclass(hint):
        return from_json(hint, value)  # type: ignore[arg-type]
    if hint is float:
        return float(value)
    return value


def json_schema(cls: type, ref: Any = None) -> dict[str, Any]:
    """The JSON Schema of `to_json(instance of cls)`, by the same rules; nested models are
    rendered by `ref(model)` (an OpenAPI `$ref`), or inline when no `ref` is given."""
    hints = _hints(cls)
    properties, required = {}, []
    for field in dataclasses.fields(cls):
        if not field.metadata.get("json", True):
            continue
        name = camel(field.name)
        properties[name] = _schema(hints[field.name], ref)
        if not field.metadata.get("omit_if_none"):
            required.append(name)
    return {"type": "object", "properties": properties, "required": required,
            "additionalProperties": False}


def _schema(hint: Any, ref: Any) -> dict[str, Any]:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        (inner,) = [arg for arg in args if arg is not type(None)]
        return {"anyOf": [_schema(inner, ref), {"type": "null"}]}
    if origin is tuple:
        return {"type": "array", "items": _schema(args[0], ref)}
    if hint is Any:
        return {}
    if origin in (dict, Mapping) or hint in (dict, Mapping):
        return {"type": "object"}
    if isinstance(hint, type) and issubclass(hint, Enum):
        return {"type": "string", "enum": [member.value for member in hint]}
    if dataclasses.is_dataclass(hint):
        return ref(hint) if ref else json_schema(hint)  # type: ignore[arg-type]
    simple = {datetime: {"type": "string", "format": "date-time"}, Decimal: {"type": "number"},
              float: {"type": "number"}, bool: {"type": "boolean"}, int: {"type": "integer"},
              str: {"type": "string"}}
    return dict(simple[hint])
