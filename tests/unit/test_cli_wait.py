"""The CLI's wait for an operation (azlin_cli/show.py): Ctrl-C stops the wait, never the
operation: exit status 130, and the operation named so it can be followed."""

from __future__ import annotations

from typing import Any

import pytest

from azlin_cli import show


def test_ctrl_c_while_waiting_exits_130_and_names_the_operation(capsys: pytest.CaptureFixture[str],
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    reads: list[str] = []

    def read(operation_id: str) -> dict[str, Any]:
        reads.append(operation_id)
        raise KeyboardInterrupt  # what Ctrl-C raises in the waiting process

    pending = {"id": "0f0f0f0f-0000-4000-8000-000000000001", "kind": "AttachVm", "target": "vm/rg/vm1",
               "status": "Pending"}
    monkeypatch.setattr(show, "POLL_SECONDS", 0.0)
    for quiet in (True, False):
        with pytest.raises(SystemExit) as stopped:
            show.wait(pending, read, quiet=quiet)
        assert stopped.value.code == 130
        assert f"operation {pending['id']} goes on" in capsys.readouterr().err.replace("\n", " ")
    assert reads == [pending["id"], pending["id"]]


def test_the_wait_follows_the_operation_to_its_end(monkeypatch: pytest.MonkeyPatch) -> None:
    answers = iter([{"status": "Running", "progress": {"step": "Running the attach script", "done": 2,
                                                        "total": 4}},
                    {"status": "Succeeded", "progress": {"step": "Done", "done": 4, "total": 4}}])
    base = {"id": "op", "kind": "AttachVm", "target": "vm/rg/vm1"}
    monkeypatch.setattr(show, "POLL_SECONDS", 0.0)
    ended = show.wait({**base, "status": "Pending"}, lambda _: {**base, **next(answers)}, quiet=False)
    assert ended["status"] == "Succeeded"
