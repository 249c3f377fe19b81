"""The simulators' USSD (carriers/ussd.py) over real loopback SMPP, driven by the test ESME (not the
gateway: a bug the two shared would pass unnoticed)."""

from __future__ import annotations

from typing import Any

import pytest
import pytest_twisted
from twisted.internet import defer

from carriers.control import ControlServer
from carriers.smsc import Smsc
from smsgw.smpp import constants as c
from smsgw.smpp.pdu import Pdu
from tests.sim_helpers import Esme, Harness

MSISDN = "96892123456"


@pytest_twisted.async_yield_fixture
async def harness() -> Any:
    h = Harness()
    yield h
    await h.close()


async def dialled(harness: Harness, profile: str, **smsc_kw: Any) -> tuple[Smsc, Esme, Esme, Pdu]:
    """A simulator, its ESME side (sender, receiver; one trx session where the profile allows), and
    the deliver_sm of a fresh dial."""
    smsc = await harness.smsc(profile, **smsc_kw)
    if profile == "ooredoo":
        sender, receiver = await harness.bound(smsc, "tx"), await harness.bound(smsc, "rx")
    else:
        sender = receiver = await harness.bound(smsc, "trx")
    smsc.dial(MSISDN, "*141#")
    return smsc, sender, receiver, await receiver.next_of(c.DELIVER_SM)


def screen_tlvs(deliver: Pdu, op: int, end: bool | None = None) -> dict[int, bytes]:
    """What a correct ESME echoes: the carrier's session marker from the input it answers
    (its_session_info whole, but for the end bit, which is the screen's own)."""
    tlvs = {c.TLV_USSD_SERVICE_OP: bytes([op])}
    if c.TLV_ITS_SESSION_INFO in deliver.tlvs:
        final = op == c.USSD_PSSR_RESPONSE if end is None else end
        number, sequence = deliver.tlvs[c.TLV_ITS_SESSION_INFO]
        tlvs[c.TLV_ITS_SESSION_INFO] = bytes([number, sequence & 0xFE | int(final)])
    if c.TLV_USER_MESSAGE_REFERENCE in deliver.tlvs:
        tlvs[c.TLV_USER_MESSAGE_REFERENCE] = deliver.tlvs[c.TLV_USER_MESSAGE_REFERENCE]
    return tlvs


@pytest.mark.parametrize("profile", ["omantel", "ooredoo", "friendi"])
@pytest_twisted.ensureDeferred
async def test_a_dialogue_over_the_wire(harness: Harness, profile: str) -> None:
    """Dial (PSSR indication), a screen (USSR request), the handset's answer (USSR confirm), the
    final screen (PSSR response): each in the carrier's variant; the handset sees both screens."""
    smsc, sender, receiver, dial = await dialled(harness, profile)
    assert dial.tlvs[c.TLV_USSD_SERVICE_OP] == bytes([c.USSD_PSSR_INDICATION])
    assert dial.get("destination_addr") == "*141#" and dial.get("source_addr") == MSISDN
    [dialogue] = smsc.ussd.open_dialogues()
    resp = await sender.submit(MSISDN, "1 Parking", source="*141#", tlvs=screen_tlvs(dial, c.USSD_USSR_REQUEST),
                               service_type=dial.get("service_type"))
    assert resp.status == c.ESME_ROK and resp.get("message_id")
    await dialogue.wait_screen(0)
    dialogue.answer("1")
    answer = await receiver.next_of(c.DELIVER_SM)
    assert answer.tlvs[c.TLV_USSD_SERVICE_OP] == bytes([c.USSD_USSR_CONFIRM])
    assert answer.get("short_message") == b"1"
    resp = await sender.submit(MSISDN, "Done", source="*141#", tlvs=screen_tlvs(answer, c.USSD_PSSR_RESPONSE),
                               service_type=answer.get("service_type"))
    assert resp.status == c.ESME_ROK
    assert [(s.text, s.end) for s in dialogue.screens] == [("1 Parking", False), ("Done", True)]
    assert dialogue.state == "released" and smsc.ussd.open_dialogues() == []
    assert all(s.rtt_s is not None and s.rtt_s >= 0 for s in dialogue.screens)
    assert smsc.anomalies == [] and smsc.counters["dlrs"] == 0  # screens get no receipts


@pytest_twisted.ensureDeferred
async def test_omantel_finds_a_screens_dialogue_by_the_whole_session_info(harness: Harness) -> None:
    """Omantel's USSD gateway counts the handset's inputs in octet 2 of its_session_info and looks
    a screen's dialogue up by the whole value: a screen with octet 2 zeroed after an answer
    finds none (the bug of an ESME that echoes only the session number)."""
    smsc, sender, receiver, dial = await dialled(harness, "omantel")
    assert dial.tlvs[c.TLV_ITS_SESSION_INFO][1] == 0x00
    [dialogue] = smsc.ussd.open_dialogues()
    assert (await sender.submit(MSISDN, "1 Parking", source="*141#",
                                tlvs=screen_tlvs(dial, c.USSD_USSR_REQUEST))).status == c.ESME_ROK
    await dialogue.wait_screen(0)
    dialogue.answer("1")
    answer = await receiver.next_of(c.DELIVER_SM)
    assert answer.tlvs[c.TLV_ITS_SESSION_INFO][1] == 0x02  # the first answer: sequence 1
    stale = screen_tlvs(dial, c.USSD_USSR_REQUEST)  # octet 2 as at the dial: 0x00
    assert (await sender.submit(MSISDN, "Menu", source="*141#", tlvs=stale)).status == c.ESME_RSUBMITFAIL
    assert "octet 2 0x00, but the dialogue's latest input had 0x02" in smsc.anomalies[-1]
    smsc.anomalies.clear()
    assert (await sender.submit(MSISDN, "Menu", source="*141#",
                                tlvs=screen_tlvs(answer, c.USSD_USSR_REQUEST))).status == c.ESME_ROK
    assert smsc.anomalies == []


