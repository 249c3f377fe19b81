"""The simulator faults and control ops that chaos, soak and fuzz runs drive, over real loopback.

Driven by the minimal test ESME of tests/sim_helpers.py (not the gateway's session), as the other
simulator tests are.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import defer, reactor, task

from carriers.control import ControlClient, ControlServer
from carriers.faults import FaultPlan
from smsgw.smpp import constants as c
from tests.sim_helpers import WAIT, Harness

MSISDN = "96891234567"


@pytest_twisted.async_yield_fixture
async def harness() -> Any:
    h = Harness()
    yield h
    await h.close()


def test_new_faults_validate_and_travel_as_json() -> None:
    """Random-error, slow-reader and hung faults are checked like the others and come back from
    as_dict in a JSON-ready form."""
    plan = FaultPlan()
    plan.update(submit_error_rate=0.25, submit_error_statuses=[0x14, 0x45], read_bytes_per_s=500, hung=True)
    assert plan.as_dict()["submit_error_statuses"] == [0x14, 0x45]
    assert plan.submit_error_statuses == (0x14, 0x45)
    for bad in ({"submit_error_rate": 1.5}, {"submit_error_statuses": []}, {"submit_error_statuses": [0]},
                {"read_bytes_per_s": 0}):
        with pytest.raises(ValueError):
            plan.update(**bad)
    assert plan.submit_error_rate == 0.25  # a refused update changes nothing


@pytest_twisted.ensureDeferred
async def test_random_submit_errors_follow_the_rate_and_the_seed(harness: Harness) -> None:
    """submit_error_rate=0.5 answers about half the submits with the listed statuses, drawn from
    the SMSC's seeded RNG, and accepts only the others."""
    smsc = await harness.smsc("omantel", tps=10_000,
                              faults=FaultPlan(submit_error_rate=0.5, submit_error_statuses=(0x14, 0x45)))
    esme = await harness.bound(smsc)
    resps = await defer.gatherResults([esme.submit(MSISDN) for _ in range(200)])
    statuses = [r.status for r in resps]
    assert set(statuses) == {0, 0x14, 0x45}
    assert 60 <= statuses.count(0) <= 140
    assert len(smsc.mts) == statuses.count(0) and smsc.counters["injected_errors"] == 200 - statuses.count(0)


@pytest_twisted.ensureDeferred
async def test_hung_smsc_answers_nothing_until_it_recovers(harness: Harness) -> None:
    """hung=True: the SMSC stops reading, so not even enquire_link is answered, while the link
    stays up; switched off, it reads what waited and answers all of it in order."""
    smsc = await harness.smsc("omantel")
    esme = await harness.bound(smsc)
    smsc.faults.update(hung=True)
    submitted = esme.submit(MSISDN)
    synced = esme.sync()
    await task.deferLater(reactor, 0.3, lambda: None)
    assert not submitted.called and not synced.called and smsc.mts == []
    assert not esme.closed.called
    smsc.faults.update(hung=False)
    assert (await submitted.addTimeout(WAIT, reactor)).status == c.ESME_ROK
    assert (await synced.addTimeout(WAIT, reactor)).status == c.ESME_ROK


@pytest_twisted.ensureDeferred
async def test_records_tell_which_link_a_part_came_on_and_which_links_ended(harness: Harness) -> None:
    """The hung SMSC's own account of the gateway's unknown-outcome window: the ESME gives up on
    the silent link and resends on a new one; once the SMSC reads again it still takes the first
    copy. Its records show the two copies on links 1 and 2, and link 1 ended."""
    smsc = await harness.smsc("omantel")
    first = await harness.bound(smsc)
    smsc.faults.update(hung=True)
    first.submit(MSISDN, b"parking booked")
    await task.deferLater(reactor, 0.2, lambda: None)
    first.transport.loseConnection()  # what the gateway does with a link that stopped answering
    smsc.faults.update(hung=False)
    second = await harness.bound(smsc)
    resend = await second.submit(MSISDN, b"parking booked").addTimeout(WAIT, reactor)
    assert resend.status == c.ESME_ROK
    deadline = time.monotonic() + WAIT
    while len(smsc.mts) < 2 and time.monotonic() < deadline:
        await task.deferLater(reactor, 0.02, lambda: None)
    records = smsc.records()
    assert sorted(mt["link"] for mt in records["mts"]) == [1, 2]
    assert len({mt["digest"] for mt in records["mts"]}) == 1
    assert list(records["links_lost"]) == ["1"]


