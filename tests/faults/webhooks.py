"""Webhook deliveries under the faults: each run's database gets a webhook pointing at the
harness's receiver (services/testing/webhook_receiver.py), and once the sync has settled and the
deliveries with it, what the receiver got is counted against what was committed:

- lost: an event committed in the run that the receiver never got, or fewer events of one
  (type, subject) than the clean run had;
- duplicated: more events of one (type, subject) than the clean run had: one change announced
  twice under two ids (a retry of the same id is not a duplicate: receivers dedupe on it);
- wrong: a request whose signature did not verify, or one id received with two bodies.

A request cut short by a kill (headers sent, the body not) is none of these: it delivered
nothing and got no answer, so its delivery is tried again; the run's note counts them.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from orgsync.pipelines.credentials import Keyring
from orgsync.services.adapters import db
from orgsync.services.settings import Settings
from orgsync.services.testing.webhook_receiver import Receiver
from orgsync.services.use_cases import webhooks
from tests.faults.state import Counts
from tests.support.waiting import wait_until

SETTLE_TIMEOUT = 120.0
# sync.completed is left out of the comparison: the kill-9 run syncs more than once
EVENTS = """
SELECT id::text AS id, type, coalesce(subject, org_id) AS subject, data::text AS data,
       org_id = %s AND type <> 'orgsync.sync.completed' AS compared
FROM outbound_events ORDER BY seq
"""
UNSETTLED = """
SELECT (SELECT count(*) FROM outbound_events WHERE fanned_out_at IS NULL)
     + (SELECT count(*) FROM webhook_deliveries WHERE state = 'pending') AS n
"""
ENV = {"ORGSYNC_WEBHOOK_FIRST_RETRY": "1", "ORGSYNC_WEBHOOK_TIMEOUT": "2"}


@dataclass
class Tally:
    changes: Counter[tuple[str, str]]
    # the same change (type, subject, data) committed twice in a row
    repeated: list[str] = field(default_factory=list)
    events: int = 0
    requests: int = 0
    cut_short: int = 0  # requests whose sender was killed before its body was sent
    lost_ids: list[str] = field(default_factory=list)
    wrong: list[str] = field(default_factory=list)

    def note(self) -> str:
        cut = f", {self.cut_short} cut short by a kill" if self.cut_short else ""
        return f"webhook: {self.events} events, {self.requests} requests{cut}"


def prepare(settings: Settings, keyring: Keyring, receiver: Receiver) -> None:
    """The run's webhook; what the template held before the run is not the run's to deliver."""
    with receiver.lock:
        receiver.received.clear()
        receiver.rejected.clear()
        receiver.cut_short = 0
    with db.connect(settings.database_url) as conn:
        conn.execute("DELETE FROM outbound_events")  # the template's: registered before the run
        webhooks.add(conn, keyring, receiver.url, receiver.secret)


def settle(settings: Settings) -> bool:
    def settled() -> bool | None:
        try:
            with db.connect(settings.database_url) as conn:
                row = conn.execute(UNSETTLED).fetchone()
        except Exception:
            return None
        return True if row and row["n"] == 0 else None

    try:
        wait_until(settled, SETTLE_TIMEOUT, "the webhook deliveries settled", interval=0.5)
    except AssertionError:
        return False
    return True


def tally(settings: Settings, org_id: str, receiver: Receiver) -> Tally:
    """What the run committed and what the receiver got; the organization's changes (another
    organization's, in a run that has one, are delivered but not compared) by (type, subject)."""
    with db.connect(settings.database_url) as conn:
        rows: list[dict[str, Any]] = conn.execute(EVENTS, (org_id,)).fetchall()
    bodies: dict[str, set[bytes]] = {}
    with receiver.lock:
        for got in receiver.received:
            bodies.setdefault(got.webhook_id, set()).add(got.body)
        requests, rejected = len(receiver.received), list(receiver.rejected)
        cut_short = receiver.cut_short
    changes = Counter((r["type"], r["subject"]) for r in rows if r["compared"])
    found = Tally(changes, events=len(rows), requests=requests, cut_short=cut_short)
    # one change announced twice: the same event right after itself in its subject's history (a
    # status that went pending -> ok, away, and pending -> ok again is two changes)
    previous: dict[str, tuple[str, str]] = {}
    for r in rows:
        if r["compared"] and previous.get(r["subject"]) == (r["type"], r["data"]):
            found.repeated.append(f"{r['type']} {r['subject']}")
        previous[r["subject"]] = (r["type"], r["data"])
    found.lost_ids = [r["id"] for r in rows if r["id"] not in bodies]
    found.wrong = [f"signature: {r}" for r in rejected]
    found.wrong += [f"{i}: {len(b)} bodies" for i, b in bodies.items() if len(b) > 1]
    return found


def compare(reference: Tally, run: Tally, counts: Counts, first_sync: bool = True) -> None:
    """`first_sync`: the run is a first sync like the clean one, so it must announce the same
    changes; a run that changed the inventory before its timed part (the incremental run's
    drift) announces those changes too, and is held to no change announced twice."""
    counts.lost += len(run.lost_ids)
    counts.examples += [f"webhook never got event {i}" for i in run.lost_ids[:3]]
    counts.duplicated += len(run.repeated)
    counts.examples += [f"webhook: the same change twice: {r}" for r in run.repeated[:3]]
    for key in reference.changes.keys() | run.changes.keys() if first_sync else ():
        expected, got = reference.changes[key], run.changes[key]
        if got < expected:
            counts.lost += expected - got
            counts.examples.append(f"webhook: {expected - got} {key} event(s) missing")
        elif got > expected:
            counts.duplicated += got - expected
            counts.examples.append(f"webhook: {got - expected} {key} event(s) more than once")
    counts.wrong += len(run.wrong)
    counts.examples += [f"webhook: {w}" for w in run.wrong[:3]]
