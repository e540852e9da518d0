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
MAX_PAGE_SIZE = 1000
MAX_MOUNT_POINT = 1024
GIB_PER_UNIT = {"GiB": 1, "GB": 1, "TiB": 1024, "TB": 1024}  # Azure Files provisions in binary units

# What a client may send, as regular expressions the service matches whole (`fullmatch`) and the
# OpenAPI document states as `^(?:...)$` (functions/openapi.py): one source for both, written in
# the subset that Python and ECMA-262 read alike (no \d, \s or \Z; `\w` only where Azure's own
# specs use it, read as Unicode letters, digits and '_' as ARM reads it).
STORAGE_NAME = r"[a-z0-9]{3,24}"
# Azure's rule for resource group names (ARM's `^[-\w\._\(\)]+$`, 1-90 characters, no '.' at the end).
RESOURCE_GROUP = r"[-\w.()]{0,89}[-\w()]"
# An ARM region name (`eastus`) or its display form (`East US`): ASCII letters and digits with
# spaces anywhere, 2-40 letters and digits, a letter first.
REGION = r" *[A-Za-z](?: *[A-Za-z0-9]){1,39} *"
# Linux VM resource names: 1-64 letters, digits, '.', '_', '-'; no leading '_' and no trailing
# '.' or '-' (Azure's naming rules).
VM_NAME = r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,62}[A-Za-z0-9_])?"
NETWORK_NAME = r"[A-Za-z0-9](?:[A-Za-z0-9_.-]{0,78}[A-Za-z0-9_])?"
LINUX_USER = r"[a-z_][a-z0-9_-]{0,31}"
OBJECT_ID = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
IDEMPOTENCY_KEY = f"[!-~]{{1,{MAX_IDEMPOTENCY_KEY_LENGTH}}}"  # printable ASCII, no spaces
PAGE_SIZE = r"[0-9]{1,9}"  # ASCII only: str.isdigit() accepts other scripts
FLAGS = ("true", "false")  # a query flag; JSON bodies use true and false

_STORAGE_NAME = re.compile(STORAGE_NAME)
_RESOURCE_GROUP = re.compile(RESOURCE_GROUP)
_REGION = re.compile(REGION)
_VM_NAME = re.compile(VM_NAME)
_PATH_CHARS = re.compile(r"[A-Za-z0-9._@+/-]+")
_SIZE = re.compile(r"(0|[1-9][0-9]{0,8})(" + "|".join(
    "".join(f"[{c.upper()}{c.lower()}]" for c in unit) for unit in GIB_PER_UNIT) + ")?")
_WHOLE_NUMBER = re.compile(PAGE_SIZE)
_IDEMPOTENCY_KEY = re.compile(IDEMPOTENCY_KEY)

# A shared home is <root>/<user> for one of these roots; /home always, others by HOME_ROOTS.
DEFAULT_HOME_ROOTS = ("/home",)
# Directories no operator may make a home root: the system's own files, or everyone's.
_FORBIDDEN_ROOT_TREES = ("/bin/", "/boot/", "/dev/", "/etc/", "/lib/", "/lib32/", "/lib64/", "/libx32/",
                         "/proc/", "/run/", "/sbin/", "/sys/", "/usr/", "/root/", "/var/lib/", "/var/spool/",
                         "/var/log/", "/var/run/", "/tmp/", "/var/tmp/")
_SYSTEM_DIRS = frozenset({"/", "/home", "/root", "/var", "/tmp", "/opt", "/srv", "/mnt", "/media", "/bin",
                          "/boot", "/dev", "/etc", "/lib", "/lib32", "/lib64", "/libx32", "/proc", "/run",
                          "/sbin", "/sys", "/usr", "/var/lib", "/var/spool", "/var/log", "/var/tmp"})
_NETWORK_NAME = re.compile(NETWORK_NAME)
_LINUX_USER = re.compile(LINUX_USER)
_ZONE_ID = re.compile(
    rf"/subscriptions/[0-9a-fA-F-]{{36}}/resourceGroups/{RESOURCE_GROUP}"
    r"/providers/Microsoft\.Network/privateDnsZones/privatelink\.file\.core\.windows\.net",
    re.IGNORECASE,
)
_OBJECT_ID = re.compile(OBJECT_ID)
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
    text = _matching(_REGION, _require_text(value, field), field=field, what="Azure region name",
                     rule="a region name is 2-40 letters and digits starting with a letter, e.g. 'eastus', "
                          "'westeurope' (or the display form, 'East US')",
                     hint="list region names with `az account list-locations -o table`")
    return text.replace(" ", "").lower()


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
        text = _matching(_OBJECT_ID, _require_text(item, f"{field}[{index}]"), field=f"{field}[{index}]",
                         what="object id",
                         rule="an object id is a GUID such as 3fa85f64-5717-4562-b3fc-2c963f66afa6",
                         hint="use the object id of the user, group or service principal "
                              "(az ad user show --id <upn> --query id)")
        found.append(text.lower())
    return tuple(dict.fromkeys(found))


