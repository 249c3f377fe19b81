"""Several gateway nodes on one PostgreSQL: who is alive, who holds which carrier bind, who runs
the once-only jobs, and when a node must stop sending.

Guarantees, and why they hold
-----------------------------
* Liveness is a lease.  Each node has a row in `cluster_node` whose `expires_at` it pushes
  `lease_s` ahead at every heartbeat (every `heartbeat_s`).  Times in the table are the database
  server's clock, so nodes' clocks never have to agree.  A heartbeat only extends a lease that
  has not expired: once a node's lease passed, everything it held may already be another's, and it
  must start again (`on_reset`) instead of carrying on.
* A node never sends on a lease that may have passed.  Before each heartbeat the node notes its
  monotonic clock; a successful heartbeat means the lease runs at least until that moment plus
  `lease_s` (the server set it later than that).  The node counts on it until that moment minus
  `fence_margin_s` (`valid_until`) unless a later heartbeat succeeded, and no longer: a timer
  fences it then (its senders stop and its binds are cut: TCP closed, no unbind handshake to wait
  on), and every submit and every once-only job asks `check_lease` first, which compares the
  monotonic clock with `valid_until` and fences at once if it has passed.  The timer alone would
  not do: a process stopped longer than its lease (SIGSTOP, a paused VM) runs the timers that fell
  due in its own order on waking, a pacing timer possibly first.  The monotonic clock, not the
  wall clock, so that setting the wall clock back never extends a lease; the margin covers the
  two clocks (the node's and the server's) running at slightly different rates.  A heartbeat
  answered after its own `valid_until` leaves the node fenced.  So a node cut off from the
  database, or stopped, has let go of its binds before its lease can pass, and no two nodes ever
  send on one bind slot.
* Decisions see the latest leases.  Whatever writes a node's lease (register, heartbeat, leave)
  holds one PostgreSQL advisory lock (the lease lock) exclusively until it commits; whatever
  judges a lease passed in order to take over what it held (a bind slot, the jobs role, queued
  MTs claimed, unprocessed MOs) holds it, shared or exclusively, until it commits too.  Each reads
  the database's clock only once the lock is granted, and in READ COMMITTED each later statement
  takes its snapshot after that.  So a decision never runs on a snapshot older than a renewal
  that commits before the decision does (the renewal would still hold the lock), and a renewal
  that follows a decision reads a later clock than the decision judged by: if the decision found
  the lease passed, the renewal finds it passed too, and the node starts again as a new
  incarnation instead of carrying on with what was taken from it.  A heartbeat reads the slots
  and role it holds after its renewal, under the same lock, so what it reports held is held.
  (Without the lock, a liveness subquery in `INSERT ... ON CONFLICT DO UPDATE` ran on the
  statement's snapshot: a renewal committed just after it went unseen, and two nodes held one
  slot until the next heartbeat.)  One lock rather than a lock on each holder's cluster_node row:
  the same order of events, and a claim, which judges every incarnation at once, takes one lock,
  not one per node.  Heartbeats, a few per node per lease, serialize on it; claims share it and
  wait only while a heartbeat is under way.  A node stopped or cut off in the middle of such a
  transaction would hold the lock for every node: the server ends a transaction idle for
  IDLE_IN_TRANSACTION_S (smsgw/store/postgres.py), soon enough for the others' heartbeats.
* Bind slots.  A carrier account allows `max_binds` binds; slot k of carrier c is a row in
  `bind_lease` naming the node (and its incarnation) that holds it.  A slot is free when its
  holder's lease has passed.  A node holds at most one slot per carrier and takes a free one at
  its next heartbeat, so a dead node's binds are taken over within lease_s + heartbeat_s (plus
  the bind itself).
* TPS.  Each slot may send `tps / max_binds` (and `ussd_tps / max_binds`): the carrier's budget is
  never exceeded in any second whatever the number of nodes, at the price of leaving a dead
  slot's share unused until it is taken over.  Give max_binds = the number of binds the carrier
  allows, and run as many nodes.
* Queued MTs are claimed.  `outbound.claimed_by` names the incarnation that will send an MT; a
  claim is void once that incarnation's lease has passed.  Claims are taken with
  `FOR UPDATE SKIP LOCKED` in READ COMMITTED, the usual queue pattern: two nodes never claim one
  MT.  An MT stored by a node that holds its carrier's bind is claimed by it as it is stored.
* Once-only jobs (reminders, transaction notices, USSD timeouts, the reassembly sweep, MOs left
  unprocessed by a dead node) run on the node holding the `jobs` role, a lease like a bind slot.
  Each job's writes are conditional (a reminder flag, a notice state, a session state, the parts of
  a group), so even two runs at once could not do an item twice; the role only saves the work.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
import uuid
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from twisted.application.service import Service
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.internet.task import LoopingCall

from smsgw.log import get_logger
from smsgw.migrations import Component

if TYPE_CHECKING:
    from smsgw.store import Outbound
    from smsgw.store.postgres import PgConnection, PostgresEngine

log = get_logger(__name__)

JOBS_ROLE: Final = "jobs"

SCHEMA: Final[Component] = (
    "cluster",
    (
        (
            # One row per node name: its current incarnation (a new one at every start) and lease.
            """CREATE TABLE cluster_node (
                name         TEXT    PRIMARY KEY,
                incarnation  TEXT    NOT NULL,
                host         TEXT    NOT NULL,
                pid          INTEGER NOT NULL,
                admin        TEXT,
                started_at   REAL    NOT NULL,
                heartbeat_at REAL    NOT NULL,
                expires_at   REAL    NOT NULL,
                left_at      REAL
            )""",
            # Bind slot k of a carrier: the node (incarnation) holding it; free once that lease passed.
            """CREATE TABLE bind_lease (
                carrier      TEXT    NOT NULL,
                slot         INTEGER NOT NULL,
                node         TEXT    NOT NULL,
                incarnation  TEXT    NOT NULL,
                acquired_at  REAL    NOT NULL,
                PRIMARY KEY (carrier, slot)
            )""",
            # Roles one node holds at a time (the once-only jobs), leased the same way.
            """CREATE TABLE cluster_role (
                role         TEXT    PRIMARY KEY,
                node         TEXT    NOT NULL,
                incarnation  TEXT    NOT NULL,
                acquired_at  REAL    NOT NULL
            )""",
            # Carriers an operator paused, for every node (and across restarts).
            """CREATE TABLE carrier_pause (
                carrier      TEXT    PRIMARY KEY,
                paused       INTEGER NOT NULL,
                changed_at   REAL    NOT NULL,
                changed_by   TEXT    NOT NULL
            )""",
        ),
    ),
)

#: Channels of LISTEN/NOTIFY.
CONFIG_CHANNEL: Final = "smsgw_config"
MT_CHANNEL: Final = "smsgw_mt"

_NOW: Final = "SELECT EXTRACT(EPOCH FROM clock_timestamp())::float8"
#: The lease lock (see "Decisions see the latest leases" above): held exclusively by whatever
#: writes a node's lease (register, heartbeat, leave), shared by whatever judges one passed to take
#: over what it held (claims of queued MTs, adoption of unprocessed MOs).
_LEASE_LOCK: Final = zlib.crc32(b"smsgw.cluster.leases")
# A holder (node, incarnation) whose lease still runs at `now` (the first parameter).
_ALIVE = ("EXISTS (SELECT 1 FROM cluster_node AS n WHERE n.name = {t}.node"
          " AND n.incarnation = {t}.incarnation AND n.expires_at > %s)")


@dataclass(frozen=True)
class ClusterSettings:
    """`[cluster]` in the config: only used with a PostgreSQL store."""

    lease_s: float = 6.0
    heartbeat_s: float = 1.5
    fence_margin_s: float = 1.5
    claim_batch: int = 1000


class NodeNameInUse(RuntimeError):
    """Another live process already runs under this node name."""


@dataclass
class ClusterView:
    """What the last heartbeat saw: for status, metrics and `smsgw cluster`."""

    at: float = 0.0
    nodes: list[dict[str, Any]] = field(default_factory=list)
    binds: list[dict[str, Any]] = field(default_factory=list)
    roles: list[dict[str, Any]] = field(default_factory=list)


class ClusterMember(Service):
    """This node's membership: its lease, its bind slots, the jobs role, its fence."""

    name = "cluster"

    def __init__(
        self,
        engine: "PostgresEngine",
        node: str,
        settings: ClusterSettings,
        clock: IReactorTime,
        carriers: Callable[[], Mapping[str, int]],
        *,
        admin: str | None = None,
        on_slot: Callable[[str, int], None] = lambda carrier, slot: None,
        on_slot_lost: Callable[[str], None] = lambda carrier: None,
        on_fence: Callable[[], None] = lambda: None,
        on_unfence: Callable[[], None] = lambda: None,
        on_reset: Callable[[], None] = lambda: None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.engine = engine
        self.node = node
        self.settings = settings
        self.clock = clock
        #: The fence's clock: monotonic, so setting the wall clock back never extends a lease
        #: (tests give a task.Clock's seconds).  `clock` only schedules the fence timer.
        self.monotonic = monotonic
        #: carrier → max_binds, of the carriers this node should bind
        self._carriers = carriers
        self.admin = admin
        self.incarnation = uuid.uuid4().hex
        self.on_slot = on_slot
        self.on_slot_lost = on_slot_lost
        self.on_fence = on_fence
        self.on_unfence = on_unfence
        self.on_reset = on_reset
        self.slots: dict[str, int] = {}  # carrier → slot held
        self.jobs = False  # holds the jobs role (and is not fenced)
        self.fenced = True  # until the first heartbeat
        self.valid_until = 0.0  # on `monotonic`: the lease surely runs until then (minus the margin)
        self.view = ClusterView()
        self.heartbeats = 0
        self.failed_heartbeats = 0
        self.resets = 0
        self.fences = 0
        self._release: set[str] = set()  # carriers to give up at the next heartbeat
        self._loop: LoopingCall | None = None
        self._beating: asyncio.Future[Any] | None = None
        self._fence_timer: IDelayedCall | None = None
        self._joined = False
        #: Where queued MTs are claimed: the gateway sets the store's engine (see `claim`).
        self.claim_engine: "PostgresEngine" = engine

    # ------------------------------------------------------------------ life cycle

    async def join(self, timeout: float | None = None) -> None:
        """Register this node; waits for a previous incarnation of the same name to expire (a
        restart after kill -9), but refuses a name a live process is using (NodeNameInUse)."""
        limit = self.settings.lease_s * 2 + 1 if timeout is None else timeout
        deadline = time.monotonic() + limit
        while True:
            owner = await self.engine.call(self._op_register)
            if owner is None:
                break
            if time.monotonic() >= deadline:
                raise NodeNameInUse(
                    f"node name {self.node!r} is held by a live process ({owner}); give each node its own"
                    " name (smsgw run --node NAME)")
            log.warning("node_name_held", node=self.node, holder=owner, waiting_s=round(deadline - time.monotonic(), 1))
            await asyncio.sleep(min(1.0, self.settings.heartbeat_s))
        self._joined = True
        log.info("cluster_joined", node=self.node, incarnation=self.incarnation)

    def startService(self) -> None:
        super().startService()
        self._loop = LoopingCall(self._tick)
        self._loop.clock = self.clock
        self._loop.start(self.settings.heartbeat_s, now=True)

    def stopService(self) -> Deferred[None]:  # type: ignore[override]
        super().stopService()
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        if self._fence_timer is not None and self._fence_timer.active():
            self._fence_timer.cancel()
        return Deferred.fromFuture(asyncio.ensure_future(self._leave()))

    async def _leave(self) -> None:
        if self._beating is not None:
            await asyncio.gather(self._beating, return_exceptions=True)
        if not self._joined:
            return
        try:
            await self.engine.call(self._op_leave)
            log.info("cluster_left", node=self.node)
        except Exception as exc:  # noqa: BLE001 - the lease then simply runs out
            log.warning("cluster_leave_failed", node=self.node, error=str(exc))

    def release(self, carrier: str) -> None:
        """Give the carrier's slot up at the next heartbeat (carrier disabled by a reload)."""
        self._release.add(carrier)

    # ------------------------------------------------------------------ heartbeat

    def _tick(self) -> None:
        if self._beating is not None and not self._beating.done():
            return  # a slow database: the fence covers us, no second heartbeat on top
        if not self._joined:
            return  # registering again after a lost lease (_rejoin): nothing to renew yet
        self._beating = asyncio.ensure_future(self.heartbeat())

    async def heartbeat(self) -> bool:
        """One heartbeat; True if the lease was extended."""
        started = self.monotonic()
        wanted = dict(self._carriers())
        release = set(self._release) | {c for c in self.slots if c not in wanted}
        try:
            result = await self.engine.call(self._op_heartbeat, wanted, release)
        except Exception as exc:  # noqa: BLE001 - any failure: not renewed, the fence decides
            self.failed_heartbeats += 1
            log.warning("cluster_heartbeat_failed", node=self.node, error=f"{type(exc).__name__}: {exc}")
            return False
        if result is None:
            self._lease_lost()
            return False
        self.heartbeats += 1
        slots, jobs, view = result
        self._release -= release
        self.valid_until = started + self.settings.lease_s - self.settings.fence_margin_s
        if self.monotonic() >= self.valid_until:
            # Renewed, but the answer came too late to send on: fenced, as if it had failed; the
            # next heartbeat (whose answer comes in time) unfences and takes the slots in hand.
            self._fence()
            return False
        self._arm_fence()
        self.view = view
        if self.fenced:
            self.fenced = False
            log.info("cluster_unfenced", node=self.node)
            self.on_unfence()
        for carrier in [c for c in self.slots if c not in slots]:
            del self.slots[carrier]
            self.on_slot_lost(carrier)
        for carrier, slot in slots.items():
            if self.slots.get(carrier) != slot:
                self.slots[carrier] = slot
                log.info("bind_slot_acquired", node=self.node, carrier=carrier, slot=slot)
                self.on_slot(carrier, slot)
        if jobs != self.jobs:
            log.info("jobs_role_" + ("acquired" if jobs else "released"), node=self.node)
        self.jobs = jobs
        return True

    def lease_valid(self) -> bool:
        """Not fenced, and the lease surely runs now: what a submit or a job must see first.

        The fence timer alone is not enough: after the process was stopped (SIGSTOP, a VM
        paused, a long GC) the event loop runs every timer that fell due meanwhile in its own
        order, and a pacing timer may pump before the fence timer fires.  So every submit asks
        this, on the monotonic clock, at the moment it starts.  A pure read (the store's thread
        may ask too); `check_lease` fences as well."""
        return not self.fenced and self.monotonic() < self.valid_until

    def check_lease(self) -> bool:
        """`lease_valid`, fencing at once (senders stopped, binds cut) if the lease may have passed."""
        if self.fenced:
            return False
        if self.monotonic() < self.valid_until:
            return True
        self._fence()
        return False

    def _arm_fence(self) -> None:
        delay = max(0.0, self.valid_until - self.monotonic())
        if self._fence_timer is not None and self._fence_timer.active():
            self._fence_timer.reset(delay)
        else:
            self._fence_timer = self.clock.callLater(delay, self._fence)

    def _fence(self) -> None:
        """The lease may pass soon and could not be renewed: stop sending, cut every bind."""
        if self.fenced:
            return
        self.fenced = True
        self.fences += 1
        self.jobs = False
        log.error("cluster_fenced", node=self.node, slots=sorted(self.slots),
                  hint="no heartbeat reached the database in time; binds cut so another node can take them")
        self.on_fence()

    def _lease_lost(self) -> None:
        """The lease passed (we were cut off too long): whatever we held may be another's now."""
        self.resets += 1
        log.error("cluster_lease_lost", node=self.node, incarnation=self.incarnation)
        self._fence()
        lost = list(self.slots)
        self.slots.clear()
        for carrier in lost:
            self.on_slot_lost(carrier)
        self.on_reset()
        self.incarnation = uuid.uuid4().hex  # start again as a new incarnation
        self._joined = False
        asyncio.ensure_future(self._rejoin())

    async def _rejoin(self) -> None:
        try:
            await self.join(timeout=self.settings.lease_s * 10)
        except Exception as exc:  # noqa: BLE001 - the next heartbeat fails and says so
            log.error("cluster_rejoin_failed", node=self.node, error=str(exc))

    # ------------------------------------------------------------------ SQL (store thread)

    def _op_register(self, conn: "PgConnection") -> str | None:
        raw = conn.raw
        with raw.transaction():
            now = _lease_decision(raw, exclusive=True)
            row = raw.execute(
                "INSERT INTO cluster_node (name, incarnation, host, pid, admin, started_at, heartbeat_at, expires_at)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
                " ON CONFLICT (name) DO UPDATE SET incarnation = excluded.incarnation, host = excluded.host,"
                " pid = excluded.pid, admin = excluded.admin, started_at = excluded.started_at,"
                " heartbeat_at = excluded.heartbeat_at, expires_at = excluded.expires_at, left_at = NULL"
                " WHERE cluster_node.expires_at <= %s OR cluster_node.left_at IS NOT NULL"
                " RETURNING name",
                (self.node, self.incarnation, socket.gethostname(), os.getpid(), self.admin, now, now,
                 now + self.settings.lease_s, now),
            ).fetchone()
            if row is not None:
                return None
            holder = raw.execute("SELECT host, pid FROM cluster_node WHERE name = %s", (self.node,)).fetchone()
            return f"host {holder[0]}, pid {holder[1]}" if holder else "unknown"

    def _op_heartbeat(
        self, conn: "PgConnection", wanted: Mapping[str, int], release: set[str]
    ) -> tuple[dict[str, int], bool, ClusterView] | None:
        raw = conn.raw
        with raw.transaction():
            # Renewal and takeovers under the lease lock, `now` read once it is ours: a renewal
            # never overlaps another node's decision that our lease passed, and the slots and role
            # read below are their latest versions (each statement's snapshot is taken after it).
            now = _lease_decision(raw, exclusive=True)
            renewed = raw.execute(
                "UPDATE cluster_node SET heartbeat_at = %s, expires_at = %s, admin = %s"
                " WHERE name = %s AND incarnation = %s AND expires_at > %s AND left_at IS NULL",
                (now, now + self.settings.lease_s, self.admin, self.node, self.incarnation, now),
            ).rowcount
            if renewed != 1:
                return None
            for carrier in release:
                raw.execute("DELETE FROM bind_lease WHERE carrier = %s AND incarnation = %s",
                            (carrier, self.incarnation))
                raw.execute("UPDATE outbound SET claimed_by = NULL WHERE claimed_by = %s AND carrier = %s"
                            " AND state = 'queued'", (self.incarnation, carrier))
            held = {
                carrier: slot
                for carrier, slot in raw.execute(
                    "SELECT carrier, slot FROM bind_lease WHERE incarnation = %s", (self.incarnation,)
                ).fetchall()
            }
            for carrier, max_binds in wanted.items():
                if carrier in held or carrier in release:
                    continue
                for slot in range(max_binds):
                    got = raw.execute(
                        "INSERT INTO bind_lease (carrier, slot, node, incarnation, acquired_at)"
                        " VALUES (%s, %s, %s, %s, %s)"
                        " ON CONFLICT (carrier, slot) DO UPDATE SET node = excluded.node,"
                        " incarnation = excluded.incarnation, acquired_at = excluded.acquired_at"
                        f" WHERE NOT {_ALIVE.format(t='bind_lease')} RETURNING slot",
                        (carrier, slot, self.node, self.incarnation, now, now),
                    ).fetchone()
                    if got is not None:
                        held[carrier] = slot
                        break
            jobs = raw.execute(
                "INSERT INTO cluster_role (role, node, incarnation, acquired_at) VALUES (%s, %s, %s, %s)"
                " ON CONFLICT (role) DO UPDATE SET node = excluded.node, incarnation = excluded.incarnation,"
                " acquired_at = excluded.acquired_at"
                f" WHERE cluster_role.incarnation = excluded.incarnation OR NOT {_ALIVE.format(t='cluster_role')}"
                " RETURNING role",
                (JOBS_ROLE, self.node, self.incarnation, now, now),
            ).fetchone() is not None
            view = self._read_view(raw, now)
        return held, jobs, view

    @staticmethod
    def _read_view(raw: Any, now: float) -> ClusterView:
        nodes = [
            {"name": r[0], "host": r[1], "pid": r[2], "admin": r[3], "started_at": r[4], "heartbeat_at": r[5],
             "expires_at": r[6], "alive": r[6] > now and r[7] is None, "left_at": r[7], "incarnation": r[8]}
            for r in raw.execute(
                "SELECT name, host, pid, admin, started_at, heartbeat_at, expires_at, left_at, incarnation"
                " FROM cluster_node ORDER BY name"
            ).fetchall()
        ]
        alive = {(n["name"], n["incarnation"]) for n in nodes if n["alive"]}
        binds = [
            {"carrier": r[0], "slot": r[1], "node": r[2], "acquired_at": r[4], "held": (r[2], r[3]) in alive}
            for r in raw.execute(
                "SELECT carrier, slot, node, incarnation, acquired_at FROM bind_lease ORDER BY carrier, slot"
            ).fetchall()
        ]
        roles = [
            {"role": r[0], "node": r[1], "acquired_at": r[3], "held": (r[1], r[2]) in alive}
            for r in raw.execute("SELECT role, node, incarnation, acquired_at FROM cluster_role ORDER BY role").fetchall()
        ]
        for n in nodes:
            del n["incarnation"]
        return ClusterView(now, nodes, binds, roles)

    def _op_leave(self, conn: "PgConnection") -> None:
        raw = conn.raw
        with raw.transaction():
            now = _lease_decision(raw, exclusive=True)
            raw.execute("UPDATE outbound SET claimed_by = NULL WHERE claimed_by = %s AND state = 'queued'",
                        (self.incarnation,))
            raw.execute("DELETE FROM bind_lease WHERE incarnation = %s", (self.incarnation,))
            raw.execute("DELETE FROM cluster_role WHERE incarnation = %s", (self.incarnation,))
            raw.execute("UPDATE cluster_node SET left_at = %s, expires_at = %s WHERE name = %s AND incarnation = %s",
                        (now, now, self.node, self.incarnation))

    # ------------------------------------------------------------------ claims

    async def announce(self, kind: str, **fields: Any) -> None:
        """Tell the other nodes a change is committed (LISTEN/NOTIFY, see ConfigListener)."""
        sql, params = announce_sql(kind, self.node, **fields)
        await self.engine.call(lambda conn: conn.execute(sql, params))

    async def paused_carriers(self) -> dict[str, bool]:
        return await self.engine.call(
            lambda conn: dict((c, bool(p)) for c, p in conn.execute("SELECT carrier, paused FROM carrier_pause").fetchall())
        )

    async def set_paused(self, carrier: str, paused: bool, actor: str) -> None:
        """Record an operator's pause or resume for every node (and restarts), then announce it."""
        sql, params = announce_sql("pause", self.node, carrier=carrier, paused=paused)

        def op(conn: "PgConnection") -> None:
            with conn.raw.transaction():
                (now,) = conn.raw.execute(_NOW).fetchone()
                conn.execute(
                    "INSERT INTO carrier_pause (carrier, paused, changed_at, changed_by) VALUES (?, ?, ?, ?)"
                    " ON CONFLICT (carrier) DO UPDATE SET paused = excluded.paused,"
                    " changed_at = excluded.changed_at, changed_by = excluded.changed_by",
                    (carrier, int(paused), now, actor),
                )
                conn.execute(sql, params)

        await self.engine.call(op)

    def may_send(self, carrier: str) -> bool:
        """This node holds a bind slot of the carrier and its lease surely runs."""
        return carrier in self.slots and self.lease_valid()

    async def claim(self, carrier: str, limit: int, held_at_most: int) -> list["Outbound"]:
        """Take up to `limit` queued MTs of the carrier nobody alive has claimed, oldest first,
        and never so many that this node would hold more than `held_at_most` queued MTs claimed.

        The second bound is counted in the database because it sees what the queue cannot yet:
        MTs this node's own writes claimed as they were stored, committed but not handed to the
        queue when it asked for more.  It runs on the store's own connection (`claim_engine`),
        between its group commits, so every MT claimed as it was stored is either committed and
        counted, or stored after this claim while the queue's `claiming` already counts it."""
        return await self.claim_engine.call(self._op_claim, carrier, limit, held_at_most)

    def _op_claim(self, conn: "PgConnection", carrier: str, limit: int, held_at_most: int) -> list["Outbound"]:
        from smsgw.store.outbound import OUTBOUND_COLS, load_parts, outbound_from_row

        raw = conn.raw
        with raw.transaction():
            (held,) = raw.execute(
                "SELECT count(*) FROM outbound WHERE claimed_by = %s AND carrier = %s AND state = 'queued'",
                (self.incarnation, carrier),
            ).fetchone()
            limit = min(limit, held_at_most - held)
            if limit <= 0:
                return []
            # Whose claims are void is decided under the lease lock (shared): no renewal is half
            # done, so an incarnation judged passed here has surely not renewed (and cannot since).
            now = _lease_decision(raw, exclusive=False)
            cols = ", ".join(f"o.{c.strip()}" for c in OUTBOUND_COLS.split(","))
            rows = raw.execute(
                f"UPDATE outbound AS o SET claimed_by = %s FROM ("
                " SELECT id FROM outbound WHERE state = 'queued' AND carrier = %s AND (claimed_by IS NULL"
                "  OR claimed_by NOT IN (SELECT incarnation FROM cluster_node WHERE expires_at > %s AND left_at IS NULL))"
                " ORDER BY CASE WHEN channel = 'ussd' THEN 0 ELSE 1 END, id LIMIT %s FOR UPDATE SKIP LOCKED) AS c"
                f" WHERE o.id = c.id RETURNING {cols}",
                (self.incarnation, carrier, now, limit),
            ).fetchall()
            rows.sort(key=lambda r: r[0])
            parts = load_parts(conn, [r[0] for r in rows if r[16] is not None])
        return [outbound_from_row(r, parts.get(r[0], {})) for r in rows]

    async def unclaim(self, carrier: str) -> None:
        await self.engine.call(self._op_unclaim, carrier)

    def _op_unclaim(self, conn: "PgConnection", carrier: str) -> None:
        with conn.raw.transaction():
            conn.raw.execute("UPDATE outbound SET claimed_by = NULL WHERE claimed_by = %s AND carrier = %s"
                             " AND state = 'queued'", (self.incarnation, carrier))

    # ------------------------------------------------------------------ MOs a dead node left

    async def adopt_orphan_mos(self, older_than: float, limit: int = 500) -> list[int]:
        """Unprocessed MOs accepted by an incarnation whose lease passed: now ours; their ids."""
        return await self.engine.call(self._op_adopt, older_than, limit)

    def _op_adopt(self, conn: "PgConnection", older_than: float, limit: int) -> list[int]:
        raw = conn.raw
        with raw.transaction():
            now = _lease_decision(raw, exclusive=False)  # as a claim: see _op_claim
            rows = raw.execute(
                "UPDATE inbound SET node = %s WHERE id IN ("
                " SELECT id FROM inbound WHERE processed_at IS NULL AND received_at < %s"
                "  AND (node IS NULL OR node NOT IN"
                "   (SELECT incarnation FROM cluster_node WHERE expires_at > %s AND left_at IS NULL))"
                " ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED) RETURNING id",
                (self.incarnation, older_than, now, limit),
            ).fetchall()
        return sorted(r[0] for r in rows)


def _lease_decision(raw: Any, *, exclusive: bool) -> float:
    """Take the lease lock for the rest of the transaction, then read the database's clock."""
    lock = "pg_advisory_xact_lock" if exclusive else "pg_advisory_xact_lock_shared"
    raw.execute(f"SELECT {lock}(%s)", (_LEASE_LOCK,))
    (now,) = raw.execute(_NOW).fetchone()
    return float(now)


def default_node_name(admin_port: int | None) -> str:
    host = socket.gethostname().split(".")[0].lower() or "node"
    return f"{host}-{admin_port}" if admin_port else host


def max_binds(carriers: Sequence[Any]) -> dict[str, int]:
    return {c.name: c.max_binds for c in carriers}


class ConfigListener:
    """LISTEN on the cluster's config channel, on a connection and thread of its own.

    A change made on one node (pause, resume, a route, a reload) is committed, then announced
    with NOTIFY; every other node applies it within milliseconds.  Notifications missed while the
    connection was down are not replayed by PostgreSQL, so after every (re)connect `deliver`
    gets {"kind": "resync"} and the node reloads the whole state from the store.
    """

    def __init__(self, url: str, node: str, deliver: Callable[[dict[str, Any]], None],
                 loop: asyncio.AbstractEventLoop, application_name: str) -> None:
        self.url = url
        self.node = node
        self._deliver = deliver
        self._loop = loop
        self._application_name = application_name
        self._stopping = False
        self._thread: Any = None
        self.received = 0

    def start(self) -> None:
        import threading

        self._thread = threading.Thread(target=self._run, name="smsgw-listen", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopping = True

    def _run(self) -> None:
        import json

        import psycopg

        backoff = 0.2
        while not self._stopping:
            try:
                with psycopg.connect(self.url, autocommit=True, application_name=self._application_name,
                                     connect_timeout=5, keepalives=1, keepalives_idle=5,
                                     keepalives_interval=2, keepalives_count=3) as conn:
                    conn.execute(f"LISTEN {CONFIG_CHANNEL}")
                    backoff = 0.2
                    self._loop.call_soon_threadsafe(self._deliver, {"kind": "resync", "origin": None})
                    while not self._stopping:
                        for note in conn.notifies(timeout=0.5):
                            try:
                                message = json.loads(note.payload)
                            except ValueError:
                                continue
                            if message.get("origin") == self.node:
                                continue  # our own change, already applied
                            self.received += 1
                            self._loop.call_soon_threadsafe(self._deliver, message)
            except Exception as exc:  # noqa: BLE001 - reconnect, then resync
                if self._stopping:
                    return
                log.warning("config_listener_reconnecting", error=f"{type(exc).__name__}: {exc}")
                time.sleep(backoff)
                backoff = min(backoff * 2, 5.0)


def announce_sql(kind: str, node: str, **fields: Any) -> tuple[str, tuple[str, str]]:
    """The statement (qmark) that announces a committed change to the other nodes."""
    import json

    return "SELECT pg_notify(?, ?)", (CONFIG_CHANNEL, json.dumps({"kind": kind, "origin": node, **fields}))
