"""Schemathesis against a running service, every check on, its failures held to the allow-list.

    python -m tests.contract.schemathesis_run            against `make dev` (.local/dev.env)

Schemathesis (pinned in requirements-dev.txt) reads /api/openapi.json and sends what it says is
valid (and what it says is not) to every operation, as alice (API_TOKEN), in all its phases:
examples, coverage, fuzzing and stateful sequences following the document's links. Every check
is on: no 5xx, only documented statuses, headers and bodies, schema-valid requests accepted and
schema-invalid ones refused, 401 without the token, 405 with Allow for methods a path does not
take. A failure is allowed only when `schemathesis-allow.txt` names its check, its operation and
words of its answer, with the reason; anything else fails `tests/contract/test_schemathesis.py`
(and this command).

Creates and attaches are real in the emulator (a few storage accounts; no VM exists to attach),
so examples per operation are few: MAX_EXAMPLES keeps a run to about a minute and a half on two
cores. The seed is fixed so that CI runs are repeatable; SCHEMATHESIS_SEED picks another.
"""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ALLOW_LIST = HERE / "schemathesis-allow.txt"
CONFIG = HERE / "schemathesis.toml"
MAX_EXAMPLES = 30
SEED = 16  # issue 16
SUMMARY = re.compile(r"^=+ (.*(?:passed|failures?|errors?|warnings?).*) in [\d.]+s =+$", re.MULTILINE)


@dataclass(frozen=True)
class Allowed:
    """A failure a run may have: a check (its code, as ST202) at one operation, whose answer says
    `answer` (a part of its body: the service's own words for the rule)."""

    check: str
    operation: str  # "GET /api/storage", as Schemathesis names it
    answer: str
    reason: str

    def excuses(self, failure: Failure) -> bool:
        return (self.check, self.operation) == (failure.code, failure.operation) and self.answer in failure.answer


def allow_list(path: Path = ALLOW_LIST) -> list[Allowed]:
    """`CHECK METHOD /path "part of the answer": reason` lines; `#` starts a comment. Every entry
    says why it is one."""
    allowed = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        found = re.fullmatch(r'(ST\d+) ([A-Z]+ /\S*) "([^"]+)": (\S.*)', text)
        if found is None:
            raise ValueError(f'{path}:{number}: expected \'CHECK METHOD /path "answer": reason\', got {line!r}')
        allowed.append(Allowed(*found.groups()))
    return allowed


@dataclass(frozen=True)
class Failure:
    code: str
    title: str
    operation: str
    answer: str  # the response body (its start), as the service sent it

    def __str__(self) -> str:
        return f"{self.code} {self.title}: {self.operation} answered {self.answer[:300]}"


@dataclass(frozen=True)
class Run:
    exit_code: int
    output: str
    events: list[dict[str, Any]]
    seconds: float

    @property
    def summary(self) -> str:
        """Schemathesis's own summary line, e.g. '3 failures, 1 warning'."""
        found = SUMMARY.findall(self.output)
        return found[-1] if found else f"no summary (exit code {self.exit_code})"

    @property
    def completed(self) -> bool:
        return any("EngineFinished" in event for event in self.events)

    def failures(self) -> list[Failure]:
        """Each failed check of each test case, with the answer it failed on."""
        found = []
        for event in self.events:
            scenario = event.get("ScenarioFinished")
            if scenario is None:
                continue
            recorder = scenario["recorder"]
            for case_id, checks in (recorder.get("checks") or {}).items():
                for check in checks:
                    if check["status"] != "failure":
                        continue
                    failure = check["failure_info"]["failure"]
                    response = ((recorder.get("interactions") or {}).get(case_id) or {}).get("response") or {}
                    found.append(Failure(failure["code"], failure["title"], failure.get("operation")
                                         or recorder["label"], _text(response.get("content"))))
        return list(dict.fromkeys(found))

    def errors(self) -> list[str]:
        """What stopped Schemathesis from testing (a schema it could not read, a refused connection)."""
        return [json.dumps(event)[:500] for event in self.events
                if any("Error" in kind for kind in event)]

    def unexplained(self, allowed: list[Allowed]) -> list[str]:
        """Failures the allow-list does not excuse, and errors (which nothing excuses)."""
        return [str(f) for f in self.failures() if not any(a.excuses(f) for a in allowed)] + self.errors()

    def stale(self, allowed: list[Allowed]) -> list[Allowed]:
        """Entries no failure of this run needed (candidates to remove)."""
        return [a for a in allowed if not any(a.excuses(f) for f in self.failures())]


def _text(content: Any) -> str:
    if isinstance(content, dict) and "$base64" in content:
        return base64.b64decode(content["$base64"]).decode(errors="replace")
    return "" if content is None else str(content)


def run(api: str, token: str, *, max_examples: int = MAX_EXAMPLES, seed: int | None = None,
        timeout: float = 200) -> Run:
    """Schemathesis against the API at `api` (.../api), as the holder of `token`."""
    seed = seed if seed is not None else int(os.environ.get("SCHEMATHESIS_SEED") or SEED)
    with tempfile.TemporaryDirectory(prefix="schemathesis-") as reports:
        command = [sys.executable, "-m", "schemathesis.cli", "--config-file", str(CONFIG),
                   "run", f"{api}/openapi.json", "--checks", "all", "--header", f"Authorization: Bearer {token}",
                   "--max-examples", str(max_examples), "--seed", str(seed), "--workers", "1",
                   "--request-timeout", "30", "--generation-database", "none", "--no-color",
                   "--report", "ndjson", "--report-dir", reports, "--report-ndjson-path", "events.ndjson"]
        began = time.monotonic()
        done = subprocess.run(command, cwd=reports, capture_output=True, text=True, timeout=timeout,
                              check=False, env={**os.environ, "NO_COLOR": "1"})
        seconds = time.monotonic() - began
        written = [Path(reports) / "events.ndjson", *Path(reports).glob("**/*.ndjson")]
        path = next((p for p in written if p.is_file()), None)
        events = [json.loads(line) for line in path.read_text().splitlines()] if path is not None else []
    return Run(done.returncode, done.stdout + done.stderr, events, seconds)


def main() -> int:
    from local import dev  # the settings `make dev` wrote

    settings = dev.read_settings()
    result = run(settings["API_URL"], settings["API_TOKEN"])
    print(result.output)
    allowed = allow_list()
    unexplained = result.unexplained(allowed)
    for line in unexplained:
        print(f"NOT ALLOWED: {line}")
    for entry in result.stale(allowed):
        print(f"allowed but not found this run: {entry.check} {entry.operation} {entry.answer!r}")
    print(f"schemathesis: {result.summary} in {result.seconds:.0f} s; {len(unexplained)} not allowed")
    return 1 if unexplained or not result.completed else 0


if __name__ == "__main__":
    sys.exit(main())
