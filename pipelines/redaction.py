"""Text that must not be logged or stored as it is: ARNs, role names, external ids.

AWS error messages quote the caller's assumed-role ARN (role and session names) and the role
it tried to reach; dramatiq's own log lines print whole messages. Logs (services/logs.py) and
every stored AWS error text (`failures.message`, `accounts.status_reason`, `syncs.error`, via
`aws_errors.classify`) go through `scrub_text`.

An ARN is redacted whole after its account and resource type, whatever its characters: IAM
paths may hold `,`, `'`, `)` and more, so a pattern that stops at punctuation leaves half a
role name behind. Only whitespace ends it.
"""

from __future__ import annotations

import re

REDACTED = "[redacted]"

# arn:partition:service:region:account:  then an optional resource type and `/`, then the rest
ARN = re.compile(r"\b(arn:aws[a-z-]*:[a-z0-9-]+:[a-z0-9-]*:\d{0,12}:)([A-Za-z-]+/)?\S+")
# an account-qualified role without the arn: prefix ("123456789012:role/Name", ".../Name")
ACCOUNT_ROLE = re.compile(r"\b(\d{12}[:/](?:assumed-)?role/)\S+")
SECRET_ITEM = re.compile(
    r"""(['"]?(?:external_id|ExternalId|externalId|SecretAccessKey|SessionToken"""
    r"""|aws_secret_access_key|member_role_name|org_session_name|member_session_name)"""
    r"""['"]?\s*[:=]\s*)(?:'[^']*'|"[^"]*"|[^\s,}]+)"""
)


def scrub_text(text: str) -> str:
    text = ARN.sub(rf"\1\2{REDACTED}", text)
    text = ACCOUNT_ROLE.sub(rf"\1{REDACTED}", text)
    return SECRET_ITEM.sub(rf"\1'{REDACTED}'", text)
