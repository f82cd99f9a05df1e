"""What to check when AWS refused an AssumeRole, by its error code.

STS answers `AccessDenied` alike for a role that does not exist, a trust policy that names
someone else, a wrong external id and a service control policy: it will not say which, so
every one of them is listed, the most common first. Pure: the code and what the caller knows
about the role are all it reads.
"""

from __future__ import annotations

ACCESS_DENIED = frozenset({"AccessDenied", "AccessDeniedException"})
OWN_CREDENTIALS = frozenset(
    {
        "ExpiredToken",
        "ExpiredTokenException",
        "InvalidClientTokenId",
        "SignatureDoesNotMatch",
        "UnrecognizedClientException",
        "IncompleteSignature",
        "MissingAuthenticationToken",
        "NoCredentialsError",
    }
)


def likely_causes(code: str, *, member: bool, management_account: bool = False) -> list[str]:
    """The likely causes of an AssumeRole failure with `code`, into the member role of an account
    (`member`; `management_account` when that account is the organization's management
    account) or into the organization role. Empty when the code says it all."""
    if code in OWN_CREDENTIALS:
        return ["orgsync's own AWS credentials are missing, invalid or expired (`orgsync check`)"]
    if code == "RegionDisabledException":
        return ["STS is not activated in the region orgsync calls (IAM > Account settings)"]
    if code in ("ValidationError", "ValidationException"):
        return [
            "the session duration is longer than the role's maximum session duration"
            " (MaxSessionDuration, 1 hour unless raised): lower it, or raise the role's"
        ]
    if code not in ACCESS_DENIED:
        return []
    template = "deploy/aws/member-role.yaml" if member else "deploy/aws/org-role.yaml"
    missing = f"the role does not exist in that account (create it with {template})"
    if management_account:
        missing = (
            "the role does not exist in the management account: the member-role StackSet never"
            " reaches it, deploy deploy/aws/member-role.yaml there"
        )
    return [
        missing,
        "its trust policy does not name the principal orgsync runs as (`orgsync check` shows"
        " it; an assumed-role session never matches, trust its role)",
        "the external id differs from the role's sts:ExternalId condition (or one is required"
        " and none is configured)",
        "a service control policy denies sts:AssumeRole in that account",
        "orgsync's own principal is not allowed sts:AssumeRole on that role",
    ]


def advice(code: str, *, member: bool, management_account: bool = False) -> str:
    """`likely_causes` as one line for a message: "likely: a; or b; ..." or ""."""
    causes = likely_causes(code, member=member, management_account=management_account)
    return "likely: " + "; or ".join(causes) if causes else ""
