"""Validation of everything a client can send, before any Azure call.

Each validator takes the raw value (from JSON, a query string or a route), returns the normalised
value, or raises `ValidationError` naming the field, what was wrong and what to do instead.
Values that pass are safe as Table Storage keys and as Run Command parameters: no control
characters, no shell metacharacters, nothing that changes a path's meaning.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Callable, Sequence
from decimal import Decimal, InvalidOperation
from enum import Enum
from typing import TypeVar

from .errors import ErrorCode, ValidationError
from .models import Billing, DetachMode, Redundancy, Tier

T = TypeVar("T")
E = TypeVar("E", bound=Enum)

MIN_SHARE_GIB = 100  # provisioned v1
MAX_SHARE_GIB = 102_400
# Provisioned v2 SSD (understanding-billing.md): storage, IOPS and throughput ranges.
SHARE_GIB_RANGE = {Billing.PROVISIONED_V1: (MIN_SHARE_GIB, MAX_SHARE_GIB),
                   Billing.PROVISIONED_V2: (32, 262_144)}
IOPS_RANGE = (3000, 102_400)
THROUGHPUT_RANGE = (100, 10_340)
MAX_IDEMPOTENCY_KEY_LENGTH = 255

_STORAGE_NAME = re.compile(r"[a-z0-9]{3,24}")
# Azure's own pattern for resource group names; \w is Unicode-aware, as in ARM.
_RESOURCE_GROUP = re.compile(r"[-\w.()]{0,89}[-\w()]")  # cannot end with '.'
_REGION = re.compile(r"[a-z][a-z0-9]{1,39}")
# Linux VM resource names: 1-64 letters, digits, '.', '_', '-'; no leading '_' and no trailing
# '.' or '-' (Azure's naming rules).
_VM_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,62}[A-Za-z0-9_])?")
_PATH_CHARS = re.compile(r"[A-Za-z0-9._@+/-]+")
_SIZE = re.compile(r"\s*([0-9]{1,9}(?:\.[0-9]{1,6})?)\s*(gb|gib|tb|tib)?\s*", re.IGNORECASE)
_WHOLE_NUMBER = re.compile(r"[0-9]{1,9}")  # ASCII only: str.isdigit() accepts other scripts
_PRINTABLE_ASCII = re.compile(r"[\x21-\x7e]+")

# A shared home is <root>/<user> for one of these roots; /home always, others by HOME_ROOTS.
DEFAULT_HOME_ROOTS = ("/home",)
# Directories no operator may make a home root: the system's own files, or everyone's.
_FORBIDDEN_ROOT_TREES = ("/bin/", "/boot/", "/dev/", "/etc/", "/lib/", "/lib32/", "/lib64/", "/libx32/",
                         "/proc/", "/run/", "/sbin/", "/sys/", "/usr/", "/root/", "/var/lib/", "/var/spool/",
                         "/var/log/", "/var/run/", "/tmp/", "/var/tmp/")
_SYSTEM_DIRS = frozenset({"/", "/home", "/root", "/var", "/tmp", "/opt", "/srv", "/mnt", "/media", "/bin",
                          "/boot", "/dev", "/etc", "/lib", "/lib32", "/lib64", "/libx32", "/proc", "/run",
                          "/sbin", "/sys", "/usr", "/var/lib", "/var/spool", "/var/log", "/var/tmp"})
_NETWORK_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9_.-]{0,78}[A-Za-z0-9_])?")
_LINUX_USER = re.compile(r"[a-z_][a-z0-9_-]{0,31}")
_ZONE_ID = re.compile(
    r"/subscriptions/[0-9a-fA-F-]{36}/resourceGroups/[-\w.()]{0,89}[-\w()]"
    r"/providers/Microsoft\.Network/privateDnsZones/privatelink\.file\.core\.windows\.net",
    re.IGNORECASE,
)
_OBJECT_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
MAX_PRINCIPALS = 100
_STANDARD_TIERS = frozenset({"standard", "hot", "cool", "transactionoptimized", "standardv2"})


def storage_account_name(value: object, field: str = "name") -> str:
    return _matching(_STORAGE_NAME, _require_text(value, field), field=field,
                     what="storage account name",
                     rule="a storage account name is 3-24 lowercase letters and digits",
                     hint="use only a-z and 0-9, e.g. 'teamhome01'")


def resource_group_name(value: object, field: str = "resourceGroup") -> str:
    return _matching(_RESOURCE_GROUP, _require_text(value, field), field=field,
                     what="resource group name",
                     rule="a resource group name is 1-90 letters, digits, '_', '-', '.', '(' or ')' "
                          "and cannot end with '.'",
                     hint="pass the resource group's name exactly as Azure shows it")


def region_name(value: object, field: str = "region") -> str:
    """Accept `eastus` or the display form `East US`; return the ARM form."""
    text = _require_text(value, field)
    return _matching(_REGION, text.replace(" ", "").lower(), field=field, what="Azure region name",
                     rule="a region name is letters and digits, e.g. 'eastus', 'westeurope'",
                     hint="list region names with `az account list-locations -o table`", shown=text)


def network_name(value: object, field: str) -> str:
    """A VNet or subnet name, as Azure allows: 1-80 letters, digits, '_', '.', '-', starting with
    a letter or digit, ending with a letter, digit or '_'."""
    return _matching(_NETWORK_NAME, _require_text(value, field), field=field, what="network name",
                     rule="a VNet or subnet name is 1-80 letters, digits, '_', '.' or '-', starting "
                          "with a letter or digit and ending with a letter, digit or '_'",
                     hint="pass the name exactly as Azure shows it")


def private_dns_zone_id(value: object, field: str = "PRIVATE_DNS_ZONE_ID") -> str:
    return _matching(_ZONE_ID, _require_text(value, field).rstrip("/"), field=field,
                     what="private DNS zone id",
                     rule="the full resource id of a privatelink.file.core.windows.net zone",
                     hint="copy it from `az network private-dns zone show --query id`")


def linux_user(value: object, field: str = "user") -> str:
    return _matching(_LINUX_USER, _require_text(value, field), field=field, what="Linux user name",
                     rule="a Linux user name is 1-32 lowercase letters, digits, '_' or '-', starting with a "
                          "letter or '_'",
                     hint="use the VM's admin user name, e.g. 'azureuser'")


def vm_name(value: object, field: str = "vm") -> str:
    return _matching(_VM_NAME, _require_text(value, field), field=field, what="virtual machine name",
                     rule="a Linux VM name is 1-64 letters, digits, '.', '_' or '-', starting with a "
                          "letter or digit and not ending with '.' or '-'",
                     hint="pass the VM's resource name as Azure shows it")


def object_ids(value: object, field: str) -> tuple[str, ...]:
    """A list of Entra ID object ids (users, groups, service principals): GUIDs, lower-cased,
    each once, at most MAX_PRINCIPALS."""
    if not isinstance(value, list):
        raise ValidationError(f"'{field}' must be a list of object ids.", causes=[f"got {_show(value)}"],
                              try_hint=f"send '{field}' as a JSON array of GUIDs")
    if len(value) > MAX_PRINCIPALS:
        raise ValidationError(f"'{field}' lists too many principals.",
                              causes=[f"{len(value)}; the limit is {MAX_PRINCIPALS}"],
                              try_hint="grant a group instead of each of its members")
    found: list[str] = []
    for index, item in enumerate(value):
        text = _require_text(item, f"{field}[{index}]").strip().lower()
        found.append(_matching(_OBJECT_ID, text, field=f"{field}[{index}]", what="object id",
                               rule="an object id is a GUID such as 3fa85f64-5717-4562-b3fc-2c963f66afa6",
                               hint="use the object id of the user, group or service principal "
                                    "(az ad user show --id <upn> --query id)", shown=str(item)))
    return tuple(dict.fromkeys(found))


def _matching(pattern: re.Pattern[str], text: str, *, field: str, what: str, rule: str, hint: str,
              shown: str | None = None) -> str:
    """`text` if it matches `pattern`, else a ValidationError that quotes what the client sent."""
    if not pattern.fullmatch(text):
        raise ValidationError(f"'{field}' is not a valid {what}.",
                              causes=[f"got {_show(shown or text)}; {rule}"], try_hint=hint)
    return text


def mount_point(value: object, field: str = "mountPoint", roots: Sequence[str] = DEFAULT_HOME_ROOTS) -> str:
    """A user's home: `<root>/<user>` for a home root (`/home`, plus the operator's HOME_ROOTS), a
    canonical path safe to hand to a root shell script. The attach script applies the same rule,
    and also that the user exists on the VM and no one but root can write the root."""
    text = _require_text(value, field)
    causes = _path_problems(text) or _home_problems(text, roots)
    if causes:
        raise ValidationError(
            f"'{field}' is not a user's home directory.",
            causes=causes,
            try_hint="use the home of the user whose files these are, e.g. '/home/azureuser'",
        )
    return text


def home_user(mount_point: str) -> str:
    """Whose home a valid mount point is: its last component."""
    return mount_point.rpartition("/")[2]


def home_root(value: object, field: str = "HOME_ROOTS") -> str:
    """A directory whose children may be shared homes (an operator's choice besides /home)."""
    text = _require_text(value, field)
    causes = _path_problems(text)
    if not causes and (text in _SYSTEM_DIRS - {"/home"} or text.startswith(_FORBIDDEN_ROOT_TREES)):
        causes = [f"{text} holds the system's own files, not users' homes"]
    if causes:
        raise ValidationError(f"'{field}' is not an acceptable home root.", causes=causes,
                              try_hint="name a directory that holds users' homes, such as /data/homes")
    return text


def home_roots(value: object, field: str = "HOME_ROOTS") -> tuple[str, ...]:
    """`/home` and the comma-separated roots an operator adds."""
    parts = [part.strip() for part in _require_text(value, field).split(",")]
    added = [home_root(part, field) for part in parts if part]
    return tuple(dict.fromkeys([*DEFAULT_HOME_ROOTS, *added]))


def _home_problems(path: str, roots: Sequence[str]) -> list[str]:
    parent, _, user = path.rpartition("/")
    allowed = " or ".join(f"{root}/<user>" for root in roots)
    if parent not in roots:
        return [f"got {_show(path)}; a shared home is {allowed}, nothing deeper and nothing else "
                "(an operator may add home roots with the HOME_ROOTS setting)"]
    if not _LINUX_USER.fullmatch(user):
        return [f"got {_show(path)}; {user!r} is not a Linux user name (1-32 lowercase letters, digits, "
                "'_' or '-', starting with a letter or '_')"]
    return []


def _path_problems(path: str) -> list[str]:
    if not path.startswith("/"):
        return [f"got {_show(path)}; the mount point must be an absolute path"]
    if len(path) > 1024:
        return ["the mount point is longer than 1024 characters"]
    if not _PATH_CHARS.fullmatch(path):
        return [f"got {_show(path)}; only letters, digits and . _ @ + - / are allowed "
                "(no spaces, shell metacharacters or control characters)"]
    parts = path.split("/")[1:]
    if posixpath.normpath(path) != path or "//" in path or ".." in parts or "." in parts:
        return [f"got {_show(path)}; the path must be normalised: no '..', '.', '//' or trailing '/'"]
    if any(part.startswith("-") for part in parts):
        return [f"got {_show(path)}; no path component may start with '-'"]
    if any(len(part) > 255 for part in parts):
        return ["a path component is longer than 255 characters"]
    return []


def size_gib(value: object, field: str = "size", billing: Billing = Billing.PROVISIONED_V1) -> int:
    """`100`, `"100"`, `"100GB"`, `"100GiB"`, `"1TB"`, `"1TiB"` → GiB. GB and TB mean GiB and TiB:
    Azure Files provisions in binary units."""
    gib = _parse_size(value, field)
    low, high = SHARE_GIB_RANGE[billing]
    if not low <= gib <= high:
        raise ValidationError(
            f"'{field}' is outside the range of a {billing.value} NFS share.",
            causes=[f"got {gib} GiB; {billing.value} file shares are provisioned from {low} GiB to "
                    f"{high} GiB"],
            try_hint=f"ask for between {low} and {high} GiB",
        )
    return gib


def billing(value: object, field: str = "billing") -> Billing:
    for known in Billing:
        if value == known.value:
            return known
    raise ValidationError(
        f"'{field}' must be one of {', '.join(b.value for b in Billing)}.",
        causes=[f"got {_show(value)}; provisionedV2 (the default) buys storage, IOPS and throughput "
                "apart from 32 GiB; provisionedV1 buys storage only, from 100 GiB"],
        try_hint="leave it out for provisionedV2",
    )


def provisioned(value: object, field: str, limits: tuple[int, int]) -> int:
    """Provisioned IOPS or MiB/s of a v2 share: a whole number within Azure's range."""
    if isinstance(value, bool) or not isinstance(value, int) or not limits[0] <= value <= limits[1]:
        raise ValidationError(
            f"'{field}' must be a whole number from {limits[0]} to {limits[1]}.",
            causes=[f"got {_show(value)}"],
            try_hint=f"leave it out for Azure's recommendation for the size, or give {limits[0]}-{limits[1]}",
        )
    return value


def _parse_size(value: object, field: str) -> int:
    invalid = ValidationError(
        f"'{field}' is not a size.",
        causes=[f"got {_show(value)}; sizes look like 100, '100GB', '100GiB', '1TB' or '1TiB'"],
        try_hint="give a whole number of GiB, or TiB with a 'TB'/'TiB' unit",
    )
    if isinstance(value, bool):
        raise invalid
    if isinstance(value, int):
        return value
    if not isinstance(value, str) or not (match := _SIZE.fullmatch(value)):
        raise invalid
    try:
        number = Decimal(match.group(1))
    except InvalidOperation as err:
        raise invalid from err
    unit = (match.group(2) or "gib").lower()
    gib = number * 1024 if unit in ("tb", "tib") else number
    if gib != gib.to_integral_value():
        raise ValidationError(
            f"'{field}' is not a whole number of GiB.",
            causes=[f"got {_show(value)}, which is {gib} GiB; shares grow in 1 GiB steps"],
            try_hint="round to a whole number of GiB",
        )
    return int(gib)


def tier(value: object, field: str = "tier") -> Tier:
    text = _require_text(value, field)
    if text.lower() == "premium":
        return Tier.PREMIUM
    if text.replace("_", "").replace(" ", "").lower() in _STANDARD_TIERS:
        raise ValidationError(
            f"'{field}' {_show(text)} cannot serve NFS.",
            causes=["Azure Files NFS needs SSD (premium) file shares in a FileStorage account; "
                    "Standard (HDD) shares support SMB only"],
            try_hint="use tier 'Premium' (the default)",
            code=ErrorCode.UNSUPPORTED_TIER,
        )
    raise ValidationError(
        f"'{field}' is not a known tier.",
        causes=[f"got {_show(text)}; the only tier that serves NFS is 'Premium'"],
        try_hint="use tier 'Premium' (the default)",
    )


def redundancy(value: object, field: str = "redundancy") -> Redundancy:
    text = _require_text(value, field)
    try:
        return Redundancy(text.upper())
    except ValueError:
        raise ValidationError(
            f"'{field}' is not a redundancy NFS shares offer.",
            causes=[f"got {_show(text)}; premium NFS shares are 'LRS' or 'ZRS' (no GRS or GZRS)"],
            try_hint="use 'LRS' (the default) or 'ZRS' where the region offers zones",
        ) from None


def encryption_in_transit(value: object, field: str = "encryptionInTransit") -> bool:
    """`required` (the default: NFS only through TLS mounts) or `off` (plain NFS 4.1)."""
    if value in ("required", "off"):
        return value == "required"
    raise ValidationError(
        f"'{field}' must be 'required' or 'off', not {_show(value)}.",
        causes=[f"{field}: required (NFS through aznfs's TLS tunnel) or off (plain NFS 4.1)"],
        try_hint="leave it out for required",
    )


def detach_mode(value: object, field: str = "mode") -> DetachMode:
    text = _require_text(value, field)
    try:
        return DetachMode(text.lower())
    except ValueError:
        raise ValidationError(
            f"'{field}' is not a detach mode.",
            causes=[f"got {_show(text)}; 'copy' copies the shared home to the VM's disk, "
                    "'restore' puts back the home the VM had before it was attached"],
            try_hint="use mode=copy (the default) or mode=restore",
        ) from None


def one_of_each(value: object, field: str, choices: type[E]) -> frozenset[E]:
    """Comma-separated values of an enum, matched without regard to case: `status=Pending,Running`."""
    text = _require_text(value, field)
    by_name = {str(choice.value).lower(): choice for choice in choices}
    parts = [part.strip() for part in text.split(",")]
    unknown = [part for part in parts if part.lower() not in by_name]
    if unknown or not text.strip():
        raise ValidationError(
            f"'{field}' names a value this service does not know.",
            causes=[f"got {_show(part)}" for part in (unknown or [text])][:5],
            try_hint=f"use one or more of {', '.join(str(c.value) for c in choices)}, comma-separated",
        )
    return frozenset(by_name[part.lower()] for part in parts)


def flag(value: object, field: str) -> bool:
    """A boolean from JSON or a query string."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "1", "yes"):
        return True
    if isinstance(value, str) and value.lower() in ("false", "0", "no", ""):
        return False
    raise ValidationError(
        f"'{field}' must be true or false.",
        causes=[f"got {_show(value)}"],
        try_hint=f"use {field}=true or {field}=false",
    )


def idempotency_key(value: object, field: str = "Idempotency-Key") -> str:
    text = _require_text(value, field)
    if len(text) > MAX_IDEMPOTENCY_KEY_LENGTH or not _PRINTABLE_ASCII.fullmatch(text):
        raise ValidationError(
            f"'{field}' header is not a usable key.",
            causes=[f"an idempotency key is 1-{MAX_IDEMPOTENCY_KEY_LENGTH} printable ASCII "
                    "characters without spaces"],
            try_hint="send a fresh UUID per logical request",
        )
    return text


def page_size(value: object, field: str = "$top", maximum: int = 1000) -> int:
    text = _require_text(value, field)
    if not _WHOLE_NUMBER.fullmatch(text) or not 1 <= int(text) <= maximum:
        raise ValidationError(
            f"'{field}' must be a whole number from 1 to {maximum}.",
            causes=[f"got {_show(text)}"],
            try_hint=f"omit {field} for the default page size",
        )
    return int(text)


class Problems:
    """Collects every field's problem so one answer lists them all."""

    def __init__(self) -> None:
        self.errors: list[ValidationError] = []

    def check(self, validate: Callable[..., T], *args: object, **kwargs: object) -> T | None:
        try:
            return validate(*args, **kwargs)
        except ValidationError as err:
            self.errors.append(err)
            return None

    def raise_if_any(self, message: str = "The request is not valid.") -> None:
        if len(self.errors) == 1:
            raise self.errors[0]
        if self.errors:
            raise ValidationError(
                message,
                causes=[f"{err.message} {cause}" for err in self.errors for cause in err.causes],
                try_hint="; ".join(err.try_hint for err in self.errors if err.try_hint) or None,
            )


def _require_text(value: object, field: str) -> str:
    if not isinstance(value, str) or value == "":
        raise ValidationError(
            f"'{field}' must be a non-empty string.",
            causes=[f"got {_show(value)}"],
            try_hint=f"send '{field}' as a JSON string",
        )
    return value


def _show(value: object) -> str:
    """A short, printable rendering of what the client sent, safe to echo back."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
