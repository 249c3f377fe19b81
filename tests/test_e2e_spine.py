"""The gateway spine end to end: simulators and gateway over real loopback SMPP."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from carriers.faults import FaultPlan
from handlers.help import HelpHandler
from smsgw.config import RouteConfig
from smsgw.feature import Feature
from smsgw.message import Inbound, Lang, Request
from tests import engines
from tests.stack import CARRIERS, eventually, on_loop, start_stack, wait

pytestmark = pytest.mark.usefixtures("store_engine")

SHORT_CODE = "90091"


def expected_help(stack, carrier: str, text: str, lang: Lang) -> str:
    inbound = Inbound(0, carrier, "96891234567", SHORT_CODE, text, 0.0)
    return HelpHandler(stack.gateway.router).handle(Request(inbound, "HELP", (), lang))[0].text


@pytest.mark.parametrize("carrier", CARRIERS)
@on_loop
async def test_help_round_trip_english_and_arabic(tmp_path: Path, carrier: str) -> None:
    """HELP and مساعدة each get one reply, in the sender's language, on every carrier."""
    stack = await start_stack(tmp_path)
    try:
        [english] = await stack.send(carrier, "96891234567", SHORT_CODE, "HELP")
        assert english.text == expected_help(stack, carrier, "HELP", Lang.EN)
        assert english.source == SHORT_CODE and not english.problems
        [arabic] = await stack.send(carrier, "96891234568", SHORT_CODE, "مساعدة")
        assert arabic.text == expected_help(stack, carrier, "مساعدة", Lang.AR)
        assert arabic.data_coding == 8
        assert not arabic.problems
    finally:
        await stack.stop()


class LongReplyHandler:
    """A test service whose answer is long, to exercise splitting on every carrier."""

    TEXT = ("بلدية مسقط: " + "تم استلام طلبك وسيتم الرد عليك قريبا. ") * 8

    def __init__(self, _ctx: object) -> None:
        pass

    def handle(self, req: Request) -> list:
        return [req.reply(self.TEXT)]


LONG = Feature(name="long", handlers={"long": LongReplyHandler})
LONG_ROUTE = RouteConfig(keyword="LONG", aliases=("طويل",), handler="long", short_codes=())


