"""Every setting orgsync reads, from the environment, in one place."""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

from orgsync.pipelines import numbers
from orgsync.pipelines.aws_rates import MAX_AWS_RATE, MIN_AWS_RATE, unknown_api
from orgsync.pipelines.resync import DEFAULT_REHARVEST_AFTER, DEFAULT_REVALIDATE_AFTER

DEFAULT_DATABASE_URL = "postgresql://root@127.0.0.1:5432/orgsync"
DEFAULT_BROKER_URL = "amqp://guest:guest@127.0.0.1:5672/%2F"
DEFAULT_KEY_FILE = Path.home() / ".config" / "orgsync" / "keys"
DEFAULT_SYNC_INTERVAL = 3600.0
# a sync with nothing moving for this long is re-driven (pipelines/stuck.py)
DEFAULT_STUCK_AFTER = 900.0
DEFAULT_WORKER_METRICS_DIR = Path(tempfile.gettempdir()) / "orgsync-worker-metrics"
# AWS calls in flight at once for one stage in one worker process, whatever its number of
# threads: a page's calls share them, so two cores and the connection pool are never
# oversubscribed, and a stage waiting on its API's rate budget never holds another's
DEFAULT_AWS_CONCURRENCY = 16
# the shared AWS rate budget (services/adapters/budget/): calls/s per API, floor and ceiling;
# `*` is every API not named. AWS publishes no rates for Organizations: the budget finds them
# between these bounds, starting at the ceiling and halving nothing below the floor.
DEFAULT_AWS_RATES: dict[str, tuple[float, float]] = {"*": (1.0, 50.0), "AssumeRole": (1.0, 100.0)}
# pages of one organization per queue and lane published and not yet finished: the rest wait in
# the outbox for their turn (services/adapters/relay.py). 8 pages of 50 accounts keep 2 worker
# processes' AWS threads busy for one organization alone.
DEFAULT_PAGES_IN_FLIGHT = 8
# `orgsync worker` after SIGTERM: it stops taking messages at once, and within this long every
# process has handed back what it has not finished and exited (services/processes/grace.py);
# Kubernetes' default terminationGracePeriodSeconds
DEFAULT_WORKER_GRACE = 30.0
WORKER_GRACE_BOUNDS = (5.0, 3600.0)
# /healthz: a worker process whose threads finished nothing for this long while messages
# waited for them is stalled (services/processes/health.py)
DEFAULT_WORKER_STALL_AFTER = 300.0
WORKER_STALL_AFTER_BOUNDS = (10.0, 86400.0)

# an incremental sync (pipelines/resync.py) validates again an account validated longer ago than
# ORGSYNC_REVALIDATE_AFTER, and reads again the tags of one read longer ago than
# ORGSYNC_REHARVEST_AFTER (defaults: a day)
RESYNC_AGE_BOUNDS = (60.0, 7 * 24 * 3600.0)
# webhooks (services/processes/outbound.py): the first wait after a failed try, doubling after
# each one up to an hour; how long a delivery is retried before it is failed; how long one try
# may take; the threads of a worker process that post (one receiver holds at most one)
DEFAULT_WEBHOOK_FIRST_RETRY = 10.0
WEBHOOK_FIRST_RETRY_BOUNDS = (0.1, 3600.0)
DEFAULT_WEBHOOK_RETRY_FOR = 86400.0
WEBHOOK_RETRY_FOR_BOUNDS = (1.0, 7 * 86400.0)
DEFAULT_WEBHOOK_TIMEOUT = 10.0
WEBHOOK_TIMEOUT_BOUNDS = (0.5, 120.0)
DEFAULT_WEBHOOK_THREADS = 4
# a registration request fits in 64 KiB (a queue message at most, services/adapters/screening.py);
# every form and API body is smaller still, so a body past 256 KiB is refused before it is read
DEFAULT_WEB_MAX_BODY_BYTES = 256 * 1024

_DURATION = re.compile(r"([0-9]+(?:\.[0-9]+)?)([smh]?)")
_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600}
# the longest duration orgsync reads (a sync interval's bound); without one, 400 digits read as
# infinity, which `round` and a timedelta cannot take
MAX_DURATION_S = 7 * 24 * 3600


class SettingsError(ValueError):
    """A setting has a value orgsync cannot use."""


