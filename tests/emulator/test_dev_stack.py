"""`python -m local dev` (what `make dev` runs) as a user runs it: a separate process that reaches
its ready line, writes its settings, serves the API, posts Event Grid events for the VMs the CLI
creates to the app's Event Grid function, runs commands in them, and stops everything on SIGTERM."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.emulator.conftest import needs_sandbox
from tests.emulator.test_processes import processes_mentioning

ROOT = Path(__file__).resolve().parents[2]
READY = re.compile(r"azlin dev ready in [\d.]+ s: API (http://127\.0\.0\.1:(\d+)/api);")
SETTINGS = {"AzureWebJobsStorage", "ARM_ENDPOINT", "ARM_CA_BUNDLE", "ARM_CREDENTIAL", "AZURE_SUBSCRIPTION_ID",
            "DEFAULT_RESOURCE_GROUP", "DEFAULT_REGION", "DEFAULT_VNET", "DEFAULT_SUBNET", "API_URL",
            "RETAIL_PRICES_ENDPOINT", "COST_DIGEST_WEBHOOK_URL", "AUTH_TENANT_ID", "AUTH_AUDIENCE",
            "AUTH_AUTHORITY", "AZURE_CLIENT_ID", "EMULATOR_IDENTITY_SECRET", "API_TOKEN"}

pytestmark = needs_sandbox


@contextmanager
def dev_stack(state: Path) -> Iterator[tuple[subprocess.Popen[str], dict[str, str], Path]]:
    """`python -m local dev` in a process of its own, its state under `state`, on free ports, once
    it said it is ready; stopped at the end (SIGTERM, as Ctrl-C) if it still runs, killed if it
    does not stop (its children die with it: local/processes.py)."""
    env = {**os.environ, "PORT": "0", "AZLIN_LOCAL_DIR": str(state)}
    process = subprocess.Popen([sys.executable, "-m", "local", "dev"], cwd=ROOT, env=env, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        assert process.stdout is not None
        deadline, lines = time.monotonic() + 60, []
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            lines.append(line)
            if READY.search(line) or not line:
                break
        assert READY.search(lines[-1]), "".join(lines)
        yield process, env, state
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], dict[str, str], Path]]:
    with dev_stack(tmp_path) as started:
        yield started


def post(url: str, body: dict[str, str], token: str) -> dict[str, str]:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=30) as answer:
        return dict(answer.headers)


def get(url: str, token: str | None) -> int:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=30) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as refused:
        return refused.code


def wait_for_operation(api: str, headers: dict[str, str], token: str, timeout: float = 90) -> dict[str, Any]:
    """Follow an accepted request's Location until its operation ends (the host's worker runs it)."""
    location = headers["Location"]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        request = urllib.request.Request(location, headers={"Authorization": f"Bearer {token}"})
        with urllib.request.urlopen(request, timeout=30) as answer:
            operation: dict[str, Any] = json.loads(answer.read())
        if operation["status"] in ("Succeeded", "Failed"):
            return operation
        time.sleep(0.5)
    raise TimeoutError(f"{location} did not end in {timeout} s")


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "local", *args], cwd=ROOT, env=env, text=True,
                          capture_output=True, timeout=120, check=False)


def test_dev_stack_serves_the_api_runs_vms_and_stops_cleanly(
        stack: tuple[subprocess.Popen[str], dict[str, str], Path]) -> None:
    process, env, state = stack
    settings = dict(line.split("=", 1) for line in (state / "dev.env").read_text().splitlines())
    assert set(settings) == SETTINGS
    assert settings["ARM_CREDENTIAL"] == "emulator" and settings["ARM_ENDPOINT"].startswith("https://127.0.0.1:")
    with urllib.request.urlopen(settings["API_URL"] + "/health", timeout=10) as answer:
        assert answer.status == 200

    created = cli(env, "vm", "create", "dev1", "--tag", "azlin-storage=home1")
    assert created.returncode == 0, created.stderr
    assert "dev1: vmId " in created.stdout and "10.40.0.4" in created.stdout
    # The agent of a new VM is not ready for its first seconds under `make dev`: `vm run` waits.
    ran = cli(env, "vm", "run", "dev1", "--param", "WHO=dev", "--", "sh", "-c", 'id -un 1000; echo "$WHO"; exit 3')
    assert (ran.returncode, ran.stdout) == (3, "azureuser\ndev\n"), ran.stderr

    # The whole service on the stack: create storage, attach the VM, all through the host's queue,
    # as alice (API_TOKEN is hers).
    api, alice = settings["API_URL"], settings["API_TOKEN"]
    name = "devhome" + str(os.getpid())
    assert get(f"{api}/storage", None) == 401
    created = wait_for_operation(api, post(f"{api}/storage", {"name": name}, alice), alice)
    assert created["status"] == "Succeeded", created
    attached = wait_for_operation(api, post(f"{api}/storage/{name}/attachments", {"vm": "dev1"}, alice), alice)
    assert attached["status"] == "Succeeded", attached

    # People and roles: carol, new, may read nothing until alice (not bob) makes her a Reader.
    added = cli(env, "user", "add", "carol", "--group", "storage-team")
    assert added.returncode == 0 and "carol: object id " in added.stdout, added.stderr
    carol = cli(env, "token", "carol").stdout.strip()
    assert carol.count(".") == 2 and get(f"{api}/storage/{name}", carol) == 403
    by_bob = cli(env, "role", "assign", "carol", "Reader", "azlin-dev", "--as", "bob")
    assert by_bob.returncode == 1 and "AuthorizationFailed" in by_bob.stderr
    by_alice = cli(env, "role", "assign", "carol", "Reader", "azlin-dev")
    assert by_alice.returncode == 0 and "carol is Reader at /subscriptions/" in by_alice.stdout, by_alice.stderr
    assert get(f"{api}/storage/{name}", carol) == 403  # Azure's answer is remembered (5 minutes at most)
    dave = cli(env, "user", "add", "dave").stdout  # a newcomer given the role is asked at once
    assert cli(env, "role", "assign", "dave", "Reader", "azlin-dev").returncode == 0, dave
    assert get(f"{api}/storage/{name}", cli(env, "token", "dave").stdout.strip()) == 200
    arm = cli(env, "token", "carol", "--for", "arm").stdout.strip()
    assert arm.count(".") == 2 and arm != carol
    refused = cli(env, "vm", "create", "dev2", "--as", "carol")  # a Reader writes no VM
    assert refused.returncode == 1 and "AuthorizationFailed" in refused.stderr
    mounted = cli(env, "vm", "run", "dev1", "--", "findmnt", "-n", "-o", "SOURCE", "/home/azureuser")
    # Encryption in transit by default: mounted through aznfs's TLS tunnel, from 127.0.0.1.
    assert mounted.stdout.strip() == f"127.0.0.1:/{name}/home", mounted.stderr

    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=30)
    assert process.returncode == 0, output
    assert "azlin dev stopping" in output
    # The VM's creation reached the app's Event Grid function through the host's webhook, which
    # looked for the storage its tag names (there is none called home1: a Failed operation).
    assert re.search(r"shared\.services\.auto_attach: event \S+: VM dev1 asks for storage home1, which this "
                     r"service does not know", output), output
    deadline = time.monotonic() + 10
    while processes_mentioning(str(state)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert processes_mentioning(str(state)) == []  # Azurite, the fabric and the VM stopped with it
    listed = cli(env, "vm", "list")
    assert listed.returncode == 1 and "is `make dev` running?" in listed.stderr
