"""The emulator as the tenant and as Resource Manager's authorization: sign-in endpoints and their
refusals, tokens Resource Manager refuses, role assignments (built-in and custom roles, NotActions,
inheritance, groups), deny assignments, linked checks, the permissions API and role assignment
filters, and Event Grid events that name who wrote a resource. Rules and messages are Azure's
(sources in local/emulator/tenant.py and authorization.py)."""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.parse
import urllib.request
import uuid
from typing import Any

import pytest
from azure.core.exceptions import ClientAuthenticationError
from azure.identity import ClientSecretCredential, OnBehalfOfCredential

from local import identities, playground
from local.emulator.tenant import ARM_SCOPE, TOKEN_EXCHANGE
from local.rest import ArmRequestError
from tests.conftest import SUBSCRIPTION, arm_as
from tests.emulator.conftest import REGION, Azure

DEFINITIONS = f"/subscriptions/{SUBSCRIPTION}/providers/Microsoft.Authorization/roleDefinitions"


def sign_in(azure: Azure, route: str, form: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    url = f"{azure.local.url}/{azure.emulator.tenant.tenant_id}/{route}"
    data = None if form is None else urllib.parse.urlencode(form).encode()
    context = ssl.create_default_context(cafile=str(azure.local.ca_path))
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=data), context=context) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as refused:
        return refused.code, json.loads(refused.read())


def user(azure: Azure, *roles: tuple[str, str], groups: tuple[str, ...] = ()) -> str:
    name = "u" + uuid.uuid4().hex[:8]
    identities.person(azure.emulator, name, roles=roles, groups=groups)
    return name


def refused(call: Any) -> ArmRequestError:
    with pytest.raises(ArmRequestError) as caught:
        call()
    return caught.value


def test_the_tenant_publishes_its_configuration_and_keys(azure: Azure) -> None:
    status, config = sign_in(azure, "v2.0/.well-known/openid-configuration")
    tenant = azure.emulator.tenant
    assert status == 200 and config["issuer"] == f"{azure.local.url}/{tenant.tenant_id}/v2.0"
    assert config["jwks_uri"] == f"{azure.local.url}/{tenant.tenant_id}/discovery/v2.0/keys"
    status, keys = sign_in(azure, "discovery/v2.0/keys")
    (key,) = keys["keys"]
    assert status == 200 and (key["kty"], key["use"]) == ("RSA", "sig") and key["kid"] and key["n"] and key["e"]


def test_client_credentials_and_on_behalf_of_through_azure_identity(azure: Azure) -> None:
    """The product's own credentials against the tenant: a secret, a federated assertion, and the
    on-behalf-of exchange with it, as azure-identity sends them."""
    tenant, ca = azure.emulator.tenant, str(azure.local.ca_path)
    app = identities.register(azure.emulator, SUBSCRIPTION)
    options: dict[str, Any] = {"authority": azure.local.url, "disable_instance_discovery": True,
                               "connection_verify": ca}
    credential = ClientSecretCredential(tenant.tenant_id, app.app_client_id, app.app_secret, **options)
    assertion = credential.get_token(f"{TOKEN_EXCHANGE}/.default").token
    assert tenant.decode(assertion)["sub"] == app.app_object_id
    alice = tenant.get("alice")
    for_api = tenant.token(alice, f"api://{app.api_client_id}/.default")
    obo = OnBehalfOfCredential(tenant.tenant_id, app.api_client_id, user_assertion=for_api,
                               client_assertion_func=lambda: assertion, **options)
    claims = tenant.decode(obo.get_token(ARM_SCOPE).token, audiences=("https://management.azure.com/",))
    assert (claims["oid"], claims["scp"], claims["appid"]) == (alice.object_id, "user_impersonation",
                                                                app.api_client_id)
    wrong = ClientSecretCredential(tenant.tenant_id, app.app_client_id, "not-the-secret", **options)
    with pytest.raises(ClientAuthenticationError, match="AADSTS7000215"):
        wrong.get_token(ARM_SCOPE)


