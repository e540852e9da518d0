"""Only the VMs attached to a storage reach its private endpoint (shared/domain/network_rules.py).
Attach lets a VM in before it mounts; detach, and reconcile for a VM that is gone, take it out.
A subnet the service did not make is left alone, unless its owner let the service guard it on
create (`guardSubnet`); else its owner adds the rules (docs/storage.md)."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, nullcontext

from shared.domain import provisioning as p
from shared.domain.commands import network_lock
from shared.domain.errors import ServiceError
from shared.domain.models import StorageInfo
from shared.domain.network_rules import (
    NSG_NAME,
    EndpointPlace,
    allow_rule,
    allow_rule_name,
    foreign_rules,
)
from shared.ports import LockManager, PendingAdmissions, StorageCloud

from .locking import held

log = logging.getLogger(__name__)
CONFLICT_RETRIES = 5  # another storage's rule took the same free priority meanwhile


class NetworkGuard:
    """Attaches to one storage run side by side, and its rule is read and written whole: each
    change holds the storage's network lock (`locks`; None: one caller only). An attach first
    notes its address as waiting (`pending`), and whoever holds the lock writes every waiting
    address at once, so a fleet of N shares a few rule writes instead of making N in a row."""

    def __init__(self, cloud: StorageCloud, locks: LockManager | None = None,
                 pending: PendingAdmissions | None = None) -> None:
        self.cloud = cloud
        self.locks = locks
        self.pending = pending

    @contextmanager
    def exclusive(self, storage: StorageInfo, why: str) -> Iterator[None]:
        """Hold the storage's network lock: its rule, and the DNS links its attaches make."""
        with held(self.locks, network_lock(storage.name), why) if self.locks else nullcontext():
            yield

    def admit(self, storage: StorageInfo, address: str, creator: str | None = None) -> bool:
        """Let `address` reach the storage's endpoint; False when the service may not guard it."""
        place = self._place(storage)
        if place is None or not place.ours or not address:
            return False
        if place.guarded and place.nsg_id and address in self._sources(place.nsg_id, storage):
            return True  # let in already (by another attach's write, or before a repair)
        if self.pending is not None:
            self.pending.add(storage.name, address)
        with self.exclusive(storage, f"admitting {address}"):
            place = self._place(storage) or place
            nsg = place.nsg_id if place.guarded and place.nsg_id else self.cloud.guard_subnet(
                place, storage.region, p.managed_tags(creator))
            waiting = self.pending.waiting(storage.name) if self.pending is not None else set()
            self._change(nsg, storage, place, add={address} | waiting)
        if self.pending is not None:
            self.pending.remove(storage.name, {address} | waiting)
        return True

    def release(self, storage: StorageInfo, addresses: Iterable[str]) -> None:
        """Take `addresses` out of the storage's rule (the rule goes with its last address)."""
        gone = {a for a in addresses if a}
        if not gone:
            return
        if self.pending is not None:
            self.pending.remove(storage.name, gone)
        with self.exclusive(storage, f"releasing {', '.join(sorted(gone))}"):
            place = self._place(storage)
            if place is not None and place.guarded and place.nsg_id:
                self._change(place.nsg_id, storage, place, remove=gone)

    def audit(self, storage: StorageInfo, attached: Iterable[str]) -> list[str]:
        """Other ways in than the service made: rules someone else added to the service's group,
        addresses in the storage's rule that no attached VM has, a subnet no longer guarded. An
        attached VM's address the rule lacks is put back (its home would time out otherwise);
        one no attached VM has is only reported: an attach may have let it in a moment ago."""
        place = self._place(storage)
        if place is None or not place.ours:
            return []
        if not place.guarded or not place.nsg_id:
            return [f"{storage.name}: the endpoint's subnet no longer obeys {NSG_NAME} "
                    f"(privateEndpointNetworkPolicies {place.policies})"]
        rules = self.cloud.security_rules(place.nsg_id)
        found = [f"{storage.name}: rule {r.name} ({r.access}, priority {r.priority}) was not made by "
                 "the service" for r in foreign_rules(rules)]
        ours = next((r for r in rules if r.name == allow_rule_name(storage.name)), None)
        unknown = sorted(set(ours.sources if ours else ()) - set(attached))
        found += [f"{storage.name}: {allow_rule_name(storage.name)} lets in {a}, which no attached VM has"
                  for a in unknown]
        missing = set(attached) - set(ours.sources if ours else ()) - {""}
        if missing:  # a write lost to a race, or a hand edit: the attached VM's home would hang
            with self.exclusive(storage, "putting back attached addresses"):
                self._change(place.nsg_id, storage, place, add=missing)
            found += [f"{storage.name}: {allow_rule_name(storage.name)} lacked {a}, an attached VM's "
                      "address: put back" for a in sorted(missing)]
        return found

    def _sources(self, nsg: str, storage: StorageInfo) -> set[str]:
        name = allow_rule_name(storage.name)
        rule = next((r for r in self.cloud.security_rules(nsg) if r.name == name), None)
        return set(rule.sources) if rule else set()

    def _place(self, storage: StorageInfo) -> EndpointPlace | None:
        return self.cloud.endpoint_place(storage.resource_group, p.endpoint_name(storage.name))

    def _change(self, nsg: str, storage: StorageInfo, place: EndpointPlace, *,
                add: set[str] | None = None, remove: set[str] | None = None) -> None:
        for attempt in range(1, CONFLICT_RETRIES + 1):
            rules = self.cloud.security_rules(nsg)
            current = next((r for r in rules if r.name == allow_rule_name(storage.name)), None)
            sources = (set(current.sources if current else ()) | (add or set())) - (remove or set())
            try:
                if sources:
                    rule = allow_rule(storage.name, place.address, sources, rules)
                    if rule != current:
                        self.cloud.put_security_rule(nsg, rule)
                elif current is not None:
                    self.cloud.delete_security_rule(nsg, current.name)
                return
            except ServiceError as err:
                said = f"{err.message} {err.causes}"
                if ("conflicts with rule" not in said and "SecurityRuleConflict" not in said) \
                        or attempt == CONFLICT_RETRIES:
                    raise
                log.info("the priority chosen for %s was taken meanwhile; choosing again", storage.name)
