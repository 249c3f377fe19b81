"""The carrier SMSC simulators, driven over real loopback TCP by a minimal test ESME.

Simulated time (receipt delays, redelivery, the throttle bucket, enquire_link) runs on a
`task.Clock` the test advances; the network is real, and waits on it are bounded by generous
timeouts rather than sleeps. "Sync" below is an enquire_link round trip: TCP keeps order, so once
it is answered the SMSC has processed everything the ESME sent before it.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import defer, reactor, task, threads
from twisted.internet.defer import Deferred
from twisted.internet.task import deferLater

from carriers import alphabet
from carriers.control import ControlClient, ControlServer, control_request
from carriers.faults import DLR_STATES, FaultPlan, garbage_pdu
from carriers.handset import Handset
from carriers.load import percentile
from carriers.main import SimulatorSpec, start_simulators
from carriers.profiles import FRIENDI, OMANTEL, OOREDOO, PROFILES, CarrierProfile, format_id
from carriers.smsc import HandsetTimeout, Smsc
from smsgw.smpp import constants as c
from smsgw.smpp.pdu import Pdu
from tests.sim_helpers import PASSWORD, SYSTEM_ID, Esme, Harness, bind_replier, gather, mo_text

RECEIPT_RE = re.compile(
    r"id:(?P<id>\S+) sub:(?P<sub>\d{3}) dlvrd:(?P<dlvrd>\d{3}) submit date:(?P<submit>\d{10}) "
    r"done date:(?P<done>\d{10}) stat:(?P<stat>[A-Z]{7}) err:(?P<err>\d{3}) text:(?P<text>.*)"
)
ID_RE = {"omantel": r"[1-9a-f][0-9a-f]*", "ooredoo": r"[1-9][0-9]*", "friendi": r"[0-9A-F]{10}"}
MSISDN = "96891234567"


@pytest_twisted.async_yield_fixture
async def harness() -> Any:
    h = Harness()
    yield h
    await h.close()


def ways_to_bind(profile: CarrierProfile) -> list[str]:
    modes = []
    if "transceiver" in profile.bind_modes:
        modes.append("trx")
    if "tx_rx" in profile.bind_modes:
        modes += ["tx", "rx"]
    return modes


ACCEPTED_BINDS = [(p.name, m) for p in PROFILES.values() for m in ways_to_bind(p)]
REFUSED_BINDS = [(p.name, m) for p in PROFILES.values() for m in ("trx", "tx", "rx") if m not in ways_to_bind(p)]


async def receiving_and_sending(harness: Harness, smsc: Smsc, **kwargs: Any) -> tuple[Esme, Esme]:
    """(receiver, transmitter) bound the way the profile allows; the same ESME for a transceiver."""
    if "transceiver" in smsc.profile.bind_modes:
        esme = await harness.bound(smsc, "trx", **kwargs)
        return esme, esme
    rx = await harness.bound(smsc, "rx", **kwargs)
    tx = await harness.bound(smsc, "tx")
    return rx, tx


def udh_of(pdu: Pdu) -> bytes:
    data = pdu.get("short_message")
    return data[: data[0] + 1]


# -- profiles -------------------------------------------------------------------------------------


def test_profiles_really_differ() -> None:
    """The three profiles disagree on everything the gateway has to configure per carrier."""
    assert OMANTEL.format_message_id(0x2F4A0001) == "2f4a0001"
    assert OMANTEL.format_receipt_id(0x2F4A0001) == str(0x2F4A0001)
    assert OOREDOO.format_message_id(480000001) == OOREDOO.format_receipt_id(480000001) == "480000001"
    assert FRIENDI.format_message_id(0xA10001) == FRIENDI.format_receipt_id(0xA10001) == "0000A10001"
    assert OOREDOO.bind_modes == {"tx_rx"} and FRIENDI.bind_modes == {"transceiver"}
    assert {p.default_alphabet for p in PROFILES.values()} == {"gsm7", "latin1"}
    assert {p.mo_long_method for p in PROFILES.values()} == {"udh", "sar"}
    assert (OMANTEL.tps_limit, OOREDOO.tps_limit, FRIENDI.tps_limit) == (200, 150, 50)
    assert (OMANTEL.window, OOREDOO.window, FRIENDI.window) == (10, 20, 5)
    assert (OMANTEL.mo_id_tlv, OOREDOO.mo_id_tlv, FRIENDI.mo_id_tlv) == (0x1400, 0x1401, 0x1400)
    with pytest.raises(ValueError):
        format_id(1, "octal")


def test_fault_plan_validates_and_updates_all_or_nothing() -> None:
    """A bad fault value is refused and leaves the plan as it was."""
    plan = FaultPlan()
    plan.update(error_every_nth_submit=[3, 0x14], throttle_storm=True)
    assert plan.error_every_nth_submit == (3, 0x14) and plan.throttle_storm
    with pytest.raises(ValueError):
        plan.update(throttle_storm=False, dlr_state="LOST")
    assert plan.throttle_storm and plan.dlr_state == "DELIVRD"
    with pytest.raises(ValueError):
        plan.update(no_such_fault=True)
    plan.reset()
    assert plan == FaultPlan()


def test_network_encoding_follows_the_profile_alphabet() -> None:
    """7-bit text is cut at 153 septets without splitting an escape; Arabic goes UCS2 at 67."""
    text = "a" * 152 + "€" + "b" * 10
    encoded = alphabet.encode_for_network(text, "gsm7")
    assert encoded.data_coding == 0 and encoded.texts == ("a" * 152, "€" + "b" * 10)
    arabic = alphabet.encode_for_network("م" * 71, "gsm7")
    assert arabic.data_coding == 8 and [len(t) for t in arabic.texts] == [67, 4]
    latin = alphabet.encode_for_network("Café", "latin1")
    assert latin.parts == (b"Caf\xe9",) and latin.data_coding == 0
    assert alphabet.encode_for_network("Café", "gsm7").parts == (b"Caf\x05",)
    assert alphabet.encode_for_network("Δ", "latin1").data_coding == 8  # Latin-1 has no Delta


def test_handset_keeps_incomplete_messages_apart() -> None:
    """Parts wait per (sender, reference, total); a duplicate part is noticed, not doubled."""
    from carriers.records import Concat, MtRecord

    def part(ref: int, seq: int, data: bytes) -> MtRecord:
        return MtRecord("omantel", seq, str(seq), seq, "90091", MSISDN, (3, 0, 1, 1), 0, 0x40, 0, b"", {}, 0.0,
                        data, Concat("udh8", ref, 2, seq), "DELIVRD")

    handset = Handset("gsm7")
    assert handset.receive(part(7, 2, b"lo"))[0] is None
    message, anomalies = handset.receive(part(7, 2, b"lo"))
    assert message is None and anomalies
    assert handset.incomplete() == [(MSISDN, "udh8", 7, 2, [2])]
    message, _ = handset.receive(part(7, 1, b"hel"))
    assert message is not None and message.text == "hello" and message.parts == 2


def test_percentile_is_nearest_rank() -> None:
    """Load latencies use the nearest-rank percentile: always one of the measured values."""
    assert percentile([], 50) is None
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.0
    assert percentile(list(map(float, range(1, 101))), 99) == 99.0


# -- binds ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("profile", "mode"), ACCEPTED_BINDS)
@pytest_twisted.ensureDeferred
async def test_bind_accepted(harness: Harness, profile: str, mode: str) -> None:
    """A bind the profile offers, with the right credentials, is answered ESME_ROK with the SMSC's id."""
    smsc = await harness.smsc(profile)
    esme = await harness.connect(smsc)
    resp = await esme.bind(mode)
    assert resp.status == c.ESME_ROK
    assert resp.get("system_id") == PROFILES[profile].smsc_system_id
    assert resp.tlvs[c.TLV_SC_INTERFACE_VERSION] == b"\x34"
    assert [s.mode for s in smsc.bound_sessions()] == [mode]


