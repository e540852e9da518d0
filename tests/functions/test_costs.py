"""Costs and the daily digest end to end: the HTTP functions and timers, the Retail Prices API's
stand-in (several pages; up, down, gone), Azurite, the emulator, and a webhook receiver that
refuses posts."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime
from decimal import Decimal
from typing import Any

import pytest

from local import identities, playground
from local.host import FunctionIndex
from local.inbox import Inbox
from local.prices import RetailPricesStandIn
from shared.bootstrap import Container
from shared.domain.errors import ServiceError
from shared.domain.models import Attachment, AttachmentHealth, Redundancy, StorageInfo, Tier, nfs_endpoint
from shared.domain.provisioning import DEFAULT_SUBNET, DEFAULT_VNET
from shared.settings import Settings
from tests.conftest import SUBSCRIPTION, Client, existing_group
from tests.emulator.conftest import needs_sandbox
from tests.fakes import FakeClock
from tests.functions.conftest import REGION, Stack, unique


@pytest.fixture
def prices() -> Iterator[RetailPricesStandIn]:
    stand_in = RetailPricesStandIn(page_size=1)  # one item a page: the meter is pages away
    yield stand_in
    stand_in.stop()


@pytest.fixture
def inbox() -> Iterator[Inbox]:
    receiver = Inbox()
    yield receiver
    receiver.stop()


@pytest.fixture
def build(
    make_app: Callable[..., Container], environment: dict[str, str], prices: RetailPricesStandIn, inbox: Inbox
) -> Callable[..., Container]:
    """An app whose prices come from this test's stand-in and whose digests go to its inbox."""

    def make(**overrides: str) -> Container:
        env = {
            **environment,
            "RETAIL_PRICES_ENDPOINT": prices.url,
            "COST_DIGEST_WEBHOOK_URL": inbox.url,
            **overrides,
        }
        return make_app(app_settings=Settings.from_environ(env))

    return make


def record(
    app: Container,
    clock: FakeClock,
    name: str,
    group: str,
    size: int = 100,
    redundancy: Redundancy = Redundancy.LRS,
) -> StorageInfo:
    info = StorageInfo(
        name, existing_group(group), "westeurope", Tier.PREMIUM, redundancy, size, nfs_endpoint(name),
        clock.now()
    )
    app.storages.save(info)
    return info


def costs(api: Client, group: str) -> dict[str, Any]:
    answer = api.get("/api/costs", query={"resourceGroup": group})
    assert answer.status == 200, answer
    body: dict[str, Any] = answer.json()
    return body


def test_storage_is_priced_from_the_retail_api_cached_a_day_then_cached_then_fallback(
    build: Callable[..., Container], functions: FunctionIndex, prices: RetailPricesStandIn, clock: FakeClock
) -> None:
    app = build()
    api = Client(functions)
    record(app, clock, "stlrs", "rg-costs")
    record(app, clock, "stzrs", "rg-costs", size=200, redundancy=Redundancy.ZRS)

    first = costs(api, "rg-costs")
    assert [(s["name"], s["costPerMonth"], s["priceSource"]) for s in first["storage"]] == [
        ("stlrs", 18.0, "retail"),
        ("stzrs", 45.0, "retail"),
    ]  # 100 x 0.18, 200 x 0.225
    assert (first["totalStorageCost"], first["totalVmCost"], first["grandTotal"]) == (63.0, 0.0, 63.0)
    assert (first["currency"], first["period"], first["priceSources"]) == ("USD", "month", ["retail"])
    fetched = len(prices.requests)
    assert fetched >= 3 and any("$skip" in r for r in prices.requests)  # every page followed

    assert costs(api, "rg-costs")["storage"][0]["priceSource"] == "retail"
    assert len(prices.requests) == fetched  # cached: no new request within the day

    prices.up = False
    clock.advance(25 * 3600)
    stale = costs(api, "rg-costs")
    assert [(s["costPerMonth"], s["priceSource"]) for s in stale["storage"]] == [
        (18.0, "cache"),
        (45.0, "cache"),
    ]
    assert len(prices.requests) > fetched  # it did ask

    prices.stop()  # unreachable, and this app has never fetched a price
    fresh = build(STATE_TABLE_PREFIX="t" + uuid.uuid4().hex[:16])  # its own, empty price cache
    record(fresh, clock, "stlrs", "rg-costs")
    fallback = costs(Client(functions), "rg-costs")
    assert [(s["costPerMonth"], s["priceSource"]) for s in fallback["storage"]] == [(15.36, "fallback")]
    assert fallback["priceSources"] == ["fallback"]
    status = Client(functions).get("/api/storage/stlrs/status").json()
    assert (status["costPerMonth"], status["priceSource"]) == (15.36, "fallback")


