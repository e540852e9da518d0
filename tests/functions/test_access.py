"""Access control end to end: every request acts as its caller. Tokens from the emulator's tenant,
the HTTP functions, the queue, the worker, and Resource Manager (the emulator), which answers what
each caller may do from real role and deny assignments and refuses the app's identity anything
beyond infra/'s roles."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from local import identities, playground
from local.emulator.tenant import ARM_SCOPE
from local.rest import ArmRest
from shared.domain.models import StorageAccess
from shared.domain.provisioning import DEFAULT_SUBNET, DEFAULT_VNET
from tests.conftest import ADMIN, SUBSCRIPTION, Client, arm_as, managed_group, object_id
from tests.emulator.conftest import needs_sandbox
from tests.fakes import FakeClock
from tests.functions.conftest import REGION, Stack, unique
from tests.functions.test_attachments import HOME, deliver_events_about, run
from tests.functions.test_reconcile import reconcile

Person = Callable[..., Client]
pytestmark = needs_sandbox


@pytest.fixture
def person(stack: Stack) -> Person:
    """person(role=..., scope=..., groups=...) -> the API as a new user of the tenant, who holds
    that role (if any) at that scope."""
    def make(role: str | None = None, scope: str | None = None, groups: tuple[str, ...] = ()) -> Client:
        name = "user-" + uuid.uuid4().hex[:8]
        roles = [(role, scope or stack.rest.group_path(stack.group))] if role else []
        identities.person(stack.azure.emulator, name, groups=groups, roles=roles)
        client = Client(stack.api.index, identities.token_source(stack.azure.emulator, name))
        client.name = name  # type: ignore[attr-defined]
        return client

    return make


def who(client: Client) -> str:
    return str(client.name)  # type: ignore[attr-defined]


def arm(stack: Stack, client: Client) -> ArmRest:
    return arm_as(stack.azure, who(client))


def error(answer: Any, status: int, code: str) -> dict[str, Any]:
    assert answer.status == status, answer
    body: dict[str, Any] = answer.json()["error"]
    assert body["code"] == code, body
    return body


def subnet(stack: Stack) -> str:
    return f"{playground.providers(stack.rest, stack.group)}/Microsoft.Network/virtualNetworks/{DEFAULT_VNET}/subnets/{DEFAULT_SUBNET}"


def vm_path(stack: Stack, name: str) -> str:
    return f"{playground.providers(stack.rest, stack.group)}/Microsoft.Compute/virtualMachines/{name}"


def recorded(stack: Stack) -> tuple[int, int]:
    """Operations recorded and messages queued: a refusal adds to neither."""
    operations = sum(1 for _ in stack.app.state.table("Operations").list_entities())
    return operations, stack.app.queue.client.get_queue_properties().approximate_message_count


@pytest.fixture
def storage(stack: Stack) -> str:
    """Alice's storage, and alice's VM vm1 on the storage's network."""
    name = unique()
    created = stack.create(name)
    assert created["status"] == "Succeeded", created
    assert created["requestedBy"] == {"objectId": object_id(ADMIN), "name": "alice@azlin.example", "kind": "User"}
    playground.vm(stack.rest, stack.group, "vm1", subnet(stack), REGION)
    return name


