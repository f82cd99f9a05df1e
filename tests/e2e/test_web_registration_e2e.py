"""Registration through the web: the API answers the registrar's verdict, and the edit form
keeps blank credentials and refuses some-but-not-all of them, naming the missing ones, and
carries the AWS rate override there and back."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from orgsync.services.bootstrap import House
from orgsync.services.settings import Settings
from orgsync.services.testing.moto_aws import SimulatedAws
from orgsync.services.testing.sample_org import OrgSpec, build_organization
from orgsync.services.use_cases import syncs
from orgsync.services.web.app import create_app
from tests.support.cli import TIMEOUT, request_for

pytestmark = pytest.mark.e2e
TOKEN = "e2e-token-" + "0" * 32
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def test_the_api_and_the_edit_form_answer_with_the_registrars_verdict(
    settings: Settings, house: House, aws: SimulatedAws, worker: Path
) -> None:
    org = build_organization(aws.endpoint_url, OrgSpec(accounts=3, suspended=0, excluded=0))
    web_settings = dataclasses.replace(settings, web_password="e2e-password", api_token=TOKEN)
    with TestClient(create_app(web_settings), follow_redirects=False) as http:
        bad = {**request_for(org, "webapi"), "org_role_arn": "arn:aw:iam::1:role/R"}
        rejected = http.post("/api/registrations", json=bad, headers=AUTH).json()
        assert rejected["accepted"] is False
        assert [r["field"] for r in rejected["reasons"]] == ["org_role_arn"]

        accepted = http.post(
            "/api/registrations", json=request_for(org, "webapi"), headers=AUTH
        ).json()
        assert accepted["accepted"] is True and accepted["reasons"] == []
        org_id = accepted["org_id"]
        syncs.wait_sync(house, syncs.latest_sync(house, org_id) or "", TIMEOUT)

        token = re.search(r'name="csrf_token" value="([^"]+)"', http.get("/login").text)
        assert token
        http.post("/login", data={"password": "e2e-password", "csrf_token": token[1]})
        page = http.get(f"/orgs/{org_id}/edit").text  # signing in gave a new csrf token
        form = {
            "csrf_token": re.findall(r'name="csrf_token" value="([^"]+)"', page)[-1],
            "nickname": "webapi",
            "exclude_prefixes": "sandbox-",
        }

        typed = {"org_role_arn": org.org_role_arn, "external_id": "tenant-secret-42"}
        some = http.post(f"/orgs/{org_id}/edit", data={**form, **typed})
        assert some.status_code == 422
        assert "all-or-nothing" in some.text and "missing member_role_name" in some.text
        assert f'value="{org.org_role_arn}"' in some.text  # kept as typed, to be completed
        assert "tenant-secret-42" not in some.text  # a secret is never rendered back

        rates = "*=1:20,ListParents=0.5:5"
        kept = http.post(
            f"/orgs/{org_id}/edit", data={**form, "auto_badge": "on", "aws_rates": rates}
        )
        assert kept.status_code == 200 and "Request accepted" in kept.text
        listed = http.get("/api/orgs", headers=AUTH).json()
        assert listed[0]["filters"]["exclude_prefixes"] == ["sandbox-"]
        assert listed[0]["filters"]["auto_badge"] is True
        assert listed[0]["filters"]["aws_rates"] == {
            "*": {"floor": 1, "ceiling": 20},
            "ListParents": {"floor": 0.5, "ceiling": 5},
        }
        assert f'name="aws_rates" value="{rates}"' in http.get(f"/orgs/{org_id}/edit").text
        trail = http.get("/api/audit", headers=AUTH).json()
    # the rejected request changed nothing, so it left no row
    assert [(r["actor"], r["via"], r["action"]) for r in reversed(trail)] == [
        ("token:break-glass", "api", "organization.register"),
        ("user:break-glass", "console", "organization.update"),
    ]
    assert trail[0]["changes"]["aws_rates"]["old"] is None  # the edit set the rate override
    assert trail[0]["changes"]["aws_rates"]["new"]["ListParents"] == {"floor": 0.5, "ceiling": 5}
    assert "tenant-secret-42" not in str(trail) and org.org_role_arn not in str(trail)
