"""A node's lease, one heartbeat at a time, on a real PostgreSQL: the database's decisions about
who holds what (smsgw/cluster.py), and the fence, on a clock the test drives.

Heartbeats are called one by one (the members' timers run on task.Clocks nobody advances
unless a test means it).  Where a test needs one node's transaction to stand still at a chosen
point, a trigger it installs makes that statement wait on an advisory lock the test holds: the
interleaving is then forced, not hoped for."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
import pytest_twisted
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock

from smsgw.cluster import JOBS_ROLE, SCHEMA as CLUSTER_SCHEMA, ClusterMember, ClusterSettings
from smsgw.store import NewMo, NewMt, Store
from smsgw.store.postgres import PostgresEngine
from tests.stack import eventually, on_loop

SETTINGS = ClusterSettings(lease_s=6.0, heartbeat_s=1.5, fence_margin_s=1.5)
#: The advisory lock the test holds while a node's statement, stopped by a trigger, waits on it.
GATE = 4242


class Members:
    """ClusterMembers on one database, each with its own engine, timers on a task.Clock and the
    fence on another (`mono`), so a test decides when each runs."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.made: list[ClusterMember] = []

    async def add(self, name: str, carriers: dict[str, int], settings: ClusterSettings = SETTINGS,
                  mono: Clock | None = None) -> ClusterMember:
        engine = await PostgresEngine.open(self.url, application_name=f"lease-{name}")
        mono = mono or Clock()
        member = ClusterMember(engine, name, settings, Clock(), lambda: dict(carriers), monotonic=mono.seconds)
        member.test_mono = mono  # type: ignore[attr-defined]
        await member.join()
        self.made.append(member)
        return member

    async def close(self) -> None:
        for member in self.made:
            await member.engine.close()


async def schema(url: str) -> Store:
    """The store's tables and the cluster's, as a gateway creates them."""
    return await Store.open(url, components=[CLUSTER_SCHEMA], node="setup")


