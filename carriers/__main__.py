"""`python -m carriers`: run SMSC simulators on their own, outside the gateway.

  python -m carriers --sim omantel:12775:mm_smsgw:omt_dev1 --sim ooredoo:12776:mm_smsgw:ord_dev1 \\
                     --control-port 12780

Each --sim is NAME[=PROFILE]:PORT[:SYSTEM_ID:PASSWORD[:TPS]]; without any, all three profiles start
on free ports with --system-id / --password. The gateway's own CLI starts the same simulators
from its configuration; this entry point is for running them as a separate process.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from carriers.main import SimulatorSpec
from carriers.profiles import PROFILES


def parse_sim(text: str, system_id: str, password: str) -> SimulatorSpec:
    fields = text.split(":")
    if not 2 <= len(fields) <= 5 or len(fields) == 3:
        raise argparse.ArgumentTypeError(f"--sim {text!r}: expected NAME[=PROFILE]:PORT[:SYSTEM_ID:PASSWORD[:TPS]]")
    name, _, profile = fields[0].partition("=")
    profile = profile or name
    if profile not in PROFILES:
        raise argparse.ArgumentTypeError(f"--sim {text!r}: unknown profile {profile!r}; known: {', '.join(PROFILES)}")
    try:
        port = int(fields[1])
        tps = float(fields[4]) if len(fields) == 5 else None
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"--sim {text!r}: {exc}") from None
    if len(fields) >= 4:
        system_id, password = fields[2], fields[3]
    return SimulatorSpec(name=name, profile=profile, port=port, system_id=system_id, password=password, tps=tps)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m carriers", description="SMPP SMSC simulators")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--sim", action="append", default=[], metavar="NAME[=PROFILE]:PORT[:SYSTEM_ID:PASSWORD[:TPS]]")
    parser.add_argument("--system-id", default="mm_smsgw")
    parser.add_argument("--password", default="secret")
    parser.add_argument("--control-port", type=int, default=12780)
    parser.add_argument("--log-level", default="info")
    parser.add_argument("--max-binds", type=int, default=None,
                        help="binds each account allows at once, per direction (default: any number)")
    args = parser.parse_args(argv)
    try:
        specs = [parse_sim(s, args.system_id, args.password) for s in args.sim] or [
            SimulatorSpec(name=n, profile=n, system_id=args.system_id, password=args.password) for n in PROFILES
        ]
    except argparse.ArgumentTypeError as exc:
        parser.error(str(exc))
    specs = [SimulatorSpec(s.name, s.profile, args.host, s.port, s.system_id, s.password, s.tps, args.max_binds)
             for s in specs]

    # The asyncio reactor, as in the gateway, so both behave the same under load.
    from twisted.internet import asyncioreactor

    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    asyncioreactor.install(loop)
    from twisted.internet import reactor

    from carriers.main import start_simulators
    from smsgw.log import configure

    configure(args.log_level)
    exit_code = 0

    def started(sims: object) -> None:
        # Twisted's own SIGINT/SIGTERM handling stops the reactor; unbind and close first.
        reactor.addSystemEventTrigger("before", "shutdown", sims.stop)  # type: ignore[attr-defined]

    def failed(failure: object) -> None:
        nonlocal exit_code
        exit_code = 1
        print(f"could not start the simulators: {failure.getErrorMessage()}", file=sys.stderr)  # type: ignore[attr-defined]
        reactor.stop()  # type: ignore[attr-defined]

    def go() -> None:
        start_simulators(specs, args.host, args.control_port, reactor).addCallbacks(started, failed)

    reactor.callWhenRunning(go)  # type: ignore[attr-defined]
    reactor.run()  # type: ignore[attr-defined]
    return exit_code


if __name__ == "__main__":
    sys.exit(main())
