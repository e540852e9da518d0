"""Service state on Azure Table Storage (azure-data-tables).

Tables (names prefixed by STATE_TABLE_PREFIX): Operations, OperationIndex, IdempotencyKeys,
Storages, Access, Attachments, DefaultStorage, Events, Locks, Prices, Digests, Reports. Records
are the models' JSON shapes: scalar members become properties, nested ones are stored as JSON
text under `<name>Json`. Keys never contain raw client text that Table Storage forbids
(`/ \\ # ?`, control characters): names are validated before they get here and idempotency keys
are hashed.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import json
import logging
import re
import threading
from collections import Counter
from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime, timedelta
from functools import cached_property
from typing import Any, TypeVar

from azure.core import MatchConditions
from azure.core.exceptions import (
    HttpResponseError,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
)
from azure.data.tables import TableClient, TableServiceClient, TableTransactionError, UpdateMode

from shared.domain.budget import Bucket, BucketState
from shared.domain.costs import CachedPrice
from shared.domain.digests import CostDigest, Delivery, UnattachedVm
from shared.domain.errors import ConcurrentUpdate, LeaseLost, ResourceBusy, ValidationError
from shared.domain.events import Asked
from shared.domain.models import Attachment, DefaultStorage, StorageAccess, StorageInfo, attached_elsewhere
from shared.domain.operations import (
    ANY_OPERATION,
    Operation,
    OperationFilter,
    OperationStatus,
    operation_subjects,
)
from shared.domain.serialization import format_time, from_json, parse_time, to_json
from shared.ports import Clock, IdempotencyRecord, Lease, Page
from shared.settings import StorageConnection

from .azure_errors import translated
from .credentials import managed_identity

log = logging.getLogger(__name__)
T = TypeVar("T")

DEPENDENCY = "Table Storage"
JSON_SUFFIX = "Json"
MAX_PROPERTY_CHARS = 32_000  # Table Storage holds at most 64 KiB (UTF-16) per string property
# Continuation values are opaque to us (Azure's look like "1!8!U21pdGg-"); anything printable is
# passed on, and the service's own 400 for a value it did not issue becomes a ValidationError.
_TOKEN_PART = re.compile(r"[\x21-\x7e]{1,1024}")
_CLIENT_OPTIONS: dict[str, Any] = {"retry_total": 2, "connection_timeout": 5, "read_timeout": 20}


class TableState:
    """Opens the service's tables, creating each at most once per process."""

    name = "tables"

    def __init__(self, connection: StorageConnection, prefix: str) -> None:
        self.connection = connection
        self.prefix = prefix
        self._tables: dict[str, TableClient] = {}
        self._lock = threading.Lock()

    @cached_property
    def service(self) -> TableServiceClient:
        if self.connection.connection_string:
            return TableServiceClient.from_connection_string(
                self.connection.connection_string, **_CLIENT_OPTIONS)
        assert self.connection.table_endpoint
        return TableServiceClient(self.connection.table_endpoint,
                                  credential=managed_identity(self.connection.client_id),
                                  **_CLIENT_OPTIONS)

    @translated(DEPENDENCY)
    def table(self, suffix: str) -> TableClient:
        with self._lock:
            if suffix not in self._tables:
                self._tables[suffix] = self.service.create_table_if_not_exists(self.prefix + suffix)
            return self._tables[suffix]

    @translated(DEPENDENCY)
    def check(self) -> None:
        next(iter(self.service.list_tables(results_per_page=1)), None)


def encode(model: object, partition: str, row: str, **extra: Any) -> dict[str, Any]:
    entity: dict[str, Any] = {"PartitionKey": partition, "RowKey": row}
    for name, value in {**to_json(model), **extra}.items():
        if value is None:
            continue
        nested = isinstance(value, (dict, list))
        stored = json.dumps(value, separators=(",", ":")) if nested else value
        if isinstance(stored, str) and len(stored) > MAX_PROPERTY_CHARS:
            raise ValueError(f"{name} is {len(stored)} characters; Table Storage holds {MAX_PROPERTY_CHARS}")
        entity[name + JSON_SUFFIX if nested else name] = stored
    return entity


def decode(cls: type[T], entity: Mapping[str, Any]) -> T:
    data = {}
    for key, value in entity.items():
        if key.endswith(JSON_SUFFIX) and isinstance(value, str):
            data[key[: -len(JSON_SUFFIX)]] = json.loads(value)
        else:
            data[key] = value
    return from_json(cls, data)


class _TableRecords:
    """Base of the repositories: each keeps its records in one table of the state."""

    TABLE: str

    def __init__(self, state: TableState) -> None:
        self.state = state

    @property
    def table(self) -> TableClient:
        return self.state.table(self.TABLE)


