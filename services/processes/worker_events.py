"""What `orgsync worker` runs when its stages include `events` beside queue stages: the same
broker and actors as `services.worker`, and in each worker process the change-event feed."""

from __future__ import annotations

import dramatiq

from orgsync.services.logs import configure as configure_logging
from orgsync.services.processes.actors import build
from orgsync.services.processes.grace import Grace
from orgsync.services.settings import Settings

SETTINGS = Settings.from_env()
configure_logging(SETTINGS.log_level, SETTINGS.log_format)
broker = build(SETTINGS, feed=True)
broker.add_middleware(Grace(SETTINGS.worker_grace))  # last, as in services.worker
dramatiq.set_broker(broker)
