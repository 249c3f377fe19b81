"""End-to-end harness: the carrier simulators and a gateway over real loopback TCP.

Everything listens on 127.0.0.1 port 0 (read back, never fixed); the store is a file in the
test's tmp_path.  A test talks to the system the way a handset does: it asks a simulator to
deliver an MO and waits for what the handset receives.

    stack = await start_stack(tmp_path)
    replies = await stack.send("omantel", "96891234567", "90091", "HELP")
    ...
    await stack.stop()

Async tests run on the reactor's asyncio loop through `on_loop` (pytest-twisted drives it).
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import os
import re
import subprocess
import sys
import weakref
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest_twisted
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime

from carriers.faults import FaultPlan
from carriers.main import SimulatorSet, SimulatorSpec, start_simulators
from carriers.records import HandsetMessage
from smsgw.config import GatewayConfig, RouteConfig, load_config
from smsgw.feature import Feature
from smsgw.gateway import Gateway
from smsgw.store import Store
from tests import engines

ROOT = Path(__file__).resolve().parent.parent
SHIPPED_CONFIG = ROOT / "config" / "gateway.toml"
CARRIERS = ("omantel", "ooredoo", "friendi")


#: Every store a test opened: a test that fails before closing its own would otherwise leave the
#: store's worker thread running, and the test process would never exit.
_opened_stores: "weakref.WeakSet[Store]" = weakref.WeakSet()
_store_open = Store.open.__func__  # type: ignore[attr-defined]


async def _open_tracked(cls: type[Store], *args: Any, **kwargs: Any) -> Store:
    store = await _store_open(cls, *args, **kwargs)
    _opened_stores.add(store)
    return store


Store.open = classmethod(_open_tracked)  # type: ignore[method-assign, assignment]


async def _close_left_open() -> None:
    for store in list(_opened_stores):
        if not store._closed:
            try:
                await store.close()
            except Exception:  # noqa: BLE001 - the test's own failure is the one to report
                pass
    _opened_stores.clear()


def on_loop(fn: Callable[..., Awaitable[Any]]) -> Callable[..., Any]:
    """Make an asyncio test coroutine a pytest-twisted test running on the reactor's loop; any
    store it left open (it failed half-way) is closed after it."""

    @functools.wraps(fn)
    async def test(*args: Any, **kwargs: Any) -> Any:
        try:
            return await Deferred.fromFuture(asyncio.ensure_future(fn(*args, **kwargs)))
        finally:
            await Deferred.fromFuture(asyncio.ensure_future(_close_left_open()))

    return pytest_twisted.ensureDeferred(test)


async def wait(d: Deferred) -> Any:
    return await d.asFuture(asyncio.get_running_loop())


async def eventually(check: Callable[[], Any], timeout: float = 5.0, interval: float = 0.02) -> Any:
    """Poll an event-driven condition (a row committed, a bind up) until true or timeout."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return result
        if loop.time() > deadline:
            raise AssertionError(f"condition not met within {timeout} s: {check}")
        await asyncio.sleep(interval)


def make_config(
    tmp_path: Path,
    *,
    routes: Sequence[RouteConfig] = (),
    carriers: Iterable[str] = CARRIERS,
    carrier_overrides: Mapping[str, Mapping[str, Any]] | None = None,
    **gateway_overrides: Any,
) -> GatewayConfig:
    """The shipped config, on a tmp store, with fast reconnects and extra routes."""
    shipped = load_config(SHIPPED_CONFIG)
    wanted = set(carriers)
    carrier_list = []
    for carrier in shipped.carriers:
        if carrier.name not in wanted:
            continue
        changes: dict[str, Any] = {"port": 0, "reconnect_initial_s": 0.05, "reconnect_max_s": 0.5}
        changes.update((carrier_overrides or {}).get(carrier.name, {}))
        carrier_list.append(dataclasses.replace(carrier, **changes))
    simulators = tuple(dataclasses.replace(s, port=0) for s in shipped.simulators if s.name in wanted)
    values: dict[str, Any] = {
        engines.config_key(): engines.location(tmp_path),
        "control_port": 0,
        "carriers": tuple(carrier_list),
        "simulators": simulators,
        "routes": tuple(shipped.routes) + tuple(routes),
        # The shipped admin API listens on a fixed port; tests take a free one (gateway.admin.port).
        "admin": dataclasses.replace(shipped.admin, port=0),
    }
    values.update(gateway_overrides)
    return dataclasses.replace(shipped, **values)


