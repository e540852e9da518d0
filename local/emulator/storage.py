"""Resource groups and Microsoft.Storage: storage accounts (create is 202 + Location, names unique
across every subscription, FileStorage needs a premium SKU), the default file service and file
shares (synchronous; NFS only on NFS-ready accounts; `$expand=stats` measures the real files)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from local.emulator.arm import ArmError, Resource, ResourceId, Response, bad_request, now
from local.emulator.kinds import ResourceKind, Shape, require

if TYPE_CHECKING:
    from local.emulator.arm import Request
    from local.emulator.core import Emulator

ACCOUNT_NAME = re.compile(r"^[a-z0-9]{3,24}$")
SHARE_NAME = re.compile(r"^(?=.{3,63}$)[a-z0-9](?:[a-z0-9]|-(?=[a-z0-9]))*$")
SKUS = {
    "Standard_LRS",
    "Standard_GRS",
    "Standard_RAGRS",
    "Standard_ZRS",
    "Standard_GZRS",
    "Standard_RAGZRS",
    "Premium_LRS",
    "Premium_ZRS",
    "PremiumV2_LRS",
    "PremiumV2_ZRS",
    "StandardV2_LRS",
    "StandardV2_GRS",
    "StandardV2_ZRS",
    "StandardV2_GZRS",
}
KINDS = {"Storage", "StorageV2", "BlobStorage", "FileStorage", "BlockBlobStorage"}
PREMIUM_FILE_SKUS = {"Premium_LRS", "Premium_ZRS", "PremiumV2_LRS", "PremiumV2_ZRS"}
MIN_PREMIUM_QUOTA, MAX_PREMIUM_QUOTA = 100, 102400  # provisioned v1 SSD
MIN_V2_QUOTA, MAX_V2_QUOTA = 32, 262144  # provisioned v2 SSD (FileServices usage limits)
QUOTA_DOWNGRADE_WAIT = timedelta(hours=24)
V2_IOPS, V2_MIBPS = (3000, 102400), (100, 10340)  # provisioned v2 SSD (understanding-billing.md)


MAX_SNAPSHOTS = 200
METADATA_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")  # C# identifiers (Snapshot Share)


def snapshot_time(moment: datetime) -> str:
    """`snapshotTime` as Resource Manager writes it: seven fractional digits (FileShareSnapshotsList.json)."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond:06d}0Z"


def snapshot_directory(moment: datetime) -> str:
    """The snapshot's directory under `.snapshots`. Azure does not document its NFS name; this is
    the `@GMT-` token Azure Files gives SMB clients (storage-snapshots-files.md, mount -t cifs
    snapshot=@GMT-...). The service looks for this name and for the snapshot time itself."""
    return moment.strftime("@GMT-%Y.%m.%d-%H.%M.%S")


def _words(value: object) -> list[str]:
    return [w.strip().lower() for w in str(value or "").split(",")]


def emu_existing(emu: Emulator, rid: ResourceId) -> Resource:
    """The share, or the file service's ShareNotFound (file-service-error-codes)."""
    found = emu.get(rid)
    if found is None:
        raise ArmError(404, "ShareNotFound", "The specified share does not exist.")
    return found


def recommended_iops(quota_gib: int) -> int:
    return min(max(3000 + quota_gib, 3000), V2_IOPS[1])