def parse_duration(text: str, name: str) -> float:
    """Seconds from `90`, `90s`, `15m` or `1h`, more than none and at most 7 days."""
    match = _DURATION.fullmatch(text.strip())
    seconds = float(match[1]) * _UNIT_SECONDS[match[2]] if match else 0.0
    if not 0 < seconds <= MAX_DURATION_S:
        raise SettingsError(
            f"{name}={_cut(text)!r}: expected a positive duration of at most 7 days (604800 s),"
            " such as 300, 90s, 15m, 1h"
        )
    return seconds


@dataclass(frozen=True, kw_only=True)
class Settings:
    database_url: str = DEFAULT_DATABASE_URL
    broker_url: str = DEFAULT_BROKER_URL  # one AMQP URL, or one per node separated by commas
    queue_type: str | None = None  # quorum or classic; None: what the vhost holds, else quorum
    encryption_keys: str | None = None
    encryption_key_file: Path = DEFAULT_KEY_FILE
    sync_interval: float = DEFAULT_SYNC_INTERVAL
    stuck_after: float = DEFAULT_STUCK_AFTER
    rabbitmq_management_url: str | None = None
    log_format: str = "json"
    log_level: str = "INFO"
    exporter_host: str = "127.0.0.1"
    exporter_port: int = 9464
    worker_metrics_host: str = "127.0.0.1"
    worker_metrics_port: int = 9191  # 0: no worker metrics
    worker_metrics_dir: Path = DEFAULT_WORKER_METRICS_DIR
    worker_grace: float = DEFAULT_WORKER_GRACE
    worker_stall_after: float = DEFAULT_WORKER_STALL_AFTER
    revalidate_after: float = DEFAULT_REVALIDATE_AFTER
    reharvest_after: float = DEFAULT_REHARVEST_AFTER
    aws_concurrency: int = DEFAULT_AWS_CONCURRENCY
    pages_in_flight: int = DEFAULT_PAGES_IN_FLIGHT
    removal_limit: float = 0.20  # share of an organization's accounts one walk may remove
    removal_min: int = 10  # accounts one walk may always remove
    aws_budget: bool = True  # False: each process calls AWS as fast as botocore lets it
    aws_rates: dict[str, tuple[float, float]] = field(
        default_factory=lambda: dict(DEFAULT_AWS_RATES), hash=False
    )
    # `orgsync web` (services/web/): never printed, hence repr=False on the secrets
    web_host: str = "127.0.0.1"
    web_port: int = 8080
    web_password: str | None = field(default=None, repr=False)
    web_password_hash: str | None = field(default=None, repr=False)
    web_session_secret: str | None = field(default=None, repr=False)  # None: new per start
    web_secure_cookies: bool = False  # True: Secure cookies even without X-Forwarded-Proto
    web_trusted_proxies: str = "127.0.0.1"  # who may set X-Forwarded-Proto
    api_token: str | None = field(default=None, repr=False)
    web_password_sign_in: bool = True  # False: OIDC only, the break-glass password turned off
    # sign-in through the organization's identity provider (services/web/oidc.py)
    oidc_issuer: str | None = None
    oidc_client_id: str | None = None
    oidc_client_secret: str | None = field(default=None, repr=False)
    oidc_groups_claim: str = "groups"
    oidc_scopes: str = "openid email profile"  # some providers send groups only for a scope
    webhook_first_retry: float = DEFAULT_WEBHOOK_FIRST_RETRY
    webhook_retry_for: float = DEFAULT_WEBHOOK_RETRY_FOR
    webhook_timeout: float = DEFAULT_WEBHOOK_TIMEOUT
    webhook_threads: int = DEFAULT_WEBHOOK_THREADS
    # the largest request body `orgsync web` reads; a larger one is refused (413) unread
    web_max_body_bytes: int = DEFAULT_WEB_MAX_BODY_BYTES

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> Settings:
        def get(name: str) -> str | None:
            value = environ.get(name, "").strip()
            return value or None

        interval = get("ORGSYNC_SYNC_INTERVAL")
        stuck_after = get("ORGSYNC_STUCK_AFTER")
        key_file = get("ORGSYNC_ENCRYPTION_KEY_FILE")
        log_format = get("ORGSYNC_LOG_FORMAT") or "json"
        if log_format not in ("json", "console"):
            raise SettingsError(f"ORGSYNC_LOG_FORMAT={log_format!r}: expected json or console")
        made = cls(
            database_url=_database_url(get("ORGSYNC_DATABASE_URL") or DEFAULT_DATABASE_URL),
            broker_url=_broker_url(get("ORGSYNC_BROKER_URL") or DEFAULT_BROKER_URL),
            queue_type=_queue_type(get("ORGSYNC_QUEUE_TYPE")),
            encryption_keys=get("ORGSYNC_ENCRYPTION_KEYS"),
            encryption_key_file=Path(key_file) if key_file else DEFAULT_KEY_FILE,
            sync_interval=(
                parse_duration(interval, "ORGSYNC_SYNC_INTERVAL")
                if interval
                else DEFAULT_SYNC_INTERVAL
            ),
            stuck_after=(
                parse_duration(stuck_after, "ORGSYNC_STUCK_AFTER")
                if stuck_after
                else DEFAULT_STUCK_AFTER
            ),
            rabbitmq_management_url=get("ORGSYNC_RABBITMQ_MANAGEMENT_URL"),
            log_format=log_format,
            log_level=_log_level(get("ORGSYNC_LOG_LEVEL") or "INFO"),
            exporter_host=get("ORGSYNC_EXPORTER_HOST") or "127.0.0.1",
            exporter_port=_port(get("ORGSYNC_EXPORTER_PORT"), "ORGSYNC_EXPORTER_PORT", 9464),
            worker_metrics_host=get("ORGSYNC_WORKER_METRICS_HOST") or "127.0.0.1",
            worker_metrics_port=_port(
                get("ORGSYNC_WORKER_METRICS_PORT"), "ORGSYNC_WORKER_METRICS_PORT", 9191
            ),
            worker_metrics_dir=Path(
                get("ORGSYNC_WORKER_METRICS_DIR") or DEFAULT_WORKER_METRICS_DIR
            ),
            worker_grace=_bounded_duration(
                get("ORGSYNC_WORKER_GRACE"),
                "ORGSYNC_WORKER_GRACE",
                DEFAULT_WORKER_GRACE,
                WORKER_GRACE_BOUNDS,
            ),
            worker_stall_after=_bounded_duration(
                get("ORGSYNC_WORKER_STALL_AFTER"),
                "ORGSYNC_WORKER_STALL_AFTER",
                DEFAULT_WORKER_STALL_AFTER,
                WORKER_STALL_AFTER_BOUNDS,
            ),
            revalidate_after=_bounded_duration(
                get("ORGSYNC_REVALIDATE_AFTER"),
                "ORGSYNC_REVALIDATE_AFTER",
                DEFAULT_REVALIDATE_AFTER,
                RESYNC_AGE_BOUNDS,
            ),
            reharvest_after=_bounded_duration(
                get("ORGSYNC_REHARVEST_AFTER"),
                "ORGSYNC_REHARVEST_AFTER",
                DEFAULT_REHARVEST_AFTER,
                RESYNC_AGE_BOUNDS,
            ),
            aws_concurrency=_count(
                get("ORGSYNC_AWS_CONCURRENCY"), "ORGSYNC_AWS_CONCURRENCY", DEFAULT_AWS_CONCURRENCY
            ),
            pages_in_flight=_count(
                get("ORGSYNC_PAGES_IN_FLIGHT"), "ORGSYNC_PAGES_IN_FLIGHT", DEFAULT_PAGES_IN_FLIGHT
            ),
            removal_limit=_percent(get("ORGSYNC_REMOVAL_LIMIT"), "ORGSYNC_REMOVAL_LIMIT", 20),
            removal_min=_count(
                get("ORGSYNC_REMOVAL_MIN"), "ORGSYNC_REMOVAL_MIN", 10, most=1_000_000, least=0
            ),
            aws_budget=_flag(get("ORGSYNC_AWS_BUDGET") or "true", "ORGSYNC_AWS_BUDGET"),
            aws_rates=parse_rates(get("ORGSYNC_AWS_RATES"), "ORGSYNC_AWS_RATES"),
            web_host=get("ORGSYNC_WEB_HOST") or "127.0.0.1",
            web_port=_port(get("ORGSYNC_WEB_PORT"), "ORGSYNC_WEB_PORT", 8080),
            web_password=get("ORGSYNC_WEB_PASSWORD"),
            web_password_hash=get("ORGSYNC_WEB_PASSWORD_HASH"),
            web_session_secret=get("ORGSYNC_WEB_SESSION_SECRET"),
            web_secure_cookies=_flag(
                get("ORGSYNC_WEB_SECURE_COOKIES"), "ORGSYNC_WEB_SECURE_COOKIES"
            ),
            web_trusted_proxies=get("ORGSYNC_WEB_TRUSTED_PROXIES") or "127.0.0.1",
            api_token=get("ORGSYNC_API_TOKEN"),
            web_password_sign_in=_on_off(
                get("ORGSYNC_WEB_PASSWORD_SIGN_IN"), "ORGSYNC_WEB_PASSWORD_SIGN_IN"
            ),
            oidc_issuer=_issuer(get("ORGSYNC_OIDC_ISSUER")),
            oidc_client_id=get("ORGSYNC_OIDC_CLIENT_ID"),
            oidc_client_secret=_secret_or_file(
                get("ORGSYNC_OIDC_CLIENT_SECRET"),
                get("ORGSYNC_OIDC_CLIENT_SECRET_FILE"),
                "ORGSYNC_OIDC_CLIENT_SECRET",
            ),
            oidc_groups_claim=get("ORGSYNC_OIDC_GROUPS_CLAIM") or "groups",
            oidc_scopes=_scopes(get("ORGSYNC_OIDC_SCOPES")),
            webhook_first_retry=_bounded_duration(
                get("ORGSYNC_WEBHOOK_FIRST_RETRY"),
                "ORGSYNC_WEBHOOK_FIRST_RETRY",
                DEFAULT_WEBHOOK_FIRST_RETRY,
                WEBHOOK_FIRST_RETRY_BOUNDS,
            ),
            webhook_retry_for=_bounded_duration(
                get("ORGSYNC_WEBHOOK_RETRY_FOR"),
                "ORGSYNC_WEBHOOK_RETRY_FOR",
                DEFAULT_WEBHOOK_RETRY_FOR,
                WEBHOOK_RETRY_FOR_BOUNDS,
            ),
            webhook_timeout=_bounded_duration(
                get("ORGSYNC_WEBHOOK_TIMEOUT"),
                "ORGSYNC_WEBHOOK_TIMEOUT",
                DEFAULT_WEBHOOK_TIMEOUT,
                WEBHOOK_TIMEOUT_BOUNDS,
            ),
            webhook_threads=_count(
                get("ORGSYNC_WEBHOOK_THREADS"),
                "ORGSYNC_WEBHOOK_THREADS",
                DEFAULT_WEBHOOK_THREADS,
                64,
            ),
            web_max_body_bytes=_count(
                get("ORGSYNC_WEB_MAX_BODY_BYTES"),
                "ORGSYNC_WEB_MAX_BODY_BYTES",
                DEFAULT_WEB_MAX_BODY_BYTES,
                most=64 * 1024 * 1024,
                least=1024,
            ),
        )
        check_web_secrets(made)
        return made


