"""Resource Manager vocabulary shared by the emulator's parts: errors in ARM's shape, resource ids,
timestamps, and the request a resource type handles."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from local.emulator.authorization import Caller

TENANT_ID = "72f988bf-86f1-41af-91ab-2d7cd011db47"
# Regions the emulator accepts (a subset of Azure's public ones, all with premium files).
REGIONS = frozenset(
    {
        "eastus",
        "eastus2",
        "westus",
        "westus2",
        "westus3",
        "centralus",
        "northcentralus",
        "southcentralus",
        "westcentralus",
        "canadacentral",
        "brazilsouth",
        "northeurope",
        "westeurope",
        "uksouth",
        "francecentral",
        "germanywestcentral",
        "swedencentral",
        "switzerlandnorth",
        "norwayeast",
        "polandcentral",
        "italynorth",
        "australiaeast",
        "southeastasia",
        "eastasia",
        "japaneast",
        "koreacentral",
        "centralindia",
        "southafricanorth",
        "uaenorth",
    }
)
SUBSCRIPTION_ID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.I)
API_VERSION = re.compile(r"^\d{4}-\d{2}-\d{2}(-preview)?$")


class ArmError(Exception):
    """An error answered in Resource Manager's shape: `{"error": {"code", "message"}}`."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        headers: dict[str, str] | None = None,
        details: list[dict[str, Any]] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.headers = headers or {}
        self.details = details

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.details:
            error["details"] = self.details
        return {"error": error}


def bad_request(code: str, message: str) -> ArmError:
    return ArmError(400, code, message)


def now() -> str:
    """ARM's timestamp form: seven fractional digits and a Z."""
    moment = datetime.now(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond:06d}0Z"


def new_guid() -> str:
    return str(uuid.uuid4())


@dataclass(frozen=True)
class ResourceId:
    """`/subscriptions/{s}[/resourceGroups/{g}][/providers/{ns}/{type}/{name}[/{type}/{name}]...]`.
    `types` and `names` pair up; a trailing type without a name is a collection or an action."""

    subscription: str
    group: str | None = None
    namespace: str | None = None
    types: tuple[str, ...] = ()
    names: tuple[str, ...] = ()

    @property
    def type_name(self) -> str:
        """`Microsoft.Storage/storageAccounts/fileServices/shares`, or resource groups' type."""
        if self.namespace is None:
            return "Microsoft.Resources/resourceGroups" if self.group else "Microsoft.Resources/subscriptions"
        return "/".join((self.namespace, *self.types))

    @property
    def is_resource(self) -> bool:
        return len(self.types) == len(self.names) and (bool(self.types) or self.namespace is None)

    @property
    def name(self) -> str:
        return self.names[-1] if self.names else (self.group or self.subscription)

    @property
    def trailing(self) -> str | None:
        """The collection or action after the last named resource, if any."""
        return self.types[-1] if len(self.types) > len(self.names) else None

    @property
    def parent(self) -> ResourceId | None:
        if len(self.names) > 1:
            return ResourceId(self.subscription, self.group, self.namespace, self.types[:-1], self.names[:-1])
        return None

    @property
    def owner(self) -> ResourceId:
        """The named resource a collection or action path belongs to."""
        return ResourceId(
            self.subscription, self.group, self.namespace, self.types[: len(self.names)], self.names
        )

    def child(self, type_segment: str, name: str) -> ResourceId:
        owner = self.owner
        return ResourceId(
            owner.subscription,
            owner.group,
            owner.namespace,
            (*owner.types, type_segment),
            (*owner.names, name),
        )

    def __str__(self) -> str:
        text = f"/subscriptions/{self.subscription}"
        if self.group is not None:
            text += f"/resourceGroups/{self.group}"
        if self.namespace is not None:
            text += f"/providers/{self.namespace}"
            for index, type_segment in enumerate(self.types):
                text += f"/{type_segment}"
                if index < len(self.names):
                    text += f"/{self.names[index]}"
        return text

    @property
    def key(self) -> str:
        return str(self).lower()


def parse_path(path: str) -> ResourceId:
    """Parse an ARM request path; raises ArmError for what ARM would refuse."""
    parts = [p for p in path.split("/") if p]
    if len(parts) < 2 or parts[0].lower() != "subscriptions":
        raise ArmError(
            404, "InvalidResourceNamespace", f"The request path '{path}' is not a Resource Manager path."
        )
    subscription = parts[1]
    if not SUBSCRIPTION_ID.match(subscription):
        raise ArmError(
            400,
            "InvalidSubscriptionId",
            f"The provided subscription identifier '{subscription}' is malformed or invalid.",
        )
    rest, group = parts[2:], None
    if rest and rest[0].lower() == "resourcegroups":
        if len(rest) < 2:
            return ResourceId(subscription, None, "Microsoft.Resources", ("resourceGroups",), ())
        group, rest = rest[1], rest[2:]
    if not rest:
        return ResourceId(subscription, group)
    if rest[0].lower() != "providers" or len(rest) < 3:
        raise ArmError(
            404, "InvalidResourceNamespace", f"The request path '{path}' is not a Resource Manager path."
        )
    namespace, segments = rest[1], rest[2:]
    return ResourceId(subscription, group, namespace, tuple(segments[0::2]), tuple(segments[1::2]))


def reference(value: Any) -> str | None:
    """The `id` of a `{"id": ...}` sub-resource reference, if it is one."""
    if isinstance(value, dict) and isinstance(value.get("id"), str):
        return str(value["id"])
    return None


@dataclass
class Resource:
    """A stored resource: its ARM JSON plus what only the emulator knows about it."""

    id: ResourceId
    type: str
    body: dict[str, Any]
    internal: dict[str, Any] = field(default_factory=dict)

    @property
    def properties(self) -> dict[str, Any]:
        props: dict[str, Any] = self.body.setdefault("properties", {})
        return props


@dataclass
class Response:
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any
    base_url: str
    request_id: str = field(default_factory=new_guid)
    raw: bytes = b""
    caller: Caller | None = None  # set once the token is validated
    evidence: dict[str, Any] | None = None  # the role assignment that allowed it

    @property
    def api_version(self) -> str | None:
        return self.query.get("api-version")

    @property
    def url(self) -> str:
        query = "&".join(f"{k}={v}" for k, v in self.query.items())
        return f"{self.base_url}{self.path}" + (f"?{query}" if query else "")
