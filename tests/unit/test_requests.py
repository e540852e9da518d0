from __future__ import annotations

from collections.abc import Callable

import pytest

from shared.domain import requests
from shared.domain.commands import (
    AttachVm,
    CreateStorage,
    DetachVm,
    command_for,
    locks_of,
    params_of,
    storage_lock,
    vm_lock,
)
from shared.domain.errors import ErrorCode, ValidationError
from shared.domain.models import DetachMode, Redundancy, Tier
from shared.domain.operations import Operation, OperationKind
from tests.unit.test_operation_state_machine import NOW

DEFAULTS = requests.RequestDefaults(resource_group="rg-default", region="westeurope")
NO_DEFAULTS = requests.RequestDefaults()


class TestCreateStorage:
    def test_defaults_fill_what_the_request_leaves_out(self) -> None:
        command = requests.create_storage({"name": "teamhome"}, DEFAULTS)
        assert command == CreateStorage("teamhome", "rg-default", "westeurope", Tier.PREMIUM,
                                        Redundancy.LRS, 100)

    def test_everything_given(self) -> None:
        body = {"name": "teamhome", "resourceGroup": "rg1", "region": "East US", "tier": "Premium",
                "redundancy": "ZRS", "size": "1TiB"}
        assert requests.create_storage(body, NO_DEFAULTS) == CreateStorage(
            "teamhome", "rg1", "eastus", Tier.PREMIUM, Redundancy.ZRS, 1024)

    def test_null_members_count_as_absent(self) -> None:
        command = requests.create_storage({"name": "teamhome", "region": None, "size": None}, DEFAULTS)
        assert command.region == "westeurope" and command.size_gb == 100

    def test_without_a_default_the_region_is_left_to_the_resource_group(self) -> None:
        command = requests.create_storage({"name": "teamhome", "resourceGroup": "rg1"}, NO_DEFAULTS)
        assert command.region is None

    def test_resource_group_is_required_without_a_default(self) -> None:
        with pytest.raises(ValidationError, match="'resourceGroup' is required"):
            requests.create_storage({"name": "teamhome"}, NO_DEFAULTS)

    def test_every_problem_is_reported_at_once(self) -> None:
        body = {"name": "Team_Home", "size": "5GB", "redundancy": "GRS", "tier": "Premium"}
        with pytest.raises(ValidationError) as err:
            requests.create_storage(body, DEFAULTS)
        assert len(err.value.causes) == 3

    def test_standard_is_refused_with_its_own_code(self) -> None:
        with pytest.raises(ValidationError) as err:
            requests.create_storage({"name": "teamhome", "tier": "Standard"}, DEFAULTS)
        assert err.value.code is ErrorCode.UNSUPPORTED_TIER

    @pytest.mark.parametrize("body", [None, [], "teamhome", 5, True])
    def test_body_must_be_an_object(self, body: object) -> None:
        with pytest.raises(ValidationError, match="must be a JSON object"):
            requests.create_storage(body, DEFAULTS)

    def test_missing_and_unknown_members(self) -> None:
        with pytest.raises(ValidationError) as err:
            requests.create_storage({"sise": 100}, DEFAULTS)
        assert err.value.causes == ("'name' is required", "'sise' is not a known member")


