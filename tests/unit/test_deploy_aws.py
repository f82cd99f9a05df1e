"""deploy/aws/: the roles' policies hold exactly the AWS calls the code makes, the plain JSON
files are what `orgsync iam-policy` prints, and cfn-lint finds nothing in the templates."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import botocore.session
import pytest
import yaml
from botocore import xform_name

from orgsync.services.commands import cli
from orgsync.services.use_cases import iam_policy

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy" / "aws"
TEMPLATES = sorted(DEPLOY.glob("*.yaml"))


class CfnLoader(yaml.SafeLoader):
    """YAML with CloudFormation's short tags (!Ref, !If, ...) read as {tag: value}."""


def _tagged(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    return {suffix: value}


CfnLoader.add_multi_constructor("!", _tagged)


def template(name: str) -> dict[str, Any]:
    document: dict[str, Any] = yaml.load((DEPLOY / name).read_text(), Loader=CfnLoader)
    return document


def calls_in_code(services: tuple[str, ...]) -> set[str]:
    """`service:Operation` for every operation of `services` that the product's code names
    (as a method call, a paginator or a page operation), simulators and tests aside."""
    sources = [
        path.read_text()
        for folder in ("pipelines", "services")
        for path in (ROOT / folder).rglob("*.py")
        if "testing" not in path.parts
    ]
    session = botocore.session.get_session()
    found = set()
    for service in services:
        model = session.get_service_model(service)
        for operation in model.operation_names:
            pattern = re.compile(rf"\b{xform_name(operation)}\b")
            if any(pattern.search(source) for source in sources):
                found.add(f"{model.signing_name}:{operation}")
    return found


def test_the_org_role_policy_allows_exactly_the_calls_made_with_the_org_role() -> None:
    # the organization role's clients are Organizations and IAM (services/adapters/aws.py)
    assert iam_policy.actions(iam_policy.org_permissions()) == calls_in_code(
        ("organizations", "iam")
    )


# SQS authorises a batch call by its single action (there is no sqs:DeleteMessageBatch action)
SQS_BATCH = {"sqs:DeleteMessageBatch": "sqs:DeleteMessage"}


def test_the_events_queue_lets_the_org_role_make_exactly_the_sqs_calls_in_the_code() -> None:
    queue = template("events-queue.yaml")["Resources"]["EventsQueuePolicy"]["Properties"]
    reads = [s for s in queue["PolicyDocument"]["Statement"] if s["Sid"] == "OrganizationRoleReads"]
    assert reads[0]["Principal"] == {"AWS": {"Ref": "OrganizationRoleArn"}}
    called = {SQS_BATCH.get(a, a) for a in calls_in_code(("sqs",))}
    assert set(reads[0]["Action"]) == called == {"sqs:ReceiveMessage", "sqs:DeleteMessage"}
    plain = json.loads((DEPLOY / "events-queue-policy.json").read_text())
    assert set(iam_policy.actions(plain)) == called | {"sqs:SendMessage"}


def test_the_events_rule_pattern_is_the_plain_json_and_names_every_event_handled() -> None:
    from orgsync.pipelines.change_events import DETAIL_TYPES, SOURCE, WORK

    rule = template("events-queue.yaml")["Resources"]["OrganizationsEventsRule"]["Properties"]
    pattern = json.loads((DEPLOY / "events-pattern.json").read_text())
    assert rule["EventPattern"] == pattern
    assert pattern["source"] == [SOURCE]
    assert pattern["detail-type"] == list(DETAIL_TYPES)
    assert pattern["detail"]["eventName"] == sorted(WORK)


def test_the_org_role_template_grants_the_same_actions_as_the_policy() -> None:
    role = template("org-role.yaml")["Resources"]["OrganizationRole"]["Properties"]
    (policy,) = role["Policies"]
    assert policy["PolicyDocument"] == iam_policy.org_permissions()


def test_the_plain_json_policies_are_what_iam_policy_prints(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert cli.main(["iam-policy", "--org"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == json.loads((DEPLOY / "org-role-policy.json").read_text())
    printed = iam_policy.trust(iam_policy.PRINCIPAL_PLACEHOLDER, external_id=True)
    assert printed == json.loads((DEPLOY / "trust-policy.json").read_text())


@pytest.mark.parametrize("role", [["--member"], ["--org", "--trust"]])
def test_a_trust_policy_without_principal_is_refused_rather_than_printed_with_a_made_up_one(
    role: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["iam-policy", *role]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert "give --principal ARN" in err and "get-caller-identity" in err


def test_an_assumed_role_session_is_refused_as_principal_naming_its_role(
    capsys: pytest.CaptureFixture[str],
) -> None:
    session = "arn:aws:sts::123456789012:assumed-role/AWSReservedSSO_Admin_0123abcd/jane@corp"
    assert cli.main(["iam-policy", "--member", "--principal", session]) == 2
    err = capsys.readouterr().err
    assert "assumed-role session" in err
    assert "arn:aws:iam::123456789012:role/AWSReservedSSO_Admin_0123abcd" in err


@pytest.mark.parametrize("template_name", ["org-role.yaml", "member-role.yaml"])
def test_the_templates_refuse_an_assumed_role_session_as_principal(template_name: str) -> None:
    parameter = template(template_name)["Parameters"]["OrgsyncPrincipalArn"]
    allowed = re.compile(parameter["AllowedPattern"])
    assert allowed.fullmatch("arn:aws:iam::123456789012:role/orgsync-runner")
    assert allowed.fullmatch("arn:aws:iam::123456789012:user/platform")
    assert not allowed.fullmatch("arn:aws:sts::123456789012:assumed-role/Admin/jane")


def test_iam_policy_puts_the_given_principal_in_the_trust_policy(
    capsys: pytest.CaptureFixture[str],
) -> None:
    principal = "arn:aws:iam::123456789012:role/orgsync-prod"
    assert cli.main(["iam-policy", "--org", "--trust", "--principal", principal]) == 0
    (statement,) = json.loads(capsys.readouterr().out)["Statement"]
    assert statement == {
        "Effect": "Allow",
        "Principal": {"AWS": principal},
        "Action": "sts:AssumeRole",
    }


def test_the_member_role_only_trusts_orgsync_and_has_no_permissions() -> None:
    role = template("member-role.yaml")["Resources"]["MemberRole"]["Properties"]
    assert "Policies" not in role and "ManagedPolicyArns" not in role
    (statement,) = role["AssumeRolePolicyDocument"]["Statement"]
    assert statement["Action"] == "sts:AssumeRole"
    assert statement["Principal"] == {"AWS": {"Ref": "OrgsyncPrincipalArn"}}


def test_the_stackset_deploys_the_member_role_template_across_chosen_ous() -> None:
    stackset = template("member-role-stackset.yaml")["Resources"]["MemberRoleStackSet"]
    properties = stackset["Properties"]
    assert stackset["Type"] == "AWS::CloudFormation::StackSet"
    assert properties["PermissionModel"] == "SERVICE_MANAGED"
    assert properties["AutoDeployment"]["Enabled"] is True
    (group,) = properties["StackInstancesGroup"]
    assert group["DeploymentTargets"]["OrganizationalUnitIds"] == {"Ref": "TargetOuIds"}
    # the inline template is member-role.yaml itself, so the two never drift apart
    assert properties["TemplateBody"] == (DEPLOY / "member-role.yaml").read_text()


def test_every_role_template_makes_the_external_id_optional_and_secret() -> None:
    for path in (p for p in TEMPLATES if "role" in p.name):
        parameter = template(path.name)["Parameters"]["ExternalId"]
        assert parameter["Default"] == "" and parameter["NoEcho"] is True, path.name


def test_a_session_arn_leads_to_its_role_and_other_arns_to_nothing() -> None:
    session = "arn:aws-us-gov:sts::123456789012:assumed-role/Admin/jane"
    assert iam_policy.session_role(session) == "arn:aws-us-gov:iam::123456789012:role/Admin"
    assert iam_policy.session_role("arn:aws:iam::123456789012:role/Admin") is None
    assert iam_policy.principal_problem("arn:aws:iam::123456789012:user/platform") is None
    assert "is not an IAM role or user ARN" in str(iam_policy.principal_problem("bob"))
