"""Wiring: config → simulators (when embedded) → gateway, and the daemon's life cycle."""

from __future__ import annotations

import asyncio
import gc
import os
import signal
import stat
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from smsgw.config import ConfigError, ConfigIssue, GatewayConfig, load_config
from smsgw.feature import Feature
from smsgw.log import configure, get_logger

log = get_logger("smsgw")


#: The router adds "help" and "unknown" itself (they need the router), so they are named only.
BUILTIN_HANDLERS = ("help",)


def features() -> list[Feature]:
    """Every service the gateway offers; each brings its handlers, tables and schedulers."""
    from handlers.parking import FEATURE as PARKING
    from handlers.transactions import FEATURE as TRANSACTIONS
    from handlers.ussd import FEATURE as USSD

    return [PARKING, TRANSACTIONS, USSD]


def check_feature_configs(config: GatewayConfig, config_dir: Path | None = None) -> tuple[list[str], list[ConfigError]]:
    """Every feature's own config files, read and checked as start-up would: the files found
    good, and one ConfigError (file, line, key) per bad file. `config_dir`: the gateway's folder
    as the operator wrote it (so files are named as they would name them); default: resolved."""
    good: list[str] = []
    bad: list[ConfigError] = []
    folder = config.config_dir if config_dir is None else config_dir
    for feature in features():
        if feature.check_config is None:
            continue
        try:
            good.extend(str(path) for path in feature.check_config(folder, config.short_codes))
        except ConfigError as exc:
            bad.append(exc)
    return good, bad


def load_checked_config(path: str) -> GatewayConfig:
    names = [name for feature in features() for name in feature.handlers]
    return load_config(path, known_handlers=[*BUILTIN_HANDLERS, *names])


def simulator_specs(config: GatewayConfig) -> list[Any]:
    from carriers.main import SimulatorSpec

    return [
        SimulatorSpec(
            name=sim.name, profile=sim.profile, host=sim.host, port=sim.port,
            system_id=sim.system_id, password=sim.password, tps=sim.tps,
        )
        for sim in config.simulators
    ]


def warn_if_world_readable(path: str) -> None:
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return
    if mode & (stat.S_IRGRP | stat.S_IROTH):
        log.warning("config_readable_by_others", path=path,
                    hint="the file holds SMPP passwords; chmod 600 it on a shared machine")


async def start_stack(
    config: GatewayConfig, reactor: Any, *, simulators: bool = True, clock: Any = None
) -> tuple[Any, Any]:
    """Start the embedded simulators (if configured) and the gateway; returns (gateway, sims)."""
    from twisted.internet.defer import Deferred

    from smsgw.gateway import Gateway

    sims = None
    ports: dict[str, int] = {}
    if simulators and config.embedded_simulators and config.simulators:
        from carriers.main import start_simulators

        sims = await Deferred.asFuture(
            start_simulators(simulator_specs(config), config.control_host, config.control_port, reactor=reactor),
            asyncio.get_running_loop(),
        )
        ports = dict(sims.ports)
    gateway = Gateway(config, features(), reactor=reactor, clock=clock, ports=ports)
    await gateway.start()
    return gateway, sims


async def reload_config(gateway: Any, config_path: str, actor: str = "signal:SIGHUP",
                        announce: bool = True) -> dict[str, Any]:
    """Re-read the config file; a bad file is refused with its errors logged, and the running
    config is kept. Returns what changed (or the errors). Either way it goes to the audit log
    as done by `actor` ("token:<name>" from the admin API).  With several nodes, a reload applied
    here is announced so that every node reloads the (shared) file too; `announce` is False for
    a reload that is itself the answer to one."""
    result = await _reload(gateway, config_path)
    if gateway.store is not None:
        from smsgw.admin.state import record_audit

        await record_audit(gateway.store, gateway.clock.seconds(), actor, "reload", config_path,
                           "refused" if "refused" in result else "ok", result)
    if announce and "refused" not in result:
        await gateway.announce("reload")
    return result


