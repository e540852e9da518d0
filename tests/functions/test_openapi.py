"""The OpenAPI document: valid OpenAPI 3.1, and exactly the registered routes."""

from __future__ import annotations

import re

from openapi_spec_validator import validate

from functions import openapi
from local.host import FunctionIndex
from tests.conftest import Client


def test_the_document_is_valid_openapi() -> None:
    validate(openapi.document())


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


def test_it_is_served(api: Client) -> None:
    answer = api.get("/api/openapi.json")
    assert answer.status == 200 and answer.json() == openapi.document()


def test_a_size_asked_as_size_is_said_to_be_answered_as_size_gb() -> None:
    """Requests say `size` (what a person types: "100", "1TiB"); answers say `sizeGb` (a number
    of GiB): both names stay, and the document says so where a client writes one."""
    schemas = openapi.document()["components"]["schemas"]
    for request in ("CreateStorageRequest", "ResizeStorageRequest"):
        assert "answered as sizeGb" in schemas[request]["properties"]["size"]["description"], request
    assert "sizeGb" in schemas["StorageInfo"]["properties"] and "size" not in schemas["StorageInfo"]["properties"]
