"""`make demo` as a user runs it on a fresh clone: no stack is running, so it starts one, plays the
manual test plan against it and reports every step passed."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from tests.emulator.conftest import needs_sandbox
from tests.emulator.test_dev_stack import ROOT

pytestmark = needs_sandbox


def test_the_demo_plays_the_manual_test_plan_and_passes(tmp_path: Path) -> None:
    env = {**os.environ, "AZLIN_LOCAL_DIR": str(tmp_path)}
    done = subprocess.run([sys.executable, "-m", "local", "demo"], cwd=ROOT, env=env, text=True,
                          capture_output=True, timeout=420, check=False)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert re.search(r"^demo passed: 10 steps in [\d.]+ s$", done.stdout, re.MULTILINE), output
    assert "reads: hello from demo-" in done.stdout  # a file written on one VM, read on another
    assert "events alone attach them" in done.stdout and "timed out" not in output
    assert "is kept until" in done.stdout  # a delete keeps it for undelete; the purge ends that
    assert "gone: storage account" in done.stdout and "LEFT" not in done.stdout
    assert len(list((tmp_path / "digests").glob("*.json"))) == 1  # the digest reached the inbox once