@pytest.mark.parametrize(("profile", "mode"), REFUSED_BINDS)
@pytest_twisted.ensureDeferred
async def test_bind_type_the_carrier_lacks_is_refused(harness: Harness, profile: str, mode: str) -> None:
    """Ooredoo has no bind_transceiver, Friendi only that: ESME_RINVCMDID, then the SMSC hangs up."""
    smsc = await harness.smsc(profile)
    esme = await harness.connect(smsc)
    resp = await esme.bind(mode)
    assert resp.status == c.ESME_RINVCMDID
    assert resp.status not in c.FATAL_BIND_STATUSES
    await esme.closed
    assert smsc.bound_sessions() == []


@pytest.mark.parametrize("profile", sorted(PROFILES))
@pytest.mark.parametrize(
    ("system_id", "password", "status"),
    [(SYSTEM_ID, "wrong", c.ESME_RINVPASWD), ("someone", PASSWORD, c.ESME_RINVSYSID)],
)
@pytest_twisted.ensureDeferred
async def test_bind_bad_credentials(harness: Harness, profile: str, system_id: str, password: str,
                                    status: int) -> None:
    """A wrong system_id gets ESME_RINVSYSID, a wrong password ESME_RINVPASWD, on every carrier."""
    smsc = await harness.smsc(profile)
    esme = await harness.connect(smsc)
    resp = await esme.bind(ways_to_bind(PROFILES[profile])[0], system_id, password)
    assert resp.status == status
    await esme.closed


@pytest_twisted.ensureDeferred
async def test_second_bind_on_one_connection_is_refused(harness: Harness) -> None:
    """Binding twice on one connection gets ESME_RALYBND and leaves the first bind in place."""
    smsc = await harness.smsc("omantel")
    esme = await harness.bound(smsc, "trx")
    assert (await esme.bind("tx")).status == c.ESME_RALYBND
    assert [s.mode for s in smsc.bound_sessions()] == ["trx"]


@pytest_twisted.ensureDeferred
async def test_requests_before_bind_get_invalid_bind_status(harness: Harness) -> None:
    """submit_sm and unbind before a bind are answered ESME_RINVBNDSTS; enquire_link is answered."""
    smsc = await harness.smsc("omantel")
    esme = await harness.connect(smsc)
    submit, unbind, enquire = await gather(esme.submit(MSISDN), esme.request(c.UNBIND), esme.sync())
    assert (submit.command_id, submit.status) == (c.SUBMIT_SM_RESP, c.ESME_RINVBNDSTS)
    assert (unbind.command_id, unbind.status) == (c.UNBIND_RESP, c.ESME_RINVBNDSTS)
    assert enquire.status == c.ESME_ROK
    assert smsc.mts == []


@pytest_twisted.ensureDeferred
async def test_receiver_cannot_submit(harness: Harness) -> None:
    """A receiver bind may not submit_sm: ESME_RINVBNDSTS."""
    smsc = await harness.smsc("ooredoo")
    rx = await harness.bound(smsc, "rx")
    assert (await rx.submit(MSISDN)).status == c.ESME_RINVBNDSTS


@pytest_twisted.ensureDeferred
async def test_unknown_command_gets_generic_nack(harness: Harness) -> None:
    """A command the SMSC does not offer gets generic_nack ESME_RINVCMDID and the session goes on."""
    smsc = await harness.smsc("omantel")
    esme = await harness.bound(smsc)
    esme.send_raw(garbage_pdu("unknown_command", 77))
    nack = await esme.next_of(c.GENERIC_NACK)
    assert (nack.sequence, nack.status) == (77, c.ESME_RINVCMDID)
    assert (await esme.sync()).status == c.ESME_ROK


@pytest_twisted.ensureDeferred
async def test_unbind_is_answered_and_the_link_closed(harness: Harness) -> None:
    """unbind gets unbind_resp ESME_ROK, then the SMSC closes the connection."""
    smsc = await harness.smsc("friendi")
    esme = await harness.bound(smsc)
    resp = await esme.request(c.UNBIND)
    assert (resp.command_id, resp.status) == (c.UNBIND_RESP, c.ESME_ROK)
    await esme.closed
    assert smsc.sessions == []


# -- submit_sm and receipts -------------------------------------------------------------------------