class TableOperationRepository(_TableRecords):
    """Each operation is one row, and one row of OperationIndex per subject it is listed under
    (its target, the storage it concerns), written first: an index row whose operation is missing
    (a crash in between) is skipped when listing."""

    ROW = "operation"
    TABLE = "Operations"
    INDEX = "OperationIndex"

    PENDING = "pending"  # index partition: operations recorded Pending, oldest first

    @translated(DEPENDENCY)
    def add(self, operation: Operation) -> Operation:
        index = self.state.table(self.INDEX)
        row = _newest_first(operation.created_at, operation.id)
        for subject in operation_subjects(operation):
            index.upsert_entity({"PartitionKey": subject, "RowKey": row, "operationId": operation.id})
        if operation.status is OperationStatus.PENDING:
            index.upsert_entity({"PartitionKey": self.PENDING, "RowKey": _oldest_first(operation),
                                 "operationId": operation.id})
        if operation.parent:  # a repeated submit must not mark a child that ended as running again
            with contextlib.suppress(ResourceExistsError):
                index.create_entity(self._child_entity(operation))
        try:
            entity = self._entity(operation)
            meta = self.table.create_entity(entity)
            _expires(self.state, operation.created_at, "op", operation.id)
        except ResourceExistsError:
            existing = self.get(operation.id)
            assert existing is not None
            if existing.parent and existing.is_terminal:
                self._child_row(existing)
            return existing
        return replace(operation, etag=meta["etag"])

    @translated(DEPENDENCY)
    def get(self, operation_id: str) -> Operation | None:
        try:
            entity = self.table.get_entity(operation_id, self.ROW)
        except ResourceNotFoundError:
            return None
        return replace(decode(Operation, entity), etag=entity.metadata["etag"])

    @translated(DEPENDENCY)
    def save(self, operation: Operation) -> Operation:
        entity = self._entity(operation)
        try:
            if operation.etag is None:
                meta = self.table.upsert_entity(entity, mode=UpdateMode.REPLACE)
            else:
                meta = self.table.update_entity(entity, mode=UpdateMode.REPLACE, etag=operation.etag,
                                                match_condition=MatchConditions.IfNotModified)
        except (ResourceModifiedError, ResourceNotFoundError) as err:
            raise ConcurrentUpdate(f"Operation {operation.id} was changed by someone else.",
                                   try_hint="the queue will retry with the current record") from err
        if operation.parent and operation.is_terminal:
            self._child_row(operation)
        return replace(operation, etag=meta["etag"])

    def _entity(self, operation: Operation) -> dict[str, Any]:
        """The record, with what callers never see: the nonce and the trace context."""
        return encode(operation, operation.id, self.ROW, nonce=operation.nonce or None,
                      trace=dict(operation.trace) or None)

    def _child_row(self, operation: Operation) -> None:
        """The parent's index of its children, each row saying whether that child has ended."""
        self.state.table(self.INDEX).upsert_entity(self._child_entity(operation))

    @staticmethod
    def _child_entity(operation: Operation) -> dict[str, Any]:
        return {"PartitionKey": f"children|{operation.parent}", "RowKey": operation.id,
                "operationId": operation.id, "ended": operation.is_terminal}

    @translated(DEPENDENCY)
    def list_stalled(self, updated_before: datetime) -> list[Operation]:
        """Reads only the Pending index's rows older than `updated_before`; a row whose operation
        has started (or ended) is removed on the way, so each is read at most once after that."""
        index = self.state.table(self.INDEX)
        rows = index.query_entities("PartitionKey eq @p and RowKey lt @before",
                                    parameters={"p": self.PENDING, "before": format_time(updated_before)})
        stalled = []
        for row in rows:
            operation = self.get(row["operationId"])
            waiting = operation is not None and operation.status is OperationStatus.PENDING
            if operation is not None and waiting and operation.attempts == 0:
                if operation.updated_at < updated_before:
                    stalled.append(operation)
                continue
            with contextlib.suppress(ResourceNotFoundError):
                index.delete_entity(self.PENDING, row["RowKey"])
        return stalled

    @translated(DEPENDENCY)
    def children_running(self, parent: str) -> bool:
        rows = self.state.table(self.INDEX).query_entities(
            "PartitionKey eq @p and ended eq false", parameters={"p": f"children|{parent}"},
            select=["RowKey"], results_per_page=1)
        return next(iter(rows), None) is not None

    @translated(DEPENDENCY)
    def children(self, parent: str) -> list[Operation]:
        rows = self.state.table(self.INDEX).query_entities("PartitionKey eq @p",
                                                           parameters={"p": f"children|{parent}"})
        found = [self.get(row["operationId"]) for row in rows]
        return [o for o in found if o is not None]

    # A filtered listing reads at most this many index rows per page; a page may then hold fewer
    # than asked, with a nextLink to read on (as OData allows: follow nextLink until it is absent).
    MAX_ROWS_PER_PAGE = 500

    @translated(DEPENDENCY)
    def list_about(self, subject: str, page_size: int, continuation: str | None,
                   only: OperationFilter = ANY_OPERATION) -> Page[Operation]:
        """Newest first. The token is the last index row read, so a filter never skips a match."""
        after = _decode_token(continuation)
        row_after = after.get("RowKey", "") if after else ""
        rows = self.state.table(self.INDEX).query_entities(
            "PartitionKey eq @p and RowKey gt @after", parameters={"p": subject, "after": row_after},
            select=["RowKey", "operationId"], results_per_page=min(page_size, self.MAX_ROWS_PER_PAGE))
        found: list[Operation] = []
        last, read = row_after, 0
        for row in rows:
            if len(found) == page_size or read == self.MAX_ROWS_PER_PAGE:
                return Page(found, _encode_token({"RowKey": last}))
            last, read = row["RowKey"], read + 1
            operation = self.get(row["operationId"])
            if operation is not None and only.matches(operation):
                found.append(operation)
        return Page(found, None)

    def forget_about(self, subject: str) -> None:
        _forget(self.state.table(self.INDEX), subject)

    @translated(DEPENDENCY)
    def remove(self, operation: Operation) -> None:
        """An ended operation goes, with every index row naming it (retention)."""
        index = self.state.table(self.INDEX)
        rows = [(subject, _newest_first(operation.created_at, operation.id))
                for subject in operation_subjects(operation)]
        rows.append((self.PENDING, _oldest_first(operation)))
        if operation.parent:
            rows.append((f"children|{operation.parent}", operation.id))
        for partition, row in rows:
            with contextlib.suppress(ResourceNotFoundError):
                index.delete_entity(partition, row)
        _forget(index, f"children|{operation.id}")
        with contextlib.suppress(ResourceNotFoundError):
            self.table.delete_entity(operation.id, self.ROW)


