"""Cost math and the Azure Retail Prices API's meters, without I/O.

Premium (provisioned v1) file shares bill the provisioned GiB per month whether used or not;
provisioned v2 shares bill provisioned GiB, IOPS and MiB/s, each by the hour on its own meter
(understanding-billing.md); a VM bills its size's hourly Linux consumption price while it is not
deallocated. Azure's billing
month is 730 hours. Money is Decimal throughout, rounded to cents only in reports (`round_money`).
Prices are USD, the Retail Prices API's authoritative currency.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from enum import Enum
from typing import Any

from .models import Billing, Redundancy

HOURS_PER_MONTH = Decimal(730)
HOURS_PER_DAY = Decimal(24)
CURRENCY = "USD"
PRICE_CACHE_HOURS = 24  # a fetched price is used for a day before it is fetched again

# The seed design's StorageManager.COST_PER_GB for Premium (USD per GiB-month). It is neither
# region- nor redundancy-specific and was never checked against the Retail Prices API.
SEED_PREMIUM_USD_PER_GIB_MONTH = Decimal("0.1536")


class PriceSource(str, Enum):
    RETAIL = "retail"  # fetched from the Azure Retail Prices API within the last day
    CACHE = "cache"  # an older fetched price, while the API cannot be reached
    FALLBACK = "fallback"  # built-in figure; an estimate only
    UNAVAILABLE = "unavailable"  # no price known: the amount is left out of totals


@dataclass(frozen=True)
class StoragePrice:
    """Per month: a provisioned GiB, and for provisioned v2 an IOPS and a MiB/s."""

    per_gib_month: Decimal
    currency: str
    source: PriceSource
    per_iops_month: Decimal = Decimal(0)
    per_mibps_month: Decimal = Decimal(0)

    def __post_init__(self) -> None:
        if min(self.per_gib_month, self.per_iops_month, self.per_mibps_month) < 0:
            raise ValueError("a price cannot be negative")


@dataclass(frozen=True)
class VmPrice:
    per_hour: Decimal
    currency: str
    source: PriceSource

    def __post_init__(self) -> None:
        if self.per_hour < 0:
            raise ValueError("a price cannot be negative")


@dataclass(frozen=True)
class CachedPrice:
    """A retail price as fetched: per unit of the meter (GiB-month or hour). No amount: the API
    answered and has no such meter (an unknown VM size), which is worth remembering too."""

    key: str
    currency: str
    fetched_at: datetime
    amount: Decimal | None = None


FALLBACK_STORAGE_PRICE = StoragePrice(SEED_PREMIUM_USD_PER_GIB_MONTH, CURRENCY, PriceSource.FALLBACK)


def storage_cost(size_gib: int, price: StoragePrice, days: Decimal | int) -> Decimal:
    """What `size_gib` of provisioned premium storage costs over `days` (fractions allowed)."""
    if days < 0:
        raise ValueError("days cannot be negative")
    return _cost_for_hours(size_gib, price, Decimal(days) * HOURS_PER_DAY)


def monthly_storage_cost(size_gib: int, price: StoragePrice, iops: int | None = None,
                         throughput_mibps: int | None = None) -> Decimal:
    """A month of `size_gib` (and, provisioned v2, of `iops` and `throughput_mibps`)."""
    extras = (Decimal(iops or 0) * price.per_iops_month
              + Decimal(throughput_mibps or 0) * price.per_mibps_month)
    return _cost_for_hours(size_gib, price, HOURS_PER_MONTH) + extras


def monthly_vm_cost(price: VmPrice, power_state: str) -> Decimal:
    """A deallocated (or stopped and deallocated) VM bills no compute; any other state does."""
    return Decimal(0) if power_state == "deallocated" else price.per_hour * HOURS_PER_MONTH


def _cost_for_hours(size_gib: int, price: StoragePrice, hours: Decimal) -> Decimal:
    if size_gib < 0:
        raise ValueError("size cannot be negative")
    return Decimal(size_gib) * price.per_gib_month * hours / HOURS_PER_MONTH


def round_money(amount: Decimal) -> Decimal:
    return amount.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


# -- the Retail Prices API's meters ---------------------------------------------------------------

_REGION = re.compile(r"[a-z][a-z0-9]{1,39}")
_VM_SIZE = re.compile(r"[A-Za-z][A-Za-z0-9_-]{1,63}")
_UNIT = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)?\s*(.*)$")


V2_PRODUCT = "Azure Files Provisioned v2"
V2_PARTS = ("Storage", "IOPS", "Throughput MiBPS")  # meters `SSD <LRS|ZRS> Provisioned <part>`


def storage_price_key(region: str, redundancy: Redundancy, billing: Billing = Billing.PROVISIONED_V1,
                      part: str = "") -> str:
    if billing is Billing.PROVISIONED_V1:
        return f"storage|{region}|{redundancy.value}"
    return f"storage-v2|{region}|{redundancy.value}|{part}"


def vm_price_key(region: str, size: str) -> str:
    return f"vm|{region}|{size.lower()}"


def storage_filter(region: str, billing: Billing = Billing.PROVISIONED_V1) -> str:
    """The OData filter for a region's file share meters, by product: `Premium Files` (v1) or
    `Azure Files Provisioned v2` (whose names look like Premium SSD v2 disks' meters: the product
    tells them apart). Values are validated, never pasted from a client: a region is Azure's
    lowercase short name."""
    if not _REGION.fullmatch(region):
        raise ValueError(f"{region!r} is not a region name")
    product = "Premium Files" if billing is Billing.PROVISIONED_V1 else V2_PRODUCT
    return (f"serviceName eq 'Storage' and armRegionName eq '{region}' and "
            f"productName eq '{product}' and priceType eq 'Consumption'")


def vm_filter(region: str, size: str) -> str:
    if not _REGION.fullmatch(region) or not _VM_SIZE.fullmatch(size):
        raise ValueError(f"{region!r}/{size!r} is not a region and VM size")
    return (f"serviceName eq 'Virtual Machines' and armRegionName eq '{region}' and "
            f"armSkuName eq '{size}' and priceType eq 'Consumption'")


def premium_files_price(items: Iterable[Mapping[str, Any]], redundancy: Redundancy) -> Decimal | None:
    """USD per provisioned GiB-month: the `Premium <LRS|ZRS> Provisioned` meter (provisioned v1)."""
    sku = f"Premium {redundancy.value}"
    return _cheapest(item for item in items
                     if item.get("skuName") == sku and item.get("meterName") == f"{sku} Provisioned"
                     and _per_unit(item, ("GiB/Month", "GB/Month")) is not None)


def files_v2_price(items: Iterable[Mapping[str, Any]], redundancy: Redundancy, part: str) -> Decimal | None:
    """USD per month of one provisioned unit of `part` (a GiB, an IOPS, a MiB/s) of SSD provisioned
    v2: the `SSD <LRS|ZRS> Provisioned <part>` meter, priced by the hour; never the included
    ("Free") or overflow meters beside it."""
    sku = f"SSD {redundancy.value}"
    hourly = _cheapest_of(
        (item for item in items
         if item.get("productName") == V2_PRODUCT and item.get("skuName") == sku
         and item.get("meterName") == f"{sku} Provisioned {part}"),
        ("GiB/Hour", "/Hour", "Hour"))
    return None if hourly is None else hourly * HOURS_PER_MONTH


def linux_vm_price(items: Iterable[Mapping[str, Any]]) -> Decimal | None:
    """USD per hour for a VM size running Linux at pay-as-you-go prices: no Windows, Spot or Low
    Priority meters, no reservations."""
    return _cheapest(
        item for item in items
        if item.get("type", "Consumption") == "Consumption"
        and "windows" not in str(item.get("productName", "")).lower()
        and not any(word in str(item.get("skuName", "")) for word in ("Spot", "Low Priority"))
        and _per_unit(item, ("Hour",)) is not None)


def _cheapest(items: Iterable[Mapping[str, Any]]) -> Decimal | None:
    return _cheapest_of(items, ("GiB/Month", "GB/Month", "Hour"))


def _cheapest_of(items: Iterable[Mapping[str, Any]], units: tuple[str, ...]) -> Decimal | None:
    prices = [price for item in items if (price := _per_unit(item, units)) is not None]
    return min(prices) if prices else None


def _per_unit(item: Mapping[str, Any], units: tuple[str, ...]) -> Decimal | None:
    """The item's price per one unit ("100 GiB/Month" prices 100 of them); None when the unit is
    another one, the price unreadable, or the meter is tiered above zero."""
    found = _UNIT.match(str(item.get("unitOfMeasure", "")))
    if found is None or found.group(2).strip() not in units:
        return None
    try:
        count = Decimal(found.group(1) or 1)
        price = Decimal(str(item.get("retailPrice", item.get("unitPrice"))))
        if Decimal(str(item.get("tierMinimumUnits", 0))) != 0:
            return None
    except (InvalidOperation, ValueError):
        return None
    if count <= 0 or price < 0 or not price.is_finite():
        return None
    return price / count


# -- reports --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class VmCost:
    name: str
    resource_group: str
    region: str
    size: str
    power_state: str
    cost_per_month: Decimal | None  # None: no price known for this size
    price_source: PriceSource


@dataclass(frozen=True)
class StorageCost:
    name: str
    resource_group: str
    region: str
    redundancy: Redundancy
    size_gb: int
    cost_per_month: Decimal
    price_source: PriceSource


@dataclass(frozen=True)
class CostReport:
    """The seed's `get_total_costs`: per-item monthly costs and their totals."""

    resource_group: str | None  # None: every resource group
    currency: str
    period: str  # what an amount covers: "month" (730 hours at today's sizes and prices)
    generated_at: datetime
    vms: tuple[VmCost, ...]
    storage: tuple[StorageCost, ...]
    total_vm_cost: Decimal
    total_storage_cost: Decimal
    grand_total: Decimal
    price_sources: tuple[PriceSource, ...]  # every source used; anything but "retail" is an estimate


def cost_report(resource_group: str | None, now: datetime, vms: Iterable[VmCost],
                storage: Iterable[StorageCost]) -> CostReport:
    vm_list = tuple(sorted(vms, key=lambda c: (c.resource_group.lower(), c.name.lower())))
    storage_list = tuple(sorted(storage, key=lambda c: (c.resource_group.lower(), c.name)))
    vm_total = round_money(sum((c.cost_per_month for c in vm_list if c.cost_per_month is not None),
                               Decimal(0)))
    storage_total = round_money(sum((c.cost_per_month for c in storage_list), Decimal(0)))
    sources = {v.price_source for v in vm_list} | {s.price_source for s in storage_list}
    return CostReport(resource_group, CURRENCY, "month", now, vm_list, storage_list, vm_total,
                      storage_total, vm_total + storage_total,
                      tuple(s for s in PriceSource if s in sources))
