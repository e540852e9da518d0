"""What access control costs a request, against the local emulator (its tenant and Resource
Manager, over HTTPS, through azure-identity and azure-mgmt-authorization as in Azure):

- validating a bearer token (signature, issuer, audience, times), warm keys;
- the first question about a user at a scope: the on-behalf-of exchange, the permissions API as the
  user, the deny assignments read by the app;
- the same question about another scope (the on-behalf-of token is reused);
- a service principal at a scope: its role assignments, their roles (cached), the deny assignments;
- the answer again within five minutes (remembered).

    python bench/access.py [runs]
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from local import identities
from local.emulator import Config, LocalAzure
from shared.adapters.arm import ArmClients
from shared.adapters.arm_access import ArmAccessReader
from shared.adapters.entra import EntraTokenValidator
from shared.domain import rbac
from shared.services.access import AccessControl
from shared.settings import Settings

SUBSCRIPTION = "6e0b3f2a-5a43-4b7e-9a57-3f0c2d7d1c11"
GROUP, REGION = "bench", "eastus"


class NoRecords:
    def get(self, storage: str) -> None:
        return None


def timed(action: Callable[..., object], *args: object) -> float:
    started = time.perf_counter()
    action(*args)
    return (time.perf_counter() - started) * 1000


def main(runs: int) -> None:
    figures: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as scratch:
        azure = LocalAzure(Path(scratch), Config()).start()
        try:
            measure(azure, runs, figures)
        finally:
            azure.stop()
    print(f"access control against the local emulator, {runs} runs")
    for name, values in figures.items():
        print(f"  {name:<52} median {statistics.median(values):7.1f} ms  max {max(values):7.1f}")


def measure(azure: LocalAzure, runs: int, figures: dict[str, list[float]]) -> None:
    emulator = azure.emulator
    app, _ = identities.owner_session(emulator, SUBSCRIPTION, GROUP, REGION, azure.url, str(azure.ca_path))
    settings = Settings.from_environ({
        "AzureWebJobsStorage": "UseDevelopmentStorage=true", "AZURE_SUBSCRIPTION_ID": SUBSCRIPTION,
        "ARM_ENDPOINT": azure.url, "ARM_CA_BUNDLE": str(azure.ca_path), **app.app_settings()})
    tokens = EntraTokenValidator(settings.identity)
    reader = ArmAccessReader(ArmClients(settings, retry_total=0))
    group = rbac.group_scope(SUBSCRIPTION, GROUP)
    robot = emulator.tenant.add("ServicePrincipal", "bench-robot")
    emulator.authorization.assign(group, robot.object_id, "Contributor")
    api = f"api://{app.api_client_id}/.default"
    tokens.caller(emulator.tenant.token(emulator.tenant.get("alice"), api))  # keys fetched once
    for run in range(runs):
        person = identities.person(emulator, f"bench-{uuid.uuid4().hex[:6]}", roles=[("Reader", group)])
        token = emulator.tenant.token(person, api)
        caller = tokens.caller(token)
        control = AccessControl(lambda: reader, NoRecords(), SUBSCRIPTION)  # type: ignore[arg-type]
        app_only = tokens.caller(emulator.tenant.token(robot, api))
        vm, other = (rbac.vm_scope(SUBSCRIPTION, GROUP, f"{kind}{run}") for kind in ("v", "x"))
        for name, action, args in (
            ("token validation", tokens.caller, (token,)),
            ("a user, first scope (on-behalf-of + permissions + denies)", control.access, (caller, group)),
            ("the user, another scope", control.access, (caller, vm)),
            ("the user again within five minutes", control.access, (caller, group)),
            ("a service principal (assignments + roles + denies)", control.access, (app_only, other)),
        ):
            figures.setdefault(name, []).append(timed(action, *args))

if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 15)
