"""Cost math. Prices are passed in; the seed's figure is only a labelled fallback.

Premium (provisioned v1) file shares bill the provisioned GiB per month whether used or not, and
Azure's billing month is 730 hours, so a share costs size x price x hours / 730 over any period.
Money is Decimal throughout and rounded to cents only for display (`round_money`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from enum import Enum

from .models import Redundancy, Tier

HOURS_PER_MONTH = Decimal(730)
HOURS_PER_DAY = Decimal(24)

# The seed design's StorageManager.COST_PER_GB for Premium (USD per GiB-month). It is neither
# region- nor redundancy-specific and was never checked against the Retail Prices API.
SEED_PREMIUM_USD_PER_GIB_MONTH = Decimal("0.1536")


class PriceSource(str, Enum):
    RETAIL = "retail"  # fetched from the Azure Retail Prices API
    CACHE = "cache"  # the last fetched retail price, while the API cannot be reached
    FALLBACK = "fallback"  # built-in figure; an estimate only


@dataclass(frozen=True)
class StoragePrice:
    per_gib_month: Decimal
    currency: str
    source: PriceSource

    def __post_init__(self) -> None:
        if self.per_gib_month < 0:
            raise ValueError("a price cannot be negative")


PriceBook = Mapping[tuple[Tier, Redundancy], StoragePrice]


def price_for(tier: Tier, redundancy: Redundancy, prices: PriceBook | None = None) -> StoragePrice:
    """The known price for this tier and redundancy, else the seed's figure, labelled fallback."""
    known = (prices or {}).get((tier, redundancy))
    if known is not None:
        return known
    return StoragePrice(SEED_PREMIUM_USD_PER_GIB_MONTH, "USD", PriceSource.FALLBACK)


def storage_cost(size_gib: int, price: StoragePrice, days: Decimal | int) -> Decimal:
    """What `size_gib` of provisioned premium storage costs over `days` (fractions allowed)."""
    if days < 0:
        raise ValueError("days cannot be negative")
    return _cost_for_hours(size_gib, price, Decimal(days) * HOURS_PER_DAY)


def monthly_storage_cost(size_gib: int, price: StoragePrice) -> Decimal:
    return _cost_for_hours(size_gib, price, HOURS_PER_MONTH)


def _cost_for_hours(size_gib: int, price: StoragePrice, hours: Decimal) -> Decimal:
    if size_gib < 0:
        raise ValueError("size cannot be negative")
    return Decimal(size_gib) * price.per_gib_month * hours / HOURS_PER_MONTH


def round_money(amount: Decimal) -> Decimal:
    return amount.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
