from __future__ import annotations

from decimal import Decimal

import pytest

from shared.domain.costs import (
    SEED_PREMIUM_USD_PER_GIB_MONTH,
    PriceSource,
    StoragePrice,
    monthly_storage_cost,
    price_for,
    round_money,
    storage_cost,
)
from shared.domain.models import Redundancy, Tier

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


def test_known_prices_win_and_the_seed_figure_is_only_a_labelled_fallback() -> None:
    book = {(Tier.PREMIUM, Redundancy.LRS): RETAIL}
    assert price_for(Tier.PREMIUM, Redundancy.LRS, book) is RETAIL
    fallback = price_for(Tier.PREMIUM, Redundancy.ZRS, book)
    assert fallback.source is PriceSource.FALLBACK
    assert fallback.per_gib_month == SEED_PREMIUM_USD_PER_GIB_MONTH == Decimal("0.1536")
    assert price_for(Tier.PREMIUM, Redundancy.LRS).source is PriceSource.FALLBACK


def test_money_rounds_half_up_to_cents() -> None:
    assert round_money(Decimal("15.365")) == Decimal("15.37")
    assert round_money(Decimal("15.364")) == Decimal("15.36")
