"""An AssumeRole failure says what to check: every cause STS hides behind AccessDenied, the
management account that a StackSet never reaches, a session longer than the role allows."""

from __future__ import annotations

from orgsync.pipelines.assume_role_advice import advice, likely_causes


def test_access_denied_lists_every_cause_sts_does_not_tell_apart() -> None:
    causes = likely_causes("AccessDenied", member=True)
    assert len(causes) == 5
    assert "does not exist" in causes[0] and "member-role.yaml" in causes[0]
    assert any("trust policy" in c for c in causes)
    assert any("external id" in c for c in causes)
    assert any("service control policy" in c for c in causes)


def test_the_management_account_is_told_the_stackset_never_reaches_it() -> None:
    [first, *_] = likely_causes("AccessDenied", member=True, management_account=True)
    assert "management account" in first and "StackSet never" in first


def test_the_organization_role_points_at_its_own_template() -> None:
    assert "org-role.yaml" in likely_causes("AccessDenied", member=False)[0]


def test_a_session_longer_than_the_role_allows_says_so() -> None:
    [cause] = likely_causes("ValidationError", member=True)
    assert "MaxSessionDuration" in cause


def test_orgsyncs_own_expired_credentials_are_named_as_such() -> None:
    [cause] = likely_causes("ExpiredToken", member=True)
    assert "orgsync's own AWS credentials" in cause


def test_a_code_that_says_it_all_adds_nothing() -> None:
    assert likely_causes("NoSuchEntity", member=True) == []
    assert advice("NoSuchEntity", member=True) == ""
    assert advice("AccessDenied", member=False).startswith("likely: the role does not exist")
