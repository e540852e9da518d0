"""`make demo`: the seed design's manual test plan, played against the local stack, each step
timed. It uses the running `make dev` stack when `.local/dev.env` names one that answers, else it
starts one for the length of the demo.

The plan: create storage; create two VMs tagged for it and wait until events alone attached them;
write a file on one and read it on the other; attach a third VM through the API; detach one; show
status, costs and a digest; delete the storage with force (it is kept, unreachable, for undelete);
purge it; show that nothing is left.
Only the API, Resource Manager (the emulator) and Run Command are used, as a portal would.
"""

from __future__ import annotations

import json
import logging
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from local import dev, playground
from local.control import Control
from local.rest import ArmRest

HOME = "/home/azureuser"


class DemoFailed(Exception):
    pass


class Api:
    """The service's HTTP API, as a portal calls it: with its user's access token."""

    def __init__(self, base: str, token: Callable[[], str]) -> None:
        self.base = base.rstrip("/")
        self.token = token

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.base + path, data=data, method=method,
                                         headers={"Content-Type": "application/json",
                                                  "Authorization": f"Bearer {self.token()}"})
        try:
            with urllib.request.urlopen(request, timeout=60) as answer:
                text = answer.read()
                return answer.status, json.loads(text) if text else None
        except urllib.error.HTTPError as err:
            text = err.read()
            return err.code, json.loads(text) if text else None

    def ok(self, method: str, path: str, body: Any = None, status: int = 200) -> Any:
        got, answer = self.call(method, path, body)
        if got != status:
            raise DemoFailed(f"{method} {path} answered {got}: {answer}")
        return answer

    def finish(self, operation: dict[str, Any], timeout: float = 180) -> dict[str, Any]:
        """Poll an operation until it ends; it must succeed."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            current: dict[str, Any] = self.ok("GET", f"/operations/{operation['id']}")
            if current["status"] == "Succeeded":
                return current
            if current["status"] == "Failed":
                raise DemoFailed(f"operation {current['kind']} failed: {current.get('error')}")
            time.sleep(0.3)
        raise DemoFailed(f"operation {operation['id']} did not end within {timeout:.0f} s")


def wait_until(what: str, check: Callable[[], bool], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.3)
    raise DemoFailed(f"timed out waiting until {what}")


class Demo:
    def __init__(self, settings: dict[str, str]) -> None:
        control = Control(settings["ARM_ENDPOINT"], settings["ARM_CA_BUNDLE"])
        self.api = Api(settings["API_URL"], control.token_source(dev.ALICE))
        self.rest = ArmRest(settings["ARM_ENDPOINT"], settings["ARM_CA_BUNDLE"],
                            settings["AZURE_SUBSCRIPTION_ID"], control.token_source(dev.ALICE, arm=True))
        self.group = settings["DEFAULT_RESOURCE_GROUP"]
        self.region = str(self.rest.get(self.rest.group_path(self.group))["location"])
        self.storage = "demo" + uuid.uuid4().hex[:8]
        suffix = self.storage[-4:]
        self.vms = [f"demo-{suffix}-{n}" for n in (1, 2, 3)]
        self.subnet = (f"{playground.providers(self.rest, self.group)}/Microsoft.Network/virtualNetworks/"
                       f"{settings['DEFAULT_VNET']}/subnets/{settings['DEFAULT_SUBNET']}")
        self.step = 0
        self.began = time.monotonic()

    @contextmanager
    def timed(self, title: str) -> Iterator[list[str]]:
        self.step += 1
        lines: list[str] = []
        began = time.monotonic()
        print(f"[{self.step}] {title} ...", flush=True)
        yield lines
        for line in lines:
            print(f"      {line}")
        print(f"      done in {time.monotonic() - began:.1f} s", flush=True)

    def run_on(self, vm: str, script: str) -> str:
        view = playground.run(self.rest, self.group, vm, script, {})
        if view.get("exitCode") != 0:
            raise DemoFailed(f"on {vm}: {script!r} failed: {view.get('error')}")
        return str(view.get("output") or "")

    def attached(self, vm: str) -> bool:
        status, answer = self.api.call("GET", f"/vms/{vm}/attachment?resourceGroup={self.group}")
        return status == 200 and "state" not in answer  # not the attach still under way ("Attaching")

    def play(self) -> None:
        steps = (self.create_storage, self.events_attach, self.share_a_file, self.attach_through_api,
                 self.detach_one, self.show_costs, self.delete_with_force, self.purge, self.nothing_left,
                 self.clean_up)
        for step in steps:
            step()
        print(f"demo passed: {self.step} steps in {time.monotonic() - self.began:.1f} s", flush=True)

    def create_storage(self) -> None:
        with self.timed(f"Create storage {self.storage} (Premium, LRS, 100 GiB) in {self.group}") as out:
            body = {"name": self.storage, "resourceGroup": self.group}
            done = self.api.finish(self.api.ok("POST", "/storage", body, 202))
            out.append(f"NFS endpoint {done['result']['nfsEndpoint']}")

    def events_attach(self) -> None:
        vm1, vm2, _ = self.vms
        with self.timed(f"Create {vm1} and {vm2} tagged azlin-storage={self.storage}; events alone "
                        "attach them") as out:
            for vm in (vm1, vm2):
                self.create_vm(vm, {"azlin-storage": self.storage})
            for vm in (vm1, vm2):
                wait_until(f"{vm} is attached", lambda vm=vm: self.attached(vm))  # type: ignore[misc]
                record = self.api.ok("GET", f"/vms/{vm}/attachment?resourceGroup={self.group}")
                out.append(f"{vm}: {record['mountPoint']} is {record['storage']}'s share "
                           f"(its own home kept in {record['backupPath']})")

    def share_a_file(self) -> None:
        vm1, vm2, _ = self.vms
        with self.timed(f"Write a file on {vm1}, read it on {vm2}") as out:
            stamp = uuid.uuid4().hex
            self.run_on(vm1, f"echo 'hello from {vm1} {stamp}' > {HOME}/shared.txt")
            seen = self.run_on(vm2, f"cat {HOME}/shared.txt").strip()
            if stamp not in seen:
                raise DemoFailed(f"{vm2} read {seen!r}")
            out.append(f"{vm2} reads: {seen}")

    def attach_through_api(self) -> None:
        vm3 = self.vms[2]
        with self.timed(f"Create {vm3} untagged and attach it through the API") as out:
            self.create_vm(vm3, {})
            body = {"vm": vm3, "resourceGroup": self.group}
            self.api.finish(self.api.ok("POST", f"/storage/{self.storage}/attachments", body, 202))
            out.append(f"{vm3} reads: {self.run_on(vm3, f'cat {HOME}/shared.txt').strip()}")

    def detach_one(self) -> None:
        vm2 = self.vms[1]
        with self.timed(f"Detach {vm2} (copy: the shared home becomes its own)") as out:
            path = f"/vms/{vm2}/attachment?resourceGroup={self.group}&mode=copy"
            done = self.api.finish(self.api.ok("DELETE", path, status=202))
            copied = (done["result"].get("unmount") or {}).get("copiedFiles")
            out.append(f"{vm2}: home is {self.home_of(vm2)}, copied {copied} files; it reads: "
                       f"{self.run_on(vm2, f'cat {HOME}/shared.txt').strip()}")

    def show_costs(self) -> None:
        with self.timed("Status, costs and a digest") as out:
            status = self.api.ok("GET", f"/storage/{self.storage}/status")
            out.append(f"status: {status['usedGb']} GiB used of {status['info']['sizeGb']}; VMs "
                       f"{', '.join(status['connectedVms'])}; {status['costPerMonth']} {status['currency']} "
                       f"a month ({status['priceSource']})")
            costs = self.api.ok("GET", f"/costs?resourceGroup={self.group}")
            out.append(f"costs: VMs {costs['totalVmCost']}, storage {costs['totalStorageCost']}, total "
                       f"{costs['grandTotal']} {costs['currency']} a {costs['period']} (prices: "
                       f"{', '.join(costs['priceSources'])}; the dev stack's prices are made up)")
            self.run_digest()
            digest = self.api.ok("GET", "/digests/latest")
            out.append(f"digest {digest['digest']['id']}: delivery {digest['digest']['delivery']}; "
                       f"{digest['markdown'].splitlines()[2]}")

    def delete_with_force(self) -> None:
        with self.timed(f"Delete {self.storage} with force (each attached VM keeps the shared files)") as out:
            self.api.finish(self.api.ok("DELETE", f"/storage/{self.storage}?force=true", status=202))
            for vm in (self.vms[0], self.vms[2]):
                kept = self.run_on(vm, f"cat {HOME}/shared.txt").strip()
                out.append(f"{vm}: home is {self.home_of(vm)}; it reads: {kept}")
            storage = self.api.ok("GET", f"/storage/{self.storage}")
            if storage.get("state") != "Deleted":
                raise DemoFailed(f"{self.storage} is {storage.get('state')} after the delete")
            out.append(f"{self.storage} is kept until {storage['purgeAfter']} (undelete brings it back)")

    def purge(self) -> None:
        with self.timed(f"Purge {self.storage} now (DELETE ?purge=true: its window ends)"):
            purged = self.api.finish(self.api.ok("DELETE", f"/storage/{self.storage}?purge=true", status=202))
            if not purged.get("result", {}).get("purged"):
                raise DemoFailed(f"the purge did not purge: {purged}")

    def nothing_left(self) -> None:
        with self.timed("Nothing is left") as out:
            found = self.leftovers()
            out.extend(found)
            if any(line.startswith("LEFT") for line in found):
                raise DemoFailed("; ".join(found))

    def clean_up(self) -> None:
        with self.timed("Delete the demo VMs"):
            base = playground.providers(self.rest, self.group)
            for vm in self.vms:
                self.rest.delete(f"{base}/Microsoft.Compute/virtualMachines/{vm}")
                self.rest.delete(f"{base}/Microsoft.Network/networkInterfaces/{vm}-nic")

    def create_vm(self, vm: str, tags: dict[str, str]) -> None:
        playground.vm(self.rest, self.group, vm, self.subnet, self.region, tags=tags)

    def home_of(self, vm: str) -> str:
        return self.run_on(vm, f"mountpoint -q {HOME} && echo shared || echo local").strip()

    def run_digest(self) -> None:
        """Run the digest timer now, through the host's admin endpoint, and wait for its record."""
        admin = self.api.base.removesuffix("/api") + "/admin/functions/send_cost_digest"
        request = urllib.request.Request(admin, data=b'{"input": ""}', method="POST",
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30):
            pass
        wait_until("the digest is stored", lambda: self.api.call("GET", "/digests/latest")[0] == 200, 60)

    def leftovers(self) -> list[str]:
        base = playground.providers(self.rest, self.group)
        checks = {
            f"GET /api/storage/{self.storage}": self.api.call("GET", f"/storage/{self.storage}")[0] == 404,
            "attachments of the demo VMs": all(not self.attached(vm) for vm in self.vms),
            f"storage account {self.storage}": not playground.exists(
                self.rest, f"{base}/Microsoft.Storage/storageAccounts/{self.storage}"),
            f"private endpoint {self.storage}-file-pe": not playground.exists(
                self.rest, f"{base}/Microsoft.Network/privateEndpoints/{self.storage}-file-pe"),
        }
        return [f"{'gone' if gone else 'LEFT'}: {what}" for what, gone in checks.items()]


def _running_stack() -> dict[str, str] | None:
    try:
        settings = dev.read_settings()
        with urllib.request.urlopen(settings["API_URL"] + "/health", timeout=2):
            return settings
    except (SystemExit, KeyError, OSError):
        return None


def run() -> int:
    logging.basicConfig(level=logging.WARNING, format="      %(levelname)s %(name)s: %(message)s")
    logging.getLogger("azure").setLevel(logging.ERROR)
    settings = _running_stack()
    parts = None
    if settings is None:
        began = time.monotonic()
        print("no running `make dev` stack answers; starting one for the demo", flush=True)
        parts, settings = dev.start(0)
        print(f"stack started in {time.monotonic() - began:.1f} s", flush=True)
    try:
        Demo(settings).play()
    except DemoFailed as failure:
        print(f"demo FAILED: {failure}", flush=True)
        return 1
    finally:
        if parts is not None:
            parts.close()
    return 0
