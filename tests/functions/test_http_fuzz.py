"""Arbitrary input at every HTTP function: bodies (bytes, JSON of any shape, near-valid objects),
query strings, route values and headers. Whatever arrives, the answer is JSON in the documented
shape for its status, never an exception or a 500, and a refused request records and queues
nothing."""

from __future__ import annotations

import json
from typing import Any

import azure.functions as func
import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import function_app
from functions import openapi
from local.host import FunctionIndex
from shared.bootstrap import Container
from shared.domain.models import Attachment, Redundancy, StorageAccess, StorageInfo, Tier, nfs_endpoint
from tests.conftest import DEFAULT_GROUP, Client, object_id
from tests.fakes import FakeClock

INDEX = FunctionIndex(function_app.app)
ROUTES = {route.name: route for route in INDEX.http_routes}
DOCUMENT = openapi.document()
ALLOWED = {200, 201, 202, 204, 400, 401, 403, 404, 409}

names = st.one_of(st.sampled_from(["teamhome", "vm1", "rg1", "6e0b3f2a-5a43-4b7e-9a57-3f0c2d7d1c11"]),
                  st.text(min_size=1, max_size=40).filter(lambda s: "/" not in s))
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=12)
known_members = st.sampled_from(["name", "resourceGroup", "region", "tier", "redundancy", "size", "vm",
                                 "mountPoint"])
member_values = st.one_of(json_values, st.sampled_from(
    ["teamhome", "rg1", "eastus", "Premium", "Standard", "LRS", "ZRS", "100GiB", "1TB", 100, "vm1",
     "/home/azureuser", "/etc", "/home/a;b"]))
objects = st.dictionaries(known_members | st.text(max_size=12), member_values, max_size=6)
bodies = st.one_of(
    st.just(b""), st.binary(max_size=200),
    json_values.map(lambda v: json.dumps(v).encode()),
    objects.map(lambda v: json.dumps(v).encode()))
query_keys = st.sampled_from(["resourceGroup", "force", "mode", "verify", "ready", "$top", "$skipToken",
                              "code"]) | st.text(max_size=10)
query_values = st.sampled_from(["true", "false", "copy", "restore", "rg1", "5", "0", ""]) | st.text(max_size=30)
queries = st.dictionaries(query_keys, query_values, max_size=4)
keys = st.one_of(st.just({}), st.fixed_dictionaries({"Idempotency-Key": st.text(max_size=40)}),
                 st.fixed_dictionaries({"Idempotency-Key": st.sampled_from(["k1", "k2"])}))
# Mostly alice's token, so requests reach the services; else no token, or one that is no token.
ALICE = object()
tokens = st.one_of(st.just(ALICE), st.just(ALICE), st.just(ALICE), st.just(None),
                   st.text(max_size=60), st.sampled_from(["Bearer", "Bearer x.y.z", "Basic YWxpY2U6cA=="]))


def documented_schema(route_name: str, status: int) -> tuple[str, dict[str, Any]]:
    """The media type and schema the OpenAPI document gives for that answer."""
    for path_item in DOCUMENT["paths"].values():
        for operation in path_item.values():
            if operation["operationId"] == route_name:
                response = operation["responses"].get(str(status))
                assert response is not None, f"{route_name} answered {status}, which it does not document"
                contents = response.get("content", {})
                assert len(contents) == 1, f"{route_name} {status} documents no single media type"
                media, content = next(iter(contents.items()))
                return media, content["schema"]
    raise AssertionError(f"{route_name} is not in the OpenAPI document")


def count_recorded(app: Container) -> tuple[int, int]:
    operations = sum(1 for _ in app.state.table("Operations").list_entities())
    queued = app.queue.client.get_queue_properties().approximate_message_count
    return operations, queued


@pytest.fixture
def seeded(app: Container, clock: FakeClock) -> Container:
    """Some recorded state so that valid-looking requests reach deeper code paths."""
    app.storages.save(StorageInfo("teamhome", DEFAULT_GROUP, "eastus", Tier.PREMIUM, Redundancy.LRS, 100,
                                  nfs_endpoint("teamhome"), clock.now()))
    app.access_records.add(StorageAccess("teamhome", owners=(object_id("alice"),)))
    app.attachments.add(Attachment("teamhome", "vm1", DEFAULT_GROUP, "/home/azureuser", clock.now()))
    return app


@pytest.mark.parametrize("route_name", sorted(ROUTES))
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_request_gets_a_documented_json_answer(seeded: Container, route_name: str, data: st.DataObject) -> None:
    route = ROUTES[route_name]
    params = {name: data.draw(names, label=name) for name in route.pattern.groupindex}
    method = sorted(route.methods)[0]
    query = data.draw(queries, label="query")
    body = data.draw(bodies, label="body") if method in ("POST", "PUT", "PATCH") else b""
    before = count_recorded(seeded)

    headers = dict(data.draw(keys, label="headers"))
    token = data.draw(tokens, label="token")
    if token is ALICE:
        assert Client.alice is not None
        headers["Authorization"] = f"Bearer {Client.alice()}"
    elif token is not None:
        headers["Authorization"] = str(token)
    request = func.HttpRequest(method, f"https://azlin.test/api/{route.template}", params=query,
                               route_params=params, headers=headers, body=body)
    response = route.function(request)

    assert response.status_code in ALLOWED, response.get_body()[:500]
    if response.status_code == 204:
        assert response.get_body() == b"" and "204" in DOCUMENT["paths"]["/api/" + route.template][
            method.lower()]["responses"]
        return
    media, schema = documented_schema(route_name, response.status_code)
    assert response.mimetype == media
    answer = json.loads(response.get_body()) if media == "application/json" else response.get_body().decode()
    jsonschema.validate(answer, {**schema, "components": DOCUMENT["components"]})
    if response.status_code >= 400:
        assert count_recorded(seeded) == before, "a refused request changed recorded state"
