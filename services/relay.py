"""The outbox relay: publishes what the stages committed, then forgets it.

Each actor relays its own events right after its commit; a background thread in every worker
process sweeps up whatever a crash between commit and publish left behind. Two relays never
claim the same row (FOR UPDATE SKIP LOCKED); a row published twice is harmless because every
consumer is idempotent.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

import dramatiq
from dramatiq.brokers.rabbitmq import RabbitmqBroker
from psycopg_pool import ConnectionPool

from services.logs import get_logger

log = get_logger(__name__)

CLAIM_IDS = """
SELECT id, message_id, queue_name, actor_name, payload FROM outbox
WHERE message_id = ANY(%s) ORDER BY id FOR UPDATE SKIP LOCKED
"""
CLAIM_STALE = """
SELECT id, message_id, queue_name, actor_name, payload FROM outbox
WHERE created_at < now() - make_interval(secs => %s) ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED
"""


def relay(pool: ConnectionPool, broker: RabbitmqBroker, message_ids: Sequence[str]) -> int:
    """Publish these outbox rows now (those no other relay holds)."""
    return _publish(pool, broker, CLAIM_IDS, (list(message_ids),)) if message_ids else 0


def sweep(
    pool: ConnectionPool, broker: RabbitmqBroker, older_than: float = 5.0, limit: int = 500
) -> int:
    """Publish rows that nobody relayed: their writer died between its commit and its relay."""
    return _publish(pool, broker, CLAIM_STALE, (older_than, limit))


def _publish(pool: ConnectionPool, broker: RabbitmqBroker, query: str, params: tuple) -> int:
    with pool.connection() as conn:
        rows = conn.execute(query, params).fetchall()
        for row in rows:
            broker.enqueue(
                dramatiq.Message(
                    queue_name=row["queue_name"],
                    actor_name=row["actor_name"],
                    args=(row["payload"],),
                    kwargs={},
                    options={},
                    message_id=row["message_id"],
                )
            )
        # deleted only once RabbitMQ confirmed every publish: an error rolls the claim back
        conn.execute("DELETE FROM outbox WHERE id = ANY(%s)", ([r["id"] for r in rows],))
    return len(rows)


class Sweeper(threading.Thread):
    def __init__(self, pool: ConnectionPool, broker: RabbitmqBroker, interval: float = 2.0) -> None:
        super().__init__(name="outbox-sweeper", daemon=True)
        self.pool, self.broker, self.interval = pool, broker, interval
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(self.interval):
            try:
                if n := sweep(self.pool, self.broker):
                    log.info("outbox_swept", published=n)
            except Exception as error:  # a dead broker or database: try again next round
                log.warning("outbox_sweep_failed", error=str(error))
