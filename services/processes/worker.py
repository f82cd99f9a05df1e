"""What `orgsync worker` runs (`dramatiq orgsync.services.processes.worker`): settings, logging,
and the broker with every actor, built by `orgsync.services.processes.actors.build` and made
dramatiq's global broker; `Grace` last, so that its hooks see a message before any other
middleware decides its fate (dramatiq runs `after_*` hooks in reverse order)."""

from __future__ import annotations

import dramatiq

from orgsync.services.logs import configure as configure_logging
from orgsync.services.processes.actors import build
from orgsync.services.processes.grace import Grace
from orgsync.services.settings import Settings

SETTINGS = Settings.from_env()
configure_logging(SETTINGS.log_level, SETTINGS.log_format)
broker = build(SETTINGS)
broker.add_middleware(Grace(SETTINGS.worker_grace))
dramatiq.set_broker(broker)
