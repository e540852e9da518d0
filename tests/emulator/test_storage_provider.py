"""Microsoft.Storage through the real azure-mgmt-storage client: accounts (202 + Location), name
availability across subscriptions, NFS rules, shares (synchronous) with real usage and quota rules."""

from __future__ import annotations

import subprocess

import pytest
from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError
from azure.mgmt.storage.models import (
    FileShare,
    NetworkRuleSet,
    Sku,
    StorageAccountCheckNameAvailabilityParameters,
    StorageAccountCreateParameters,
    StorageAccountUpdateParameters,
)

from tests.conftest import OTHER_SUBSCRIPTION
from tests.emulator.conftest import REGION, Azure, clients_for, needs_sandbox


def nfs_account(**overrides: object) -> StorageAccountCreateParameters:
    values: dict[str, object] = {
        "sku": Sku(name="Premium_LRS"),
        "kind": "FileStorage",
        "location": REGION,
        "enable_https_traffic_only": False,
        "public_network_access": "Disabled",
        "network_rule_set": NetworkRuleSet(default_action="Deny", bypass="AzureServices"),
        "minimum_tls_version": "TLS1_2",
        "allow_blob_public_access": False,
        "tags": {"managed-by": "azlin"},
    }
    values.update(overrides)
    return StorageAccountCreateParameters(**values)


def nfs_share(quota: int = 100) -> FileShare:
    return FileShare(enabled_protocols="NFS", root_squash="NoRootSquash", share_quota=quota)


def test_account_create_is_202_with_location_polled_to_the_account(azure: Azure) -> None:
    azure.emulator.config.polls_before_done = 3
    name = azure.unique("st")
    poller = azure.clients.storage.storage_accounts.begin_create(azure.group, name, nfs_account())
    account = poller.result()

    assert account.provisioning_state == "Succeeded"
    assert account.kind == "FileStorage" and account.sku.name == "Premium_LRS"
    assert account.enable_https_traffic_only is False
    assert account.public_network_access == "Disabled"
    assert account.network_rule_set.default_action == "Deny"
    assert account.primary_endpoints.file == f"https://{name}.file.core.windows.net/"
    assert account.tags == {"managed-by": "azlin"}
    put = [e for e in azure.emulator.requests.snapshot() if e.kind == "PUT Microsoft.Storage/storageAccounts"]
    assert [e.status for e in put] == [202]
    polls = [e for e in azure.emulator.requests.snapshot() if e.kind == "GET operation"]
    assert [e.status for e in polls] == [202, 202, 202, 200]
    assert all("/asyncoperations/" in e.path for e in polls)


def test_name_availability_is_global_across_subscriptions(azure: Azure) -> None:
    name = azure.unique("st")
    check = StorageAccountCheckNameAvailabilityParameters(name=name, type="Microsoft.Storage/storageAccounts")
    other = clients_for(azure.local, OTHER_SUBSCRIPTION)
    assert other.storage.storage_accounts.check_name_availability(account_name=check).name_available is True

    azure.clients.storage.storage_accounts.begin_create(azure.group, name, nfs_account()).result()

    taken = other.storage.storage_accounts.check_name_availability(account_name=check)
    assert (taken.name_available, taken.reason) == (False, "AlreadyExists")
    assert taken.message == f"The storage account named {name} is already taken."
    azure.rest.put(
        azure.rest.group_path("x").replace(azure.rest.subscription, OTHER_SUBSCRIPTION), {"location": REGION}
    )
    with pytest.raises(HttpResponseError) as refused:
        other.storage.storage_accounts.begin_create("x", name, nfs_account()).result()
    assert (refused.value.status_code, refused.value.error.code) == (409, "StorageAccountAlreadyTaken")


def test_invalid_account_names_are_refused(azure: Azure) -> None:
    check = StorageAccountCheckNameAvailabilityParameters(
        name="Bad_Name", type="Microsoft.Storage/storageAccounts"
    )
    answer = azure.clients.storage.storage_accounts.check_name_availability(account_name=check)
    assert (answer.name_available, answer.reason) == (False, "AccountNameInvalid")
    with pytest.raises(HttpResponseError) as refused:
        azure.clients.storage.storage_accounts.begin_create(azure.group, "ab", nfs_account()).result()
    assert refused.value.error.code == "AccountNameInvalid"


def test_file_storage_needs_a_premium_sku_and_kind_cannot_change(azure: Azure) -> None:
    with pytest.raises(HttpResponseError) as refused:
        azure.clients.storage.storage_accounts.begin_create(
            azure.group, azure.unique("st"), nfs_account(sku=Sku(name="Standard_LRS"))
        ).result()
    assert refused.value.error.code == "InvalidValuesForRequestParameters"
    name = azure.unique("st")
    azure.clients.storage.storage_accounts.begin_create(azure.group, name, nfs_account()).result()
    with pytest.raises(HttpResponseError) as changed:
        azure.clients.storage.storage_accounts.begin_create(
            azure.group, name, nfs_account(kind="StorageV2")
        ).result()
    assert changed.value.error.code == "InvalidValuesForRequestParameters"


