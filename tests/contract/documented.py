"""The OpenAPI document as the judge of answers: every answer a test gets from the API must be one
the document lists for its operation (status, required headers, media type) with a body its
schema accepts. `tests.conftest.Client` asks this of every call, so every test of the API is a
test of the contract too; patterns are read as the service reads them (matched whole)."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from functools import cache
from typing import Any

from jsonschema import Draft202012Validator

from functions import openapi
from shared.domain.requests import RequestDefaults

DOCUMENT = openapi.document()  # answers do not depend on the service's request defaults


def strict(schema: Any) -> Any:
    """A schema with each pattern's closing `$` as `\\Z`: Python's `$` also matches before a final
    newline, which the service (matching whole) and ECMA-262 do not."""
    if isinstance(schema, dict):
        return {key: (value[:-1] + r"\Z" if key == "pattern" and isinstance(value, str) and value.endswith("$")
                      else strict(value)) for key, value in schema.items()}
    if isinstance(schema, list):
        return [strict(item) for item in schema]
    return schema


@cache
def _components(defaults: RequestDefaults) -> dict[str, Any]:
    return strict(openapi.document(defaults)["components"])


def validator(schema: dict[str, Any], defaults: RequestDefaults = openapi.NO_DEFAULTS) -> Draft202012Validator:
    """A validator of `schema` (of the document for `defaults`), its references resolved."""
    return Draft202012Validator({**strict(schema), "components": _components(defaults)})


def accepts(schema: dict[str, Any], value: Any, defaults: RequestDefaults = openapi.NO_DEFAULTS) -> bool:
    return validator(schema, defaults).is_valid(value)


def _template(path: str) -> re.Pattern[str]:
    return re.compile(re.sub(r"\\{(\w+)\\}", r"[^/]+", re.escape(path)), re.IGNORECASE)


_PATHS = sorted(((_template(path), path) for path in DOCUMENT["paths"]), key=lambda p: p[1].count("{"))


def operation_for(method: str, path: str) -> tuple[str, dict[str, Any]] | None:
    """The documented operation a request reaches, as the host routes it (literal segments first)."""
    for pattern, template in _PATHS:
        if pattern.fullmatch(path):
            operation = DOCUMENT["paths"][template].get(method.lower())
            if operation is not None:
                return template, operation
    return None


@cache
def _response_validator(template: str, method: str, status: str) -> Draft202012Validator | None:
    response = DOCUMENT["paths"][template][method]["responses"][status]
    content = response.get("content", {})
    schema = content.get("application/json", {}).get("schema")
    return None if schema is None else validator(schema)


def check_answer(method: str, path: str, status: int, headers: Mapping[str, str], mimetype: str | None,
                 body: bytes) -> None:
    """AssertionError unless this answer is one the document gives for the request."""
    found = operation_for(method, path)
    if found is None:
        return  # no operation: the host's own 404 or 405, in the error shape (tests/local)
    template, operation = found
    where = f"{method} {template} answered {status}"
    response = operation["responses"].get(str(status))
    assert response is not None, f"{where}, which the document does not list: {body[:300]!r}"
    sent = {name.lower() for name in headers}
    for name, header in response.get("headers", {}).items():
        assert not header.get("required") or name.lower() in sent, f"{where} without its {name} header"
    content = response.get("content")
    if not content:
        assert not body, f"{where} with a body the document does not give it"
        return
    assert mimetype in content, f"{where} as {mimetype}; the document says {sorted(content)}"
    checker = _response_validator(template, method.lower(), str(status))
    if checker is not None:
        errors = sorted(checker.iter_errors(json.loads(body)), key=lambda e: list(e.absolute_path))
        assert not errors, f"{where} with a body the document does not describe: " + "; ".join(
            f"at {'/'.join(map(str, e.absolute_path)) or 'the top'}: {e.message[:300]}" for e in errors[:3])