@dataclasses.dataclass
class Stack:
    config: GatewayConfig
    sims: SimulatorSet
    gateway: Gateway
    features: Sequence[Feature]
    service_clock: IReactorTime | None
    specs: Sequence[SimulatorSpec] = ()
    faults: Mapping[str, FaultPlan] | None = None

    def smsc(self, carrier: str) -> Any:
        return self.sims.smsc(carrier)

    async def wait_bound(self, timeout: float = 5.0) -> None:
        """Every connector bound, except those refused (a test may give one bad credentials)."""
        await eventually(
            lambda: all(c.state in ("bound", "refused") for c in self.gateway.connectors.values()), timeout
        )

    async def send(
        self,
        carrier: str,
        msisdn: str,
        short_code: str,
        text: str,
        *,
        replies: int = 1,
        timeout: float = 5.0,
        **inject: Any,
    ) -> list[HandsetMessage]:
        """A handset on `carrier` sends `text`; returns the first `replies` messages it receives."""
        smsc = self.smsc(carrier)
        since = len(smsc.handset_messages)
        smsc.inject_mo(msisdn, short_code, text, **inject)
        return await wait(smsc.wait_handset(msisdn, replies, since_index=since, timeout=timeout))

    async def texts(self, carrier: str, msisdn: str, short_code: str, text: str, **kw: Any) -> list[str]:
        return [m.text for m in await self.send(carrier, msisdn, short_code, text, **kw)]

    def handset(self, carrier: str, msisdn: str) -> list[HandsetMessage]:
        return [m for m in self.smsc(carrier).handset_messages if m.msisdn == msisdn]

    async def restart_gateway(self, down_for: float = 0.0) -> None:
        """A clean stop and a new gateway on the same store (what a deploy does), `down_for`
        seconds later."""
        await self.gateway.stop()
        if down_for:
            await asyncio.sleep(down_for)
        self.gateway = _gateway(self.config, self.sims, self.features, self.service_clock)
        await self.gateway.start()
        await self.wait_bound()

    async def restart_all(self) -> None:
        """Stop the gateway and the simulators, start both again on the same store: the
        simulators are new processes as far as the gateway can tell (fresh id counters; a
        FaultPlan with ids_from_base makes them repeat the ids of their previous run)."""
        await self.gateway.stop()
        await wait(self.sims.stop())
        faults = {name: FaultPlan(**plan.as_dict()) for name, plan in (self.faults or {}).items()}
        self.sims = await wait(start_simulators(self.specs, "127.0.0.1", 0, reactor=reactor, faults=faults))
        self.gateway = _gateway(self.config, self.sims, self.features, self.service_clock)
        await self.gateway.start()
        await self.wait_bound()

    async def stop(self) -> None:
        try:
            await self.gateway.stop()
        finally:
            await wait(self.sims.stop())


def _gateway(config: GatewayConfig, sims: SimulatorSet, features: Sequence[Feature],
             service_clock: IReactorTime | None) -> Gateway:
    return Gateway(config, features, reactor=reactor, ports=sims.ports, service_clock=service_clock)


async def start_stack(
    tmp_path: Path,
    *,
    features: Sequence[Feature] | None = None,
    routes: Sequence[RouteConfig] = (),
    carriers: Iterable[str] = CARRIERS,
    carrier_overrides: Mapping[str, Mapping[str, Any]] | None = None,
    sim_overrides: Mapping[str, Mapping[str, Any]] | None = None,
    faults: Mapping[str, FaultPlan] | None = None,
    service_clock: IReactorTime | None = None,
    bind: bool = True,
    **gateway_overrides: Any,
) -> Stack:
    """Start the simulators, then a gateway bound to them; waits for every bind."""
    from smsgw.app import features as all_features

    config = make_config(
        tmp_path, routes=routes, carriers=carriers, carrier_overrides=carrier_overrides, **gateway_overrides
    )
    specs = [
        SimulatorSpec(
            **{
                "name": s.name, "profile": s.profile, "host": s.host, "port": 0,
                "system_id": s.system_id, "password": s.password, "tps": s.tps,
                **(sim_overrides or {}).get(s.name, {}),
            }
        )
        for s in config.simulators
    ]
    sims = await wait(start_simulators(specs, "127.0.0.1", 0, reactor=reactor, faults=faults))
    # The shipped routes name the app's handlers, so its features are always there; a test's
    # own features come on top, replacing an app feature of the same name (say, parking with a
    # test inspector list).
    given = list(features or ())
    chosen = [f for f in all_features() if f.name not in {g.name for g in given}] + given
    gateway = _gateway(config, sims, chosen, service_clock)
    try:
        await gateway.start()
    except BaseException:
        await wait(sims.stop())
        raise
    stack = Stack(config, sims, gateway, chosen, service_clock, specs, faults)
    if bind:
        await stack.wait_bound()
    return stack