@pytest_twisted.ensureDeferred
async def test_ooredoo_routes_screens_by_the_service_type_of_its_indications(harness: Harness) -> None:
    smsc, sender, _, dial = await dialled(harness, "ooredoo")
    assert dial.get("service_type") == "USSD"
    tlvs = screen_tlvs(dial, c.USSD_USSR_REQUEST)
    assert (await sender.submit(MSISDN, "1 Parking", source="*141#", tlvs=tlvs)).status == c.ESME_ROK
    assert smsc.anomalies == ["USSD screen for 9689****456 with service_type '', not the 'USSD' of its dialogue"]


@pytest_twisted.ensureDeferred
async def test_a_screen_for_no_open_dialogue_is_refused(harness: Harness) -> None:
    smsc, sender, _, dial = await dialled(harness, "ooredoo")
    tlvs = screen_tlvs(dial, c.USSD_USSR_REQUEST)
    tlvs[c.TLV_USER_MESSAGE_REFERENCE] = b"\x7f\x7f"
    resp = await sender.submit(MSISDN, "1 Parking", source="*141#", tlvs=tlvs)
    assert resp.status == c.ESME_RSUBMITFAIL
    assert smsc.anomalies and "no dialogue is open" in smsc.anomalies[0]


@pytest.mark.parametrize(
    ("text", "data_coding", "status"),
    [
        ("a" * 182, 0, c.ESME_ROK),
        ("a" * 183, 0, c.ESME_RINVMSGLEN),
        ("م" * 80, 8, c.ESME_ROK),
        ("م" * 81, 8, c.ESME_RINVMSGLEN),
    ],
)
@pytest_twisted.ensureDeferred
async def test_a_screen_is_one_ussd_string(harness: Harness, text: str, data_coding: int, status: int) -> None:
    """182 GSM characters, or 160 octets of UCS2 (80 Arabic letters): no more."""
    _, sender, _, dial = await dialled(harness, "friendi")
    payload = text.encode("utf-16-be") if data_coding == 8 else text.encode("latin-1")
    resp = await sender.submit(MSISDN, payload, source="*141#", data_coding=data_coding,
                               tlvs=screen_tlvs(dial, c.USSD_USSR_REQUEST))
    assert resp.status == status


@pytest_twisted.ensureDeferred
async def test_an_end_bit_that_contradicts_the_operation_is_an_anomaly(harness: Harness) -> None:
    smsc, sender, _, dial = await dialled(harness, "omantel")
    resp = await sender.submit(MSISDN, "Bye", source="*141#", tlvs=screen_tlvs(dial, c.USSD_PSSR_RESPONSE, end=False))
    assert resp.status == c.ESME_RINVOPTPARAMVAL
    assert "end bit disagrees" in smsc.anomalies[0]


@pytest_twisted.ensureDeferred
async def test_ussd_has_its_own_submit_budget(harness: Harness) -> None:
    """An SMS centre throttled to 1 submit a second still takes a burst of screens: the USSD
    gateway is another platform with its own budget."""
    _, sender, _, dial = await dialled(harness, "omantel", tps=1.0)
    assert (await sender.submit(MSISDN, "sms")).status == c.ESME_ROK
    assert (await sender.submit(MSISDN, "sms")).status == c.ESME_RTHROTTLED
    for _ in range(5):
        resp = await sender.submit(MSISDN, "menu", source="*141#", tlvs=screen_tlvs(dial, c.USSD_USSR_REQUEST))
        assert resp.status == c.ESME_ROK


@pytest.mark.parametrize(("profile", "signal"), [
    ("omantel", (c.TLV_ITS_SESSION_INFO, None)),
    ("ooredoo", (c.TLV_USSD_SERVICE_OP, b"\x20")),
    ("friendi", (0x1501, b"\x01")),
])
@pytest_twisted.ensureDeferred
async def test_hang_up_is_signalled_the_carriers_way(harness: Harness, profile: str,
                                                     signal: tuple[int, bytes | None]) -> None:
    """The control port's hangup: the ESME gets the carrier's abort (end bit, vendor op, vendor TLV)."""
    smsc, _, receiver, dial = await dialled(harness, profile)
    [dialogue] = smsc.ussd.open_dialogues()
    events: list[dict[str, Any]] = []
    await defer.ensureDeferred(
        ControlServer({profile: smsc}).handle({"op": "hangup", "dialogue": dialogue.id}, events.append)
    )
    assert events == [{"event": "ok", "dialogue": dialogue.id, "state": "aborted"}]
    abort = await receiver.next_of(c.DELIVER_SM)
    tag, value = signal
    if value is None:
        assert abort.tlvs[tag][1] & 0x01 == 1 and abort.tlvs[tag][0] == dial.tlvs[tag][0]
    else:
        assert abort.tlvs[tag] == value
