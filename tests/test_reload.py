"""Hot reload: routes take effect at once, only a changed carrier rebinds, bad files are refused."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from smsgw.app import reload_config
from smsgw.config import RouteConfig
from tests.stack import eventually, on_loop, start_stack, write_process_config

pytestmark = pytest.mark.usefixtures("store_engine")


@on_loop
async def test_reload_applies_routes_and_rebinds_only_the_changed_carrier(tmp_path: Path) -> None:
    """A new alias answers the next SMS; Omantel's new TPS rebinds Omantel, Ooredoo stays bound."""
    stack = await start_stack(tmp_path, carriers=["omantel", "ooredoo"])
    try:
        omantel_binds = stack.smsc("omantel").counters["binds"]
        ooredoo_binds = stack.smsc("ooredoo").counters["binds"]
        config = stack.gateway.config
        help_route = config.routes[0]
        routes = (dataclasses.replace(help_route, aliases=(*help_route.aliases, "INFO")),)
        carriers = tuple(dataclasses.replace(c, tps=50.0) if c.name == "omantel" else c for c in config.carriers)
        summary = await stack.gateway.apply_config(dataclasses.replace(config, routes=routes, carriers=carriers))
        assert summary["changed"] == ["omantel"]
        await stack.wait_bound()
        assert stack.smsc("omantel").counters["binds"] == omantel_binds + 1
        assert stack.smsc("ooredoo").counters["binds"] == ooredoo_binds
        assert stack.gateway.queue.senders["omantel"].rate.ceiling == 50.0
        [reply] = await stack.send("omantel", "96891230200", "90091", "info")
        assert reply.text.startswith("Send to 90091")
    finally:
        await stack.stop()


@on_loop
async def test_bad_reload_keeps_the_running_config(tmp_path: Path) -> None:
    """A config file with an error is refused, its errors reported; routes stay as they were."""
    stack = await start_stack(tmp_path, carriers=["omantel"])
    try:
        path = write_process_config(tmp_path, {}, Path(stack.config.store_path))
        path.write_text(path.read_text().replace("window = 10", "window = -3", 1))
        before = stack.gateway.router.routes
        result = await reload_config(stack.gateway, str(path))
        assert "refused" in result and any("carriers.omantel.window" in e for e in result["refused"])
        assert stack.gateway.router.routes == before
        bad_route = RouteConfig(keyword="X", aliases=(), handler="nonexistent", short_codes=())
        try:
            await stack.gateway.apply_config(dataclasses.replace(stack.gateway.config, routes=(bad_route,)))
        except ValueError:
            pass
        assert stack.gateway.router.routes == before
        [reply] = await stack.send("omantel", "96891230201", "90091", "HELP")
        assert reply.text
    finally:
        await stack.stop()