def test_a_missing_resource_group_is_resource_group_not_found(azure: Azure) -> None:
    with pytest.raises(ResourceNotFoundError) as missing:
        azure.clients.storage.storage_accounts.begin_create(
            "rg-absent", azure.unique("st"), nfs_account()
        ).result()
    assert missing.value.error.code == "ResourceGroupNotFound"
    assert "Resource group 'rg-absent' could not be found." in str(missing.value)


def test_nfs_shares_need_an_ssd_account_and_may_require_secure_transfer(azure: Azure) -> None:
    standard = azure.unique("st")
    azure.clients.storage.storage_accounts.begin_create(
        azure.group, standard, nfs_account(sku=Sku(name="Standard_LRS"), kind="StorageV2")
    ).result()
    with pytest.raises(HttpResponseError) as refused:
        azure.clients.storage.file_shares.create(azure.group, standard, "home", nfs_share())
    assert (refused.value.status_code, refused.value.error.code) == (400, "FeatureNotSupportedForAccount")
    # An SMB share on the standard account is fine.
    smb = azure.clients.storage.file_shares.create(azure.group, standard, "docs", FileShare(share_quota=10))
    assert smb.enabled_protocols == "SMB"
    # encryption-in-transit-for-nfs-shares.md: an NFS share on an account that requires secure
    # transfer is served, to TLS mounts only.
    secure = azure.unique("st")
    azure.clients.storage.storage_accounts.begin_create(
        azure.group, secure, nfs_account(enable_https_traffic_only=True)
    ).result()
    assert azure.clients.storage.file_shares.create(azure.group, secure, "home", nfs_share()).enabled_protocols == "NFS"


def test_provisioned_v2_shares_buy_iops_and_throughput_apart(azure: Azure) -> None:
    # understanding-billing.md (SSD provisioned v2): 32 GiB to 256 TiB; IOPS 3,000-102,400 and
    # throughput 100-10,340 MiB/s, the recommendation when unset; file.json: v2 accounts only.
    name = azure.unique("st")
    azure.clients.storage.storage_accounts.begin_create(
        azure.group, name, nfs_account(sku=Sku(name="PremiumV2_LRS"))).result()
    share = azure.clients.storage.file_shares.create(azure.group, name, "home", nfs_share(32))
    assert (share.share_quota, share.provisioned_iops, share.provisioned_bandwidth_mibps) == (32, 3032, 104)
    assert (share.included_burst_iops, share.max_burst_credits_for_iops) == (10000, (10000 - 3032) * 3600)
    faster = azure.clients.storage.file_shares.update(azure.group, name, "home", FileShare(
        share_quota=32, provisioned_iops=5000, provisioned_bandwidth_mibps=200))
    assert (faster.provisioned_iops, faster.provisioned_bandwidth_mibps) == (5000, 200)
    assert faster.next_allowed_provisioned_iops_downgrade_time is not None
    with pytest.raises(ResourceExistsError) as slower:
        azure.clients.storage.file_shares.update(azure.group, name, "home", FileShare(
            share_quota=32, provisioned_iops=4000))
    assert slower.value.error.code == "ContainerQuotaDowngradeNotAllowed"
    for bad in (FileShare(share_quota=31), FileShare(share_quota=32, provisioned_iops=2999),
                FileShare(share_quota=32, provisioned_bandwidth_mibps=10341)):
        with pytest.raises(HttpResponseError) as refused:
            azure.clients.storage.file_shares.update(azure.group, name, "home", bad)
        assert refused.value.error.code == "InvalidHeaderValue"
    v1 = azure.unique("st")
    azure.clients.storage.storage_accounts.begin_create(azure.group, v1, nfs_account()).result()
    with pytest.raises(HttpResponseError) as not_v2:
        azure.clients.storage.file_shares.create(azure.group, v1, "home", FileShare(
            enabled_protocols="NFS", share_quota=100, provisioned_iops=5000))
    assert not_v2.value.error.code == "InvalidHeaderValue"


