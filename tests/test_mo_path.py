"""The MO path's order over real loopback SMPP: commit, then deliver_sm_resp, then the handler;
and what the SMSC is told when accepting fails in a way nobody planned for."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from smsgw.config import RouteConfig
from smsgw.feature import Feature
from smsgw.message import Request
from smsgw.smpp import constants as c
from smsgw.smpp.pdu import Pdu
from tests.stack import eventually, on_loop, start_stack, wait

SHORT_CODE = "90091"


class GatedHandler:
    """Answers only when the test opens the gate, so the test can look at the MO before that."""

    gate: asyncio.Future[None] | None = None
    seen: list[str] = []

    def __init__(self, _ctx: object) -> None:
        pass

    async def handle(self, req: Request) -> list:
        GatedHandler.seen.append(req.inbound.text)
        assert GatedHandler.gate is not None
        await GatedHandler.gate
        return [req.reply("done")]


GATED = Feature(name="gated", handlers={"gated": GatedHandler})
GATED_ROUTE = RouteConfig(keyword="GATE", aliases=(), handler="gated", short_codes=())


async def inbound_rows(stack: Any) -> list[tuple[str, Any]]:
    return await stack.gateway.store.read(
        lambda conn: [tuple(row) for row in conn.execute("SELECT text, processed_at FROM inbound ORDER BY id")]
    )


@on_loop
async def test_mo_is_answered_once_committed_without_waiting_for_its_handler(tmp_path: Path) -> None:
    GatedHandler.gate = asyncio.get_running_loop().create_future()
    GatedHandler.seen = []
    stack = await start_stack(tmp_path, carriers=["omantel"], features=[GATED], routes=[GATED_ROUTE])
    try:
        smsc = stack.smsc("omantel")
        mo_id = smsc.inject_mo("96891230500", SHORT_CODE, "GATE one")
        await eventually(lambda: smsc.mo(mo_id).acked)
        # Acknowledged: the row is committed, and stays unprocessed while the handler waits.
        assert await inbound_rows(stack) == [("GATE one", None)]
        await eventually(lambda: GatedHandler.seen == ["GATE one"])
        assert stack.handset("omantel", "96891230500") == []
        GatedHandler.gate.set_result(None)
        [reply] = await wait(smsc.wait_handset("96891230500", 1, since_index=0))
        assert reply.text == "done"
        [(text, processed_at)] = await inbound_rows(stack)
        assert processed_at is not None
    finally:
        if not GatedHandler.gate.done():
            GatedHandler.gate.set_result(None)
        await stack.stop()


@on_loop
async def test_unexpected_error_while_accepting_is_answered_0x64_and_the_next_mo_is_served(tmp_path: Path) -> None:
    """A bug in accepting one MO: the SMSC is told to keep it (ESME_RX_T_APPN), nothing is
    stored for it, and the link goes on serving."""
    stack = await start_stack(tmp_path, carriers=["omantel"])
    try:
        gateway = stack.gateway
        real = gateway._read_mo
        calls = {"n": 0}

        def broken_once(carrier: Any, pdu: Any, now: float) -> Any:
            calls["n"] += 1
            if calls["n"] == 1:
                raise RuntimeError("unplanned")
            return real(carrier, pdu, now)

        gateway._read_mo = broken_once  # type: ignore[method-assign]
        smsc = stack.smsc("omantel")
        mo_id = smsc.inject_mo("96891230510", SHORT_CODE, "HELP")
        await eventually(lambda: c.ESME_RX_T_APPN in smsc.mo(mo_id).statuses)
        assert await inbound_rows(stack) == []
        [reply] = await stack.send("omantel", "96891230511", SHORT_CODE, "HELP")
        assert reply.text
        assert gateway.counters["processed"] == 1
    finally:
        await stack.stop()


def _deliver_sm(sequence: int, msisdn: str, text: str) -> Pdu:
    return Pdu(c.DELIVER_SM, sequence, c.ESME_ROK, {
        "source_addr": msisdn, "destination_addr": SHORT_CODE, "esm_class": 0, "data_coding": 0,
        "short_message": text.encode(),
    })


@on_loop
async def test_deliver_sms_of_one_turn_are_committed_together_and_answered_after_the_commit(tmp_path: Path) -> None:
    """What the links hand over in one reactor turn (here five deliver_sm and a malformed one) is one
    batch: one write group in one commit, every answer after it and in the same turn, then the
    replies of all five committed as one group; the malformed one is refused alone."""
    GatedHandler.gate = asyncio.get_running_loop().create_future()
    GatedHandler.seen = []
    stack = await start_stack(tmp_path, carriers=["omantel"], features=[GATED], routes=[GATED_ROUTE])
    try:
        gateway, store = stack.gateway, stack.gateway.store
        batches: list[int] = []
        run_batch = store.engine.run_batch

        async def counting(ops: Any) -> Any:  # the real engine, its batch sizes noted
            batches.append(sum(1 for op in ops if getattr(op, "func", None) == store._op_accept_mo))
            return await run_batch(ops)

        store.engine.run_batch = counting  # type: ignore[method-assign]
        on_deliver = gateway._deliver_callback(gateway.carriers["omantel"])
        answers = [on_deliver(_deliver_sm(100 + i, f"9689123060{i}", f"GATE {i}")) for i in range(5)]
        refused = on_deliver(_deliver_sm(200, "", "GATE nobody"))  # no source address
        assert not any(d.called for d in answers + [refused])  # nothing answered before its commit
        first = answers[0]
        statuses = await asyncio.gather(*(d.asFuture(asyncio.get_running_loop()) for d in answers))
        assert statuses == [c.ESME_ROK] * 5
        assert first.called and refused.called
        assert refused.result == c.ESME_RINVSRCADR
        assert [n for n in batches if n] == [5]  # one group of five accepts, in one transaction
        assert [text for text, _ in await inbound_rows(stack)] == [f"GATE {i}" for i in range(5)]
        await eventually(lambda: len(GatedHandler.seen) == 5)
        GatedHandler.gate.set_result(None)
        for i in range(5):
            [reply] = await wait(stack.smsc("omantel").wait_handset(f"9689123060{i}", 1, since_index=0))
            assert reply.text == "done"
        assert all(processed_at is not None for _, processed_at in await inbound_rows(stack))
        assert gateway.counters["processed"] == 5
    finally:
        if not GatedHandler.gate.done():
            GatedHandler.gate.set_result(None)
        await stack.stop()
