"""What `orgsync worker` runs (`dramatiq services.worker`): settings, logging, and the broker
with every actor, built by `services.actors.build` and made dramatiq's global broker."""

from __future__ import annotations

import dramatiq

from services.actors import build
from services.logs import configure as configure_logging
from services.settings import Settings

SETTINGS = Settings.from_env()
configure_logging(SETTINGS.log_level, SETTINGS.log_format)
broker = build(SETTINGS)
dramatiq.set_broker(broker)
