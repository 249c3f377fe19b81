"""Parking by SMS on 90091: book, extend, stop, list, inspect, remind, settle.

`FEATURE` plugs it into the gateway: the "parking" handler (routes name it), the parking tables
(a schema component), and the reminder scheduler.  The config is config/parking.toml next to the
gateway's config file; `make_feature(config)` builds the same feature around another config
(tests, a second deployment).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from handlers.parking.config import CONFIG_FILE, ParkingConfig, load_parking_config
from handlers.parking.handler import ParkingHandler
from handlers.parking.reminders import ReminderScheduler
from handlers.parking.retention import RULES as RETENTION
from handlers.parking.schema import COMPONENT
from smsgw.feature import Feature, FeatureFile, ServiceContext

__all__ = ["FEATURE", "HANDLER", "ParkingHandler", "make_feature"]

#: The handler name routes use: handler = "parking".
HANDLER = "parking"


def make_feature(config: ParkingConfig | str | os.PathLike[str] | None = None) -> Feature:
    """The parking feature; `config` is a loaded config, a path, or None for
    `<gateway config folder>/parking.toml`."""

    file = FeatureFile(config, ParkingConfig, CONFIG_FILE, load_parking_config)

    def handler(ctx: ServiceContext) -> ParkingHandler:
        return ParkingHandler(ctx, file.load(ctx.config_dir))

    def services(ctx: ServiceContext, handlers: Mapping[str, Any]) -> Sequence[ReminderScheduler]:
        return [ReminderScheduler(handlers[HANDLER], ctx)]

    return Feature(name="parking", handlers={HANDLER: handler}, schema=COMPONENT, services=services,
                   check_config=file.check, retention=RETENTION)


FEATURE: Feature = make_feature()
