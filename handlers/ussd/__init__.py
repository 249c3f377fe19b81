"""USSD menus (config/ussd.toml) on the gateway's USSD channel: parking and request status by
dialling a code, in English or Arabic, through the same services as the SMS keywords.

`FEATURE` plugs them in: the "ussd" handler (the dialogue app smsgw/ussd/channel.py looks for;
as an SMS handler it answers with the code to dial), the stored language choices (schema
component "ussd_menus"), and, once every handler is built, the parking and transactions services.
`make_feature(config)` builds the same feature around another menu file (tests, a second code).

    config.py   ussd.toml → MenuConfig, errors as file:line:key
    engine.py   pure menu engine: State + input → next screen, or an effect to perform
    effects.py  the effects, done by ParkingService / TransactionService
    prefs.py    the language each number chose
    app.py      UssdMenus: the dialogue app (begin / answer / release_text)
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from handlers.ussd.app import UssdMenus
from handlers.ussd.config import CONFIG_FILE, MenuConfig, load_menu_config
from handlers.ussd.prefs import SCHEMA
from smsgw.feature import Feature, FeatureFile, ServiceContext
from smsgw.ussd.dialogue import APP_HANDLER

__all__ = ["FEATURE", "HANDLER", "UssdMenus", "make_feature"]

#: The handler name the USSD channel looks for (routes may also name it for an SMS keyword).
HANDLER = APP_HANDLER


def make_feature(config: MenuConfig | str | os.PathLike[str] | None = None) -> Feature:
    """The USSD menus; `config` is a loaded config, a path, or None for `<config folder>/ussd.toml`."""

    file = FeatureFile(config, MenuConfig, CONFIG_FILE, load_menu_config)

    def handler(ctx: ServiceContext) -> UssdMenus:
        return UssdMenus(ctx, file.load(ctx.config_dir))

    def services(ctx: ServiceContext, handlers: Mapping[str, Any]) -> Sequence[Any]:
        handlers[HANDLER].attach(handlers)
        return []

    return Feature(name="ussd", handlers={HANDLER: handler}, schema=SCHEMA, services=services,
                   check_config=file.check)


FEATURE: Feature = make_feature()
