"""Delivery receipts: stored as received, matched to the MT part they report on, and the MT's
state derived from its parts' receipts.

A receipt can overtake its submit_sm_resp (the SMSC sends it before we read the response): it is
kept unmatched (outbound_id NULL) and matched when `record_part_sent` records the part.  A late
intermediate receipt (ENROUTE after DELIVRD) never undoes a final one.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable

from smsgw.store.plumbing import Plumbing
from smsgw.store.types import DELIVERED, DLR_DELIVERED, OPEN_STATES, SENT, UNDELIVERED, Connection, NewReceipt


class ReceiptArea(Plumbing):
    """Receipts (a mixin of Store)."""

    def record_dlr(
        self, carrier: str, smsc_id: str, state: str, error: str | None, final: bool, raw: str, at: float
    ) -> "asyncio.Future[int | None]":
        """Store a delivery receipt and match it to the MT part (carrier, normalised smsc_id).

        `state` is the receipt's stat value (DELIVRD, UNDELIV, EXPIRED, REJECTD, ENROUTE...).
        When every part of the MT has a final receipt, the MT becomes 'delivered' (all DELIVRD) or
        'undelivered'.  The future is set once COMMITTED to the outbound id, or None if no part
        matches yet: the receipt is kept and matched by record_part_sent when the submit_sm_resp
        arrives.
        """
        return self.submit(self.receipt_op(NewReceipt(carrier, smsc_id, state, error, final, raw, at)))

    def receipt_op(self, receipt: NewReceipt) -> Callable[[Connection], int | None]:
        """The write that stores `receipt` (see record_dlr), for a group of writes."""
        return functools.partial(
            self._op_record_dlr,
            carrier=receipt.carrier,
            smsc_id=receipt.smsc_id,
            state=receipt.state.upper(),
            error=receipt.error,
            final=receipt.final,
            raw=receipt.raw,
            at=receipt.received_at,
        )

    def _op_record_dlr(
        self,
        conn: Connection,
        carrier: str,
        smsc_id: str,
        state: str,
        error: str | None,
        final: bool,
        raw: str,
        at: float,
    ) -> int | None:
        # Newest submission first: SMSC ids can be reused over months.
        row = conn.execute(
            "SELECT p.outbound_id, p.part_no, o.state, o.total_parts FROM mt_part AS p"
            " JOIN outbound AS o ON o.id = p.outbound_id"
            " WHERE p.carrier = ? AND p.smsc_id = ? ORDER BY p.id DESC LIMIT 1",
            (carrier, smsc_id),
        ).fetchone()
        outbound_id, part_no, mt_state, total = row if row is not None else (None, None, None, None)
        conn.execute(
            "INSERT INTO dlr (carrier, smsc_id, outbound_id, part_no, state, error, final, raw, received_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (carrier, smsc_id, outbound_id, part_no, state, error, int(final), raw, at),
        )
        if outbound_id is None:
            return None
        applied = apply_receipt(conn, outbound_id, part_no, state, error, final, at)
        if applied and mt_state in OPEN_STATES and total:
            if total == 1:  # the common case: this receipt alone decides, no need to count parts
                new_state = (DELIVERED if state == DLR_DELIVERED else UNDELIVERED) if final else SENT
            else:
                new_state = parts_state(conn, outbound_id, total) or mt_state
            if new_state != mt_state:
                conn.execute(
                    "UPDATE outbound SET state = ?, updated_at = ? WHERE id = ?", (new_state, at, outbound_id)
                )
        return outbound_id



def apply_receipt(
    conn: Connection,
    outbound_id: int,
    part_no: int,
    state: str,
    error: str | None,
    final: bool,
    at: float,
) -> bool:
    """Put a receipt on its part; False if ignored (a late intermediate after a final one)."""
    # An intermediate receipt (ENROUTE, ACCEPTD) arriving late must not undo a final one.
    cur = conn.execute(
        "UPDATE mt_part SET dlr_state = ?, dlr_error = ?, dlr_final = ?, dlr_at = ?"
        " WHERE outbound_id = ? AND part_no = ? AND (dlr_final = 0 OR ? = 1)",
        (state, error, int(final), at, outbound_id, part_no, int(final)),
    )
    return cur.rowcount > 0


def parts_state(conn: Connection, outbound_id: int, total: int) -> str | None:
    """The state an MT's parts imply: sent, delivered or undelivered; None while a part is unsent."""
    sent, finals, delivered = conn.execute(
        "SELECT COUNT(*), COALESCE(SUM(dlr_final), 0),"
        " COALESCE(SUM(CASE WHEN dlr_final = 1 AND dlr_state = ? THEN 1 ELSE 0 END), 0)"
        " FROM mt_part WHERE outbound_id = ?",
        (DLR_DELIVERED, outbound_id),
    ).fetchone()
    if sent < total:
        return None
    if finals >= total:
        return DELIVERED if delivered >= total else UNDELIVERED
    return SENT