# -- the gateway as a separate process (crash and signal tests) ---------------------------


def write_process_config(tmp_path: Path, ports: Mapping[str, int], store_path: Path,
                         embedded: bool = False, control_port: int = 0) -> Path:
    """The shipped TOML with the given carrier ports and store, for `smsgw run` in a subprocess."""
    text = SHIPPED_CONFIG.read_text(encoding="utf-8")
    store = engines.location(store_path.parent, store_path.name)  # the test's engine decides
    text = re.sub(r'(?m)^store_path = .*$', f'{engines.config_key()} = "{Path(store).as_posix() if not engines.is_postgres() else store}"', text)
    text = re.sub(r"(?m)^embedded_simulators = .*$", f"embedded_simulators = {'true' if embedded else 'false'}", text)
    text = re.sub(r"(?m)^reconnect_initial_s = .*$", "reconnect_initial_s = 0.05", text)
    text = re.sub(r"(?m)^reconnect_max_s = .*$", "reconnect_max_s = 0.5", text)
    defaults = {"omantel": 12775, "ooredoo": 12776, "friendi": 12777}
    for name, default in defaults.items():
        text = text.replace(f"port = {default}", f"port = {ports.get(name, 0)}")
    text = re.sub(r"(?m)^(\[control\](?:\n(?!\[).*)*?\nport = )\d+", rf"\g<1>{control_port}", text)
    text = re.sub(r"(?m)^(\[admin\](?:\n(?!\[).*)*?\nport = )\d+", r"\g<1>0", text)
    path = tmp_path / "gateway.toml"
    path.write_text(text, encoding="utf-8")
    os.chmod(path, 0o600)
    copy_feature_configs(tmp_path)
    return path


def copy_feature_configs(folder: Path) -> None:
    """Features read their files (parking.toml…) beside the gateway's config."""
    for source in SHIPPED_CONFIG.parent.glob("*.toml"):
        if source.name != SHIPPED_CONFIG.name and not (folder / source.name).exists():
            (folder / source.name).write_bytes(source.read_bytes())


#: `python -m smsgw.cli`, as a terminal's foreground job runs it: with Ctrl-C (SIGINT) delivered.
#: A suite launched as a background job (`pytest … &`) has SIGINT ignored, an ignored signal stays
#: ignored through fork and exec, and Python and Twisted then leave it so: the gateway would not
#: stop on SIGINT. Restoring Python's handler first makes the child independent of the launch.
SMSGW_AS_FOREGROUND = (
    "import runpy, signal; signal.signal(signal.SIGINT, signal.default_int_handler); "
    "runpy.run_module('smsgw.cli', run_name='__main__', alter_sys=True)"
)


def spawn_gateway(config_path: Path, log_path: Path, *extra: str) -> subprocess.Popen[bytes]:
    """`smsgw run` as its own process; its JSON log goes to `log_path` (a pipe could fill and
    block it)."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    with open(log_path, "ab") as log_file:
        return subprocess.Popen(
            [sys.executable, "-c", SMSGW_AS_FOREGROUND, "run", "--config", str(config_path), *extra],
            stdout=log_file, stderr=subprocess.STDOUT, cwd=str(ROOT), env=env,
        )


def log_events(log_path: Path) -> list[dict[str, Any]]:
    import json

    events = []
    for line in log_path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            events.append(json.loads(line))
        except ValueError:
            continue
    return events
