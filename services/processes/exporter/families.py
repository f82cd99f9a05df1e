"""Every metric family `orgsync exporter` can export, and a new empty one of each per scrape.

`Exporter.describe()` lists them all, whether or not a scrape has samples for them: the names
tests/unit/test_dashboard.py holds the Grafana dashboard's queries to.
"""

from __future__ import annotations

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

# name -> (type, help, labels)
FAMILIES: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "orgsync_queue_messages": (
        "gauge",
        "Messages in a stage queue, by kind: ready, delayed (Q.DQ: retries and delayed "
        "messages), dead_lettered (Q.XQ), in_flight (delivered, not yet acked; with the "
        "management API only).",
        ("queue", "kind"),
    ),
    "orgsync_queue_consumers": ("gauge", "Consumers of a stage queue.", ("queue",)),
    "orgsync_pages_waiting": (
        "gauge",
        "Pages held in PostgreSQL's outbox for their organization's turn (fair dispatch: at "
        "most ORGSYNC_PAGES_IN_FLIGHT per organization, queue and lane are in RabbitMQ), by "
        "organization, stage queue and lane (live, bulk); only those with pages.",
        ("org_id", "org", "queue", "lane"),
    ),
    "orgsync_pages_in_flight": (
        "gauge",
        "Pages released from the outbox and not yet finished by their consumer (ready to "
        "publish, in RabbitMQ or being handled), by organization, stage queue and lane.",
        ("org_id", "org", "queue", "lane"),
    ),
    "orgsync_accounts": (
        "gauge",
        "Accounts by organization and status (org_id '' for standalone accounts).",
        ("org_id", "org", "status"),
    ),
    "orgsync_failed_accounts": (
        "gauge",
        "Accounts whose member role failed, by organization and AWS error code.",
        ("org_id", "org", "code"),
    ),
    "orgsync_pipeline_waiting": (
        "gauge",
        "Work waiting for a stage: registration requests without a verdict, organizations "
        "whose last sync is still walking, accounts waiting for validation, harvest, reconcile.",
        ("stage",),
    ),
    "orgsync_pipeline_oldest_waiting_seconds": (
        "gauge",
        "Age of the oldest work waiting for a stage (0 when none waits): how far behind it is.",
        ("stage",),
    ),
    "orgsync_sync_last_started_timestamp_seconds": (
        "gauge",
        "When the organization's last sync started (Unix time).",
        ("org_id", "org"),
    ),
    "orgsync_sync_last_duration_seconds": (
        "gauge",
        "The last sync's duration, start to last account reconciled (so far, while it runs).",
        ("org_id", "org"),
    ),
    "orgsync_sync_last_running": (
        "gauge",
        "1 while the organization's last sync has accounts still on their way.",
        ("org_id", "org"),
    ),
    "orgsync_sync_last_complete": (
        "gauge",
        "1 when the last sync's walk of the organization was complete, 0 when it failed.",
        ("org_id", "org"),
    ),
    "orgsync_sync_last_accounts": (
        "gauge",
        "What the last sync's discovery counted: seen, imported, suspended, excluded, removed.",
        ("org_id", "org", "count"),
    ),
    "orgsync_syncs": ("counter", "Syncs started, by organization.", ("org_id", "org")),
    "orgsync_rejected_messages": (
        "counter",
        "Messages a stage could not read and recorded in rejected_messages.",
        ("queue",),
    ),
    "orgsync_aws_calls": (
        "counter",
        "AWS calls that took a token of the shared rate budget (retries after a throttle "
        "included), by organization (org_id 'service' for orgsync's own AssumeRole) and API.",
        ("org_id", "org", "api"),
    ),
    "orgsync_aws_throttled": (
        "counter",
        "AWS answers that were throttling (TooManyRequestsException, Throttling), by "
        "organization and API: each lowered the budget or was counted against its last decrease.",
        ("org_id", "org", "api"),
    ),
    "orgsync_aws_budget_rate": (
        "gauge",
        "The shared rate budget's current rate, in calls per second, by organization and API.",
        ("org_id", "org", "api"),
    ),
    "orgsync_webhook_deliveries": (
        "gauge",
        "Webhook deliveries by webhook and state: pending (not yet delivered, retried with "
        "backoff), delivered, failed (retried for ORGSYNC_WEBHOOK_RETRY_FOR in vain).",
        ("webhook_id", "state"),
    ),
    "orgsync_webhook_oldest_pending_seconds": (
        "gauge",
        "Age of a webhook's oldest pending delivery (0 when none waits): a receiver that is "
        "down or slow shows here.",
        ("webhook_id",),
    ),
    "orgsync_events_unpublished": (
        "gauge",
        "Events for other systems not yet published to the exchange orgsync.changes.",
        (),
    ),
    "orgsync_exporter_up": (
        "gauge",
        "1 when the service (postgresql, rabbitmq, rabbitmq_management) answered this scrape.",
        ("service",),
    ),
    "orgsync_exporter_scrape_duration_seconds": (
        "gauge",
        "Time this scrape spent on each service.",
        ("service",),
    ),
}

Family = GaugeMetricFamily | CounterMetricFamily


def family(name: str) -> Family:
    kind, help_text, labels = FAMILIES[name]
    if kind == "counter":
        return CounterMetricFamily(name, help_text, labels=labels)
    return GaugeMetricFamily(name, help_text, labels=labels)
