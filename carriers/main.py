"""Start a set of carrier simulators and their shared control port.

`SimulatorSpec` is the simulators' own description of what to start; the gateway's CLI turns its
configuration into these, so carriers/ never has to import the gateway's config.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from twisted.internet import defer
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTCP, IReactorTime

from carriers.control import ControlServer
from carriers.faults import FaultPlan
from carriers.profiles import get_profile
from carriers.smsc import Smsc
from smsgw.log import get_logger

log = get_logger("carriers.main")


@dataclass(frozen=True)
class SimulatorSpec:
    """One simulator: `profile` is the carrier behaviour, `name` what the control port calls it."""

    name: str
    profile: str
    host: str = "127.0.0.1"
    port: int = 0  # 0: any free port; read it back from SimulatorSet.ports
    system_id: str = "mm_smsgw"
    password: str = "secret"
    tps: float | None = None  # overrides the profile's throttle limit
    #: Binds the account allows at once per direction (as an SMSC's account limit); None: any number.
    max_binds: int | None = None


class SimulatorSet:
    """Running simulators and their control server."""

    def __init__(self, smscs: dict[str, Smsc], ports: dict[str, int], control: ControlServer | None,
                 control_port: int | None) -> None:
        self.smscs = smscs
        self.ports = ports
        self.control = control
        self.control_port = control_port

    def smsc(self, name: str) -> Smsc:
        return self.smscs[name]

    def stop(self) -> Deferred[None]:
        waits: list[Deferred[Any]] = []
        if self.control is not None:
            waits.append(self.control.stop())
        waits.extend(smsc.stop() for smsc in self.smscs.values())
        return defer.gatherResults(waits, consumeErrors=True).addCallback(lambda _: None)


def start_simulators(
    specs: Sequence[SimulatorSpec],
    control_host: str = "127.0.0.1",
    control_port: int | None = 0,
    reactor: Any = None,
    clock: IReactorTime | None = None,
    *,
    faults: Mapping[str, FaultPlan] | None = None,
    wait_clock: IReactorTime | None = None,
) -> Deferred[SimulatorSet]:
    """Listen with every simulator, then the control port (None: no control port).

    If any port cannot be bound, whatever did start is stopped again and the Deferred fails.
    """
    return defer.ensureDeferred(_start(specs, control_host, control_port, reactor, clock, faults, wait_clock))


async def _start(
    specs: Sequence[SimulatorSpec],
    control_host: str,
    control_port: int | None,
    reactor: IReactorTCP | None,
    clock: IReactorTime | None,
    faults: Mapping[str, FaultPlan] | None,
    wait_clock: IReactorTime | None,
) -> SimulatorSet:
    if reactor is None:
        from twisted.internet import reactor as global_reactor

        reactor = global_reactor  # type: ignore[assignment]
    names = [spec.name for spec in specs]
    if len(set(names)) != len(names):
        raise ValueError(f"simulator names must be unique: {names}")
    smscs: dict[str, Smsc] = {}
    ports: dict[str, int] = {}
    control: ControlServer | None = None
    try:
        for spec in specs:
            smsc = Smsc(
                get_profile(spec.profile),
                system_id=spec.system_id,
                password=spec.password,
                tps=spec.tps,
                clock=clock or reactor,  # type: ignore[arg-type]
                wait_clock=wait_clock or reactor,  # type: ignore[arg-type]
                faults=(faults or {}).get(spec.name),
                name=spec.name,
                max_binds=spec.max_binds,
            )
            smscs[spec.name] = smsc
            port = await smsc.listen(reactor, spec.host, spec.port)
            ports[spec.name] = port.getHost().port
        actual_control_port: int | None = None
        if control_port is not None:
            control = ControlServer(smscs, wait_clock=wait_clock or reactor)  # type: ignore[arg-type]
            listening = await control.listen(reactor, control_host, control_port)  # type: ignore[arg-type]
            actual_control_port = listening.getHost().port
    except BaseException:
        for smsc in smscs.values():
            await smsc.stop()
        if control is not None:
            await control.stop()
        raise
    log.info("simulators_started", ports=ports, control_port=actual_control_port)
    return SimulatorSet(smscs, ports, control, actual_control_port)