@translated(DEPENDENCY)
def _forget(index: TableClient, subject: str) -> None:
    rows = index.query_entities("PartitionKey eq @p", parameters={"p": subject}, select=["RowKey"])
    batch: list[Any] = []
    for row in rows:  # one partition: transactions of up to 100 deletes
        batch.append(("delete", {"PartitionKey": subject, "RowKey": row["RowKey"]}))
        if len(batch) == 100:
            index.submit_transaction(batch)
            batch = []
    if batch:
        index.submit_transaction(batch)


EXPIRY_TABLE = "Expiry"


def _expires(state: TableState, created_at: datetime, kind: str, key: str) -> None:
    """Note a record for retention, under the day it was made: the sweep reads old days only."""
    row = {"PartitionKey": f"{created_at:%Y%m%d}", "RowKey": f"{kind}|{key}"}
    state.table(EXPIRY_TABLE).upsert_entity(row)


class TableRetention:
    """Removes what is older than the window: ended operations (with their index rows),
    idempotency keys, handled events (each noted in the Expiry table under the day it was made),
    and digests (their row keys sort by date). Reads only the days before the window, and at most
    `limit` records a run; an operation still running is noted again under today."""

    name = "retention"

    def __init__(self, state: TableState, operations: TableOperationRepository, clock: Clock) -> None:
        self.state = state
        self.operations = operations
        self.clock = clock

    @translated(DEPENDENCY)
    def sweep(self, before: datetime, limit: int) -> dict[str, int]:
        expiry = self.state.table(EXPIRY_TABLE)
        removed: Counter[str] = Counter()
        rows = expiry.query_entities("PartitionKey lt @day", parameters={"day": f"{before:%Y%m%d}"},
                                     results_per_page=min(limit, 1000))
        for row in rows:
            if sum(removed.values()) >= limit:
                break
            kind, _, key = str(row["RowKey"]).partition("|")
            removed[self._remove(kind, key)] += 1
            expiry.delete_entity(row["PartitionKey"], row["RowKey"])
        removed["digest"] += self._old_digests(before, limit)
        removed.pop("kept", None)
        return dict(removed)

    def _remove(self, kind: str, key: str) -> str:
        if kind == "op":
            operation = self.operations.get(key)
            if operation is not None and not operation.is_terminal:
                _expires(self.state, self.clock.now(), "op", key)  # looked at again a window later
                return "kept"
            if operation is not None:
                self.operations.remove(operation)
            return "operation"
        table = {"key": TableIdempotencyStore.TABLE, "event": TableHandledEvents.TABLE}.get(kind)
        if table is not None:
            partition, _, row = key.partition("|")
            with contextlib.suppress(ResourceNotFoundError):
                self.state.table(table).delete_entity(partition, row)
            return {"key": "idempotencyKey", "event": "handledEvent"}[kind]
        return "kept"

    def _old_digests(self, before: datetime, limit: int) -> int:
        digests = self.state.table(TableDigestRepository.TABLE)
        old = digests.query_entities("PartitionKey eq @p and RowKey gt @row",
                                     parameters={"p": TableDigestRepository.PARTITION,
                                                 "row": _digest_row(f"{before:%Y-%m-%d}")},
                                     select=["PartitionKey", "RowKey"], results_per_page=min(limit, 1000))
        count = 0
        for entity in old:
            if count >= limit:
                break
            digests.delete_entity(entity["PartitionKey"], entity["RowKey"])
            count += 1
        return count


def _oldest_first(operation: Operation) -> str:
    return f"{format_time(operation.created_at)}|{operation.id}"


def _newest_first(moment: datetime, operation_id: str) -> str:
    """A row key that sorts newer operations first."""
    return f"{10**16 - int(moment.timestamp() * 1_000_000):017d}|{operation_id}"


class TableIdempotencyStore(_TableRecords):
    TABLE = "IdempotencyKeys"

    @translated(DEPENDENCY)
    def claim(self, record: IdempotencyRecord, expired_before: datetime) -> IdempotencyRecord:
        partition, row = _key_row(record.key)
        entity = {"PartitionKey": partition, "RowKey": row, "fingerprint": record.fingerprint,
                  "operationId": record.operation_id, "createdAt": format_time(record.created_at),
                  "queued": record.queued}
        try:
            claimed = replace(record, etag=self.table.create_entity(entity)["etag"])
            _expires(self.state, record.created_at, "key", f"{partition}|{row}")
            return claimed
        except ResourceExistsError:
            pass
        held = self.table.get_entity(partition, row)
        holder = IdempotencyRecord(record.key, held["fingerprint"], held["operationId"],
                                   parse_time(held["createdAt"]), bool(held.get("queued")),
                                   held.metadata["etag"])
        if holder.created_at >= expired_before:
            return holder
        try:  # the old claim has expired: this request starts afresh
            meta = self.table.update_entity(entity, mode=UpdateMode.REPLACE, etag=holder.etag,
                                            match_condition=MatchConditions.IfNotModified)
            return replace(record, etag=meta["etag"])
        except (ResourceModifiedError, ResourceNotFoundError):
            return self.claim(record, expired_before)

    @translated(DEPENDENCY)
    def reserve_send(self, record: IdempotencyRecord) -> bool:
        partition, row = _key_row(record.key)
        try:
            self.table.update_entity({"PartitionKey": partition, "RowKey": row, "queued": True},
                                     mode=UpdateMode.MERGE, etag=record.etag,
                                     match_condition=MatchConditions.IfNotModified)
        except (ResourceModifiedError, ResourceNotFoundError):
            return False
        return True

    @translated(DEPENDENCY)
    def release_send(self, record: IdempotencyRecord) -> None:
        partition, row = _key_row(record.key)
        with contextlib.suppress(ResourceNotFoundError):
            self.table.update_entity({"PartitionKey": partition, "RowKey": row, "queued": False},
                                     mode=UpdateMode.MERGE)


