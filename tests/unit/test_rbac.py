"""Azure RBAC as Azure evaluates it (shared/domain/rbac.py), and who wrote a VM, from its event."""

from __future__ import annotations

import pytest

from shared.domain.events import vm_written
from shared.domain.identity import PrincipalKind
from shared.domain.rbac import ALL_PRINCIPALS, Access, Denial, Grant, covers, matches

CONTRIBUTOR = Grant(("*",), ("Microsoft.Authorization/*/Delete", "Microsoft.Authorization/*/Write",
                             "Microsoft.Authorization/elevateAccess/Action"))


@pytest.mark.parametrize(("pattern", "action", "expected"), [
    ("*", "Microsoft.Storage/storageAccounts/write", True),
    ("*/read", "Microsoft.Compute/virtualMachines/read", True),
    ("*/read", "Microsoft.Compute/virtualMachines/write", False),
    ("Microsoft.Compute/virtualMachines/*", "Microsoft.Compute/virtualMachines/runCommands/write", True),
    ("Microsoft.Authorization/*/Write", "microsoft.authorization/roleassignments/write", True),  # any case
    ("Microsoft.Network/*/read", "Microsoft.Network/virtualNetworks/subnets/read", True),  # * spans /
    ("Microsoft.Storage/*", "Microsoft.StorageSync/storageSyncServices/read", False),  # not a prefix match
    ("Microsoft.Storage/storageAccounts/read", "Microsoft.Storage/storageAccounts/read/extra", False),
    ("Microsoft.Storage/storageAccounts.read", "Microsoft.Storage/storageAccountsXread", False),  # . is literal
])
def test_an_action_pattern_matches_as_azure_matches_it(pattern: str, action: str, expected: bool) -> None:
    assert matches(pattern, action) is expected


def test_a_scope_covers_itself_and_what_is_below_it_only() -> None:
    group = "/subscriptions/s/resourceGroups/rg1"
    assert covers("/subscriptions/s", group) and covers(group, group.upper())
    assert covers(group, group + "/providers/Microsoft.Compute/virtualMachines/vm1")
    assert not covers(group, "/subscriptions/s/resourceGroups/rg10")  # a segment, not a prefix of text
    assert not covers(group + "/providers/Microsoft.Compute/virtualMachines/vm1", group)
    assert covers("/", group)


def test_not_actions_subtract_within_their_role_only() -> None:
    assert CONTRIBUTOR.allows("Microsoft.Storage/storageAccounts/delete")
    assert not CONTRIBUTOR.allows("Microsoft.Authorization/roleAssignments/write")
    with_uaa = Access("/s", (CONTRIBUTOR, Grant(("Microsoft.Authorization/*",))))
    assert with_uaa.allows("Microsoft.Authorization/roleAssignments/write", {"me"})  # another role grants it


def test_a_deny_assignment_wins_for_its_principals_but_not_the_excluded() -> None:
    freeze = Denial("freeze", "/s/rg", ("Microsoft.Storage/*",), ("Microsoft.Storage/storageAccounts/read",),
                    frozenset({ALL_PRINCIPALS}), frozenset({"breakglass"}))
    access = Access("/s/rg", (Grant(("*",)),), (freeze,))
    assert not access.allows("Microsoft.Storage/storageAccounts/write", {"me", "my-group"})
    assert access.denial("Microsoft.Storage/storageAccounts/write", {"me"}) is freeze
    assert access.allows("Microsoft.Storage/storageAccounts/read", {"me"})  # the deny's own NotActions
    assert access.allows("Microsoft.Storage/storageAccounts/write", {"me", "breakglass"})  # excluded
    named = Denial("team", "/s/rg", ("*",), (), frozenset({"team-group"}), frozenset())
    assert Access("/s/rg", (Grant(("*",)),), (named,)).allows("x/y/write", {"someone-else"})
    assert not Access("/s/rg", (Grant(("*",)),), (named,)).allows("x/y/write", {"me", "team-group"})
    assert not Access("/s/rg", (), ()).allows("Microsoft.Storage/storageAccounts/read", {"me"})


WRITE = {"eventType": "Microsoft.Resources.ResourceWriteSuccess"}
VM = "/subscriptions/s/resourceGroups/rg1/providers/Microsoft.Compute/virtualMachines/vm1"


def event_data(claims: dict[str, str], evidence: dict[str, str] | None = None) -> dict[str, object]:
    return {"operationName": "Microsoft.Compute/virtualMachines/write", "resourceUri": VM, "claims": claims,
            "authorization": {"action": "Microsoft.Compute/virtualMachines/write", "scope": VM,
                              "evidence": evidence or {"role": "Subscription Admin"}}}


def test_the_writer_of_a_vm_is_read_from_its_events_claims_and_evidence() -> None:
    oid = "3f1c9a52-7d44-4b0e-9a6f-1b2c3d4e5f60"
    user = vm_written("e1", WRITE["eventType"], VM, event_data({
        "http://schemas.microsoft.com/identity/claims/objectidentifier": oid.upper(),
        "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/upn": "bob@contoso.example",
        "http://schemas.microsoft.com/identity/claims/scope": "user_impersonation"},
        {"role": "Contributor", "principalId": "9a8b7c6d5e4f40312a1b2c3d4e5f6071", "principalType": "Group"}))
    assert user is not None and user.writer is not None
    assert (user.writer.principal.object_id, user.writer.principal.name, user.writer.principal.kind) == (
        oid, "bob@contoso.example", PrincipalKind.USER)
    assert user.writer.identities == {oid, "9a8b7c6d-5e4f-4031-2a1b-2c3d4e5f6071"}  # dashes restored
    app = vm_written("e2", WRITE["eventType"], VM, event_data({"appid": "some-app", "oid": oid}))
    assert app is not None and app.writer is not None
    assert app.writer.principal.kind is PrincipalKind.SERVICE_PRINCIPAL and app.writer.principal.name == "some-app"
    nobody = vm_written("e3", WRITE["eventType"], VM, event_data({"oid": "not-a-guid"}))
    assert nobody is not None and nobody.writer is None  # unknown: never a member of anything


def test_a_deny_naming_a_group_applies_when_the_callers_groups_are_not_known() -> None:
    """A token without its groups (no groups claim, or too many of them), or an event's writer:
    the deny may name a group of theirs, so it is taken to apply; a deny naming only others'
    object ids when the groups are known does not."""
    team = Denial("team freeze", "/s/rg", ("*",), (), frozenset({"team-group"}), frozenset())
    access = Access("/s/rg", (Grant(("*",)),), (team,))
    assert access.allows("x/y/write", {"me"}, complete=True)
    assert not access.allows("x/y/write", {"me"}, complete=False)
    assert access.denial("x/y/write", {"me"}, complete=False) is team
