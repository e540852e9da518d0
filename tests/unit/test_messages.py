from __future__ import annotations

import pytest

from shared.domain import messages

OP = "6e0b3f2a-5a43-4b7e-9a57-3f0c2d7d1c11"


def test_round_trip() -> None:
    assert messages.encode(OP) == '{"operationId":"6e0b3f2a-5a43-4b7e-9a57-3f0c2d7d1c11"}'
    assert messages.decode(messages.encode(OP)) == OP
    assert messages.decode(messages.encode(OP).encode()) == OP


@pytest.mark.parametrize("body", [b"", b"not json", b"[]", b'"x"', b'{"operationId": 5}',
                                  b'{"operationId": "../../x"}', b'{"id": "' + OP.encode() + b'"}',
                                  b"\xff\xfe", b"null"])
def test_anything_else_names_no_operation(body: bytes) -> None:
    assert messages.decode(body) is None


def test_operation_ids_are_canonical_uuids_or_unknown() -> None:
    assert messages.canonical_operation_id(OP.upper()) == OP
    for junk in ["", "abc", "../etc", "6e0b3f2a" * 20, None, 5]:
        assert messages.canonical_operation_id(junk) is None
