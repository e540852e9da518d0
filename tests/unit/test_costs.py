from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from shared.domain.costs import (
    FALLBACK_STORAGE_PRICE,
    SEED_PREMIUM_USD_PER_GIB_MONTH,
    PriceSource,
    StorageCost,
    StoragePrice,
    VmCost,
    VmPrice,
    cost_report,
    linux_vm_price,
    monthly_storage_cost,
    monthly_vm_cost,
    premium_files_price,
    round_money,
    storage_cost,
    storage_filter,
    vm_filter,
)
from shared.domain.models import Redundancy

RETAIL = StoragePrice(Decimal("0.20"), "USD", PriceSource.RETAIL)


def test_a_month_costs_the_provisioned_size_times_the_price() -> None:
    assert monthly_storage_cost(100, RETAIL) == Decimal("20.00")
    assert monthly_storage_cost(1024, RETAIL) == Decimal("204.80")


def test_a_period_is_billed_by_the_hour_of_a_730_hour_month() -> None:
    # 30 days = 720 hours of a 730-hour month
    assert round_money(storage_cost(100, RETAIL, 30)) == Decimal("19.73")
    assert storage_cost(100, RETAIL, Decimal(730) / Decimal(24)) == pytest.approx(Decimal("20"))
    assert storage_cost(100, RETAIL, 0) == 0


def test_fractional_days() -> None:
    assert round_money(storage_cost(730, RETAIL, Decimal("0.5"))) == Decimal("2.40")


@pytest.mark.parametrize(("size", "days"), [(-1, 1), (100, -1)])
def test_negative_inputs_are_refused(size: int, days: int) -> None:
    with pytest.raises(ValueError):
        storage_cost(size, RETAIL, days)


def test_negative_prices_are_refused() -> None:
    with pytest.raises(ValueError):
        StoragePrice(Decimal("-0.1"), "USD", PriceSource.RETAIL)


def test_the_seed_figure_is_only_a_labelled_fallback() -> None:
    assert FALLBACK_STORAGE_PRICE.source is PriceSource.FALLBACK
    assert FALLBACK_STORAGE_PRICE.per_gib_month == SEED_PREMIUM_USD_PER_GIB_MONTH == Decimal("0.1536")


def _item(**fields: object) -> dict[str, object]:
    base: dict[str, object] = {"currencyCode": "USD", "tierMinimumUnits": 0.0, "type": "Consumption",
                               "armRegionName": "westeurope", "isPrimaryMeterRegion": True}
    return {**base, **fields}


PREMIUM_FILES = [
    _item(productName="Premium Files", skuName="Premium LRS", meterName="Premium LRS Provisioned",
          retailPrice=0.21, unitOfMeasure="1 GiB/Month"),
    _item(productName="Premium Files", skuName="Premium ZRS", meterName="Premium ZRS Provisioned",
          retailPrice=26.0, unitOfMeasure="100 GiB/Month"),
    _item(productName="Premium Files", skuName="Premium LRS", meterName="Premium LRS Snapshots",
          retailPrice=0.01, unitOfMeasure="1 GiB/Month"),
    _item(productName="Premium Files", skuName="Premium LRS", meterName="Premium LRS Provisioned",
          retailPrice=0.05, unitOfMeasure="1 GiB/Month", tierMinimumUnits=1000.0),
]


def test_the_provisioned_premium_meter_is_picked_per_redundancy_and_per_unit() -> None:
    assert premium_files_price(PREMIUM_FILES, Redundancy.LRS) == Decimal("0.21")
    assert premium_files_price(PREMIUM_FILES, Redundancy.ZRS) == Decimal("0.26")  # 26 per 100 GiB
    assert premium_files_price(PREMIUM_FILES[2:3], Redundancy.LRS) is None  # snapshots only


def test_a_vm_price_is_its_linux_pay_as_you_go_hour() -> None:
    items = [
        _item(productName="Virtual Machines BS Series Windows", skuName="B2s", retailPrice=0.05,
              unitOfMeasure="1 Hour"),
        _item(productName="Virtual Machines BS Series", skuName="B2s Spot", retailPrice=0.01,
              unitOfMeasure="1 Hour"),
        _item(productName="Virtual Machines BS Series", skuName="B2s Low Priority", retailPrice=0.01,
              unitOfMeasure="1 Hour"),
        _item(productName="Virtual Machines BS Series", skuName="B2s", retailPrice=200.0,
              unitOfMeasure="1 Hour", type="Reservation"),
        _item(productName="Virtual Machines BS Series", skuName="B2s", retailPrice=0.0416,
              unitOfMeasure="1 Hour"),
    ]
    assert linux_vm_price(items) == Decimal("0.0416")
    assert linux_vm_price(items[:4]) is None
    assert monthly_vm_cost(VmPrice(Decimal("0.0416"), "USD", PriceSource.RETAIL), "running") == Decimal("30.368")
    assert monthly_vm_cost(VmPrice(Decimal("0.0416"), "USD", PriceSource.RETAIL), "deallocated") == 0


@pytest.mark.parametrize(("region", "size"), [("west europe", "B2s"), ("westeurope'", "B2s"),
                                              ("westeurope", "B2s' or 1 eq 1"), ("", "B2s")])
def test_values_that_cannot_be_a_region_or_size_never_reach_a_filter(region: str, size: str) -> None:
    with pytest.raises(ValueError):
        vm_filter(region, size)
    if region != "westeurope":
        with pytest.raises(ValueError):
            storage_filter(region)


def test_a_report_totals_what_is_priced_and_lists_every_source() -> None:
    now = datetime(2026, 11, 27, tzinfo=UTC)
    vms = [VmCost("vm1", "rg", "westeurope", "Standard_B2s", "running", Decimal("30.37"), PriceSource.RETAIL),
           VmCost("vm2", "rg", "westeurope", "Odd_Size", "running", None, PriceSource.UNAVAILABLE)]
    storage = [StorageCost("st1", "rg", "westeurope", Redundancy.LRS, 100, Decimal("15.36"),
                           PriceSource.FALLBACK)]
    report = cost_report("rg", now, vms, storage)
    assert (report.total_vm_cost, report.total_storage_cost, report.grand_total) == (
        Decimal("30.37"), Decimal("15.36"), Decimal("45.73"))
    assert report.price_sources == (PriceSource.RETAIL, PriceSource.FALLBACK, PriceSource.UNAVAILABLE)


def test_money_rounds_half_up_to_cents() -> None:
    assert round_money(Decimal("15.365")) == Decimal("15.37")
    assert round_money(Decimal("15.364")) == Decimal("15.36")


def test_next_page_links_are_followed_only_to_the_api_itself() -> None:
    from shared.adapters.http_json import origin

    endpoint = origin("https://prices.azure.com/api/retail/prices")
    assert origin("https://prices.azure.com:443/api/retail/prices?$skip=100") == endpoint
    assert origin("https://PRICES.azure.com/api/retail/prices?$skip=100") == endpoint
    for elsewhere in ("http://prices.azure.com/api/retail/prices", "https://prices.azure.com:8443/x",
                      "https://evil.example/api/retail/prices", "https://prices.azure.com:x/"):
        assert origin(elsewhere) != endpoint
