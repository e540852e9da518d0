"""HTTP inputs (JSON bodies, query strings, route values) -> validated commands and references.

Every problem in a request is reported at once; nothing here touches Azure or state. Unknown body
members are refused, so a typo ("sise") is an error instead of a silently ignored default.
Unknown query parameters are ignored: the Functions host adds its own (`code`).
"""

from __future__ import annotations

from collections.abc import Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from typing import Any

from . import validation as v
from .commands import AttachVm, CreateStorage, DetachVm
from .data_protection import restore_path, snapshot_id
from .errors import ValidationError
from .models import Billing, DetachMode, Redundancy, Tier
from .operations import ANY_OPERATION, OperationFilter, OperationKind, OperationStatus


@dataclass(frozen=True)
class RequestDefaults:
    """What the service uses when a request names no resource group or region (app settings)."""

    resource_group: str | None = None
    region: str | None = None
    vnet: str | None = None  # where storage private endpoints go when a request names no network
    subnet: str | None = None
    home_roots: tuple[str, ...] = v.DEFAULT_HOME_ROOTS  # a mount point is <root>/<user>


@dataclass(frozen=True)
class StorageRef:
    name: str
    resource_group: str | None  # None: wherever the recorded storage lives


@dataclass(frozen=True)
class ListQuery:
    resource_group: str | None
    page_size: int
    continuation: str | None


@dataclass(frozen=True)
class VmRef:
    vm: str
    resource_group: str


@dataclass(frozen=True)
class OperationsQuery:
    """`GET /api/operations`: about a storage (`storage=NAME`), a VM (`vm=NAME&resourceGroup=`),
    or else the caller's own requests; `status` and `kind` narrow it (comma-separated); paged."""

    storage: str | None
    vm: VmRef | None
    page_size: int
    continuation: str | None
    only: OperationFilter = ANY_OPERATION


def create_storage(body: object, defaults: RequestDefaults) -> CreateStorage:
    data = json_object(body, required={"name"},
                       optional={"resourceGroup", "region", "tier", "redundancy", "size", "vnet", "subnet",
                                 "encryptionInTransit", "billing", "iops", "throughputMibps",
                                 "guardSubnet"})
    problems = v.Problems()
    name = problems.check(v.storage_account_name, data.get("name"), "name")
    group = problems.check(_resource_group, data.get("resourceGroup"), defaults)
    region = problems.check(v.region_name, data["region"]) if "region" in data else defaults.region
    tier = problems.check(v.tier, data["tier"]) if "tier" in data else Tier.PREMIUM
    redundancy = (problems.check(v.redundancy, data["redundancy"]) if "redundancy" in data
                  else Redundancy.LRS)
    billing = problems.check(v.billing, data["billing"]) if "billing" in data else Billing.PROVISIONED_V2
    size = (problems.check(v.size_gib, data["size"], "size", billing or Billing.PROVISIONED_V2)
            if "size" in data else v.MIN_SHARE_GIB)
    iops, throughput = _performance(data, billing, problems)
    vnet = problems.check(v.network_name, data["vnet"], "vnet") if "vnet" in data else defaults.vnet
    subnet = problems.check(v.network_name, data["subnet"], "subnet") if "subnet" in data else defaults.subnet
    encrypted = (problems.check(v.encryption_in_transit, data["encryptionInTransit"])
                 if "encryptionInTransit" in data else True)
    if subnet and not vnet:
        problems.errors.append(ValidationError("'subnet' needs 'vnet'.",
                                               try_hint="name the VNet the subnet is in"))
    guard = "guardSubnet" in data and bool(problems.check(v.boolean, data["guardSubnet"], "guardSubnet"))
    if guard and "vnet" not in data:
        problems.errors.append(ValidationError(
            "'guardSubnet' applies to a subnet you name with 'vnet'.",
            causes=["the service's own subnet is always guarded"], try_hint="name 'vnet' (and 'subnet')"))
    problems.raise_if_any()
    assert name and group and tier and redundancy and size  # narrowed: no problems recorded
    if vnet and not subnet:
        subnet = "default"  # the subnet Azure's portal creates with a VNet
    assert billing
    return CreateStorage(name, group, region, tier, redundancy, size, vnet, subnet, bool(encrypted), billing,
                         iops, throughput, guard)


def _performance(data: Mapping[str, Any], billing: Billing | None,
                 problems: v.Problems) -> tuple[int | None, int | None]:
    """`iops` and `throughputMibps`: provisioned v2 buys them apart; v1 has none to set."""
    asked = [key for key in ("iops", "throughputMibps") if key in data]
    if asked and billing is Billing.PROVISIONED_V1:
        problems.errors.append(ValidationError(
            f"{' and '.join(repr(k) for k in asked)} can be set on provisionedV2 storage only.",
            causes=["provisioned v1 shares get the IOPS and throughput of their size"],
            try_hint="leave them out, or use billing provisionedV2"))
        return None, None
    iops = problems.check(v.provisioned, data["iops"], "iops", v.IOPS_RANGE) if "iops" in data else None
    throughput = (problems.check(v.provisioned, data["throughputMibps"], "throughputMibps",
                                 v.THROUGHPUT_RANGE) if "throughputMibps" in data else None)
    return iops, throughput