@pytest.mark.parametrize("profile", sorted(PROFILES))
@pytest_twisted.ensureDeferred
async def test_submit_id_and_receipt_formats(harness: Harness, profile: str) -> None:
    """Each carrier writes the submit_sm_resp id and the receipt id its own way, for the same message."""
    clock = task.Clock()
    smsc = await harness.smsc(profile, clock=clock)
    rx, tx = await receiving_and_sending(harness, smsc)
    resp = await tx.submit(MSISDN, "Your parking ends at 10:30", registered_delivery=1,
                           tlvs={c.TLV_USER_MESSAGE_REFERENCE: b"\x00\x2a"})
    assert resp.status == c.ESME_ROK
    message_id = resp.get("message_id")
    assert re.fullmatch(ID_RE[profile], message_id), message_id
    assert smsc.mts[0].message_id == message_id

    clock.advance(smsc.profile.dlr_delay_s)
    receipt = await rx.next_of(c.DELIVER_SM)
    assert receipt.get("esm_class") == c.ESM_CLASS_DELIVERY_RECEIPT
    assert (receipt.get("source_addr"), receipt.get("destination_addr")) == (MSISDN, "90091")
    fields = RECEIPT_RE.fullmatch(receipt.get("short_message").decode("ascii"))
    assert fields is not None, receipt.get("short_message")
    assert (fields["stat"], fields["err"], fields["dlvrd"], fields["text"]) == ("DELIVRD", "000", "001",
                                                                               "Your parking ends at")
    receipt_id = fields["id"]
    if profile == "omantel":
        assert receipt_id == str(int(message_id, 16)) and receipt_id != message_id
    else:
        assert receipt_id == message_id
    if smsc.profile.receipt_style == "tlv_and_text":
        assert receipt.tlv_cstr(c.TLV_RECEIPTED_MESSAGE_ID) == receipt_id
        assert receipt.tlv_int(c.TLV_MESSAGE_STATE) == DLR_STATES["DELIVRD"]
    else:
        assert c.TLV_RECEIPTED_MESSAGE_ID not in receipt.tlvs and c.TLV_MESSAGE_STATE not in receipt.tlvs
    assert receipt.tlvs[c.TLV_USER_MESSAGE_REFERENCE] == b"\x00\x2a"
    await rx.sync()
    assert smsc.dlrs[0].acked and smsc.counters["dlrs_acked"] == 1


@pytest_twisted.ensureDeferred
async def test_receipt_per_part_of_a_long_mt(harness: Harness) -> None:
    """A two-part MT asking for receipts gets one receipt per part, each with its part's id."""
    clock = task.Clock()
    smsc = await harness.smsc("omantel", clock=clock)
    esme = await harness.bound(smsc)
    texts = alphabet.split_units("x" * 200, "gsm7")
    resps = await gather(*(
        esme.submit(MSISDN, bytes((5, 0, 3, 9, 2, n)) + alphabet.encode_gsm7(t), esm_class=0x40,
                    registered_delivery=1)
        for n, t in enumerate(texts, start=1)
    ))
    clock.advance(smsc.profile.dlr_delay_s)
    receipts = [await esme.next_of(c.DELIVER_SM), await esme.next_of(c.DELIVER_SM)]
    ids = {r.tlv_cstr(c.TLV_RECEIPTED_MESSAGE_ID) for r in receipts}
    assert ids == {str(int(r.get("message_id"), 16)) for r in resps}


@pytest_twisted.ensureDeferred
async def test_failed_delivery_state_from_the_fault_plan(harness: Harness) -> None:
    """With dlr_state UNDELIV the receipt says so (text and TLV) and the handset gets nothing."""
    clock = task.Clock()
    smsc = await harness.smsc("friendi", clock=clock, faults=FaultPlan(dlr_state="UNDELIV"))
    esme = await harness.bound(smsc)
    assert (await esme.submit(MSISDN, b"hello", registered_delivery=1)).status == c.ESME_ROK
    clock.advance(smsc.profile.dlr_delay_s)
    receipt = await esme.next_of(c.DELIVER_SM)
    fields = RECEIPT_RE.fullmatch(receipt.get("short_message").decode("ascii"))
    assert fields is not None and (fields["stat"], fields["dlvrd"]) == ("UNDELIV", "000")
    assert receipt.tlv_int(c.TLV_MESSAGE_STATE) == DLR_STATES["UNDELIV"]
    assert smsc.handset_messages == []


@pytest.mark.parametrize("dest", ["12345", "+96891234567", "9689123456x", "", "1" * 16])
@pytest_twisted.ensureDeferred
async def test_invalid_destination_is_refused(harness: Harness, dest: str) -> None:
    """A destination that is not 8 to 15 digits gets ESME_RINVDSTADR and is not recorded."""
    smsc = await harness.smsc("omantel")
    esme = await harness.bound(smsc)
    assert (await esme.submit(dest)).status == c.ESME_RINVDSTADR
    assert smsc.mts == []


@pytest_twisted.ensureDeferred
async def test_short_message_over_the_profile_limit_is_refused(harness: Harness) -> None:
    """Ooredoo takes at most 160 octets of short_message: longer gets ESME_RINVMSGLEN."""
    smsc = await harness.smsc("ooredoo")
    esme = await harness.bound(smsc, "tx")
    assert (await esme.submit(MSISDN, b"a" * 161)).status == c.ESME_RINVMSGLEN
    assert (await esme.submit(MSISDN, b"a" * 160)).status == c.ESME_ROK


@pytest_twisted.ensureDeferred
async def test_query_sm_reports_the_state(harness: Harness) -> None:
    """query_sm by the resp id answers ENROUTE before the receipt, DELIVERED after it."""
    clock = task.Clock()
    smsc = await harness.smsc("omantel", clock=clock)
    esme = await harness.bound(smsc)
    message_id = (await esme.submit(MSISDN, registered_delivery=1)).get("message_id")
    query = {"message_id": message_id, "source_addr": "90091"}
    assert (await esme.request(c.QUERY_SM, query)).get("message_state") == DLR_STATES["ENROUTE"]
    clock.advance(smsc.profile.dlr_delay_s)
    await esme.next_of(c.DELIVER_SM)
    assert (await esme.request(c.QUERY_SM, query)).get("message_state") == DLR_STATES["DELIVRD"]
    assert (await esme.request(c.QUERY_SM, {"message_id": "zz"})).status != c.ESME_ROK


# -- throttling -----------------------------------------------------------------------------------


@pytest.mark.parametrize("profile", sorted(PROFILES))
@pytest_twisted.ensureDeferred
async def test_throttled_above_the_profile_tps(harness: Harness, profile: str) -> None:
    """Within one (simulated) second, submits beyond the carrier's TPS get ESME_RTHROTTLED."""
    clock = task.Clock()
    smsc = await harness.smsc(profile, clock=clock)
    _, tps_esme = await receiving_and_sending(harness, smsc)
    limit = int(smsc.profile.tps_limit)
    resps = await gather(*(tps_esme.submit(MSISDN) for _ in range(limit + 3)))
    statuses = [r.status for r in resps]
    assert statuses == [c.ESME_ROK] * limit + [c.ESME_RTHROTTLED] * 3
    assert smsc.counters["throttled"] == 3