def test_share_create_is_synchronous_and_idempotent(azure: Azure) -> None:
    name = azure.unique("st")
    azure.clients.storage.storage_accounts.begin_create(azure.group, name, nfs_account()).result()
    created = azure.clients.storage.file_shares.create(azure.group, name, "home", nfs_share())
    again = azure.clients.storage.file_shares.create(azure.group, name, "home", nfs_share())

    assert (created.enabled_protocols, created.root_squash, created.share_quota) == (
        "NFS",
        "NoRootSquash",
        100,
    )
    assert again.share_quota == 100
    statuses = [
        e.status
        for e in azure.emulator.requests.snapshot()
        if e.kind == "PUT Microsoft.Storage/storageAccounts/fileServices/shares"
    ]
    assert statuses == [201, 200]
    assert [s.name for s in azure.clients.storage.file_shares.list(azure.group, name)] == ["home"]
    with pytest.raises(HttpResponseError) as changed:
        azure.clients.storage.file_shares.create(
            azure.group, name, "home", FileShare(enabled_protocols="SMB", share_quota=100)
        )
    assert changed.value.error.code == "InvalidHeaderValue"


@pytest.mark.parametrize("quota", [99, 102401])
def test_premium_quota_outside_azure_limits_is_refused(azure: Azure, quota: int) -> None:
    name = azure.unique("st")
    azure.clients.storage.storage_accounts.begin_create(azure.group, name, nfs_account()).result()
    with pytest.raises(HttpResponseError) as refused:
        azure.clients.storage.file_shares.create(azure.group, name, "home", nfs_share(quota))
    assert (refused.value.status_code, refused.value.error.code) == (400, "InvalidHeaderValue")


def test_invalid_share_names_are_refused(azure: Azure) -> None:
    name = azure.unique("st")
    azure.clients.storage.storage_accounts.begin_create(azure.group, name, nfs_account()).result()
    for share in ("a--b", "-ab", "Home", "ab"):
        with pytest.raises(HttpResponseError) as refused:
            azure.clients.storage.file_shares.create(azure.group, name, share, nfs_share())
        assert refused.value.error.code == "InvalidResourceName", share


def test_shrinking_within_a_day_of_growing_is_refused(azure: Azure) -> None:
    name = azure.unique("st")
    azure.clients.storage.storage_accounts.begin_create(azure.group, name, nfs_account()).result()
    azure.clients.storage.file_shares.create(azure.group, name, "home", nfs_share(100))
    grown = azure.clients.storage.file_shares.update(azure.group, name, "home", FileShare(share_quota=200))
    assert grown.share_quota == 200 and grown.next_allowed_quota_downgrade_time is not None
    with pytest.raises(ResourceExistsError) as refused:
        azure.clients.storage.file_shares.update(azure.group, name, "home", FileShare(share_quota=150))
    assert refused.value.error.code == "ContainerQuotaDowngradeNotAllowed"


@needs_sandbox
def test_share_stats_report_the_bytes_of_the_real_files(azure: Azure) -> None:
    name = azure.unique("st")
    azure.clients.storage.storage_accounts.begin_create(azure.group, name, nfs_account()).result()
    azure.clients.storage.file_shares.create(azure.group, name, "home", nfs_share())
    files = azure.local.machines.share_files(name, "home")
    assert (
        azure.clients.storage.file_shares.get(azure.group, name, "home", expand="stats").share_usage_bytes
        == 0
    )

    (files / "a").write_bytes(b"x" * 1000)
    (files / "d").mkdir()
    (files / "d" / "b").write_bytes(b"y" * 234)
    (files / "d" / "hard").hardlink_to(files / "a")

    share = azure.clients.storage.file_shares.get(azure.group, name, "home", expand="stats")
    assert share.share_usage_bytes == 1234
    assert azure.clients.storage.file_shares.get(azure.group, name, "home").share_usage_bytes is None


def test_account_update_and_listing_by_group_and_subscription(azure: Azure) -> None:
    name = azure.unique("st")
    azure.clients.storage.storage_accounts.begin_create(azure.group, name, nfs_account()).result()
    updated = azure.clients.storage.storage_accounts.update(
        azure.group, name, StorageAccountUpdateParameters(tags={"managed-by": "azlin", "owner": "me"})
    )
    assert updated.tags == {"managed-by": "azlin", "owner": "me"}
    assert updated.enable_https_traffic_only is False  # PATCH keeps what it does not name
    in_group = [a.name for a in azure.clients.storage.storage_accounts.list_by_resource_group(azure.group)]
    everywhere = [a.name for a in azure.clients.storage.storage_accounts.list()]
    assert in_group == [name] and name in everywhere


def test_deleting_an_account_removes_its_shares_and_is_idempotent(azure: Azure) -> None:
    name = azure.unique("st")
    azure.clients.storage.storage_accounts.begin_create(azure.group, name, nfs_account()).result()
    azure.clients.storage.file_shares.create(azure.group, name, "home", nfs_share())
    azure.clients.storage.storage_accounts.delete(azure.group, name)
    azure.clients.storage.storage_accounts.delete(azure.group, name)

    with pytest.raises(ResourceNotFoundError) as gone:
        azure.clients.storage.storage_accounts.get_properties(azure.group, name)
    assert gone.value.error.code == "ResourceNotFound"
    assert not azure.local.machines.share_files(name, "home").exists()
    deletes = [
        e.status
        for e in azure.emulator.requests.snapshot()
        if e.kind == "DELETE Microsoft.Storage/storageAccounts"
    ]
    assert deletes == [200, 204]


