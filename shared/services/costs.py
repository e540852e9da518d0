"""Costs: prices from the Azure Retail Prices API (cached a day), and the monthly cost of what the
service manages (its storage) and of the VMs beside it.

A price is the fetched one while it is under a day old. Past that it is fetched again; when the
API cannot be reached (or has no such meter) the last fetched price is used, labelled `cache`,
else the built-in figure, labelled `fallback` (storage) or nothing, labelled `unavailable` (VMs:
no built-in VM price would be honest). Every amount says which source it came from.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from datetime import timedelta
from decimal import Decimal

from shared.domain import costs as c
from shared.domain import rbac
from shared.domain.errors import ServiceError
from shared.domain.identity import Caller
from shared.domain.models import Billing, Redundancy, StorageInfo
from shared.domain.mounting import VmSummary
from shared.ports import Clock, PriceCache, RetailPrices, StorageRepository, VmCloud

from .access import AccessControl
from .storage import every_storage

log = logging.getLogger(__name__)
_Found = tuple[Decimal, c.PriceSource] | None  # a price per unit and where it came from
_Prices = dict[str, _Found]  # prices looked up during one report: each meter read (or fetched) once


class CostService:
    """`vms` is called on first need: building the service imports no Resource Manager SDK."""

    def __init__(self, storages: StorageRepository, retail: RetailPrices, cache: PriceCache,
                 clock: Clock, access: AccessControl, *, vms: Callable[[], VmCloud]) -> None:
        self.storages = storages
        self.retail = retail
        self.cache = cache
        self.clock = clock
        self.access = access
        self.vms = vms

    def storage_price(self, region: str, redundancy: Redundancy, prices: _Prices | None = None,
                      billing: Billing = Billing.PROVISIONED_V1) -> c.StoragePrice:
        if billing is Billing.PROVISIONED_V2:
            return self._v2_price(region, redundancy, prices)
        found = self._price(c.storage_price_key(region, redundancy), lambda: c.storage_filter(region),
                            lambda items: c.premium_files_price(items, redundancy), prices)
        if found is None:
            return c.FALLBACK_STORAGE_PRICE
        return c.StoragePrice(found[0], c.CURRENCY, found[1])

    def price_of(self, storage: StorageInfo, prices: _Prices | None = None) -> c.StoragePrice:
        return self.storage_price(storage.region, storage.redundancy, prices, storage.billing)

    def _v2_price(self, region: str, redundancy: Redundancy, prices: _Prices | None) -> c.StoragePrice:
        """Storage, IOPS and throughput from their own meters; any one missing: the built-in
        estimate (storage only), labelled fallback."""
        found = [self._price(c.storage_price_key(region, redundancy, Billing.PROVISIONED_V2, part),
                             lambda: c.storage_filter(region, Billing.PROVISIONED_V2),
                             _v2_meter(redundancy, part), prices)
                 for part in c.V2_PARTS]
        if any(f is None for f in found):
            return c.FALLBACK_STORAGE_PRICE
        (gib, _), (iops, _), (mibps, _) = [f for f in found if f is not None]
        worst = max((f[1] for f in found if f is not None), key=list(c.PriceSource).index)
        return c.StoragePrice(gib, c.CURRENCY, worst, iops, mibps)

    def vm_price(self, region: str, size: str, prices: _Prices | None = None) -> c.VmPrice | None:
        found = self._price(c.vm_price_key(region, size), lambda: c.vm_filter(region, size),
                            c.linux_vm_price, prices)
        return None if found is None else c.VmPrice(found[0], c.CURRENCY, found[1])

    def report(self, resource_group: str | None,
               visible: Callable[[set[str]], set[str]] | None = None) -> c.CostReport:
        """Monthly costs of the recorded storage and of every VM (in `resource_group`, or all).
        `visible` picks, from the resource groups found (lower case), those the report may show."""
        prices: _Prices = {}
        records = list(self.all_storage(resource_group))
        vms = [vm for vm in self.vms().list_vms()
               if resource_group is None or vm.resource_group.lower() == resource_group.lower()]
        if visible is not None:
            found = {s.resource_group.lower() for s in records} | {v.resource_group.lower() for v in vms}
            shown = visible(found)
            records = [s for s in records if s.resource_group.lower() in shown]
            vms = [v for v in vms if v.resource_group.lower() in shown]
        return c.cost_report(resource_group, self.clock.now(), [self._vm_cost(vm, prices) for vm in vms],
                             [self._storage_cost(s, prices) for s in records])

    def report_for(self, caller: Caller, resource_group: str | None) -> c.CostReport:
        """The report as the caller may see it: only the resource groups they may read."""
        if resource_group is not None:
            self.access.require(caller, rbac.GROUP_READ, self.access.group(resource_group))
        return self.report(resource_group, visible=lambda groups: self.access.readable_groups(caller, groups))

    def refresh_prices(self) -> c.CostReport:
        """Look up every price in use, fetching those over a day old, so that requests find them
        cached; the report this gives."""
        report = self.report(None)
        log.info("costs refreshed: %s a month (%s), prices from %s", report.grand_total, report.currency,
                 ", ".join(s.value for s in report.price_sources) or "nothing priced")
        return report

    def all_storage(self, resource_group: str | None) -> Iterator[StorageInfo]:
        return every_storage(self.storages, resource_group)

    def _storage_cost(self, storage: StorageInfo, prices: _Prices) -> c.StorageCost:
        price = self.price_of(storage, prices)
        cost = c.monthly_storage_cost(storage.size_gb, price, storage.iops, storage.throughput_mibps)
        return c.StorageCost(storage.name, storage.resource_group, storage.region, storage.redundancy,
                             storage.size_gb, c.round_money(cost), price.source)

    def _vm_cost(self, vm: VmSummary, prices: _Prices) -> c.VmCost:
        price = self.vm_price(vm.region, vm.size, prices) if vm.size else None
        if price is None:
            return c.VmCost(vm.name, vm.resource_group, vm.region, vm.size, vm.power_state, None,
                            c.PriceSource.UNAVAILABLE)
        return c.VmCost(vm.name, vm.resource_group, vm.region, vm.size, vm.power_state,
                        c.round_money(c.monthly_vm_cost(price, vm.power_state)), price.source)

    def _price(self, key: str, odata_filter: Callable[[], str],
               pick: Callable[[list[dict[str, object]]], Decimal | None],
               prices: _Prices | None) -> _Found:
        if prices is not None and key in prices:
            return prices[key]
        found = self._lookup(key, odata_filter, pick)
        if prices is not None:
            prices[key] = found
        return found

    def _lookup(self, key: str, odata_filter: Callable[[], str],
                pick: Callable[[list[dict[str, object]]], Decimal | None]) -> _Found:
        now = self.clock.now()
        cached = self._cached(key)
        if cached is not None and now - cached.fetched_at < timedelta(hours=c.PRICE_CACHE_HOURS):
            return None if cached.amount is None else (cached.amount, c.PriceSource.RETAIL)
        known = None if cached is None or cached.amount is None else (cached.amount, c.PriceSource.CACHE)
        try:
            amount = pick(self.retail.items(odata_filter()))
        except ValueError as err:  # a region or size that cannot be a meter's
            log.warning("price %s: %s", key, err)
            return None
        except ServiceError as err:
            log.warning("price %s: the Retail Prices API failed (%s); using %s", key, err.message,
                        "the cached price" if known else "no retail price")
            return known
        if amount is None:
            log.warning("price %s: the Retail Prices API has no such meter", key)
            if known is None:  # remembered for a day, so that it is not asked on every request
                self._save(c.CachedPrice(key, c.CURRENCY, now))
            return known
        self._save(c.CachedPrice(key, c.CURRENCY, now, amount))
        return amount, c.PriceSource.RETAIL

    def _save(self, price: c.CachedPrice) -> None:
        try:
            self.cache.save(price)
        except ServiceError as err:  # the price is still good for this answer
            log.warning("price %s not cached: %s", price.key, err.message)

    def _cached(self, key: str) -> c.CachedPrice | None:
        try:
            return self.cache.get(key)
        except ServiceError as err:
            log.warning("price cache unreadable (%s); asking the Retail Prices API", err.message)
            return None


def _v2_meter(redundancy: Redundancy, part: str) -> Callable[[list[dict[str, object]]], Decimal | None]:
    return lambda items: c.files_v2_price(items, redundancy, part)
