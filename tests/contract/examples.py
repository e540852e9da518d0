"""Values clients send, each with the service's verdict: the one list both judges are held to.
`tests/functions/test_openapi.py` checks that the OpenAPI document's schema for each field accepts
exactly the ones the service's validator accepts."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from shared.domain import validation as v
from shared.domain.data_protection import restore_path, snapshot_id
from shared.domain.models import Billing
from shared.domain.operations import OperationKind, OperationStatus

HOME_ROOTS = ("/home", "/data/homes", "/srv/p+q.x")  # an operator's roots, with characters regexes mind


@dataclass(frozen=True)
class Field:
    """A field as the service judges it, and values it accepts and refuses."""

    judge: Callable[[Any], object]
    accepted: tuple[Any, ...]
    refused: tuple[Any, ...]


FIELDS: dict[str, Field] = {
    "storage name": Field(v.storage_account_name, ("abc", "teamhome01", "a" * 24, "0123456789"),
                          ("ab", "a" * 25, "TeamHome", "team-home", "team_home", "tëam", "team home", "abc\n",
                           " abc", "abc;rm", "", 5, None)),
    "resource group": Field(v.resource_group_name,
                            ("rg", "my-rg_1", "rg.prod", "(rg)", "a" * 90, "räksmörgås", "R", "-", "_", "a.b",
                             "グループ"),
                            ("rg.", "a" * 91, "rg/x", "rg x", "rg#", "rg?", "rg\\x", "rg\x00", "rg|x", "rg;ls",
                             "rg$(x)", "", ".", "rg\n", "rg\t", "rg\u2028")),
    "region": Field(v.region_name, ("eastus", "East US", "westus2", "Sweden Central", "EASTUS", " east us ",
                                    "e1"),
                    ("east-us", "2eastus", "e", "east_us", "eastus;", "a" * 41, "\u212aorea", "", "eastus\n",
                     "East\tUS", "   ", "é1")),
    "vm name": Field(v.vm_name, ("vm1", "a", "web-01", "node.prod", "A_b", "x" * 64, "vm_", "1"),
                     ("-vm", "_vm", "vm-", "vm.", "x" * 65, "vm 1", "vm/1", "vm;1", "vm$", "vm\n", "é", "")),
    "network name": Field(lambda value: v.network_name(value, "vnet"),
                          ("vnet-dev", "default", "a", "x" * 80, "a_", "A.b-c"),
                          ("-a", "a-", "a.", "x" * 81, "a b", "", "_a", "vnet\n")),
    "linux user": Field(v.linux_user, ("azureuser", "_svc", "a-b", "u" * 32, "a1"),
                        ("Azure", "1abc", "u" * 33, "a.b", "", "-x", "a b", "user\n")),
    "mount point": Field(v.mount_point,
                         ("/home/azureuser", "/home/a_b-c", "/home/_svc", "/home/" + "u" * 32),
                         ("home/azureuser", "/home/azureuser/", "/home//azureuser", "/home/../etc",
                          "/home/./azureuser", "//home/azureuser", "/home/azure user", "/home/$(reboot)",
                          "/home/a;b", "/home/-rf", "/home/" + "a" * 33, "/home/Azure", "/home/a.b", "/",
                          "/home", "/etc", "/etc/ssh", "/home/azureuser/work", "/data/homes/alice", "",
                          "/home/azureuser\n")),
    "mount point, more roots": Field(lambda value: v.mount_point(value, roots=HOME_ROOTS),
                                     ("/home/azureuser", "/data/homes/alice", "/srv/p+q.x/bob"),
                                     ("/srv/pq.x/bob", "/srv/p+qax/bob", "/srv/ppq.x/bob", "/data/homes",
                                      "/data/homes/alice/work", "/data/homesx/alice", "/data/alice")),
    "snapshot": Field(snapshot_id, ("2026-12-03T02:00:00.0000000Z", "2026-12-03T02:00:00Z",
                                    "2026-12-03T02:00:00.1Z"),
                      ("2026-12-03T02:00:00.0000000Z\n", "٢٠٢٦-12-03T02:00:00Z",
                       "2026-12-03 02:00:00Z", "2026-12-03T02:00:00.12345678Z", "", "2026-12-03T02:00:00.Z")),
    "restore path": Field(restore_path, ("projects/report.txt", "a", "a//b", "a/", "...", "a/.hidden", "é/ü",
                                         "x" * 1024, "a/..b", "..a"),
                          ("", "/abs", ".", "..", "a/../b", "a/./b", "./a", "a/..", "a\x00b", "a\nb",
                           "x" * 1025, "a\x7f", "a/.", "../a", "a\u2028/..")),
    "object id": Field(lambda value: v.object_ids([value], "owners"),
                       ("3fa85f64-5717-4562-b3fc-2c963f66afa6", "3FA85F64-5717-4562-B3FC-2C963F66AFA6"),
                       (" 3fa85f64-5717-4562-b3fc-2c963f66afa6", "3fa85f645717-4562-b3fc-2c963f66afa6", "",
                        "g" * 36, "3fa85f64-5717-4562-b3fc-2c963f66afa6\n", "{3fa85f64-5717-4562-b3fc-2c963f66afa6}")),
    "idempotency key": Field(v.idempotency_key, ("a", "0f8fad5b-d9cb-469f-a165-70867728950e", "x" * 255, "k:1/2",
                                                 "~!"),
                             ("", "x" * 256, "a b", "ключ", "a\tb", "a\n")),
    "size, provisionedV2": Field(lambda value: v.size_gib(value, billing=Billing.PROVISIONED_V2),
                                 (32, 262_144, 100, 100.0, "32", "32GiB", "32gb", "1TiB", "256TB", "256tib",
                                  "262144GiB", "99999"),
                                 (31, 262_145, "31", "31GiB", "257TiB", "0TiB", "0", "", "1.5TiB", "100 GiB",
                                  "0100", "+100", True, None, 100.5, "1e3", "100MB", "1 TiB", "1Ti")),
    "size, provisionedV1": Field(lambda value: v.size_gib(value, billing=Billing.PROVISIONED_V1),
                                 (100, 102_400, "100", "100GB", "1TB", "100TiB", "102400gib"),
                                 (99, 102_401, "99GB", "101TiB", "102401", 32)),
    "flag": Field(lambda value: v.flag(value, "force"), ("true", "false"),
                  ("1", "yes", "True", "", "no", "0", "FALSE")),
    "detach mode": Field(v.detach_mode, ("copy", "restore"), ("COPY", "Restore", "", "move", " copy")),
    "statuses": Field(lambda value: v.one_of_each(value, "status", OperationStatus),
                      ("Pending", "Pending,Running", "Succeeded,Succeeded", "Failed"),
                      ("pending", "Pending, Running", "", ",Pending", "Pending,", "Done")),
    "kinds": Field(lambda value: v.one_of_each(value, "kind", OperationKind),
                   ("CreateStorage", "AttachVm,DetachVm", "ReconcileVm"),
                   ("createstorage", "Attach", "AttachVm;DetachVm")),
    "iops": Field(lambda value: v.provisioned(value, "iops", v.IOPS_RANGE), (3000, 102_400, 5000.0),
                  (2999, 102_401, "5000", True, 3000.5)),
    "throughput": Field(lambda value: v.provisioned(value, "throughputMibps", v.THROUGHPUT_RANGE),
                        (100, 10_340), (99, 10_341, "100")),
}