def test_every_route_but_health_and_the_document_needs_a_valid_token(stack: Stack) -> None:
    tenant, api_app = stack.azure.emulator.tenant, stack.azure.emulator.tenant.get(identities.API_APP)
    alice = tenant.get(ADMIN)
    api_scope = f"api://{api_app.app_id}/.default"
    claims = jwt.decode(tenant.token(alice, api_scope), options={"verify_signature": False})
    forger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    header = jwt.get_unverified_header(tenant.token(alice, api_scope))
    bad = {
        "none": None,
        "not a bearer": "Basic YWxpY2U6c2VjcmV0",
        "not a JWT": "Bearer not-a-token",
        "expired": f"Bearer {tenant.token(alice, api_scope, lifetime=-120)}",
        "for Resource Manager": f"Bearer {tenant.token(alice, ARM_SCOPE)}",
        "forged": "Bearer " + jwt.encode(claims, forger, algorithm="RS256", headers={"kid": header["kid"]}),
        "HS256": "Bearer " + jwt.encode(claims, "a-shared-secret-that-is-long-enough!", algorithm="HS256"),
        "another scope": f"Bearer {tenant.token(alice, api_scope, overrides={'scp': 'Files.Read'})}",
        "another tenant": f"Bearer {tenant.token(alice, api_scope, overrides={'tid': str(uuid.uuid4())})}",
        "an app's token with scp": f"Bearer {tenant.token(alice, api_scope, overrides={'idtyp': 'app'})}",
    }
    before = recorded(stack)
    for route in stack.api.index.http_routes:
        if route.template in ("health", "openapi.json"):
            continue
        path = "/api/" + route.template.replace("{name}", "teamhome").replace("{vm}", "vm1").replace(
            "{group}", stack.group).replace("{id}", str(uuid.uuid4()))
        for method in route.methods:
            for why, value in bad.items():
                headers = {"Authorization": value} if value else {}
                answer = Client(stack.api.index, anonymous=True).call(method, path, {"name": "x"}, headers=headers)
                body = error(answer, 401, "Unauthenticated")
                assert answer.headers["WWW-Authenticate"].startswith('Bearer realm="azlin-storage"'), (why, path)
                assert ('error="invalid_token"' in answer.headers["WWW-Authenticate"]) == (value is not None)
                assert body["message"] and "Traceback" not in answer.body.decode()
    assert recorded(stack) == before  # nothing recorded, nothing queued
    assert Client(stack.api.index, anonymous=True).get("/api/health").status == 200


def test_bob_without_a_role_can_do_nothing_to_alices_storage(stack: Stack, storage: str, person: Person) -> None:
    bob = person()
    before = recorded(stack)
    group = stack.rest.group_path(stack.group)
    refused = error(bob.post("/api/storage", {"name": unique(), "resourceGroup": stack.group}), 403,
                    "AuthorizationFailed")
    assert refused["message"] == (f"You may not perform 'Microsoft.Storage/storageAccounts/write' over scope "
                                  f"'{group}'.")
    assert error(bob.get(f"/api/storage/{storage}"), 403, "AuthorizationFailed")["message"] == (
        f"You may not read storage {storage}.")
    assert "Microsoft.Storage/storageAccounts/read" in error(bob.get(f"/api/storage/{storage}/status"), 403,
                                                             "AuthorizationFailed")["causes"][0]
    error(bob.get(f"/api/storage/{storage}/cloud-init"), 403, "AuthorizationFailed")
    assert bob.get("/api/storage", query={"resourceGroup": stack.group}).json() == {"value": []}
    attach = error(bob.post(f"/api/storage/{storage}/attachments", {"vm": "vm1", "resourceGroup": stack.group}),
                   403, "NotAMember")
    assert who(bob) in attach["causes"][0] and f"/api/storage/{storage}/access" in attach["try"]
    detach = error(bob.delete("/api/vms/vm1/attachment", query={"resourceGroup": stack.group}), 403,
                   "AuthorizationFailed")
    assert "Microsoft.Compute/virtualMachines/runCommands/write" in detach["message"]
    assert error(bob.delete(f"/api/storage/{storage}"), 403, "NotAnOwner")["message"] == (
        f"Only an owner of storage {storage} may delete it.")
    error(bob.patch(f"/api/storage/{storage}", {"size": 200}), 403, "NotAnOwner")
    error(bob.get(f"/api/storage/{storage}/access"), 403, "NotAnOwner")
    error(bob.put(f"/api/resource-groups/{stack.group}/default-storage", {"storage": storage}), 403, "NotAnOwner")
    error(bob.get("/api/operations", query={"storage": storage}), 403, "AuthorizationFailed")
    error(bob.get("/api/costs", query={"resourceGroup": stack.group}), 403, "AuthorizationFailed")
    assert recorded(stack) == before  # refusals record and queue nothing


