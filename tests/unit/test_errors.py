from __future__ import annotations

from shared.domain.errors import (
    ConcurrentUpdate,
    ConfigurationError,
    Conflict,
    DomainError,
    ErrorCode,
    NotFound,
    ResourceBusy,
    ServiceError,
    TransientError,
    ValidationError,
)


def test_the_contract_error_shape() -> None:
    err = Conflict("Storage x is in use.", causes=["attached: vm1"], try_hint="detach first",
                   code=ErrorCode.STORAGE_IN_USE)
    assert err.to_dict() == {"code": "StorageInUse", "message": "Storage x is in use.",
                             "causes": ["attached: vm1"], "try": "detach first"}


def test_empty_causes_and_hints_are_left_out() -> None:
    assert NotFound("gone").to_dict() == {"code": "NotFound", "message": "gone"}


def test_the_seed_rendering_for_logs() -> None:
    text = str(ValidationError("bad size", causes=["got 5"], try_hint="use 100"))
    assert text == "[ValidationError] bad size\n  - got 5\nTry: use 100"


def test_domain_and_transient_errors_are_separate_families() -> None:
    for final in (ValidationError("x"), NotFound("x"), Conflict("x")):
        assert isinstance(final, DomainError) and not isinstance(final, TransientError)
    for retry in (TransientError("x"), ResourceBusy("x"), ConcurrentUpdate("x"), ConfigurationError("x")):
        assert isinstance(retry, TransientError) and not isinstance(retry, DomainError)
    assert all(isinstance(e, ServiceError) for e in (ValidationError("x"), ResourceBusy("x")))


def test_transient_errors_carry_a_retry_delay() -> None:
    assert TransientError("slow down", retry_after=30).retry_after == 30
    assert ResourceBusy("x").code is ErrorCode.RESOURCE_BUSY


def test_codes_are_unique_and_stable_strings() -> None:
    values = [code.value for code in ErrorCode]
    assert len(values) == len(set(values))
    assert ErrorCode("StorageInUse") is ErrorCode.STORAGE_IN_USE