def _key_row(key: str) -> tuple[str, str]:
    """Keys are client text: hashed, so any printable key is a valid row key."""
    digest = hashlib.sha256(key.encode()).hexdigest()
    return digest[:2], digest


class TableStorageRepository(_TableRecords):
    PARTITION = "storage"
    TABLE = "Storages"

    @translated(DEPENDENCY)
    def get(self, name: str) -> StorageInfo | None:
        try:
            return decode(StorageInfo, self.table.get_entity(self.PARTITION, name))
        except ResourceNotFoundError:
            return None

    @translated(DEPENDENCY)
    def list(self, resource_group: str | None, page_size: int,
             continuation: str | None) -> Page[StorageInfo]:
        query, params = "PartitionKey eq @p", {"p": self.PARTITION}
        if resource_group is not None:
            query, params["rg"] = query + " and resourceGroupKey eq @rg", resource_group.lower()
        pages = self.table.query_entities(query, parameters=params, results_per_page=page_size)
        # Table Storage continuation tokens are dicts, though ItemPaged annotates them as str.
        pager = pages.by_page(continuation_token=_decode_token(continuation))  # type: ignore[arg-type]
        try:
            items = [decode(StorageInfo, e) for e in next(pager, [])]
        except HttpResponseError as err:
            if continuation is None or err.status_code != 400:
                raise
            raise _forged_token() from err
        return Page(items, _encode_token(pager.continuation_token))  # type: ignore[attr-defined]

    @translated(DEPENDENCY)
    def save(self, storage: StorageInfo) -> None:
        entity = encode(storage, self.PARTITION, storage.name,
                        resourceGroupKey=storage.resource_group.lower())
        self.table.upsert_entity(entity, mode=UpdateMode.REPLACE)

    @translated(DEPENDENCY)
    def delete(self, name: str) -> None:
        self.table.delete_entity(self.PARTITION, name)


class TableAccessRepository(_TableRecords):
    """A storage's owners and members: one row per storage, changed only by conditional writes."""

    PARTITION = "access"
    TABLE = "Access"

    @translated(DEPENDENCY)
    def get(self, storage: str) -> StorageAccess | None:
        try:
            entity = self.table.get_entity(self.PARTITION, storage)
        except ResourceNotFoundError:
            return None
        return replace(decode(StorageAccess, entity), etag=entity.metadata["etag"])

    @translated(DEPENDENCY)
    def add(self, access: StorageAccess) -> StorageAccess:
        try:
            meta = self.table.create_entity(encode(access, self.PARTITION, access.storage))
        except ResourceExistsError:
            existing = self.get(access.storage)
            assert existing is not None
            return existing
        return replace(access, etag=meta["etag"])

    @translated(DEPENDENCY)
    def save(self, access: StorageAccess) -> StorageAccess:
        try:
            meta = self.table.update_entity(encode(access, self.PARTITION, access.storage),
                                            mode=UpdateMode.REPLACE, etag=access.etag,
                                            match_condition=MatchConditions.IfNotModified)
        except (ResourceModifiedError, ResourceNotFoundError) as err:
            raise ConcurrentUpdate(f"The access of storage {access.storage} was changed meanwhile.",
                                   try_hint="read it again, then send the change") from err
        return replace(access, etag=meta["etag"])

    @translated(DEPENDENCY)
    def delete(self, storage: str) -> None:
        with contextlib.suppress(ResourceNotFoundError):
            self.table.delete_entity(self.PARTITION, storage)


