"""What a newcomer runs first, run as they would: the README's two quick starts (the CLI's and
curl's), word for word in bash, and the `azlin-storage` CLI driving a storage's whole life with
--json, against one `python -m local dev` process (what `make dev` runs)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.emulator.conftest import needs_sandbox
from tests.emulator.test_dev_stack import dev_stack

ROOT = Path(__file__).resolve().parents[2]

pytestmark = needs_sandbox


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A directory laid out as a clone after `make` and `make dev`: `.venv/` and `.local/` (the
    running stack's state), so the README's relative paths work as written."""
    here = tmp_path_factory.mktemp("clone")
    (here / ".venv").symlink_to(sys.prefix)  # the venv `make` made, with the CLI installed
    with dev_stack(here / ".local"):
        yield here


def environment(workdir: Path) -> dict[str, str]:
    """A user's shell in the clone: no saved CLI configuration of anyone's, the repository's
    packages importable (`python -m local`), the stack's state where `make dev` put it."""
    return {**os.environ, "XDG_CONFIG_HOME": str(workdir / "config"), "PYTHONPATH": str(ROOT),
            "AZLIN_LOCAL_DIR": str(workdir / ".local"), "COLUMNS": "160"}


def readme_block(heading: str) -> str:
    section = (ROOT / "README.md").read_text().split(heading, 1)[1]
    found = re.search(r"```bash\n(.*?)```", section, re.S)
    assert found, f"no bash block under {heading!r}"
    return found.group(1)


def bash(script: str, workdir: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=workdir, env=environment(workdir),
                          capture_output=True, text=True, timeout=600, check=False)


def cli(workdir: Path, *args: str) -> tuple[int, Any, str]:
    """(exit status, the --json output parsed, stderr)."""
    done = subprocess.run([sys.executable, "-m", "azlin_cli", *args, "--json"], cwd=workdir,
                          env=environment(workdir), capture_output=True, text=True, timeout=300, check=False)
    return done.returncode, json.loads(done.stdout) if done.stdout.strip() else None, done.stderr


def local(workdir: Path, *args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "local", *args], cwd=workdir, env=environment(workdir),
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


@pytest.mark.parametrize("heading", ["## Quick start with the CLI", "## Quick start with curl"])
def test_the_readme_quick_start_works_as_written(workdir: Path, heading: str) -> None:
    done = bash(readme_block(heading), workdir)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "hello" in done.stdout.splitlines()  # written on one VM, read on the other
    assert "Traceback" not in done.stdout + done.stderr


def test_the_cli_drives_a_storage_through_its_life(workdir: Path) -> None:
    status, created, _ = cli(workdir, "storage", "create", "clihome", "--size", "120")
    assert status == 0 and (created["status"], created["kind"]) == ("Succeeded", "CreateStorage"), created
    local(workdir, "vm", "create", "clivm")
    status, attached, _ = cli(workdir, "attach", "clivm", "--storage", "clihome")
    assert status == 0 and attached["status"] == "Succeeded", attached
    assert attached["result"]["attachment"]["storage"] == "clihome"

    status, shown, _ = cli(workdir, "storage", "status", "clihome")
    assert status == 0 and shown["connectedVms"] == ["clivm"] and shown["info"]["sizeGb"] == 120
    assert [(a["vm"], a["health"]) for a in shown["attachments"]] == [("clivm", "healthy")]
    status, digest, _ = cli(workdir, "digest", "--force")  # today's, from the figures now
    assert status == 0 and "clihome" in json.dumps(digest["digest"]) and digest["markdown"]
    status, listed, _ = cli(workdir, "operations", "list", "--storage", "clihome", "--kind", "AttachVm")
    assert status == 0 and [o["id"] for o in listed["value"]] == [attached["id"]]

    status, detached, _ = cli(workdir, "detach", "clivm")
    assert status == 0 and detached["status"] == "Succeeded", detached
    status, deleted, _ = cli(workdir, "storage", "delete", "clihome")
    assert status == 0 and deleted["status"] == "Succeeded", deleted
    status, purged, _ = cli(workdir, "storage", "delete", "clihome", "--purge")
    assert status == 0 and purged["result"]["purged"] is True, purged


def test_the_cli_says_the_services_error_and_exits_non_zero(workdir: Path) -> None:
    status, answer, stderr = cli(workdir, "detach", "typo-vm")
    assert status == 1 and answer["error"]["code"] == "AttachmentNotFound"
    assert "VM typo-vm in resource group" in stderr and "try:" in stderr
    status, answer, stderr = cli(workdir, "storage", "create", "Bad_Name")
    assert status == 1 and answer["error"]["code"] == "ValidationError" and "name" in stderr
    status, answer, _ = cli(workdir, "storage", "show", "nosuchhome")
    assert status == 1 and answer["error"]["code"] == "StorageNotFound"