def test_the_token_endpoint_refuses_as_entra_id_does(azure: Azure) -> None:
    tenant = azure.emulator.tenant
    app = identities.register(azure.emulator, SUBSCRIPTION)
    api_scope = f"api://{app.api_client_id}/.default"
    assertion = tenant.token(tenant.get(identities.APP_IDENTITY), f"{TOKEN_EXCHANGE}/.default")
    client = {"client_id": app.api_client_id, "client_assertion": assertion,
              "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}
    obo = {**client, "grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer",
           "requested_token_use": "on_behalf_of", "scope": ARM_SCOPE}
    app_only = tenant.token(tenant.get(identities.APP_IDENTITY), api_scope)
    status, body = sign_in(azure, "oauth2/v2.0/token", {**obo, "assertion": app_only})
    assert (status, body["error"], body["error_codes"]) == (400, "invalid_grant", [7000114])
    for_arm = tenant.token(tenant.get("alice"), ARM_SCOPE)  # another audience than the API
    status, body = sign_in(azure, "oauth2/v2.0/token", {**obo, "assertion": for_arm})
    assert (status, body["error_codes"]) == (400, [500131])
    stranger = tenant.add("ServicePrincipal", "stranger-" + uuid.uuid4().hex[:6], secret="x")
    untrusted = tenant.token(stranger, f"{TOKEN_EXCHANGE}/.default")
    status, body = sign_in(azure, "oauth2/v2.0/token", {**obo, "client_assertion": untrusted,
                                                       "assertion": tenant.token(tenant.get("alice"), api_scope)})
    assert (status, body["error"], body["error_codes"]) == (401, "invalid_client", [70021])
    status, body = sign_in(azure, "oauth2/v2.0/token", {**client, "grant_type": "password", "scope": ARM_SCOPE})
    assert (status, body["error"]) == (400, "unsupported_grant_type")


def test_resource_manager_refuses_tokens_it_cannot_accept(azure: Azure) -> None:
    tenant, alice = azure.emulator.tenant, azure.emulator.tenant.get("alice")
    app = identities.register(azure.emulator, SUBSCRIPTION)
    cases = {
        "ExpiredAuthenticationToken": tenant.token(alice, ARM_SCOPE, lifetime=-1),
        "InvalidAuthenticationTokenAudience": tenant.token(alice, f"api://{app.api_client_id}/.default"),
        "InvalidAuthenticationTokenTenant": tenant.token(alice, ARM_SCOPE, overrides={"tid": str(uuid.uuid4())}),
        "InvalidAuthenticationToken": "a.b.c",
    }
    for code, token in cases.items():
        rest = arm_as(azure.local)
        rest.token = lambda token=token: token  # type: ignore[misc]
        error = refused(lambda rest=rest: rest.get(azure.group_path()))
        assert (error.status, error.code) == (401, code)


def test_roles_grant_by_scope_and_group_with_not_actions_and_azures_messages(azure: Azure) -> None:
    group = azure.group_path()
    team = "g" + uuid.uuid4().hex[:8]
    reader = user(azure, ("Reader", group), groups=(team,))
    rest = arm_as(azure.local, reader)
    assert rest.get(group)["name"] == azure.group  # Reader: */read
    error = refused(lambda: playground.network(rest, azure.group, "v1", REGION))
    principal = azure.emulator.tenant.get(reader)
    assert (error.status, error.code) == (403, "AuthorizationFailed")
    assert str(error).endswith(
        f"The client '{reader}@azlin.example' with object id '{principal.object_id}' does not have authorization "
        f"to perform action 'Microsoft.Network/virtualNetworks/write' over scope '{group}/providers/"
        "Microsoft.Network/virtualNetworks/v1' or the scope is invalid. If access was recently granted, please "
        "refresh your credentials.")
    azure.emulator.authorization.assign(group, azure.emulator.tenant.get(team).object_id, "Contributor")
    playground.network(rest, azure.group, "v1", REGION)  # through the group's role
    assignment = f"{group}/providers/Microsoft.Authorization/roleAssignments/{uuid.uuid4()}"
    owner = arm_as(azure.local)
    reader_role = owner.get(f"{DEFINITIONS}?$filter=roleName eq 'Reader'")["value"][0]["id"]
    body = {"properties": {"roleDefinitionId": reader_role, "principalId": principal.object_id}}
    error = refused(lambda: rest.put(assignment, body))  # Contributor's NotActions
    assert error.code == "AuthorizationFailed" and "Microsoft.Authorization/roleAssignments/write" in str(error)
    duplicate = refused(lambda: owner.put(assignment, body))
    assert (duplicate.status, duplicate.code) == (409, "RoleAssignmentExists")
    missing = refused(lambda: owner.put(assignment, {"properties": {"roleDefinitionId": reader_role,
                                                                     "principalId": str(uuid.uuid4())}}))
    assert missing.code == "PrincipalNotFound"


def test_linked_checks_and_deny_assignments(azure: Azure) -> None:
    subnet = azure.network("vnet-a")
    other_group = "rg-" + uuid.uuid4().hex[:8]
    owner = arm_as(azure.local)
    owner.put(owner.group_path(other_group), {"location": REGION})
    nic_maker = user(azure, ("Contributor", owner.group_path(other_group)))
    rest = arm_as(azure.local, nic_maker)
    error = refused(lambda: rest.put(f"{owner.group_path(other_group)}/providers/Microsoft.Network/networkInterfaces/n1",
                                     {"location": REGION, "properties": {"ipConfigurations": [
                                         {"name": "c", "properties": {"subnet": {"id": subnet}}}]}}))
    assert (error.status, error.code) == (403, "LinkedAuthorizationFailed")
    assert ("does not have permission to perform action 'Microsoft.Network/virtualNetworks/subnets/join/action' "
            f"on the linked scope(s) '{subnet}'") in str(error)

    frozen = user(azure, ("Contributor", azure.group_path()))
    excepted = user(azure, ("Contributor", azure.group_path()))
    azure.emulator.authorization.deny(azure.group_path(), ["Microsoft.Network/*/write"], ["*"],
                                      exclude=[excepted], name="network freeze")
    denied = refused(lambda: playground.network(arm_as(azure.local, frozen), azure.group, "v2", REGION))
    assert (denied.status, denied.code) == (403, "DenyAssignmentAuthorizationFailed")
    assert "because of the deny assignment with name 'network freeze'" in str(denied)
    playground.network(arm_as(azure.local, excepted), azure.group, "v3", REGION, space="10.3.0.0/16",
                       subnet="10.3.0.0/24")
    owner.delete(owner.group_path(other_group))


def test_permissions_and_role_assignment_filters_answer_as_the_api_does(azure: Azure) -> None:
    group = azure.group_path()
    team = "g" + uuid.uuid4().hex[:8]
    member = user(azure, ("Reader", group), groups=(team,))
    team_id = azure.emulator.tenant.get(team).object_id
    member_id = azure.emulator.tenant.get(member).object_id
    azure.emulator.authorization.assign(group, team_id, "Virtual Machine Contributor")
    mine = arm_as(azure.local, member).get(f"{group}/providers/Microsoft.Authorization/permissions")["value"]
    assert ["*/read"] in [block["actions"] for block in mine] and len(mine) == 2  # one block per role
    nobody = user(azure)
    error = refused(lambda: arm_as(azure.local, nobody).get(f"{group}/providers/Microsoft.Authorization/permissions"))
    assert (error.status, error.code) == (403, "AuthorizationFailed")  # needs permissions/read

    owner = arm_as(azure.local)
    listing = f"{group}/providers/Microsoft.Authorization/roleAssignments"

    def principals(filter_: str) -> set[str]:
        return {a["properties"]["principalId"] for a in owner.get(f"{listing}?$filter={filter_}")["value"]}

    assert principals(f"atScope() and assignedTo('{member_id}')") == {member_id, team_id}  # groups too
    assert principals(f"principalId eq '{member_id}'") == {member_id}
    assert refused(lambda: owner.get(f"{listing}?$filter=atScope() and principalId eq '{member_id}'")).code == (
        "UnsupportedQuery")
    assert refused(lambda: owner.get(f"{listing}?$filter=assignedTo('{team_id}')")).code == "UnsupportedQuery"


def test_events_name_the_writer_and_the_assignment_that_allowed_it(azure: Azure) -> None:
    team = "g" + uuid.uuid4().hex[:8]
    writer = user(azure, groups=(team,))
    azure.emulator.authorization.assign(azure.group_path(), azure.emulator.tenant.get(team).object_id,
                                        "Network Contributor")
    vnet = playground.network(arm_as(azure.local, writer), azure.group, "evented", REGION).rsplit("/subnets/", 1)[0]
    azure.emulator.events.flush()
    (event,) = [e for e in azure.emulator.events.published
                if e["subject"].lower() == vnet.lower() and e["data"]["operationName"].endswith("/write")]
    claims, evidence = event["data"]["claims"], event["data"]["authorization"]["evidence"]
    principal = azure.emulator.tenant.get(writer)
    assert claims["http://schemas.microsoft.com/identity/claims/objectidentifier"] == principal.object_id
    assert claims["http://schemas.xmlsoap.org/ws/2005/05/identity/claims/upn"] == f"{writer}@azlin.example"
    assert (evidence["role"], evidence["principalType"]) == ("Network Contributor", "Group")
    assert evidence["principalId"] == azure.emulator.tenant.get(team).object_id.replace("-", "")


def test_a_monitor_is_authorized_at_the_operations_resource_group(azure: Azure) -> None:
    vnet = azure.network(azure.unique("tracked")).rsplit("/subnets/", 1)[0]
    on_resource_only = user(azure, ("Network Contributor", vnet))
    on_group = user(azure, ("Network Contributor", azure.group_path()))
    started = arm_as(azure.local, on_resource_only).call("DELETE", vnet)
    monitor = started.headers.get("Azure-AsyncOperation") or started.headers["Location"]
    assert started.status == 202 and "/resourceGroups/" not in monitor  # the URL names no group

    error = refused(lambda: arm_as(azure.local, on_resource_only).call("GET", monitor))
    assert (error.status, error.code) == (403, "AuthorizationFailed")
    assert f"over scope '{azure.group_path()}'" in str(error)  # started it, cannot track it
    arm_as(azure.local, on_group).wait(started)  # the group's role may track it
    assert refused(lambda: azure.rest.get(vnet)).status == 404


def test_a_delete_lock_stops_deletes_until_someone_allowed_to_lift_it_does(azure: Azure) -> None:
    # lock-resources.md: CanNotDelete refuses deletes of the resource and of what holds it (409
    # ScopeLocked); ReadOnly refuses writes too; Contributor may not remove a lock (its NotActions
    # hold Microsoft.Authorization/*/Delete), an Owner may.
    group = azure.group_path()
    owner = arm_as(azure.local)
    vnet = f"{group}/providers/Microsoft.Network/virtualNetworks/locked"
    playground.network(owner, azure.group, "locked", REGION)
    lock = f"{vnet}/providers/Microsoft.Authorization/locks/keep"
    owner.put(lock, {"properties": {"level": "CanNotDelete", "notes": "homes"}})
    assert owner.get(lock)["properties"]["level"] == "CanNotDelete"
    for target in (vnet, group):
        error = refused(lambda target=target: owner.delete(target))
        assert (error.status, error.code) == (409, "ScopeLocked"), target
    contributor = user(azure, ("Contributor", group))
    error = refused(lambda: arm_as(azure.local, contributor).delete(lock))
    assert (error.status, error.code) == (403, "AuthorizationFailed")
    owner.put(lock, {"properties": {"level": "ReadOnly"}})
    body = owner.get(vnet)
    error = refused(lambda: owner.put(vnet, {"location": body["location"], "properties": body["properties"]}))
    assert error.code == "ScopeLocked"
    owner.delete(lock)
    owner.delete(vnet)  # no lock, no refusal
