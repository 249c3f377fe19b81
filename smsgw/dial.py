"""`smsgw dial`: a USSD handset in the terminal, through a running simulator's control port.

    smsgw dial --carrier ooredoo --from 96892123456 "*141#"
    smsgw dial --carrier omantel --from 96891234567 "*141#" --answers 1,1,1,1234AB,1,2,1

Each screen the gateway sends is printed; the next answer is read from the keyboard (Ctrl-D or
Ctrl-C hangs up) or taken from --answers. The dialogue runs over real SMPP: the simulator plays
the network (carriers/ussd.py), the gateway answers as it would any handset.

Exit status: 0 the gateway ended the dialogue (its final screen came), 3 we hung up (answers ran
out, or Ctrl-D / Ctrl-C), 1 no screen in time or the control port refused, 2 a config error.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any, TextIO

EXIT_ENDED = 0
EXIT_FAILED = 1
EXIT_CONFIG = 2
EXIT_HUNG_UP = 3


def parse_answers(text: str | None) -> list[str] | None:
    """"1,1,1234AB" → ["1", "1", "1234AB"]; None when no script was given (interactive)."""
    if text is None:
        return None
    return [part.strip() for part in text.split(",")]


def run_dial(
    host: str,
    port: int,
    carrier: str,
    msisdn: str,
    dialled: str,
    answers: list[str] | None,
    *,
    timeout: float = 10.0,
    as_json: bool = False,
    out: TextIO = sys.stdout,
    err: TextIO = sys.stderr,
    read_line: Callable[[], str] | None = None,
) -> int:
    """Drive one dialogue; returns the exit status described in the module docstring."""
    from carriers.control import ControlError, control_request

    def call(payload: dict[str, Any]) -> dict[str, Any]:
        last: dict[str, Any] = {}
        for event in control_request(host, port, payload, timeout=timeout + 5):
            last = event
        return last

    def show(event: dict[str, Any]) -> None:
        if as_json:
            print(json.dumps(event, ensure_ascii=False), file=out)
            return
        rtt = event.get("rtt_ms")
        print(event.get("text", ""), file=out)
        footer = "end of dialogue" if event.get("end") else "answer"
        print(f"── {footer}" + (f" ({rtt:.1f} ms)" if isinstance(rtt, (int, float)) else ""), file=out)

    script = list(answers) if answers is not None else None
    try:
        event = call({"op": "dial", "carrier": carrier, "from": msisdn, "code": dialled, "timeout": timeout})
        while True:
            kind = event.get("event")
            if kind == "error":
                print(f"error: {event.get('message')}", file=err)
                return EXIT_FAILED
            if kind != "screen":
                print(f"no screen within {timeout:g} s; is the gateway running and bound to {carrier}?", file=err)
                return EXIT_FAILED
            show(event)
            if event.get("end"):
                return EXIT_ENDED
            dialogue = event["dialogue"]
            answer = _next_answer(script, read_line)
            if answer is None:
                call({"op": "hangup", "dialogue": dialogue})
                if not as_json:
                    print("── hung up", file=out)
                return EXIT_HUNG_UP
            if script is not None and not as_json:
                print(f"> {answer}", file=out)
            event = call({"op": "answer", "dialogue": dialogue, "text": answer, "timeout": timeout})
    except (ControlError, OSError) as exc:
        print(f"cannot reach the simulators' control port {host}:{port}: {exc}\n"
              "start them with `smsgw run` (embedded) or `smsgw simulate`.", file=err)
        return EXIT_FAILED


def _next_answer(script: list[str] | None, read_line: Callable[[], str] | None) -> str | None:
    if script is not None:
        return script.pop(0) if script else None
    try:
        return (read_line or (lambda: input("> ")))()
    except (EOFError, KeyboardInterrupt):
        return None
