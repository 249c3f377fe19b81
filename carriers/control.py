"""JSON-lines control port: one TCP port for every simulator in the process.

One request per line, one JSON object per answer line. Requests may carry an "id", echoed on
every line answering them, so a client can run several requests on one connection. The last line
of each request has an event in FINAL_EVENTS.

  {"op":"mo","carrier":"omantel","from":"96891234567","to":"90091","text":"HELP","replies":1,"timeout":10}
      → {"event":"accepted","mo_id":..}, {"event":"mt","from":..,"to":..,"text":..,"parts":n} per reply,
        then {"event":"done","received":n} or {"event":"timeout","received":k}
  {"op":"status"}                                  → {"event":"status","carriers":{name: {...}}}
  {"op":"load","count":20000,"rate":0,"keyword":"HELP","carriers":[..],"msisdn_base":96890000000}
      ("mix":[["90091","HELP"],["90092","STATUS 1"]] in place of keyword/to: texts taken in turn)
                                                   → {"event":"load","sent":..,"replied":..,...}
  {"op":"faults","carrier":..,"set":{"throttle_storm":true}} or {"op":"faults","carrier":..,"reset":true}
                                                   → {"event":"ok","faults":{...}}
  {"op":"garbage","carrier":..,"kind":"unknown_command"}  → {"event":"ok","sessions":n}
  {"op":"restart_counter","carrier":..}            → {"event":"ok"}  (ids start again: they repeat)
  {"op":"reset"}                                   → {"event":"ok"}  (forget recorded messages)
  {"op":"inject","mos":[{"carrier":..,"from":..,"to":..,"text":..}, ...]}
                                                   → {"event":"ok","mo_ids":[..]}  (no waiting for replies)
  {"op":"drop","carrier":..,"abort":true}          → {"event":"ok","sessions":n}  (cut every ESME link)
  {"op":"records","carriers":[..]}                 → {"event":"records","carriers":{name: {mos, mts, handset,
                                                      counters}}}  (see Smsc.records)
  {"op":"fuzz","carriers":[..],"cases":1000,"seed":1,"wellformed_every":10,"depth":64}
                                                   → {"event":"fuzz", ...FuzzReport}  (carriers/fuzz.py)
  {"op":"dial","carrier":..,"from":"96892123456","code":"*141#","timeout":10}
                                                   → {"event":"screen","dialogue":"ooredoo-1","text":..,
                                                      "end":false,"rtt_ms":..} or {"event":"timeout"}
  {"op":"answer","dialogue":"ooredoo-1","text":"1","timeout":10}  → the next screen, as for dial
  {"op":"hangup","dialogue":"ooredoo-1"}           → {"event":"ok","state":"aborted"}
  {"op":"watch","msisdn":"96891234567","carriers":[..],"count":0,"timeout":0}
                                                   → {"event":"watching",..} once listening, then {"event":"mt","carrier":..,"from":..,"to":..,"text":..,
                                                      "parts":n,"at":..} for every SMS any of the carriers
                                                      delivers to that handset as it arrives, until `count`
                                                      messages (0: no limit), `timeout` s (0: none) or the
                                                      client hangs up; then {"event":"done"|"timeout",..}
  {"op":"power","carrier":..,"msisdn":..,"on":false} → {"event":"ok","held":n}  (a handset out of coverage:
                                                      its MTs are kept until it is back or they expire)
  anything malformed                               → {"event":"error","message":..}

Unauthenticated by design: it is a test instrument. Listen on loopback only.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from twisted.internet import defer
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall, IListeningPort, IReactorTCP, IReactorTime
from twisted.internet.protocol import Factory
from twisted.protocols.basic import LineReceiver
from twisted.python.failure import Failure

from carriers.faults import GARBAGE_KINDS
from carriers.fuzz import FuzzRunner
from carriers.load import run_load
from carriers.records import HandsetMessage
from carriers.smsc import Smsc
from carriers.ussd import UssdDialogue, UssdTimeout
from smsgw.log import get_logger, mask_msisdn

log = get_logger("carriers.control")

FINAL_EVENTS = frozenset({"done", "timeout", "error", "status", "load", "ok", "screen", "records", "fuzz"})
MAX_LINE = 1024 * 1024

Emit = Callable[[dict[str, Any]], None]


class ControlError(ValueError):
    """A request the control port cannot carry out; its text goes back as the error message."""


class ControlServer:
    """Carries out control requests against a set of simulators; transport-agnostic `handle`."""

    def __init__(self, smscs: Mapping[str, Smsc], *, wait_clock: IReactorTime | None = None) -> None:
        if wait_clock is None:
            from twisted.internet import reactor

            wait_clock = reactor  # type: ignore[assignment]
        self.smscs = smscs
        self.wait_clock: IReactorTime = wait_clock  # type: ignore[assignment]
        self.port: IListeningPort | None = None
        self._connections: set[_ControlProtocol] = set()

    def listen(self, reactor: IReactorTCP, host: str = "127.0.0.1", port: int = 0) -> Deferred[IListeningPort]:
        from twisted.internet.endpoints import TCP4ServerEndpoint

        factory = Factory.forProtocol(lambda: _ControlProtocol(self))
        factory.noisy = False
        d = TCP4ServerEndpoint(reactor, port, interface=host).listen(factory)

        def listening(listening_port: IListeningPort) -> IListeningPort:
            self.port = listening_port
            log.info("control_listening", host=host, port=listening_port.getHost().port)
            return listening_port

        return d.addCallback(listening)

    def stop(self) -> Deferred[None]:
        waits: list[Deferred[Any]] = []
        if self.port is not None:
            waits.append(defer.maybeDeferred(self.port.stopListening))
            self.port = None
        for connection in list(self._connections):
            connection.transport.loseConnection()
            waits.append(connection.closed)
        return defer.gatherResults(waits, consumeErrors=True).addCallback(lambda _: None)

    async def handle(self, request: Any, emit: Emit, closed: Deferred[None] | None = None) -> None:
        """Carry out one request, answering through `emit`; never raises. `closed` fires when the
        client hangs up (a watch then ends)."""
        request_id = request.get("id") if isinstance(request, dict) else None

        def reply(obj: dict[str, Any]) -> None:
            if request_id is not None:
                obj = {**obj, "id": request_id}
            emit(obj)

        try:
            if not isinstance(request, dict):
                raise ControlError("a request is a JSON object")
            op = request.get("op")
            if op == "watch":
                await self._op_watch(request, reply, closed)
                return
            handler = self._OPS.get(op) if isinstance(op, str) else None
            if handler is None:
                raise ControlError(f"unknown op {op!r}; known: {', '.join(sorted([*self._OPS, 'watch']))}")
            await handler(self, request, reply)
        except (ControlError, ValueError, KeyError, TypeError) as exc:
            reply({"event": "error", "message": str(exc.args[0] if isinstance(exc, KeyError) else exc)})
        except Exception as exc:
            log.exception("control_request_failed")
            reply({"event": "error", "message": f"internal error: {exc.__class__.__name__}"})

    def _smsc(self, request: dict[str, Any]) -> Smsc:
        name = request.get("carrier")
        if name not in self.smscs:
            raise ControlError(f"unknown carrier {name!r}; known: {', '.join(sorted(self.smscs))}")
        return self.smscs[name]

    async def _op_mo(self, request: dict[str, Any], reply: Emit) -> None:
        smsc = self._smsc(request)
        source = _field(request, "from", str)
        dest = _field(request, "to", str)
        text = _field(request, "text", str)
        replies = int(request.get("replies", 1))
        timeout = float(request.get("timeout", 10.0))
        if replies < 0 or timeout <= 0:
            raise ControlError("replies must be >= 0 and timeout > 0")
        received: list[HandsetMessage] = []
        finished: Deferred[str] = Deferred()

        def on_message(message: HandsetMessage) -> None:
            if finished.called:
                return
            received.append(message)
            reply({"event": "mt", "from": message.source, "to": message.msisdn, "text": message.text,
                   "parts": message.parts, "data_coding": message.data_coding})
            if len(received) >= replies:
                finished.callback("done")

        # Listen before injecting, so no reply can slip in between.
        unsubscribe = smsc.subscribe_handset(on_message, source)
        timer: IDelayedCall | None = None
        try:
            mo_id = smsc.inject_mo(
                source, dest, text,
                data_coding=request.get("data_coding"),
                split_order=request.get("split_order"),
                duplicate_parts=bool(request.get("duplicate_parts", False)),
            )
            log.info("control_mo", carrier=smsc.name, mo_id=mo_id, source=mask_msisdn(source), dest=dest)
            reply({"event": "accepted", "mo_id": mo_id})
            if replies == 0:
                finished.callback("done")
            else:
                timer = self.wait_clock.callLater(timeout, lambda: finished.called or finished.callback("timeout"))
            how = await finished
        finally:
            unsubscribe()
            if timer is not None and timer.active():
                timer.cancel()
        reply({"event": how, "received": len(received)})

    async def _op_watch(self, request: dict[str, Any], reply: Emit, closed: Deferred[None] | None) -> None:
        """Every SMS delivered to one handset, on any of the carriers, as it arrives (`smsgw handset`)."""
        msisdn = _field(request, "msisdn", str)
        smscs = self._smscs(request)
        count = int(request.get("count", 0))
        timeout = float(request.get("timeout", 0))
        if count < 0 or timeout < 0:
            raise ControlError("count and timeout must be >= 0 (0: no limit)")
        finished: Deferred[str] = Deferred()
        seen = 0

        def listener(smsc: Smsc) -> Callable[[HandsetMessage], None]:
            def on_message(message: HandsetMessage) -> None:
                nonlocal seen
                if finished.called:
                    return
                seen += 1
                reply({"event": "mt", "carrier": smsc.name, "from": message.source, "to": message.msisdn,
                       "text": message.text, "parts": message.parts, "at": message.received_at})
                if count and seen >= count:
                    finished.callback("done")

            return on_message

        unsubscribes = [smsc.subscribe_handset(listener(smsc), msisdn) for smsc in smscs]
        timer = self.wait_clock.callLater(timeout, lambda: finished.called or finished.callback("timeout")) \
            if timeout else None
        if closed is not None:
            def hung_up(result: Any) -> Any:
                if not finished.called:
                    finished.callback("closed")
                return result

            closed.addBoth(hung_up)
        log.info("control_watch", msisdn=mask_msisdn(msisdn), carriers=[smsc.name for smsc in smscs])
        reply({"event": "watching", "msisdn": msisdn, "carriers": [smsc.name for smsc in smscs]})
        try:
            how = await finished
        finally:
            for unsubscribe in unsubscribes:
                unsubscribe()
            if timer is not None and timer.active():
                timer.cancel()
        reply({"event": how if how != "closed" else "done", "received": seen})

    async def _op_power(self, request: dict[str, Any], reply: Emit) -> None:
        smsc = self._smsc(request)
        msisdn = _field(request, "msisdn", str)
        on = request.get("on")
        if not isinstance(on, bool):
            raise ControlError("on must be true or false")
        if on:
            delivered = smsc.switch_on(msisdn)
            reply({"event": "ok", "on": True, "delivered": delivered})
        else:
            smsc.switch_off(msisdn)
            reply({"event": "ok", "on": False, "held": len(smsc.held_messages(msisdn))})

    async def _op_status(self, request: dict[str, Any], reply: Emit) -> None:
        reply({"event": "status", "carriers": {name: smsc.status() for name, smsc in self.smscs.items()}})

    async def _op_load(self, request: dict[str, Any], reply: Emit) -> None:
        carriers = request.get("carriers")
        if carriers is not None and not (isinstance(carriers, list) and all(isinstance(n, str) for n in carriers)):
            raise ControlError("carriers must be a list of carrier names")
        result = await run_load(
            self.smscs,
            count=int(request.get("count", 100)),
            rate=float(request.get("rate", 0.0)),
            keyword=str(request.get("keyword", "HELP")),
            carriers=carriers,
            msisdn_base=int(request.get("msisdn_base", 96890000000)),
            short_code=str(request.get("to", "90091")),
            timeout=float(request["timeout"]) if "timeout" in request else None,
            idle_timeout=float(request.get("idle_timeout", 15.0)),
            settle_s=float(request.get("settle_s", 0.0)),
            mix=_mix(request.get("mix")),
        )
        reply({"event": "load", **result.as_dict()})

    async def _op_faults(self, request: dict[str, Any], reply: Emit) -> None:
        smsc = self._smsc(request)
        if request.get("reset"):
            smsc.faults.reset()
        changes = request.get("set") or {}
        if not isinstance(changes, dict):
            raise ControlError("set must be an object of fault names to values")
        smsc.faults.update(**changes)
        log.info("control_faults", carrier=smsc.name, faults=smsc.faults.as_dict())
        reply({"event": "ok", "faults": smsc.faults.as_dict()})

    async def _op_restart_counter(self, request: dict[str, Any], reply: Emit) -> None:
        smsc = self._smsc(request)
        smsc.restart_counter()
        reply({"event": "ok"})

    async def _op_garbage(self, request: dict[str, Any], reply: Emit) -> None:
        smsc = self._smsc(request)
        kind = request.get("kind")
        if kind not in GARBAGE_KINDS:
            raise ControlError(f"kind must be one of {', '.join(GARBAGE_KINDS)}")
        reply({"event": "ok", "sessions": smsc.send_garbage_to_esmes(kind)})

    async def _op_reset(self, request: dict[str, Any], reply: Emit) -> None:
        for smsc in self.smscs.values():
            smsc.reset_records()
        reply({"event": "ok"})

    async def _op_inject(self, request: dict[str, Any], reply: Emit) -> None:
        """Many MOs at once, nobody waiting for replies: traffic for chaos and soak runs."""
        mos = request.get("mos")
        if not isinstance(mos, list):
            raise ControlError("mos must be a list of {carrier, from, to, text} objects")
        checked = []
        for mo in mos:  # all checked before any is injected, so a bad batch injects nothing
            if not isinstance(mo, dict):
                raise ControlError("each MO is an object")
            checked.append((self._smsc(mo), _field(mo, "from", str), _field(mo, "to", str), _field(mo, "text", str)))
        reply({"event": "ok", "mo_ids": [smsc.inject_mo(source, dest, text) for smsc, source, dest, text in checked]})

    async def _op_drop(self, request: dict[str, Any], reply: Emit) -> None:
        smsc = self._smsc(request)
        sessions = len(smsc.sessions)
        log.info("control_drop", carrier=smsc.name, sessions=sessions)
        smsc.drop_esmes(abort=bool(request.get("abort", True)))
        reply({"event": "ok", "sessions": sessions})

    def _smscs(self, request: dict[str, Any]) -> list[Smsc]:
        names = request.get("carriers")
        if names is None:
            return list(self.smscs.values())
        if not (isinstance(names, list) and all(isinstance(n, str) for n in names)):
            raise ControlError("carriers must be a list of carrier names")
        return [self._smsc({"carrier": name}) for name in names]

    async def _op_records(self, request: dict[str, Any], reply: Emit) -> None:
        reply({"event": "records", "carriers": {smsc.name: smsc.records() for smsc in self._smscs(request)}})

    async def _op_fuzz(self, request: dict[str, Any], reply: Emit) -> None:
        runner = FuzzRunner(
            self._smscs(request),
            cases=int(request.get("cases", 1000)),
            seed=int(request.get("seed", 0)),
            wellformed_every=int(request.get("wellformed_every", 10)),
            depth=int(request.get("depth", 64)),
            answer_timeout_s=float(request.get("answer_timeout_s", 10.0)),
            settle_timeout_s=float(request.get("settle_timeout_s", 60.0)),
            short_code=str(request.get("to", "90091")),
            cover_all_kinds=bool(request.get("cover_all_kinds", False)),
            clock=self.wait_clock,
        )
        report = await runner.run()
        reply({"event": "fuzz", **report.as_dict()})

    # -- USSD dialogues (carriers/ussd.py): one request per screen, so a person can type between --

    async def _op_dial(self, request: dict[str, Any], reply: Emit) -> None:
        smsc = self._smsc(request)
        dialogue = smsc.dial(_field(request, "from", str), _field(request, "code", str))
        await self._next_screen(dialogue, request, reply)

    async def _op_answer(self, request: dict[str, Any], reply: Emit) -> None:
        dialogue = self._dialogue(request)
        dialogue.answer(str(request.get("text", "")))
        await self._next_screen(dialogue, request, reply)

    async def _op_hangup(self, request: dict[str, Any], reply: Emit) -> None:
        dialogue = self._dialogue(request)
        dialogue.hang_up()
        reply({"event": "ok", "dialogue": dialogue.id, "state": dialogue.state})

    def _dialogue(self, request: dict[str, Any]) -> UssdDialogue:
        wanted = _field(request, "dialogue", str)
        for smsc in self.smscs.values():
            dialogue = smsc.ussd.dialogues.get(wanted)
            if dialogue is not None:
                return dialogue
        raise ControlError(f"no dialogue {wanted!r}; dial first")

    async def _next_screen(self, dialogue: UssdDialogue, request: dict[str, Any], reply: Emit) -> None:
        timeout = float(request.get("timeout", 10.0))
        if timeout <= 0:
            raise ControlError("timeout must be > 0")
        try:
            screen = await dialogue.wait_screen(timeout=timeout)
        except UssdTimeout:
            reply({"event": "timeout", "dialogue": dialogue.id, "state": dialogue.state})
            return
        reply({"event": "screen", "dialogue": dialogue.id, "text": screen.text, "end": screen.end,
               "rtt_ms": None if screen.rtt_s is None else round(screen.rtt_s * 1000, 3),
               "data_coding": screen.data_coding})

    _OPS = {
        "mo": _op_mo,
        "dial": _op_dial,
        "answer": _op_answer,
        "hangup": _op_hangup,
        "power": _op_power,
        "status": _op_status,
        "load": _op_load,
        "faults": _op_faults,
        "restart_counter": _op_restart_counter,
        "garbage": _op_garbage,
        "reset": _op_reset,
        "inject": _op_inject,
        "drop": _op_drop,
        "records": _op_records,
        "fuzz": _op_fuzz,
    }


def _mix(value: Any) -> list[tuple[str, str]] | None:
    """The load op's "mix": a list of [short code, text] pairs."""
    if value is None:
        return None
    if not (isinstance(value, list) and value and all(
            isinstance(pair, list) and len(pair) == 2 and all(isinstance(v, str) and v for v in pair)
            for pair in value)):
        raise ControlError("mix must be a non-empty list of [short code, text] pairs")
    return [(to, text) for to, text in value]


