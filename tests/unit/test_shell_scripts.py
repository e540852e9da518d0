"""Every bash script the product runs on VMs, and those of the local sandbox, is shellcheck-clean."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from shared.domain import validation as v
from shared.domain.errors import ValidationError

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


# The mount-point rule is written twice, once for the API (validation.mount_point) and once for
# the root script (lib.sh valid_home); they must agree on every path.
HOME_CASES = ["/home/azureuser", "/home/a_b-c", "/home/_svc", "/data/homes/alice", "/home/Azure", "/home/a.b",
              "/home", "/", "/etc/ssh", "/var/spool/cron/crontabs", "/root/bin", "/opt/x", "/home/azureuser/work",
              "/home/../etc", "/home/./x", "/home//x", "/home/x/", "/home/-rf", "/home/a b", "/data/homes/a/b",
              "/srv/homes/bob", "/home/" + "u" * 33, "relative/x"]


def test_the_script_and_the_api_apply_one_mount_point_rule() -> None:
    lib = (ROOT / "shared/scripts/lib.sh").read_text()
    functions = "\n".join(_bash_function(lib, name) for name in ("valid_mount_point", "valid_home"))
    probe = functions + '\nfor p in "$@"; do if valid_home "$p" "${p##*/}"; then echo yes; else echo no; fi; done\n'
    answers = subprocess.run(["bash", "-c", probe, "bash", *HOME_CASES], capture_output=True, text=True,
                             check=True, env={"HOME_ROOTS": "/data/homes", "PATH": "/usr/bin:/bin"}).stdout.split()
    roots = v.home_roots("/data/homes")
    api = ["yes" if _accepted(path, roots) else "no" for path in HOME_CASES]
    assert dict(zip(HOME_CASES, answers, strict=True)) == dict(zip(HOME_CASES, api, strict=True))
    assert answers.count("yes") == 4


def _accepted(path: str, roots: tuple[str, ...]) -> bool:
    try:
        v.mount_point(path, roots=roots)
    except ValidationError:
        return False
    return True


def _bash_function(text: str, name: str) -> str:
    start = text.index(f"\n{name}() {{") + 1
    return text[start:text.index("\n}\n", start) + 3]
