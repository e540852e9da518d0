"""The daily cost digest: built once per UTC day, stored, and posted to COST_DIGEST_WEBHOOK_URL
once.

Exactly once, under retried timers and failed posts: a run builds today's digest only if none is
stored (a second run that day reuses it); a post is made only by the run that claimed the digest
(a conditional write on its ETag), and is recorded as delivered after it succeeds. A failed post
leaves it pending for the next run (the hourly cost refresh retries pending ones), up to a day of
attempts. The one window left, a crash between the webhook's 2xx and the record of it, resends
after CLAIM_EXPIRY with the same `Idempotency-Key: azlin-digest-<id>` so a receiver can drop it.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta
from typing import Any

from shared.domain.digests import (
    CostDigest,
    Delivery,
    StorageUse,
    build_digest,
    digest_id,
    for_groups,
    render_markdown,
)
from shared.domain.errors import ConcurrentUpdate, ErrorCode, NotFound, ServiceError
from shared.domain.identity import Caller
from shared.domain.models import StorageInfo
from shared.domain.serialization import to_json
from shared.ports import AttachmentRepository, Clock, DigestRepository, ReconcileFindings, Webhook

from .costs import CostService

log = logging.getLogger(__name__)
CLAIM_EXPIRY = timedelta(minutes=10)  # a run that claimed a post and vanished is presumed dead
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
                           try_hint="the digest timer makes one a day (COST_DIGEST_SCHEDULE)",
                           code=ErrorCode.NOT_FOUND)
        groups = {g.resource_group.lower() for g in digest.groups}
        readable = self.costs.access.readable_groups(caller, groups)
        return for_groups(digest, readable)

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
            self.webhook.post(self.webhook_url, payload(claimed), f"azlin-digest-{claimed.id}")
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