@pytest_twisted.ensureDeferred
async def test_throttle_bucket_refills_with_time(harness: Harness) -> None:
    """A tps override replaces the profile's; after half a second half the tokens are back."""
    clock = task.Clock()
    smsc = await harness.smsc("omantel", clock=clock, tps=4)
    esme = await harness.bound(smsc)
    first = await gather(*(esme.submit(MSISDN) for _ in range(5)))
    assert [r.status for r in first] == [0, 0, 0, 0, c.ESME_RTHROTTLED]
    clock.advance(0.5)
    second = await gather(*(esme.submit(MSISDN) for _ in range(3)))
    assert [r.status for r in second] == [0, 0, c.ESME_RTHROTTLED]


# -- MO delivery ----------------------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_long_mo_by_udh_in_reverse_order(harness: Harness) -> None:
    """Omantel cuts a long MO into UDH parts (8-bit ref) of 153 septets, here delivered last part first."""
    smsc = await harness.smsc("omantel")
    esme = await harness.bound(smsc)
    text = "PARK 1234AB 30 " * 25  # 375 GSM characters: three parts
    mo_id = smsc.inject_mo(MSISDN, "90091", text, split_order="reverse")
    parts = [await esme.next_of(c.DELIVER_SM) for _ in range(3)]
    udhs = [udh_of(p) for p in parts]
    assert all(p.get("esm_class") == c.ESM_CLASS_UDHI and p.get("data_coding") == 0 for p in parts)
    assert [u[:3] for u in udhs] == [b"\x05\x00\x03"] * 3
    assert len({u[3] for u in udhs}) == 1
    assert [(u[4], u[5]) for u in udhs] == [(3, 3), (3, 2), (3, 1)]
    assert [p.tlv_cstr(0x1400) for p in parts] == [f"{mo_id}-3", f"{mo_id}-2", f"{mo_id}-1"]
    assert "".join(mo_text(p, "gsm7") for p in reversed(parts)) == text
    await esme.sync()
    record = smsc.mo(mo_id)
    assert record.acked and record.parts == 3 and record.attempts == 3


@pytest_twisted.ensureDeferred
async def test_long_mo_by_sar_in_ucs2(harness: Harness) -> None:
    """Ooredoo sends a long Arabic MO as UCS2 parts of 67 characters with SAR TLVs and its 0x1401 id."""
    smsc = await harness.smsc("ooredoo")
    rx = await harness.bound(smsc, "rx")
    text = "موقف ١٢٣٤ أب ٣٠ دقيقة " * 7  # 154 characters
    mo_id = smsc.inject_mo(MSISDN, "90091", text, split_order="reverse")
    parts = [await rx.next_of(c.DELIVER_SM) for _ in range(3)]
    assert all(p.get("esm_class") == 0 and p.get("data_coding") == 8 for p in parts)
    refs = {p.tlv_int(c.TLV_SAR_MSG_REF_NUM) for p in parts}
    assert len(refs) == 1 and len(parts[0].tlvs[c.TLV_SAR_MSG_REF_NUM]) == 2
    assert [p.tlv_int(c.TLV_SAR_TOTAL_SEGMENTS) for p in parts] == [3, 3, 3]
    assert [p.tlv_int(c.TLV_SAR_SEGMENT_SEQNUM) for p in parts] == [3, 2, 1]
    assert [p.tlv_cstr(0x1401) for p in parts] == [f"{mo_id}-3", f"{mo_id}-2", f"{mo_id}-1"]
    assert [len(p.get("short_message")) for p in reversed(parts)] == [134, 134, 40]
    assert "".join(mo_text(p, "gsm7") for p in reversed(parts)) == text


@pytest_twisted.ensureDeferred
async def test_single_mo_in_latin1_on_friendi(harness: Harness) -> None:
    """Friendi writes 7-bit text as Latin-1 under data_coding 0; a one-part MO's TLV id is the mo id."""
    smsc = await harness.smsc("friendi")
    esme = await harness.bound(smsc)
    mo_id = smsc.inject_mo(MSISDN, "90091", "Café 1234AB")
    pdu = await esme.next_of(c.DELIVER_SM)
    assert (pdu.get("data_coding"), pdu.get("short_message")) == (0, b"Caf\xe9 1234AB")
    assert pdu.tlv_cstr(0x1400) == mo_id and re.fullmatch(ID_RE["friendi"], mo_id)
    assert (pdu.get("source_addr"), pdu.get("destination_addr")) == (MSISDN, "90091")


@pytest_twisted.ensureDeferred
async def test_mo_is_redelivered_with_the_same_id_after_an_error(harness: Harness) -> None:
    """An MO answered 0x64 is delivered again after redeliver_delay_s, same mo id, and then acked."""
    clock = task.Clock()
    smsc = await harness.smsc("omantel", clock=clock)
    answers = iter([c.ESME_RX_T_APPN, c.ESME_ROK])
    esme = await harness.bound(smsc, deliver_status=lambda pdu: next(answers))
    mo_id = smsc.inject_mo(MSISDN, "90091", "HELP")
    first = await esme.next_of(c.DELIVER_SM)
    await esme.sync()
    record = smsc.mo(mo_id)
    assert not record.acked and record.statuses == [c.ESME_RX_T_APPN]
    clock.advance(smsc.profile.redeliver_delay_s - 0.1)
    await esme.sync()
    assert len(esme.delivers) == 1
    clock.advance(0.2)
    second = await esme.next_of(c.DELIVER_SM)
    assert first.tlv_cstr(0x1400) == second.tlv_cstr(0x1400) == mo_id
    assert second.get("short_message") == first.get("short_message")
    await esme.sync()
    assert record.acked and record.attempts == 2 and record.statuses == [c.ESME_RX_T_APPN, c.ESME_ROK]


@pytest_twisted.ensureDeferred
async def test_mo_is_redelivered_after_the_link_drops_before_the_resp(harness: Harness) -> None:
    """An MO written to an ESME that vanishes before answering goes to the next ESME, same id."""
    clock = task.Clock()
    smsc = await harness.smsc("friendi", clock=clock)
    first = await harness.bound(smsc, deliver_status=None)
    mo_id = smsc.inject_mo(MSISDN, "90091", "PARK 1234AB 30")
    await first.next_of(c.DELIVER_SM)
    server_side = smsc.sessions[0]
    first.transport.loseConnection()
    await server_side.closed
    second = await harness.bound(smsc)
    assert second.delivers == []
    clock.advance(smsc.profile.redeliver_delay_s)
    pdu = await second.next_of(c.DELIVER_SM)
    assert pdu.tlv_cstr(0x1400) == mo_id
    await second.sync()
    assert smsc.mo(mo_id).statuses == [None, c.ESME_ROK] and smsc.mo(mo_id).acked