def test_a_region_without_the_meter_falls_back_and_is_asked_again_only_the_next_day(
    build: Callable[..., Container], functions: FunctionIndex, prices: RetailPricesStandIn, clock: FakeClock
) -> None:
    app = build()
    info = StorageInfo(
        "stnorth",
        existing_group("rg-north"),
        "norwayeast",
        Tier.PREMIUM,
        Redundancy.LRS,
        100,
        nfs_endpoint("stnorth"),
        clock.now(),
    )
    app.storages.save(info)
    assert costs(Client(functions), "rg-north")["storage"][0]["priceSource"] == "fallback"
    asked = len(prices.requests)
    assert asked >= 1
    assert costs(Client(functions), "rg-north")["storage"][0]["priceSource"] == "fallback"
    assert len(prices.requests) == asked  # "no such meter" is remembered for the day
    clock.advance(25 * 3600)
    assert costs(Client(functions), "rg-north")["storage"][0]["priceSource"] == "fallback"
    assert len(prices.requests) > asked


def test_bad_cost_queries_are_refused(build: Callable[..., Container], functions: FunctionIndex) -> None:
    build()
    answer = Client(functions).get("/api/costs", query={"resourceGroup": "bad/group"})
    assert answer.status == 400 and answer.json()["error"]["code"] == "ValidationError"


def test_the_digest_reaches_the_webhook_exactly_once_under_retries(
    build: Callable[..., Container], functions: FunctionIndex, inbox: Inbox, clock: FakeClock
) -> None:
    app = build()
    api = Client(functions)
    record(app, clock, "stfull", "rg-digest")
    record(app, clock, "stidle", "rg-digest", size=300)
    app.attachments.add(
        Attachment(
            "stfull",
            "vm1",
            "rg-digest",
            "/home/azureuser",
            clock.now(),
            "id-1",
            health=AttachmentHealth.UNMOUNTED,
            last_verified_at=clock.now(),
            last_error="nothing is mounted on /home/azureuser",
        )
    )
    assert api.get("/api/digests/latest").status == 404

    inbox.refuse_next = 2
    functions.fire_timer("send_cost_digest")
    latest = api.get("/api/digests/latest").json()
    assert (latest["digest"]["delivery"], latest["digest"]["deliveryAttempts"]) == ("pending", 1)
    functions.fire_timer("send_cost_digest")  # the timer runs again the same day: the same digest
    assert api.get("/api/digests/latest").json()["digest"]["deliveryAttempts"] == 2
    assert inbox.accepted == []
    functions.fire_timer("refresh_costs")  # the hourly run retries the pending post
    for _ in range(3):
        functions.fire_timer("send_cost_digest")
        functions.fire_timer("refresh_costs")
    assert inbox.refused == 2 and len(inbox.accepted) == 1
    digest_id = clock.now().date().isoformat()
    assert inbox.keys == [f"azlin-digest-{digest_id}"]

    posted = inbox.accepted[0]
    assert posted["digest"]["id"] == digest_id and "delivery" not in posted["digest"]
    assert posted["text"] == posted["markdown"] and posted["markdown"].startswith(
        f"# Cost digest {digest_id}"
    )
    (group,) = [g for g in posted["digest"]["groups"] if g["resourceGroup"] == "rg-digest"]
    assert group["storageCost"] == 72.0 and group["change"] is None  # 400 GiB x 0.18; the first digest
    assert [f["name"] for f in group["unattached"]] == ["stidle"]
    assert [(a["vm"], a["health"]) for a in group["unhealthy"]] == [("vm1", "unmounted")]
    stored = api.get("/api/digests/latest").json()
    assert stored["digest"]["delivery"] == "delivered" and stored["markdown"] == posted["markdown"]

    # The next day: racing timer runs still post once, and the change is measured.
    clock.advance(24 * 3600)
    record(app, clock, "stmore", "rg-digest", size=100)
    runs = [threading.Thread(target=functions.fire_timer, args=("send_cost_digest",)) for _ in range(4)]
    for run in runs:
        run.start()
    for run in runs:
        run.join()
    assert len(inbox.accepted) == 2 and inbox.keys[1] == f"azlin-digest-{clock.now().date().isoformat()}"
    (group,) = [g for g in inbox.accepted[1]["digest"]["groups"] if g["resourceGroup"] == "rg-digest"]
    assert Decimal(str(group["change"])) == Decimal("18.0")
    assert inbox.accepted[1]["digest"]["previousId"] == digest_id


