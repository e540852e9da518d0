"""The storage lifecycle in Azure, run by the worker: create, resize and delete NFS storage.

Each step reads what exists first and writes only what is missing, so a redelivered message, a
crash between two steps or the same request twice converge on one end state without extra
writes. Progress is recorded after every step. What exists and does not fit is refused, never
taken over: an account without our tag, of another kind, SKU or region.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

from shared.domain import provisioning as p
from shared.domain.commands import (
    CreateStorage,
    DeleteStorage,
    DetachVm,
    PurgeStorage,
    ResizeStorage,
    UndeleteStorage,
)
from shared.domain.data_protection import DataProtection, SnapshotReason, purge_after, require_active
from shared.domain.errors import (
    Conflict,
    DomainError,
    ErrorCode,
    NotFound,
    PermissionDenied,
    ValidationError,
    WaitingForChildren,
)
from shared.domain.identity import Principal
from shared.domain.models import StorageAccess, StorageInfo, StorageState
from shared.domain.network_rules import guard_refusal
from shared.domain.operations import Operation, OperationStatus, storage_subject
from shared.domain.private_dns import ZonePlan
from shared.domain.requests import RequestDefaults
from shared.domain.serialization import to_json
from shared.domain.validation import SHARE_GIB_RANGE
from shared.ports import (
    AttachmentRepository,
    Clock,
    OperationRepository,
    StorageAccessRepository,
    StorageCloud,
    StorageRepository,
)

from .operations import OperationIntake
from .private_dns import PrivateDnsPublisher
from .worker import OperationContext


class StorageProvisioner:
    def __init__(
        self,
        cloud: StorageCloud,
        storages: StorageRepository,
        attachments: AttachmentRepository,
        access: StorageAccessRepository,
        operations: OperationRepository,
        clock: Clock,
        defaults: RequestDefaults,
        dns: PrivateDnsPublisher,
        intake: OperationIntake,
        protection: DataProtection | None = None,
        snapshot: Callable[[StorageInfo, SnapshotReason], object] | None = None,
        waiting: Callable[[str], list[str]] | None = None,
    ) -> None:
        # After a new storage is recorded: queue the attaches of VMs tagged for it before it
        # existed (AutoAttachService.attach_waiting); the ids of the attaches queued.
        self.waiting = waiting
        self.protection = protection or DataProtection()
        self.snapshot = snapshot  # before a shrink (DataProtectionService.before)
        self.dns = dns
        self.operations = operations
        self.intake = intake  # a forced delete queues a detach per attached VM
        self.access = access
        self.cloud = cloud
        self.storages = storages
        self.attachments = attachments
        self.clock = clock
        self.defaults = defaults

    # -- create -----------------------------------------------------------------------------------

    def create(self, command: CreateStorage, context: OperationContext) -> Mapping[str, Any]:
        context.progress(p.CREATE_STEPS[0], 0, len(p.CREATE_STEPS))
        requested_by = context.operation.requested_by
        recorded = self.storages.get(command.name)
        if recorded is not None:  # a repair: its owners asked (checked then)
            require_active(recorded, "create it again")
            return self._create(command, context)
        self._claim_ownership(command.name, requested_by)
        try:
            created = self._create(command, context)
        except DomainError:  # it will not exist: the name is free again
            self._release_claim(command.name, requested_by)
            raise
        # Only a new storage can have VMs waiting for it. A redelivery after the record was saved
        # takes the repair path above and skips this: the reconcile timer attaches them then.
        queued = self.waiting(command.name) if self.waiting is not None else []
        return {**created, "attachQueued": queued} if queued else created

    def _create(self, command: CreateStorage, context: OperationContext) -> Mapping[str, Any]:
        steps, total = p.CREATE_STEPS, len(p.CREATE_STEPS)
        region = command.region or self._group_region(command.resource_group)
        creator = _creator(context.operation.requested_by)
        spec = p.AccountSpec(
            command.name,
            command.resource_group,
            region,
            p.sku_for(command.tier, command.redundancy, command.billing),
            p.managed_tags(creator),
            https_only=command.encryption_in_transit,
        )
        existing = self._reusable_account(spec)
        if existing is not None and existing.https_only:  # never switched off once on
            spec = replace(spec, https_only=True)
        fresh = existing is None  # nothing of this account can exist yet: write without reading
        context.progress(steps[1], 1, total)
        network, zone = self._network(command.vnet, command.subnet, spec, creator)
        if command.guard_subnet:
            self._check_guardable(network)
        context.progress(steps[2], 2, total)
        if existing is None or existing.provisioning_state != "Succeeded" or p.drifted(existing, spec):
            existing = self.cloud.create_account(spec)
        if fresh or not self.cloud.account_locked(spec.resource_group, spec.name):
            self.cloud.lock_account(spec.resource_group, spec.name)
        context.progress(steps[3], 3, total)
        share = None if fresh else self.cloud.get_share(spec.resource_group, spec.name)
        if share is None or share.quota_gib < command.size_gb or _performance_differs(share, command):
            quota = max(command.size_gb, share.quota_gib if share else 0)  # never shrunk by a create
            share = self._put_share(spec.resource_group, spec.name, share, quota, command)
        # Share soft delete: a share deleted inside the account (a portal click) comes back.
        self.cloud.protect_shares(spec.resource_group, spec.name, self.protection.share_retention_days)
        context.progress(steps[4], 4, total)
        self._connect(spec, network, zone, existing.id, fresh=fresh, creator=creator,
                      guard=command.guard_subnet)
        context.progress(steps[5], 5, total)
        named = bool(command.vnet)  # else the service's own VNet, made again wherever it is needed
        info = replace(p.storage_info(existing, share, self.clock.now()),
                       vnet=network.vnet if named else None, subnet=network.subnet if named else None)
        self.storages.save(info)
        return dict(to_json(info))

    def _claim_ownership(self, name: str, requested_by: Principal | None) -> None:
        """The creator is the storage's first owner, recorded before anything is made: of two
        people creating one name, the second finds it owned and is refused."""
        if requested_by is None or not requested_by.object_id:  # recorded before callers were known
            return
        record = self.access.add(StorageAccess(name, owners=(requested_by.object_id,),
                                               updated_at=self.clock.now(), updated_by=requested_by))
        if record.owners and requested_by.object_id not in record.owners:
            raise PermissionDenied(f"Storage {name} belongs to someone else.",
                                   causes=[f"{requested_by.name} is not one of its owners"],
                                   try_hint="choose another name, or ask an owner to add you",
                                   code=ErrorCode.NOT_AN_OWNER)

    def _release_claim(self, name: str, requested_by: Principal | None) -> None:
        record = self.access.get(name)
        if (requested_by is not None and record is not None and record.owners == (requested_by.object_id,)
                and self.storages.get(name) is None):
            self.access.delete(name)

    def _group_region(self, group: str) -> str:
        region = self.cloud.group_region(group)
        if region is None:
            raise NotFound(
                f"Resource group {group} does not exist.",
                try_hint="create it (az group create), or name an existing resourceGroup",
                code=ErrorCode.RESOURCE_GROUP_NOT_FOUND,
            )
        return region

    def _reusable_account(self, spec: p.AccountSpec) -> p.CloudAccount | None:
        """None for a fresh name; the existing account when it is ours and fits; else a refusal.
        The name check comes first: for a fresh name it is the only read needed."""
        available, reason = self.cloud.name_available(spec.name)
        if available:
            return None
        existing = self.cloud.get_account(spec.resource_group, spec.name)
        if existing is None:
            raise Conflict(f"The name {spec.name} is taken in Azure.", causes=[reason],
                           code=ErrorCode.STORAGE_NAME_TAKEN,
                           try_hint="storage account names are unique across all of Azure: add a suffix "
                                    f"such as '{spec.name[:20]}{self.clock.now():%m%d}' and try again")
        problems = p.incompatibilities(existing, spec)
        if problems:
            raise Conflict(f"Storage account {spec.name} exists in {spec.resource_group} and cannot be used "
                           "for this storage.", causes=problems, code=ErrorCode.STORAGE_INCOMPATIBLE,
                           try_hint="choose another name, or delete that account if it is not needed")
        return existing

    def _network(self, named_vnet: str | None, named_subnet: str | None, spec: p.AccountSpec,
                 creator: str | None) -> tuple[p.Network, ZonePlan]:
        """The subnet the endpoint goes in (the service's own VNet made when the request names
        none), in the storage's region, and the DNS zone its name goes in: both checked before
        anything is created."""
        group = spec.resource_group
        vnet, subnet = named_vnet or p.DEFAULT_VNET, named_subnet or (
            "default" if named_vnet else p.DEFAULT_SUBNET)
        found = self.cloud.get_network(group, vnet, subnet)
        if found is None and named_vnet:
            raise NotFound(
                f"Subnet {subnet} of VNet {named_vnet} does not exist in {group}.",
                try_hint=self._network_hint(named_vnet),
                code=ErrorCode.NETWORK_NOT_FOUND,
            )
        if found is not None:
            _same_region(found, spec.region)
            return found, self.dns.plan(spec.name, group, found)
        # A VNet still to be made: nothing is linked to it and it has no DNS servers of its own.
        zone = self.dns.plan(spec.name, group, p.Network(vnet, subnet, "", "", group, spec.region))
        made = self.cloud.create_network(group, spec.region, vnet, p.DEFAULT_VNET_SPACE, subnet,
                                         p.DEFAULT_SUBNET_PREFIX, p.managed_tags(creator))
        return made, zone

    def _network_hint(self, missing_vnet: str) -> str:
        """What to do about a missing network; never a VNet the request would not get."""
        setting = self.defaults.vnet
        if setting is None:
            return ("name an existing VNet and subnet, or leave both out to use the service's own "
                    f"VNet {p.DEFAULT_VNET}")
        if setting.lower() == missing_vnet.lower():
            return (f"the setting DEFAULT_VNET names {setting}, which is not in this resource group: "
                    "name an existing VNet and subnet in the request, or fix the setting")
        return (f"name an existing VNet and subnet, or leave both out to use {setting} "
                "(the setting DEFAULT_VNET)")

    def _check_guardable(self, network: p.Network) -> None:
        """Before anything is made: the customer's subnet can take the service's group."""
        facts = self.cloud.subnet_facts(network.resource_group, network.vnet, network.subnet)
        refusal = guard_refusal(facts) if facts is not None else f"subnet {network.subnet} is gone"
        if refusal is not None:
            raise Conflict(f"The service cannot guard subnet {network.subnet} of VNet {network.vnet}.",
                           causes=[refusal],
                           try_hint="create without guardSubnet and add the rules docs/storage.md lists, "
                                    "or give the storage a subnet of its own",
                           code=ErrorCode.NETWORK_NOT_GUARDABLE)

    def _connect(self, spec: p.AccountSpec, network: p.Network, zone: ZonePlan, account_id: str, *,
                 fresh: bool, creator: str | None, guard: bool = False) -> None:
        """Private endpoint in the subnet, its A record in the zone that answers for the VNet:
        what lets VMs in that VNet resolve and reach the share."""
        group, endpoint, tags = spec.resource_group, p.endpoint_name(spec.name), p.managed_tags(creator)
        if fresh or self.cloud.get_endpoint(group, endpoint) is None:
            self.cloud.create_endpoint(group, endpoint, spec.region, network.subnet_id, account_id, tags)
        # From its first minute, only VMs attached to it reach the endpoint (network_rules.py).
        place = self.cloud.endpoint_place(group, endpoint)
        if place is not None and (place.managed or guard) and not place.guarded:
            self.cloud.guard_subnet(place, spec.region, tags)
        self.dns.publish(zone, group, endpoint, network.vnet_id, tags, fresh=fresh)

    # -- resize -----------------------------------------------------------------------------------

    def resize(self, command: ResizeStorage, context: OperationContext) -> Mapping[str, Any]:
        context.progress("Checking the share", 0, 2)
        storage = self._recorded(command.name)
        require_active(storage, "resize it")
        share = self.cloud.get_share(storage.resource_group, storage.name, with_usage=True)
        if share is None:
            raise NotFound(
                f"The NFS share of {storage.name} no longer exists in Azure.",
                try_hint="delete the storage and create it again",
                code=ErrorCode.STORAGE_NOT_FOUND,
            )
        size = share.quota_gib if command.size_gb is None else command.size_gb
        if size < share.quota_gib:
            self._check_shrink(storage, share, size)
            if self.snapshot is not None:
                self.snapshot(storage, SnapshotReason.BEFORE_SHRINK)
        context.progress("Setting the share size", 1, 2)
        if size != share.quota_gib or _performance_differs(share, command):
            share = self._put_share(storage.resource_group, storage.name, share, size, command)
        resized = replace(storage, size_gb=share.quota_gib, iops=share.iops,
                          throughput_mibps=share.throughput_mibps)
        self.storages.save(resized)
        return dict(to_json(resized))

    def _put_share(self, group: str, name: str, before: p.CloudShare | None, size_gb: int,
                   command: CreateStorage | ResizeStorage) -> p.CloudShare:
        try:
            return self.cloud.put_share(group, name, size_gb, command.iops, command.throughput_mibps)
        except Conflict as err:  # too soon after an increase: say until when, from the share read
            if err.code is not ErrorCode.QUOTA_DOWNGRADE_NOT_ALLOWED or before is None:
                raise
            raise p.downgrade_refused(name, before, size_gb, command.iops, command.throughput_mibps,
                                      err) from err

    @staticmethod
    def _check_shrink(storage: StorageInfo, share: p.CloudShare, size_gb: int) -> None:
        if share.usage_bytes is None:
            raise Conflict(
                f"Cannot shrink {storage.name}: Azure did not report how much of it is used.",
                try_hint="try again later, or grow instead",
                code=ErrorCode.SHARE_TOO_SMALL,
            )
        needed = p.used_gib(share.usage_bytes)
        if size_gb < needed:
            raise ValidationError(
                f"Cannot shrink {storage.name} to {size_gb} GiB: its files use {needed} GiB.",
                causes=[f"used: {share.usage_bytes} bytes"],
                try_hint=f"choose a size of at least {max(needed, SHARE_GIB_RANGE[storage.billing][0])} GiB, "
                "or delete files first",
                code=ErrorCode.SHARE_TOO_SMALL,
            )

    def _recorded(self, name: str) -> StorageInfo:
        storage = self.storages.get(name)
        if storage is None:
            raise NotFound(
                f"Storage {name} is not known to this service.",
                code=ErrorCode.STORAGE_NOT_FOUND,
                try_hint="list what exists with GET /api/storage",
            )
        return storage

    # -- delete -----------------------------------------------------------------------------------

    def delete(self, command: DeleteStorage, context: OperationContext) -> Mapping[str, Any]:
        """Detach (forced) and cut the storage off at once; keep the account, its share and its
        snapshots, locked, for the retention window (`purge` ends it). Without a window, or for
        an account the service has no record of, the purge follows at once."""
        steps, total = p.DELETE_STEPS, len(p.DELETE_STEPS)
        group, name = command.resource_group, command.name
        context.progress(steps[0], 0, total)
        account = self.cloud.get_account(group, name)
        if account is not None and not account.managed:
            raise Conflict(
                f"Storage account {name} was not created by this service; it is left alone.",
                causes=[f"it has no '{p.MANAGED_BY_TAG}: {p.MANAGED_BY}' tag"],
                code=ErrorCode.STORAGE_INCOMPATIBLE,
                try_hint="delete it in Azure yourself if you mean to",
            )
        recorded = self.storages.get(name)
        if recorded is not None and recorded.deleted:  # a repeat: it is kept already
            return _kept(recorded)
        self._detach_all(command, context.operation)
        context.progress(steps[1], 1, total)
        recorded = self.storages.get(name)
        days = self.protection.delete_retention_days
        if days and recorded is not None and recorded.vnet is None:  # a record from before networks were kept
            recorded = self._with_network(recorded)
        self.cloud.delete_endpoint(group, p.endpoint_name(name))  # its DNS zone group and A record go too
        if days and account is not None and recorded is not None:
            context.progress(steps[2], 2, total)
            now = self.clock.now()
            kept = replace(recorded, state=StorageState.DELETED, deleted_at=now,
                           purge_after=purge_after(now, days))
            self.storages.save(kept)
            return _kept(kept)
        return self._purge(group, name, account is not None, context)

    def _with_network(self, storage: StorageInfo) -> StorageInfo:
        """The record with the customer's VNet and subnet its endpoint is in (an undelete puts it
        back there); unchanged when the endpoint is in the service's own VNet, or gone."""
        place = self.cloud.endpoint_place(storage.resource_group, p.endpoint_name(storage.name))
        if place is None or place.managed or "/virtualNetworks/" not in place.subnet_id:
            return storage
        vnet, _, subnet = place.subnet_id.split("/virtualNetworks/", 1)[1].partition("/subnets/")
        return replace(storage, vnet=vnet, subnet=subnet)

    def purge(self, command: PurgeStorage, context: OperationContext) -> Mapping[str, Any]:
        """Delete for good a storage whose window is over; one undeleted meanwhile stays."""
        storage = self.storages.get(command.name)
        if storage is None:
            return {"name": command.name, "purged": False, "note": "it is gone already"}
        window_open = storage.purge_after is None or storage.purge_after > self.clock.now()
        if not storage.deleted or (window_open and not command.now):
            return {"name": storage.name, "purged": False,
                    "note": "it was undeleted" if not storage.deleted else "its window is not over"}
        account = self.cloud.get_account(storage.resource_group, storage.name)
        if account is not None and not account.managed:  # someone else's now: forget ours only
            account = None
        return self._purge(storage.resource_group, storage.name, account is not None, context)

    def _purge(self, group: str, name: str, account_exists: bool,
               context: OperationContext) -> dict[str, Any]:
        steps, total = p.PURGE_STEPS, len(p.PURGE_STEPS)
        context.progress(steps[0], 0, total)
        if account_exists:
            self.cloud.unlock_account(group, name)  # the service's own purge is the only one
            self.cloud.delete_account(group, name)  # its share and snapshots go with it
        context.progress(steps[1], 1, total)
        ours = {a.name for a in self.cloud.list_accounts(None) if a.managed} - {name}
        removed = self.dns.withdraw(name, ours)
        if self.cloud.delete_network_if_unused(group, p.DEFAULT_VNET):
            removed.append(f"VNet {p.DEFAULT_VNET}")
        context.progress(steps[2], 2, total)
        self.storages.delete(name)
        self.access.delete(name)
        self.operations.forget_about(storage_subject(name))  # the next storage of this name is new
        return {"name": name, "resourceGroup": group, "deleted": account_exists, "purged": True,
                "alsoRemoved": removed}

    def undelete(self, command: UndeleteStorage, context: OperationContext) -> Mapping[str, Any]:
        """The kept account gets its endpoint, DNS name and guarded subnet again, where it had
        them (the service's VNet is made again if a purge removed it meanwhile)."""
        steps, total = p.UNDELETE_STEPS, len(p.UNDELETE_STEPS)
        context.progress(steps[0], 0, total)
        storage = self._recorded(command.name)
        if not storage.deleted:
            return {"storage": to_json(storage), "changed": False}
        account = self.cloud.get_account(storage.resource_group, storage.name)
        if account is None or not account.managed:
            raise NotFound(f"The account of {storage.name} no longer exists in Azure: it cannot come back.",
                           causes=["it was deleted outside this service"],
                           try_hint="create the storage again; the files are gone",
                           code=ErrorCode.STORAGE_NOT_FOUND)
        creator = _creator(context.operation.requested_by)
        spec = p.AccountSpec(storage.name, storage.resource_group, account.region, account.sku,
                             p.managed_tags(creator), https_only=account.https_only)
        context.progress(steps[1], 1, total)
        network, zone = self._network(storage.vnet, storage.subnet, spec, creator)
        if not self.cloud.account_locked(spec.resource_group, spec.name):
            self.cloud.lock_account(spec.resource_group, spec.name)
        self._connect(spec, network, zone, account.id, fresh=False, creator=creator)
        context.progress(steps[2], 2, total)
        back = replace(storage, state=StorageState.ACTIVE, deleted_at=None, purge_after=None)
        self.storages.save(back)
        return {"storage": to_json(back), "changed": True}

    def _detach_all(self, command: DeleteStorage, operation: Operation) -> None:
        """Attached VMs stop a delete, unless forced: then each is detached first by a DetachVm
        child operation, in the command's mode (copy by default: no VM loses the files it had on
        the share), side by side through the queue. The storage says Deleting meanwhile, so no
        new attach starts; if a VM could not be detached, it is Active again and the delete fails."""
        attachments = self.attachments.list_for_storage(command.name)
        if attachments and not command.force:
            attached = sorted(a.vm for a in attachments)
            raise Conflict(
                f"Storage {command.name} is the home of {len(attached)} VM(s).",
                causes=[f"attached: {', '.join(attached)}"],
                code=ErrorCode.STORAGE_IN_USE,
                try_hint="detach them first, or delete with force=true",
            )
        if not attachments:
            return
        self._set_state(command.name, StorageState.DELETING)
        for attachment in attachments:
            key = attachment.vm_id or f"{attachment.resource_group}/{attachment.vm}"
            self.intake.submit(DetachVm(attachment.vm, attachment.resource_group, command.detach_mode,
                                        storage=command.name),
                               f"delete:{operation.id}:{key}", requested_by=operation.requested_by,
                               parent=operation.id)
        if self.operations.children_running(operation.id):
            raise WaitingForChildren(f"Detaching {len(attachments)} VM(s) first.", delay_seconds=30)
        left = sorted(a.vm for a in self.attachments.list_for_storage(command.name))
        if left:
            self._set_state(command.name, StorageState.ACTIVE)
            failed = [f"{c.target.removeprefix('vm/')}: {(c.error or {}).get('message')}"
                      for c in self.operations.children(operation.id) if c.status is OperationStatus.FAILED]
            raise Conflict(f"{len(left)} VM(s) could not be detached, so storage {command.name} stays.",
                           causes=[f"still attached: {', '.join(left)}", *failed],
                           code=ErrorCode.STORAGE_IN_USE,
                           try_hint="fix the causes above, then delete with force=true again")

    def _set_state(self, name: str, state: StorageState) -> None:
        recorded = self.storages.get(name)
        if recorded is not None and recorded.state is not state and not recorded.deleted:
            self.storages.save(replace(recorded, state=state))


