"""`orgsync exporter`: the pipeline as a whole on Prometheus' /metrics, and /healthz.

At each scrape it asks RabbitMQ (passive declares: ready, delayed and dead-lettered messages and
consumers of every queue; the management API for messages in flight, when configured) and
PostgreSQL (seven named queries sent in one round trip: accounts per organization and status,
the oldest work waiting at each stage, the last sync of each organization, failed accounts,
rejected messages, the rate budgets, the pages each organization has held or in flight in the
outbox). It keeps one connection to each between scrapes and opens a new one when a service
went away, so it outlives restarts of both; a service that does not answer makes
`orgsync_exporter_up{service=...}` 0 and /healthz 503, never a crash.

- `families.py`: every metric family it can export;
- `database.py` and `broker.py`: each service's kept connection, reads, and the families they fill;
- `collector.py`: `Exporter`, the collector that scrapes both, and /healthz's pings;
- `server.py`: the HTTP server and `run`.

The stage histograms and counters come from the workers themselves (services/processes/metrics.py).
"""

from orgsync.services.processes.exporter.collector import Exporter, ScrapeCost
from orgsync.services.processes.exporter.database import QUERIES
from orgsync.services.processes.exporter.families import FAMILIES
from orgsync.services.processes.exporter.server import make_server, run

__all__ = ["FAMILIES", "QUERIES", "Exporter", "ScrapeCost", "make_server", "run"]