def test_todays_digest_is_made_again_on_demand_so_costs_and_digest_agree(
    build: Callable[..., Container], functions: FunctionIndex, inbox: Inbox, clock: FakeClock, local_azure: Any
) -> None:
    app = build()
    api = Client(functions)
    record(app, clock, "stearly", "rg-again")
    record(app, clock, "stelse", "rg-again-elsewhere")
    functions.fire_timer("send_cost_digest")
    first = api.get("/api/digests/latest").json()["digest"]
    record(app, clock, "stlater", "rg-again", size=200)  # after 07:00: the digest and costs disagree
    clock.advance(3600)
    now = costs(api, "rg-again")
    assert [g["total"] for g in first["groups"] if g["resourceGroup"] == "rg-again"] == [18.0] != [now["grandTotal"]]

    stored = api.post("/api/digests")  # without force: today's, as it is
    assert stored.status == 200 and stored.json()["digest"] == first, stored
    again = api.post("/api/digests", query={"force": "true"})
    assert again.status == 201, again
    remade = again.json()["digest"]
    assert (remade["id"], remade["revision"], remade["previousId"]) == (first["id"], 2, first["previousId"])
    assert [g["total"] for g in remade["groups"] if g["resourceGroup"] == "rg-again"] == [now["grandTotal"]]
    assert again.json()["markdown"].startswith(f"# Cost digest {first['id']} (made again at ")
    latest = api.get("/api/digests/latest").json()
    assert latest["digest"]["revision"] == 2 and latest["digest"]["delivery"] == "delivered"
    # Posted again, under its own key: a receiver that drops repeated keys still takes it.
    assert inbox.keys == [f"azlin-digest-{first['id']}", f"azlin-digest-{first['id']}-r2"]
    functions.fire_timer("send_cost_digest")  # the day's timer again: nothing new
    functions.fire_timer("refresh_costs")
    assert len(inbox.accepted) == 2 and api.get("/api/digests/latest").json()["digest"]["revision"] == 2

    # The digest covers every resource group and everyone sees it: a reader of one may read her
    # part of it, not make it again for all.
    carol = "user-" + uuid.uuid4().hex[:8]
    identities.person(local_azure.emulator, carol,
                      roles=[("Reader", f"/subscriptions/{SUBSCRIPTION}/resourceGroups/rg-again")])
    as_carol = Client(functions, identities.token_source(local_azure.emulator, carol))
    refused = as_carol.post("/api/digests", query={"force": "true"})
    assert (refused.status, refused.json()["error"]["code"]) == (403, "AuthorizationFailed"), refused
    assert "every resource group the digest covers" in refused.json()["error"]["message"]
    assert refused.json()["error"]["causes"][0].endswith("resource group(s) rg-again-elsewhere")
    assert [g["resourceGroup"] for g in as_carol.get("/api/digests/latest").json()["digest"]["groups"]] == [
        "rg-again"]
    assert len(inbox.accepted) == 2


def test_without_a_webhook_the_digest_is_only_stored(
    build: Callable[..., Container], functions: FunctionIndex, inbox: Inbox, clock: FakeClock
) -> None:
    build(COST_DIGEST_WEBHOOK_URL="")
    functions.fire_timer("send_cost_digest")
    latest = Client(functions).get("/api/digests/latest").json()
    assert latest["digest"]["delivery"] == "notConfigured" and inbox.accepted == []
    assert datetime.fromisoformat(latest["digest"]["createdAt"].replace("Z", "+00:00")) == clock.now()


@needs_sandbox
def test_costs_price_each_vm_by_its_size_and_power_state(stack: Stack) -> None:
    name = unique()
    assert stack.create(name, size=200, billing="provisionedV1")["status"] == "Succeeded"
    subnet = f"{playground.providers(stack.rest, stack.group)}/Microsoft.Network/virtualNetworks/{DEFAULT_VNET}/subnets/{DEFAULT_SUBNET}"
    playground.vm(stack.rest, stack.group, "vm1", subnet, REGION)  # Standard_B2s
    playground.vm(stack.rest, stack.group, "vm2", subnet, REGION)
    stack.rest.post(
        f"{playground.providers(stack.rest, stack.group)}/Microsoft.Compute/virtualMachines/vm2/deallocate"
    )

    report = costs(stack.api, stack.group)
    assert [
        (v["name"], v["size"], v["powerState"], v["costPerMonth"], v["priceSource"]) for v in report["vms"]
    ] == [
        ("vm1", "Standard_B2s", "running", 33.29, "retail"),  # 0.0456 an hour x 730
        ("vm2", "Standard_B2s", "deallocated", 0.0, "retail"),
    ]
    assert [(s["name"], s["sizeGb"], s["costPerMonth"]) for s in report["storage"]] == [(name, 200, 36.0)]
    assert (report["totalVmCost"], report["totalStorageCost"], report["grandTotal"]) == (33.29, 36.0, 69.29)
    assert report["resourceGroup"] == stack.group and report["priceSources"] == ["retail"]


def test_a_digest_whose_run_failed_is_made_by_the_hourly_run_that_day(
    build: Callable[..., Container], functions: FunctionIndex, inbox: Inbox, local_azure: Any, clock: FakeClock
) -> None:
    record(build(), clock, "stlate", "rg-late")
    fault = local_azure.emulator.faults.add("GET", r"/providers/Microsoft\.Compute/virtualMachines$", status=500)
    with pytest.raises(ServiceError):
        functions.fire_timer("send_cost_digest")  # Resource Manager fails at 07:00
    assert fault.matched == 1 and Client(functions).get("/api/digests/latest").status == 404
    functions.fire_timer("refresh_costs")  # an hour later
    latest = Client(functions).get("/api/digests/latest").json()
    assert latest["digest"]["id"] == clock.now().date().isoformat()
    assert latest["digest"]["delivery"] == "delivered" and len(inbox.accepted) == 1
    functions.fire_timer("refresh_costs")
    functions.fire_timer("send_cost_digest")
    assert len(inbox.accepted) == 1