def test_a_member_attaches_only_a_vm_azure_lets_him_run_commands_on(
    stack: Stack, storage: str, person: Person
) -> None:
    bob = person()
    playground.vm(stack.rest, stack.group, "bobvm", subnet(stack), REGION)  # made for him by alice
    stack.azure.emulator.authorization.assign(vm_path(stack, "bobvm"), object_id(who(bob)),
                                              "Virtual Machine Contributor")
    attach_his = {"vm": "bobvm", "resourceGroup": stack.group}
    error(bob.post(f"/api/storage/{storage}/attachments", attach_his), 403, "NotAMember")

    access = stack.api.get(f"/api/storage/{storage}/access").json()
    assert access["owners"] == [object_id(ADMIN)] and access["members"] == []
    made = stack.api.put(f"/api/storage/{storage}/access", {"owners": access["owners"],
                                                            "members": [object_id(who(bob))]})
    assert made.status == 200 and made.json()["updatedBy"]["objectId"] == object_id(ADMIN)

    attached = stack.run(bob.post(f"/api/storage/{storage}/attachments", attach_his))
    assert attached["status"] == "Succeeded", attached
    assert attached["requestedBy"]["objectId"] == object_id(who(bob))
    assert run(stack, "bobvm", f"findmnt -n -o SOURCE {HOME}")["output"].strip().endswith(f"/{storage}/home")
    assert bob.get(f"/api/storage/{storage}").status == 200  # a member reads it

    on_alices = error(bob.post(f"/api/storage/{storage}/attachments", {"vm": "vm1", "resourceGroup": stack.group}),
                      403, "AuthorizationFailed")
    assert on_alices["message"] == ("You may not perform 'Microsoft.Compute/virtualMachines/runCommands/write' over "
                                    f"scope '{vm_path(stack, 'vm1')}'.")
    error(bob.delete(f"/api/storage/{storage}"), 403, "NotAnOwner")
    error(bob.put(f"/api/storage/{storage}/access", {"owners": [object_id(who(bob))], "members": []}), 403,
          "NotAnOwner")
    # The owner may evict his VM; the owners and the last owner stay.
    error(stack.api.put(f"/api/storage/{storage}/access", {"owners": [], "members": []}), 409, "LastOwner")
    evicted = stack.run(stack.api.delete("/api/vms/bobvm/attachment", query={"resourceGroup": stack.group}))
    assert evicted["status"] == "Succeeded" and evicted["storage"] == storage, evicted
    assert stack.api.get(f"/api/storage/{storage}/access").json()["owners"] == [object_id(ADMIN)]


def test_a_member_through_a_group_and_the_access_requests_rules(stack: Stack, storage: str, person: Person) -> None:
    team = "team-" + uuid.uuid4().hex[:6]
    carol = person(groups=(team,))
    team_id = stack.azure.emulator.tenant.get(team).object_id
    assert carol.get(f"/api/storage/{storage}").status == 403
    for bad in ({"owners": ["alice"], "members": []}, {"owners": [], "members": [], "extra": 1},
                {"owners": [object_id(ADMIN)], "members": [object_id(ADMIN)]}, {"owners": object_id(ADMIN)},
                {"owners": [object_id(ADMIN)] * 101, "members": []}):
        error(stack.api.put(f"/api/storage/{storage}/access", bad), 400, "ValidationError")
    changed = stack.api.put(f"/api/storage/{storage}/access", {"owners": [object_id(ADMIN).upper()],
                                                                "members": [team_id]}).json()
    assert (changed["owners"], changed["members"]) == ([object_id(ADMIN)], [team_id])
    assert carol.get(f"/api/storage/{storage}").status == 200  # her token lists the group


def test_a_vm_written_by_someone_who_may_not_join_is_never_touched(
    stack: Stack, storage: str, person: Person, clock: FakeClock
) -> None:
    bob = person("Virtual Machine Contributor")  # may write VMs in the group, not join the storage
    bobs = arm(stack, bob)
    playground.vm(bobs, stack.group, "bob1", subnet(stack), REGION, tags={"azlin-storage": storage})
    assert deliver_events_about(stack, "bob1") == 1
    assert stack.pump.drain() == 0  # nothing queued
    assert stack.api.get("/api/vms/bob1/attachment", query={"resourceGroup": stack.group}).status == 404
    assert not [e for e in stack.log.snapshot() if "/virtualMachines/bob1/runCommands" in e.path]
    listed = stack.api.get("/api/operations", query={"storage": storage}).json()["value"]
    refused = [o for o in listed if o["target"] == f"vm/{stack.group}/bob1"]
    assert [(o["status"], o["error"]["code"], o["requestedBy"]["objectId"]) for o in refused] == [
        ("Failed", "NotAMember", object_id(who(bob)))]
    assert f"{who(bob)}@azlin.example" in refused[0]["error"]["message"]
    assert run(stack, "bob1", f"mountpoint -q {HOME} || echo local")["output"] == "local\n"

    members = {"owners": [object_id(ADMIN)], "members": [object_id(who(bob))]}
    assert stack.api.put(f"/api/storage/{storage}/access", members).status == 200
    clock.advance(1)
    playground.vm(bobs, stack.group, "bob2", subnet(stack), REGION, tags={"azlin-storage": storage})
    assert deliver_events_about(stack, "bob2") == 1
    for _ in range(10):
        if not stack.pump.drain():
            break
    attached = stack.api.get("/api/vms/bob2/attachment", query={"resourceGroup": stack.group})
    assert attached.status == 200 and attached.json()["storage"] == storage, attached
    newest = stack.api.get("/api/operations", query={"storage": storage, "$top": "1"}).json()
    assert newest["value"][0]["target"] == f"vm/{stack.group}/bob2" and "nextLink" in newest
    assert newest["value"][0]["requestedBy"]["objectId"] == object_id(who(bob))
    assert bob.get("/api/operations", query={"vm": "bob2", "resourceGroup": stack.group}).json()["value"]


