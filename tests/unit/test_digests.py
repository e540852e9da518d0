"""The digest's findings and rendering, from plain values."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from shared.domain.costs import CostReport, PriceSource, StorageCost, StoragePrice, VmCost, cost_report
from shared.domain.digests import StorageUse, build_digest, render_markdown, shrink_suggestion
from shared.domain.models import Attachment, AttachmentHealth, Redundancy

PRICE = StoragePrice(Decimal("0.20"), "USD", PriceSource.RETAIL)
DAY1 = datetime(2026, 11, 26, 7, tzinfo=UTC)
DAY2 = datetime(2026, 11, 27, 7, tzinfo=UTC)


def test_a_shrink_keeps_usage_under_80_percent_and_never_goes_below_100_gib() -> None:
    assert shrink_suggestion(1000, 10.0) == 100
    assert shrink_suggestion(1000, 160.5) == 201
    assert shrink_suggestion(100, 5.0) is None  # already the minimum
    assert shrink_suggestion(200, 170.0) is None  # 213 would be larger


def _storage(name: str, size: int, used: float | None, vms: int, group: str = "rg1") -> StorageUse:
    return StorageUse(name, group, size, used, vms, PRICE)


def _report(now: datetime, storage: list[StorageUse], vm_cost: str = "30.00") -> CostReport:
    costs = [StorageCost(s.name, s.resource_group, "westeurope", Redundancy.LRS, s.size_gb,
                         Decimal(s.size_gb) * PRICE.per_gib_month, PriceSource.RETAIL) for s in storage]
    vms = [VmCost("vm1", "rg1", "westeurope", "Standard_B2s", "running", Decimal(vm_cost), PriceSource.RETAIL)]
    return cost_report(None, now, vms, costs)


def test_each_group_gets_its_totals_change_and_findings() -> None:
    uses = [_storage("full", 100, 85.0, 1), _storage("empty", 1000, 10.0, 1), _storage("idle", 100, 50.0, 0),
            _storage("unknown", 100, None, 1), _storage("other", 200, 100.0, 1, group="rg2")]
    attachments = [
        Attachment("full", "vm1", "rg1", "/home/a", DAY1, "id1", health=AttachmentHealth.HEALTHY),
        Attachment("empty", "vm2", "rg1", "/home/a", DAY1, "id2", health=AttachmentHealth.UNMOUNTED,
                   last_verified_at=DAY2, last_error="nothing is mounted on /home/a"),
        Attachment("unknown", "vm3", "rg1", "/home/a", DAY1, "id3"),  # never checked: not reported
    ]
    first = build_digest(DAY1, _report(DAY1, uses, "20.00"), uses, attachments, None)
    digest = build_digest(DAY2, _report(DAY2, uses), uses, attachments, first)

    assert (digest.id, digest.previous_id, first.change) == ("2026-11-27", "2026-11-26", None)
    rg1, rg2 = digest.groups
    assert (rg1.resource_group, rg1.vm_cost, rg1.storage_cost) == ("rg1", Decimal("30.00"), Decimal("260.00"))
    assert rg1.change == Decimal("10.00") and rg2.change == Decimal("0.00")
    assert digest.total == Decimal("330.00") and digest.change == Decimal("10.00")
    assert [f.name for f in rg1.near_full] == ["full"]
    (empty,) = rg1.mostly_empty
    assert (empty.name, empty.suggested_size_gb, empty.monthly_saving) == ("empty", 100, Decimal("180.00"))
    assert [f.name for f in rg1.unattached] == ["idle"]
    assert [(a.vm, a.health) for a in rg1.unhealthy] == [("vm2", AttachmentHealth.UNMOUNTED)]
    assert not (rg2.near_full or rg2.mostly_empty or rg2.unattached or rg2.unhealthy)

    text = render_markdown(digest)
    assert text.startswith("# Cost digest 2026-11-27\n")
    assert "**Monthly total: 330.00 USD** (+10.00 since the previous digest)" in text
    assert "shrinking to 100 GiB saves 180.00 USD a month" in text
    assert "Attached to no VM: **idle** costs 20.00 USD a month" in text
    assert "VM **vm2** on empty is unmounted (nothing is mounted on /home/a)" in text
    assert "estimates" not in text  # every price came from the Retail Prices API


def test_estimated_prices_are_said_to_be_estimates() -> None:
    uses = [_storage("st1", 100, 1.0, 1)]
    report = cost_report(None, DAY1, [VmCost("vm9", "rg1", "westeurope", "Odd", "running", None,
                                             PriceSource.UNAVAILABLE)], [])
    text = render_markdown(build_digest(DAY1, report, uses, [], None))
    assert "(first digest)" in text and "sources: unavailable" in text
