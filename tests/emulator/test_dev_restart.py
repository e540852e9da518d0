"""`make dev KEEP=1` stopped with Ctrl-C while the worker is busy, then started again at once on
the same port: it stops within seconds without a traceback (the host before Azurite), the port is
free at once (connections in TIME-WAIT hold none), and the second start goes on with the storage,
the VM and its disk, and the records of the first."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from tests.emulator.conftest import needs_sandbox
from tests.emulator.test_dev_stack import READY, ROOT, cli, get, post, wait_for_operation

pytestmark = needs_sandbox
STOPPED_WITHIN = 10.0  # seconds from Ctrl-C to the last process gone, work in flight (3 s of it for functions)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_dev(env: dict[str, str], *args: str) -> tuple[subprocess.Popen[str], str]:
    """`python -m local dev` in a process group of its own, as a terminal runs it (Ctrl-C there
    signals the whole foreground group); returns it and its ready line."""
    process = subprocess.Popen([sys.executable, "-m", "local", "dev", *args], cwd=ROOT, env=env, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    assert process.stdout is not None
    deadline, lines = time.monotonic() + 90, []
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        lines.append(line)
        if READY.search(line) or not line:
            break
    if not READY.search(lines[-1]):
        process.kill()
        raise AssertionError("".join(lines) + (process.stdout.read() or ""))
    return process, lines[-1]


def settings_of(state: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in (state / "dev.env").read_text().splitlines())


def run_in_vm(env: dict[str, str], vm: str, script: str, timeout: float = 30) -> str:
    """The VM's answer to a shell script, waiting for its agent after a boot."""
    deadline = time.monotonic() + timeout
    while True:
        ran = cli(env, "vm", "run", vm, "--", "sh", "-c", script)
        if ran.returncode == 0 or time.monotonic() > deadline:
            assert ran.returncode == 0, ran.stderr
            return ran.stdout
        time.sleep(1)


def test_ctrl_c_with_work_in_flight_then_keep_goes_on_at_once_on_the_same_port(tmp_path: Path) -> None:
    env = {**os.environ, "PORT": str(free_port()), "AZLIN_LOCAL_DIR": str(tmp_path)}
    first, ready = start_dev(env, "--keep")
    try:
        assert "fresh, kept in" in ready, ready
        settings = settings_of(tmp_path)
        api, alice = settings["API_URL"], settings["API_TOKEN"]
        created = cli(env, "vm", "create", "keep1")
        assert created.returncode == 0, created.stderr
        kept_name, busy_name = f"kept{os.getpid()}", f"busy{os.getpid()}"
        made = wait_for_operation(api, post(f"{api}/storage", {"name": kept_name}, alice), alice)
        assert made["status"] == "Succeeded", made
        assert run_in_vm(env, "keep1", "echo on-disk > /root/mark && cat /root/mark") == "on-disk\n"

        # Another create is running on the host's worker (ARM calls in flight) when Ctrl-C comes.
        busy = post(f"{api}/storage", {"name": busy_name}, alice)
        time.sleep(1.5)
        with urllib.request.urlopen(urllib.request.Request(
                busy["Location"], headers={"Authorization": f"Bearer {alice}"}), timeout=10) as answer:
            assert json.loads(answer.read())["status"] in ("Pending", "Running")
        began = time.monotonic()
        os.killpg(first.pid, signal.SIGINT)
        output, _ = first.communicate(timeout=60)
        stopped_in = time.monotonic() - began
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    assert first.returncode == 0, output
    assert "Traceback" not in output, output
    assert stopped_in < STOPPED_WITHIN, f"stopped in {stopped_in:.1f} s:\n{output}"

    # At once, on the same port (the API's connections of a moment ago are in TIME-WAIT).
    second, ready = start_dev(env, "--keep")
    try:
        assert f"kept storage, VMs and records from {tmp_path}" in ready, ready
        settings = settings_of(tmp_path)
        assert settings["API_URL"] == api
        alice = settings["API_TOKEN"]
        assert get(f"{api}/storage/{kept_name}/status", alice) == 200  # the record, and the account in ARM
        listed = cli(env, "vm", "list")
        assert listed.returncode == 0 and "keep1" in listed.stdout and "VM running" in listed.stdout, listed
        assert run_in_vm(env, "keep1", "cat /root/mark") == "on-disk\n"  # its disk, booted again
        second.send_signal(signal.SIGTERM)
        output, _ = second.communicate(timeout=60)
    finally:
        if second.poll() is None:
            second.kill()
            second.wait()
    assert second.returncode == 0 and "Traceback" not in output, output
