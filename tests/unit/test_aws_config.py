"""boto3's own configuration wins over orgsync's retry defaults; the defaults hold otherwise."""

from __future__ import annotations

from pathlib import Path

import pytest

from orgsync.services.adapters.aws import Aws

AWS_VARIABLES = ("AWS_PROFILE", "AWS_RETRY_MODE", "AWS_MAX_ATTEMPTS", "AWS_CONFIG_FILE")


@pytest.fixture(autouse=True)
def clean_aws_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in (*AWS_VARIABLES, "AWS_REGION", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")


def test_orgsync_retries_in_standard_mode_four_times_when_aws_sets_nothing() -> None:
    aws = Aws()
    assert aws.sts.meta.config.retries == {"mode": "standard", "total_max_attempts": 5}
    assert aws.region == "us-east-1"


def test_aws_retry_mode_and_max_attempts_from_the_environment_win(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "10")
    monkeypatch.setenv("AWS_RETRY_MODE", "adaptive")
    assert Aws().sts.meta.config.retries == {"mode": "adaptive", "total_max_attempts": 10}


def test_one_aws_retry_setting_wins_alone_and_orgsync_keeps_the_other(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_RETRY_MODE", "legacy")
    assert Aws().sts.meta.config.retries == {"mode": "legacy", "total_max_attempts": 5}


def test_the_profile_of_aws_config_file_gives_region_and_retries(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    config = tmp_path / "config"
    config.write_text(
        "[profile audit]\nregion = eu-west-1\nretry_mode = adaptive\nmax_attempts = 7\n"
    )
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    monkeypatch.setenv("AWS_PROFILE", "audit")
    aws = Aws()
    assert aws.region == "eu-west-1"
    assert aws.sts.meta.config.retries == {"mode": "adaptive", "total_max_attempts": 7}
    assert aws.sts.meta.config.connect_timeout == 5  # orgsync's own settings stay