def sql(url: str, statement: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    with psycopg.connect(url, autocommit=True) as conn:
        cur = conn.execute(statement, params)
        return cur.fetchall() if cur.description is not None else []


def waiting_on_a_lock(url: str, name: str) -> bool:
    """The member's connection is waiting for a lock (a row's, an advisory one) right now."""
    return bool(sql(url, "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s"
                         " AND wait_event_type = 'Lock'", (f"lease-{name}",))[0][0])


def hold_writes_of(url: str, table: str, column: str, value: str) -> None:
    """A trigger: a row of `table` written with `column` = value waits, inside the writer's
    transaction (row written, not committed), until the test lets the GATE go."""
    sql(url, f"""CREATE OR REPLACE FUNCTION hold_{table}() RETURNS trigger LANGUAGE plpgsql AS $$
                 BEGIN
                   IF NEW.{column} = '{value}' THEN PERFORM pg_advisory_xact_lock({GATE}); END IF;
                   RETURN NEW;
                 END $$""")
    sql(url, f"CREATE TRIGGER hold_{table} AFTER INSERT OR UPDATE ON {table}"
             f" FOR EACH ROW EXECUTE FUNCTION hold_{table}()")


async def past(url: str, at: float) -> None:
    """Until the database's clock has passed `at`."""
    await eventually(lambda: sql(url, "SELECT EXTRACT(EPOCH FROM clock_timestamp())::float8 > %s", (at,))[0][0],
                     timeout=5, interval=0.05)


def expire_soon(url: str, name: str, in_s: float) -> float:
    """Bring the node's lease end to `in_s` from now (as if its last heartbeat was long ago)."""
    [(at,)] = sql(url, "UPDATE cluster_node SET expires_at = EXTRACT(EPOCH FROM clock_timestamp())::float8 + %s"
                       " WHERE name = %s RETURNING expires_at", (in_s, name))
    return float(at)


class Gate:
    """The advisory lock the triggers wait on, held by a session of the test's own."""

    def __init__(self, url: str) -> None:
        self.conn = psycopg.connect(url, autocommit=True)
        self.conn.execute("SELECT pg_advisory_lock(%s)", (GATE,))

    def open(self) -> None:
        self.conn.execute("SELECT pg_advisory_unlock(%s)", (GATE,))
        self.conn.close()


@pytest.fixture
def members(pg_url: str) -> Iterator[Members]:
    made = Members(pg_url)
    yield made
    pytest_twisted.blockon(Deferred.fromFuture(asyncio.ensure_future(made.close())))


def holders(url: str) -> tuple[dict[tuple[str, int], str], str | None]:
    """What the database says: (carrier, slot) → node, and the jobs role's node."""
    slots = {(c, s): n for c, s, n in sql(url, "SELECT carrier, slot, node FROM bind_lease")}
    role = sql(url, "SELECT node FROM cluster_role WHERE role = %s", (JOBS_ROLE,))
    return slots, role[0][0] if role else None


# ------------------------------------------------------------------ decisions on the latest leases


@on_loop
async def test_a_renewal_committed_after_the_other_nodes_snapshot_keeps_its_slot_and_role(
    pg_url: str, members: Members
) -> None:
    """a holds omantel's one slot and the jobs role.  Its heartbeat renews (before its old lease
    end) and stands still before committing; b's heartbeat starts after that old lease end, so
    the lease b can see in a snapshot has passed.  b must not take the slot or the role: a's
    renewal succeeds and a goes on holding both.  (Decided on a snapshot taken before a's
    commit, b took both, and two nodes were bound on one slot until a's next heartbeat.)"""
    store = await schema(pg_url)
    await store.close()
    a = await members.add("a", {"omantel": 1})
    b = await members.add("b", {"omantel": 1})
    assert await a.heartbeat() and await b.heartbeat()
    assert (a.slots, a.jobs, b.slots, b.jobs) == ({"omantel": 0}, True, {}, False)

    ends = expire_soon(pg_url, "a", 1.0)
    hold_writes_of(pg_url, "cluster_role", "node", "a")  # a stops after its renewal and slot read
    gate = Gate(pg_url)
    try:
        beat_a = asyncio.ensure_future(a.heartbeat())
        await eventually(lambda: waiting_on_a_lock(pg_url, "a"))
        await past(pg_url, ends)
        beat_b = asyncio.ensure_future(b.heartbeat())
        await eventually(lambda: beat_b.done() or waiting_on_a_lock(pg_url, "b"))
    finally:
        gate.open()
    assert await beat_a is True and await beat_b is True
    assert (a.slots, a.jobs) == ({"omantel": 0}, True)
    assert (b.slots, b.jobs) == ({}, False)
    assert holders(pg_url) == ({("omantel", 0): "a"}, "a")


@on_loop
async def test_claims_and_orphans_of_a_node_whose_renewal_is_under_way_stay_its_own(
    pg_url: str, members: Members
) -> None:
    """a has a queued MT claimed and an MO it accepted but has not answered.  Its renewal is
    written (before its old lease end) and stands still before committing; after that old end,
    b looks for MTs nobody alive has claimed and for MOs a dead node left: it must find neither
    of a's (a's renewal commits: a sends that MT and answers that MO itself)."""
    store = await schema(pg_url)
    try:
        a = await members.add("a", {"omantel": 1})
        b = await members.add("b", {"omantel": 1})
        assert await a.heartbeat() and await b.heartbeat()
        store.claim_for = lambda carrier, channel: a.incarnation
        store.node_tag = lambda: a.incarnation
        mt = await store.enqueue_mt(NewMt("omantel", "96891234567", "90091", "hello", 1.0, 4e9))
        assert mt.claimed_by == a.incarnation
        inbound, _ = await store.accept_mo(NewMo("omantel", "m1", "96891234567", "90091", "HELP", 0, 1.0))
        assert inbound is not None

        ends = expire_soon(pg_url, "a", 1.0)
        hold_writes_of(pg_url, "cluster_node", "name", "a")  # a stops right after its renewal
        gate = Gate(pg_url)
        try:
            beat_a = asyncio.ensure_future(a.heartbeat())
            await eventually(lambda: waiting_on_a_lock(pg_url, "a"))
            await past(pg_url, ends)
            claimed = asyncio.ensure_future(b.claim("omantel", 10, 100))
            adopted = asyncio.ensure_future(b.adopt_orphan_mos(float("inf")))
            await eventually(lambda: (claimed.done() and adopted.done()) or waiting_on_a_lock(pg_url, "b"))
        finally:
            gate.open()
        assert await beat_a is True
        assert await claimed == [] and await adopted == []
        assert sql(pg_url, "SELECT claimed_by FROM outbound WHERE id = %s", (mt.id,)) == [(a.incarnation,)]
        assert sql(pg_url, "SELECT node FROM inbound WHERE id = %s", (inbound.id,)) == [(a.incarnation,)]
    finally:
        await store.close()


@on_loop
async def test_a_renewal_after_another_node_judged_the_lease_passed_fails(pg_url: str, members: Members) -> None:
    """The other order: b decides (a's lease has passed) and stands still before committing;
    a's heartbeat, started meanwhile, must not renew the lease b judged passed: a starts again
    as a new incarnation, and the slot is b's."""
    store = await schema(pg_url)
    await store.close()
    a = await members.add("a", {"omantel": 1})
    b = await members.add("b", {"omantel": 1})
    assert await a.heartbeat() and await b.heartbeat()
    old = a.incarnation
    ends = expire_soon(pg_url, "a", 0.3)
    await past(pg_url, ends)
    hold_writes_of(pg_url, "bind_lease", "node", "b")  # b stops once it has written the slot
    gate = Gate(pg_url)
    try:
        beat_b = asyncio.ensure_future(b.heartbeat())
        await eventually(lambda: waiting_on_a_lock(pg_url, "b"))
        beat_a = asyncio.ensure_future(a.heartbeat())
        await eventually(lambda: beat_a.done() or waiting_on_a_lock(pg_url, "a"))
    finally:
        gate.open()
    assert await beat_b is True and await beat_a is False
    assert b.slots == {"omantel": 0} and a.slots == {} and a.resets == 1 and a.incarnation != old
    await eventually(lambda: a._joined)
    assert await a.heartbeat() and a.slots == {}  # the new incarnation takes nothing b holds
    assert holders(pg_url)[0] == {("omantel", 0): "b"}


# ------------------------------------------------------------------ slots of a carrier with several binds


@on_loop
async def test_a_dead_nodes_slot_goes_to_the_node_without_one(pg_url: str, members: Members) -> None:
    """omantel allows two binds; a and b hold one each, c none.  a dies (no more heartbeats):
    once its lease has passed, b (which already holds a slot) takes no second one, whatever the
    order of the heartbeats, and c takes a's."""
    store = await schema(pg_url)
    await store.close()
    quick = ClusterSettings(lease_s=1.0, heartbeat_s=0.25, fence_margin_s=0.25)
    a = await members.add("a", {"omantel": 2}, quick)
    b = await members.add("b", {"omantel": 2}, quick)
    c = await members.add("c", {"omantel": 2}, quick)
    for member in (a, b, c):
        assert await member.heartbeat()
    assert (a.slots, b.slots, c.slots) == ({"omantel": 0}, {"omantel": 1}, {})
    [(ends,)] = sql(pg_url, "SELECT expires_at FROM cluster_node WHERE name = 'a'")
    for _ in range(3):  # b and c keep beating while a's lease runs out
        await asyncio.sleep(0.3)
        assert await b.heartbeat() and await c.heartbeat()
    await past(pg_url, ends)
    assert await b.heartbeat() and b.slots == {"omantel": 1}
    assert await c.heartbeat() and c.slots == {"omantel": 0}
    assert await b.heartbeat() and b.slots == {"omantel": 1}
    assert holders(pg_url)[0] == {("omantel", 0): "c", ("omantel", 1): "b"}


# ------------------------------------------------------------------ the fence's clock


@on_loop
async def test_the_lease_is_checked_on_the_monotonic_clock_at_each_use(pg_url: str, members: Members) -> None:
    """After a heartbeat the lease is good for lease_s - fence_margin_s on the monotonic clock.
    Past that moment the node may not send, even before its fence timer has fired (a process
    woken from SIGSTOP runs its due timers in any order): asking fences it at once.  The wall
    clock (the reactor's, here set back an hour) extends nothing."""
    store = await schema(pg_url)
    await store.close()
    a = await members.add("a", {"omantel": 1})
    mono: Clock = a.test_mono  # type: ignore[attr-defined]
    wall = a.clock
    assert isinstance(wall, Clock)
    wall.advance(10_000.0)
    assert await a.heartbeat() and a.may_send("omantel")
    fenced: list[bool] = []
    a.on_fence = lambda: fenced.append(True)
    wall.rightNow -= 3600.0  # the wall clock set back an hour
    mono.advance(SETTINGS.lease_s - SETTINGS.fence_margin_s - 0.01)
    assert a.may_send("omantel") and fenced == []
    mono.advance(0.02)  # past the lease as the node may count on it; no fence timer has run
    assert not a.may_send("omantel")  # a pure read (the store's thread asks it)
    assert fenced == [] and not a.fenced
    assert not a.check_lease() and a.fenced and fenced == [True]
    assert not a.may_send("omantel")
    wall.advance(3600.0)  # the fence timer, on the reactor's clock, finds it done
    assert a.fences == 1


@on_loop
async def test_a_heartbeat_answered_too_late_does_not_unfence(pg_url: str, members: Members) -> None:
    """A heartbeat whose answer comes after the moment its own lease could be counted on (the
    database was that slow) leaves the node fenced; the next, answered in time, unfences it."""
    store = await schema(pg_url)
    await store.close()
    a = await members.add("a", {"omantel": 1})
    mono: Clock = a.test_mono  # type: ignore[attr-defined]
    hold_writes_of(pg_url, "cluster_node", "name", "a")
    gate = Gate(pg_url)
    try:
        beat = asyncio.ensure_future(a.heartbeat())
        await eventually(lambda: waiting_on_a_lock(pg_url, "a"))
        mono.advance(SETTINGS.lease_s - SETTINGS.fence_margin_s + 0.5)  # the database answers this late
    finally:
        gate.open()
    assert await beat is False and a.fenced and a.slots == {}
    assert await a.heartbeat() is True and not a.fenced and a.slots == {"omantel": 0}


@on_loop
async def test_a_node_stalled_mid_transaction_does_not_hold_the_lease_lock_for_long(
    pg_url: str, members: Members
) -> None:
    """A node's process stops (SIGSTOP, a paused VM) in the middle of a heartbeat, the lease lock
    held: the server ends its transaction within the idle limit, so the other nodes' heartbeats
    wait a moment, not until TCP keepalives notice, and come in before their fences fire."""
    from smsgw.cluster import _lease_decision
    from smsgw.store.postgres import IDLE_IN_TRANSACTION_S

    store = await schema(pg_url)
    await store.close()
    a = await members.add("a", {"omantel": 1})
    b = await members.add("b", {"omantel": 1})
    assert await a.heartbeat() and await b.heartbeat()
    stopped = asyncio.Event()
    loop = asyncio.get_running_loop()

    def stall(conn: Any) -> None:
        conn.raw.execute("BEGIN")
        _lease_decision(conn.raw, exclusive=True)
        loop.call_soon_threadsafe(stopped.set)
        time.sleep(IDLE_IN_TRANSACTION_S + 2.0)  # the thread stands still, the transaction open
        conn.raw.execute("COMMIT")  # the server has ended it meanwhile

    stalled = asyncio.ensure_future(a.engine.call(stall))
    await stopped.wait()
    started = time.monotonic()
    assert await b.heartbeat()
    waited = time.monotonic() - started
    assert waited < IDLE_IN_TRANSACTION_S + 1.0, waited
    assert waited < SETTINGS.lease_s - SETTINGS.fence_margin_s - SETTINGS.heartbeat_s, waited
    with pytest.raises(psycopg.errors.IdleInTransactionSessionTimeout):
        await stalled
    assert await a.heartbeat()  # its engine connects again