def test_a_reader_of_one_group_sees_only_that_groups_storage_and_costs(stack: Stack, storage: str,
                                                                        person: Person) -> None:
    elsewhere = managed_group(stack.azure, REGION)
    other = unique()
    assert stack.create(other, resourceGroup=elsewhere)["status"] == "Succeeded"
    carol = person("Reader")  # on the test's group only
    listed = [s["name"] for s in carol.get("/api/storage").json()["value"]]
    assert storage in listed and other not in listed
    assert carol.get(f"/api/storage/{storage}/status").status == 200
    error(carol.get(f"/api/storage/{other}"), 403, "AuthorizationFailed")
    costs = carol.get("/api/costs").json()
    assert {s["resourceGroup"] for s in costs["storage"]} == {stack.group}
    assert {v["resourceGroup"] for v in costs["vms"]} <= {stack.group}
    error(carol.get("/api/costs", query={"resourceGroup": elsewhere}), 403, "AuthorizationFailed")
    everything = stack.api.get("/api/costs").json()  # alice reads the whole subscription
    assert {stack.group, elsewhere} <= {s["resourceGroup"] for s in everything["storage"]}
    stack.run(stack.api.delete(f"/api/storage/{other}"))
    stack.azure.emulator.authorization.drop_locks(stack.rest.group_path(elsewhere))
    stack.rest.delete(stack.rest.group_path(elsewhere))


def test_a_service_principal_acts_where_its_role_allows_and_a_deny_assignment_wins(
    stack: Stack, person: Person
) -> None:
    emulator = stack.azure.emulator
    # Two with the same role; one under a deny assignment (deny assignments are read once a scope
    # within five minutes, so it is in place before anyone asks).
    frozen = emulator.tenant.add("ServicePrincipal", "frozen-" + uuid.uuid4().hex[:6], secret="s3cret")
    emulator.authorization.assign(stack.rest.group_path(stack.group), frozen.object_id, "Contributor")
    emulator.authorization.deny(stack.rest.group_path(stack.group), ["Microsoft.Storage/storageAccounts/*"],
                                [frozen.object_id], name="storage freeze")
    robot = emulator.tenant.add("ServicePrincipal", "portal-" + uuid.uuid4().hex[:6], secret="s3cret")
    emulator.authorization.assign(stack.rest.group_path(stack.group), robot.object_id, "Contributor")
    portal = Client(stack.api.index, identities.token_source(emulator, robot.name))
    name = unique()
    made = stack.run(portal.post("/api/storage", {"name": name, "resourceGroup": stack.group}))
    assert made["status"] == "Succeeded", made
    assert made["requestedBy"] == {"objectId": robot.object_id, "name": robot.name, "kind": "ServicePrincipal"}
    assert portal.get(f"/api/storage/{name}/access").json()["owners"] == [robot.object_id]
    account = stack.arm(f"Microsoft.Storage/storageAccounts/{name}")
    assert account["tags"]["created-by"] == robot.object_id

    elsewhere = managed_group(stack.azure, REGION)
    refused = error(portal.post("/api/storage", {"name": unique(), "resourceGroup": elsewhere}), 403,
                    "AuthorizationFailed")
    assert elsewhere in refused["message"]
    as_frozen = Client(stack.api.index, identities.token_source(emulator, frozen.name))
    denied = error(as_frozen.post("/api/storage", {"name": unique(), "resourceGroup": stack.group}), 403,
                   "AuthorizationFailed")
    assert "the deny assignment 'storage freeze'" in denied["causes"][0]
    stack.azure.emulator.authorization.drop_locks(stack.rest.group_path(elsewhere))
    stack.rest.delete(stack.rest.group_path(elsewhere))