async def _reload(gateway: Any, config_path: str) -> dict[str, Any]:
    try:
        current = gateway.config
        new = load_checked_config(config_path)
        # The node's own options (smsgw run --node, --admin-port) are not in the shared file.
        new = node_options(new, current.node, current.admin.port if current.admin.enabled else None)
        if new.store_location != gateway.config.store_location:
            key = "gateway.store_url" if new.store_url is not None or gateway.config.store_url else "gateway.store_path"
            raise ConfigError([ConfigIssue(config_path, 0, key,
                                           "cannot change while running; restart the gateway")])
        configure(new.log_level)
        return await gateway.apply_config(new)
    except ConfigError as exc:
        log.error("reload_refused", errors=[str(issue) for issue in exc.issues])
        return {"refused": [str(issue) for issue in exc.issues]}
    except ValueError as exc:
        log.error("reload_refused", errors=[str(exc)])
        return {"refused": [str(exc)]}


def terminal() -> TextIO | None:
    """Where to write plain lines for a person: the terminal the daemon runs in, if any (the JSON
    logs go to stdout, which is often a file or a pipe)."""
    for stream in (sys.stderr, sys.stdout):
        try:
            if stream.isatty():
                return stream
        except (AttributeError, ValueError):
            continue
    return None


class ReadyLine:
    """Says once, in one plain line on the terminal, when every carrier's bind is up (and the
    admin API's address); says which carrier refused our credentials, if one does. The same facts
    are logged (`gateway_ready`, `credentials_refused`) for scripts."""

    def __init__(self, gateway: Any, config: GatewayConfig, out: TextIO | None, sims: Any = None) -> None:
        self._gateway = gateway
        self._config = config
        self._sims = sims
        self._out = out
        self._refused: set[str] = set()
        self.announced = False
        for connector in gateway.connectors.values():
            connector.add_state_listener(self._changed)
        self._changed(None)

    def text(self) -> str:
        config = self._config
        names = ", ".join(self._gateway.connectors)
        line = f"ready: {names} bound; "
        admin = self._gateway.admin
        if admin is not None:
            host = f"[{config.admin.host}]" if ":" in config.admin.host else config.admin.host
            line += f"admin on http://{host}:{admin.port or config.admin.port}/"
        else:
            line += "admin off"
        control = getattr(self._sims, "control_port", None)
        if control:
            line += f"; handsets on {config.control_host}:{control} (smsgw send, smsgw dial, smsgw handset)"
        return line

    def _changed(self, _connector: Any) -> None:
        from smsgw.smpp.connector import REFUSED

        connectors = self._gateway.connectors
        for name, connector in connectors.items():
            if connector.state == REFUSED and name not in self._refused:
                self._refused.add(name)
                self._say(f"{name}: bind refused ({connector.last_error}); fix its system_id and password in "
                          f"{self._config.path}")
        if self.announced or not connectors or not all(c.is_bound for c in connectors.values()):
            return
        self.announced = True
        text = self.text()
        log.info("gateway_ready", carriers=list(connectors), summary=text)
        self._say(text)

    def _say(self, line: str) -> None:
        if self._out is not None:
            print(line, file=self._out, flush=True)


def _run(main: Callable[[Any], Any], shutdown: Callable[[], Any]) -> int:
    from twisted.internet import reactor
    from twisted.internet.defer import Deferred

    exit_code = [0]

    async def boot() -> None:
        try:
            await main(reactor)
        except ConfigError as exc:
            print(str(exc), file=sys.stderr)
            exit_code[0] = 2
            reactor.stop()
        except Exception as exc:  # start-up failed: say why and exit non-zero
            log.exception("startup_failed", error=str(exc))
            exit_code[0] = 1
            reactor.stop()

    def stop_trigger() -> Deferred:
        return Deferred.fromFuture(asyncio.ensure_future(shutdown()))

    reactor.callWhenRunning(lambda: asyncio.ensure_future(boot()))
    reactor.addSystemEventTrigger("before", "shutdown", stop_trigger)
    reactor.run()
    return exit_code[0]


