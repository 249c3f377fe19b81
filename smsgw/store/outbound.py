"""Outbound (MT) messages: stored before they are sent, their parts' submit responses, retries,
and final states.

States: queued → sent → delivered | undelivered (receipts, smsgw/store/receipts.py), or
queued/sent → failed | expired.  A part is recorded as sent only with the carrier's
submit_sm_resp 0, which is what lets a restart resend exactly what the carrier never took.
"""

from __future__ import annotations

import asyncio
import functools
import random
from collections.abc import Callable, Sequence
from typing import Any

from smsgw.message import Channel
from smsgw.store.plumbing import Plumbing
from smsgw.store.receipts import apply_receipt, parts_state
from smsgw.store.types import (
    EXPIRED,
    FAILED,
    OPEN_STATES,
    QUEUED,
    SENT,
    Connection,
    NewMt,
    Outbound,
)

OUTBOUND_COLS = (
    "id, carrier, msisdn, short_code, text, channel, session_id, end_session, created_at, "
    "expires_at, state, attempts, concat_ref, kind, inbound_id, last_error, total_parts"
)
_IN_CHUNK = 500  # ids per `IN (...)`, well under SQLite's bound-variable limit


def outbound_from_row(row: Sequence[Any], parts_sent: dict[int, str] | None = None) -> Outbound:
    return Outbound(
        id=row[0],
        carrier=row[1],
        msisdn=row[2],
        short_code=row[3],
        text=row[4],
        channel=row[5],
        session_id=row[6],
        end_session=bool(row[7]),
        created_at=row[8],
        expires_at=row[9],
        state=row[10],
        attempts=row[11],
        concat_ref=row[12],
        parts_sent=parts_sent if parts_sent is not None else {},
        kind=row[13],
        inbound_id=row[14],
        last_error=row[15],
        total_parts=row[16],
    )


def load_parts(conn: Connection, outbound_ids: Sequence[int]) -> dict[int, dict[int, str]]:
    """The parts already submitted of these MTs: {outbound_id: {part_no: smsc_id}}."""
    parts: dict[int, dict[int, str]] = {}
    for i in range(0, len(outbound_ids), _IN_CHUNK):
        chunk = list(outbound_ids[i : i + _IN_CHUNK])
        marks = ",".join("?" * len(chunk))
        for outbound_id, part_no, smsc_id in conn.execute(
            f"SELECT outbound_id, part_no, smsc_id FROM mt_part WHERE outbound_id IN ({marks})", chunk
        ):
            parts.setdefault(outbound_id, {})[part_no] = smsc_id
    return parts