# shorter ones are refused at start: a short session secret lets the signed cookie that /login
# hands out be searched offline for it, and then a session be forged
MIN_WEB_PASSWORD, MIN_API_TOKEN, MIN_SESSION_SECRET = 12, 32, 32


def check_web_secrets(settings: Settings) -> None:
    """The console's secrets are long enough to resist guessing; raises SettingsError."""
    for name, value, least in (
        ("ORGSYNC_WEB_PASSWORD", settings.web_password, MIN_WEB_PASSWORD),
        ("ORGSYNC_API_TOKEN", settings.api_token, MIN_API_TOKEN),
        ("ORGSYNC_WEB_SESSION_SECRET", settings.web_session_secret, MIN_SESSION_SECRET),
    ):
        if value is not None and len(value) < least:
            raise SettingsError(
                f"{name} is {len(value)} characters: at least {least} are needed"
                " (python3 -c 'import secrets; print(secrets.token_urlsafe(32))' makes one)"
            )


def _on_off(text: str | None, name: str) -> bool:
    if text is None:
        return True
    if text.lower() not in ("on", "off", "true", "false", "1", "0", "yes", "no"):
        raise SettingsError(f"{name}={_cut(text)!r}: expected on or off")
    return text.lower() in ("on", "true", "1", "yes")


