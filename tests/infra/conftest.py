"""The infra tests reuse the whole-service fixtures of tests/functions (Azurite, the emulator,
the indexed app) for the one test that drives a real run; importing a fixture makes it usable."""

from tests.functions.conftest import stack

__all__ = ["stack"]
