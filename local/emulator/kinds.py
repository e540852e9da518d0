"""The contract between the emulator's engine and each resource type it serves."""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Any, ClassVar

from local.emulator.arm import REGIONS, ArmError, Resource, ResourceId, bad_request

if TYPE_CHECKING:
    from local.emulator.arm import Request, Response
    from local.emulator.core import Emulator


class Shape(Enum):
    """How a write answers, per resource type, as Azure's resource providers do."""

    SYNC = "sync"  # 200/201 (or 200/204 for deletes) with the final body
    LOCATION = "location"  # 202 + Location; polling it gives 202, then 200 with the result
    ASYNC_OPERATION = "async"  # PUT: 200/201 + body + Azure-AsyncOperation; others: 202 + both headers
    ASYNC_202 = "async-202"  # 202 + Azure-AsyncOperation + Location, no body (private DNS)


@dataclass(frozen=True)
class Action:
    """A POST on a resource (`.../virtualMachines/vm1/restart`). `run` returns the final result
    body (or None) and may block: it runs in the background for long-running shapes."""

    shape: Shape
    run: Callable[[Emulator, Resource, dict[str, Any]], dict[str, Any] | None]
    check: Callable[[Emulator, Resource, dict[str, Any]], None] | None = None


# GET views of a resource besides itself (`.../virtualMachines/vm1/instanceView`), by lower-case name.
Views = dict[str, Callable[["Emulator", Resource, dict[str, Any]], dict[str, Any]]]


class ResourceKind:
    """One resource type. Subclasses validate bodies, provision, and say what deletion means."""

    type_name = ""
    put_shape = Shape.SYNC
    delete_shape = Shape.SYNC
    located = True  # has a `location` (child resources usually do not)
    creating_state = "Creating"  # provisioningState while a long-running write is in progress
    patchable = True
    location_on_create = False  # a 201 to a PUT also carries Location (managed Run Commands)
    actions: ClassVar[dict[str, Action]] = {}
    views: ClassVar[Views] = {}

    def validate(
        self, emu: Emulator, rid: ResourceId, body: dict[str, Any], existing: Resource | None
    ) -> dict[str, Any]:
        """The body to store, from a PUT body; raise ArmError to refuse. Read-only fields are set
        by the engine (id, name, type, provisioningState)."""
        stored = {
            k: copy.deepcopy(v)
            for k, v in body.items()
            if k in ("tags", "properties", "sku", "kind", "identity", "etag")
        }
        stored.setdefault("properties", {})
        if self.located:  # child resources (subnets, shares, record sets) have no location of their own
            stored["location"] = self.location_of(rid, body, existing)
        return stored

    def location_of(self, rid: ResourceId, body: dict[str, Any], existing: Resource | None) -> str:
        location = str(body.get("location") or "").replace(" ", "").lower()
        if not location:
            raise bad_request("LocationRequired", "The location property is required for this definition.")
        if location not in REGIONS:
            raise bad_request(
                "LocationNotAvailableForResourceType",
                f"The provided location '{location}' is not available for resource type '{rid.type_name}'.",
            )
        if existing is not None and existing.body.get("location") not in (None, location):
            raise bad_request(
                "InvalidResourceLocation",
                f"The resource '{rid.name}' already exists in location "
                f"'{existing.body.get('location')}' in resource group '{rid.group}'. A "
                "resource with the same name cannot be created in location "
                f"'{location}'. Please select a new resource name.",
            )
        return location

    def provision(self, emu: Emulator, resource: Resource, created: bool) -> None:
        """The work of a write after it was accepted (in the background for long-running shapes)."""

    def check_delete(self, emu: Emulator, resource: Resource) -> None:
        """Raise ArmError when the resource may not be deleted now."""

    def deleted(self, emu: Emulator, resource: Resource) -> None:
        """Side effects of a deletion (also when a parent or the resource group is deleted)."""

    def view(self, emu: Emulator, resource: Resource, query: dict[str, Any]) -> dict[str, Any]:
        return copy.deepcopy(resource.body)

    def listing(self, emu: Emulator, resource: Resource, query: dict[str, Any]) -> list[dict[str, Any]]:
        """What a list of the collection shows of the resource (file shares add their snapshots)."""
        return [self.view(emu, resource, query)]

    def special(self, emu: Emulator, rid: ResourceId, request: Request) -> Response | None:
        """A request this type answers in its own way (a share snapshot's PUT, GET or DELETE), or
        None for the engine's usual handling."""
        return None


def require(condition: bool, code: str, message: str, status: int = 400) -> None:
    if not condition:
        raise ArmError(status, code, message)