def resize(body: object) -> tuple[object | None, int | None, int | None]:
    """What a PATCH changes: the size (checked against the storage's billing by the service),
    and for provisioned v2 the IOPS and throughput; at least one."""
    data = json_object(body, required=set(), optional={"size", "iops", "throughputMibps"})
    if not data:
        raise ValidationError("Give 'size', 'iops' or 'throughputMibps' to change.",
                              try_hint='e.g. {"size": "200GiB"}')
    problems = v.Problems()
    if "size" in data:
        problems.check(v.size_gib, data["size"], "size", Billing.PROVISIONED_V2)  # the widest range
    iops, throughput = _performance(data, Billing.PROVISIONED_V2, problems)
    problems.raise_if_any()
    return data.get("size"), iops, throughput


DEFAULT_PAGE_SIZE = 100


def list_query(query: Mapping[str, str]) -> ListQuery:
    problems = v.Problems()
    group = _query_group(query, problems)
    size = problems.check(v.page_size, query["$top"]) if "$top" in query else DEFAULT_PAGE_SIZE
    problems.raise_if_any()
    assert size
    return ListQuery(group, size, query.get("$skipToken") or None)


def storage_ref(name: object, query: Mapping[str, str]) -> StorageRef:
    problems = v.Problems()
    checked = problems.check(v.storage_account_name, name, "name")
    group = _query_group(query, problems)
    problems.raise_if_any()
    assert checked
    return StorageRef(checked, group)


def cloud_init_user(query: Mapping[str, str], defaults: RequestDefaults) -> tuple[str, str | None]:
    """`user` and `mountPoint`, which must be that user's home. Without a user, the mount point's
    (or else azureuser, the admin user Azure's Linux images are given)."""
    problems = v.Problems()
    user = problems.check(v.linux_user, query["user"], "user") if "user" in query else None
    mount = (problems.check(v.mount_point, query["mountPoint"], "mountPoint", defaults.home_roots)
             if "mountPoint" in query else None)
    problems.raise_if_any()
    if user is None:
        user = v.home_user(mount) if mount is not None else "azureuser"
    if mount is not None and v.home_user(mount) != user:
        raise ValidationError("'mountPoint' is not the home of 'user'.",
                              causes=[f"{mount} is the home of {v.home_user(mount)}, not of {user}"],
                              try_hint=f"leave mountPoint out for /home/{user}, or name that user")
    return user, mount


def vm_ref(vm: object, query: Mapping[str, str], defaults: RequestDefaults) -> VmRef:
    problems = v.Problems()
    name = problems.check(v.vm_name, vm, "vm")
    group = problems.check(_resource_group, query.get("resourceGroup"), defaults)
    problems.raise_if_any()
    assert name and group
    return VmRef(name, group)


def attach_vm(storage: object, body: object, defaults: RequestDefaults) -> AttachVm:
    data = json_object(body, required={"vm"}, optional={"resourceGroup", "mountPoint"})
    problems = v.Problems()
    name = problems.check(v.storage_account_name, storage, "name")
    vm = problems.check(v.vm_name, data.get("vm"), "vm")
    group = problems.check(_resource_group, data.get("resourceGroup"), defaults)
    mount = (problems.check(v.mount_point, data["mountPoint"], "mountPoint", defaults.home_roots)
             if "mountPoint" in data else None)
    problems.raise_if_any()
    assert name and vm and group
    return AttachVm(name, vm, group, mount)


def restore(body: object, defaults: RequestDefaults) -> tuple[str, VmRef | None]:
    """`{"path": "...", "vm"?: name, "resourceGroup"?: the VM's group}`: what to put back, and
    through which attached VM (None: one the caller may use)."""
    data = json_object(body, required={"path"}, optional={"vm", "resourceGroup"})
    problems = v.Problems()
    path = problems.check(restore_path, data.get("path"), "path")
    vm = problems.check(v.vm_name, data["vm"], "vm") if "vm" in data else None
    group = problems.check(_resource_group, data.get("resourceGroup"), defaults) if vm else None
    if "resourceGroup" in data and "vm" not in data:
        problems.errors.append(ValidationError("'resourceGroup' names the VM's group: give 'vm' with it."))
    problems.raise_if_any()
    assert path
    return path, VmRef(vm, group) if vm and group else None


def snapshot(value: object) -> str:
    """A snapshot named in the route."""
    return snapshot_id(value)


def resource_group(value: object) -> str:
    """A resource group named in the route."""
    return v.resource_group_name(value)


