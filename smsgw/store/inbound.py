"""Inbound (MO) messages: accepted once committed, deduplicated, long ones reassembled from
their parts, marked processed together with their replies.

* An MO is acknowledged to the carrier only after `accept_mo` (or `accept_mo_part`) returns, so
  only then is it the gateway's to answer.  A redelivery of the same carrier MO id is recognised
  and not processed twice.
* `complete_mo` marks the MO processed and inserts its replies in ONE transaction: a crash either
  loses neither or redoes both, and a second run of it for the same MO inserts nothing.
* A redelivery is the same carrier MO id with the same content within `mo_dedupe_window`
  (smsgw/redelivery.py); the decision is one upsert on mo_seen's key, so with several nodes on one
  database the second copy waits on the key and then finds it claimed.  A claim older than the
  window is taken over by the next MO with its key; retention deletes the old ones, in batches
  (smsgw/store/retention.py), so no MO's write carries a large delete.
* Parts of a long MO are stored as they arrive (never lost) and turned into one Inbound when the
  last one comes, or by the reassembly sweep at the timeout; a part redelivered after its group
  was assembled is recognised for `part_dedupe_window` seconds.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Collection, Sequence
from typing import Any

from smsgw.log import get_logger
from smsgw.message import Channel, Inbound, SessionEvent
from smsgw.redelivery import content_hash
from smsgw.store.outbound import OUTBOUND_COLS, OutboundArea, load_parts, outbound_from_row
from smsgw.store.types import Connection, NewMo, NewMoPart, NewMt, Outbound, PartKey

log = get_logger(__name__)

INBOUND_COLS = "id, carrier, msisdn, short_code, text, received_at, channel, session_event, session_id"
_PART_KEY_WHERE = "carrier = ? AND msisdn = ? AND short_code = ? AND ref = ? AND total = ?"


def inbound_from_row(row: Sequence[Any]) -> Inbound:
    return Inbound(
        id=row[0],
        carrier=row[1],
        msisdn=row[2],
        short_code=row[3],
        text=row[4],
        received_at=row[5],
        channel=Channel(row[6]),
        session=SessionEvent(row[7]),
        session_id=row[8],
    )


class InboundArea(OutboundArea):
    """The MO half of the store (a mixin of Store; replies go through OutboundArea)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        #: Several nodes: this node's incarnation, stored with each MO it accepts, so the MOs a dead
        #: node left unprocessed can be told from a live node's; None on a single node.
        self.node_tag: Callable[[], str | None] = lambda: None

    async def accept_mo(self, mo: NewMo) -> tuple[Inbound | None, bool]:
        """Store an MO; returns (stored Inbound, duplicate?) once COMMITTED.

        duplicate=True when the MO is a redelivery (smsgw/redelivery.py): the same carrier MO id
        with the same content was accepted within `mo_dedupe_window`; then the Inbound is the
        earlier row.  A None id never counts.
        """
        return await self._write(self.accept_mo_op(mo))

    def accept_mo_op(self, mo: NewMo) -> Callable[[Connection], tuple[Inbound | None, bool]]:
        """The write that stores `mo` (see accept_mo), for a group of writes (`write_group`)."""
        # Validate here so a bad value fails its caller at once, not inside a shared batch.
        channel, event = Channel(mo.channel), SessionEvent(mo.session_event)
        fingerprint = None
        if mo.carrier_msg_id is not None:
            fingerprint = content_hash(mo.msisdn, mo.short_code, mo.text, channel.value, mo.session_id, event.value)
        return functools.partial(self._op_accept_mo, mo=mo, channel=channel, event=event, fingerprint=fingerprint)

    def _op_accept_mo(
        self, conn: Connection, mo: NewMo, channel: Channel, event: SessionEvent, fingerprint: str | None
    ) -> tuple[Inbound | None, bool]:
        # Insert the MO, then claim its (carrier, id, content) with an upsert that takes over a
        # claim only once it is older than the window.  No claim means a redelivery: the MO just
        # inserted is taken out again (same transaction, never seen by anyone).  The upsert is the
        # whole decision, in SQL PostgreSQL runs as well: with several gateways on one database,
        # the second copy waits on the key and then finds it claimed.
        cur = conn.execute(
            "INSERT INTO inbound (carrier, carrier_msg_id, msisdn, short_code, text, data_coding,"
            " channel, session_id, session_event, received_at, node) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                mo.carrier,
                mo.carrier_msg_id,
                mo.msisdn,
                mo.short_code,
                mo.text,
                mo.data_coding,
                channel.value,
                mo.session_id,
                event.value,
                mo.received_at,
                self.node_tag(),
            ),
        )
        inbound_id: int = cur.lastrowid  # type: ignore[assignment]
        if fingerprint is not None:
            claimed = conn.execute(
                "INSERT INTO mo_seen (carrier, carrier_msg_id, content_hash, inbound_id, received_at)"
                " VALUES (?, ?, ?, ?, ?)"
                " ON CONFLICT (carrier, carrier_msg_id, content_hash) DO UPDATE"
                " SET inbound_id = excluded.inbound_id, received_at = excluded.received_at"
                " WHERE mo_seen.received_at < ?",
                (mo.carrier, mo.carrier_msg_id, fingerprint, inbound_id, mo.received_at,
                 mo.received_at - self._mo_dedupe_window),
            ).rowcount
            if claimed == 0:
                conn.execute("DELETE FROM inbound WHERE id = ?", (inbound_id,))
                row = conn.execute(
                    f"SELECT {INBOUND_COLS} FROM inbound WHERE id = (SELECT inbound_id FROM mo_seen"
                    " WHERE carrier = ? AND carrier_msg_id = ? AND content_hash = ?)",
                    (mo.carrier, mo.carrier_msg_id, fingerprint),
                ).fetchone()
                return (inbound_from_row(row) if row is not None else None), True
        inbound = Inbound(
            id=inbound_id,
            carrier=mo.carrier,
            msisdn=mo.msisdn,
            short_code=mo.short_code,
            text=mo.text,
            received_at=mo.received_at,
            channel=channel,
            session=event,
            session_id=mo.session_id,
        )
        return inbound, False

    async def accept_mo_part(
        self, part: NewMoPart, assemble: Callable[[dict[int, bytes], int], str | None]
    ) -> tuple[Inbound | None, bool]:
        """Store one part of a long MO; once COMMITTED returns:

        (None, True)     the part was a duplicate (already stored, or part of a group assembled
                         within `part_dedupe_window` with the same body) and was ignored;
        (Inbound, False) the part completed its group: the Inbound (text from `assemble`) was
                         inserted and the group's parts removed, in the same transaction;
        (None, False)    stored, the group is still incomplete.

        `assemble(parts_by_seq, total)` runs inside the store's transaction on the connection
        thread: it must be pure and quick (decode and join).  It is called only once at least
        `total` parts are present; returning None means "not complete yet".  If it raises, the
        part is still kept (never lose a part) and the group is left to the reassembly timeout.
        """
        if part.total < 1:
            raise ValueError("a long MO has at least one part")
        return await self._write(functools.partial(self._op_accept_mo_part, part=part, assemble=assemble))

    def _op_accept_mo_part(
        self,
        conn: Connection,
        part: NewMoPart,
        assemble: Callable[[dict[int, bytes], int], str | None],
    ) -> tuple[Inbound | None, bool]:
        key = part.key
        if conn.execute(
            f"SELECT 1 FROM mo_part_done WHERE {_PART_KEY_WHERE} AND seq = ? AND body = ?"
            " AND done_at >= ? LIMIT 1",
            (*key, part.seq, part.body, part.received_at - self._part_dedupe_window),
        ).fetchone():
            return None, True
        cur = conn.execute(
            "INSERT INTO mo_part (carrier, msisdn, short_code, ref, total, seq, body, data_coding,"
            " carrier_msg_id, received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (carrier, msisdn, short_code, ref, total, seq) DO NOTHING",
            (*key, part.seq, part.body, part.data_coding, part.carrier_msg_id, part.received_at),
        )
        if cur.rowcount == 0:
            return None, True
        rows = conn.execute(
            f"SELECT seq, body, data_coding, received_at FROM mo_part WHERE {_PART_KEY_WHERE}"
            " ORDER BY received_at, id",
            key,
        ).fetchall()
        if len(rows) < part.total:
            return None, False
        try:
            text = assemble({seq: body for seq, body, _, _ in rows}, part.total)
        except Exception as exc:
            log.error("mo_assemble_failed", carrier=part.carrier, error=type(exc).__name__)
            return None, False
        if text is None:
            return None, False
        # The message counts as received when its last part arrived.
        received_at = max(r[3] for r in rows)
        inbound = self._insert_assembled(conn, key, rows[0][2], text, received_at, len(rows), partial=False)
        return inbound, False

    def _insert_assembled(
        self,
        conn: Connection,
        key: PartKey,
        data_coding: int,
        text: str,
        received_at: float,
        n_parts: int,
        partial: bool,
    ) -> Inbound:
        carrier, msisdn, short_code, _, _ = key
        cur = conn.execute(
            "INSERT INTO inbound (carrier, carrier_msg_id, msisdn, short_code, text, data_coding,"
            " channel, session_id, session_event, received_at, parts, partial, node)"
            " VALUES (?, NULL, ?, ?, ?, ?, ?, NULL, ?, ?, ?, ?, ?)",
            (
                carrier,
                msisdn,
                short_code,
                text,
                data_coding,
                Channel.SMS.value,
                SessionEvent.NONE.value,
                received_at,
                n_parts,
                int(partial),
                self.node_tag(),
            ),
        )
        inbound_id = cur.lastrowid
        conn.execute(
            "DELETE FROM mo_part_done WHERE done_at < ?", (received_at - self._part_dedupe_window,)
        )
        conn.execute(
            "INSERT INTO mo_part_done (carrier, msisdn, short_code, ref, total, seq, body,"
            f" inbound_id, done_at) SELECT carrier, msisdn, short_code, ref, total, seq, body, ?, ?"
            f" FROM mo_part WHERE {_PART_KEY_WHERE}",
            (inbound_id, received_at, *key),
        )
        conn.execute(f"DELETE FROM mo_part WHERE {_PART_KEY_WHERE}", key)
        return Inbound(
            id=inbound_id,  # type: ignore[arg-type]
            carrier=carrier,
            msisdn=msisdn,
            short_code=short_code,
            text=text,
            received_at=received_at,
        )

    async def expired_part_groups(
        self, older_than: float
    ) -> list[tuple[PartKey, dict[int, bytes], dict[str, Any]]]:
        """Incomplete long MOs whose first part arrived before `older_than`.

        Each item: (key, {seq: body}, fields of the earliest-received part: carrier,
        carrier_msg_id, msisdn, short_code, data_coding, received_at, ref, total, seq).  Hand the
        key to `accept_partial`, with expected_seqs=the dict's keys.
        """
        return await self._read(self._op_expired_part_groups, older_than)

    @staticmethod
    def _op_expired_part_groups(
        conn: Connection, older_than: float
    ) -> list[tuple[PartKey, dict[int, bytes], dict[str, Any]]]:
        keys = conn.execute(
            "SELECT DISTINCT carrier, msisdn, short_code, ref, total FROM mo_part WHERE received_at < ?",
            (older_than,),
        ).fetchall()
        groups: list[tuple[PartKey, dict[int, bytes], dict[str, Any]]] = []
        for key in keys:
            rows = conn.execute(
                "SELECT seq, body, data_coding, carrier_msg_id, received_at FROM mo_part"
                f" WHERE {_PART_KEY_WHERE} ORDER BY received_at, id",
                key,
            ).fetchall()
            seq, _, data_coding, carrier_msg_id, received_at = rows[0]
            first = {
                "carrier": key[0],
                "carrier_msg_id": carrier_msg_id,
                "msisdn": key[1],
                "short_code": key[2],
                "data_coding": data_coding,
                "received_at": received_at,
                "ref": key[3],
                "total": key[4],
                "seq": seq,
            }
            groups.append((tuple(key), {r[0]: r[1] for r in rows}, first))  # type: ignore[arg-type]
        return groups

    async def accept_partial(
        self, key: PartKey, text: str, *, expected_seqs: Collection[int] | None = None
    ) -> Inbound:
        """Turn an expired, incomplete group into an Inbound and drop its parts, in one transaction.

        Raises LookupError if the group no longer exists (a late part completed it meanwhile), or,
        when `expected_seqs` is given, if its parts changed since `expired_part_groups` read them
        (a late part arrived: the caller should rebuild the text at the next sweep, so that part
        is not silently dropped).
        """
        key = tuple(key)  # type: ignore[assignment]
        seqs = frozenset(expected_seqs) if expected_seqs is not None else None
        return await self._write(functools.partial(self._op_accept_partial, key=key, text=text, seqs=seqs))

    def _op_accept_partial(
        self, conn: Connection, key: PartKey, text: str, seqs: frozenset[int] | None
    ) -> Inbound:
        rows = conn.execute(
            f"SELECT seq, data_coding, received_at FROM mo_part WHERE {_PART_KEY_WHERE} ORDER BY received_at, id",
            key,
        ).fetchall()
        if not rows:
            raise LookupError("no pending parts for that group (already assembled or accepted)")
        if seqs is not None and frozenset(r[0] for r in rows) != seqs:
            raise LookupError("the group's parts changed since they were read")
        received_at = max(r[2] for r in rows)
        return self._insert_assembled(conn, key, rows[0][1], text, received_at, len(rows), partial=True)

    async def complete_mo(
        self, inbound_id: int, replies: Sequence[NewMt], *, disposition: str | None = None, again: bool = False
    ) -> list[Outbound]:
        """Mark the MO processed and queue its replies, in one transaction.

        `disposition`: why it was not answered normally ("muted", "limited", "ignored"), shown by
        `history` in place of "processed"; None for an MO answered normally.
        Idempotent: for an MO already processed nothing is inserted and [] is returned.  Replies
        without an inbound_id are linked to this MO.  Raises LookupError for an unknown id.
        `again`: an earlier call failed in a way that may yet have committed (the connection lost
        before the commit's answer).  With several nodes, if it did, the replies it stored that
        this node claimed and has not sent are returned, for the caller to queue: nobody else
        would send them while this node lives.
        """
        return await self._write(self.complete_mo_op(inbound_id, replies, disposition=disposition, again=again))

    def complete_mo_op(
        self, inbound_id: int, replies: Sequence[NewMt], *, disposition: str | None = None, again: bool = False
    ) -> Callable[[Connection], list[Outbound]]:
        """The write that completes an MO (see complete_mo), for a group of writes (`write_group`)."""
        for mt in replies:
            Channel(mt.channel)
        return functools.partial(self._op_complete_mo, inbound_id=inbound_id, replies=tuple(replies),
                                 at=self._clock(), disposition=disposition, again=again)

    def _op_complete_mo(
        self, conn: Connection, inbound_id: int, replies: tuple[NewMt, ...], at: float,
        disposition: str | None = None, again: bool = False,
    ) -> list[Outbound]:
        cur = conn.execute(
            "UPDATE inbound SET processed_at = ?, disposition = ? WHERE id = ? AND processed_at IS NULL",
            (at, disposition, inbound_id),
        )
        if cur.rowcount == 0:
            if conn.execute("SELECT 1 FROM inbound WHERE id = ?", (inbound_id,)).fetchone() is None:
                raise LookupError(f"no inbound message {inbound_id}")
            claimer = self.node_tag() if again else None

            if claimer is None:
                return []
            rows = conn.execute(
                f"SELECT {OUTBOUND_COLS} FROM outbound WHERE inbound_id = ? AND state = 'queued' AND claimed_by = ?"
                " ORDER BY id", (inbound_id, claimer),
            ).fetchall()
            parts = load_parts(conn, [r[0] for r in rows])
            return [dataclasses.replace(outbound_from_row(r, parts.get(r[0], {})), claimed_by=claimer) for r in rows]
        return [self._insert_mt(conn, mt, inbound_id) for mt in replies]


    async def unprocessed_mos(self) -> list[Inbound]:
        """MOs stored (and acknowledged) but never completed, oldest first: redo them at start-up."""
        return await self._read(self._op_unprocessed_mos)

    @staticmethod
    def _op_unprocessed_mos(conn: Connection) -> list[Inbound]:
        rows = conn.execute(
            f"SELECT {INBOUND_COLS} FROM inbound WHERE processed_at IS NULL ORDER BY id"
        ).fetchall()
        return [inbound_from_row(r) for r in rows]


    async def unprocessed_by_ids(self, ids: Sequence[int]) -> list[Inbound]:
        """These MOs, those of them still unprocessed, oldest first (MOs a dead node left)."""
        return await self._read(self._op_unprocessed_by_ids, tuple(ids))

    @staticmethod
    def _op_unprocessed_by_ids(conn: Connection, ids: tuple[int, ...]) -> list[Inbound]:
        found: list[Inbound] = []
        for i in range(0, len(ids), 500):
            chunk = ids[i : i + 500]
            marks = ",".join("?" * len(chunk))
            rows = conn.execute(
                f"SELECT {INBOUND_COLS} FROM inbound WHERE id IN ({marks}) AND processed_at IS NULL ORDER BY id", chunk
            ).fetchall()
            found.extend(inbound_from_row(r) for r in rows)
        return found

    async def mo_progress(self, inbound_id: int) -> tuple[bool, str | None] | None:
        """(processed?, the node incarnation that accepted it) of one MO; None if unknown."""
        return await self._read(self._op_mo_progress, inbound_id)

    @staticmethod
    def _op_mo_progress(conn: Connection, inbound_id: int) -> tuple[bool, str | None] | None:
        row = conn.execute("SELECT processed_at, node FROM inbound WHERE id = ?", (inbound_id,)).fetchone()
        return None if row is None else (row[0] is not None, row[1])