@pytest_twisted.ensureDeferred
async def test_mo_without_resp_in_time_is_redelivered(harness: Harness) -> None:
    """A deliver_sm never answered counts as failed after deliver_resp_timeout_s and is sent again."""
    clock = task.Clock()
    smsc = await harness.smsc("omantel", clock=clock)
    esme = await harness.bound(smsc, deliver_status=None)
    mo_id = smsc.inject_mo(MSISDN, "90091", "HELP")
    await esme.next_of(c.DELIVER_SM)
    clock.advance(smsc.profile.deliver_resp_timeout_s)
    clock.advance(smsc.profile.redeliver_delay_s)
    again = await esme.next_of(c.DELIVER_SM)
    assert again.tlv_cstr(0x1400) == mo_id and smsc.mo(mo_id).statuses == [None]


@pytest_twisted.ensureDeferred
async def test_deliveries_respect_the_window(harness: Harness) -> None:
    """Friendi keeps at most 5 deliver_sm unanswered per session; the rest wait and follow acks."""
    smsc = await harness.smsc("friendi")
    esme = await harness.bound(smsc, deliver_status=None)
    ids = [smsc.inject_mo(f"9689000000{i}", "90091", f"HELP {i}") for i in range(8)]
    window = [await esme.next_of(c.DELIVER_SM) for _ in range(5)]
    assert smsc.pending_deliveries == 3
    assert len(smsc.sessions[0].outstanding) == 5
    await esme.sync()
    assert len(esme.delivers) == 5
    esme.respond(window[0])
    sixth = await esme.next_of(c.DELIVER_SM)
    assert sixth.tlv_cstr(0x1400) == ids[5] and smsc.pending_deliveries == 2
    for pdu in window[1:] + [sixth]:
        esme.respond(pdu)
    rest = [await esme.next_of(c.DELIVER_SM) for _ in range(2)]
    for pdu in rest:
        esme.respond(pdu)
    await esme.sync()
    assert all(smsc.mo(i).acked for i in ids) and smsc.pending_deliveries == 0


@pytest_twisted.ensureDeferred
async def test_mo_waits_for_a_receiver(harness: Harness) -> None:
    """An MO injected while only a transmitter is bound waits until a receiver binds."""
    smsc = await harness.smsc("ooredoo")
    await harness.bound(smsc, "tx")
    smsc.inject_mo(MSISDN, "90091", "HELP")
    assert smsc.pending_deliveries == 1
    rx = await harness.bound(smsc, "rx")
    assert mo_text(await rx.next_of(c.DELIVER_SM), "gsm7") == "HELP"


@pytest_twisted.ensureDeferred
async def test_duplicate_and_shuffled_parts(harness: Harness) -> None:
    """duplicate_parts sends every part twice with the same id; the MO is acked once all parts are."""
    smsc = await harness.smsc("omantel")
    esme = await harness.bound(smsc)
    mo_id = smsc.inject_mo(MSISDN, "90091", "z" * 300, split_order="shuffle", duplicate_parts=True)
    parts = [await esme.next_of(c.DELIVER_SM) for _ in range(4)]
    ids = [p.tlv_cstr(0x1400) for p in parts]
    assert sorted(ids) == sorted([f"{mo_id}-1", f"{mo_id}-1", f"{mo_id}-2", f"{mo_id}-2"])
    await esme.sync()
    assert smsc.mo(mo_id).acked and smsc.mo(mo_id).attempts == 4


# -- handset reassembly ----------------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_handset_reassembles_a_multipart_mt(harness: Harness) -> None:
    """UDH parts sent out of order, SAR UCS2 parts with an emoji, and message_payload all read whole."""
    smsc = await harness.smsc("omantel")
    esme = await harness.bound(smsc)
    start = len(smsc.handset_messages)
    waiting = smsc.wait_handset(MSISDN, count=3)

    gsm_text = "Ticket 4711 for 1234AB {zone A} costs 0.200 OMR; " * 4  # 200 characters, with escapes
    gsm_parts = alphabet.split_units(gsm_text, "gsm7")
    assert len(gsm_parts) == 2
    for n in (2, 1):
        data = bytes((5, 0, 3, 42, len(gsm_parts), n)) + alphabet.encode_gsm7(gsm_parts[n - 1])
        assert (await esme.submit(MSISDN, data, esm_class=0x40)).status == c.ESME_ROK

    ucs2_text = "تم حجز الموقف 😀 " * 6
    ucs2_parts = alphabet.split_units(ucs2_text, "ucs2")
    for n, part in reversed(list(enumerate(ucs2_parts, start=1))):
        sar = {c.TLV_SAR_MSG_REF_NUM: b"\x01\x00", c.TLV_SAR_TOTAL_SEGMENTS: bytes([len(ucs2_parts)]),
               c.TLV_SAR_SEGMENT_SEQNUM: bytes([n])}
        assert (await esme.submit(MSISDN, part.encode("utf-16-be"), data_coding=8, tlvs=sar)).status == 0

    payload_text = "Parking confirmed. " * 20
    resp = await esme.submit(MSISDN, b"", tlvs={c.TLV_MESSAGE_PAYLOAD: alphabet.encode_gsm7(payload_text)})
    assert resp.status == c.ESME_ROK

    messages = await waiting
    assert [(m.method, m.parts, m.text) for m in messages] == [
        ("udh8", len(gsm_parts), gsm_text),
        ("sar", len(ucs2_parts), ucs2_text),
        ("payload", 1, payload_text),
    ]
    assert all(m.source == "90091" and m.msisdn == MSISDN for m in messages)
    assert smsc.anomalies == [] and smsc.incomplete_messages() == []
    assert smsc.handset_messages[start:] == messages


@pytest_twisted.ensureDeferred
async def test_handset_shows_a_split_escape_as_an_anomaly(harness: Harness) -> None:
    """A GSM escape cut from its character across parts is reported, as a phone would garble it."""
    smsc = await harness.smsc("omantel")
    esme = await harness.bound(smsc)
    body = alphabet.encode_gsm7("a" * 152 + "€")  # 154 septets: the escape is the 153rd
    for n, chunk in ((1, body[:153]), (2, body[153:])):
        await esme.submit(MSISDN, bytes((5, 0, 3, 1, 2, n)) + chunk, esm_class=0x40)
    await esme.sync()
    assert len(smsc.handset_messages) == 1 and smsc.handset_messages[0].text.endswith("€")
    # Joined before decoding, the handset still reads it; it is a too-long first part that is wrong:
    assert smsc.anomalies == []
    await esme.submit(MSISDN, bytes((5, 0, 3, 2, 1, 1)) + alphabet.encode_gsm7("b" * 154), esm_class=0x40)
    await esme.submit(MSISDN, alphabet.encode_gsm7("x") + b"\x1b")
    await esme.sync()
    assert any("exceeds one SMS" in a for a in smsc.anomalies)
    assert any("escape at the end" in a for a in smsc.anomalies)


