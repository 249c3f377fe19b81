"""Parking by SMS on 90091: book, extend, stop, list, inspect, remind, settle.

`FEATURE` plugs it into the gateway: the "parking" handler (routes name it), the parking tables
(a schema component), and the reminder scheduler.  The config is config/parking.toml next to the
gateway's config file; `make_feature(config)` builds the same feature around another config
(tests, a second deployment).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from handlers.parking.config import ParkingConfig, default_config_path, load_parking_config
from handlers.parking.handler import ParkingHandler
from handlers.parking.reminders import ReminderScheduler
from handlers.parking.schema import COMPONENT
from smsgw.feature import Feature, ServiceContext

__all__ = ["FEATURE", "HANDLER", "ParkingHandler", "make_feature"]

#: The handler name routes use: handler = "parking".
HANDLER = "parking"


def make_feature(config: ParkingConfig | str | os.PathLike[str] | None = None) -> Feature:
    """The parking feature; `config` is a loaded config, a path, or None for
    `<gateway config folder>/parking.toml`."""

    def handler(ctx: ServiceContext) -> ParkingHandler:
        if isinstance(config, ParkingConfig):
            loaded = config
        elif config is None:
            loaded = load_parking_config(default_config_path(ctx.config_dir))
        else:
            loaded = load_parking_config(config)
        return ParkingHandler(ctx, loaded)

    def services(ctx: ServiceContext, handlers: Mapping[str, Any]) -> Sequence[ReminderScheduler]:
        return [ReminderScheduler(handlers[HANDLER], ctx)]

    def check_config(config_dir: Path, _short_codes: Mapping[str, tuple[str, ...]]) -> Sequence[Path]:
        if isinstance(config, ParkingConfig):
            return []
        path = default_config_path(config_dir) if config is None else Path(config)
        load_parking_config(path)
        return [path]

    return Feature(name="parking", handlers={HANDLER: handler}, schema=COMPONENT, services=services,
                   check_config=check_config)


FEATURE: Feature = make_feature()
