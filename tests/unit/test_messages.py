from __future__ import annotations

import json

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


TRACE = "0af7651916cd43dd8448eb211c80319c"
PARENT = f"00-{TRACE}-b7ad6b7169203331-01"


def test_a_message_carries_the_senders_w3c_trace_context() -> None:
    body = messages.encode(OP, {"traceparent": PARENT, "tracestate": "congo=t61rcWkgMzE"})
    assert json.loads(body) == {"operationId": OP, "traceparent": PARENT, "tracestate": "congo=t61rcWkgMzE"}
    assert messages.read(body) == messages.Message(OP, {"traceparent": PARENT, "tracestate": "congo=t61rcWkgMzE"})
    assert messages.encode(OP, {}) == messages.encode(OP)  # untraced: the message as before


def test_a_message_from_before_trace_context_reads_as_carrying_none() -> None:
    assert messages.read('{"operationId": "' + OP + '"}') == messages.Message(OP, {})


@pytest.mark.parametrize("context", [
    {"traceparent": "garbage"},
    {"traceparent": PARENT.upper()},  # W3C: lower-case hex only
    {"traceparent": f"ff-{TRACE}-b7ad6b7169203331-01"},  # version ff is invalid
    {"traceparent": "00-00000000000000000000000000000000-b7ad6b7169203331-01"},
    {"traceparent": f"00-{TRACE}-0000000000000000-01"},
    {"traceparent": 5},
    {"tracestate": "congo=t61rcWkgMzE"},  # a state without a parent means nothing
])
def test_a_malformed_trace_context_is_dropped_and_the_message_still_names_its_operation(
        context: dict[str, object]) -> None:
    assert messages.read(json.dumps({"operationId": OP, **context})) == messages.Message(OP, {})


def test_an_unusable_tracestate_is_dropped_and_the_traceparent_kept() -> None:
    for state in ["x" * 513, "a=1\nb=2", 7, ""]:
        assert messages.trace_context({"traceparent": PARENT, "tracestate": state}) == {"traceparent": PARENT}


def test_a_delivery_continues_the_trace_its_operation_was_requested_in() -> None:
    request = {"traceparent": PARENT}
    earlier_delivery = {"traceparent": f"00-{TRACE}-00f067aa0ba902b7-01"}
    elsewhere = {"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}
    # the message's sender is the closer parent, when it is in the operation's trace
    assert messages.continued_trace(earlier_delivery, request) == earlier_delivery
    # a message from another trace, or with none (the stall sweep's), continues the record's
    assert messages.continued_trace(elsewhere, request) == request
    assert messages.continued_trace({}, request) == request
    # a record from before traces were kept: the message's, if any
    assert messages.continued_trace(elsewhere, {}) == elsewhere
    assert messages.continued_trace({}, {}) == {}
