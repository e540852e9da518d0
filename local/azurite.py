"""Azurite, the Azure Storage emulator (queues and tables), started from the project's pinned npm
install on free loopback ports, in memory (tests, `make dev`) or on disk (`make dev KEEP=1`)."""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path

from local.processes import spawn

ROOT = Path(__file__).resolve().parents[1]
AZURITE = ROOT / "node_modules" / ".bin" / "azurite"
# The well-known Azurite development account key (public, documented by Microsoft).
DEV_ACCOUNT_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
LISTENING = re.compile(
    r"Azurite (Queue|Table) service is successfully listening at http://127\.0\.0\.1:(\d+)"
)


class Azurite:
    def __init__(self, log: Path, location: Path | None = None) -> None:
        """`location`: keep the data in that directory (across restarts), else in memory."""
        if not AZURITE.exists():
            raise FileNotFoundError(f"{AZURITE} is missing: run `make setup` (npm ci) first")
        self.log = log
        with log.open("w") as out:
            # --skipApiVersionCheck: azure-storage-queue sends a newer x-ms-version than 3.35.0 knows.
            self.process = spawn(
                [
                    str(AZURITE),
                    *(["--location", str(location)] if location else ["--inMemoryPersistence"]),
                    "--skipApiVersionCheck",
                    "--disableTelemetry",
                    "--silent",
                    "--blobHost",
                    "127.0.0.1",
                    "--queueHost",
                    "127.0.0.1",
                    "--tableHost",
                    "127.0.0.1",
                    "--blobPort",
                    "0",
                    "--queuePort",
                    "0",
                    "--tablePort",
                    "0",
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                # Its own session: a terminal's Ctrl-C must not stop it before the host that uses it.
                start_new_session=True,
            )
        try:
            self.ports = self._wait_for_ports()
        except BaseException:
            self.stop()
            raise

    @property
    def connection_string(self) -> str:
        return (
            "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
            f"AccountKey={DEV_ACCOUNT_KEY};"
            f"QueueEndpoint=http://127.0.0.1:{self.ports['queue']}/devstoreaccount1;"
            f"TableEndpoint=http://127.0.0.1:{self.ports['table']}/devstoreaccount1;"
        )

    def _wait_for_ports(self) -> dict[str, int]:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            ports = {svc.lower(): int(port) for svc, port in LISTENING.findall(self.log.read_text())}
            if len(ports) == 2:
                return ports
            if self.process.poll() is not None:
                break
            time.sleep(0.05)
        raise RuntimeError("Azurite did not start:\n" + self.log.read_text())

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
