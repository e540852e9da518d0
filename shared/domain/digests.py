"""The daily cost digest, without I/O: what goes in it, and its Markdown rendering.

Per resource group: monthly totals and their change since the previous digest, storage near full
(at least 80 % used), storage mostly empty (under 20 % used, with what shrinking would save within
Azure's 100 GiB minimum), storage attached to no VM (paying for nothing), unhealthy attachments,
and VMs that ask for a storage but were not attached because who wrote them is unknown. One
digest per UTC day, identified by its date.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal
from enum import Enum

from . import untrusted
from .costs import CostReport, PriceSource, StoragePrice, monthly_storage_cost, round_money
from .models import Attachment, AttachmentHealth
from .serialization import OMIT_IF_NONE
from .validation import MIN_SHARE_GIB

NEAR_FULL_PERCENT = 80
MOSTLY_EMPTY_PERCENT = 20
# A shrunk share should stay comfortably below "near full": size it so usage is at most 80 %.
TARGET_UTILIZATION = 0.8


class Delivery(str, Enum):
    NOT_CONFIGURED = "notConfigured"  # no COST_DIGEST_WEBHOOK_URL
    PENDING = "pending"  # not posted yet, or the last post failed
    POSTING = "posting"  # claimed by one run; another run leaves it alone
    DELIVERED = "delivered"
    FAILED = "failed"  # gave up after MAX_DELIVERY_ATTEMPTS


MAX_DELIVERY_ATTEMPTS = 24  # hourly retries for a day


@dataclass(frozen=True)
class StorageUse:
    """What the digest knows of one storage: its record, usage and price."""

    name: str
    resource_group: str
    size_gb: int
    used_gb: float | None  # None: usage could not be read
    attached_vms: int
    price: StoragePrice
    iops: int | None = None  # provisioned v2
    throughput_mibps: int | None = None


@dataclass(frozen=True)
class StorageFinding:
    name: str
    size_gb: int
    used_gb: float | None
    utilization_percent: float | None
    cost_per_month: Decimal
    suggested_size_gb: int | None = field(default=None, metadata=OMIT_IF_NONE)
    monthly_saving: Decimal | None = field(default=None, metadata=OMIT_IF_NONE)


@dataclass(frozen=True)
class AttachmentFinding:
    vm: str
    storage: str
    health: AttachmentHealth
    last_verified_at: datetime | None
    last_error: str | None = field(default=None, metadata=OMIT_IF_NONE)


@dataclass(frozen=True)
class UnattachedVm:
    """A VM whose tag (or group default) asks for a storage, left alone: the reconcile timer
    found it without an attachment, and who wrote it, so whether they may join the storage, is
    not known (its creation event was missed)."""

    vm: str
    resource_group: str
    storage: str
    reason: str


@dataclass(frozen=True)
class GroupDigest:
    resource_group: str
    vm_cost: Decimal
    storage_cost: Decimal
    total: Decimal
    change: Decimal | None  # since the previous digest; None when this group was not in it
    near_full: tuple[StorageFinding, ...] = ()
    mostly_empty: tuple[StorageFinding, ...] = ()
    unattached: tuple[StorageFinding, ...] = ()
    unhealthy: tuple[AttachmentFinding, ...] = ()
    not_attached: tuple[UnattachedVm, ...] = ()


@dataclass(frozen=True)
class CostDigest:
    id: str  # the UTC date, YYYY-MM-DD
    created_at: datetime
    currency: str
    price_sources: tuple[PriceSource, ...]
    total: Decimal
    groups: tuple[GroupDigest, ...]
    change: Decimal | None = None  # since the previous digest; None for the first one
    previous_id: str | None = None
    delivery: Delivery = Delivery.NOT_CONFIGURED
    delivery_attempts: int = 0
    delivered_at: datetime | None = field(default=None, metadata=OMIT_IF_NONE)
    delivery_error: str | None = field(default=None, metadata=OMIT_IF_NONE)
    claimed_at: datetime | None = field(default=None, metadata=OMIT_IF_NONE)
    # 1 for the day's digest, then one more each time it is made again on demand (its figures
    # taken anew); each revision is posted under its own Idempotency-Key.
    revision: int = 1
    etag: str | None = field(default=None, compare=False, metadata={"json": False})

    def claim(self, now: datetime) -> CostDigest:
        return replace(self, delivery=Delivery.POSTING, claimed_at=now)

    def delivered(self, now: datetime) -> CostDigest:
        return replace(self, delivery=Delivery.DELIVERED, delivered_at=now,
                       delivery_attempts=self.delivery_attempts + 1, delivery_error=None)

    @property
    def delivery_key(self) -> str:
        """The Idempotency-Key of its post: the day's, and each revision's its own."""
        return f"azlin-digest-{self.id}" + (f"-r{self.revision}" if self.revision > 1 else "")

    def post_failed(self, error: str) -> CostDigest:
        attempts = self.delivery_attempts + 1
        gave_up = attempts >= MAX_DELIVERY_ATTEMPTS
        return replace(self, delivery=Delivery.FAILED if gave_up else Delivery.PENDING,
                       delivery_attempts=attempts, delivery_error=error)


def digest_id(now: datetime) -> str:
    return now.date().isoformat()


def shrink_suggestion(size_gb: int, used_gb: float) -> int | None:
    """The smallest size (whole GiB, at least Azure's minimum) that keeps usage at most 80 %;
    None when it would not be smaller than the share is."""
    target = max(MIN_SHARE_GIB, math.ceil(used_gb / TARGET_UTILIZATION))
    return target if target < size_gb else None


def build_digest(now: datetime, report: CostReport, storage: Iterable[StorageUse],
                 attachments: Iterable[Attachment], previous: CostDigest | None,
                 not_attached: Iterable[UnattachedVm] = ()) -> CostDigest:
    uses = list(storage)
    links = list(attachments)
    waiting = list(not_attached)
    before = {g.resource_group.lower(): g.total for g in previous.groups} if previous else {}
    names = [*(v.resource_group for v in report.vms), *(s.resource_group for s in report.storage),
             *(u.resource_group for u in uses), *(w.resource_group for w in waiting)]
    groups = sorted({name.lower(): name for name in names}.items())
    digests = tuple(
        replace(_group(name, report, [u for u in uses if u.resource_group.lower() == key],
                       [a for a in links if a.resource_group.lower() == key], before.get(key)),
                not_attached=tuple(w for w in waiting if w.resource_group.lower() == key))
        for key, name in groups)
    previous_total = previous.total if previous else None
    return CostDigest(digest_id(now), now, report.currency, report.price_sources, report.grand_total, digests,
                      None if previous_total is None else report.grand_total - previous_total,
                      previous.id if previous else None)


def for_groups(digest: CostDigest, readable: set[str]) -> CostDigest:
    """The digest as someone who may read only the resource groups `readable` (lower case) sees
    it: their groups, and totals over those alone."""
    groups = tuple(g for g in digest.groups if g.resource_group.lower() in readable)
    if len(groups) == len(digest.groups):
        return digest
    changes = [g.change for g in groups]
    known = None if digest.change is None or None in changes else sum((c for c in changes if c is not None),
                                                                         Decimal(0))
    return replace(digest, groups=groups, total=sum((g.total for g in groups), Decimal(0)), change=known)


def _group(name: str, report: CostReport, uses: list[StorageUse], links: list[Attachment],
           before: Decimal | None) -> GroupDigest:
    key = name.lower()
    vm_cost = round_money(sum((c.cost_per_month or Decimal(0) for c in report.vms
                               if c.resource_group.lower() == key), Decimal(0)))
    storage_cost = round_money(sum((c.cost_per_month for c in report.storage
                                    if c.resource_group.lower() == key), Decimal(0)))
    total = vm_cost + storage_cost
    findings = [_finding(use) for use in uses]
    return GroupDigest(
        name, vm_cost, storage_cost, total, None if before is None else total - before,
        near_full=tuple(f for f in findings if (f.utilization_percent or 0) >= NEAR_FULL_PERCENT),
        mostly_empty=tuple(f for f in findings if f.monthly_saving is not None),
        unattached=tuple(f for f, use in zip(findings, uses, strict=True) if use.attached_vms == 0),
        unhealthy=tuple(AttachmentFinding(a.vm, a.storage, a.health, a.last_verified_at, a.last_error)
                        for a in sorted(links, key=lambda a: a.vm.lower())
                        if a.health not in (AttachmentHealth.HEALTHY, AttachmentHealth.UNKNOWN)
                        or (a.health is AttachmentHealth.UNKNOWN and a.last_error)),
    )


def _finding(use: StorageUse) -> StorageFinding:
    cost = round_money(monthly_storage_cost(use.size_gb, use.price, use.iops, use.throughput_mibps))
    if use.used_gb is None:
        return StorageFinding(use.name, use.size_gb, None, None, cost)
    percent = round(100 * use.used_gb / use.size_gb, 2)
    smaller = shrink_suggestion(use.size_gb, use.used_gb) if percent < MOSTLY_EMPTY_PERCENT else None
    saving = None if smaller is None else round_money(
        cost - monthly_storage_cost(smaller, use.price, use.iops, use.throughput_mibps))
    return StorageFinding(use.name, use.size_gb, use.used_gb, percent, cost, smaller, saving)


def render_markdown(digest: CostDigest) -> str:
    """The digest for people (a chat message or an email body)."""
    money = _money_in(digest.currency)
    again = f" (made again at {digest.created_at:%H:%M} UTC)" if digest.revision > 1 else ""
    lines = [f"# Cost digest {digest.id}{again}", "",
             f"**Monthly total: {money(digest.total)}**" + _change(digest.change), ""]
    if any(s is not PriceSource.RETAIL for s in digest.price_sources):
        lines += ["_Some prices are estimates (sources: "
                  + ", ".join(s.value for s in digest.price_sources) + ")._", ""]
    if not digest.groups:
        lines.append("Nothing is provisioned.")
    for group in digest.groups:
        lines += [f"## {group.resource_group}: {money(group.total)}" + _change(group.change), "",
                  f"- VMs {money(group.vm_cost)}, storage {money(group.storage_cost)}"]
        lines += [f"- Near full: **{f.name}** {f.utilization_percent}% of {f.size_gb} GiB; grow it "
                  "before it fills" for f in group.near_full]
        lines += [f"- Mostly empty: **{f.name}** {f.utilization_percent}% of {f.size_gb} GiB; "
                  f"shrinking to {f.suggested_size_gb} GiB saves {money(f.monthly_saving)} a month"
                  for f in group.mostly_empty if f.monthly_saving is not None]
        lines += [f"- Attached to no VM: **{f.name}** costs {money(f.cost_per_month)} a month for "
                  "nothing" for f in group.unattached]
        # A last error is what a VM reported, a requested storage what a VM's tag says: untrusted.
        lines += [f"- Unhealthy: VM **{a.vm}** on {a.storage} is {a.health.value}"
                  + (f" ({untrusted.markdown(a.last_error)})" if a.last_error else "")
                  for a in group.unhealthy]
        lines += [f"- Not attached: VM **{w.vm}** asks for storage **{untrusted.markdown(w.storage)}**: "
                  f"{untrusted.markdown(w.reason)}" for w in group.not_attached]
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def _money_in(currency: str) -> Callable[[Decimal | None], str]:
    def show(amount: Decimal | None) -> str:
        return "?" if amount is None else f"{round_money(amount):,.2f} {currency}"

    return show


def _change(change: Decimal | None) -> str:
    if change is None:
        return " (first digest)"
    sign = "+" if change >= 0 else "-"
    return f" ({sign}{round_money(abs(change)):,.2f} since the previous digest)"
