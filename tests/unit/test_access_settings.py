"""The settings of team access: the identity provider's, the password turned off, and secrets
too short refused, each in one line."""

from __future__ import annotations

from pathlib import Path

import pytest

from orgsync.services.errors import UserError
from orgsync.services.settings import Settings, SettingsError
from orgsync.services.web.auth import Guard


def test_the_identity_provider_is_read_with_its_secret_from_a_file(tmp_path: Path) -> None:
    secret = tmp_path / "client-secret"
    secret.write_text("s3cr3t\n")
    settings = Settings.from_env(
        {
            "ORGSYNC_OIDC_ISSUER": "https://login.example.com/realms/main/",
            "ORGSYNC_OIDC_CLIENT_ID": "orgsync",
            "ORGSYNC_OIDC_CLIENT_SECRET_FILE": str(secret),
            "ORGSYNC_OIDC_SCOPES": "openid,email groups",
            "ORGSYNC_WEB_PASSWORD_SIGN_IN": "off",
        }
    )
    assert settings.oidc_issuer == "https://login.example.com/realms/main"
    assert settings.oidc_client_secret == "s3cr3t" and "s3cr3t" not in repr(settings)
    assert settings.oidc_scopes == "openid email groups"
    assert settings.oidc_groups_claim == "groups" and not settings.web_password_sign_in


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"ORGSYNC_OIDC_ISSUER": "login.example.com"}, "ORGSYNC_OIDC_ISSUER"),
        ({"ORGSYNC_OIDC_ISSUER": "https://x/?a=1"}, "ORGSYNC_OIDC_ISSUER"),
        ({"ORGSYNC_OIDC_SCOPES": "email groups"}, "ORGSYNC_OIDC_SCOPES"),
        ({"ORGSYNC_WEB_PASSWORD_SIGN_IN": "maybe"}, "ORGSYNC_WEB_PASSWORD_SIGN_IN"),
        (
            {"ORGSYNC_OIDC_CLIENT_SECRET": "a", "ORGSYNC_OIDC_CLIENT_SECRET_FILE": "/x"},
            "both set",
        ),
        ({"ORGSYNC_OIDC_CLIENT_SECRET_FILE": "/no/such/file"}, "ORGSYNC_OIDC_CLIENT_SECRET_FILE"),
    ],
)
def test_a_wrong_access_setting_is_refused_in_one_line(env: dict[str, str], named: str) -> None:
    with pytest.raises(SettingsError, match=named) as refused:
        Settings.from_env(env)
    assert "\n" not in str(refused.value)


def test_an_identity_provider_without_its_client_is_refused() -> None:
    with pytest.raises(UserError, match="ORGSYNC_OIDC_CLIENT_ID"):
        Guard(Settings(oidc_issuer="https://login.example.com", oidc_client_id="orgsync"))
    with pytest.raises(UserError, match="ORGSYNC_OIDC_ISSUER"):
        Guard(Settings(web_password="a long password here", web_password_sign_in=False))
