"""`events_queue_url`: its formatting rule, its flag, and the `events` stage of `orgsync worker`."""

from __future__ import annotations

import pytest

from orgsync.pipelines.request_rules import check_request, queue_region, queue_url_problems
from orgsync.services.commands import cli
from orgsync.services.commands.organizations import request_from

AWS_URL = "https://sqs.eu-west-1.amazonaws.com/123456789012/orgsync-organization-events"


@pytest.mark.parametrize(
    "url",
    [
        AWS_URL,
        "https://sqs.cn-north-1.amazonaws.com.cn/123456789012/q",
        "https://sqs.us-east-1.amazonaws.com/123456789012/events.fifo",
        None,
    ],
)
def test_queue_urls_of_sqs_and_null_are_accepted(url: str | None) -> None:
    assert queue_url_problems(url) == []


@pytest.mark.parametrize(
    "url",
    [
        "http://sqs.us-east-1.amazonaws.com/123456789012/q",  # not https
        "https://sqs.us-east-1.amazonaws.com/12345/q",
        "https://sqs.us-east-1.amazonaws.com/123456789012/q/extra",
        "https://evil.example.com/123456789012/q",
        "https://sqs.us-east-1.amazonaws.com.evil.example/123456789012/q",
        "https://sqs.us-east-1.amazonaws.com/123456789012/q\n",
        "",
        42,
    ],
)
def test_anything_else_is_refused_with_the_expected_form(url: object) -> None:
    (problem,) = queue_url_problems(url)
    assert "SQS queue URL" in problem


def test_a_url_under_aws_endpoint_url_is_accepted_only_where_it_is_set() -> None:
    url = "http://127.0.0.1:5000/123456789012/orgsync-events"
    assert queue_url_problems(url, "http://127.0.0.1:5000/") == []
    assert queue_url_problems(url) != []
    assert queue_url_problems("http://127.0.0.1:5001/123456789012/q", "http://127.0.0.1:5000")


def test_the_region_comes_from_the_url() -> None:
    assert queue_region(AWS_URL) == "eu-west-1"
    assert queue_region("http://127.0.0.1:5000/123456789012/q") is None


def test_the_field_may_change_alone_on_an_update() -> None:
    request, problems = check_request(
        {"request_id": "r", "org_id": "o-abcdefghij", "events_queue_url": AWS_URL}
    )
    assert problems == [] and request is not None
    assert request.filter_changes == {"events_queue_url": AWS_URL}


def test_the_flag_sets_the_url_and_none_clears_it() -> None:
    args = cli.parser().parse_args(["update", "prod", "--events-queue-url", AWS_URL])
    assert request_from(args, "o-abcdefghij")["events_queue_url"] == AWS_URL
    args = cli.parser().parse_args(["update", "prod", "--events-queue-url", "none"])
    assert request_from(args, "o-abcdefghij")["events_queue_url"] is None
    args = cli.parser().parse_args(["update", "prod"])
    assert "events_queue_url" not in request_from(args, "o-abcdefghij")


def test_the_worker_names_the_events_stage(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.parser().parse_args(["worker", "--help"])
    assert "events" in capsys.readouterr().out