def test_the_apps_identity_is_refused_beyond_infras_roles(stack: Stack, storage: str) -> None:
    """A group the app does not manage (no role there): an attach fails naming the action."""
    unmanaged = "rg-" + uuid.uuid4().hex[:8]
    stack.rest.put(stack.rest.group_path(unmanaged), {"location": REGION})
    other_net = playground.network(stack.rest, unmanaged, "vnet", REGION, space="10.90.0.0/16",
                                   subnet="10.90.0.0/24")
    playground.vm(stack.rest, unmanaged, "away", other_net, REGION)
    operation = stack.run(stack.api.post(f"/api/storage/{storage}/attachments",
                                         {"vm": "away", "resourceGroup": unmanaged}))
    assert (operation["status"], operation["error"]["code"]) == ("Failed", "AuthorizationFailed")
    assert "it lacks 'Microsoft.Network/networkInterfaces/read'" in operation["error"]["message"]
    denied = [e for e in stack.log.snapshot() if e.status == 403]
    app = stack.azure.emulator.tenant.get(identities.APP_IDENTITY).object_id
    assert denied and all(e.caller == app for e in denied)
    stack.azure.emulator.authorization.drop_locks(stack.rest.group_path(unmanaged))
    stack.rest.delete(stack.rest.group_path(unmanaged))


def test_a_storage_name_is_its_creators(stack: Stack, storage: str, person: Person) -> None:
    carol = person("Contributor")  # may create storage in the group, like alice
    again = error(carol.post("/api/storage", {"name": storage, "resourceGroup": stack.group}), 403, "NotAnOwner")
    assert again["message"] == f"Only an owner of storage {storage} may create it again."
    claimed = unique()  # alice's create of it has begun: its owner is recorded before anything else
    stack.app.access_records.add(StorageAccess(claimed, owners=(object_id(ADMIN),)))
    error(carol.post("/api/storage", {"name": claimed, "resourceGroup": stack.group}), 403, "NotAnOwner")
    error(carol.delete(f"/api/storage/{claimed}", query={"resourceGroup": stack.group}), 403, "NotAnOwner")
    mine = stack.run(carol.post("/api/storage", {"name": unique(), "resourceGroup": stack.group}))
    assert mine["status"] == "Succeeded" and mine["requestedBy"]["objectId"] == object_id(who(carol))
    assert carol.get(f"/api/storage/{mine['params']['name']}/access").json()["owners"] == [object_id(who(carol))]


def test_a_member_who_may_write_but_not_run_commands_on_a_vm_does_not_get_it_attached(
    stack: Stack, storage: str, person: Person
) -> None:
    """Attaching runs a root script on the VM: writing a VM is not enough, as Azure sees it."""
    writer_role = "VM writer " + uuid.uuid4().hex[:6]
    stack.azure.emulator.authorization.define(writer_role, [
        "Microsoft.Compute/virtualMachines/write", "Microsoft.Compute/virtualMachines/read",
        "Microsoft.Network/networkInterfaces/*", "Microsoft.Network/virtualNetworks/read",
        "Microsoft.Network/virtualNetworks/subnets/join/action",
        "Microsoft.Compute/locations/*", "Microsoft.Network/locations/*",  # to track what it starts
    ], [f"/subscriptions/{SUBSCRIPTION}"])
    dana = person(writer_role)
    members = {"owners": [object_id(ADMIN)], "members": [object_id(who(dana))]}
    assert stack.api.put(f"/api/storage/{storage}/access", members).status == 200
    playground.vm(arm(stack, dana), stack.group, "dana1", subnet(stack), REGION, tags={"azlin-storage": storage})
    assert deliver_events_about(stack, "dana1") == 1 and stack.pump.drain() == 0
    (refused,) = [o for o in stack.api.get("/api/operations", query={"storage": storage}).json()["value"]
                  if o["target"] == f"vm/{stack.group}/dana1"]
    assert (refused["status"], refused["error"]["code"]) == ("Failed", "AuthorizationFailed")
    assert "Microsoft.Compute/virtualMachines/runCommands/write" in refused["error"]["causes"][0]
    assert not [e for e in stack.log.snapshot() if "/virtualMachines/dana1/runCommands" in e.path]