def _issuer(text: str | None) -> str | None:
    """The identity provider's issuer URL, whose /.well-known/openid-configuration is read."""
    if text is None:
        return None
    from urllib.parse import urlsplit

    parts = urlsplit(text)
    if parts.scheme not in ("https", "http") or not parts.netloc or parts.query:
        raise SettingsError(
            f"ORGSYNC_OIDC_ISSUER={_cut(text)!r}: expected the issuer's URL, such as"
            " https://login.example.com/realms/main"
        )
    return text.rstrip("/")


def _scopes(text: str | None) -> str:
    if text is None:
        return "openid email profile"
    scopes = text.replace(",", " ").split()
    if "openid" not in scopes or any(not s.isascii() or not s.isprintable() for s in scopes):
        raise SettingsError(
            f"ORGSYNC_OIDC_SCOPES={_cut(text)!r}: expected scopes separated by spaces,"
            " openid among them (such as: openid email profile groups)"
        )
    return " ".join(scopes)


def _secret_or_file(value: str | None, path: str | None, name: str) -> str | None:
    if value is not None and path is not None:
        raise SettingsError(f"{name} and {name}_FILE are both set: keep one")
    if path is None:
        return value
    try:
        secret = Path(path).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as error:
        raise SettingsError(f"{name}_FILE={_cut(path)!r}: {error}") from None
    if not secret:
        raise SettingsError(f"{name}_FILE={_cut(path)!r} is empty")
    return secret


