"""The OpenAPI document: valid OpenAPI 3.1, exactly the registered routes, and exactly what the
service accepts and answers: its schemas accept the values (and bodies) the service accepts and
refuse the ones it refuses, every error code the service has is one it lists, and every answer
the tests of the API see is documented (tests/contract/documented.py, through `Client`)."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from openapi_spec_validator import validate

from functions import openapi
from local.host import FunctionIndex
from shared.bootstrap import Container
from shared.domain import requests
from shared.domain import validation as v
from shared.domain.data_protection import RESTORE_PATH, SNAPSHOT_ID
from shared.domain.errors import ErrorCode, ValidationError
from shared.domain.models import Billing
from shared.domain.operations import OperationKind, OperationStatus
from tests.conftest import Client
from tests.contract.documented import DOCUMENT, accepts, strict
from tests.contract.examples import FIELDS, HOME_ROOTS

ROOT = Path(__file__).resolve().parents[2]
WITH_GROUP = requests.RequestDefaults(resource_group="rg-default")
MORE_ROOTS = requests.RequestDefaults(home_roots=HOME_ROOTS)


def test_the_document_is_valid_openapi() -> None:
    validate(openapi.document())
    validate(openapi.document(WITH_GROUP))


def test_paths_and_methods_are_exactly_the_registered_routes(functions: FunctionIndex) -> None:
    registered = {(f"/api/{route.template}", method.lower(), route.name)
                  for route in functions.http_routes for method in route.methods}
    documented = {(path, method, operation["operationId"])
                  for path, item in openapi.document()["paths"].items() for method, operation in item.items()}
    assert documented == registered


def test_path_parameters_match_the_route_templates() -> None:
    for path, item in openapi.document()["paths"].items():
        in_template = set(re.findall(r"{(\w+)}", path))
        for operation in item.values():
            declared = {p["name"] for p in operation["parameters"] if p["in"] == "path"}
            assert declared == in_template, (path, operation["operationId"])


def test_only_health_and_the_document_need_no_token(functions: FunctionIndex) -> None:
    document = openapi.document()
    documented = {op["operationId"] for item in document["paths"].values()
                  for op in item.values() if op.get("security") == []}
    assert documented == {"health", "openapi_document"}
    assert document["security"] == [{"entraId": []}]
    assert document["components"]["securitySchemes"]["entraId"]["scheme"] == "bearer"
    for item in document["paths"].values():
        for op in item.values():
            assert ("401" in op["responses"]) == (op["operationId"] not in documented), op["operationId"]
            if "401" in op["responses"]:
                assert op["responses"]["401"]["headers"]["WWW-Authenticate"]["required"]


def test_it_is_served_as_the_settings_shape_it(api: Client, app: Container) -> None:
    answer = api.get("/api/openapi.json")
    assert answer.status == 200 and answer.json() == openapi.document(app.settings.defaults)
    assert app.settings.defaults.resource_group  # the tests' service has one: resourceGroup is optional
    assert "resourceGroup" not in answer.json()["components"]["schemas"]["CreateStorageRequest"]["required"]
    assert "resourceGroup" in openapi.document()["components"]["schemas"]["CreateStorageRequest"]["required"]


def operation(operation_id: str, document: dict[str, Any] = DOCUMENT) -> dict[str, Any]:
    found = [op for item in document["paths"].values() for op in item.values() if op["operationId"] == operation_id]
    assert len(found) == 1, operation_id
    return found[0]


def test_every_operation_lists_every_status_it_can_answer() -> None:
    """The host's own refusals and the service's, on every operation; the ones that need a caller
    on every operation that does; 409 wherever an Idempotency-Key can be reused."""
    host = {"400", "413", "414", "431", "500", "501", "503"}
    for path, item in DOCUMENT["paths"].items():
        for method, op in item.items():
            statuses = set(op["responses"])
            assert host <= statuses, (method, path, host - statuses)
            if op.get("security") != []:
                assert {"401", "403", "404"} <= statuses, (method, path)
            if any(p["name"] == "Idempotency-Key" for p in op["parameters"]):
                assert "409" in statuses, (method, path)
            assert op["responses"]["503"]["headers"]["Retry-After"]["required"], (method, path)
            successes = {s for s in statuses if s.startswith("2")}
            # One success; a get-or-make answers 200 for what exists and 201 for what it made.
            assert len(successes) == 1 or successes == {"200", "201"}, (method, path, successes)
            if "202" in successes:
                assert op["responses"]["202"]["headers"]["Location"]["required"]


def test_every_error_code_is_in_the_error_shape_and_each_is_answered_somewhere() -> None:
    """The Error schema lists every code (the host's own refusals included, local/host/), and no
    code is listed that nothing in the service or the host answers."""
    listed = DOCUMENT["components"]["schemas"]["ErrorDetail"]["properties"]["code"]["enum"]
    assert sorted(listed) == sorted(c.value for c in ErrorCode)
    sources = subprocess.run(["grep", "-rhoE", r"ErrorCode\.[A-Z_]+", "shared", "functions", "local/host"],
                             cwd=ROOT, capture_output=True, text=True, check=True).stdout
    used = {name.removeprefix("ErrorCode.") for name in sources.split()}
    assert {c.name for c in ErrorCode} <= used, {c.name for c in ErrorCode} - used
    host = subprocess.run(["grep", "-rhoE", r"Refused\([0-9]+, [A-Za-z_.\"]+", "local/host"],
                          cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert host and all("ErrorCode." in refusal for refusal in host.splitlines()), host


def test_every_operation_kind_has_its_params_and_result_typed() -> None:
    schemas = DOCUMENT["components"]["schemas"]
    variants = schemas["Operation"]["oneOf"]
    assert len(variants) == len(OperationKind)
    for kind in OperationKind:
        variant = schemas[f"{kind.value}Operation"]["properties"]
        assert variant["kind"] == {"type": "string", "const": kind.value}
        assert variant["params"] == {"$ref": f"#/components/schemas/{kind.value}Params"}
        assert "type" in variant["result"] or "$ref" in variant["result"] or "oneOf" in variant["result"]
        assert variant["error"]["$ref"] == variant["lastError"]["$ref"] == "#/components/schemas/ErrorDetail"


# -- the document's schemas and the service's validators, value by value ----------------------------

def param_schema(operation_id: str, name: str, document: dict[str, Any] = DOCUMENT) -> dict[str, Any]:
    (schema,) = [p["schema"] for p in operation(operation_id, document)["parameters"] if p["name"] == name]
    return schema


def body_member(schema_name: str, member: str) -> dict[str, Any]:
    schema: dict[str, Any] = DOCUMENT["components"]["schemas"][schema_name]["properties"][member]
    return schema


def as_query(schema: dict[str, Any], value: Any) -> Any:
    """A query string value as OpenAPI reads it for the parameter's type."""
    if schema.get("type") == "boolean" and isinstance(value, str):
        return {"true": True, "false": False}.get(value, value)
    return value


DOCUMENTED: dict[str, tuple[dict[str, Any], requests.RequestDefaults]] = {
    "storage name": (param_schema("get_storage", "name"), openapi.NO_DEFAULTS),
    "resource group": (param_schema("get_default_storage", "group"), openapi.NO_DEFAULTS),
    "region": (body_member("CreateStorageRequest", "region"), openapi.NO_DEFAULTS),
    "vm name": (param_schema("get_attachment", "vm"), openapi.NO_DEFAULTS),
    "network name": (body_member("CreateStorageRequest", "vnet"), openapi.NO_DEFAULTS),
    "linux user": (param_schema("storage_cloud_init", "user"), openapi.NO_DEFAULTS),
    "mount point": (param_schema("storage_cloud_init", "mountPoint"), openapi.NO_DEFAULTS),
    "mount point, more roots": (param_schema("storage_cloud_init", "mountPoint", openapi.document(MORE_ROOTS)),
                                MORE_ROOTS),
    "snapshot": (param_schema("restore_from_snapshot", "snapshot"), openapi.NO_DEFAULTS),
    "restore path": (body_member("RestoreRequest", "path"), openapi.NO_DEFAULTS),
    "object id": (body_member("StorageAccessRequest", "owners")["items"], openapi.NO_DEFAULTS),
    "idempotency key": (param_schema("create_storage", "Idempotency-Key"), openapi.NO_DEFAULTS),
    "size, provisionedV2": (body_member("ResizeStorageRequest", "size")["anyOf"][0], openapi.NO_DEFAULTS),
    "size, provisionedV1": (openapi.size_schema(Billing.PROVISIONED_V1), openapi.NO_DEFAULTS),
    "flag": (param_schema("delete_storage", "force"), openapi.NO_DEFAULTS),
    "detach mode": (param_schema("detach_vm", "mode"), openapi.NO_DEFAULTS),
    "statuses": (param_schema("list_operations", "status"), openapi.NO_DEFAULTS),
    "kinds": (param_schema("list_operations", "kind"), openapi.NO_DEFAULTS),
    "iops": (body_member("CreateStorageRequest", "iops"), openapi.NO_DEFAULTS),
    "throughput": (body_member("ResizeStorageRequest", "throughputMibps"), openapi.NO_DEFAULTS),
}


def service_accepts(field: str, value: Any) -> bool:
    try:
        FIELDS[field].judge(value)
    except ValidationError:
        return False
    return True


@pytest.mark.parametrize("field", sorted(FIELDS))
def test_each_schema_accepts_what_the_service_accepts_and_refuses_what_it_refuses(field: str) -> None:
    schema, defaults = DOCUMENTED[field]
    for value in FIELDS[field].accepted:
        assert service_accepts(field, value), (field, value)
        assert accepts(schema, as_query(schema, value), defaults), f"the document refuses {value!r} ({field})"
    for value in FIELDS[field].refused:
        assert not service_accepts(field, value), (field, value)
        assert not accepts(schema, as_query(schema, value), defaults), f"the document allows {value!r} ({field})"


PATTERNED = sorted(field for field, (schema, _) in DOCUMENTED.items() if "pattern" in schema)
characters = st.sampled_from("aZz09_-.()/ +:,@~\n\t\x00éß٣\u212a\u2028グ")


@pytest.mark.parametrize("field", PATTERNED)
@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_each_pattern_agrees_with_the_service_on_any_text(field: str, data: st.DataObject) -> None:
    """Text made from the pattern itself, near misses (its text with a character changed) and
    any text: the service and the document give the same verdict."""
    schema, defaults = DOCUMENTED[field]
    pattern = strict(schema)["pattern"]
    made = data.draw(st.one_of(st.from_regex(pattern, fullmatch=True), st.text(characters, max_size=12),
                               st.sampled_from(FIELDS[field].accepted + FIELDS[field].refused)
                               .filter(lambda value: isinstance(value, str))))
    if made and data.draw(st.booleans()):
        at = data.draw(st.integers(0, len(made) - 1))
        made = made[:at] + data.draw(characters) + made[at + 1:]
    assert service_accepts(field, made) == accepts(schema, as_query(schema, made), defaults), repr(made)


def test_every_pattern_in_the_document_is_a_rule_the_service_matches() -> None:
    """No pattern is written in the document alone: each is one the service's validators use."""
    rules = {v.STORAGE_NAME, v.RESOURCE_GROUP, v.REGION, v.VM_NAME, v.NETWORK_NAME, v.LINUX_USER, v.OBJECT_ID,
             v.IDEMPOTENCY_KEY, SNAPSHOT_ID, RESTORE_PATH, v.mount_point_pattern(),
             v.one_of_each_pattern(OperationStatus), v.one_of_each_pattern(OperationKind),
             *(v.size_pattern(billing) for billing in Billing)}

    def patterns(node: Any) -> set[str]:
        if isinstance(node, dict):
            own = {node["pattern"]} if isinstance(node.get("pattern"), str) else set()
            return own.union(*(patterns(value) for value in node.values()))
        if isinstance(node, list):
            return set().union(*(patterns(item) for item in node))
        return set()

    found = patterns(DOCUMENT)
    assert found == {openapi.whole(rule) for rule in rules}


@settings(max_examples=500, deadline=None)
@given(low=st.integers(0, 300_000), span=st.integers(0, 300_000), number=st.integers(0, 700_000))
def test_a_range_pattern_matches_exactly_the_numbers_in_the_range(low: int, span: int, number: int) -> None:
    pattern = re.compile(v.integer_range(low, low + span))
    assert bool(pattern.fullmatch(str(number))) == (low <= number <= low + span)
    assert not pattern.fullmatch("0" + str(number))  # never a leading zero


@settings(max_examples=300, deadline=None)
@given(size=st.one_of(st.integers(0, 300_000), st.from_regex(r"[0-9]{1,7}([GgTt][Ii]?[Bb])?", fullmatch=True)),
       billing=st.sampled_from(list(Billing)))
def test_the_size_schema_agrees_with_the_service(size: int | str, billing: Billing) -> None:
    try:
        v.size_gib(size, billing=billing)
        ok = True
    except ValidationError:
        ok = False
    assert accepts(openapi.size_schema(billing), size) == ok, (size, billing)


# -- bodies: members together, as the service reads them ---------------------------------------------

def service_verdict(parse: Any, body: Any) -> bool:
    try:
        parse(body)
    except ValidationError:
        return False
    return True


BODIES: list[tuple[str, Any, requests.RequestDefaults, list[Any]]] = [
    ("CreateStorageRequest", requests.create_storage, WITH_GROUP, [
        {"name": "teamhome"}, {"name": "teamhome", "resourceGroup": None, "size": None, "tier": None},
        {"name": "teamhome", "size": "1TiB", "redundancy": "ZRS", "region": "East US", "tier": "Premium"},
        {"name": "teamhome", "billing": "provisionedV1", "size": 100},
        {"name": "teamhome", "billing": "provisionedV1", "size": 50},
        {"name": "teamhome", "billing": "provisionedV1", "size": "1TiB"},
        {"name": "teamhome", "billing": "provisionedV2", "size": 50, "iops": 3000, "throughputMibps": 100},
        {"name": "teamhome", "billing": "provisionedV1", "iops": 3000},
        {"name": "teamhome", "billing": "provisionedV1", "iops": None, "throughputMibps": None},
        {"name": "teamhome", "size": 31}, {"name": "teamhome", "size": "300TiB"},
        {"name": "teamhome", "subnet": "s1"}, {"name": "teamhome", "vnet": "v1", "subnet": "s1"},
        {"name": "teamhome", "guardSubnet": True}, {"name": "teamhome", "guardSubnet": True, "vnet": "v1"},
        {"name": "teamhome", "guardSubnet": False}, {"name": "teamhome", "guardSubnet": "true"},
        {"name": "teamhome", "encryptionInTransit": "off"}, {"name": "teamhome", "encryptionInTransit": True},
        {"name": "teamhome", "tier": "Standard"}, {"name": "teamhome", "tier": "premium"},
        {"name": "teamhome", "sise": 100}, {"name": None}, {}, [], "teamhome", None,
        {"name": "teamhome", "resourceGroup": ""}, {"name": "teamhome", "region": "East-US"}]),
    ("CreateStorageRequest", requests.create_storage, openapi.NO_DEFAULTS, [
        {"name": "teamhome"}, {"name": "teamhome", "resourceGroup": "rg1"},
        {"name": "teamhome", "resourceGroup": None}, {"name": "teamhome", "resourceGroup": "rg1", "subnet": "s"},
        {"name": "teamhome", "resourceGroup": "rg1", "subnet": None},
        {"name": "teamhome", "resourceGroup": "rg1", "vnet": "v", "subnet": "s"}]),
    ("CreateStorageRequest", requests.create_storage, requests.RequestDefaults(resource_group="rg", vnet="v"), [
        {"name": "teamhome", "subnet": "s"}, {"name": "teamhome", "guardSubnet": True}]),
    ("CreateStorageRequest", requests.create_storage, requests.RequestDefaults(resource_group="rg", subnet="s"), [
        {"name": "teamhome"}, {"name": "teamhome", "vnet": "v"}]),
    ("ResizeStorageRequest", lambda body, _: requests.resize(body), WITH_GROUP, [
        {"size": 200}, {"size": "2TB"}, {"iops": 5000}, {"throughputMibps": 300}, {"size": None, "iops": 3000},
        {}, {"size": None}, {"size": 20}, {"size": 200, "name": "x"}, {"iops": 2999}, {"throughputMibps": True},
        {"size": 262_144}, {"size": 262_145}, None]),
    ("RestoreRequest", requests.restore, WITH_GROUP, [
        {"path": "a/b"}, {"path": "a", "vm": "vm1"}, {"path": "a", "vm": "vm1", "resourceGroup": "rg1"},
        {"path": "a", "resourceGroup": "rg1"}, {"path": "a", "vm": None, "resourceGroup": None},
        {"path": "/a"}, {"path": ""}, {"path": "a", "extra": 1}, {"vm": "vm1"}]),
    ("RestoreRequest", requests.restore, openapi.NO_DEFAULTS, [
        {"path": "a", "vm": "vm1"}, {"path": "a", "vm": "vm1", "resourceGroup": "rg1"}, {"path": "a"}]),
    ("AttachRequest", lambda body, defaults: requests.attach_vm("teamhome", body, defaults), WITH_GROUP, [
        {"vm": "vm1"}, {"vm": "vm1", "mountPoint": "/home/bob", "resourceGroup": "rg1"},
        {"vm": "vm1", "mountPoint": None}, {"vm": "vm1", "mountPoint": "/data/homes/bob"}, {"vm": None},
        {"vm": "vm1", "mountPoint": "/home/bob/x"}]),
    ("AttachRequest", lambda body, defaults: requests.attach_vm("teamhome", body, defaults), MORE_ROOTS, [
        {"vm": "vm1", "resourceGroup": "rg1", "mountPoint": "/data/homes/bob"}, {"vm": "vm1"}]),
    ("StorageAccessRequest", lambda body, _: requests.storage_access(body), WITH_GROUP, [
        {"owners": ["3fa85f64-5717-4562-b3fc-2c963f66afa6"], "members": []},
        {"owners": ["3FA85F64-5717-4562-B3FC-2C963F66AFA6"] * 2, "members": []},
        {"owners": [], "members": []}, {"owners": None, "members": []}, {"owners": ["x"], "members": []},
        {"owners": ["3fa85f64-5717-4562-b3fc-2c963f66afa6"] * 101, "members": []}, {"owners": []}]),
    ("DefaultStorageRequest", lambda body, _: requests.default_storage("rg1", body), WITH_GROUP, [
        {"storage": "teamhome"}, {"storage": "Team"}, {"storage": None}, {}, {"storage": "teamhome", "x": 1}]),
]


@pytest.mark.parametrize(("schema_name", "parse", "defaults", "bodies"), BODIES,
                         ids=[f"{name}-{i}" for i, (name, *_) in enumerate(BODIES)])
def test_each_body_schema_agrees_with_the_service(schema_name: str, parse: Any, defaults: requests.RequestDefaults,
                                                  bodies: list[Any]) -> None:
    """Cross-member rules included: provisionedV1's sizes and no IOPS, a subnet needs a VNet (unless
    the settings name one), guardSubnet needs vnet, a restore's resourceGroup goes with its vm."""
    schema = openapi.document(defaults)["components"]["schemas"][schema_name]
    for body in bodies:
        expected = service_verdict(lambda b: parse(b, defaults), body)
        assert accepts(schema, body, defaults) == expected, (body, "the service " + ("accepts" if expected
                                                                                        else "refuses"))


def test_a_size_asked_as_size_is_said_to_be_answered_as_size_gb() -> None:
    """Requests say `size` (what a person types: "100", "1TiB"); answers say `sizeGb` (a number
    of GiB): both names stay, and the document says so where a client writes one."""
    schemas = openapi.document()["components"]["schemas"]
    for request in ("CreateStorageRequest", "ResizeStorageRequest"):
        assert "answered as sizeGb" in json.dumps(schemas[request]["properties"]["size"]), request
    assert "sizeGb" in schemas["StorageInfo"]["properties"] and "size" not in schemas["StorageInfo"]["properties"]
