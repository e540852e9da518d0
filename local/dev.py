"""`make dev`: the whole service on this machine. Azurite, the Azure emulator (HTTPS, sandbox VMs)
and the local Functions host serving `function_app`, wired as in Azure: the app reaches Resource
Manager through the emulator, the emulator posts Event Grid events to the app's Event Grid
function, prices come from a stand-in of the Retail Prices API (made-up prices) and cost digests
are posted to a local inbox (`.local/digests/`). The emulator is the tenant too: the API's app
registration, the app's identity with exactly infra/'s roles, and two people, alice (Owner of the
subscription) and bob (no role). A resource group (which the app manages) and a virtual network
are created to play with, the settings other tools need (alice's API token among them, as
API_TOKEN) are written to `.local/dev.env`, and one ready line names the API and says whether the
state was kept. Ctrl-C or SIGTERM stops everything within a few seconds, the host first (its
running functions end; their queue messages come back), then the emulator, then Azurite.

Every start begins from an empty Azure and empty storage, unless `keep` (`make dev KEEP=1`):
Azurite keeps its data under `.local/azurite/` and the emulator its resources, tenant, roles,
shares and VM disks under `.local/azure/` (local/emulator/persistence.py), and the next start
with `keep` goes on from them."""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from contextlib import ExitStack
from pathlib import Path

from local import identities, processes
from local.azurite import Azurite
from local.emulator import Config, LocalAzure, persistence
from local.inbox import Inbox
from local.prices import RetailPricesStandIn
from local.rest import ArmRest

ROOT = Path(__file__).resolve().parents[1]
STATE = Path(os.environ.get("AZLIN_LOCAL_DIR") or ROOT / ".local")  # tests point it elsewhere
DEV_ENV = STATE / "dev.env"
SUBSCRIPTION = "00000000-0000-4000-8000-00000000a21e"
GROUP = "azlin-dev"
REGION = "eastus"
VNET = "vnet-dev"
ADDRESS_SPACE, SUBNET_PREFIX = "10.40.0.0/16", "10.40.0.0/24"
DEFAULT_PORT = 7071
ALICE, BOB = "alice", "bob"
API_TOKEN_SECONDS = 24 * 3600  # API_TOKEN lasts the working day; `python -m local token` gives more
AZURE, AZURITE = STATE / "azure", STATE / "azurite"  # the emulator's directory, Azurite's (kept)
STOP_WAIT_SECONDS = 2.0  # what running ARM operations get at a stop: Ctrl-C must not hang

log = logging.getLogger(__name__)


def kept_state() -> bool:
    """Whether a kept state is there to go on from: both Azurite's data and the emulator's saved
    state (kept records without their Azure, or the reverse, would contradict each other)."""
    return AZURITE.is_dir() and persistence.saved(AZURE)


def start(port: int, *, serve_app: bool = True, emulator_port: int = 0,
          keep: bool = False) -> tuple[ExitStack, dict[str, str]]:
    """Start every part, in dependency order; returns what stops them (in reverse order) and the
    settings written. A part that fails to start stops the ones already running. `keep`: go on
    from the state kept under STATE when there is one (`kept_state`), and keep it for the next
    start; otherwise whatever is there is removed first."""
    if serve_app:
        port = _free_port(port)
    kept = keep and kept_state()
    if not kept:
        shutil.rmtree(AZURE, ignore_errors=True)
        shutil.rmtree(AZURITE, ignore_errors=True)
    (STATE / "logs").mkdir(parents=True, exist_ok=True)
    with ExitStack() as parts:
        azurite = Azurite(STATE / "logs" / "azurite.log", location=AZURITE if keep else None)
        parts.callback(azurite.stop)
        api = f"http://127.0.0.1:{port}"
        config = Config(
            polls_before_done=1,
            retry_after=1,
            agent_ready_seconds=3,
            nfs_timeout_seconds=5,
            event_webhook=f"{api}/runtime/webhooks/eventgrid?functionName=on_resource_event",
        )
        azure = LocalAzure(AZURE, config, port=emulator_port, keep=keep).start()
        parts.callback(azure.stop, wait=STOP_WAIT_SECONDS)
        prices = RetailPricesStandIn()  # made-up prices in the Retail Prices API's shape
        parts.callback(prices.stop)
        inbox = Inbox(STATE / "digests")  # where cost digests are posted
        parts.callback(inbox.stop)
        emulator = azure.emulator
        app_identity = identities.register(emulator, SUBSCRIPTION)
        identities.person(emulator, ALICE, roles=[("Owner", f"/subscriptions/{SUBSCRIPTION}")])
        identities.person(emulator, BOB)
        settings = {
            "AzureWebJobsStorage": azurite.connection_string,
            "ARM_ENDPOINT": azure.url,
            "ARM_CA_BUNDLE": str(azure.ca_path),
            **app_identity.app_settings(),
            "AZURE_SUBSCRIPTION_ID": SUBSCRIPTION,
            "DEFAULT_RESOURCE_GROUP": GROUP,
            "DEFAULT_REGION": REGION,
            # Storage endpoints go where `python -m local vm create` puts VMs, so they reach them.
            "DEFAULT_VNET": VNET,
            "DEFAULT_SUBNET": "default",
            "RETAIL_PRICES_ENDPOINT": prices.url,
            "COST_DIGEST_WEBHOOK_URL": inbox.url,
            "API_URL": f"{api}/api",
            "API_TOKEN": emulator.tenant.token(emulator.tenant.get(ALICE),
                                               f"api://{app_identity.api_client_id}/.default",
                                               lifetime=API_TOKEN_SECONDS),
        }
        if not kept:  # a kept one has them, maybe in use: writing the VNet again could change it
            _create_playground(ArmRest(azure.url, str(azure.ca_path), SUBSCRIPTION,
                                       identities.token_source(emulator, ALICE, arm=True)))
        identities.manage(emulator, SUBSCRIPTION, GROUP)
        write_settings(settings)
        os.environ.update(settings)
        if serve_app:
            parts.callback(_serve(port, settings).stop)
        return parts.pop_all(), settings
    raise AssertionError("unreachable")


