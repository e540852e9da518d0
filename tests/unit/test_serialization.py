from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import jsonschema
import pytest

from shared.domain.models import (
    Attachment,
    AttachmentHealth,
    DetachMode,
    MountInfo,
    MountResult,
    Redundancy,
    StorageInfo,
    StorageStatus,
    Tier,
    UnmountResult,
    nfs_endpoint,
)
from shared.domain.operations import Operation, OperationKind
from shared.domain.serialization import format_time, from_json, json_schema, parse_time, to_json

NOW = datetime(2026, 11, 27, 12, 30, 15, 123456, tzinfo=UTC)
STORAGE = StorageInfo("teamhome", "rg1", "eastus", Tier.PREMIUM, Redundancy.ZRS, 200,
                      nfs_endpoint("teamhome"), NOW)

SAMPLES = [
    STORAGE,
    StorageStatus(STORAGE, None, None, ("vm1", "vm2"), Decimal("30.72"), "USD", "fallback"),
    StorageStatus(STORAGE, 12.5, 6.25, (), Decimal("30.72"), "USD", "retail"),
    Attachment("teamhome", "vm1", "rg1", "/home/azureuser", NOW, vm_id="abc", owner="azureuser",
               backup_path="/home/azureuser.azlin-backup-1", health=AttachmentHealth.HEALTHY,
               last_verified_at=NOW),
    Attachment("teamhome", "vm2", "rg1", "/home/azureuser", NOW, last_error="unmounted"),
    MountResult(True, "/home/azureuser", nfs_endpoint("teamhome"), 10, 10, "/home/x.bak", False, ()),
    UnmountResult(False, "/home/azureuser", DetachMode.RESTORE, errors=("busy",)),
    MountInfo("/home/azureuser", nfs_endpoint("teamhome"), "nfs4", "vers=4.1,sec=sys", True),
    Operation.new(OperationKind.ATTACH_VM, "vm/rg1/vm1", {"vm": "vm1"}, NOW).start(NOW),
]


@pytest.mark.parametrize("sample", SAMPLES, ids=lambda s: type(s).__name__)
def test_models_round_trip_through_json(sample: object) -> None:
    assert from_json(type(sample), to_json(sample)) == sample


@pytest.mark.parametrize("sample", SAMPLES, ids=lambda s: type(s).__name__)
def test_json_matches_the_generated_schema(sample: object) -> None:
    jsonschema.validate(to_json(sample), json_schema(type(sample)))


def test_the_wire_shape_is_camel_case_with_explicit_unknowns() -> None:
    status = to_json(SAMPLES[1])
    assert status["usedGb"] is None and status["utilizationPercent"] is None
    assert status["connectedVms"] == ["vm1", "vm2"] and status["costPerMonth"] == 30.72
    assert status["info"] == {
        "name": "teamhome", "resourceGroup": "rg1", "region": "eastus", "tier": "Premium",
        "redundancy": "ZRS", "sizeGb": 200, "nfsEndpoint": "teamhome.file.core.windows.net:/teamhome/home",
        "createdAt": "2026-11-27T12:30:15.123456Z", "encryptionInTransit": False, "billing": "provisionedV1",
        "state": "Active"}


def test_optional_members_of_the_contract_are_omitted_when_absent() -> None:
    op = to_json(Operation.new(OperationKind.CREATE_STORAGE, "storage/x", {}, NOW))
    assert "result" not in op and "error" not in op and "lastError" not in op and "etag" not in op
    assert op["progress"] is None and op["status"] == "Pending"


def test_schema_rejects_what_the_model_cannot_produce() -> None:
    bad = to_json(STORAGE) | {"tier": "Standard"}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, json_schema(StorageInfo))
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(to_json(STORAGE) | {"extra": 1}, json_schema(StorageInfo))


def test_times_are_fixed_width_utc_and_sort_as_text() -> None:
    early, late = NOW, NOW + timedelta(microseconds=1)
    assert format_time(early) < format_time(late)
    assert format_time(NOW.replace(microsecond=0)) == "2026-11-27T12:30:15.000000Z"
    assert parse_time(format_time(NOW)) == NOW
    eastern = NOW.astimezone(timezone(timedelta(hours=-5)))
    assert format_time(eastern) == format_time(NOW)
    with pytest.raises(ValueError, match="naive"):
        format_time(datetime(2026, 1, 1))


def test_missing_required_members_fail_loudly() -> None:
    with pytest.raises(TypeError):
        from_json(StorageInfo, {"name": "x"})
