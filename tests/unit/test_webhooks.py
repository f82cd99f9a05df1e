"""Webhooks, pure: signatures a `standardwebhooks` receiver accepts, the retry schedule, and the
URLs and addresses no webhook may reach."""

from __future__ import annotations

import random
import socket
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from orgsync.pipelines import outbound, webhooks
from orgsync.services.adapters import webhook_http


def test_a_signed_body_verifies_with_the_standardwebhooks_library() -> None:
    secret = webhooks.new_secret()
    body = b'{"specversion":"1.0","id":"e1"}'
    now = int(time.time())
    headers = webhooks.headers(webhooks.parse_secret(secret), "e1", now, body)

    assert Webhook(secret).verify(body, headers) == {"specversion": "1.0", "id": "e1"}
    assert headers["Content-Type"] == "application/cloudevents+json"
    assert headers["webhook-id"] == "e1" and headers["webhook-signature"].startswith("v1,")
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(body + b" ", headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(webhooks.new_secret()).verify(body, headers)


@pytest.mark.parametrize(
    ("secret", "reason"),
    [
        ("c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0", "starts with whsec_"),
        ("whsec_not base64!", "not base64"),
        ("whsec_c2hvcnQ=", "24 to 64 bytes"),
    ],
)
def test_a_secret_that_is_not_a_standard_webhooks_secret_is_refused(
    secret: str, reason: str
) -> None:
    with pytest.raises(webhooks.SecretError, match=reason):
        webhooks.parse_secret(secret)


def test_retries_wait_about_ten_seconds_then_double_up_to_an_hour() -> None:
    rng = random.Random(7)
    waits = [webhooks.retry_after(n, 10.0, rng) for n in range(1, 14)]
    nominal = [min(3600.0, 10.0 * 2 ** (n - 1)) for n in range(1, 14)]
    for wait, expected in zip(waits, nominal, strict=True):
        assert 0.8 * expected <= wait <= min(3600.0, 1.2 * expected)
    assert waits[-1] <= 3600.0
    # at least 24 hours of tries: the schedule never stops on its own, the retry window does
    assert sum(webhooks.retry_after(n, 10.0, rng) for n in range(1, 40)) > 86400


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/",
        "http://169.254.170.2/v2/credentials",
        "http://[fe80::1]/hook",
        "http://[fd00:ec2::254]/",
        "http://[::ffff:169.254.169.254]/",
        "http://100.100.100.200/",
        "http://metadata.google.internal/computeMetadata/v1/",
    ],
)
def test_link_local_and_metadata_urls_are_refused(url: str) -> None:
    assert "link-local or cloud metadata" in (webhooks.url_problem(url) or "")


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("ftp://example.com/", "http:// or https://"),
        ("http:///nohost", "http:// or https://"),
        ("https://user:pw@example.com/", "no user or password"),
        ("http://example.com:99999/", "not a URL"),
    ],
)
def test_a_url_that_cannot_be_posted_to_is_refused(url: str, reason: str) -> None:
    assert reason in (webhooks.url_problem(url) or "")


def test_loopback_private_and_public_receivers_are_allowed() -> None:
    for url in ("http://127.0.0.1:8080/h", "https://siem.internal/x", "http://10.0.0.5/"):
        assert webhooks.url_problem(url) is None


def test_a_name_resolving_to_a_metadata_address_is_not_dialled(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def resolve(*args: Any, **kwargs: Any) -> list[Any]:
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("169.254.169.254", 80))]

    monkeypatch.setattr(socket, "getaddrinfo", resolve)
    answer = webhook_http.Poster("http://rebound.example/hook", 1.0).post(b"{}", {})
    assert answer.status is None and "metadata address" in (answer.error or "")


def test_types_are_checked_against_the_event_types() -> None:
    assert webhooks.parse_types(None) is None
    assert webhooks.parse_types("orgsync.account.added, orgsync.account.added") == [
        "orgsync.account.added"
    ]
    with pytest.raises(ValueError, match="unknown event type"):
        webhooks.parse_types("orgsync.account.exploded")


def test_only_a_2xx_answer_delivers() -> None:
    assert webhooks.delivered(200) and webhooks.delivered(204)
    assert not any(webhooks.delivered(s) for s in (None, 199, 301, 302, 400, 500))


def row(**overrides: Any) -> dict[str, Any]:
    return {
        "seq": 7,
        "id": uuid.UUID("2171b495-c044-4e64-a01e-1fbd820fdac6"),
        "type": "orgsync.account.added",
        "org_id": "o-a1b2c3d4e5",
        "subject": "210987654321",
        "data": {"account_id": "210987654321", "status": "pending"},
        "at": datetime(2026, 12, 4, 3, 15, 49, 867999, tzinfo=UTC),
        **overrides,
    }


def test_a_stored_change_is_a_cloudevent_with_its_sequence_in_data() -> None:
    event = outbound.cloud_event(row())
    assert event == {
        "specversion": "1.0",
        "id": "2171b495-c044-4e64-a01e-1fbd820fdac6",
        "source": "orgsync/o-a1b2c3d4e5",
        "type": "orgsync.account.added",
        "subject": "210987654321",
        "time": "2026-12-04T03:15:49.867999Z",
        "datacontenttype": "application/json",
        "data": {"account_id": "210987654321", "status": "pending", "sequence": 7},
    }
    # the same row is the same bytes, whatever order its data's keys come in
    reordered = row(data={"status": "pending", "account_id": "210987654321"})
    assert outbound.encode(outbound.cloud_event(reordered)) == outbound.encode(event)


def test_a_standalone_account_and_a_sync_have_their_own_source_and_no_subject() -> None:
    assert outbound.cloud_event(row(org_id=None))["source"] == "orgsync/standalone"
    completed = outbound.cloud_event(row(type="orgsync.sync.completed", subject=None))
    assert "subject" not in completed