def _free_port(port: int) -> int:
    """`port` if nothing holds it (0: any free port), else a clear exit. SO_REUSEADDR, as the
    host's server binds: the connections of a stack just stopped, in TIME-WAIT, hold no port."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
            return int(probe.getsockname()[1])
        except OSError:
            raise SystemExit(
                f"port {port} is in use: stop what holds it, or choose another with PORT="
            ) from None


def _create_playground(rest: ArmRest) -> None:
    group = rest.group_path(GROUP)
    rest.put(group, {"location": REGION, "tags": {"purpose": "azlin local development"}})
    rest.put(
        f"{group}/providers/Microsoft.Network/virtualNetworks/{VNET}",
        {
            "location": REGION,
            "properties": {
                "addressSpace": {"addressPrefixes": [ADDRESS_SPACE]},
                "subnets": [{"name": "default", "properties": {"addressPrefix": SUBNET_PREFIX}}],
            },
        },
    )


class HostProcess:
    """The Functions host in a process of its own (`python -m local.host`), as `func start` runs
    the app apart from Azure: the app's workers and the emulator do not share one interpreter."""

    def __init__(self, port: int, settings: dict[str, str]) -> None:
        env = {**os.environ, **settings, "PYTHONUNBUFFERED": "1"}
        # Its own session: a terminal's Ctrl-C reaches this process only, which stops the parts
        # in order (the host before what it uses).
        self.process = processes.spawn([sys.executable, "-m", "local.host", "--port", str(port)],
                                       cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=None,
                                       start_new_session=True)
        assert self.process.stdout is not None
        line = self.process.stdout.readline().decode(errors="replace")  # its one ready line
        if "listening on" not in line:
            self.stop()
            raise SystemExit(f"the Functions host did not start: {line.strip() or 'it exited'}")
        threading.Thread(target=self._forward, name="host-output", daemon=True).start()

    def _forward(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            sys.stdout.write(line.decode(errors="replace"))

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)  # it gives its functions 3 s
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def _serve(port: int, settings: dict[str, str]) -> HostProcess:
    return HostProcess(port, settings)


def _state_said(keep: bool, kept: bool) -> str:
    if kept:
        return f"kept storage, VMs and records from {STATE} (KEEP=1)"
    if keep:
        return f"fresh, kept in {STATE} for the next KEEP=1 start"
    return "fresh (KEEP=1 keeps storage, VMs and records across restarts)"


def write_settings(settings: dict[str, str]) -> None:
    """`.local/dev.env` (KEY=VALUE lines) and `.local/local.settings.json` (for `func start`)."""
    STATE.mkdir(parents=True, exist_ok=True)
    DEV_ENV.write_text("".join(f"{key}={value}\n" for key, value in settings.items()))
    values = {"FUNCTIONS_WORKER_RUNTIME": "python", **settings}
    (STATE / "local.settings.json").write_text(
        json.dumps({"IsEncrypted": False, "Values": values}, indent=2) + "\n"
    )


def read_settings() -> dict[str, str]:
    if not DEV_ENV.exists():
        raise SystemExit(f"{DEV_ENV} is missing: start the local stack with `make dev` first")
    lines = DEV_ENV.read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if "=" in line)


def run(port: int | None = None, *, serve_app: bool = True, keep: bool = False) -> int:
    """Start everything, print the ready line, wait for Ctrl-C or SIGTERM, stop everything."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("azure").setLevel(logging.WARNING)  # the SDKs log every request at INFO
    began = time.monotonic()
    chosen = port if port is not None else int(os.environ.get("PORT") or DEFAULT_PORT)
    stopping = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stopping.set())
    kept = keep and kept_state()  # as start() finds it
    parts, settings = start(chosen, serve_app=serve_app, keep=keep)
    try:
        served = f"API {settings['API_URL']}" if serve_app else "no app host (run `func start`)"
        print(
            f"azlin dev ready in {time.monotonic() - began:.1f} s: {served}; Resource Manager "
            f"{settings['ARM_ENDPOINT']}; settings in {DEV_ENV}; {_state_said(keep, kept)}",
            flush=True,
        )
        stopping.wait()
    finally:
        print("azlin dev stopping", flush=True)
        parts.close()
    return 0