@pytest_twisted.ensureDeferred
async def test_malformed_udh_is_refused(harness: Harness) -> None:
    """UDHI with a UDH longer than the data gets ESME_RINVESMCLASS; a SAR set missing a TLV too."""
    smsc = await harness.smsc("omantel")
    esme = await harness.bound(smsc)
    assert (await esme.submit(MSISDN, b"\x09\x00\x03", esm_class=0x40)).status == 0x43
    partial_sar = {c.TLV_SAR_MSG_REF_NUM: b"\x00\x01", c.TLV_SAR_SEGMENT_SEQNUM: b"\x01"}
    assert (await esme.submit(MSISDN, b"hi", tlvs=partial_sar)).status == c.ESME_RMISSINGOPTPARAM
    assert smsc.mts == []


@pytest_twisted.ensureDeferred
async def test_wait_handset_since_index_and_timeout(harness: Harness) -> None:
    """since_index=0 sees earlier messages; from now it times out with a HandsetTimeout naming the count."""
    wait_clock = task.Clock()
    smsc = await harness.smsc("omantel", wait_clock=wait_clock)
    esme = await harness.bound(smsc)
    await esme.submit(MSISDN, "one")
    await esme.sync()
    assert [m.text for m in await smsc.wait_handset(MSISDN, since_index=0)] == ["one"]
    waiting = smsc.wait_handset(MSISDN)
    wait_clock.advance(5.0)
    with pytest.raises(HandsetTimeout) as caught:
        await waiting
    assert caught.value.received == [] and "0 of 1" in str(caught.value)


@pytest_twisted.ensureDeferred
async def test_next_pdu_awaits_what_the_esme_sent(harness: Harness) -> None:
    """With record_pdus the test can await each PDU the SMSC received, in order."""
    smsc = await harness.smsc("omantel", record_pdus=True)
    esme = await harness.bound(smsc)
    await esme.submit(MSISDN, "hi")
    assert (await smsc.next_pdu()).command_id == c.BIND_TRANSCEIVER
    submit = await smsc.next_pdu()
    assert (submit.command_id, submit.get("destination_addr")) == (c.SUBMIT_SM, MSISDN)


# -- enquire_link from the SMSC ----------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_smsc_enquire_link_and_silent_esme_dropped(harness: Harness) -> None:
    """The SMSC polls with enquire_link; an ESME that answers stays, one that does not is dropped."""
    clock = task.Clock()
    smsc = await harness.smsc("omantel", clock=clock)
    live = await harness.bound(smsc)
    silent = await harness.bound(smsc, answer_enquire_link=False)
    interval = smsc.profile.enquire_link_s
    clock.advance(interval)
    await live.next_of(c.ENQUIRE_LINK)
    await silent.next_of(c.ENQUIRE_LINK)
    await live.sync()
    await silent.sync()
    clock.advance(interval)
    await silent.closed
    assert len(smsc.bound_sessions()) == 1
    await live.next_of(c.ENQUIRE_LINK)


# -- faults ---------------------------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_fault_drop_link_after_n_submits(harness: Harness) -> None:
    """drop_link_after_submits=2: two submits are answered, then the link goes; the third is lost."""
    smsc = await harness.smsc("omantel", faults=FaultPlan(drop_link_after_submits=2))
    esme = await harness.bound(smsc)
    results = await defer.DeferredList([esme.submit(MSISDN) for _ in range(3)], consumeErrors=True)
    assert [ok for ok, _ in results] == [True, True, False]
    assert [r.status for _, r in results[:2]] == [0, 0]
    await esme.closed
    assert len(smsc.mts) == 2


@pytest_twisted.ensureDeferred
async def test_fault_error_every_nth_submit(harness: Harness) -> None:
    """error_every_nth_submit=(3, ESME_RMSGQFUL): the 3rd and 6th submits get 0x14."""
    smsc = await harness.smsc("omantel", faults=FaultPlan(error_every_nth_submit=(3, c.ESME_RMSGQFUL)))
    esme = await harness.bound(smsc)
    resps = await gather(*(esme.submit(MSISDN) for _ in range(6)))
    assert [r.status for r in resps] == [0, 0, c.ESME_RMSGQFUL, 0, 0, c.ESME_RMSGQFUL]
    assert len(smsc.mts) == 4


@pytest_twisted.ensureDeferred
async def test_fault_no_response_to_submit(harness: Harness) -> None:
    """A hung SMSC reads submit_sm and never answers, yet still answers enquire_link."""
    smsc = await harness.smsc("ooredoo", faults=FaultPlan(no_response_to_submit=True))
    esme = await harness.bound(smsc, "tx")
    submitted = esme.submit(MSISDN)
    assert (await esme.sync()).status == c.ESME_ROK
    assert not submitted.called and smsc.counters["unanswered"] == 1 and smsc.mts == []
    smsc.faults.no_response_to_submit = False  # flipped at run time
    assert (await esme.submit(MSISDN)).status == c.ESME_ROK


@pytest_twisted.ensureDeferred
async def test_fault_response_delay(harness: Harness) -> None:
    """response_delay_s holds the submit_sm_resp back; the message is accepted at once."""
    clock = task.Clock()
    smsc = await harness.smsc("omantel", clock=clock, faults=FaultPlan(response_delay_s=2.0))
    esme = await harness.bound(smsc)
    submitted = esme.submit(MSISDN)
    await esme.sync()
    assert not submitted.called and len(smsc.mts) == 1
    clock.advance(2.0)
    assert (await submitted).get("message_id") == smsc.mts[0].message_id


@pytest_twisted.ensureDeferred
async def test_fault_throttle_storm_generic_nack_and_unbind(harness: Harness) -> None:
    """throttle_storm answers 0x58 at any rate; generic_nack_on_submit nacks with sequence 0;
    unbind_on_submit answers a submit with an unbind."""
    smsc = await harness.smsc("omantel", faults=FaultPlan(throttle_storm=True))
    esme = await harness.bound(smsc)
    assert (await esme.submit(MSISDN)).status == c.ESME_RTHROTTLED
    smsc.faults.update(throttle_storm=False, generic_nack_on_submit=True)
    esme.submit(MSISDN).addErrback(lambda _: None)
    nack = await esme.next_of(c.GENERIC_NACK)
    assert (nack.sequence, nack.status) == (0, c.ESME_RSYSERR)
    smsc.faults.update(generic_nack_on_submit=False, unbind_on_submit=True)
    esme.submit(MSISDN).addErrback(lambda _: None)
    await esme.next_of(c.UNBIND)
    await esme.closed