def _kept(storage: StorageInfo) -> dict[str, Any]:
    return {"name": storage.name, "resourceGroup": storage.resource_group, "deleted": True,
            "state": storage.state.value, "purgeAfter": to_json(storage)["purgeAfter"],
            "undelete": f"POST /api/storage/{storage.name}/undelete"}


def _performance_differs(share: p.CloudShare, command: CreateStorage | ResizeStorage) -> bool:
    """A v2 share's IOPS or throughput asked for and not what it has."""
    return ((command.iops is not None and command.iops != share.iops)
            or (command.throughput_mibps is not None and command.throughput_mibps != share.throughput_mibps))


def _same_region(network: p.Network, region: str) -> None:
    """A private endpoint lives in its VNet's region (private-endpoint-overview.md); a home
    reached across regions pays inter-region latency on every file operation and transfer on
    every byte, so the storage goes where its network is instead."""
    if network.region and network.region != region:
        raise ValidationError(
            f"VNet {network.vnet} is in {network.region}, and the storage would be in {region}.",
            causes=["a private endpoint must be in its VNet's region",
                    "NFS homes across regions are slow and pay for every byte"],
            try_hint=f"create the storage in {network.region} (region={network.region}), or name a "
            f"VNet in {region}",
            code=ErrorCode.REGION_MISMATCH,
        )


def _creator(requested_by: Principal | None) -> str | None:
    """The `created-by` tag: the object id of who asked (their name may change, or be personal)."""
    return requested_by.object_id if requested_by and requested_by.object_id else None
