"""Retention against Azurite: what is older than RETENTION_DAYS goes, nothing newer, nothing running."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from decimal import Decimal

from shared.adapters.tables import _key_row
from shared.bootstrap import Container
from shared.domain.digests import CostDigest
from shared.domain.operations import Operation, OperationKind
from shared.ports import IdempotencyRecord
from tests.fakes import FakeClock


def ended(app: Container, name: str, at: datetime, storage: str) -> Operation:
    operation = app.operations.add(Operation.new(OperationKind.VERIFY_VM, f"vm/rg/{name}", {}, at,
                                                 storage=storage))
    return app.operations.save(operation.start(at).succeed({}, at))


def test_retention_removes_what_is_older_than_the_window_and_nothing_newer(app: Container,
                                                                          clock: FakeClock) -> None:
    storage, tag = "st" + uuid.uuid4().hex[:8], uuid.uuid4().hex[:8]
    days = app.settings.retention_days
    at = {"old": clock.now() - timedelta(days=days + 1), "new": clock.now() - timedelta(days=days - 1)}
    operations = {age: ended(app, f"{age}-{tag}", when, storage) for age, when in at.items()}
    running = app.operations.add(Operation.new(OperationKind.VERIFY_VM, f"vm/rg/stuck-{tag}", {}, at["old"],
                                               storage=storage))
    for age, when in at.items():
        app.idempotency.claim(IdempotencyRecord(f"{age}-{tag}", "fp", operations[age].id, when),
                              expired_before=when - timedelta(days=1))
        app.handled_events.remember(f"event-{age}-{tag}", when)
        app.digest_records.add(CostDigest(f"{when:%Y-%m-%d}", when, "USD", (), Decimal(0), ()))

    removed = app.retention.run()

    assert removed["operation"] >= 1 and removed["idempotencyKey"] >= 1 and removed["handledEvent"] >= 1
    assert app.operations.get(operations["old"].id) is None
    assert app.operations.get(operations["new"].id) is not None
    assert app.operations.get(running.id) is not None  # not ended: never removed
    listed = {o.id for o in app.operations.list_about(f"storage|{storage}", 100, None).items}
    assert listed == {operations["new"].id, running.id}  # its index rows went with it
    keys = app.state.table("IdempotencyKeys")
    assert [bool(list(keys.query_entities("RowKey eq @r", parameters={"r": _key_row(f"{age}-{tag}")[1]})))
            for age in ("old", "new")] == [False, True]
    assert (app.handled_events.seen(f"event-old-{tag}"), app.handled_events.seen(f"event-new-{tag}")) == (False, True)
    assert app.digest_records.get(f"{at['old']:%Y-%m-%d}") is None
    assert app.digest_records.get(f"{at['new']:%Y-%m-%d}") is not None
    assert app.retention.run().get("operation", 0) == 0  # a second run finds nothing more of it
