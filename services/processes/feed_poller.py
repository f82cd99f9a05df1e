"""The change-event feed (`orgsync worker`, stage `events`): one thread per organization's queue.

Each thread long-polls its organization's SQS queue with the organization role's session,
hands every message to `pipelines.feed.handle` (which commits the work through the outbox) and
only then deletes the message, in one batch. A message whose work could not be committed
(AWS throttled the re-read, PostgreSQL was away) is left alone: SQS shows it again after the
visibility timeout, and its eventID makes a second handling of committed work do nothing.
A queue that cannot be read (deleted, denied) is tried again with a growing, jittered backoff,
and its reason is kept in `feeds.error` for `orgsync orgs`. The threads follow the
registrations: a queue URL set, changed or cleared is picked up within `refresh` seconds.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from orgsync.pipelines import feed
from orgsync.pipelines.aws_errors import backoff_seconds
from orgsync.pipelines.feed_queue import queue_error
from orgsync.pipelines.orgs import Organization, load_organization
from orgsync.pipelines.stage import Deps
from orgsync.services.logs import get_logger

log = get_logger("orgsync.feed")

# A stopping worker lets each poller finish its long poll and handle what it received (else
# those messages stay invisible for VISIBILITY_SECONDS), so the poll is kept short: an idle
# queue costs 12 receives a minute, and a worker stops within its grace period.
WAIT_SECONDS = 5
BATCH = 10  # SQS's most messages per receive
VISIBILITY_SECONDS = 120  # a message not deleted by then comes back to be handled again
BACKOFF_BASE = 2.0
BACKOFF_CAP = 300.0  # a deleted or denied queue is tried again at least every 5 minutes

PRUNE_EVERY = 3600.0


@dataclass
class Feed:
    """`queue(org, url)` gives the organization role's SQS client for its queue."""

    deps: Deps
    queue: Callable[[Organization, str], Any]
    wait_seconds: int = WAIT_SECONDS
    visibility: int = VISIBILITY_SECONDS
    refresh: float = 2.0  # a queue set, changed or cleared is followed within this

    def __post_init__(self) -> None:
        self.stop = threading.Event()
        self._threads: dict[tuple[str, str], threading.Thread] = {}
        self._wanted: set[tuple[str, str]] = set()

    def start(self) -> threading.Thread:
        thread = threading.Thread(target=self._follow, name="feed", daemon=True)
        thread.start()
        return thread

    def close(self) -> None:
        """Stop polling; each poller ends its current poll and handles what that received."""
        self.stop.set()
        deadline = time.monotonic() + self.wait_seconds + 2
        for thread in list(self._threads.values()):
            thread.join(max(0.0, deadline - time.monotonic()))

    def _follow(self) -> None:
        """Start a poller for every queue registered, again every `refresh` seconds; forget
        the eventIDs no message can repeat any more, once an hour."""
        next_prune = 0.0
        while not self.stop.is_set():
            try:
                with self.deps.connect() as conn:
                    wanted = feed.queues(conn)
                    if time.monotonic() >= next_prune:
                        feed.forget_old_events(conn)
                        next_prune = time.monotonic() + PRUNE_EVERY
            except Exception as error:  # PostgreSQL away: try again, never die
                log.warning("feed_queues_unread", error=str(error)[:300])
                wanted = self._wanted
            self._wanted = wanted
            for key in wanted - {k for k, t in self._threads.items() if t.is_alive()}:
                thread = threading.Thread(
                    target=self._poll, args=key, name=f"feed-{key[0]}", daemon=True
                )
                self._threads[key] = thread
                thread.start()
                log.info("feed_started", org_id=key[0])
            self.stop.wait(self.refresh)

    def _still_wanted(self, org_id: str, url: str) -> bool:
        return not self.stop.is_set() and (org_id, url) in self._wanted

    def _poll(self, org_id: str, url: str) -> None:
        failures = 0
        while self._still_wanted(org_id, url):
            delay = self.attempt(org_id, url, failures)
            if delay is None:
                failures = 0
            else:
                failures += 1
                self.stop.wait(delay)
        log.info("feed_stopped", org_id=org_id)

    def attempt(self, org_id: str, url: str, failures: int) -> float | None:
        """One poll; None when the queue answered, else the seconds to wait before the next
        try, its reason recorded for `orgsync orgs`."""
        try:
            self.poll_once(org_id, url)
            return None
        except Exception as error:
            reason = queue_error(error)
            delay = backoff_seconds(failures, base=BACKOFF_BASE, cap=BACKOFF_CAP)
            self._failed(org_id, reason, delay)
            log.warning("feed_unreadable", org_id=org_id, reason=reason, retry_in=round(delay, 1))
            return delay

    def poll_once(self, org_id: str, url: str) -> None:
        """One long poll of the queue, and the messages it gave handled and deleted."""
        with self.deps.connect() as conn:
            org = load_organization(conn, self.deps.keyring, org_id)
        if org is None or org.filters.events_queue_url != url:
            return
        sqs = self.queue(org, url)
        answer = sqs.receive_message(
            QueueUrl=url,
            MaxNumberOfMessages=BATCH,
            WaitTimeSeconds=self.wait_seconds,
            VisibilityTimeout=self.visibility,
        )
        with self.deps.connect() as conn:
            feed.feed_polled(conn, org_id)
        messages = answer.get("Messages") or []
        # a batch's events are handled side by side; two on one account wait for each other
        handled = self.deps.concurrently(lambda m: self.handle(org, m), messages)
        done = [m for m, ok in zip(messages, handled, strict=True) if ok]
        if done:
            entries = [
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(done)
            ]
            failed = sqs.delete_message_batch(QueueUrl=url, Entries=entries).get("Failed") or []
            for entry in failed:  # handled and committed: the eventID makes its return harmless
                log.warning("feed_not_deleted", org_id=org_id, code=entry.get("Code"))

    def handle(self, org: Organization, message: dict[str, Any]) -> bool:
        """Handle one message; True when it may be deleted (its work is committed)."""
        message_id = str(message.get("MessageId") or "")
        try:
            result = feed.handle(self.deps, org, message_id, str(message.get("Body") or ""))
        except feed.Transient as error:
            log.info(
                "feed_event_later", org_id=org.org_id, message_id=message_id, reason=str(error)
            )
            return False
        except Exception as error:  # not committed: SQS brings the message back
            log.error(
                "feed_event_failed",
                org_id=org.org_id,
                message_id=message_id,
                error=str(error)[:300],
            )
            return False
        log.info(
            "feed_event",
            org_id=org.org_id,
            message_id=message_id,
            event_name=result.event_name,
            outcome=result.outcome,
            reason=result.reason,
            accounts=result.accounts,
        )
        return True

    def _failed(self, org_id: str, reason: str, delay: float) -> None:
        try:
            with self.deps.connect() as conn:
                feed.feed_failed(conn, org_id, reason, delay)
        except Exception as error:
            log.warning("feed_error_unrecorded", org_id=org_id, error=str(error)[:300])