class TableAttachmentRepository(_TableRecords):
    """One partition; each attachment is two rows written in one transaction: `vm|rg|vm`
    (unique: a VM has at most one attachment) and `storage|name|rg|vm` (lists a storage's VMs).
    `detached|<hash of vmId>` rows remember VMs detached on purpose, `asked|<hash of vmId>` rows
    what a VM asks for and who asked (from its events).
    `|` cannot occur in Azure resource names, so the keys cannot collide."""

    PARTITION = "attachment"
    TABLE = "Attachments"

    @translated(DEPENDENCY)
    def get(self, resource_group: str, vm: str) -> Attachment | None:
        try:
            return decode(Attachment, self.table.get_entity(self.PARTITION, _vm_row(resource_group, vm)))
        except ResourceNotFoundError:
            return None

    @translated(DEPENDENCY)
    def list_for_storage(self, storage: str) -> list[Attachment]:
        prefix = f"storage|{storage}|"
        entities = self.table.query_entities(
            "PartitionKey eq @p and RowKey ge @lo and RowKey lt @hi",
            parameters={"p": self.PARTITION, "lo": prefix, "hi": prefix[:-1] + "}"})
        return [decode(Attachment, e) for e in entities]

    @translated(DEPENDENCY)
    def list_all(self) -> list[Attachment]:
        entities = self.table.query_entities(
            "PartitionKey eq @p and RowKey ge @lo and RowKey lt @hi",
            parameters={"p": self.PARTITION, "lo": "vm|", "hi": "vm}"})
        return [decode(Attachment, e) for e in entities]

    @translated(DEPENDENCY)
    def add(self, attachment: Attachment) -> Attachment:
        vm_row, storage_row = self._rows(attachment)
        try:
            self.table.submit_transaction([("create", vm_row), ("upsert", storage_row)])
            return attachment
        except TableTransactionError as err:
            if err.status_code != 409:
                raise
        existing = self.get(attachment.resource_group, attachment.vm)
        if existing is None:
            raise ConcurrentUpdate(f"The attachment of VM {attachment.vm} changed while recording it.")
        if existing.storage != attachment.storage:
            raise attached_elsewhere(attachment.vm, existing)
        return existing

    @translated(DEPENDENCY)
    def save(self, attachment: Attachment) -> None:
        vm_row, storage_row = self._rows(attachment)
        try:
            self.table.submit_transaction([("update", vm_row, {"mode": UpdateMode.REPLACE}),
                                           ("update", storage_row, {"mode": UpdateMode.REPLACE})])
        except TableTransactionError as err:
            if err.status_code != 404:
                raise
            raise ConcurrentUpdate(f"VM {attachment.vm} was detached while its record was updated.") from err

    @translated(DEPENDENCY)
    def remove(self, resource_group: str, vm: str, *, vm_id: str | None = None) -> None:
        try:
            entity = self.table.get_entity(self.PARTITION, _vm_row(resource_group, vm))
        except ResourceNotFoundError:
            return
        existing = decode(Attachment, entity)
        if vm_id is not None and existing.vm_id != vm_id:
            return  # a newer VM's record
        vm_row, storage_row = self._rows(existing)
        # The VM row only as it was read: a record rewritten meanwhile is not deleted by mistake.
        when_unchanged = {"etag": entity.metadata["etag"], "match_condition": MatchConditions.IfNotModified}
        try:
            self.table.submit_transaction([("delete", vm_row, when_unchanged), ("delete", storage_row)])
        except TableTransactionError as err:
            if err.status_code == 412:
                raise ConcurrentUpdate(f"The attachment of VM {vm} changed while being removed.") from err
            if err.status_code != 404:
                raise
            # Removed concurrently (or a row is missing): delete each; missing rows are no error.
            for row in (storage_row, vm_row):
                self.table.delete_entity(row["PartitionKey"], row["RowKey"])

    @translated(DEPENDENCY)
    def mark_detached(self, vm_id: str, at: datetime) -> None:
        self.table.upsert_entity({"PartitionKey": self.PARTITION, "RowKey": _detached_row(vm_id),
                                  "vmId": vm_id, "detachedAt": format_time(at)})

    @translated(DEPENDENCY)
    def was_detached(self, vm_id: str) -> bool:
        try:
            self.table.get_entity(self.PARTITION, _detached_row(vm_id))
        except ResourceNotFoundError:
            return False
        return True

    @translated(DEPENDENCY)
    def clear_detached(self, vm_id: str) -> None:
        with contextlib.suppress(ResourceNotFoundError):
            self.table.delete_entity(self.PARTITION, _detached_row(vm_id))

    @translated(DEPENDENCY)
    def remember_ask(self, vm_id: str, asked: Asked) -> None:
        entity = encode(asked, self.PARTITION, _vm_id_row("asked", vm_id), vmId=vm_id)
        self.table.upsert_entity(entity, mode=UpdateMode.REPLACE)

    @translated(DEPENDENCY)
    def asked_of(self, vm_id: str) -> Asked | None:
        try:
            return decode(Asked, self.table.get_entity(self.PARTITION, _vm_id_row("asked", vm_id)))
        except ResourceNotFoundError:
            return None

    def _rows(self, attachment: Attachment) -> tuple[dict[str, Any], dict[str, Any]]:
        vm_key = _vm_row(attachment.resource_group, attachment.vm)
        storage_key = f"storage|{attachment.storage}|{vm_key[3:]}"
        return (encode(attachment, self.PARTITION, vm_key),
                encode(attachment, self.PARTITION, storage_key))


class TableDefaultStorageRepository(_TableRecords):
    PARTITION = "group"
    TABLE = "DefaultStorage"

    @translated(DEPENDENCY)
    def get(self, resource_group: str) -> DefaultStorage | None:
        try:
            return decode(DefaultStorage, self.table.get_entity(self.PARTITION, resource_group.lower()))
        except ResourceNotFoundError:
            return None

    @translated(DEPENDENCY)
    def save(self, default: DefaultStorage) -> None:
        entity = encode(default, self.PARTITION, default.resource_group.lower())
        self.table.upsert_entity(entity, mode=UpdateMode.REPLACE)

    @translated(DEPENDENCY)
    def remove(self, resource_group: str) -> None:
        with contextlib.suppress(ResourceNotFoundError):
            self.table.delete_entity(self.PARTITION, resource_group.lower())


