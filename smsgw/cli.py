"""`smsgw` command line: run, simulate, send, handset, dial, check-config."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from smsgw.config import GatewayConfig

DEFAULT_CONFIG = os.environ.get("SMSGW_CONFIG", "config/gateway.toml")


def _add_config(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", default=DEFAULT_CONFIG, help="gateway TOML file (default: %(default)s)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="smsgw", description="SMS and USSD gateway for municipal services")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run the gateway daemon (with embedded simulators by default)")
    _add_config(run)
    run.add_argument("--no-simulators", action="store_true", help="do not start the embedded simulators")
    run.add_argument("--node", help="this node's name when several share one PostgreSQL store"
                                    " (default: the host name and admin port)")
    run.add_argument("--admin-port", type=int, help="the admin API's port, instead of [admin] port"
                                                    " (nodes on one machine share the config file)")

    sim = sub.add_parser("simulate", help="run the carrier SMSC simulators alone")
    _add_config(sim)

    send = sub.add_parser("send", help="act as a handset: send an MO through a running simulator")
    _add_config(send)
    send.add_argument("--carrier", required=True)
    send.add_argument("--from", dest="sender", required=True, help="the handset's MSISDN, e.g. 96891234567")
    send.add_argument("--to", dest="short_code", required=True, help="the short code, e.g. 90091")
    send.add_argument("--replies", type=int, default=1, help="how many reply messages to wait for")
    send.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for the replies")
    send.add_argument("--json", action="store_true", help="print raw JSON events")
    send.add_argument("text")

    handset = sub.add_parser("handset", help="act as a handset: print every SMS the simulators deliver to a number")
    _add_config(handset)
    handset.add_argument("--from", dest="msisdn", required=True,
                         help="the handset's MSISDN, e.g. 96891234567 (the number the SMS go to)")
    handset.add_argument("--carrier", action="append", dest="carriers",
                         help="only this carrier's deliveries; repeatable (default: every simulator)")
    handset.add_argument("--count", type=int, default=0, help="stop after this many messages (default: never)")
    handset.add_argument("--timeout", type=float, default=0.0, help="stop after this many seconds (default: never)")
    handset.add_argument("--json", action="store_true", help="print raw JSON events")

    dial = sub.add_parser("dial", help="act as a handset: a USSD dialogue through a running simulator")
    _add_config(dial)
    dial.add_argument("--carrier", required=True)
    dial.add_argument("--from", dest="sender", required=True, help="the handset's MSISDN, e.g. 96892123456")
    dial.add_argument("--answers", help="scripted answers, comma-separated (e.g. 1,1,1234AB); default: ask")
    dial.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for each screen")
    dial.add_argument("--json", action="store_true", help="print raw JSON events")
    dial.add_argument("code", help='what the handset dials, e.g. "*141#" or "*141*1*1234AB#"')

    parking = sub.add_parser("parking", help="parking: settlement files for the carriers")
    parking.add_argument("action", choices=["settlement"])
    parking.add_argument("args", nargs=argparse.REMAINDER,
                         help="--date YYYY-MM-DD [--carrier NAME] [--out DIR] [--config F]")

    tx = sub.add_parser("transactions", help="municipal transactions: the back-office feed")
    tx.add_argument("action", choices=["import"])
    tx.add_argument("args", nargs=argparse.REMAINDER, help="FILE.csv [--config F] [--transactions-config F]")

    check = sub.add_parser("check-config", help="validate a config file and exit")
    _add_config(check)

    from smsgw.admin.client import add_commands as add_operator_commands

    add_operator_commands(sub, _add_config)  # status, routes, pause, resume, reload, audit: over the admin API
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "send":
        return cmd_send(args)
    if args.command == "check-config":
        return cmd_check_config(args)
    if args.command == "parking":
        from handlers.parking.settlement import main as settlement_main

        return settlement_main(args.args)
    if args.command == "transactions":
        from handlers.transactions.importer import main as import_main

        return import_main(args.args)
    if args.command == "dial":
        return cmd_dial(args)
    if args.command == "handset":
        return cmd_handset(args)
    from smsgw.admin import client as operator_client

    if args.command in operator_client.COMMANDS:
        return operator_client.run(args)
    from smsgw import reactor as smsgw_reactor

    smsgw_reactor.install()
    from smsgw import app

    if args.command == "run":
        return app.run_daemon(args.config, simulators=not args.no_simulators, node=args.node,
                              admin_port=args.admin_port)
    if args.command == "simulate":
        return app.run_simulators_only(args.config)
    return 2


def cmd_check_config(args: argparse.Namespace) -> int:
    """The gateway's file, then each feature's own (parking.toml, transactions.toml, ussd.toml
    beside it): every problem in every file, each naming file, line and key; exit 2 if any."""
    from smsgw.app import check_feature_configs, load_checked_config
    from smsgw.config import ConfigError

    try:
        config = load_checked_config(args.config)
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    print(f"{args.config}: ok")
    # The features' files sit beside the gateway's: named from the folder as given, as it was typed.
    good, bad = check_feature_configs(config, Path(os.path.dirname(args.config)))
    for path in good:
        print(f"{path}: ok")
    for error in bad:
        print(str(error), file=sys.stderr)
    return 2 if bad else 0


def cmd_dial(args: argparse.Namespace) -> int:
    """A USSD dialogue in the terminal (smsgw/dial.py)."""
    from smsgw.config import ConfigError, load_config
    from smsgw.dial import EXIT_CONFIG, parse_answers, run_dial

    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_CONFIG
    return run_dial(config.control_host, config.control_port, args.carrier, args.sender, args.code,
                    parse_answers(args.answers), timeout=args.timeout, as_json=args.json)


def _control_unreachable(config: GatewayConfig, exc: Exception) -> int:
    print(f"cannot reach the simulators' control port {config.control_host}:{config.control_port}: {exc}\n"
          "start them with `smsgw run` (embedded) or `smsgw simulate`.", file=sys.stderr)
    return 1


def cmd_handset(args: argparse.Namespace) -> int:
    """Watch a handset: every SMS the simulators deliver to it, replies, notifications and
    reminders alike, printed as it arrives (through the control port, like `send`)."""
    from datetime import datetime

    from carriers.control import ControlError, control_request
    from smsgw.config import ConfigError, load_config
    from smsgw.msisdn import canonical_msisdn

    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    if args.count < 0 or args.timeout < 0:
        print("smsgw handset: --count and --timeout must not be negative", file=sys.stderr)
        return 2
    request: dict[str, object] = {"op": "watch", "msisdn": canonical_msisdn(args.msisdn), "count": args.count,
                                  "timeout": args.timeout}
    if args.carriers:
        request["carriers"] = args.carriers
    got = 0
    try:
        # No read timeout unless one was asked for: a handset may stay quiet for hours.
        wait = args.timeout + 5 if args.timeout else None
        for event in control_request(config.control_host, config.control_port, request, timeout=wait):
            if args.json:
                print(json.dumps(event, ensure_ascii=False), flush=True)
            kind = event.get("event")
            if kind == "error":
                if not args.json:
                    print(f"error: {event.get('message')}", file=sys.stderr)
                return 1
            if kind == "watching" and not args.json:
                print(f"watching {event.get('msisdn')} on {', '.join(event.get('carriers', []))}"
                      f"{'' if args.count or args.timeout else ' (Ctrl-C to stop)'}", file=sys.stderr, flush=True)
            if kind == "mt":
                got += 1
                if not args.json:
                    at = datetime.fromtimestamp(float(event.get("at") or 0)).strftime("%H:%M:%S")
                    head = f"{at} {event.get('carrier')} [{event.get('from')} → {event.get('to')}] "
                    text = str(event.get("text", "")).replace("\n", "\n" + " " * len(head))
                    print(head + text, flush=True)
    except KeyboardInterrupt:
        return 0
    except (ControlError, OSError) as exc:
        return _control_unreachable(config, exc)
    return 0 if not args.count or got >= args.count else 1


def cmd_send(args: argparse.Namespace) -> int:
    from carriers.control import ControlError, control_request
    from smsgw.app import load_checked_config
    from smsgw.config import ConfigError

    try:
        config = load_checked_config(args.config)
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    request = {
        "op": "mo",
        "carrier": args.carrier,
        "from": args.sender,
        "to": args.short_code,
        "text": args.text,
        "replies": args.replies,
        "timeout": args.timeout,
    }
    got = 0
    try:
        for event in control_request(config.control_host, config.control_port, request, timeout=args.timeout + 5):
            if args.json:
                print(json.dumps(event, ensure_ascii=False))
            kind = event.get("event")
            if kind == "error":
                if not args.json:
                    print(f"error: {event.get('message')}", file=sys.stderr)
                return 1
            if kind == "mt":
                got += 1
                if not args.json:
                    print(f"[{event.get('from')} → {event.get('to')}] {event.get('text')}")
            if kind == "timeout":
                if not args.json:
                    print(
                        f"no reply within {args.timeout:g} s ({got} of {args.replies} received); "
                        "is the gateway running and bound to this carrier?",
                        file=sys.stderr,
                    )
                return 1
    except (ControlError, OSError) as exc:
        return _control_unreachable(config, exc)
    return 0 if got >= args.replies else 1


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