def recommended_mibps(quota_gib: int) -> int:
    return min(max(100 + -(-quota_gib // 10), 100), V2_MIBPS[1])
ROOT_SQUASH = {"NoRootSquash", "RootSquash", "AllSquash"}


def nfs_host(account: str) -> str:
    return f"{account}.file.core.windows.net"


class ResourceGroups(ResourceKind):
    type_name = "Microsoft.Resources/resourceGroups"
    delete_shape = Shape.LOCATION

    def validate(
        self, emu: Emulator, rid: ResourceId, body: dict[str, Any], existing: Resource | None
    ) -> dict[str, Any]:
        require(
            bool(re.fullmatch(r"[-\w._()]{1,90}", rid.name or "")) and not rid.name.endswith("."),
            "InvalidResourceGroupName",
            f"The resource group name '{rid.name}' is invalid.",
        )
        stored = super().validate(emu, rid, body, existing)
        stored.pop("sku", None)
        stored.pop("kind", None)
        return stored


class StorageAccounts(ResourceKind):
    type_name = "Microsoft.Storage/storageAccounts"
    put_shape = Shape.LOCATION

    def validate(
        self, emu: Emulator, rid: ResourceId, body: dict[str, Any], existing: Resource | None
    ) -> dict[str, Any]:
        name = rid.name
        require(bool(ACCOUNT_NAME.match(name)), "AccountNameInvalid", invalid_name_message(name))
        if existing is None:
            taken = emu.find(self.type_name, lambda r: r.id.name.lower() == name.lower())
            if taken:
                raise ArmError(
                    409, "StorageAccountAlreadyTaken", f"The storage account named {name} is already taken."
                )
        stored = super().validate(emu, rid, body, existing)
        sku = str((body.get("sku") or {}).get("name") or "")
        kind = str(body.get("kind") or "")
        require(
            sku in SKUS,
            "InvalidValuesForRequestParameters",
            "Values for request parameters are invalid: sku.",
        )
        require(
            kind in KINDS,
            "InvalidValuesForRequestParameters",
            "Values for request parameters are invalid: kind.",
        )
        if kind == "FileStorage" and sku not in PREMIUM_FILE_SKUS:
            raise bad_request(
                "InvalidValuesForRequestParameters",
                "Values for request parameters are invalid: "
                "kind, sku. For more information, see - https://aka.ms/storageaccounttypes",
            )
        if existing is not None and existing.body.get("kind") != kind:
            raise bad_request(
                "InvalidValuesForRequestParameters", "Values for request parameters are invalid: kind."
            )
        if existing is not None and existing.body["sku"]["name"].startswith("Premium") != sku.startswith(
            "Premium"
        ):
            raise bad_request(
                "StorageAccountTypeConversionNotAllowed",
                f"Storage account type {existing.body['sku']['name']} cannot be changed to {sku}.",
            )
        props = stored["properties"]
        props.setdefault("supportsHttpsTrafficOnly", True)
        props.setdefault("minimumTlsVersion", "TLS1_2")
        props.setdefault("allowBlobPublicAccess", False)
        props.setdefault("publicNetworkAccess", "Enabled")
        props.setdefault(
            "networkAcls",
            {"bypass": "AzureServices", "defaultAction": "Allow", "virtualNetworkRules": [], "ipRules": []},
        )
        stored["sku"] = {"name": sku, "tier": "Premium" if sku.startswith("Premium") else "Standard"}
        stored["kind"] = kind
        return stored

    def provision(self, emu: Emulator, resource: Resource, created: bool) -> None:
        if created:
            resource.internal["created"] = now()
            file_service = resource.id.child("fileServices", "default")
            # "New storage accounts have soft delete enabled by default", for 7 days (azure-docs
            # articles/storage/files/storage-files-prevent-file-share-deletion.md).
            emu.put_internal(file_service, {"properties": {"shareDeleteRetentionPolicy": {"enabled": True,
                                                                                          "days": 7}}})

    def deleted(self, emu: Emulator, resource: Resource) -> None:
        for endpoint in emu.find("Microsoft.Network/privateEndpoints"):
            for connection in endpoint.properties.get("privateLinkServiceConnections", []):
                target = connection.get("properties", {}).get("privateLinkServiceId", "")
                if target.lower() == resource.id.key:
                    connection["properties"]["privateLinkServiceConnectionState"] = {
                        "status": "Disconnected",
                        "description": "The private link resource was deleted.",
                        "actionsRequired": "None",
                    }

    def view(self, emu: Emulator, resource: Resource, query: dict[str, Any]) -> dict[str, Any]:
        body = super().view(emu, resource, query)
        name = resource.id.name
        props = body["properties"]
        props["creationTime"] = resource.internal.get("created", now())
        props["primaryLocation"] = body.get("location")
        props["statusOfPrimary"] = "available"
        props["primaryEndpoints"] = {
            service: f"https://{name}.{service}.core.windows.net/"
            for service in ("blob", "queue", "table", "file", "dfs", "web")
        }
        if body.get("kind") == "FileStorage":
            props["primaryEndpoints"] = {"file": f"https://{name}.file.core.windows.net/"}
        props["privateEndpointConnections"] = private_endpoint_connections(emu, resource)
        return body


def invalid_name_message(name: str) -> str:
    return (
        f"{name} is not a valid storage account name. Storage account name must be between 3 and 24 "
        "characters in length and use numbers and lower-case letters only."
    )


def private_endpoint_connections(emu: Emulator, account: Resource) -> list[dict[str, Any]]:
    connections = []
    for endpoint in emu.find("Microsoft.Network/privateEndpoints"):
        for connection in endpoint.properties.get("privateLinkServiceConnections", []):
            props = connection.get("properties", {})
            if props.get("privateLinkServiceId", "").lower() == account.id.key:
                name = f"{endpoint.id.name}.{connection.get('name')}"
                connections.append(
                    {
                        "id": f"{account.id}/privateEndpointConnections/{name}",
                        "name": name,
                        "type": "Microsoft.Storage/storageAccounts/privateEndpointConnections",
                        "properties": {
                            "privateEndpoint": {"id": str(endpoint.id)},
                            "privateLinkServiceConnectionState": props.get(
                                "privateLinkServiceConnectionState"
                            ),
                            "provisioningState": "Succeeded",
                        },
                    }
                )
    return connections


def check_name_availability(emu: Emulator, request: Request) -> Response:
    body = request.body if isinstance(request.body, dict) else {}
    name = str(body.get("name") or "")
    if str(body.get("type", "")).lower() != "microsoft.storage/storageaccounts":
        raise bad_request("InvalidRequestContent", "The type must be 'Microsoft.Storage/storageAccounts'.")
    if not ACCOUNT_NAME.match(name):
        return Response(
            200,
            {"nameAvailable": False, "reason": "AccountNameInvalid", "message": invalid_name_message(name)},
        )
    if emu.find(StorageAccounts.type_name, lambda r: r.id.name.lower() == name.lower()):
        return Response(
            200,
            {
                "nameAvailable": False,
                "reason": "AlreadyExists",
                "message": f"The storage account named {name} is already taken.",
            },
        )
    return Response(200, {"nameAvailable": True})


class FileServices(ResourceKind):
    type_name = "Microsoft.Storage/storageAccounts/fileServices"
    located = False

    def validate(
        self, emu: Emulator, rid: ResourceId, body: dict[str, Any], existing: Resource | None
    ) -> dict[str, Any]:
        require(rid.name == "default", "InvalidResourceName", "The file service name must be 'default'.")
        stored = super().validate(emu, rid, body, existing)
        policy = stored["properties"].get("shareDeleteRetentionPolicy")
        if policy is not None:
            # DeleteRetentionPolicy.days: "The minimum specified value can be 1 and the maximum
            # value can be 365" (azure-rest-api-specs Microsoft.Storage stable/2025-01-01/blob.json).
            require(isinstance(policy, dict) and isinstance(policy.get("enabled"), bool),
                    "InvalidRequestContent",
                    "shareDeleteRetentionPolicy.enabled must be true or false.")
            days = policy.get("days")
            require(not policy["enabled"] or (isinstance(days, int) and not isinstance(days, bool)
                                              and 1 <= days <= 365),
                    "InvalidRequestPropertyValue", "shareDeleteRetentionPolicy.days must be from 1 to 365.")
        return stored


class FileShares(ResourceKind):
    """File shares and their snapshots. A snapshot is made by a PUT with `$expand=snapshots`,
    read and deleted with the `x-ms-snapshot` header, listed with `$expand=snapshots` as items
    of the share's name carrying `snapshotTime` (azure-rest-api-specs Microsoft.Storage
    stable/2025-01-01/file.json, FileShares_Create/_Get/_Delete/_List, FileShareSnapshotsList.json).
    NFS clients read one, read-only, under the share's `.snapshots` directory
    (azure-docs articles/storage/files/storage-snapshots-files.md)."""

    type_name = "Microsoft.Storage/storageAccounts/fileServices/shares"
    located = False

    def special(self, emu: Emulator, rid: ResourceId, request: Request) -> Response | None:
        snapshot = request.headers.get("x-ms-snapshot")
        if request.method == "PUT" and "snapshots" in _words(request.query.get("$expand")):
            return self._take_snapshot(emu, emu_existing(emu, rid), request)
        if snapshot and request.method in ("GET", "DELETE"):
            share = emu_existing(emu, rid)
            taken = share.internal.setdefault("snapshots", {})
            if request.method == "DELETE":
                found = taken.pop(snapshot, None)
                if found is not None:
                    emu.machines.snapshot_dropped(rid.names[0], rid.name, found["directory"])
                return Response(200 if found else 204)
            if snapshot not in taken:  # the file service's code for it (UNCONFIRMED through ARM)
                raise ArmError(404, "ShareSnapshotNotFound", "The specified share snapshot does not exist.")
            return Response(200, self._snapshot_view(emu, share, snapshot))
        if request.method == "DELETE":
            found = emu.get(rid)
            include = str(request.query.get("$include") or "snapshots").lower()
            if found is not None and found.internal.get("snapshots") and include == "none":
                # "For 'none', the file share is deleted if it has no share snapshots" (file.json).
                raise ArmError(409, "ShareHasSnapshots",
                               "The share has snapshots and the operation requires no snapshots.")
        return None

    def _take_snapshot(self, emu: Emulator, share: Resource, request: Request) -> Response:
        taken = share.internal.setdefault("snapshots", {})
        if len(taken) >= MAX_SNAPSHOTS:
            # "Azure Files supports up to 200 share snapshots per share" (storage-snapshots-files.md);
            # the code is the file service's (file-service-error-codes).
            raise ArmError(409, "ShareSnapshotCountExceeded",
                           "The total number of snapshots for the share is over the limit.")
        moment = datetime.now(UTC).replace(microsecond=0)
        while snapshot_time(moment) in taken:  # one per second: the directory names hold seconds
            moment += timedelta(seconds=1)
        metadata = ((request.body or {}).get("properties") or {}).get("metadata") if isinstance(
            request.body, dict) else None
        require(metadata is None or (isinstance(metadata, dict) and all(
            isinstance(k, str) and METADATA_NAME.match(k) and isinstance(v, str)
            for k, v in metadata.items())),
            # InvalidMetadata: Azure Storage's common REST error codes (common-rest-api-error-codes).
            "InvalidMetadata", "The metadata specified is invalid. It has characters that are not permitted.")
        name = snapshot_time(moment)
        taken[name] = {"metadata": dict(metadata or share.properties.get("metadata") or {}),
                       "directory": snapshot_directory(moment)}
        emu.machines.snapshot_taken(share.id.names[0], share.id.name, taken[name]["directory"])
        return Response(201, self._snapshot_view(emu, share, name))

    def _snapshot_view(self, emu: Emulator, share: Resource, name: str) -> dict[str, Any]:
        body = self.view(emu, share, {})
        taken = share.internal["snapshots"][name]
        body["properties"] = {**body["properties"], "snapshotTime": name, "metadata": dict(taken["metadata"])}
        body["properties"].pop("shareUsageBytes", None)
        return body

    def listing(self, emu: Emulator, resource: Resource, query: dict[str, Any]) -> list[dict[str, Any]]:
        items = super().listing(emu, resource, query)
        if "snapshots" in _words(query.get("$expand")):
            taken = sorted(resource.internal.get("snapshots", {}))
            items += [self._snapshot_view(emu, resource, name) for name in taken]
        return items

    def validate(
        self, emu: Emulator, rid: ResourceId, body: dict[str, Any], existing: Resource | None
    ) -> dict[str, Any]:
        require(
            bool(SHARE_NAME.match(rid.name)),
            "InvalidResourceName",
            "The specifed resource name contains invalid characters.",
        )
        account = emu.get(rid.parent.parent) if rid.parent and rid.parent.parent else None
        assert account is not None  # the engine checked the parents
        if account.properties.get("provisioningState") != "Succeeded":
            raise ArmError(
                409,
                "StorageAccountIsNotProvisioned",
                "The storage account provisioning state must be 'Succeeded' before executing the operation.",
            )
        stored = super().validate(emu, rid, body, existing)
        props = stored["properties"]
        premium = account.body["sku"]["name"] in PREMIUM_FILE_SKUS
        protocol = props.get("enabledProtocols") or "SMB"
        if existing is not None:
            before = existing.properties.get("enabledProtocols", "SMB")
            require(
                protocol == before,
                "InvalidHeaderValue",
                "The value for one of the HTTP headers is not in the correct format. enabledProtocols "
                "can be set only when the share is created.",
            )
        props["enabledProtocols"] = protocol
        if protocol == "NFS":
            self._require_nfs_ready(account)
            props["rootSquash"] = props.get("rootSquash") or "NoRootSquash"
            require(
                props["rootSquash"] in ROOT_SQUASH,
                "InvalidHeaderValue",
                f"The value for one of the HTTP headers is not in the correct format: rootSquash "
                f"'{props['rootSquash']}'.",
            )
        elif "rootSquash" in props:
            raise bad_request("InvalidHeaderValue", "rootSquash applies to NFS shares only.")
        quota = props.get("shareQuota", existing.properties.get("shareQuota") if existing else None)
        quota = quota if quota is not None else (MIN_PREMIUM_QUOTA if premium else 5120)
        require(
            isinstance(quota, int) and not isinstance(quota, bool),
            "InvalidHeaderValue",
            "The value for one of the HTTP headers is not in the correct format.",
        )
        low, high = ((MIN_V2_QUOTA, MAX_V2_QUOTA) if account.body["sku"]["name"].startswith("PremiumV2")
                     else (MIN_PREMIUM_QUOTA, MAX_PREMIUM_QUOTA))
        if premium:
            require(
                low <= quota <= high,
                "InvalidHeaderValue",
                "The value for one of the HTTP headers is not in the correct format.",
            )
        props["shareQuota"] = quota
        v2 = account.body["sku"]["name"].startswith("PremiumV2")
        self._provisioned_performance(props, existing, quota, v2)
        if existing is not None:
            self._check_resize(emu, rid, existing, quota)
            self._check_performance_downgrade(existing, props)
        props["accessTier"] = "Premium" if premium else props.get("accessTier", "TransactionOptimized")
        return stored

    @staticmethod
    def _require_nfs_ready(account: Resource) -> None:
        """NFS needs an SSD (FileStorage) account. Secure transfer may be on: the share is then
        reached only through TLS (aznfs) mounts (azure-docs articles/storage/files/
        encryption-in-transit-for-nfs-shares.md)."""
        if account.body.get("kind") != "FileStorage" or account.body["sku"]["name"] not in PREMIUM_FILE_SKUS:
            raise bad_request(
                "FeatureNotSupportedForAccount", "NfsFileShares is not supported for the account."
            )

    @staticmethod
    def _provisioned_performance(
        props: dict[str, Any], existing: Resource | None, quota: int, v2: bool
    ) -> None:
        """Provisioned v2 shares buy IOPS and throughput apart from storage; unset, each is the
        recommendation for the size. Ranges and formulas: azure-docs articles/storage/files/
        understanding-billing.md (SSD provisioned v2); the properties exist "only for file shares
        created under Files Provisioned v2 account type" (azure-rest-api-specs Microsoft.Storage
        stable/2024-01-01/file.json, FileShareProperties)."""
        fields = (("provisionedIops", V2_IOPS, recommended_iops),
                  ("provisionedBandwidthMibps", V2_MIBPS, recommended_mibps))
        for field, (low, high), recommended in fields:
            if not v2:
                require(field not in props, "InvalidHeaderValue",
                        f"{field} applies only to file shares of a provisioned v2 account.")
                continue
            value = props.get(field, existing.properties.get(field) if existing else None)
            value = recommended(quota) if value is None else value
            require(isinstance(value, int) and not isinstance(value, bool) and low <= value <= high,
                    "InvalidHeaderValue", f"{field} must be between {low} and {high}.")
            props[field] = value

    @staticmethod
    def _check_performance_downgrade(existing: Resource, props: dict[str, Any]) -> None:
        """A provisioned quantity goes down only 24 hours after its last increase
        (understanding-billing.md)."""
        moment = datetime.now(UTC)
        for field in ("provisionedIops", "provisionedBandwidthMibps"):
            before, after = existing.properties.get(field), props.get(field)
            if before is None or after is None or after == before:
                continue
            if after > before:
                existing.internal[f"increased:{field}"] = moment
                continue
            increased = existing.internal.get(f"increased:{field}")
            if increased is not None and moment < increased + QUOTA_DOWNGRADE_WAIT:
                raise ArmError(409, "ContainerQuotaDowngradeNotAllowed",
                               f"Cannot downgrade {field} at this moment. Please check share properties "
                               "for the next allowed downgrade time.")

    @staticmethod
    def _check_resize(emu: Emulator, rid: ResourceId, existing: Resource, quota: int) -> None:
        before = int(existing.properties.get("shareQuota", quota))
        moment = datetime.now(UTC)
        if quota > before:
            existing.internal["last_increase"] = moment
            return
        if quota == before:
            return
        increased = existing.internal.get("last_increase")
        if increased is not None and moment < increased + QUOTA_DOWNGRADE_WAIT:
            raise ArmError(
                409,
                "ContainerQuotaDowngradeNotAllowed",
                "Cannot downgrade quota at this moment. "
                "Please check share properties for the next allowed quota downgrade time.",
            )
        account, share = rid.names[0], rid.name
        used_gib = -(-emu.machines.share_usage(account, share) // 2**30)
        if quota < used_gib:
            raise bad_request(
                "InvalidHeaderValue",
                f"The share quota {quota} GiB is smaller than the share's used capacity ({used_gib} GiB).",
            )

    def provision(self, emu: Emulator, resource: Resource, created: bool) -> None:
        if resource.properties.get("enabledProtocols") == "NFS":
            parent = resource.id.parent.parent if resource.id.parent else None
            account = emu.get(parent) if parent else None
            tls = bool(account and account.properties.get("supportsHttpsTrafficOnly", True))
            emu.machines.share_added(resource.id.names[0], resource.id.name, tls=tls)

    def deleted(self, emu: Emulator, resource: Resource) -> None:
        if resource.properties.get("enabledProtocols") == "NFS":
            emu.machines.share_removed(resource.id.names[0], resource.id.name)

    def view(self, emu: Emulator, resource: Resource, query: dict[str, Any]) -> dict[str, Any]:
        body = super().view(emu, resource, query)
        props = body["properties"]
        props.setdefault("lastModifiedTime", now())
        increased = resource.internal.get("last_increase")
        if increased is not None:
            allowed = increased + QUOTA_DOWNGRADE_WAIT
            props["nextAllowedQuotaDowngradeTime"] = allowed.strftime("%a, %d %b %Y %H:%M:%S GMT")
        for field in ("provisionedIops", "provisionedBandwidthMibps"):
            increased = resource.internal.get(f"increased:{field}")
            if increased is not None:
                name = "Iops" if field == "provisionedIops" else "Bandwidth"
                props[f"nextAllowedProvisioned{name}DowngradeTime"] = (
                    increased + QUOTA_DOWNGRADE_WAIT).strftime("%a, %d %b %Y %H:%M:%S GMT")
        if "provisionedIops" in props:  # bursting, from the provisioned IOPS (understanding-billing.md)
            burst = min(max(3 * props["provisionedIops"], 10000), V2_IOPS[1])
            props["includedBurstIops"] = burst
            props["maxBurstCreditsForIops"] = (burst - props["provisionedIops"]) * 3600
        if "stats" in str(query.get("$expand", "")).lower().split(","):
            props["shareUsageBytes"] = emu.machines.share_usage(resource.id.names[0], resource.id.name)
        return body