@pytest_twisted.ensureDeferred
async def test_fault_deliver_before_bind_resp(harness: Harness) -> None:
    """deliver_before_bind_resp: a queued MO reaches the ESME before its bind_resp does."""
    smsc = await harness.smsc("omantel", faults=FaultPlan(deliver_before_bind_resp=True))
    smsc.inject_mo(MSISDN, "90091", "HELP")
    esme = await harness.connect(smsc)
    await esme.bind("trx")
    assert [p.command_id for p in esme.received[:2]] == [c.DELIVER_SM, c.BIND_TRANSCEIVER_RESP]


@pytest_twisted.ensureDeferred
async def test_fault_bind_error(harness: Harness) -> None:
    """bind_error answers every bind with the given status, good credentials or not."""
    smsc = await harness.smsc("omantel", faults=FaultPlan(bind_error=c.ESME_RBINDFAIL))
    esme = await harness.connect(smsc)
    assert (await esme.bind()).status == c.ESME_RBINDFAIL


@pytest_twisted.ensureDeferred
async def test_garbage_to_esmes(harness: Harness) -> None:
    """An unknown command_id is nacked by the ESME and the link stays; a bad length ends the link."""
    smsc = await harness.smsc("omantel", record_pdus=True)
    esme = await harness.bound(smsc)
    assert (await smsc.next_pdu()).command_id == c.BIND_TRANSCEIVER
    assert smsc.send_garbage_to_esmes("unknown_command") == 1
    nack = await smsc.next_pdu()
    assert (nack.command_id, nack.status) == (c.GENERIC_NACK, c.ESME_RINVCMDID)
    assert smsc.counters["nacks_received"] == 1
    assert esme.undecodable and esme.undecodable[0].status == c.ESME_RINVCMDID
    smsc.send_garbage_to_esmes("bad_length")
    await esme.closed


# -- control port ---------------------------------------------------------------------------------


async def started(harness: Harness, names: list[str]) -> Any:
    specs = [SimulatorSpec(name, name, "127.0.0.1", 0, SYSTEM_ID, PASSWORD) for name in names]
    sims = await start_simulators(specs, "127.0.0.1", 0, reactor, reactor)
    harness.cleanups.append(sims.stop)
    return sims


async def control_client(harness: Harness, port: int) -> ControlClient:
    client = await ControlClient.connect(reactor, "127.0.0.1", port)
    harness.cleanups.append(client.close)
    return client


@pytest_twisted.ensureDeferred
async def test_control_mo_round_trip(harness: Harness) -> None:
    """An MO through the control port reaches the ESME; its reply comes back as an mt event."""
    sims = await started(harness, ["omantel"])
    assert sims.ports["omantel"] == sims.smsc("omantel").port.getHost().port
    await bind_replier(harness, sims.smsc("omantel"), lambda text: f"RE: {text}")
    client = await control_client(harness, sims.control_port)
    seen: list[dict[str, Any]] = []
    events = await client.request(
        {"op": "mo", "carrier": "omantel", "from": MSISDN, "to": "90091", "text": "HELP", "replies": 1,
         "timeout": 10}, on_event=seen.append)
    assert events == seen
    assert [e["event"] for e in events] == ["accepted", "mt", "done"]
    assert events[0]["mo_id"] == sims.smsc("omantel").mos[0].mo_id
    assert (events[1]["from"], events[1]["to"], events[1]["text"], events[1]["parts"]) == (
        "90091", MSISDN, "RE: HELP", 1)


@pytest_twisted.ensureDeferred
async def test_control_watch_and_power(harness: Harness) -> None:
    """`watch` streams every SMS to one handset, from any carrier, until `count`; `power` takes a
    handset out of coverage (its MTs are kept) and back (they are delivered then). A watch whose
    client hangs up stops listening."""
    sims = await started(harness, ["omantel", "friendi"])
    omantel, friendi = sims.smsc("omantel"), sims.smsc("friendi")
    esmes = {"omantel": await harness.bound(omantel), "friendi": await harness.bound(friendi)}
    client = await control_client(harness, sims.control_port)
    off = await client.request({"op": "power", "carrier": "omantel", "msisdn": MSISDN, "on": False})
    assert off[-1] == {"event": "ok", "on": False, "held": 0}
    seen: list[dict[str, Any]] = []
    watching: Deferred[dict[str, Any]] = Deferred()
    watch = client.request({"op": "watch", "msisdn": MSISDN, "count": 2},
                           on_event=lambda e: (seen.append(e), e["event"] == "watching" and watching.callback(e)))
    assert (await watching.addTimeout(5, reactor))["carriers"] == ["omantel", "friendi"]
    await esmes["omantel"].submit(MSISDN, "kept while away")
    await esmes["friendi"].submit("96891111111", "someone else")
    await esmes["friendi"].submit(MSISDN, "on friendi")
    assert [m.payload for m in omantel.held_messages(MSISDN)] == [alphabet.encode_gsm7("kept while away")]
    on = await client.request({"op": "power", "carrier": "omantel", "msisdn": MSISDN, "on": True})
    assert on[-1] == {"event": "ok", "on": True, "delivered": 1}
    events = await watch.addTimeout(5, reactor)
    assert [(e["event"], e.get("carrier"), e.get("text")) for e in events] == [
        ("watching", None, None), ("mt", "friendi", "on friendi"), ("mt", "omantel", "kept while away"),
        ("done", None, None)]
    bad = await client.request({"op": "power", "carrier": "omantel", "msisdn": MSISDN, "on": "yes"})
    assert bad[-1]["event"] == "error"

    # A watch without a limit ends when its client goes; its listeners with it.
    other = await ControlClient.connect(reactor, "127.0.0.1", sims.control_port)
    listening: Deferred[dict[str, Any]] = Deferred()
    other.request({"op": "watch", "msisdn": MSISDN}, on_event=lambda e: listening.called or listening.callback(e))
    await listening.addTimeout(5, reactor)
    assert omantel._listeners.get(MSISDN)
    await other.close()
    for _ in range(50):
        if not omantel._listeners.get(MSISDN):
            break
        await deferLater(reactor, 0.02)
    assert not omantel._listeners.get(MSISDN) and not friendi._listeners.get(MSISDN)