class TableHandledEvents(_TableRecords):
    TABLE = "Events"

    @translated(DEPENDENCY)
    def seen(self, event_id: str) -> bool:
        try:
            self.table.get_entity(*_key_row(event_id))
        except ResourceNotFoundError:
            return False
        return True

    @translated(DEPENDENCY)
    def remember(self, event_id: str, at: datetime) -> None:
        partition, row = _key_row(event_id)  # ids are the sender's text: hashed
        self.table.upsert_entity({"PartitionKey": partition, "RowKey": row, "handledAt": format_time(at)})
        _expires(self.state, at, "event", f"{partition}|{row}")


class TablePriceCache(_TableRecords):
    PARTITION = "price"
    TABLE = "Prices"

    @translated(DEPENDENCY)
    def get(self, key: str) -> CachedPrice | None:
        try:
            return decode(CachedPrice, self.table.get_entity(self.PARTITION, key))
        except ResourceNotFoundError:
            return None

    @translated(DEPENDENCY)
    def save(self, price: CachedPrice) -> None:
        # Decimal as text: a float would round the price.
        amount = None if price.amount is None else str(price.amount)
        self.table.upsert_entity(encode(price, self.PARTITION, price.key, amount=amount),
                                 mode=UpdateMode.REPLACE)


class TableDigestRepository(_TableRecords):
    """Row keys count down with the date, so the newest digest is the first row."""

    PARTITION = "digest"
    DUE = "due"  # one row per day whose digest is to be made
    TABLE = "Digests"

    @translated(DEPENDENCY)
    def add(self, digest: CostDigest) -> CostDigest:
        try:
            meta = self.table.create_entity(self._entity(digest))
        except ResourceExistsError:
            existing = self.get(digest.id)
            assert existing is not None
            return existing
        return replace(digest, etag=meta["etag"])

    @translated(DEPENDENCY)
    def get(self, digest_id: str) -> CostDigest | None:
        try:
            return self._decode(self.table.get_entity(self.PARTITION, _digest_row(digest_id)))
        except ResourceNotFoundError:
            return None

    @translated(DEPENDENCY)
    def latest(self, before: str | None = None) -> CostDigest | None:
        query, params = "PartitionKey eq @p", {"p": self.PARTITION}
        if before is not None:
            query, params["row"] = query + " and RowKey gt @row", _digest_row(before)
        for entity in self.table.query_entities(query, parameters=params, results_per_page=1):
            return self._decode(entity)
        return None

    @translated(DEPENDENCY)
    def save(self, digest: CostDigest) -> CostDigest:
        try:
            meta = self.table.update_entity(self._entity(digest), mode=UpdateMode.REPLACE, etag=digest.etag,
                                            match_condition=MatchConditions.IfNotModified)
        except (ResourceModifiedError, ResourceNotFoundError) as err:
            raise ConcurrentUpdate(f"Digest {digest.id} was changed by someone else.") from err
        return replace(digest, etag=meta["etag"])

    @translated(DEPENDENCY)
    def undelivered(self) -> list[CostDigest]:
        entities = self.table.query_entities(
            # Spaces around the parentheses: the SDK finds @parameters by splitting on spaces.
            "PartitionKey eq @p and ( delivery eq @pending or delivery eq @posting )",
            parameters={"p": self.PARTITION, "pending": Delivery.PENDING.value,
                        "posting": Delivery.POSTING.value})
        return [self._decode(e) for e in entities]

    @translated(DEPENDENCY)
    def mark_due(self, digest_id: str) -> None:
        self.table.upsert_entity({"PartitionKey": self.DUE, "RowKey": digest_id})

    @translated(DEPENDENCY)
    def due(self) -> list[str]:
        entities = self.table.query_entities("PartitionKey eq @p", parameters={"p": self.DUE})
        return [e["RowKey"] for e in entities]

    @translated(DEPENDENCY)
    def clear_due(self, digest_id: str) -> None:
        with contextlib.suppress(ResourceNotFoundError):
            self.table.delete_entity(self.DUE, digest_id)

    def _entity(self, digest: CostDigest) -> dict[str, Any]:
        return encode(digest, self.PARTITION, _digest_row(digest.id))

    @staticmethod
    def _decode(entity: Any) -> CostDigest:
        return replace(decode(CostDigest, entity), etag=entity.metadata["etag"])


