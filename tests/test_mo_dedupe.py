"""Redeliveries against reused carrier ids: what the gateway drops, and what it must never drop.

A redelivery is the same carrier MO id with the same sender, destination and text within the
window (smsgw/redelivery.py).  Carriers' ids repeat (a restarted counter, a simulator numbering from
its base again), so an id seen before is not enough.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from twisted.internet import task

from carriers.faults import FaultPlan
from carriers.profiles import OMANTEL
from carriers.smsc import Smsc
from tests.sim_helpers import PASSWORD, SYSTEM_ID
from tests.stack import CARRIERS, Stack, eventually, on_loop, start_stack

pytestmark = pytest.mark.usefixtures("store_engine")

HELP_CODE = "90091"
A, B, C, D, E = (f"9689100000{i}" for i in range(1, 6))


def _ids_of(stack: Stack, carrier: str) -> list[str]:
    return [mo.mo_id for mo in stack.smsc(carrier).mos]


@on_loop
async def test_restarts_whose_ids_repeat_still_answer_every_new_mo(tmp_path: Path) -> None:
    """Gateway and simulators restarted twice on the same store, the simulators numbering from
    their base each time (so MO ids repeat): every new MO is answered, none taken for a redelivery."""
    stack = await start_stack(tmp_path, faults={name: FaultPlan(ids_from_base=True) for name in CARRIERS})
    try:
        # stack.texts waits for the one reply each MO must get (and fails after 5 s without it).
        for number in (A, B):
            await stack.texts("omantel", number, HELP_CODE, "HELP")
        first_ids = _ids_of(stack, "omantel")
        await stack.restart_all()
        await stack.texts("omantel", C, HELP_CODE, "HELP")
        assert _ids_of(stack, "omantel")[0] == first_ids[0]  # the id did repeat
        await stack.restart_all()
        for number in (D, E):
            await stack.texts("omantel", number, HELP_CODE, "HELP")
        assert _ids_of(stack, "omantel") == first_ids
        assert stack.gateway.counters["mo_duplicate"] == 0
    finally:
        await stack.stop()


@on_loop
async def test_a_true_redelivery_is_still_dropped_and_a_reused_id_is_not(tmp_path: Path) -> None:
    """The same MO delivered twice (same id, same content) gets one answer; a different MO with
    that id (another number, another text) is answered."""
    stack = await start_stack(tmp_path)
    try:
        smsc = stack.smsc("ooredoo")
        since = len(smsc.handset_messages)
        smsc.inject_mo(A, HELP_CODE, "HELP", mo_id="777")
        smsc.inject_mo(A, HELP_CODE, "HELP", mo_id="777")
        await eventually(lambda: stack.gateway.counters["mo_duplicate"] == 1)
        smsc.inject_mo(B, HELP_CODE, "HELP", mo_id="777")
        smsc.inject_mo(A, HELP_CODE, "MY", mo_id="777")
        await eventually(lambda: len(stack.handset("ooredoo", B)) == 1 and len(stack.handset("ooredoo", A)) == 2)
        await asyncio.sleep(0.3)
        assert [m.msisdn for m in smsc.handset_messages[since:]].count(A) == 2
        assert stack.gateway.counters["mo_duplicate"] == 1
    finally:
        await stack.stop()


@on_loop
async def test_simulator_ids_do_not_repeat_across_restarts(tmp_path: Path) -> None:
    """Restarted (as `smsgw run` restarts them), the simulators give ids they never gave before."""
    stack = await start_stack(tmp_path)
    try:
        await stack.texts("friendi", A, HELP_CODE, "HELP")
        before = set(_ids_of(stack, "friendi")) | {mt.message_id for mt in stack.smsc("friendi").mts}
        await stack.restart_all()
        await stack.texts("friendi", B, HELP_CODE, "HELP")
        after = set(_ids_of(stack, "friendi")) | {mt.message_id for mt in stack.smsc("friendi").mts}
        assert before and after and not before & after
    finally:
        await stack.stop()


def test_counter_modes() -> None:
    """Ids count from the start time (later starts, higher ids, same width); `ids_from_base`
    numbers from the profile's base every time; `restart_counter` repeats this run's ids."""
    early, late = task.Clock(), task.Clock()
    early.advance(1_800_000_000.0)
    late.advance(1_800_000_000.5)
    def smsc(clock: task.Clock, **faults: bool) -> Smsc:
        return Smsc(OMANTEL, system_id=SYSTEM_ID, password=PASSWORD, clock=clock, wait_clock=clock,
                    faults=FaultPlan(**faults))

    first, second = smsc(early), smsc(late)
    ids_first = [first.inject_mo(A, HELP_CODE, f"HELP {i}") for i in range(3)]
    ids_second = [second.inject_mo(A, HELP_CODE, f"HELP {i}") for i in range(3)]
    assert int(ids_second[0], 16) - int(ids_first[0], 16) == 500  # half a second later, 500 ids on
    based = [smsc(late, ids_from_base=True) for _ in range(2)]
    assert [s.inject_mo(A, HELP_CODE, "HELP") for s in based] == [f"{OMANTEL.id_base + 1:x}"] * 2
    second.restart_counter()
    assert [second.inject_mo(B, HELP_CODE, "MY") for _ in range(3)] == ids_second