@on_loop
async def test_long_arabic_reply_arrives_in_parts_and_reassembles(tmp_path: Path) -> None:
    """A 300-character Arabic reply goes as UCS2 parts (UDH, SAR or one payload) and reads whole."""
    stack = await start_stack(tmp_path, features=[LONG], routes=[LONG_ROUTE])
    try:
        expected = LongReplyHandler.TEXT
        units = len(expected.encode("utf-16-be")) // 2
        for carrier, method, parts in (
            ("omantel", "udh8", -(-units // 67)),
            ("ooredoo", "sar", -(-units // 67)),
            ("friendi", "payload", 1),
        ):
            [message] = await stack.send(carrier, "96891230001", SHORT_CODE, "طويل")
            assert message.text == expected
            assert (message.method, message.parts, message.data_coding) == (method, parts, 8)
            assert message.problems == ()
            assert stack.smsc(carrier).anomalies == []
    finally:
        await stack.stop()


@on_loop
async def test_multipart_mo_in_reverse_order_with_duplicates(tmp_path: Path) -> None:
    """A long MO whose parts arrive last-first, one of them twice, is processed once, whole."""
    stack = await start_stack(tmp_path)
    try:
        text = "HELP " + "please tell me about parking in Ruwi and Muttrah " * 5
        for carrier in CARRIERS:
            msisdn = {"omantel": "96891230002", "ooredoo": "96891230003", "friendi": "96891230004"}[carrier]
            replies = await stack.send(carrier, msisdn, SHORT_CODE, text, split_order="reverse", duplicate_parts=True)
            assert len(replies) == 1
        stored = await stack.gateway.store.read(
            lambda conn: [row[0] for row in conn.execute("SELECT text FROM inbound ORDER BY id")]
        )
        assert stored == [text] * 3
        await asyncio.sleep(0.3)
        assert all(len(stack.handset(c, m)) == 1 for c, m in
                   (("omantel", "96891230002"), ("ooredoo", "96891230003"), ("friendi", "96891230004")))
    finally:
        await stack.stop()


@on_loop
async def test_throttled_carrier_never_exceeds_tps_and_delivers_everything(tmp_path: Path) -> None:
    """The SMSC allows 10/s, we are configured for 15/s: throttles slow us, nothing is lost,
    and no one-second window ever holds more than 15 of our submits."""
    stack = await start_stack(
        tmp_path, carriers=["omantel"], carrier_overrides={"omantel": {"tps": 15.0}},
        sim_overrides={"omantel": {"tps": 10.0}},
    )
    try:
        smsc = stack.smsc("omantel")
        msisdns = [f"968912{n:05d}" for n in range(40)]
        waits = []
        for msisdn in msisdns:
            since = len(smsc.handset_messages)
            waits.append(wait(smsc.wait_handset(msisdn, 1, since_index=since, timeout=20)))
            smsc.inject_mo(msisdn, SHORT_CODE, "HELP")
        await asyncio.gather(*waits)
        sender = stack.gateway.queue.senders["omantel"]
        assert sender.stats.throttled > 0
        times = sorted(record.received_at for record in smsc.mts)
        submit_times = sorted(smsc_submit_times(smsc))
        for i, start in enumerate(submit_times):
            in_window = [t for t in submit_times[i:] if t < start + 1.0]
            assert len(in_window) <= 15, f"{len(in_window)} submits within one second"
        assert len(times) == len(msisdns)
        await asyncio.sleep(0.3)
        assert all(len(stack.handset("omantel", m)) == 1 for m in msisdns)
    finally:
        await stack.stop()


def smsc_submit_times(smsc) -> list[float]:
    """Every submit_sm the SMSC read, accepted or throttled."""
    return list(smsc.submit_times)


@on_loop
async def test_link_dropped_mid_send_reconnects_without_loss_or_duplicates(tmp_path: Path) -> None:
    """An SMSC that drops the link after every 3 submits: all replies arrive, each once."""
    stack = await start_stack(tmp_path, carriers=["omantel"], faults={"omantel": FaultPlan(drop_link_after_submits=3)})
    try:
        smsc = stack.smsc("omantel")
        msisdns = [f"968913{n:05d}" for n in range(10)]
        waits = []
        for msisdn in msisdns:
            waits.append(wait(smsc.wait_handset(msisdn, 1, since_index=0, timeout=20)))
            smsc.inject_mo(msisdn, SHORT_CODE, "HELP")
        await asyncio.gather(*waits)
        await asyncio.sleep(0.5)
        assert all(len(stack.handset("omantel", m)) == 1 for m in msisdns)
        assert smsc.counters["binds"] >= 4
    finally:
        await stack.stop()


@on_loop
async def test_bad_password_no_reconnect_storm_other_carriers_unaffected(tmp_path: Path) -> None:
    """Wrong credentials for Ooredoo: refused once, never retried; Omantel keeps serving."""
    stack = await start_stack(tmp_path, carrier_overrides={"ooredoo": {"password": "wrong"}})
    try:
        assert stack.gateway.connectors["ooredoo"].state == "refused"
        await asyncio.sleep(1.0)  # at 0.05 s backoff a retry loop would bind dozens of times
        assert stack.smsc("ooredoo").counters["bind_failures"] <= 2  # one per link (tx and rx)
        [reply] = await stack.send("omantel", "96891230010", SHORT_CODE, "HELP")
        assert reply.text
    finally:
        await stack.stop()


@on_loop
async def test_redelivered_mo_is_processed_once(tmp_path: Path) -> None:
    """The carrier resends an MO with the same id (its resp got lost): one reply only."""
    stack = await start_stack(tmp_path, carriers=["omantel"])
    try:
        smsc = stack.smsc("omantel")
        await stack.send("omantel", "96891230020", SHORT_CODE, "HELP", mo_id="abc123")
        smsc.inject_mo("96891230020", SHORT_CODE, "HELP", mo_id="abc123")
        await eventually(lambda: stack.gateway.counters["mo_duplicate"] == 1)
        await asyncio.sleep(0.3)
        assert len(stack.handset("omantel", "96891230020")) == 1
    finally:
        await stack.stop()


@on_loop
async def test_delivery_receipts_mark_the_reply_delivered(tmp_path: Path) -> None:
    """Each carrier's receipt (hex/dec/padded ids, TLV or text) is matched to the reply."""
    stack = await start_stack(tmp_path)
    try:
        for carrier in CARRIERS:
            await stack.send(carrier, "96891230030", SHORT_CODE, "HELP")

        async def all_delivered() -> bool:
            states = await stack.gateway.store.read(
                lambda conn: [row[0] for row in conn.execute("SELECT state FROM outbound")]
            )
            return states == ["delivered"] * 3

        await eventually(all_delivered, timeout=8)
    finally:
        await stack.stop()


@on_loop
async def test_malformed_pdus_get_generic_nack_and_the_gateway_keeps_serving(tmp_path: Path) -> None:
    """An unknown command_id is nacked and the session goes on; a bad length drops the link,
    the gateway rebinds, and HELP still works."""
    stack = await start_stack(tmp_path, carriers=["omantel"])
    try:
        smsc = stack.smsc("omantel")
        binds = smsc.counters["binds"]
        assert smsc.send_garbage_to_esmes("unknown_command") == 1
        await eventually(lambda: smsc.counters["nacks_received"] >= 1)
        assert smsc.counters["binds"] == binds  # same session
        smsc.send_garbage_to_esmes("bad_length")
        await eventually(lambda: smsc.counters["binds"] > binds)
        await stack.wait_bound()
        [reply] = await stack.send("omantel", "96891230040", SHORT_CODE, "HELP")
        assert reply.text
    finally:
        await stack.stop()


async def outbound_rows(stack) -> list[tuple[str, str | None]]:
    return await stack.gateway.store.read(
        lambda conn: [tuple(r) for r in conn.execute("SELECT state, reason FROM outbound ORDER BY id")]
    )


@on_loop
async def test_temporary_errors_are_retried_and_delivered_once(tmp_path: Path) -> None:
    """Every other submit answered ESME_RMSGQFUL: those are retried with backoff, all arrive once."""
    from smsgw.smpp import constants as c

    stack = await start_stack(tmp_path, carriers=["omantel"],
                              faults={"omantel": FaultPlan(error_every_nth_submit=(2, c.ESME_RMSGQFUL))})
    try:
        smsc = stack.smsc("omantel")
        msisdns = [f"968915{n:05d}" for n in range(6)]
        waits = []
        for msisdn in msisdns:
            waits.append(wait(smsc.wait_handset(msisdn, 1, since_index=0, timeout=15)))
            smsc.inject_mo(msisdn, SHORT_CODE, "HELP")
        await asyncio.gather(*waits)
        assert stack.gateway.queue.senders["omantel"].stats.retried >= 3
        await asyncio.sleep(0.3)
        assert all(len(stack.handset("omantel", m)) == 1 for m in msisdns)
    finally:
        await stack.stop()


@on_loop
async def test_permanent_error_marks_the_reply_failed_with_the_reason(tmp_path: Path) -> None:
    """ESME_RINVDSTADR is final: the reply is marked failed, naming the status, and not retried."""
    from smsgw.smpp import constants as c

    stack = await start_stack(tmp_path, carriers=["omantel"],
                              faults={"omantel": FaultPlan(error_every_nth_submit=(1, c.ESME_RINVDSTADR))})
    try:
        stack.smsc("omantel").inject_mo("96891230050", SHORT_CODE, "HELP")

        async def failed() -> bool:
            return await outbound_rows(stack) == [("failed", "carrier refused: ESME_RINVDSTADR")]

        await eventually(failed)
        submits = stack.smsc("omantel").counters["submits"]
        await asyncio.sleep(0.5)
        assert stack.smsc("omantel").counters["submits"] == submits == 1
    finally:
        await stack.stop()


@on_loop
async def test_reply_expires_after_its_validity_period(tmp_path: Path) -> None:
    """A reply the carrier keeps refusing (throttle storm) is expired once its validity passes,
    without the link ever standing idle for long in between."""
    stack = await start_stack(tmp_path, carriers=["omantel"], carrier_overrides={"omantel": {"validity_s": 1}},
                              faults={"omantel": FaultPlan(throttle_storm=True)})
    try:
        stack.smsc("omantel").inject_mo("96891230060", SHORT_CODE, "HELP")

        async def expired() -> bool:
            rows = await outbound_rows(stack)
            return len(rows) == 1 and rows[0][0] == "expired"

        await eventually(expired, timeout=5)
        times = stack.smsc("omantel").submit_times
        gaps = [b - a for a, b in zip(times, times[1:])]
        assert len(times) >= 3 and max(gaps) < 1.0  # throttled: short pauses, never minutes
    finally:
        await stack.stop()


@on_loop
async def test_the_smsc_keeps_an_mt_for_a_switched_off_handset_only_for_its_validity(tmp_path: Path) -> None:
    """validity_s travels in every submit_sm, relative (Omantel) or absolute (Friendi, whose SMSC
    reads only that form). A handset out of coverage gets its MT if it comes back in time; past
    the validity the SMSC gives up and its EXPIRED receipt marks the MT undelivered."""
    from smsgw.message import Reply

    carriers = ["omantel", "friendi"]
    stack = await start_stack(tmp_path, carriers=carriers,
                              carrier_overrides={c: {"validity_s": 3} for c in carriers})
    try:
        back, away = "96891230070", "96891230071"
        sent = {}
        for carrier in carriers:
            smsc = stack.smsc(carrier)
            smsc.switch_off(back)
            smsc.switch_off(away)
            for msisdn in (back, away):
                sent[carrier, msisdn] = await stack.gateway.send(Reply(carrier, msisdn, "90092", f"Notice {msisdn}"))
        await eventually(lambda: all(len(stack.smsc(c).held_messages()) == 2 for c in carriers))
        expiry = dict(await stack.gateway.store.read(
            lambda conn: conn.execute("SELECT id, expires_at FROM outbound").fetchall()))
        for carrier, form in (("omantel", "R"), ("friendi", "00+")):
            for mt in stack.smsc(carrier).held_messages():
                assert len(mt.validity_period) == 16 and mt.validity_period.endswith(form), mt.validity_period
                # Relative: what was left, in whole seconds; absolute: to the tenth of a second.
                assert -1.1 <= mt.expires_at - expiry[sent[carrier, mt.dest]] <= 0.1
            assert stack.smsc(carrier).switch_on(back) == 1
            assert [m.text for m in stack.handset(carrier, back)] == [f"Notice {back}"]

        async def states() -> dict[tuple[str, str], tuple[str, str | None]]:
            rows = await stack.gateway.store.read(lambda conn: conn.execute(
                "SELECT o.carrier, o.msisdn, o.state, p.dlr_state FROM outbound AS o"
                " JOIN mt_part AS p ON p.outbound_id = o.id").fetchall())
            return {(r[0], r[1]): (r[2], r[3]) for r in rows}

        async def settled() -> bool:
            now = await states()
            return all(now.get((c, m), ("", ""))[0] in ("delivered", "undelivered") for c in carriers
                       for m in (back, away))

        await eventually(settled, timeout=10)
        final = await states()
        for carrier in carriers:
            assert final[carrier, back] == ("delivered", "DELIVRD")
            assert final[carrier, away] == ("undelivered", "EXPIRED")
            smsc = stack.smsc(carrier)
            assert smsc.counters["expired"] == 1 and smsc.held_messages() == []
            assert smsc.switch_on(away) == 0 and stack.handset(carrier, away) == []
            assert smsc.anomalies == []
    finally:
        await stack.stop()


@on_loop
async def test_large_backlog_is_paged_from_the_store_with_bounded_memory(tmp_path: Path) -> None:
    """500 notices while the carrier refuses everything: at most the high-water mark is held in
    memory, MOs are still accepted and answered later, and every notice arrives exactly once."""
    from smsgw.message import Reply

    stack = await start_stack(tmp_path, carriers=["omantel"], faults={"omantel": FaultPlan(throttle_storm=True)})
    try:
        sender = stack.gateway.queue.senders["omantel"]
        sender.high_water, sender.refill_batch = 50, 20
        msisdns = [f"96891{n:06d}" for n in range(500)]
        for msisdn in msisdns:
            await stack.gateway.send(Reply("omantel", msisdn, "90091", "Municipal notice: road works in Ruwi."))
        assert sender.depth <= 50
        stack.smsc("omantel").inject_mo("96899999999", SHORT_CODE, "HELP")
        await eventually(lambda: stack.gateway.counters["processed"] == 1)  # MOs still accepted
        stack.smsc("omantel").faults.reset()
        await eventually(lambda: len(stack.smsc("omantel").handset_messages) == 501, timeout=20)
        assert sorted(m.msisdn for m in stack.smsc("omantel").handset_messages) == sorted([*msisdns, "96899999999"])
    finally:
        await stack.stop()


@on_loop
async def test_store_that_cannot_write_answers_0x64_raises_the_alarm_and_recovers(tmp_path: Path) -> None:
    """The database refuses writes (as a full or read-only disk does): the MO is answered
    ESME_RX_T_APPN (the carrier keeps it) and /metrics shows the alarm; once the store can
    write again the redelivered MO is answered and processed."""
    from smsgw.smpp import constants as c

    stack = await start_stack(tmp_path, carriers=["omantel"])
    try:
        store = stack.gateway.store
        # A read-only disk on SQLite; on PostgreSQL a session that may not write (as on a standby).
        read_only = "SET default_transaction_read_only = on" if engines.is_postgres() else "PRAGMA query_only = ON"
        await store.engine.on_each_connection(lambda conn: conn.execute(read_only))
        smsc = stack.smsc("omantel")
        since = len(smsc.handset_messages)
        mo_id = smsc.inject_mo("96891230300", SHORT_CODE, "HELP")
        await eventually(lambda: c.ESME_RX_T_APPN in smsc.mo(mo_id).statuses)
        assert "smsgw_store_healthy 0.0" in engines.without_node_label(stack.gateway.metrics.render().decode(), stack.gateway.node)
        writable = "SET default_transaction_read_only = off" if engines.is_postgres() else "PRAGMA query_only = OFF"
        await store.engine.on_each_connection(lambda conn: conn.execute(writable))
        await wait(smsc.wait_handset("96891230300", 1, since_index=since, timeout=15))  # after redelivery
        assert smsc.mo(mo_id).acked
        assert "smsgw_store_healthy 1.0" in engines.without_node_label(stack.gateway.metrics.render().decode(), stack.gateway.node)
    finally:
        await stack.stop()


@on_loop
async def test_slow_smsc_late_response_is_not_resent(tmp_path: Path) -> None:
    """The SMSC answers after our response timeout: its late 'accepted' records the reply as
    sent and cancels the resend, so the handset gets it once."""
    stack = await start_stack(tmp_path, carriers=["omantel"], carrier_overrides={"omantel": {"response_timeout_s": 0.5}},
                              faults={"omantel": FaultPlan(response_delay_s=0.8)})
    try:
        await stack.send("omantel", "96891230400", SHORT_CODE, "HELP")
        await asyncio.sleep(3.0)  # past every retry the timeout scheduled
        assert len(stack.handset("omantel", "96891230400")) == 1
        assert stack.smsc("omantel").counters["submits"] == 1
        rows = await outbound_rows(stack)
        assert rows[0][0] in ("sent", "delivered")
    finally:
        await stack.stop()


@on_loop
async def test_an_answer_later_than_the_retry_would_be_is_still_not_resent(tmp_path: Path) -> None:
    """The SMSC answers 2 s after a submit, long after our 0.5 s timeout and after the moment a
    retry would go: on a link still up the part is held for that answer, never sent twice."""
    stack = await start_stack(tmp_path, carriers=["omantel"], carrier_overrides={"omantel": {"response_timeout_s": 0.5}},
                              faults={"omantel": FaultPlan(response_delay_s=2.0)})
    try:
        await stack.send("omantel", "96891230410", SHORT_CODE, "HELP", timeout=10.0)
        sender = stack.gateway.queue.senders["omantel"]  # type: ignore[union-attr]
        await eventually(lambda: sender.stats.accepted == 1 and sender.stats.awaiting_late == 0, timeout=10)
        assert stack.smsc("omantel").counters["submits"] == 1
        assert len(stack.handset("omantel", "96891230410")) == 1
        assert (await outbound_rows(stack))[0][0] in ("sent", "delivered")
    finally:
        await stack.stop()


@on_loop
async def test_a_submit_never_answered_is_resent_once_the_grace_is_over(tmp_path: Path) -> None:
    """An SMSC that swallows a submit but keeps the link up: after the late-answer grace (six
    timeouts) the part goes again, and the handset gets the reply once."""
    stack = await start_stack(tmp_path, carriers=["omantel"], carrier_overrides={"omantel": {"response_timeout_s": 0.3}},
                              faults={"omantel": FaultPlan(no_response_to_submit=True)})
    try:
        smsc = stack.smsc("omantel")
        sender = stack.gateway.queue.senders["omantel"]  # type: ignore[union-attr]
        smsc.inject_mo("96891230420", SHORT_CODE, "HELP")
        await eventually(lambda: sender.stats.awaiting_late == 1, timeout=5)
        smsc.faults.update(no_response_to_submit=False)  # what it swallowed stays swallowed
        await wait(smsc.wait_handset("96891230420", 1, timeout=15))
        assert sender.stats.awaiting_late == 0 and sender.stats.retried == 1
        assert smsc.counters["submits"] == 2 and len(stack.handset("omantel", "96891230420")) == 1
    finally:
        await stack.stop()


@on_loop
async def test_a_message_refused_for_good_is_not_sent_by_its_other_parts_retry(tmp_path: Path) -> None:
    """A two-part reply: part 1 refused with a temporary error (a retry is scheduled), part 2 with
    a permanent one (the MT fails). The failure is final: the retry must not send it anyway."""
    from smsgw.smpp import constants as c

    stack = await start_stack(tmp_path, carriers=["omantel"], faults={"omantel": FaultPlan(
        error_every_nth_submit=(2, c.ESME_RINVDSTADR), submit_error_rate=1.0,
        submit_error_statuses=(c.ESME_RMSGQFUL,))})
    try:
        smsc = stack.smsc("omantel")
        smsc.inject_mo("96891230430", SHORT_CODE, "مساعدة")  # the Arabic help: several UCS2 parts

        async def failed() -> bool:
            return [state for state, _ in await outbound_rows(stack)] == ["failed"]

        await eventually(failed, timeout=5)
        submits = smsc.counters["submits"]
        assert submits >= 2  # parts, each refused once: none retried yet
        smsc.faults.update(error_every_nth_submit=None, submit_error_rate=0.0)
        await asyncio.sleep(2.5)  # past the first retry's backoff (about 1 s)
        assert smsc.counters["submits"] == submits and stack.handset("omantel", "96891230430") == []
        assert [reason for _, reason in await outbound_rows(stack)] == ["carrier refused: ESME_RINVDSTADR"]
    finally:
        await stack.stop()


@on_loop
async def test_a_feature_config_error_at_start_closes_the_store(tmp_path: Path) -> None:
    """A broken transactions.toml stops the start with the file, line and key named, and the
    store is closed again: its thread would otherwise keep the failed process from exiting."""
    import threading

    from twisted.internet import reactor

    from handlers import transactions
    from smsgw.gateway import Gateway
    from smsgw.store import StoreClosed
    from smsgw.tomlcheck import ConfigError
    from tests.stack import ROOT, make_config

    shipped = (ROOT / "config" / "transactions.toml").read_text(encoding="utf-8")
    broken = shipped.replace('default_carrier = "omantel"', 'default_carrier = "nawras"', 1)
    assert broken != shipped
    (tmp_path / "transactions.toml").write_text(broken, encoding="utf-8")
    config = make_config(tmp_path, carriers=["omantel"], path=str(tmp_path / "gateway.toml"))
    threads_before = set(threading.enumerate())
    gateway = Gateway(config, [transactions.FEATURE], reactor=reactor)
    with pytest.raises(ConfigError, match=r"transactions\.toml:\d+: notifications\.default_carrier"):
        await gateway.start()
    assert gateway.store is not None
    with pytest.raises(StoreClosed):
        await gateway.store.counts()
    await eventually(lambda: set(threading.enumerate()) <= threads_before)
