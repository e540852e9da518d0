"""Every bash script the product runs on VMs, and those of the local sandbox, is shellcheck-clean."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = sorted([*ROOT.glob("shared/scripts/*.sh"), *ROOT.glob("local/sandbox/*.sh"),
                  ROOT / "local/sandbox/vmroot/usr/sbin/mount.nfs"])


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck is not installed (Debian: shellcheck)")
@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_shellcheck_finds_nothing(script: Path) -> None:
    checked = subprocess.run(["shellcheck", "--shell=bash", "--severity=info", str(script)],
                             capture_output=True, text=True, check=False)
    assert checked.returncode == 0, checked.stdout


def test_there_are_scripts_to_check() -> None:
    assert ROOT / "shared/scripts/attach.sh" in SCRIPTS
