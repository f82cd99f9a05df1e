"""What a failed connection to PostgreSQL or RabbitMQ means, and what to do about it.

One line each, naming the service and the fix that fits the cause: a server that does not
answer is started, a wrong password is checked, a missing vhost or database is created.
"""

from __future__ import annotations

import re
from typing import NamedTuple
from urllib.parse import unquote, urlsplit

from psycopg.conninfo import conninfo_to_dict

START_POSTGRES = (
    "start it (on Debian: pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main "
    "start; with Docker: docker compose up -d postgres) or point ORGSYNC_DATABASE_URL at it"
)
START_RABBITMQ = (
    "start it (on Debian: rabbitmq-server -detached; with Docker: docker compose up -d rabbitmq) "
    "or point ORGSYNC_BROKER_URL at it"
)


class Advice(NamedTuple):
    detail: str
    fix: str


def _chain(error: BaseException) -> str:
    """The texts of an error and of every error it was raised from."""
    texts: list[str] = []
    seen: BaseException | None = error
    while seen is not None and len(texts) < 5:
        texts.append(f"{type(seen).__name__}: {seen}")
        seen = seen.__cause__ or seen.__context__
    return " | ".join(texts)


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def rabbitmq(url: str, error: BaseException) -> Advice:
    nodes = [urlsplit(node.strip()) for node in url.split(",")]  # one URL per node
    parts = nodes[0]
    where = ",".join(f"{p.hostname or 'localhost'}:{p.port or 5672}" for p in nodes)
    vhost = unquote(parts.path[1:]) or "/"
    user = unquote(parts.username or "guest")
    text = _chain(error)
    if "ACCESS_REFUSED" in text or "AuthenticationError" in text:
        return Advice(
            f"RabbitMQ at {where} refused user {user!r}: wrong user name or password",
            "check the credentials in ORGSYNC_BROKER_URL"
            f" (rabbitmqctl authenticate_user {user} PASSWORD tells whether they are right)",
        )
    if "NOT_ALLOWED" in text or "AccessDeniedError" in text:
        return Advice(
            f"RabbitMQ at {where} has no vhost {vhost!r} that user {user!r} may use",
            f"create it (rabbitmqctl add_vhost {vhost} && rabbitmqctl set_permissions -p"
            f" {vhost} {user} '.*' '.*' '.*') or fix the vhost in ORGSYNC_BROKER_URL",
        )
    if "gaierror" in text or "Name or service not known" in text:
        return Advice(
            f"RabbitMQ at {where}: no such host {parts.hostname!r}",
            "fix the host in ORGSYNC_BROKER_URL",
        )
    if "IncompatibleProtocolError" in text or "AMQP handshake" in text:
        return Advice(
            f"something at {where} answered, but not as an AMQP server: not RabbitMQ's AMQP"
            " port (5672 by default; 15672 is its management UI, 5432 PostgreSQL's)",
            "point ORGSYNC_BROKER_URL at RabbitMQ's AMQP port",
        )
    reason = "connection refused" if "refused" in text.lower() else _first_line(error)
    return Advice(f"RabbitMQ at {where}/{vhost} is unreachable ({reason})", START_RABBITMQ)


def postgres(url: str, error: BaseException) -> Advice:
    params = conninfo_to_dict(url)
    where = f"{params.get('host', 'localhost')}:{params.get('port', 5432)}"
    name = params.get("dbname", "")
    user = params.get("user", "")
    text = _first_line(error)
    if re.search(r'database "[^"]*" does not exist', text):
        return Advice(
            f"PostgreSQL at {where} has no database {name!r} yet",
            "create it and its tables with `orgsync migrate`",
        )
    if "password authentication failed" in text or "no password supplied" in text:
        return Advice(
            f"PostgreSQL at {where} refused user {user!r}: wrong password",
            "check the credentials in ORGSYNC_DATABASE_URL",
        )
    if re.search(r'role "[^"]*" does not exist', text):
        return Advice(
            f"PostgreSQL at {where} has no user {user!r}",
            f"create it (createuser {user}) or fix the user in ORGSYNC_DATABASE_URL",
        )
    if "could not translate host name" in text:
        return Advice(
            f"PostgreSQL at {where}: no such host", "fix the host in ORGSYNC_DATABASE_URL"
        )
    return Advice(f"PostgreSQL at {where}/{name} is unreachable ({text})", START_POSTGRES)
