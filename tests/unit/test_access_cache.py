"""How long Azure's answer about a caller is trusted: at most five minutes per caller and scope,
with a reader that counts what it is asked (a fake of the port: no Azure here)."""

from __future__ import annotations

import pytest

from shared.domain import rbac
from shared.domain.errors import PermissionDenied
from shared.domain.identity import Caller, Principal, PrincipalKind
from shared.domain.models import StorageAccess
from shared.services.access import CACHE_SECONDS, AccessControl

SUB = "6e0b3f2a-5a43-4b7e-9a57-3f0c2d7d1c11"
SCOPE = f"/subscriptions/{SUB}/resourceGroups/rg1"


class Reader:
    """Answers what a role table says; counts the questions."""

    def __init__(self) -> None:
        self.roles: dict[str, tuple[rbac.Grant, ...]] = {}
        self.asked = 0

    def access(self, caller: Caller, scope: str) -> rbac.Access:
        self.asked += 1
        return rbac.Access(scope, self.roles.get(caller.object_id, ()))


class Records:
    def __init__(self) -> None:
        self.stored: dict[str, StorageAccess] = {}

    def get(self, storage: str) -> StorageAccess | None:
        return self.stored.get(storage)

    def add(self, access: StorageAccess) -> StorageAccess:
        return self.stored.setdefault(access.storage, access)

    def save(self, access: StorageAccess) -> StorageAccess:
        self.stored[access.storage] = access
        return access

    def delete(self, storage: str) -> None:
        self.stored.pop(storage, None)


def caller(token: str = "t1") -> Caller:
    return Caller(Principal("bob-id", "bob@contoso.example", PrincipalKind.USER), "tenant", token=token)


def test_an_answer_is_trusted_five_minutes_per_caller_and_scope() -> None:
    now = [1000.0]
    reader = Reader()
    control = AccessControl(lambda: reader, Records(), SUB, monotonic=lambda: now[0])
    assert not control.may(caller(), rbac.STORAGE_WRITE, SCOPE)
    reader.roles["bob-id"] = (rbac.Grant(("Microsoft.Storage/*",)),)  # a role given meanwhile
    now[0] += CACHE_SECONDS - 1
    assert not control.may(caller(), rbac.STORAGE_WRITE, SCOPE) and reader.asked == 1  # remembered
    assert not control.may(caller("t2"), rbac.STORAGE_WRITE, SCOPE)  # a new token changes nothing
    assert control.may(caller(), rbac.STORAGE_WRITE, SCOPE.upper()) is False  # the same scope
    assert reader.asked == 1
    now[0] += 2
    assert control.may(caller(), rbac.STORAGE_WRITE, SCOPE) and reader.asked == 2  # expired: asked


def test_a_refusal_names_the_action_the_scope_and_the_caller() -> None:
    control = AccessControl(Reader, Records(), SUB)
    with pytest.raises(PermissionDenied) as refused:
        control.require(caller(), rbac.RUN_COMMANDS_WRITE, SCOPE)
    assert refused.value.message == f"You may not perform '{rbac.RUN_COMMANDS_WRITE}' over scope '{SCOPE}'."
    assert refused.value.causes[1] == "caller: bob@contoso.example (bob-id)"


def test_a_users_own_answer_and_the_one_read_for_them_as_a_writer_are_kept_apart() -> None:
    class ByPath(Reader):
        """On their behalf a user holds everything here; their role assignments read by the app
        hold nothing (as when their role comes through a group the app's listing missed)."""

        def access(self, caller: Caller, scope: str) -> rbac.Access:
            self.asked += 1
            return rbac.Access(scope, (rbac.Grant(("*",)),) if caller.delegated else ())

    reader = ByPath()
    control = AccessControl(lambda: reader, Records(), SUB)
    assert control.may(caller(), rbac.RUN_COMMANDS_WRITE, SCOPE)
    assert not control.principal_may(caller().principal, rbac.RUN_COMMANDS_WRITE, SCOPE)
    assert control.may(caller(), rbac.RUN_COMMANDS_WRITE, SCOPE) and reader.asked == 2