class OutboundArea(Plumbing):
    """The MT half of the store (a mixin of Store)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Next UDH/SAR reference per carrier.  Only touched on the connection thread (inside
        # writes), so it needs no lock.
        self._concat_refs: dict[str, int] = {}
        #: Several nodes (smsgw/cluster.py): the claim an MT of this carrier and channel is stored
        #: with, i.e. this node's incarnation when it holds the carrier's bind and has room for it;
        #: None: left for whichever node claims it.  Called on the store's thread.
        self.claim_for: Callable[[str, str], str | None] = lambda carrier, channel: None

    async def _opened(self) -> None:
        await super()._opened()
        await self.engine.call(self._load_concat_refs)

    def _load_concat_refs(self, conn: Connection) -> None:
        # Continue each carrier's reference sequence where the last run stopped, so a restart does
        # not reuse the reference of a long MT that may still be in flight.
        for carrier, ref in conn.execute(
            "SELECT carrier, concat_ref FROM outbound"
            " WHERE id IN (SELECT MAX(id) FROM outbound GROUP BY carrier)"
        ):
            self._concat_refs[carrier] = (ref + 1) % 256

    async def enqueue_mt(self, mt: NewMt) -> Outbound:
        """Store a standalone MT (notice, reminder) in state 'queued'; returns once COMMITTED."""
        Channel(mt.channel)
        return await self._write(functools.partial(self._insert_mt, mt=mt, inbound_id=None))

    def _next_concat_ref(self, carrier: str) -> int:
        # A carrier never seen starts at a random point, so references do not collide with
        # whatever an earlier, wiped installation left in flight.
        ref = self._concat_refs.get(carrier)
        if ref is None:
            ref = random.randrange(256)
        self._concat_refs[carrier] = (ref + 1) % 256
        return ref

    def insert_mt(self, conn: Connection, mt: NewMt) -> Outbound:
        """Insert an MT from inside a feature's `write` op, so it commits atomically with the
        feature's own change (a status change and its notification, a reminder and its flag).
        After the write returns, hand the Outbound to the queue (`ServiceContext.enqueue`)."""
        return self._insert_mt(conn, mt, None)

    def _insert_mt(self, conn: Connection, mt: NewMt, inbound_id: int | None) -> Outbound:
        link = mt.inbound_id if mt.inbound_id is not None else inbound_id
        concat_ref = self._next_concat_ref(mt.carrier)
        claimed_by = self.claim_for(mt.carrier, mt.channel)
        cur = conn.execute(
            "INSERT INTO outbound (carrier, msisdn, short_code, text, channel, session_id,"
            " end_session, kind, inbound_id, created_at, expires_at, state, concat_ref, claimed_by)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                mt.carrier,
                mt.msisdn,
                mt.short_code,
                mt.text,
                mt.channel,
                mt.session_id,
                int(mt.end_session),
                mt.kind,
                link,
                mt.created_at,
                mt.expires_at,
                QUEUED,
                concat_ref,
                claimed_by,
            ),
        )
        return Outbound(
            id=cur.lastrowid,  # type: ignore[arg-type]
            carrier=mt.carrier,
            msisdn=mt.msisdn,
            short_code=mt.short_code,
            text=mt.text,
            channel=mt.channel,
            session_id=mt.session_id,
            end_session=mt.end_session,
            created_at=mt.created_at,
            expires_at=mt.expires_at,
            state=QUEUED,
            attempts=0,
            concat_ref=concat_ref,
            parts_sent={},
            kind=mt.kind,
            inbound_id=link,
            claimed_by=claimed_by,
        )


    # ---------------------------------------------------------------- MT

    async def queued_mts(
        self, carrier: str | None = None, limit: int | None = None, after_id: int = 0
    ) -> list[Outbound]:
        """MTs in state 'queued' (including partly sent ones, see parts_sent), oldest first;
        `after_id` pages through a backlog larger than the queue keeps in memory."""
        return await self._read(self._op_queued_mts, carrier, limit, after_id)

    @staticmethod
    def _op_queued_mts(
        conn: Connection, carrier: str | None, limit: int | None, after_id: int = 0
    ) -> list[Outbound]:
        sql = f"SELECT {OUTBOUND_COLS} FROM outbound WHERE state = ? AND id > ?"
        params: list[Any] = [QUEUED, after_id]
        if carrier is not None:
            sql += " AND carrier = ?"
            params.append(carrier)
        sql += " ORDER BY id"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit)
        rows = conn.execute(sql, params).fetchall()
        # Only MTs with a part already submitted have total_parts set; fetch parts just for those.
        parts = load_parts(conn, [r[0] for r in rows if r[16] is not None])
        return [outbound_from_row(r, parts.get(r[0], {})) for r in rows]

    async def get_outbound(self, outbound_id: int) -> Outbound | None:
        return await self._read(self._op_get_outbound, outbound_id)

    @staticmethod
    def _op_get_outbound(conn: Connection, outbound_id: int) -> Outbound | None:
        row = conn.execute(f"SELECT {OUTBOUND_COLS} FROM outbound WHERE id = ?", (outbound_id,)).fetchone()
        if row is None:
            return None
        parts = dict(
            conn.execute("SELECT part_no, smsc_id FROM mt_part WHERE outbound_id = ?", (outbound_id,)).fetchall()
        )
        return outbound_from_row(row, parts)

    def record_part_sent(
        self,
        outbound_id: int,
        part_no: int,
        total_parts: int,
        smsc_id: str,
        smsc_id_raw: str,
        sent_at: float,
    ) -> "asyncio.Future[None]":
        """Record a part's submit_sm_resp (the future is set once COMMITTED).  `smsc_id` must already be normalised (as record_dlr's).

        When all parts are recorded the MT becomes 'sent'.  Receipts that arrived before this
        response (stored unmatched) are matched now, so the MT may go straight to 'delivered'.
        A part submitted again (retry) replaces the earlier submission and its receipt state.
        """
        return self.submit(
            functools.partial(
                self._op_record_part_sent,
                outbound_id=outbound_id,
                part_no=part_no,
                total_parts=total_parts,
                smsc_id=smsc_id,
                smsc_id_raw=smsc_id_raw,
                sent_at=sent_at,
            )
        )

    def _op_record_part_sent(
        self,
        conn: Connection,
        outbound_id: int,
        part_no: int,
        total_parts: int,
        smsc_id: str,
        smsc_id_raw: str,
        sent_at: float,
    ) -> None:
        row = conn.execute("SELECT carrier, state FROM outbound WHERE id = ?", (outbound_id,)).fetchone()
        if row is None:
            raise LookupError(f"no outbound message {outbound_id}")
        carrier, state = row
        conn.execute(
            "INSERT INTO mt_part (outbound_id, part_no, total_parts, carrier, smsc_id, smsc_id_raw, sent_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (outbound_id, part_no) DO UPDATE SET total_parts = excluded.total_parts,"
            " smsc_id = excluded.smsc_id, smsc_id_raw = excluded.smsc_id_raw, sent_at = excluded.sent_at,"
            " dlr_state = NULL, dlr_error = NULL, dlr_final = 0, dlr_at = NULL",
            (outbound_id, part_no, total_parts, carrier, smsc_id, smsc_id_raw, sent_at),
        )
        early = conn.execute(
            "SELECT id, state, error, final, received_at FROM dlr"
            " WHERE carrier = ? AND smsc_id = ? AND outbound_id IS NULL ORDER BY id",
            (carrier, smsc_id),
        ).fetchall()
        for dlr_id, dlr_state, error, final, received_at in early:
            apply_receipt(conn, outbound_id, part_no, dlr_state, error, bool(final), received_at)
            conn.execute(
                "UPDATE dlr SET outbound_id = ?, part_no = ? WHERE id = ?", (outbound_id, part_no, dlr_id)
            )
        new_state = state
        if state in OPEN_STATES:
            if total_parts == 1 and not early:
                new_state = SENT  # the common case, without counting parts
            else:
                new_state = parts_state(conn, outbound_id, total_parts) or state
        conn.execute(
            "UPDATE outbound SET total_parts = ?, state = ?, updated_at = ? WHERE id = ?",
            (total_parts, new_state, sent_at, outbound_id),
        )

    def record_attempt(self, outbound_id: int, attempts: int, error: str | None) -> "asyncio.Future[None]":
        """Record the number of submit attempts so far and the last temporary error (the future is
        set once COMMITTED)."""
        return self.submit(
            functools.partial(
                self._op_record_attempt, outbound_id=outbound_id, attempts=attempts, error=error, at=self._clock()
            )
        )

    @staticmethod
    def _op_record_attempt(
        conn: Connection, outbound_id: int, attempts: int, error: str | None, at: float
    ) -> None:
        cur = conn.execute(
            "UPDATE outbound SET attempts = ?, last_error = ?, updated_at = ? WHERE id = ?",
            (attempts, error, at, outbound_id),
        )
        if cur.rowcount == 0:
            raise LookupError(f"no outbound message {outbound_id}")

    def record_final(self, outbound_id: int, state: str, reason: str | None, at: float) -> "asyncio.Future[None]":
        """Give up on an MT: state 'failed' (permanent error, retries exhausted) or 'expired'.

        Applies only while the MT is queued or sent; a final state already reached is kept.  The
        future is set once COMMITTED.
        """
        if state not in (FAILED, EXPIRED):
            raise ValueError(f"record_final state must be {FAILED!r} or {EXPIRED!r}, not {state!r}")
        return self.submit(
            functools.partial(self._op_record_final, outbound_id=outbound_id, state=state, reason=reason, at=at)
        )

    @staticmethod
    def _op_record_final(conn: Connection, outbound_id: int, state: str, reason: str | None, at: float) -> None:
        cur = conn.execute(
            "UPDATE outbound SET state = ?, reason = ?, updated_at = ? WHERE id = ? AND state IN (?, ?)",
            (state, reason, at, outbound_id, *OPEN_STATES),
        )
        if cur.rowcount == 0 and conn.execute("SELECT 1 FROM outbound WHERE id = ?", (outbound_id,)).fetchone() is None:
            raise LookupError(f"no outbound message {outbound_id}")


    async def outbound_state(self, outbound_id: int) -> dict[str, Any]:
        """State, reason and per-part receipt states of one MT ({} if unknown); for tests and admin."""
        return await self._read(self._op_outbound_state, outbound_id)

    @staticmethod
    def _op_outbound_state(conn: Connection, outbound_id: int) -> dict[str, Any]:
        row = conn.execute(
            "SELECT state, reason, attempts, last_error, total_parts, updated_at FROM outbound WHERE id = ?",
            (outbound_id,),
        ).fetchone()
        if row is None:
            return {}
        parts = conn.execute(
            "SELECT part_no, smsc_id, smsc_id_raw, sent_at, dlr_state, dlr_error, dlr_final, dlr_at"
            " FROM mt_part WHERE outbound_id = ? ORDER BY part_no",
            (outbound_id,),
        ).fetchall()
        return {
            "id": outbound_id,
            "state": row[0],
            "reason": row[1],
            "attempts": row[2],
            "last_error": row[3],
            "total_parts": row[4],
            "updated_at": row[5],
            "parts": [
                {
                    "part_no": p[0],
                    "smsc_id": p[1],
                    "smsc_id_raw": p[2],
                    "sent_at": p[3],
                    "dlr_state": p[4],
                    "dlr_error": p[5],
                    "dlr_final": bool(p[6]),
                    "dlr_at": p[7],
                }
                for p in parts
            ],
        }