class TableReconcileFindings(_TableRecords):
    """The findings of the latest reconcile run, in one row."""

    TABLE = "Reports"
    KEY = ("reconcile", "latest")

    @translated(DEPENDENCY)
    def save(self, not_attached: list[UnattachedVm], at: datetime) -> None:
        # The newest first, and as many as fit in a property: a digest shows them, not a database.
        shown, text = list(not_attached), ""
        while True:
            text = json.dumps([to_json(f) for f in shown], separators=(",", ":"))
            if len(text) <= MAX_PROPERTY_CHARS:
                break
            shown = shown[: len(shown) // 2]
        self.table.upsert_entity({"PartitionKey": self.KEY[0], "RowKey": self.KEY[1], "at": format_time(at),
                                  "notAttachedJson": text, "notAttachedCount": len(not_attached)},
                                 mode=UpdateMode.REPLACE)

    @translated(DEPENDENCY)
    def latest(self) -> list[UnattachedVm]:
        try:
            entity = self.table.get_entity(*self.KEY)
        except ResourceNotFoundError:
            return []
        return [from_json(UnattachedVm, item) for item in json.loads(entity.get("notAttachedJson") or "[]")]


def _digest_row(digest_id: str) -> str:
    """YYYY-MM-DD -> a key that sorts newest first."""
    return f"{99999999 - int(digest_id.replace('-', '')):08d}"


class TableLockManager(_TableRecords):
    """Per-resource locks: a row per resource with an expiring lease. Every change is conditional
    on the ETag read, so of two workers racing for one lock exactly one wins.

    Shared leases are a row each in the partition `shared|<key>`. A shared holder writes its row
    and then reads the exclusive one; an exclusive holder writes its row and then reads the
    shared ones. Of two that race, at least one sees the other and steps back (both may: each
    is looked at again soon), so a reader and a writer never both hold the key."""

    PARTITION = "lock"
    TABLE = "Locks"

    def __init__(self, state: TableState, clock: Clock, lease_seconds: int) -> None:
        super().__init__(state)
        self.clock = clock
        self.lease = timedelta(seconds=lease_seconds)

    @translated(DEPENDENCY)
    def acquire(self, key: str, owner: str, holder: str, *, shared: bool = False) -> Lease:
        if shared:
            return self._acquire_shared(key, owner, holder)
        lease = self._acquire_exclusive(key, owner, holder)
        reader = self._live_reader(key)
        if reader is not None:
            self.release(lease)
            raise self._busy(key, reader["holder"], parse_time(reader["expiresAt"]))
        return lease

    def _acquire_exclusive(self, key: str, owner: str, holder: str) -> Lease:
        now = self.clock.now()
        entity = self._entity(key, owner, holder, now + self.lease)
        try:
            return self._lease(entity, self.table.create_entity(entity))
        except ResourceExistsError:
            pass
        try:
            current = self.table.get_entity(self.PARTITION, key)
        except ResourceNotFoundError:  # released between our two calls: one more try
            try:
                return self._lease(entity, self.table.create_entity(entity))
            except ResourceExistsError as err:
                raise self._busy(key, None, None) from err
        expires_at = parse_time(current["expiresAt"])
        if expires_at > now:
            raise self._busy(key, current["holder"], expires_at)
        try:  # expired: take it over, unless another worker just did
            meta = self.table.update_entity(entity, mode=UpdateMode.REPLACE,
                                            etag=current.metadata["etag"],
                                            match_condition=MatchConditions.IfNotModified)
        except (ResourceModifiedError, ResourceNotFoundError) as err:
            raise self._busy(key, None, None) from err
        log.warning("lock %s: took over an expired lease of %s", key, current["holder"])
        return self._lease(entity, meta)

    def _acquire_shared(self, key: str, owner: str, holder: str) -> Lease:
        entity = self._entity(key, owner, holder, self.clock.now() + self.lease, shared=True)
        lease = self._lease(entity, self.table.create_entity(entity), shared=True)
        try:
            writer = self.table.get_entity(self.PARTITION, key)
        except ResourceNotFoundError:
            return lease
        until = parse_time(writer["expiresAt"])
        if until <= self.clock.now():
            return lease  # an expired writer: the next exclusive acquire sees this row
        self.release(lease)
        raise self._busy(key, writer["holder"], until)

    def _live_reader(self, key: str) -> Mapping[str, Any] | None:
        """A shared holder whose lease still runs; expired ones are removed on the way."""
        now = self.clock.now()
        for row in self.table.query_entities("PartitionKey eq @p", parameters={"p": _shared_partition(key)}):
            if parse_time(row["expiresAt"]) > now:
                return row
            with contextlib.suppress(ResourceNotFoundError, ResourceModifiedError):
                self.table.delete_entity(row["PartitionKey"], row["RowKey"], etag=row.metadata["etag"],
                                         match_condition=MatchConditions.IfNotModified)
        return None

    @translated(DEPENDENCY)
    def renew(self, lease: Lease) -> Lease:
        entity = self._entity(lease.key, lease.owner, lease.holder, self.clock.now() + self.lease,
                              shared=lease.shared)
        try:
            meta = self.table.update_entity(entity, mode=UpdateMode.REPLACE, etag=lease.etag,
                                            match_condition=MatchConditions.IfNotModified)
        except (ResourceModifiedError, ResourceNotFoundError) as err:
            raise LeaseLost(f"The lock on {lease.key} was lost after its lease expired.",
                            causes=["another worker took it over"]) from err
        return self._lease(entity, meta, shared=lease.shared)

    @translated(DEPENDENCY)
    def release(self, lease: Lease) -> None:
        partition, row = ((_shared_partition(lease.key), lease.owner) if lease.shared
                          else (self.PARTITION, lease.key))
        try:
            self.table.delete_entity(partition, row, etag=lease.etag,
                                     match_condition=MatchConditions.IfNotModified)
        except ResourceNotFoundError:
            pass
        except ResourceModifiedError:
            log.warning("lock %s: not released, it was taken over after its lease expired", lease.key)

    def _entity(self, key: str, owner: str, holder: str, expires_at: datetime, *,
                shared: bool = False) -> dict[str, Any]:
        partition, row = (_shared_partition(key), owner) if shared else (self.PARTITION, key)
        return {"PartitionKey": partition, "RowKey": row, "key": key, "owner": owner, "holder": holder,
                "expiresAt": format_time(expires_at)}

    @staticmethod
    def _lease(entity: Mapping[str, Any], meta: Mapping[str, Any], *, shared: bool = False) -> Lease:
        return Lease(entity["key"], entity["owner"], entity["holder"],
                     parse_time(entity["expiresAt"]), meta["etag"], shared=shared)

    @staticmethod
    def _busy(key: str, holder: str | None, until: datetime | None) -> ResourceBusy:
        lease = f"; its lease runs until {format_time(until)}" if until else ""
        who = f"operation {holder}" if holder else "another worker"
        return ResourceBusy(f"{key} is busy with {who}.", holder=holder, until=until,
                            causes=[f"one mutating operation per resource at a time{lease}"],
                            try_hint="this operation runs when the resource is free",
                            retry_after=15)


class TablePendingAdmissions(_TableRecords):
    """A row per address waiting for a storage's network rule, in the storage's partition."""

    TABLE = "Admissions"
    FRESH = timedelta(minutes=10)

    def __init__(self, state: TableState, clock: Clock) -> None:
        super().__init__(state)
        self.clock = clock

    @translated(DEPENDENCY)
    def add(self, storage: str, address: str) -> None:
        self.table.upsert_entity({"PartitionKey": storage, "RowKey": address,
                                  "addedAt": format_time(self.clock.now())})

    @translated(DEPENDENCY)
    def waiting(self, storage: str) -> set[str]:
        oldest = self.clock.now() - self.FRESH
        rows = self.table.query_entities("PartitionKey eq @p", parameters={"p": storage})
        return {row["RowKey"] for row in rows if parse_time(row["addedAt"]) > oldest}

    @translated(DEPENDENCY)
    def remove(self, storage: str, addresses: set[str]) -> None:
        for address in addresses:
            with contextlib.suppress(ResourceNotFoundError):
                self.table.delete_entity(storage, address)


class TableCallBudget(_TableRecords):
    """Token buckets per kind of Resource Manager call (shared.domain.budget), one row each, every
    change conditional on the ETag read: instances racing for the last token, one gets it."""

    TABLE = "Budgets"
    PARTITION = "arm"
    CONFLICT_RETRIES = 8

    def __init__(self, state: TableState, clock: Clock, buckets: Mapping[str, Bucket]) -> None:
        super().__init__(state)
        self.clock = clock
        self.buckets = dict(buckets)

    @translated(DEPENDENCY)
    def take(self, kind: str) -> float:
        bucket = self.buckets.get(kind)
        if bucket is None:
            return 0.0
        for _ in range(self.CONFLICT_RETRIES):
            now = self.clock.now()
            current, etag = self._read(kind, bucket, now)
            after, wait = current.take(bucket, now)
            if wait > 0:
                return wait
            if self._write(kind, after, etag):
                return 0.0
        return 1 / bucket.per_second  # a crowd at the bucket: look again in one token's time

    @translated(DEPENDENCY)
    def hold_off(self, kind: str, seconds: float) -> None:
        bucket = self.buckets.get(kind)
        if bucket is None:
            return
        for _ in range(self.CONFLICT_RETRIES):
            now = self.clock.now()
            current, etag = self._read(kind, bucket, now)
            if self._write(kind, current.hold_off(now, seconds), etag):
                return

    def _read(self, kind: str, bucket: Bucket, now: datetime) -> tuple[BucketState, str | None]:
        try:
            row = self.table.get_entity(self.PARTITION, kind)
        except ResourceNotFoundError:
            return BucketState.full(bucket, now), None
        blocked = row.get("blockedUntil")
        return (BucketState(float(row["tokens"]), parse_time(row["updatedAt"]),
                            parse_time(blocked) if blocked else None), row.metadata["etag"])

    def _write(self, kind: str, state: BucketState, etag: str | None) -> bool:
        entity = {"PartitionKey": self.PARTITION, "RowKey": kind, "tokens": float(state.tokens),
                  "updatedAt": format_time(state.updated_at),
                  "blockedUntil": format_time(state.blocked_until) if state.blocked_until else ""}
        try:
            if etag is None:
                self.table.create_entity(entity)
            else:
                self.table.update_entity(entity, mode=UpdateMode.REPLACE, etag=etag,
                                         match_condition=MatchConditions.IfNotModified)
        except (ResourceExistsError, ResourceModifiedError, ResourceNotFoundError):
            return False
        return True


def _shared_partition(key: str) -> str:
    return f"shared|{key}"


def _detached_row(vm_id: str) -> str:
    return _vm_id_row("detached", vm_id)


def _vm_id_row(kind: str, vm_id: str) -> str:
    return f"{kind}|" + hashlib.sha256(vm_id.encode()).hexdigest()  # Azure's text: hashed


def _vm_row(resource_group: str, vm: str) -> str:
    return f"vm|{resource_group.lower()}|{vm.lower()}"


def _encode_token(token: Mapping[str, str] | None) -> str | None:
    if not token:
        return None
    return base64.urlsafe_b64encode(json.dumps(token).encode()).decode()


def _decode_token(text: str | None) -> dict[str, str] | None:
    if text is None:
        return None
    try:
        token = json.loads(base64.urlsafe_b64decode(text.encode()))
    except (ValueError, binascii.Error, UnicodeError):
        token = None
    if not (isinstance(token, dict) and token.keys() <= {"PartitionKey", "RowKey"}
            and all(isinstance(v, str) and _TOKEN_PART.fullmatch(v) for v in token.values())):
        raise _forged_token()
    return token


def _forged_token() -> ValidationError:
    return ValidationError("'$skipToken' is not a token this service issued.",
                           try_hint="follow nextLink exactly as returned, or start from the first page")
