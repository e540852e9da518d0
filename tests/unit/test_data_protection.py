"""The rules of what stays recoverable: snapshot ids and restore paths, which snapshots the
service removes, the deleted-storage refusal, and the settings that size the windows."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from shared.domain.data_protection import (
    MAX_SNAPSHOTS,
    DataProtection,
    ShareSnapshot,
    SnapshotReason,
    expired,
    require_active,
    require_room,
    restore_path,
    snapshot_directory,
    snapshot_id,
    snapshot_stamp,
    taken_today,
    with_expiry,
)
from shared.domain.errors import ConfigurationError, Conflict, ValidationError
from shared.domain.models import Redundancy, StorageInfo, StorageState, Tier
from shared.settings import Settings

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


def snap(days_ago: float, reason: SnapshotReason | None = SnapshotReason.DAILY) -> ShareSnapshot:
    taken = NOW - timedelta(days=days_ago)
    return ShareSnapshot(taken.strftime("%Y-%m-%dT%H:%M:%S.0000000Z"), taken, reason)


@pytest.mark.parametrize("path, kept", [
    ("notes.txt", "notes.txt"), ("projects/report.txt", "projects/report.txt"),
    ("projects//deep/", "projects/deep"), (".ssh/authorized_keys", ".ssh/authorized_keys"),
    ("a..b", "a..b"),
])
def test_a_restore_path_is_kept_inside_the_home(path: str, kept: str) -> None:
    assert restore_path(path) == kept


@pytest.mark.parametrize("path", [
    "", "/", "/etc/shadow", "../x", "a/../../etc", "./a", "a/./b", "a\nb", "a\x00b", "x" * 1025, 7, None,
])
def test_a_restore_path_that_could_leave_the_home_is_refused(path: object) -> None:
    with pytest.raises(ValidationError):
        restore_path(path)


@pytest.mark.parametrize("value", ["2026-12-03T02:00:00.0000000Z", "2026-12-03T02:00:00Z"])
def test_a_snapshot_id_is_azures_snapshot_time(value: str) -> None:
    assert snapshot_id(value) == value


@pytest.mark.parametrize("value", ["", "latest", "2026-12-03", "2026-12-03T02:00:00.0000000Z/../x",
                                   "2026-12-03T02:00:00.00000000Z", None])
def test_anything_else_is_not_a_snapshot_id(value: object) -> None:
    with pytest.raises(ValidationError):
        snapshot_id(value)


def test_a_snapshot_has_a_directory_name_and_a_file_name_stamp() -> None:
    assert snapshot_directory("2026-12-03T02:00:05.0000000Z") == "@GMT-2026.12.03-02.00.05"
    assert snapshot_stamp("2026-12-03T02:00:05.0000000Z") == "20261203T020005Z"


def test_only_the_services_own_snapshots_past_the_retention_are_removed_oldest_first() -> None:
    old_daily, older_detach, fresh = snap(8), snap(9, SnapshotReason.BEFORE_DETACH), snap(6.9)
    someone_elses = snap(400, None)
    assert expired([fresh, old_daily, someone_elses, older_detach], NOW, 7) == [older_detach, old_daily]
    assert expired([snap(7)], NOW, 7) == [snap(7)]  # exactly at the end of its window


def test_the_daily_snapshot_is_taken_once_a_utc_day() -> None:
    assert taken_today([snap(0.1)], NOW)
    assert not taken_today([snap(1)], NOW)
    assert not taken_today([snap(0, SnapshotReason.BEFORE_SHRINK)], NOW)  # another reason


def test_a_listed_snapshot_of_ours_says_when_it_goes() -> None:
    assert with_expiry(snap(1), 7).expires_at == NOW + timedelta(days=6)
    assert with_expiry(snap(1, None), 7).expires_at is None


def test_azures_most_snapshots_refuse_one_more() -> None:
    require_room("team", MAX_SNAPSHOTS - 1)
    with pytest.raises(Conflict) as full:
        require_room("team", MAX_SNAPSHOTS)
    assert full.value.code.value == "SnapshotLimit"


def test_a_deleted_storage_is_kept_only_to_come_back() -> None:
    storage = StorageInfo("team", "rg", "westeurope", Tier.PREMIUM, Redundancy.LRS, 100, "e", NOW)
    require_active(storage, "attach a VM to it")
    deleted = replace(storage, state=StorageState.DELETED, deleted_at=NOW, purge_after=NOW + timedelta(days=7))
    with pytest.raises(Conflict) as refused:
        require_active(deleted, "attach a VM to it")
    assert refused.value.code.value == "StorageDeleted"
    assert "2026-12-10 12:00" in refused.value.message and "undelete" in (refused.value.try_hint or "")


def test_the_windows_come_from_settings_within_azures_limits() -> None:
    env = {"AzureWebJobsStorage": "UseDevelopmentStorage=true", "AZURE_SUBSCRIPTION_ID": "6e0b3f2a-5a43-4b7e-9a57-3f0c2d7d1c11"}
    settings = Settings.from_environ(env)
    assert settings.protection == DataProtection(7, 7)
    now = Settings.from_environ({**env, "DELETE_RETENTION_DAYS": "0", "SNAPSHOT_RETENTION_DAYS": "30"})
    assert now.protection == DataProtection(0, 30)
    assert now.protection.share_retention_days == 1  # share soft delete keeps 1 to 365 days
    with pytest.raises(ConfigurationError) as bad:
        Settings.from_environ({**env, "DELETE_RETENTION_DAYS": "366", "SNAPSHOT_RETENTION_DAYS": "0"})
    assert len(bad.value.causes) == 2
