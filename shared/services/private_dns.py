"""A storage's name on the private network: published in the `privatelink.file.core.windows.net`
zone that answers for the endpoint's VNet when the storage is created, made to resolve from each
attached VM's VNet, and taken back on delete. Used by the storage lifecycle and by attach.

The rules are Azure's (`shared.domain.private_dns`): the zone already linked to a VNet is the one
to use, wherever it lives; `PRIVATE_DNS_ZONE_ID` names a central zone; only a VNet that resolves
through nothing gets a link, and only the service's own zone is ever created. On a zone the
service did not create it checks its own permissions first, and refuses with what to grant."""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext

from shared.domain import private_dns as d
from shared.domain.errors import Conflict
from shared.domain.models import StorageInfo
from shared.domain.provisioning import Network, endpoint_name, managed_tags
from shared.ports import StorageCloud

log = logging.getLogger(__name__)


class PrivateDnsPublisher:
    def __init__(self, cloud: StorageCloud, configured_zone: str | None) -> None:
        self.cloud = cloud
        self.configured_zone = configured_zone

    def plan(self, account: str, group: str, network: Network) -> d.ZonePlan:
        """The zone the endpoint in `network` publishes in, checked writable before anything is
        created (the VNet may not exist yet: the service is about to make it). With no zone
        answering and none configured, the service's own zone in `group`."""
        zones = self.cloud.file_zones(self.configured_zone)
        plan = d.zone_for(d.VnetDns(network.vnet_id, network.dns_servers), zones, self.configured_zone)
        if plan.zone_id is None:
            own = self.cloud.own_zone_id(group)
            plan = d.ZonePlan(own, link=True, create=not any(d.same_id(z.id, own) for z in zones))
        if not plan.create:
            needed = (d.ZONE_GROUP_ACTION,) + ((d.LINK_ACTION,) if plan.link else ())
            self._require(str(plan.zone_id), zones, needed, account)
        return plan

    def publish(self, plan: d.ZonePlan, group: str, endpoint: str, vnet_id: str, tags: dict[str, str],
                *, fresh: bool) -> None:
        """The endpoint's record in the planned zone (its DNS zone group), the zone linked to
        the endpoint's VNet when nothing answered there."""
        zone_id = self.cloud.create_zone(group, tags) if plan.create else str(plan.zone_id)
        if plan.link:
            self.cloud.link_zone(zone_id, vnet_id, tags)
        if fresh or not self.cloud.has_zone_group(group, endpoint):
            self.cloud.create_zone_group(group, endpoint, zone_id)

    def reach(self, storage: StorageInfo, vnet_id: str, creator: str | None,
              serialized: Callable[[], AbstractContextManager[object]] = nullcontext) -> None:
        """The storage's name resolves from `vnet_id`: through the zone that answers there (its
        record written into it when it is another zone than the endpoint's), or the endpoint's
        zone linked to a VNet that nothing answers for. What is missing is written inside
        `serialized` (the storage's network lock) after looking again: of a fleet attaching at
        once, one makes the link and the others find it."""
        if self._missing(storage, vnet_id) is None:
            return
        with serialized():
            write = self._missing(storage, vnet_id)
            if write is not None:
                write(creator)

    def _missing(self, storage: StorageInfo, vnet_id: str) -> Callable[[str | None], None] | None:
        """What `reach` must still write, or None when the name already resolves from `vnet_id`."""
        published = self.cloud.endpoint_dns(storage.resource_group, endpoint_name(storage.name))
        if published is None:
            raise Conflict(
                f"Storage {storage.name} has no record in private DNS.",
                try_hint="create the storage again (POST /api/storage with the same name) to repair it",
            )
        zones = self.cloud.file_zones(self.configured_zone)
        plan = d.zone_for(self.cloud.vnet_dns(vnet_id), zones, self.configured_zone)
        target = plan.zone_id or published.zone_id
        elsewhere = not d.same_id(target, published.zone_id) and not any(
            r.name == storage.name and published.address in r.addresses
            for r in self.cloud.zone_records(target))
        if not plan.link and not elsewhere:
            return None
        needed = ((d.LINK_ACTION,) if plan.link else ()) + ((d.RECORD_ACTION,) if elsewhere else ())
        self._require(target, zones, needed, storage.name)

        def write(creator: str | None) -> None:
            if plan.link:
                self.cloud.link_zone(target, vnet_id, managed_tags(creator))
            if elsewhere:
                self.cloud.put_record(target, storage.name, published.address, managed_tags(creator))
                log.info("wrote the A record %s in %s", storage.name, target)

        return write

    def withdraw(self, account: str, still_ours: set[str]) -> list[str]:
        """After the endpoint is gone (its own record with it): the records the service wrote for
        `account`, the links it made that none of its storages (`still_ours`) needs any more, and
        its own zone once nothing is left in it. Nothing else is touched."""
        removed: list[str] = []
        for zone in self.cloud.file_zones(self.configured_zone):
            records = self.cloud.zone_records(zone.id)
            for record in records:
                if record.name == account and record.managed:
                    self.cloud.delete_record(zone.id, record.name)
                    removed.append(f"DNS record {account} in {zone.id}")
            remaining = [r for r in records if r.name != account]
            if any(r.name in still_ours for r in remaining):
                continue
            for link in zone.links:
                if link.managed:
                    self.cloud.unlink_zone(zone.id, link.name)
                    removed.append(f"DNS link {link.name}")
            if zone.managed and not remaining and all(link.managed for link in zone.links):
                self.cloud.delete_zone(zone.id)
                removed.append(f"DNS zone {zone.id}")
        return removed

    def _require(self, zone_id: str, zones: list[d.DnsZone], actions: tuple[str, ...], account: str) -> None:
        if any(d.same_id(z.id, zone_id) and z.managed for z in zones):
            return  # the service made it, in a group it manages
        missing = [f"{a} on the zone" for a in self.cloud.missing_actions(zone_id, actions)]
        if d.LINK_ACTION in actions:
            group = d.zone_group_scope(zone_id)
            monitor = self.cloud.missing_actions(group, (d.LINK_MONITOR_ACTION,))
            missing += [f"{a} on {group}" for a in monitor]
        if missing:
            raise d.zone_refused(zone_id, missing, account)