class TestOtherRequests:
    def test_attach(self) -> None:
        command = requests.attach_vm("teamhome", {"vm": "vm1", "mountPoint": "/home/dev"}, DEFAULTS)
        assert command == AttachVm("teamhome", "vm1", "rg-default", "/home/dev")
        assert locks_of(command) == {vm_lock("rg-default", "vm1"): False, storage_lock("teamhome"): True}

    def test_attach_reports_route_and_body_problems_together(self) -> None:
        with pytest.raises(ValidationError) as err:
            requests.attach_vm("BAD!", {"vm": "-x", "mountPoint": "/etc"}, DEFAULTS)
        assert len(err.value.causes) == 3

    def test_detach(self) -> None:
        ref = requests.vm_ref("vm1", {"resourceGroup": "rg2"}, DEFAULTS)
        assert requests.detach_vm(ref, {}) == DetachVm("vm1", "rg2", DetachMode.COPY)
        assert requests.detach_vm(ref, {"mode": "restore"}).mode is DetachMode.RESTORE
        with pytest.raises(ValidationError):
            requests.detach_vm(ref, {"mode": "wipe"})

    def test_resize(self) -> None:
        assert requests.resize({"size": "2TB"}) == ("2TB", None, None)  # checked against the billing later
        assert requests.resize({"iops": 5000, "throughputMibps": 300}) == (None, 5000, 300)
        for bad in ({"size": 20}, {"size": 200, "name": "x"}, {}, {"iops": 2999}, {"throughputMibps": True}):
            with pytest.raises(ValidationError):
                requests.resize(bad)

    def test_list_query(self) -> None:
        assert requests.list_query({}) == requests.ListQuery(None, 100, None)
        assert requests.list_query({"resourceGroup": "rg1", "$top": "5", "$skipToken": "abc", "code": "k"}) \
            == requests.ListQuery("rg1", 5, "abc")
        with pytest.raises(ValidationError):
            requests.list_query({"$top": "0"})

    def test_storage_ref_resource_group_is_optional(self) -> None:
        assert requests.storage_ref("teamhome", {}) == requests.StorageRef("teamhome", None)
        assert requests.storage_ref("teamhome", {"resourceGroup": "rg"}).resource_group == "rg"

    @pytest.mark.parametrize(("parse", "name"), [
        (lambda q: requests.storage_ref("teamhome", q), "resourceGroup"),
        (requests.list_query, "resourceGroup"), (requests.list_query, "$top"),
        (lambda q: requests.vm_ref("vm1", q, DEFAULTS), "resourceGroup"),
        *((lambda q: requests.operations_query(q, DEFAULTS), name)
          for name in ("storage", "vm", "resourceGroup", "status", "kind", "$top")),
        (lambda q: requests.cloud_init_user(q, DEFAULTS), "user"),
        (lambda q: requests.cloud_init_user(q, DEFAULTS), "mountPoint"),
        (requests.detach_mode, "mode"), (lambda q: requests.optional_flag(q, "force"), "force")])
    def test_a_query_parameter_sent_empty_is_refused_not_taken_as_absent(
            self, parse: Callable[[dict[str, str]], object], name: str) -> None:
        """`?resourceGroup=` is a value the document's pattern refuses; so does the service."""
        with pytest.raises(ValidationError):
            parse({name: ""})

    def test_cloud_init_user_is_the_mount_points_when_not_named(self) -> None:
        assert requests.cloud_init_user({}, DEFAULTS) == ("azureuser", None)
        assert requests.cloud_init_user({"mountPoint": "/home/bob"}, DEFAULTS) == ("bob", "/home/bob")
        assert requests.cloud_init_user({"user": "bob"}, DEFAULTS) == ("bob", None)
        with pytest.raises(ValidationError, match="not the home of 'user'"):
            requests.cloud_init_user({"user": "alice", "mountPoint": "/home/bob"}, DEFAULTS)

    def test_the_operations_query_checks_a_resource_group_without_a_vm(self) -> None:
        with pytest.raises(ValidationError):
            requests.operations_query({"resourceGroup": "bad/group"}, DEFAULTS)
        assert requests.operations_query({"resourceGroup": "rg1"}, DEFAULTS).vm is None


class TestCommandsInOperations:
    def test_commands_travel_as_params_and_come_back(self) -> None:
        for command in (requests.create_storage({"name": "teamhome", "size": 300}, DEFAULTS),
                        AttachVm("teamhome", "vm1", "rg1", None),
                        DetachVm("vm1", "rg1", DetachMode.RESTORE)):
            op = Operation.new(command.KIND, command.target, params_of(command), NOW)
            assert command_for(op) == command

    def test_unreadable_params_are_a_final_error(self) -> None:
        op = Operation.new(OperationKind.ATTACH_VM, "vm/x", {"vm": "vm1"}, NOW)
        with pytest.raises(ValidationError, match="cannot read"):
            command_for(op)

    def test_locks_are_case_insensitive_like_azure_names(self) -> None:
        assert vm_lock("RG1", "VM1") == vm_lock("rg1", "vm1")