def _bounded_duration(
    text: str | None, name: str, default: float, bounds: tuple[float, float]
) -> float:
    """A duration (`parse_duration`'s forms: digits only, so never infinite or NaN) within
    `bounds`, in seconds."""
    if text is None:
        return default
    least, most = bounds
    seconds = parse_duration(text, name)
    if not least <= seconds <= most:
        raise SettingsError(
            f"{name}={_cut(text)!r}: expected a duration from {least:g} s to {most:g} s,"
            " such as 30, 45s, 5m"
        )
    return seconds


def _cut(text: str) -> str:
    """A value as an error line shows it: a thousand digits are not read back to anyone."""
    return text if len(text) <= 40 else f"{text[:40]}..."


# Whole numbers are ASCII digits (str.isdigit also takes "²", which int() cannot read)
def _percent(text: str | None, name: str, default: int) -> float:
    if text is None:
        return default / 100
    percent = numbers.whole(text.removesuffix("%"), 0, 100)
    if percent is None:
        raise SettingsError(f"{name}={_cut(text)!r}: expected a percentage from 0 to 100")
    return percent / 100


def _port(text: str | None, name: str, default: int) -> int:
    if text is None:
        return default
    port = numbers.whole(text, 0, 65535)
    if port is None:
        raise SettingsError(f"{name}={_cut(text)!r}: expected a TCP port number (0 turns it off)")
    return port


def _count(text: str | None, name: str, default: int, most: int = 256, least: int = 1) -> int:
    if text is None:
        return default
    count = numbers.whole(text, least, most)
    if count is None:
        raise SettingsError(
            f"{name}={_cut(text)!r}: expected a whole number from {least} to {most}"
        )
    return count


_RATE = re.compile(r"(\*|[A-Z][A-Za-z]{1,63})=([0-9]+(?:\.[0-9]+)?):([0-9]+(?:\.[0-9]+)?)")


def parse_rates(text: str | None, name: str) -> dict[str, tuple[float, float]]:
    """`API=FLOOR:CEILING,...` (calls/s; `*` for every API not named) over the defaults."""
    return {**DEFAULT_AWS_RATES, **parse_rate_spec(text or "", name)}


def parse_rate_spec(text: str, name: str) -> dict[str, tuple[float, float]]:
    """`API=FLOOR:CEILING,...` as written, without the defaults: ORGSYNC_AWS_RATES's syntax, and
    an organization's override of it (`--aws-rates`, the console's form). Each rate is within
    the registration request's bounds (MIN_AWS_RATE to MAX_AWS_RATE calls/s)."""
    rates: dict[str, tuple[float, float]] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        match = _RATE.fullmatch(item)
        shown = repr(item) if len(item) <= 60 else f"{item[:60]!r}..."
        if not match:
            raise SettingsError(
                f"{name}: {shown}: expected API=FLOOR:CEILING in calls/s,"
                " such as ListTagsForResource=1:20 or *=1:50"
            )
        for bound, written in (("FLOOR", match[2]), ("CEILING", match[3])):
            if numbers.decimal(written, MIN_AWS_RATE, MAX_AWS_RATE) is None:
                got = written if len(written) <= 20 else f"{written[:20]}..."
                raise SettingsError(
                    f"{name}: {shown}: {bound} must be from {_decimal(MIN_AWS_RATE)} to"
                    f" {_decimal(MAX_AWS_RATE)} calls/s, got {got}"
                )
        if problem := unknown_api(match[1]):
            raise SettingsError(f"{name}: {shown}: {problem}")
        floor, ceiling = float(match[2]), float(match[3])
        if floor > ceiling:
            raise SettingsError(f"{name}: {shown}: FLOOR must not exceed CEILING")
        rates[match[1]] = (floor, ceiling)
    return rates