@pytest_twisted.ensureDeferred
async def test_control_blocking_client_and_timeout(harness: Harness) -> None:
    """The blocking client streams the same lines; no reply within the timeout ends in a timeout event."""
    sims = await started(harness, ["ooredoo"])
    await harness.bound(sims.smsc("ooredoo"), "rx")  # acks MOs, never replies
    request = {"op": "mo", "carrier": "ooredoo", "from": MSISDN, "to": "90091", "text": "HELP", "timeout": 0.2}
    events = await threads.deferToThread(
        lambda: list(control_request("127.0.0.1", sims.control_port, request, timeout=10)))
    assert [e["event"] for e in events] == ["accepted", "timeout"] and events[1]["received"] == 0


@pytest_twisted.ensureDeferred
async def test_control_status_faults_and_errors(harness: Harness) -> None:
    """status lists bound sessions and counts; faults flips a fault; bad requests get error lines."""
    sims = await started(harness, ["omantel", "friendi"])
    esme = await harness.bound(sims.smsc("friendi"))
    client = await control_client(harness, sims.control_port)
    [status] = await client.request({"op": "status"})
    friendi = status["carriers"]["friendi"]
    assert friendi["sessions"][0]["mode"] == "trx" and friendi["counts"]["mts"] == 0
    assert status["carriers"]["omantel"]["sessions"] == []

    [ok] = await client.request({"op": "faults", "carrier": "friendi", "set": {"throttle_storm": True}})
    assert ok["event"] == "ok" and ok["faults"]["throttle_storm"] is True
    assert (await esme.submit(MSISDN)).status == c.ESME_RTHROTTLED
    [status] = await client.request({"op": "status"})
    assert status["carriers"]["friendi"]["counts"]["throttled"] == 1

    for bad in ({"op": "launch"}, {"op": "mo", "carrier": "vodafone", "from": MSISDN, "to": "1", "text": "x"},
                {"op": "faults", "carrier": "omantel", "set": {"dlr_state": "LOST"}},
                {"op": "mo", "carrier": "omantel", "to": "90091", "text": "x"}):
        [error] = await client.request(bad)
        assert error["event"] == "error" and error["message"]
    raw = await threads.deferToThread(
        lambda: list(control_request("127.0.0.1", sims.control_port, {"op": "nope"}, timeout=10)))
    assert raw[0]["event"] == "error"


@pytest_twisted.ensureDeferred
async def test_control_bad_json_line(harness: Harness) -> None:
    """A line that is not JSON gets an error line and the connection stays usable."""
    server = ControlServer({})
    lines: list[dict[str, Any]] = []
    await server.handle("not a dict", lines.append)
    await server.handle({"op": "status", "id": 7}, lines.append)
    assert lines[0]["event"] == "error"
    assert lines[1] == {"event": "status", "carriers": {}, "id": 7}
    sims = await started(harness, ["omantel"])

    def talk() -> list[bytes]:
        import socket

        with socket.create_connection(("127.0.0.1", sims.control_port), timeout=10) as sock:
            sock.sendall(b"{oops\n" + b'{"op":"status"}\n')
            stream = sock.makefile("rb")
            return [stream.readline(), stream.readline()]

    first, second = await threads.deferToThread(talk)
    assert b'"error"' in first and b"bad JSON" in first and b'"status"' in second


@pytest_twisted.ensureDeferred
async def test_control_load_across_three_carriers(harness: Harness) -> None:
    """load sends one MO per distinct MSISDN round-robin and matches every reply to its MO."""
    sims = await started(harness, ["omantel", "ooredoo", "friendi"])
    for name in ("omantel", "ooredoo", "friendi"):
        await bind_replier(harness, sims.smsc(name), lambda text: f"RE: {text}")
    client = await control_client(harness, sims.control_port)
    [result] = await client.request({"op": "load", "count": 60, "rate": 0, "keyword": "HELP",
                                     "carriers": ["omantel", "ooredoo", "friendi"], "msisdn_base": 96890000000,
                                     "timeout": 30})
    assert result["event"] == "load"
    assert (result["sent"], result["replied"], result["lost"], result["duplicates"]) == (60, 60, 0, 0)
    assert result["finished"] == "all_replied" and result["p50_ms"] is not None
    assert result["p50_ms"] <= result["p95_ms"] <= result["p99_ms"]
    assert result["per_carrier"]["ooredoo"] == {"sent": 20, "replied": 20}
    assert result["msgs_per_s"] > 0
    mo_sources = {mo.source for name in sims.smscs for mo in sims.smsc(name).mos}
    assert len(mo_sources) == 60


@pytest_twisted.ensureDeferred
async def test_load_counts_lost_and_duplicate_replies(harness: Harness) -> None:
    """A gateway that answers some MOs twice and others never shows duplicates and lost."""
    from carriers.load import run_load

    wait_clock = task.Clock()
    smsc = await harness.smsc("omantel", wait_clock=wait_clock)
    replies = iter([2, 0, 1, 1] * 2)
    esme = await harness.bound(smsc)

    def on_deliver(e: Esme, pdu: Pdu) -> None:
        for _ in range(next(replies)):
            e.submit(pdu.get("source_addr"), "OK", source="90091")

    esme.on_deliver = on_deliver
    running = defer.ensureDeferred(run_load({"omantel": smsc}, count=8, idle_timeout=5.0, timeout=60))
    # Subscribed after the load's own listener, so the load has seen the 8th message when this fires.
    all_in: defer.Deferred[None] = defer.Deferred()
    smsc.subscribe_handset(lambda m: len(smsc.handset_messages) == 8 and all_in.callback(None))
    await all_in.addTimeout(10, reactor)
    assert not running.called
    wait_clock.advance(5.0)
    result = await running
    assert (result.sent, result.replied, result.lost, result.duplicates) == (8, 6, 2, 2)
    assert result.finished == "idle"


@pytest_twisted.ensureDeferred
async def test_load_paces_mos_at_the_requested_rate(harness: Harness) -> None:
    """rate > 0 injects MOs at that rate of the SMSC's clock instead of all at once."""
    from carriers.load import run_load

    clock, wait_clock = task.Clock(), task.Clock()
    smsc = await harness.smsc("omantel", clock=clock, wait_clock=wait_clock)
    await bind_replier(harness, smsc, lambda text: "OK")
    running = defer.ensureDeferred(run_load({"omantel": smsc}, count=5, rate=10.0, timeout=60))
    assert smsc.counters["mos"] == 1
    clock.advance(0.1)
    assert smsc.counters["mos"] == 2
    clock.pump([0.1] * 3)
    assert smsc.counters["mos"] == 5
    result = await running.addTimeout(10, reactor)
    assert (result.sent, result.replied, result.lost) == (5, 5, 0)
