"""The daily cost digest: built once per UTC day, stored, and posted to COST_DIGEST_WEBHOOK_URL
once.

Exactly once, under retried timers and failed posts: a run builds today's digest only if none is
stored (a second run that day reuses it); a post is made only by the run that claimed the digest
(a conditional write on its ETag), and is recorded as delivered after it succeeds. A failed post
leaves it pending for the next run (the hourly cost refresh retries pending ones), up to a day of
attempts. The one window left, a crash between the webhook's 2xx and the record of it, resends
after CLAIM_EXPIRY with the same `Idempotency-Key: azlin-digest-<id>` so a receiver can drop it.

On demand (`make_today`, POST /api/digests?force=true) today's digest is made again from the
figures now, replacing the stored one as its next revision (an ETag-conditioned write), and
posted again under the revision's own key (`azlin-digest-<id>-r<n>`).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta
from typing import Any

from shared.domain import rbac
from shared.domain.digests import (
    CostDigest,
    Delivery,
    StorageUse,
    build_digest,
    digest_id,
    for_groups,
    render_markdown,
)
from shared.domain.errors import ConcurrentUpdate, ErrorCode, NotFound, PermissionDenied, ServiceError
from shared.domain.identity import Caller
from shared.domain.models import StorageInfo
from shared.domain.serialization import to_json
from shared.ports import AttachmentRepository, Clock, DigestRepository, ReconcileFindings, Webhook

from .costs import CostService

log = logging.getLogger(__name__)
CLAIM_EXPIRY = timedelta(minutes=10)  # a run that claimed a post and vanished is presumed dead
REMAKE_TRIES = 3  # a remade digest is written over the day's; a concurrent write makes it read again
_DELIVERY_FIELDS = ("delivery", "deliveryAttempts", "deliveredAt", "deliveryError", "claimedAt")


class DigestService:
    def __init__(self, costs: CostService, used_gb: Callable[[StorageInfo], float | None],
                 attachments: AttachmentRepository, digests: DigestRepository, webhook: Webhook,
                 clock: Clock, webhook_url: str | None, findings: ReconcileFindings) -> None:
        self.findings = findings
        self.costs = costs
        self.used_gb = used_gb
        self.attachments = attachments
        self.digests = digests
        self.webhook = webhook
        self.clock = clock
        self.webhook_url = webhook_url

    def run(self) -> CostDigest:
        """Today's digest, built if it is not stored yet, and posted if it is not yet. The day is
        marked due first: if building fails (Resource Manager down at that hour), the hourly run
        builds it later that day."""
        day = digest_id(self.clock.now())
        self.digests.mark_due(day)
        return self._deliver(self._stored(day))

    def deliver_pending(self) -> int:
        """Build today's digest if its run failed; post every digest whose post has not
        succeeded yet; the number delivered now."""
        today = digest_id(self.clock.now())
        for day in self.digests.due():
            if day == today:
                self._stored(day)
            else:  # a day that has passed: its figures can no longer be taken
                log.warning("cost digest %s was never made: its run failed all day", day)
                self.digests.clear_due(day)
        delivered = 0
        for digest in self.digests.undelivered():
            delivered += self._deliver(digest).delivery is Delivery.DELIVERED
        return delivered

    def latest(self, caller: Caller) -> CostDigest:
        """The newest digest, showing only the resource groups the caller may read."""
        digest = self.digests.latest()
        if digest is None:
            raise NotFound("No cost digest has been made yet.",
                           try_hint="the digest timer makes one a day (COST_DIGEST_SCHEDULE), or "
                                    "POST /api/digests makes today's now",
                           code=ErrorCode.NOT_FOUND)
        return self._as_seen_by(caller, digest)

    def make_today(self, caller: Caller, *, force: bool) -> tuple[CostDigest, bool]:
        """Today's digest, as the caller may see it, and whether this call made it: the stored
        one, else made now; with `force`, made again from the figures now (so it agrees with
        GET /api/costs) and posted again. Everyone reads the digest, so only someone who may
        read every resource group it covers may make it; nothing is stored otherwise."""
        day = digest_id(self.clock.now())
        stored = self.digests.get(day)
        if stored is not None and not force:
            return self._as_seen_by(caller, stored), False
        fresh = self._build()
        self._require_all_readable(caller, fresh)
        digest, made = self._store(day, fresh, force=force)
        self.digests.clear_due(day)  # a day the timer failed to make is made now
        if made:
            log.info("cost digest %s: made on demand by %s (revision %d)", day, caller.object_id,
                     digest.revision)
            digest = self._deliver(digest)
        return self._as_seen_by(caller, digest), made

    def _require_all_readable(self, caller: Caller, digest: CostDigest) -> None:
        groups = {g.resource_group.lower() for g in digest.groups}
        hidden = sorted(groups - self.costs.access.readable_groups(caller, groups))
        if hidden:
            more = f" and {len(hidden) - 10} more" if len(hidden) > 10 else ""
            raise PermissionDenied(
                "Only someone who may read every resource group the digest covers may make it: "
                "everyone reads it.",
                causes=[f"no role of yours allows {rbac.GROUP_READ} over resource group(s) "
                        + ", ".join(hidden[:10]) + more],
                try_hint="read your part of it (GET /api/digests/latest), or ask for the Reader role on "
                         "the subscription",
                code=ErrorCode.AUTHORIZATION_FAILED)

    def _as_seen_by(self, caller: Caller, digest: CostDigest) -> CostDigest:
        groups = {g.resource_group.lower() for g in digest.groups}
        return for_groups(digest, self.costs.access.readable_groups(caller, groups))

    def _store(self, day: str, fresh: CostDigest, *, force: bool) -> tuple[CostDigest, bool]:
        """`fresh` as the day's digest, and whether it was stored: added when there is none;
        with `force`, written over the stored one as its next revision; else the stored one
        (a timer run made it meanwhile) stays."""
        for _ in range(REMAKE_TRIES):
            current = self.digests.get(day)
            if current is None:
                added = self.digests.add(fresh)  # a concurrent run's digest wins
                return added, added.created_at == fresh.created_at
            if not force:
                return current, False
            try:
                next_revision = replace(fresh, revision=current.revision + 1, etag=current.etag)
                return self.digests.save(next_revision), True
            except ConcurrentUpdate:  # a timer run changed it (its delivery): read it again
                continue
        raise ConcurrentUpdate(f"Digest {day} kept changing while it was made again.",
                               try_hint="try again in a minute")

    def _stored(self, day: str) -> CostDigest:
        digest = self.digests.get(day)
        if digest is None:
            digest = self.digests.add(self._build())  # a concurrent run's digest wins
        self.digests.clear_due(day)
        return digest

    def _build(self) -> CostDigest:
        now = self.clock.now()
        report = self.costs.report(None)
        attachments = self.attachments.list_all()
        attached = Counter(a.storage for a in attachments)
        uses = [StorageUse(s.name, s.resource_group, s.size_gb, self.used_gb(s), attached[s.name],
                           self.costs.price_of(s), s.iops, s.throughput_mibps)
                for s in self.costs.all_storage(None)]
        previous = self.digests.latest(before=digest_id(now))
        digest = build_digest(now, report, uses, attachments, previous, self.findings.latest())
        if self.webhook_url:
            digest = replace(digest, delivery=Delivery.PENDING)
        log.info("cost digest %s: %s %s a month over %d resource group(s)", digest.id, digest.total,
                 digest.currency, len(digest.groups))
        return digest

    def _deliver(self, digest: CostDigest) -> CostDigest:
        now = self.clock.now()
        claimed_at = digest.claimed_at
        if digest.delivery is Delivery.POSTING and claimed_at and now - claimed_at < CLAIM_EXPIRY:
            return digest  # another run is posting it
        if digest.delivery not in (Delivery.PENDING, Delivery.POSTING) or not self.webhook_url:
            return digest
        try:
            claimed = self.digests.save(digest.claim(now))
        except ConcurrentUpdate:
            log.info("cost digest %s: another run is delivering it", digest.id)
            return digest
        try:
            self.webhook.post(self.webhook_url, payload(claimed), claimed.delivery_key)
        except ServiceError as err:
            failed = self.digests.save(claimed.post_failed(err.message))
            log.warning("cost digest %s: post %d failed (%s); %s", digest.id, failed.delivery_attempts,
                        err.message, "giving up" if failed.delivery is Delivery.FAILED else "retried hourly")
            return failed
        delivered = self.digests.save(claimed.delivered(self.clock.now()))
        log.info("cost digest %s: delivered", digest.id)
        return delivered


def payload(digest: CostDigest) -> dict[str, Any]:
    """What the webhook receives: the digest as JSON, and as Markdown (`text`, which chat
    incoming webhooks such as Slack's and Teams' show as the message)."""
    body = {k: v for k, v in to_json(digest).items() if k not in _DELIVERY_FIELDS}
    markdown = render_markdown(digest)
    return {"digest": body, "markdown": markdown, "text": markdown}
