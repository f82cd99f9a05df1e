"""`orgsync check`: every dependency orgsync needs, one verdict each, with the fix.

Each check returns a Finding; a check that depends on another (migrations on PostgreSQL,
queues on RabbitMQ) says it was skipped rather than failing twice for one cause.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from orgsync.pipelines import validation
from orgsync.pipelines.assume_role_advice import advice
from orgsync.pipelines.credentials import CredentialError, MissingKeysError
from orgsync.pipelines.orgs import load_organization, resolve_org_id
from orgsync.pipelines.registration_checks import check_live, check_queue
from orgsync.pipelines.sql import load
from orgsync.services.adapters import broker, db, keys, nodes, queue_types, queues
from orgsync.services.errors import ServiceUnavailable, UserError
from orgsync.services.settings import Settings
from orgsync.services.use_cases import iam_policy

SQL = load("orgsync.services.use_cases")


@dataclass(frozen=True)
class Finding:
    name: str
    ok: bool | None  # None: not checked, because what it needs failed
    detail: str
    fix: str = ""

    @property
    def word(self) -> str:
        return {True: "ok", False: "FAIL", None: "skip"}[self.ok]

    def line(self) -> str:
        text = f"{self.word:<4}  {self.name:<11} {self.detail}"
        return f"{text}; fix: {self.fix}" if self.fix else text

    def as_json(self) -> dict[str, Any]:
        return {"check": self.name, "ok": self.ok, "detail": self.detail, "fix": self.fix}


def _failed(name: str, error: ServiceUnavailable) -> Finding:
    return Finding(name, False, error.detail, error.fix)


def check_postgres(settings: Settings) -> tuple[Finding, Any]:
    try:
        conn = db.connect(settings.database_url, autocommit=True)
    except ServiceUnavailable as error:
        return _failed("postgresql", error), None
    row = conn.execute(SQL["server_version"]).fetchone()
    version = row["server_version"] if row else "?"
    where = db.describe(settings.database_url)
    return Finding("postgresql", True, f"PostgreSQL {version} at {where}"), conn


def check_migrations(conn: Any) -> Finding:
    if conn is None:
        return Finding("migrations", None, "not checked: PostgreSQL failed")
    wanted = [db.version_of(path) for path in db.migration_files()]
    done: set[str] = set()
    if conn.execute(SQL["migrations_table"]).fetchone()["t"]:
        done = {r["version"] for r in conn.execute(SQL["applied_migrations"])}
    missing = [v for v in wanted if v not in done]
    if missing:
        return Finding(
            "migrations",
            False,
            f"{len(missing)} of {len(wanted)} migration(s) not applied ({', '.join(missing)})",
            "run `orgsync migrate`",
        )
    return Finding("migrations", True, f"all {len(wanted)} migration(s) applied")


def check_rabbitmq(settings: Settings) -> tuple[Finding, Any]:
    try:
        connection = broker.connect(settings.broker_url)
    except ServiceUnavailable as error:
        return _failed("rabbitmq", error), None
    version = connection._impl.server_properties.get("version", b"")
    version = version.decode() if isinstance(version, bytes) else str(version)
    host, _, vhost = nodes.describe(settings.broker_url).partition("/")
    return Finding("rabbitmq", True, f"RabbitMQ {version} at {host}, vhost {vhost!r}"), connection


def check_queues(connection: Any, queue_type: str | None = None) -> Finding:
    if connection is None:
        return Finding("queues", None, "not checked: RabbitMQ failed")
    rows = queues.count(connection)
    missing = [row["queue"] for row in rows if not row["declared"]]
    if missing:
        return Finding(
            "queues",
            False,
            f"not declared yet: {', '.join(missing)}",
            "start `orgsync worker` once (it declares every queue)",
        )
    try:
        found = queue_types.probe(connection, [row["queue"] for row in rows])
    except UserError as error:
        return Finding("queues", False, str(error))
    kinds = sorted(found)
    if len(kinds) > 1 or (queue_type and kinds != [queue_type]):
        wanted = queue_type or queue_types.DEFAULT
        return Finding(
            "queues",
            False,
            f"the queues are {' and '.join(kinds)}"
            + (f", ORGSYNC_QUEUE_TYPE={queue_type}" if queue_type else ""),
            f"run `orgsync queues migrate --to {wanted}`",
        )
    return Finding("queues", True, f"all {len(rows)} queues declared, {kinds[0]}")


def check_keys(settings: Settings, conn: Any) -> Finding:
    source = (
        "ORGSYNC_ENCRYPTION_KEYS"
        if settings.encryption_keys
        else f"key file {settings.encryption_key_file}"
    )
    try:
        keyring = keys.load_keyring(settings)
    except (MissingKeysError, keys.EmptyKeyFileError) as error:
        missing = isinstance(error, MissingKeysError)
        detail = f"no {source}, and ORGSYNC_ENCRYPTION_KEYS is unset" if missing else str(error)
        return Finding("keys", False, f"no encryption keys: {detail}", _keys_fix(settings, conn))
    except CredentialError as error:
        needed = _needed(conn)
        return Finding(
            "keys",
            False,
            f"the keys from {source} are unusable ({error})",
            "fix them: " + keys.keep_the_keys_advice(needed, settings.encryption_key_file)
            if needed
            else "fix them, or remove the file and run `orgsync keys generate`",
        )
    if conn is None:
        return Finding("keys", True, f"{len(keyring.key_ids)} key(s) from {source}")
    try:
        opened = keys.reseal_all(keyring, conn, check_only=True)
    except CredentialError as error:
        return Finding(
            "keys",
            False,
            f"the keys from {source} cannot open a stored credential ({error})",
            "set the keys the credentials were sealed with (ORGSYNC_ENCRYPTION_KEYS or"
            " ORGSYNC_ENCRYPTION_KEY_FILE)",
        )
    except Exception:  # no tables yet: the migrations verdict says so
        return Finding("keys", True, f"{len(keyring.key_ids)} key(s) from {source}")
    return Finding(
        "keys",
        True,
        f"{len(keyring.key_ids)} key(s) from {source} open all {opened} stored credential(s)",
    )


def _needed(conn: Any) -> dict[str, int]:
    """The key ids stored credentials are sealed under; none when no table is there yet."""
    if conn is None:
        return {}
    try:
        return keys.stored_key_ids(conn)
    except Exception:  # not migrated yet: the migrations verdict says so
        conn.rollback()
        return {}


def _keys_fix(settings: Settings, conn: Any) -> str:
    needed = _needed(conn)
    if needed:
        return keys.keep_the_keys_advice(needed, settings.encryption_key_file)
    return "run `orgsync keys generate` (no stored credential needs an older key)"


def check_aws(aws_factory: Callable[[], Any]) -> tuple[Finding, Any]:
    fix = (
        "give orgsync AWS credentials the usual way (AWS_PROFILE, AWS_ACCESS_KEY_ID and"
        " AWS_SECRET_ACCESS_KEY, or an instance or task role)"
    )
    try:
        aws = aws_factory()  # a missing AWS_PROFILE fails here already
        identity = aws.sts.get_caller_identity()
    except Exception as error:
        return Finding("aws", False, f"no usable AWS credentials ({_aws_reason(error)})", fix), None
    arn = identity["Arn"]
    session = iam_policy.session_role(arn)
    trust = (
        f" (an assumed-role session: the roles must trust its role, {session})" if session else ""
    )
    return Finding("aws", True, f"acting as {arn}{trust}"), aws


def _aws_reason(error: Exception) -> str:
    from orgsync.pipelines.aws_errors import classify

    verdict = classify(error)
    return f"{verdict.code}: {verdict.message}"


def check_org(
    settings: Settings, conn: Any, aws: Any, ref: str, migrated: bool
) -> Iterator[Finding]:
    needs = [name for name, ok in (("the migrations", migrated), ("AWS", aws)) if not ok]
    if needs:
        yield Finding("org role", None, f"not checked: {' and '.join(needs)} failed")
        return
    org_id = resolve_org_id(conn, ref)
    if org_id is None:
        yield Finding("org role", False, f"no organization {ref!r}", "see `orgsync orgs`")
        return
    try:
        org = load_organization(conn, keys.load_keyring(settings), org_id)
    except CredentialError as error:
        yield Finding("org role", None, f"its credentials cannot be opened ({error})")
        return
    assert org is not None
    live = check_live(aws.assume, org.credentials)
    if live.problems:
        yield Finding(
            "org role",
            False,
            "; ".join(p.message for p in live.problems),
            "`orgsync iam-policy --org` prints the policy the role needs"
            " (deploy/aws/org-role.yaml creates it)",
        )
    elif live.aws_org_id != org_id:
        yield Finding(
            "org role",
            False,
            f"{org.credentials.org_role_arn} reads organization {live.aws_org_id}, not {org_id}:"
            " the role is in another organization's management account",
            f"`orgsync update {ref}` with the organization role of {org_id}'s management account"
            f" ({org.management_account_id})",
        )
    else:
        yield Finding("org role", True, f"{org.credentials.org_role_arn} can read {org_id}")
    if org.filters.events_queue_url:
        yield check_events_queue(conn, aws, org)
    account = conn.execute(
        SQL["member_account_to_check"], (org_id, org.management_account_id)
    ).fetchone()
    if account is None:
        yield Finding("member role", None, "no member account discovered yet")
        return
    try:
        result = validation.assume_member_role(aws.sts, org, account["account_id"])
    except validation.TransientAwsError as error:
        yield Finding(
            "member role",
            False,
            f"AWS failed transiently ({error.error.code}: {error.error.message})",
            "run `orgsync check --org` again in a moment",
        )
        return
    if result.status is validation.ValidationStatus.OK:
        yield Finding("member role", True, f"assumed {org.member_role_arn(account['account_id'])}")
    else:
        management = account["account_id"] == org.management_account_id
        causes = advice(result.code or "", member=True, management_account=management)
        yield Finding(
            "member role",
            False,
            f"cannot assume {org.member_role_arn(account['account_id'])} ({result.reason})"
            + (f"; {causes}" if causes else ""),
            "deploy deploy/aws/member-role-stackset.yaml to the organization and"
            " deploy/aws/member-role.yaml to its management account"
            " (`orgsync iam-policy --member --principal ARN` prints its trust policy)",
        )


def check_events_queue(conn: Any, aws: Any, org: Any) -> Finding:
    """The organization role can receive and delete on its change-event queue, and the feed
    reads it (`feeds.error`, what the workers last met)."""
    url = org.filters.events_queue_url
    problems = check_queue(aws.assume, org.credentials, url)
    fix = "deploy/aws/events-queue.yaml creates the queue and grants the role receive and delete"
    if problems:
        return Finding("events", False, "; ".join(p.message for p in problems), fix)
    feed = conn.execute(SQL["feed_error"], (org.org_id,)).fetchone()
    if feed is not None and feed["error"]:
        return Finding("events", False, f"the workers cannot read {url}: {feed['error']}", fix)
    return Finding("events", True, f"the organization role can receive and delete on {url}")


def run(
    settings: Settings, org: str | None = None, aws_factory: Callable[[], Any] | None = None
) -> list[Finding]:
    verdicts: list[Finding] = []
    pg, conn = check_postgres(settings)
    mq, connection = check_rabbitmq(settings)
    try:
        migrations = check_migrations(conn)
        verdicts += [pg, migrations, mq, check_queues(connection, settings.queue_type)]
        verdicts.append(check_keys(settings, conn))
        if aws_factory is None:
            from orgsync.services.adapters.aws import Aws

            aws_factory = Aws
        aws_verdict, aws = check_aws(aws_factory)
        verdicts.append(aws_verdict)
        if org is not None:
            verdicts += check_org(settings, conn, aws, org, bool(migrations.ok))
    finally:
        if conn is not None:
            conn.close()
        if connection is not None and connection.is_open:
            connection.close()
    return verdicts


def passed(verdicts: list[Finding]) -> bool:
    """No failure. A skipped check is not one: what it needed failed, and says so itself."""
    return all(v.ok is not False for v in verdicts)