#: Allocations between two collections of the youngest generation (Python's default is 700): every
#: message allocates tasks, futures, Deferreds and PDUs by the dozen, so the default collects every
#: few messages; a larger threshold keeps what lingers bounded and collects far less often.
GC_YOUNG_THRESHOLD = 10_000


def settle_garbage_collector() -> None:
    """Once the gateway has started: what start-up built lives as long as the process, so it is
    moved out of the collector's sight (gc.freeze) instead of being walked by every full
    collection, and the youngest generation is collected less often (GC_YOUNG_THRESHOLD)."""
    gc.collect()
    gc.freeze()
    _, middle, oldest = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, middle, oldest)


def node_options(config: GatewayConfig, node: str | None, admin_port: int | None) -> GatewayConfig:
    """What differs between nodes sharing one config file: the name, the admin API's port."""
    import dataclasses

    if admin_port is not None:
        config = dataclasses.replace(config, admin=dataclasses.replace(config.admin, port=admin_port))
    if node is not None:
        config = dataclasses.replace(config, node=node)
    return config


def run_daemon(config_path: str, simulators: bool = True, node: str | None = None,
               admin_port: int | None = None) -> int:
    if admin_port is not None and not 0 <= admin_port <= 65535:
        print(f"--admin-port must be between 0 and 65535, got {admin_port}", file=sys.stderr)
        return 2
    if node is not None and not node.replace("-", "").replace("_", "").replace(".", "").isalnum():
        print(f"--node must be letters, digits, '-', '_' or '.', got {node!r}", file=sys.stderr)
        return 2
    try:
        config = node_options(load_checked_config(config_path), node, admin_port)
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    configure(config.log_level)
    warn_if_world_readable(config_path)
    state: dict[str, Any] = {}

    async def main(reactor: Any) -> None:
        from smsgw import reactor as smsgw_reactor

        log.info("event_loop", loop=smsgw_reactor.event_loop or type(asyncio.get_running_loop()).__name__)
        gateway, sims = await start_stack(config, reactor, simulators=simulators)
        state["gateway"], state["sims"] = gateway, sims
        state["ready"] = ReadyLine(gateway, config, terminal(), sims)
        settle_garbage_collector()
        asyncio.get_running_loop().add_signal_handler(
            signal.SIGHUP, lambda: asyncio.ensure_future(reload_config(gateway, config_path))
        )

    async def shutdown() -> None:
        gateway, sims = state.get("gateway"), state.get("sims")
        try:
            if gateway is not None:
                await asyncio.wait_for(gateway.stop(), timeout=config.shutdown_timeout_s)
        except asyncio.TimeoutError:
            log.error("shutdown_timed_out", timeout_s=config.shutdown_timeout_s)
        if sims is not None:
            from twisted.internet.defer import maybeDeferred

            await maybeDeferred(sims.stop).asFuture(asyncio.get_running_loop())

    return _run(main, shutdown)


def run_simulators_only(config_path: str) -> int:
    try:
        config = load_checked_config(config_path)
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    configure(config.log_level)
    state: dict[str, Any] = {}

    async def main(reactor: Any) -> None:
        from twisted.internet.defer import Deferred

        from carriers.main import start_simulators

        sims = await Deferred.asFuture(
            start_simulators(simulator_specs(config), config.control_host, config.control_port, reactor=reactor),
            asyncio.get_running_loop(),
        )
        state["sims"] = sims

    async def shutdown() -> None:
        sims = state.get("sims")
        if sims is not None:
            from twisted.internet.defer import maybeDeferred

            await maybeDeferred(sims.stop).asFuture(asyncio.get_running_loop())

    return _run(main, shutdown)