def default_storage(group: object, body: object) -> tuple[str, str]:
    """`PUT /resource-groups/{group}/default-storage {"storage": name}`: (group, storage)."""
    data = json_object(body, required={"storage"})
    problems = v.Problems()
    checked_group = problems.check(v.resource_group_name, group, "resourceGroup")
    storage = problems.check(v.storage_account_name, data.get("storage"), "storage")
    problems.raise_if_any()
    assert checked_group and storage
    return checked_group, storage


def storage_access(body: object) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """`PUT /storage/{name}/access {"owners": [...], "members": [...]}`: both lists, replaced."""
    data = json_object(body, required={"owners", "members"})
    problems = v.Problems()
    owners = problems.check(v.object_ids, data["owners"], "owners")
    members = problems.check(v.object_ids, data["members"], "members")
    problems.raise_if_any()
    assert owners is not None and members is not None
    both = sorted(set(owners) & set(members))
    if both:
        raise ValidationError("A principal is either an owner or a member, not both.",
                              causes=[f"in both lists: {', '.join(both)}"],
                              try_hint="list an owner only under 'owners': owners may do all a member may")
    return owners, members


DEFAULT_OPERATIONS_PAGE = 20
MAX_OPERATIONS_PAGE = 100


def operations_query(query: Mapping[str, str], defaults: RequestDefaults) -> OperationsQuery:
    problems = v.Problems()
    if "storage" in query and "vm" in query:
        raise ValidationError("Name at most one target: 'storage', or 'vm' with 'resourceGroup'.",
                              try_hint="GET /api/operations?storage=<name>, ?vm=<name>&resourceGroup="
                                       "<group>, or neither for the operations you asked for")
    storage = (problems.check(v.storage_account_name, query["storage"], "storage") if "storage" in query
               else None)
    vm = problems.check(vm_ref, query["vm"], query, defaults) if "vm" in query else None
    if "vm" not in query:  # resourceGroup is said of the vm only; still never unchecked
        _query_group(query, problems)
    size = (problems.check(v.page_size, query["$top"], "$top", MAX_OPERATIONS_PAGE) if "$top" in query
            else DEFAULT_OPERATIONS_PAGE)
    statuses = problems.check(v.one_of_each, query["status"], "status", OperationStatus) \
        if "status" in query else frozenset()
    kinds = problems.check(v.one_of_each, query["kind"], "kind", OperationKind) \
        if "kind" in query else frozenset()
    problems.raise_if_any()
    assert size
    return OperationsQuery(storage, vm, size, query.get("$skipToken") or None,
                           OperationFilter(frozenset(statuses or ()), frozenset(kinds or ())))


def detach_mode(query: Mapping[str, str]) -> DetachMode:
    """`mode=copy|restore`; copy when absent."""
    return v.detach_mode(query["mode"]) if "mode" in query else DetachMode.COPY


def detach_vm(ref: VmRef, query: Mapping[str, str]) -> DetachVm:
    return DetachVm(ref.vm, ref.resource_group, detach_mode(query))


def optional_flag(query: Mapping[str, str], name: str) -> bool:
    return v.flag(query[name], name) if name in query else False


def json_object(body: object, *, required: AbstractSet[str] = frozenset(),
                optional: AbstractSet[str] = frozenset()) -> dict[str, Any]:
    """A JSON object with the required members present and no unknown ones. `null` members
    count as absent, so clients may send explicit nulls for optional values."""
    if not isinstance(body, dict):
        raise ValidationError(
            "The request body must be a JSON object.",
            causes=[f"got {type(body).__name__ if body is not None else 'no body'}"],
            try_hint="send Content-Type: application/json with an object such as "
                     + "{" + ", ".join(f'"{k}": ...' for k in sorted(required)) + "}",
        )
    data = {k: val for k, val in body.items() if val is not None}
    causes = [f"'{k}' is required" for k in sorted(required - data.keys())]
    unknown = sorted(set(data) - required - optional)
    causes += [f"'{k}' is not a known member" for k in unknown]
    if causes:
        known = ", ".join(sorted(required | optional))
        raise ValidationError("The request body does not have the expected members.",
                              causes=causes, try_hint=f"send only: {known}")
    return data


def _query_group(query: Mapping[str, str], problems: v.Problems) -> str | None:
    """`resourceGroup` of a query string: absent, or a valid name (an empty value is not absent)."""
    return problems.check(v.resource_group_name, query["resourceGroup"]) if "resourceGroup" in query else None


def _resource_group(value: object, defaults: RequestDefaults) -> str:
    if value is None:
        if defaults.resource_group is None:
            raise ValidationError(
                "'resourceGroup' is required.",
                causes=["the request names no resource group and the service has no "
                        "DEFAULT_RESOURCE_GROUP setting"],
                try_hint="add resourceGroup to the request",
            )
        return defaults.resource_group
    return v.resource_group_name(value)