@needs_sandbox
def test_share_snapshots_are_read_only_copies_listed_beside_the_share(azure: Azure) -> None:
    storage = azure.clients.storage
    name = azure.unique("st")
    storage.storage_accounts.begin_create(azure.group, name, nfs_account()).result()
    storage.file_shares.create(azure.group, name, "home", nfs_share())
    files = azure.local.machines.share_files(name, "home")
    (files / "a").write_bytes(b"x" * 100)
    (files / "d").mkdir()
    (files / "d" / "b").write_bytes(b"before")

    taken = storage.file_shares.create(azure.group, name, "home", FileShare(metadata={"azlinreason": "daily"}),
                                       expand="snapshots")
    snapshot = taken["properties"]["snapshotTime"]  # Azure's seven fractional digits: the snapshot's name
    assert snapshot.endswith(".0000000Z") and taken.share_quota == 100
    (files / "a").unlink()
    (files / "d" / "b").write_bytes(b"after")
    listed = list(storage.file_shares.list(azure.group, name, expand="snapshots"))
    assert [(s.name, s.snapshot_time is not None) for s in listed] == [("home", False), ("home", True)]
    assert storage.file_shares.get(azure.group, name, "home", x_ms_snapshot=snapshot).metadata == {
        "azlinreason": "daily"}
    directory = "@GMT-" + snapshot[:19].replace("-", ".").replace("T", "-").replace(":", ".")
    kept = azure.local.machines.snapshot_files(name, "home", directory)
    assert (kept / "a").read_bytes() == b"x" * 100 and (kept / "d" / "b").read_bytes() == b"before"
    # Snapshots are not the share's usage; and nobody, root included, writes in one.
    assert storage.file_shares.get(azure.group, name, "home", expand="stats").share_usage_bytes == 5
    fabric = azure.local.machines.fabric
    mounted = fabric.mounts / name / "home@snapshots" / directory
    write = subprocess.run(["nsenter", "-t", str(fabric.pid), "-m", "--", "touch", str(mounted / "new")],
                           capture_output=True, text=True, check=False)
    assert write.returncode != 0 and "Read-only file system" in write.stderr
    with pytest.raises(HttpResponseError) as bad:
        storage.file_shares.create(azure.group, name, "home", FileShare(metadata={"not-a-name": "x"}),
                                   expand="snapshots")
    assert bad.value.error.code == "InvalidMetadata"

    # The account's delete lock keeps its snapshots too (storage-snapshots-files.md).
    lock = (f"{azure.group_path()}/providers/Microsoft.Storage/storageAccounts/{name}"
            "/providers/Microsoft.Authorization/locks/keep")
    azure.rest.put(lock, {"properties": {"level": "CanNotDelete"}})
    with pytest.raises(HttpResponseError) as locked:
        storage.file_shares.delete(azure.group, name, "home", x_ms_snapshot=snapshot)
    assert locked.value.error.code == "ScopeLocked"
    azure.rest.delete(lock)
    with pytest.raises(ResourceExistsError) as has:
        storage.file_shares.delete(azure.group, name, "home", include="none")
    assert has.value.error.code == "ShareHasSnapshots"
    storage.file_shares.delete(azure.group, name, "home", x_ms_snapshot=snapshot)
    assert [s.snapshot_time for s in storage.file_shares.list(azure.group, name, expand="snapshots")] == [None]
    assert not kept.exists()


def test_a_share_keeps_at_most_200_snapshots(azure: Azure) -> None:
    storage = azure.clients.storage
    name = azure.unique("st")
    storage.storage_accounts.begin_create(azure.group, name, nfs_account()).result()
    storage.file_shares.create(azure.group, name, "home", nfs_share())
    share = azure.emulator.get(
        f"{azure.group_path()}/providers/Microsoft.Storage/storageAccounts/{name}/fileServices/default/shares/home")
    # 199 taken before, recorded as the emulator records them (copying 199 shares only costs time).
    share.internal["snapshots"] = {f"2020-01-01T00:{i // 60:02d}:{i % 60:02d}.0000000Z":
                                   {"metadata": {}, "directory": f"@GMT-2020.01.01-00.{i // 60:02d}.{i % 60:02d}"}
                                   for i in range(199)}
    storage.file_shares.create(azure.group, name, "home", FileShare(), expand="snapshots")
    with pytest.raises(ResourceExistsError) as full:
        storage.file_shares.create(azure.group, name, "home", FileShare(), expand="snapshots")
    assert full.value.status_code == 409 and full.value.error.code == "ShareSnapshotCountExceeded"
