"""`orgsync web`: serve the console with uvicorn; `--hash-password` makes the password's hash."""

from __future__ import annotations

import getpass
import logging
import sys

import uvicorn

from orgsync.services.adapters import db
from orgsync.services.errors import UserError
from orgsync.services.settings import MIN_WEB_PASSWORD, Settings
from orgsync.services.web.app import create_app
from orgsync.services.web.auth import hash_password


def hash_from_stdin() -> str:
    """ORGSYNC_WEB_PASSWORD_HASH for the password on stdin (or typed at a prompt)."""
    if sys.stdin.isatty():
        password = getpass.getpass("password: ")
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    if len(password) < MIN_WEB_PASSWORD:
        raise UserError(f"the password needs at least {MIN_WEB_PASSWORD} characters")
    return hash_password(password)


def run(settings: Settings, host: str | None, port: int | None) -> int:
    app = create_app(settings)  # refuses in one line without a password
    with db.connect(settings.database_url):  # and when PostgreSQL is down
        pass
    host = host or settings.web_host
    port = settings.web_port if port is None else port
    # the pipeline page counts queues every 2 s with passive declares; pika warns of each
    # queue that no worker has declared yet, which says nothing an operator can act on
    logging.getLogger("pika").setLevel(logging.ERROR)
    print(f"web console: http://{host}:{port}/ (API under /api/)", file=sys.stderr)
    # X-Forwarded-Proto is read by services/web/auth.py from ORGSYNC_WEB_TRUSTED_PROXIES only
    uvicorn.run(app, host=host, port=port, proxy_headers=False, log_level="warning")
    return 0
