"""The bash scripts the service runs on VMs through managed Run Command. Each is sent as one
script: `lib.sh` (shared helpers) followed by the script itself. Every value reaches a script as
a Run Command parameter (an environment variable), never as script text."""

from __future__ import annotations

from functools import cache
from pathlib import Path

HERE = Path(__file__).resolve().parent


@cache
def run_command_script(name: str) -> str:
    """The script text for `name` ("attach", "detach"), ready to send."""
    return (HERE / "lib.sh").read_text() + "\n" + (HERE / f"{name}.sh").read_text()
