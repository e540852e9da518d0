"""The OpenAPI document holds against the running service: Schemathesis, every check on, against
the whole local stack (`python -m local dev`, what `make dev` runs, in a process of its own), finds
nothing the allow-list does not name (tests/contract/schemathesis_run.py says what it does)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.contract import schemathesis_run
from tests.emulator.test_dev_stack import dev_stack


def test_the_allow_list_reads_and_gives_a_reason_for_each_entry() -> None:
    allowed = schemathesis_run.allow_list()
    assert allowed and all(entry.reason and entry.answer for entry in allowed)


@pytest.mark.timeout(280)
def test_schemathesis_finds_nothing_the_allow_list_does_not_name(tmp_path: Path,
                                                                record_property: Callable[[str, object], None]) -> None:
    with dev_stack(tmp_path) as (process, _, state):
        assert process.stdout is not None
        output = process.stdout
        # The stack logs every request: read it, or its pipe fills and the host stops answering.
        threading.Thread(target=lambda: [None for _ in output], daemon=True).start()
        settings = dict(line.split("=", 1) for line in (state / "dev.env").read_text().splitlines())
        result = schemathesis_run.run(settings["API_URL"], settings["API_TOKEN"])
    allowed = schemathesis_run.allow_list()
    unexplained = result.unexplained(allowed)
    # Shown at the end of the test session, passed or failed (tests/conftest.py).
    record_property("summary", f"schemathesis: {result.summary} in {result.seconds:.0f} s; "
                               f"{len(unexplained)} not in schemathesis-allow.txt")
    assert result.completed, result.output[-3000:]
    assert not unexplained, "Schemathesis found what the allow-list does not name:\n" + "\n".join(unexplained) + (
        "\n\n" + result.output[-6000:])