@pytest_twisted.ensureDeferred
async def test_slow_reader_paces_what_it_reads(harness: Harness) -> None:
    """read_bytes_per_s=4000: about 10 kB of submits take a couple of seconds to be read, not
    milliseconds, and every one is still answered."""
    smsc = await harness.smsc("omantel", tps=10_000)
    esme = await harness.bound(smsc)
    smsc.faults.update(read_bytes_per_s=4000.0)
    start = time.monotonic()
    resps = await defer.gatherResults([esme.submit(MSISDN, b"x" * 60) for _ in range(100)]).addTimeout(30, reactor)
    elapsed = time.monotonic() - start
    assert all(r.status == c.ESME_ROK for r in resps)
    assert 1.5 <= elapsed <= 6.0  # ~10 kB written at 4 kB/s


async def _control(server: ControlServer, request: dict[str, Any]) -> dict[str, Any]:
    port = await server.listen(reactor, "127.0.0.1", 0)
    try:
        client = await ControlClient.connect(reactor, "127.0.0.1", port.getHost().port)
        events = await client.request(request)
        await client.close()
        return events[-1]
    finally:
        await server.stop()


@pytest_twisted.ensureDeferred
async def test_control_inject_records_and_drop(harness: Harness) -> None:
    """`inject` queues many MOs at once without waiting; `records` reports each MO, each accepted
    part (with a digest of its bytes) and each handset message; `drop` cuts every ESME link."""
    smsc = await harness.smsc("omantel")
    esme = await harness.bound(smsc)
    answer = await _control(ControlServer({"omantel": smsc}), {"op": "inject", "mos": [
        {"carrier": "omantel", "from": "96891000001", "to": "90091", "text": "HELP"},
        {"carrier": "omantel", "from": "96891000002", "to": "90092", "text": "STATUS 1"}]})
    assert answer["event"] == "ok" and len(answer["mo_ids"]) == 2
    await esme.next_of(c.DELIVER_SM)
    await esme.next_of(c.DELIVER_SM)
    await esme.submit("96891000001", b"hello")
    await esme.submit("96891000001", b"hello")  # the same part twice: same digest
    records = (await _control(ControlServer({"omantel": smsc}), {"op": "records"}))["carriers"]["omantel"]
    assert [(m["mo_id"], m["acked"]) for m in records["mos"]] == [(i, True) for i in answer["mo_ids"]]
    digests = [mt["digest"] for mt in records["mts"]]
    assert len(digests) == 2 and digests[0] == digests[1]
    assert [m["msisdn"] for m in records["handset"]] == ["96891000001", "96891000001"]
    dropped = await _control(ControlServer({"omantel": smsc}), {"op": "drop", "carrier": "omantel"})
    assert dropped["sessions"] == 1
    await esme.closed.addTimeout(WAIT, reactor)


@pytest_twisted.ensureDeferred
async def test_control_inject_refuses_a_bad_batch_whole(harness: Harness) -> None:
    """A batch with one bad MO injects none of them."""
    smsc = await harness.smsc("omantel")
    answer = await _control(ControlServer({"omantel": smsc}), {"op": "inject", "mos": [
        {"carrier": "omantel", "from": "96891000001", "to": "90091", "text": "HELP"},
        {"carrier": "nowhere", "from": "96891000002", "to": "90091", "text": "HELP"}]})
    assert answer["event"] == "error" and smsc.mos == []