def _field(request: dict[str, Any], key: str, kind: type) -> Any:
    value = request.get(key)
    if not isinstance(value, kind) or (kind is str and not value):
        raise ControlError(f"{key!r} is required and must be a non-empty {kind.__name__}")
    return value


class _ControlProtocol(LineReceiver):
    delimiter = b"\n"
    MAX_LENGTH = MAX_LINE

    def __init__(self, server: ControlServer) -> None:
        self.server = server
        self.closed: Deferred[None] = Deferred()

    def connectionMade(self) -> None:
        self.server._connections.add(self)

    def connectionLost(self, reason: Failure = None) -> None:  # type: ignore[assignment]
        self.server._connections.discard(self)
        self.closed.callback(None)

    def emit(self, obj: dict[str, Any]) -> None:
        if self.transport is not None and not self.closed.called:
            self.transport.write(json.dumps(obj, ensure_ascii=False).encode("utf-8") + b"\n")

    def lineReceived(self, line: bytes) -> None:
        line = line.strip()
        if not line:
            return
        try:
            request = json.loads(line.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            self.emit({"event": "error", "message": f"bad JSON: {exc}"})
            return
        defer.ensureDeferred(self.server.handle(request, self.emit, self.closed))

    def lineLengthExceeded(self, line: bytes) -> None:
        self.emit({"event": "error", "message": f"request longer than {MAX_LINE} bytes"})
        self.transport.loseConnection()


# -- clients ------------------------------------------------------------------------------------


def control_request(
    host: str, port: int, request: dict[str, Any], timeout: float | None = 30.0
) -> Iterator[dict[str, Any]]:
    """Blocking client for CLI tools: send one request, yield each answer line up to the final one.

    `timeout` bounds each wait for a line (socket.timeout is raised past it); give a "mo" request's
    own timeout plus a margin. None waits as long as it takes (a watch).
    """
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(json.dumps(request, ensure_ascii=False).encode("utf-8") + b"\n")
        with sock.makefile("rb") as stream:
            for raw in stream:
                event = json.loads(raw.decode("utf-8"))
                yield event
                if event.get("event") in FINAL_EVENTS:
                    return
    raise ConnectionError("control port closed the connection before the final answer")


class ControlClient(LineReceiver):
    """Twisted client: several requests may run at once on one connection (matched by id)."""

    delimiter = b"\n"
    MAX_LENGTH = MAX_LINE

    def __init__(self) -> None:
        self._next_id = 0
        self._requests: dict[str, tuple[Deferred[list[dict[str, Any]]], list[dict[str, Any]],
                                        Callable[[dict[str, Any]], None] | None]] = {}
        self.closed: Deferred[None] = Deferred()

    @classmethod
    def connect(cls, reactor: IReactorTCP, host: str, port: int) -> Deferred[ControlClient]:
        from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol

        return connectProtocol(TCP4ClientEndpoint(reactor, host, port), cls())

    def request(self, request: dict[str, Any],
                on_event: Callable[[dict[str, Any]], None] | None = None) -> Deferred[list[dict[str, Any]]]:
        """Fires with every answer line (the final one last); `on_event` sees each as it comes."""
        self._next_id += 1
        request_id = f"c{self._next_id}"
        d: Deferred[list[dict[str, Any]]] = Deferred()
        self._requests[request_id] = (d, [], on_event)
        self.sendLine(json.dumps({**request, "id": request_id}, ensure_ascii=False).encode("utf-8"))
        return d

    def lineReceived(self, line: bytes) -> None:
        event = json.loads(line.decode("utf-8"))
        request_id = event.pop("id", None)
        entry = self._requests.get(request_id)
        if entry is None:
            return
        d, events, on_event = entry
        events.append(event)
        if on_event is not None:
            on_event(event)
        if event.get("event") in FINAL_EVENTS:
            del self._requests[request_id]
            d.callback(events)

    def connectionLost(self, reason: Failure = None) -> None:  # type: ignore[assignment]
        requests, self._requests = self._requests, {}
        for d, _, _ in requests.values():
            d.errback(ConnectionError("control connection lost"))
        self.closed.callback(None)

    def close(self) -> Deferred[None]:
        self.transport.loseConnection()
        return self.closed