def integer_range(low: int, high: int) -> str:
    """A regular expression matching exactly the decimal numbers from `low` to `high`
    (0 <= low <= high), as written without a sign or leading zeros."""
    if not 0 <= low <= high:
        raise ValueError(f"no numbers from {low} to {high}")
    parts = []
    for digits in range(len(str(low)), len(str(high)) + 1):
        first, last = max(low, 10 ** (digits - 1) if digits > 1 else 0), min(high, 10 ** digits - 1)
        if first <= last:
            parts.append(_same_length_range(str(first), str(last)))
    return parts[0] if len(parts) == 1 else "(?:" + "|".join(parts) + ")"


def _same_length_range(low: str, high: str) -> str:
    """The numbers from `low` to `high`, both written with the same number of digits."""
    if low == high:
        return low
    if len(low) == 1:
        return f"[{low}-{high}]"
    if low[0] == high[0]:
        return low[0] + _same_length_range(low[1:], high[1:])
    rest = len(low) - 1
    parts, first, last = [], int(low[0]), int(high[0])
    if low[1:] != "0" * rest:  # low up to the end of its first digit's block
        parts.append(low[0] + _same_length_range(low[1:], "9" * rest))
        first += 1
    if high[1:] != "9" * rest:  # the start of high's first digit's block up to high
        last -= 1
    if first <= last:  # whole blocks between
        lead = str(first) if first == last else f"[{first}-{last}]"
        parts.append(lead + ("[0-9]" if rest == 1 else f"[0-9]{{{rest}}}"))
    if high[1:] != "9" * rest:
        parts.append(high[0] + _same_length_range("0" * rest, high[1:]))
    return parts[0] if len(parts) == 1 else "(?:" + "|".join(parts) + ")"


def size_pattern(billing: Billing) -> str:
    """The sizes `size_gib` accepts as text for `billing`: a whole number of GiB in its range, bare
    or with GiB or GB, or a whole number of TiB with TiB or TB (units in any case)."""
    low, high = SHARE_GIB_RANGE[billing]
    parts = []
    for unit, gib in GIB_PER_UNIT.items():
        if gib == 1 and unit != "GiB":
            continue  # GB with GiB below; TB with TiB
        first, last = -(-low // gib), high // gib
        if first > last:
            continue
        units = [u for u, g in GIB_PER_UNIT.items() if g == gib]
        spelled = "|".join("".join(f"[{c.upper()}{c.lower()}]" for c in u) for u in units)
        parts.append(integer_range(first, last) + f"(?:{spelled})" + ("?" if gib == 1 else ""))
    return "(?:" + "|".join(parts) + ")"


def mount_point_pattern(roots: Sequence[str] = DEFAULT_HOME_ROOTS) -> str:
    """The mount points `mount_point` accepts with these home roots: <root>/<user>."""
    escaped = "|".join(root.replace(".", "\\.").replace("+", "\\+") for root in roots)
    return f"(?:{escaped})/{LINUX_USER}"


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
    if len(path) > MAX_MOUNT_POINT:
        return [f"the mount point is longer than {MAX_MOUNT_POINT} characters"]
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
    """`100`, `"100"`, `"100GB"`, `"100GiB"`, `"1TB"`, `"1TiB"` → GiB (units in any case; no
    spaces, fractions or leading zeros): what `size_pattern` states. GB and TB mean GiB and TiB:
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
    number = whole_number(value)
    if number is None or not limits[0] <= number <= limits[1]:
        raise ValidationError(
            f"'{field}' must be a whole number from {limits[0]} to {limits[1]}.",
            causes=[f"got {_show(value)}"],
            try_hint=f"leave it out for Azure's recommendation for the size, or give {limits[0]}-{limits[1]}",
        )
    return number


def _parse_size(value: object, field: str) -> int:
    invalid = ValidationError(
        f"'{field}' is not a size.",
        causes=[f"got {_show(value)}; sizes look like 100, '100', '100GiB', '100GB', '1TiB' or '1TB'"],
        try_hint="give a whole number of GiB, or of TiB with a 'TiB'/'TB' unit",
    )
    number = whole_number(value)
    if number is not None:
        return number
    if not isinstance(value, str) or not (match := _SIZE.fullmatch(value)):
        raise invalid
    unit = next(u for u in GIB_PER_UNIT if u.lower() == (match.group(2) or "GiB").lower())
    return int(match.group(1)) * GIB_PER_UNIT[unit]


def whole_number(value: object) -> int | None:
    """A JSON integer as JSON Schema reads one (`100` or `100.0`; never `true`), else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def tier(value: object, field: str = "tier") -> Tier:
    text = _require_text(value, field)
    if text == Tier.PREMIUM.value:
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
        causes=[f"got {_show(text)}; the only tier that serves NFS is 'Premium' (spelled so)"],
        try_hint="use tier 'Premium' (the default)",
    )