def parse_rate_override(text: str, name: str) -> dict[str, dict[str, float]] | None:
    """An organization's `aws_rates` field from the setting's syntax; `none`, `default` or
    blank: None, no override (ORGSYNC_AWS_RATES applies)."""
    if text.strip().lower() in ("", "none", "default"):
        return None
    rates = parse_rate_spec(text, name)
    if not rates:
        raise SettingsError(f"{name}: {text!r}: expected at least one API=FLOOR:CEILING")
    return {api: {"floor": floor, "ceiling": ceiling} for api, (floor, ceiling) in rates.items()}


def rate_override_text(override: Mapping[str, Mapping[str, float]] | None) -> str:
    """The `aws_rates` field in the setting's syntax, read back by parse_rate_override; "" for
    no override."""
    return ",".join(
        f"{api}={_decimal(r['floor'])}:{_decimal(r['ceiling'])}"
        for api, r in (override or {}).items()
    )


def _decimal(number: float) -> str:
    """`number` in plain decimals, every digit kept (20, 0.5, 0.00001: never 1e-05)."""
    text = format(Decimal(repr(float(number))), "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def _flag(text: str | None, name: str) -> bool:
    if text is None:
        return False
    if text.lower() not in ("true", "false", "1", "0", "yes", "no"):
        raise SettingsError(f"{name}={text!r}: expected true or false")
    return text.lower() in ("true", "1", "yes")


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
_PASSWORD = re.compile(r"(//[^:/@]*:)[^@]*@")


def _shown(url: str) -> str:
    """A URL as an error line may show it: without its password."""
    return _PASSWORD.sub(r"\1***@", url)


def _database_url(url: str) -> str:
    from psycopg import ProgrammingError
    from psycopg.conninfo import conninfo_to_dict

    example = "postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE"
    if "://" in url and not url.startswith(("postgresql://", "postgres://")):
        raise SettingsError(f"ORGSYNC_DATABASE_URL={_shown(url)!r}: expected {example}")
    try:
        params = conninfo_to_dict(url)
    except ProgrammingError:
        raise SettingsError(
            f"ORGSYNC_DATABASE_URL={_shown(url)!r} is not a PostgreSQL URL: expected {example}"
        ) from None
    if "://" not in url and not params.get("dbname"):
        raise SettingsError(
            f"ORGSYNC_DATABASE_URL={_shown(url)!r} names no database: expected {example}"
        )
    return url


def _broker_url(text: str) -> str:
    """One AMQP URL, or several separated by commas (one per node of a cluster, all on the
    same vhost): clients connect to any that answers."""
    from urllib.parse import unquote, urlsplit

    example = "amqp://USER:PASSWORD@HOST[:PORT]/VHOST (%2F for the default vhost)"
    urls = [part.strip() for part in text.split(",")]
    vhosts = set()
    for url in urls:
        try:
            parts = urlsplit(url)
            parts.port  # noqa: B018 (raises on a port that is not a number)
        except ValueError:
            parts = None
        if parts is None or parts.scheme not in ("amqp", "amqps") or not parts.hostname:
            raise SettingsError(
                f"ORGSYNC_BROKER_URL={_shown(url)!r} is not a RabbitMQ URL: expected {example},"
                " or several separated by commas"
            )
        vhosts.add(unquote(parts.path[1:]) or "/")
    if len(vhosts) > 1:
        raise SettingsError(
            f"ORGSYNC_BROKER_URL={_shown(text)!r}: every URL must name the same vhost (one per"
            " node of one cluster)"
        )
    return ",".join(urls)


QUEUE_TYPES = ("quorum", "classic")


def _queue_type(text: str | None) -> str | None:
    if text is None:
        return None
    if text.lower() not in QUEUE_TYPES:
        raise SettingsError(f"ORGSYNC_QUEUE_TYPE={_cut(text)!r}: expected quorum or classic")
    return text.lower()


def _log_level(text: str) -> str:
    if text.upper() not in LOG_LEVELS:
        raise SettingsError(f"ORGSYNC_LOG_LEVEL={text!r}: expected one of {', '.join(LOG_LEVELS)}")
    return text.upper()
