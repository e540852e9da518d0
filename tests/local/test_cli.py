"""`python -m local.host` as a developer or a script runs it: it says where it listens once it
serves, and SIGTERM stops it cleanly."""

from __future__ import annotations

import os
import re
import selectors
import signal
import subprocess
import sys
from pathlib import Path

from tests.local.conftest import call

ROOT = Path(__file__).resolve().parents[2]


def test_the_host_serves_until_sigterm() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "local.host", "--port", "0", "--app", "tests.local.sample_app:app"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, "PORT": "1"})
    try:
        line = first_line(process, timeout=20)
        ready = re.fullmatch(r"Functions host listening on (http://127\.0\.0\.1:\d+)\n", line)
        assert ready, line
        assert call(f"{ready[1]}/api/ping").body == b"pong"
        assert call(f"{ready[1]}/admin/host/status").json()["state"] == "Running"
        process.send_signal(signal.SIGTERM)
        assert process.wait(10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def first_line(process: subprocess.Popen[str], timeout: float) -> str:
    assert process.stdout is not None
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        if not selector.select(timeout):
            raise AssertionError(f"no ready line within {timeout} s")
    return process.stdout.readline()
