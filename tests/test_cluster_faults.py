"""The database's faults as nodes see them, over real TCP to the simulators: a node cut off from
the database while still bound to the SMSCs lets its binds go before its lease can pass, and
another node takes them; the database restarted under load loses nothing and answers nothing
twice."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import psycopg

from scripts.pgserver import PgServer
from scripts.tcpcut import TcpCutter
from tests.cluster_support import start_cluster
from tests.stack import CARRIERS, eventually, on_loop

HELP = "90091"
DOWN_S = 4.0


def replies_per_mo(url: str) -> dict[int, int]:
    with psycopg.connect(url, autocommit=True) as conn:
        return dict(conn.execute(
            "SELECT i.id, COUNT(o.id) FROM inbound AS i LEFT JOIN outbound AS o ON o.inbound_id = i.id"
            " GROUP BY i.id").fetchall())


@on_loop
async def test_a_node_cut_off_from_the_database_lets_its_binds_go_first(
    tmp_path: Path, pg_server: PgServer, pg_url: str
) -> None:
    """n1 holds every bind and loses the database (its connections dropped, new ones refused):
    it cuts its binds before its lease passes, n2 binds in its place (the SMSCs never see a bind
    beyond the account's limit), and MOs sent meanwhile are all answered once."""
    relay = TcpCutter("127.0.0.1", pg_server.port).start()
    relayed = pg_url.replace(f":{pg_server.port}/", f":{relay.port}/")
    cluster = await start_cluster(tmp_path, relayed, nodes=1)
    try:
        n2 = await cluster.start_node("n2", url=pg_url)
        n1 = cluster.node("n1")
        assert all(cluster.holders(c) == ["n1"] for c in CARRIERS)
        cut_at = time.monotonic()
        relay.cut("drop")
        await eventually(lambda: n1.cluster.fenced, timeout=5)
        fenced_after = time.monotonic() - cut_at
        await eventually(lambda: all(cluster.bound_nodes(c) == ["n2"] for c in CARRIERS), timeout=15)
        took = time.monotonic() - cut_at
        assert fenced_after < cluster.config.cluster.lease_s, fenced_after
        assert took <= 10.0, took
        for i, carrier in enumerate(CARRIERS * 4):
            [reply] = await cluster.send(carrier, f"9689200{i:04d}", HELP, "HELP")
            assert "90091" in reply.text
        for carrier in CARRIERS:
            smsc = cluster.smsc(carrier)
            assert smsc.counters["binds_over_limit"] == 0 and smsc.peak_binds == 1, carrier
        # Back on the network: n1 starts again as a new incarnation, binding nothing n2 holds.
        relay.restore()
        await eventually(lambda: not n1.cluster.fenced, timeout=15)
        assert n1.cluster.resets == 1
        assert all(cluster.bound_nodes(c) == ["n2"] for c in CARRIERS)
        assert n2.runs_jobs() and not n1.runs_jobs()
        assert all(n <= 1 for n in replies_per_mo(pg_url).values())
    finally:
        await cluster.stop()
        relay.stop()


@on_loop
async def test_the_database_restarted_under_load(tmp_path: Path) -> None:
    """Two nodes under steady traffic; the database restarts (down about a second): MOs the
    carriers redeliver meanwhile are answered after, every MO once, no bind doubled."""
    server = PgServer().start()
    try:
        url = server.create_database("restart")
        cluster = await start_cluster(tmp_path, url, nodes=2)
        try:
            sent: list[tuple[str, str]] = []

            async def traffic(n: int, prefix: str) -> None:
                for i in range(n):
                    carrier = CARRIERS[i % 3]
                    msisdn = f"968{prefix}{i:05d}"
                    cluster.smsc(carrier).inject_mo(msisdn, HELP, "HELP")
                    sent.append((carrier, msisdn))
                    await asyncio.sleep(0.01)

            load = asyncio.ensure_future(traffic(300, "931"))
            await asyncio.sleep(1.0)
            await asyncio.get_running_loop().run_in_executor(None, lambda: server.restart("fast", down_s=DOWN_S))
            await load
            await traffic(30, "932")
            for carrier, msisdn in sent:
                await eventually(
                    lambda c=carrier, m=msisdn: any(h.msisdn == m for h in cluster.smsc(c).handset_messages),
                    timeout=30)
            await asyncio.sleep(1.0)
            counts = replies_per_mo(url)
            assert len(counts) >= len(sent) and all(n <= 1 for n in counts.values())
            for carrier, msisdn in sent:
                copies = [h for h in cluster.smsc(carrier).handset_messages if h.msisdn == msisdn]
                assert len(copies) in (1, 2), (msisdn, len(copies))  # 2: the documented lost-link window
            for carrier in CARRIERS:
                assert cluster.smsc(carrier).counters["binds_over_limit"] == 0
        finally:
            await cluster.stop()
    finally:
        server.destroy()


@on_loop
async def test_no_submit_once_the_lease_may_have_passed_even_before_the_fence_timer(
    tmp_path: Path, pg_url: str
) -> None:
    """A node's process stood still longer than its lease (SIGSTOP, a paused VM): on waking, the
    event loop runs the timers that fell due in its own order, and a pacing timer may pump before
    the fence timer fires.  Here the fence's monotonic clock jumps an hour (no timer has run) and
    the sender pumps a waiting reply at once: it submits nothing, and the node fences itself on
    the spot.  Back on the real clock (the lease had not really passed) it sends the reply once."""
    cluster = await start_cluster(tmp_path, pg_url, nodes=1, carriers=["omantel"])
    try:
        node = cluster.node("n1")
        assert node.cluster is not None and node.queue is not None
        sender = node.queue.senders["omantel"]
        smsc = cluster.smsc("omantel")
        sender.pause()  # the reply waits in memory, as a paced one would
        since = len(smsc.handset_messages)
        smsc.inject_mo("96891230777", HELP, "HELP")
        await eventually(lambda: sender.held == 1)
        submitted = sender.stats.submitted
        node.cluster.monotonic = lambda: time.monotonic() + 3600.0  # woken an hour later
        sender.resume()  # pumps now, before any timer
        assert sender.stats.submitted == submitted
        assert node.cluster.fenced and sender.fenced
        node.cluster.monotonic = time.monotonic
        await eventually(lambda: not node.cluster.fenced and cluster.bound_nodes("omantel") == ["n1"], timeout=10)
        await eventually(lambda: len(smsc.handset_messages) > since, timeout=10)
        await asyncio.sleep(0.5)
        assert [m.msisdn for m in smsc.handset_messages[since:]] == ["96891230777"]
        assert node.cluster.fences == 1 and node.cluster.resets == 0
    finally:
        await cluster.stop()


@on_loop
async def test_a_lost_slot_of_a_carrier_with_two_binds_goes_to_the_node_without_one(
    tmp_path: Path, pg_server: PgServer, pg_url: str
) -> None:
    """Omantel allows two binds; n1 and n2 hold one each, n3 none.  n1 is cut off from the
    database: its slot goes to n3, never as a second slot to n2, and the SMSC never sees more
    than its two binds."""
    relay = TcpCutter("127.0.0.1", pg_server.port).start()
    relayed = pg_url.replace(f":{pg_server.port}/", f":{relay.port}/")
    cluster = await start_cluster(tmp_path, relayed, nodes=1, carriers=["omantel"], max_binds={"omantel": 2})
    try:
        await cluster.start_node("n2", url=pg_url)
        await eventually(lambda: sorted(cluster.bound_nodes("omantel")) == ["n1", "n2"], timeout=10)
        n3 = await cluster.start_node("n3", url=pg_url)
        await asyncio.sleep(1.0)  # a few heartbeats: both slots are taken, n3 waits
        assert n3.cluster is not None and n3.cluster.slots == {}
        relay.cut("drop")
        await eventually(lambda: sorted(cluster.bound_nodes("omantel")) == ["n2", "n3"], timeout=15)
        await asyncio.sleep(1.0)  # n2 keeps beating beside a free slot it must not take
        with psycopg.connect(pg_url, autocommit=True) as conn:
            held = sorted(conn.execute("SELECT node, slot FROM bind_lease WHERE node <> 'n1'").fetchall())
        assert held == [("n2", 1), ("n3", 0)], held
        smsc = cluster.smsc("omantel")
        assert smsc.peak_binds == 2 and smsc.counters["binds_over_limit"] == 0
        [reply] = await cluster.send("omantel", "96891230888", HELP, "HELP")
        assert "90091" in reply.text
    finally:
        await cluster.stop()
        relay.stop()


@on_loop
async def test_an_mo_whose_reply_could_not_be_committed_is_processed_again_without_a_restart(
    tmp_path: Path, pg_url: str
) -> None:
    """The database fails the commit of an MO's reply (as a restart does to whatever is under
    way) after the MO was stored and acknowledged: the carrier will not send it again, and no
    other node takes over an MO whose node is alive.  The node processes it again once the store
    answers, not at its next start, and the handset gets one reply."""
    cluster = await start_cluster(tmp_path, pg_url, nodes=1, carriers=["omantel"])
    try:
        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute("CREATE SEQUENCE completions")
            # The first completion fails as a connection to a server shutting down fails.
            conn.execute("""CREATE FUNCTION fail_first_completion() RETURNS trigger LANGUAGE plpgsql AS $$
                            BEGIN
                              IF nextval('completions') = 1 THEN
                                RAISE EXCEPTION 'terminating connection' USING ERRCODE = '57P01';
                              END IF;
                              RETURN NEW;
                            END $$""")
            conn.execute("CREATE TRIGGER fail_first_completion BEFORE UPDATE ON inbound FOR EACH ROW"
                         " WHEN (OLD.processed_at IS NULL AND NEW.processed_at IS NOT NULL)"
                         " EXECUTE FUNCTION fail_first_completion()")
        [reply] = await cluster.send("omantel", "96891230999", HELP, "HELP", timeout=15)
        assert "90091" in reply.text
        await asyncio.sleep(1.0)
        assert len(cluster.handset("omantel", "96891230999")) == 1
        with psycopg.connect(pg_url, autocommit=True) as conn:
            assert conn.execute("SELECT last_value FROM completions").fetchone()[0] == 2  # failed once
            conn.execute("CREATE OR REPLACE FUNCTION fail_first_completion() RETURNS trigger LANGUAGE plpgsql AS $$"
                         " BEGIN RAISE EXCEPTION 'terminating connection' USING ERRCODE = '57P01'; END $$")
        assert list(replies_per_mo(pg_url).values()) == [1]
        # A store that keeps failing: the MO waits, and a stop does not wait for it (the next
        # start takes it up).
        node = cluster.node("n1")
        cluster.smsc("omantel").inject_mo("96891230998", HELP, "HELP")
        await eventually(lambda: len(node._retry_waits) == 1, timeout=10)
        started = time.monotonic()
        await cluster.stop_node("n1")
        assert time.monotonic() - started < 2.0
        assert sorted(replies_per_mo(pg_url).values()) == [0, 1]
    finally:
        await cluster.stop()


@on_loop
async def test_replies_committed_though_the_commit_seemed_to_fail_are_sent(tmp_path: Path, pg_url: str) -> None:
    """The connection drops after PostgreSQL committed an MO's completion but before the node
    heard so: the node processes the MO again, finds it done, and sends the replies that commit
    stored (claimed by this node, so nobody else would while it lives) — once."""
    cluster = await start_cluster(tmp_path, pg_url, nodes=1, carriers=["omantel"])
    try:
        engine = cluster.node("n1").store.engine
        committed = engine.run_batch
        lost = []

        async def answer_lost_after_commit(ops):  # type: ignore[no-untyped-def]
            outcomes = await committed(ops)  # the real engine commits the batch
            if not lost and any(getattr(getattr(op, "func", None), "__name__", "") == "_op_complete_mo" for op in ops):
                lost.append(len(ops))
                raise psycopg.OperationalError("server closed the connection unexpectedly")
            return outcomes

        engine.run_batch = answer_lost_after_commit
        [reply] = await cluster.send("omantel", "96891230997", HELP, "HELP", timeout=15)
        assert "90091" in reply.text and lost
        await asyncio.sleep(1.0)
        assert len(cluster.handset("omantel", "96891230997")) == 1
        assert list(replies_per_mo(pg_url).values()) == [1]
    finally:
        await cluster.stop()
