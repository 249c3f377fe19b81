"""A minimal ESME for driving the SMSC simulators over real loopback TCP.

Deliberately not the gateway's session: a test ESME that shared the gateway's session code could
not catch a bug the two have in common. It speaks SMPP through the shared codec and framing only,
answers what it is told to, and queues everything the SMSC sends so tests can await it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet import defer, reactor
from twisted.internet.defer import Deferred, DeferredQueue
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.error import ConnectionDone
from twisted.python.failure import Failure

from carriers import alphabet
from carriers.faults import FaultPlan
from carriers.profiles import PROFILES
from carriers.smsc import Smsc
from smsgw.smpp import constants as c
from smsgw.smpp.framing import SmppFraming
from smsgw.smpp.pdu import Pdu, PduError, decode, encode, generic_nack

SYSTEM_ID = "mm_smsgw"
PASSWORD = "secret1"
BIND_COMMAND = {"tx": c.BIND_TRANSMITTER, "rx": c.BIND_RECEIVER, "trx": c.BIND_TRANSCEIVER}
WAIT = 10.0  # generous: these guard against hangs, they do not time behaviour


class Esme(SmppFraming):
    """Test ESME. `deliver_status`: status to answer each deliver_sm with, a function of the PDU
    returning one, or None to leave deliver_sm unanswered (the test answers with `respond`)."""

    def __init__(self, deliver_status: int | Callable[[Pdu], int | None] | None = c.ESME_ROK,
                 answer_enquire_link: bool = True) -> None:
        self.deliver_status = deliver_status
        self.answer_enquire_link = answer_enquire_link
        self.pending: dict[int, Deferred[Pdu]] = {}
        #: Every PDU the SMSC sent that was not a response to us, in order.
        self.inbox: DeferredQueue[Pdu] = DeferredQueue()
        self.delivers: list[Pdu] = []
        #: Every decodable PDU from the SMSC, responses included, in arrival order.
        self.received: list[Pdu] = []
        self.undecodable: list[PduError] = []
        self.on_deliver: Callable[[Esme, Pdu], None] | None = None
        self.closed: Deferred[None] = Deferred()
        self._sequence = 0

    def connectionLost(self, reason: Failure = None) -> None:  # type: ignore[assignment]
        pending, self.pending = self.pending, {}
        for d in pending.values():
            d.errback(reason or Failure(ConnectionDone()))
        self.closed.callback(None)

    def next_sequence(self) -> int:
        self._sequence += 1
        return self._sequence

    def pdu_received(self, raw: bytes) -> None:
        try:
            pdu = decode(raw)
        except PduError as exc:
            self.undecodable.append(exc)
            if exc.status == c.ESME_RINVCMDID:
                self.send_raw(generic_nack(exc.sequence, exc.status))
            else:
                self.send_raw(encode(Pdu(exc.command_id | c.RESPONSE_BIT, exc.sequence, exc.status)))
            return
        self.received.append(pdu)
        if pdu.command_id & c.RESPONSE_BIT:
            d = self.pending.pop(pdu.sequence, None)
            if d is not None:
                d.callback(pdu)
                return
            self.inbox.put(pdu)  # e.g. a generic_nack with sequence 0
            return
        if pdu.command_id == c.ENQUIRE_LINK and self.answer_enquire_link:
            self.respond(pdu)
        elif pdu.command_id == c.UNBIND:
            self.respond(pdu)
        elif pdu.command_id == c.DELIVER_SM:
            self.delivers.append(pdu)
            status = self.deliver_status(pdu) if callable(self.deliver_status) else self.deliver_status
            if status is not None:
                self.respond(pdu, status)
            if self.on_deliver is not None:
                self.on_deliver(self, pdu)
        self.inbox.put(pdu)

    def respond(self, pdu: Pdu, status: int = c.ESME_ROK, **params: Any) -> None:
        if pdu.command_id == c.DELIVER_SM and status == c.ESME_ROK:
            params.setdefault("message_id", "")
        self.send_raw(encode(Pdu(pdu.command_id | c.RESPONSE_BIT, pdu.sequence, status, params)))

    def request(self, command_id: int, params: dict[str, Any] | None = None,
                tlvs: dict[int, bytes] | None = None) -> Deferred[Pdu]:
        sequence = self.next_sequence()
        d: Deferred[Pdu] = Deferred()
        self.pending[sequence] = d
        self.send_raw(encode(Pdu(command_id, sequence, c.ESME_ROK, params or {}, tlvs or {})))
        return d

    def bind(self, mode: str = "trx", system_id: str = SYSTEM_ID, password: str = PASSWORD) -> Deferred[Pdu]:
        return self.request(BIND_COMMAND[mode], {"system_id": system_id, "password": password,
                                                 "interface_version": 0x34})

    def submit(self, dest: str, short_message: bytes | str = b"hello", *, source: str = "90091",
               data_coding: int = 0, esm_class: int = 0, registered_delivery: int = 0,
               tlvs: dict[int, bytes] | None = None, service_type: str = "") -> Deferred[Pdu]:
        if isinstance(short_message, str):
            short_message = alphabet.encode_gsm7(short_message)
        params = submit_params(dest, short_message, source=source, data_coding=data_coding, esm_class=esm_class,
                               registered_delivery=registered_delivery)
        params["service_type"] = service_type
        return self.request(c.SUBMIT_SM, params, tlvs)

    def sync(self) -> Deferred[Pdu]:
        """An enquire_link round trip: TCP keeps order, so once it is answered the SMSC has
        processed everything this ESME wrote before it."""
        return self.request(c.ENQUIRE_LINK)

    def next_pdu(self, timeout: float = WAIT) -> Deferred[Pdu]:
        return self.inbox.get().addTimeout(timeout, reactor)

    async def next_of(self, command_id: int, timeout: float = WAIT) -> Pdu:
        """Skip other unsolicited PDUs (enquire_link...) until one of `command_id`."""
        while True:
            pdu = await self.next_pdu(timeout)
            if pdu.command_id == command_id:
                return pdu


def submit_params(dest: str, short_message: bytes, *, source: str = "90091", data_coding: int = 0,
                  esm_class: int = 0, registered_delivery: int = 0) -> dict[str, Any]:
    return {
        "service_type": "",
        "source_addr_ton": 3,
        "source_addr_npi": 0,
        "source_addr": source,
        "dest_addr_ton": 1,
        "dest_addr_npi": 1,
        "destination_addr": dest,
        "esm_class": esm_class,
        "registered_delivery": registered_delivery,
        "data_coding": data_coding,
        "short_message": short_message,
    }


def mo_text(pdu: Pdu, default_alphabet: str) -> str:
    data = pdu.get("short_message", b"")
    if pdu.get("esm_class", 0) & c.ESM_CLASS_UDHI:
        data = data[data[0] + 1 :]
    text, _ = alphabet.decode(data, pdu.get("data_coding", 0), default_alphabet)
    return text


class Harness:
    """Starts simulators and ESMEs for one test and takes them all down afterwards."""

    def __init__(self) -> None:
        self.esmes: list[Esme] = []
        self.cleanups: list[Callable[[], Deferred[Any]]] = []

    async def smsc(self, profile: str, *, clock: Any = None, tps: float | None = None,
                   faults: FaultPlan | None = None, record_pdus: bool = False, name: str | None = None,
                   wait_clock: Any = None) -> Smsc:
        smsc = Smsc(PROFILES[profile], system_id=SYSTEM_ID, password=PASSWORD, tps=tps, clock=clock or reactor,
                    faults=faults, record_pdus=record_pdus, name=name, wait_clock=wait_clock or reactor)
        await smsc.listen(reactor, "127.0.0.1", 0)
        self.cleanups.append(smsc.stop)
        return smsc

    @staticmethod
    def port_of(smsc: Smsc) -> int:
        assert smsc.port is not None
        return smsc.port.getHost().port

    async def connect(self, target: Smsc | int, **kwargs: Any) -> Esme:
        port = target if isinstance(target, int) else self.port_of(target)
        esme = Esme(**kwargs)
        await connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", port), esme)
        self.esmes.append(esme)
        return esme

    async def bound(self, target: Smsc | int, mode: str = "trx", **kwargs: Any) -> Esme:
        esme = await self.connect(target, **kwargs)
        resp = await esme.bind(mode)
        assert resp.status == c.ESME_ROK, c.status_name(resp.status)
        return esme

    async def close(self) -> None:
        for esme in self.esmes:
            # Requests a test left unanswered on purpose fail with the connection; that is expected.
            for d in esme.pending.values():
                d.addErrback(lambda _: None)
        for cleanup in reversed(self.cleanups):
            await cleanup()
        for esme in self.esmes:
            if esme.transport is not None and not esme.closed.called:
                esme.transport.loseConnection()
            await esme.closed.addTimeout(WAIT, reactor)


def auto_replier(smsc_profile: str, reply: Callable[[str], str], submitter: Callable[[], Esme | None]
                 ) -> Callable[[Esme, Pdu], None]:
    """An `on_deliver` hook that answers each MO with one MT from the MO's destination.

    `submitter` gives the connection to submit on (the same transceiver, or the tx of a tx/rx pair).
    """
    default_alphabet = PROFILES[smsc_profile].default_alphabet

    def on_deliver(esme: Esme, pdu: Pdu) -> None:
        if pdu.get("esm_class", 0) & c.ESM_CLASS_DELIVERY_RECEIPT:
            return
        text = reply(mo_text(pdu, default_alphabet))
        target = submitter() or esme
        target.submit(pdu.get("source_addr"), alphabet.encode_gsm7(text), source=pdu.get("destination_addr"),
                      registered_delivery=1)

    return on_deliver


async def bind_replier(harness: Harness, smsc: Smsc, reply: Callable[[str], str]) -> list[Esme]:
    """Bind the way the carrier allows (transceiver, or tx + rx) and auto-reply to every MO."""
    if "transceiver" in smsc.profile.bind_modes:
        esme = await harness.bound(smsc, "trx")
        esme.on_deliver = auto_replier(smsc.profile.name, reply, lambda: esme)
        return [esme]
    tx = await harness.bound(smsc, "tx")
    rx = await harness.bound(smsc, "rx")
    rx.on_deliver = auto_replier(smsc.profile.name, reply, lambda: tx)
    return [tx, rx]


async def gather(*ds: Deferred[Any]) -> list[Any]:
    return await defer.gatherResults(list(ds), consumeErrors=True)