def redundancy(value: object, field: str = "redundancy") -> Redundancy:
    return _member(Redundancy, value, field, ValidationError(
        f"'{field}' is not a redundancy NFS shares offer.",
        causes=[f"got {_show(value)}; premium NFS shares are 'LRS' or 'ZRS' (no GRS or GZRS)"],
        try_hint="use 'LRS' (the default) or 'ZRS' where the region offers zones"))


ENCRYPTION_IN_TRANSIT = ("required", "off")


def encryption_in_transit(value: object, field: str = "encryptionInTransit") -> bool:
    """`required` (the default: NFS only through TLS mounts) or `off` (plain NFS 4.1)."""
    if value in ENCRYPTION_IN_TRANSIT:
        return value == "required"
    raise ValidationError(
        f"'{field}' must be 'required' or 'off', not {_show(value)}.",
        causes=[f"{field}: required (NFS through aznfs's TLS tunnel) or off (plain NFS 4.1)"],
        try_hint="leave it out for required",
    )


def detach_mode(value: object, field: str = "mode") -> DetachMode:
    return _member(DetachMode, value, field, ValidationError(
        f"'{field}' is not a detach mode.",
        causes=[f"got {_show(value)}; 'copy' copies the shared home to the VM's disk, "
                "'restore' puts back the home the VM had before it was attached"],
        try_hint="use mode=copy (the default) or mode=restore"))


def _member(choices: type[E], value: object, field: str, refusal: ValidationError) -> E:
    """The member of `choices` whose value is exactly `value` (as the document's enum says)."""
    _require_text(value, field)
    for choice in choices:
        if choice.value == value:
            return choice
    raise refusal


def one_of_each(value: object, field: str, choices: type[E]) -> frozenset[E]:
    """Comma-separated values of an enum, spelled as they are: `status=Pending,Running`."""
    text = _require_text(value, field)
    by_name = {str(choice.value): choice for choice in choices}
    parts = text.split(",")
    unknown = [part for part in parts if part not in by_name]
    if unknown:
        raise ValidationError(
            f"'{field}' names a value this service does not know.",
            causes=[f"got {_show(part)}" for part in unknown][:5],
            try_hint=f"use one or more of {', '.join(str(c.value) for c in choices)}, comma-separated",
        )
    return frozenset(by_name[part] for part in parts)


def one_of_each_pattern(choices: type[Enum]) -> str:
    """What `one_of_each` accepts for `choices`."""
    names = "|".join(re.escape(str(c.value)) for c in choices)
    return f"(?:{names})(?:,(?:{names}))*"


def flag(value: object, field: str) -> bool:
    """A query flag: `true` or `false`, as OpenAPI writes a boolean in a query string."""
    if value in FLAGS:
        return value == "true"
    raise ValidationError(
        f"'{field}' must be true or false.",
        causes=[f"got {_show(value)}"],
        try_hint=f"use {field}=true or {field}=false",
    )


def boolean(value: object, field: str) -> bool:
    """A JSON boolean: true or false."""
    if isinstance(value, bool):
        return value
    raise ValidationError(f"'{field}' must be true or false.", causes=[f"got {_show(value)}"],
                          try_hint=f"send '{field}' as a JSON boolean")


def idempotency_key(value: object, field: str = "Idempotency-Key") -> str:
    text = _require_text(value, field)
    if not _IDEMPOTENCY_KEY.fullmatch(text):
        raise ValidationError(
            f"'{field}' header is not a usable key.",
            causes=[f"an idempotency key is 1-{MAX_IDEMPOTENCY_KEY_LENGTH} printable ASCII "
                    "characters without spaces"],
            try_hint="send a fresh UUID per logical request",
        )
    return text


def page_size(value: object, field: str = "$top", maximum: int = MAX_PAGE_SIZE) -> int:
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