def test_a_tag_counts_as_asked_by_whoever_set_it_not_by_a_later_writer(
    stack: Stack, storage: str, person: Person, clock: FakeClock
) -> None:
    """bob tags his VM with alice's storage (refused); alice's later, unrelated write of that VM
    must not carry bob's tag through; alice's own tagging of a VM is hers."""
    bob = person("Virtual Machine Contributor")
    playground.vm(arm(stack, bob), stack.group, "bobx", subnet(stack), REGION, tags={"azlin-storage": storage})
    assert deliver_events_about(stack, "bobx") == 1
    playground.vm(stack.rest, stack.group, "bobx", subnet(stack), REGION,  # alice adds a cost tag
                  tags={"azlin-storage": storage, "cost-center": "42"})
    deliver_events_about(stack, "bobx")
    assert reconcile(stack)["attachQueued"] == []
    assert stack.api.get("/api/vms/bobx/attachment", query={"resourceGroup": stack.group}).status == 404
    refused = [o for o in stack.api.get("/api/operations", query={"storage": storage}).json()["value"]
               if o["target"] == f"vm/{stack.group}/bobx"]
    assert [(o["error"]["code"], o["requestedBy"]["objectId"]) for o in refused] == [
        ("NotAMember", object_id(who(bob)))]  # recorded once, naming bob

    playground.vm(arm(stack, bob), stack.group, "bobplain", subnet(stack), REGION)  # bob's, untagged
    assert deliver_events_about(stack, "bobplain") == 1 and stack.pump.drain() == 0  # asks for nothing
    playground.vm(stack.rest, stack.group, "bobplain", subnet(stack), REGION, tags={"azlin-storage": storage})
    deliver_events_about(stack, "bobplain")  # alice, an owner who may run commands on it, tags it
    for _ in range(10):
        if not stack.pump.drain():
            break
    attached = stack.api.get("/api/vms/bobplain/attachment", query={"resourceGroup": stack.group})
    assert attached.status == 200, attached
    operations = stack.api.get("/api/operations", query={"vm": "bobplain", "resourceGroup": stack.group}).json()
    assert operations["value"][0]["requestedBy"]["objectId"] == object_id(ADMIN)


def test_a_failed_create_frees_its_name_and_a_reused_name_shows_none_of_its_history(
    stack: Stack, person: Person
) -> None:
    carol = person("Contributor")
    name = unique()
    failed = stack.run(carol.post("/api/storage", {"name": name, "resourceGroup": stack.group,
                                                   "region": "nowhereland"}))
    assert failed["status"] == "Failed", failed  # Azure refuses the region: nothing is made
    assert stack.app.access_records.get(name) is None  # the name is not carol's for ever
    made = stack.create(name)  # alice takes the name
    assert made["status"] == "Succeeded", made
    assert stack.api.get(f"/api/storage/{name}/access").json()["owners"] == [object_id(ADMIN)]
    assert stack.delete_for_good(name)["status"] == "Succeeded"
    again = stack.run(carol.post("/api/storage", {"name": name, "resourceGroup": stack.group}))
    assert again["status"] == "Succeeded", again
    history = carol.get("/api/operations", query={"storage": name}).json()["value"]
    assert [o["id"] for o in history] == [again["id"]]  # alice's create and delete are not listed


def test_an_owner_through_a_group_repairs_the_storage(stack: Stack, storage: str, person: Person) -> None:
    team = "team-" + uuid.uuid4().hex[:6]
    erin = person("Contributor", groups=(team,))
    team_id = stack.azure.emulator.tenant.get(team).object_id
    assert stack.api.put(f"/api/storage/{storage}/access",
                         {"owners": [object_id(ADMIN), team_id], "members": []}).status == 200
    repaired = stack.run(erin.post("/api/storage", {"name": storage, "resourceGroup": stack.group}))
    assert repaired["status"] == "Succeeded", repaired
