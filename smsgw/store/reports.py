"""Support and metrics reads: a number's history, rows per state."""

from __future__ import annotations

from typing import Any

from smsgw.store.plumbing import Plumbing
from smsgw.store.types import MT_STATES, Connection


class ReportArea(Plumbing):
    """Read-only views for support staff and metrics (a mixin of Store)."""

    async def history(
        self, msisdn: str | None = None, since: float | None = None, limit: int = 100
    ) -> list[dict[str, Any]]:
        """MO and MT rows, newest first, for support staff.  Contains full numbers and texts:
        mask before logging or showing them anywhere else."""
        return await self._read(self._op_history, msisdn, since, limit)

    @staticmethod
    def _op_history(
        conn: Connection, msisdn: str | None, since: float | None, limit: int
    ) -> list[dict[str, Any]]:
        def where(time_col: str) -> tuple[str, list[Any]]:
            clauses, params = [], []
            if msisdn is not None:
                clauses.append("msisdn = ?")
                params.append(msisdn)
            if since is not None:
                clauses.append(f"{time_col} >= ?")
                params.append(since)
            return (" WHERE " + " AND ".join(clauses) if clauses else ""), params

        mo_where, mo_params = where("received_at")
        mt_where, mt_params = where("created_at")
        items: list[dict[str, Any]] = []
        for r in conn.execute(
            "SELECT id, carrier, msisdn, short_code, text, channel, session_event, received_at,"
            f" processed_at, partial, parts, disposition FROM inbound{mo_where} ORDER BY received_at DESC LIMIT ?",
            (*mo_params, limit),
        ):
            items.append(
                {
                    "direction": "mo",
                    "id": r[0],
                    "carrier": r[1],
                    "msisdn": r[2],
                    "short_code": r[3],
                    "text": r[4],
                    "channel": r[5],
                    "session_event": r[6],
                    "at": r[7],
                    # muted / limited / ignored: stored and acknowledged, not answered as asked.
                    "state": (r[11] or "processed") if r[8] is not None else "received",
                    "processed_at": r[8],
                    "partial": bool(r[9]),
                    "parts": r[10],
                }
            )
        for r in conn.execute(
            "SELECT id, carrier, msisdn, short_code, text, channel, created_at, state, reason, kind,"
            f" inbound_id, attempts, total_parts FROM outbound{mt_where} ORDER BY created_at DESC LIMIT ?",
            (*mt_params, limit),
        ):
            items.append(
                {
                    "direction": "mt",
                    "id": r[0],
                    "carrier": r[1],
                    "msisdn": r[2],
                    "short_code": r[3],
                    "text": r[4],
                    "channel": r[5],
                    "at": r[6],
                    "state": r[7],
                    "reason": r[8],
                    "kind": r[9],
                    "inbound_id": r[10],
                    "attempts": r[11],
                    "parts": r[12],
                }
            )
        items.sort(key=lambda item: (item["at"], item["direction"] == "mt", item["id"]), reverse=True)
        return items[:limit]

    async def counts(self) -> dict[str, int]:
        """Rows per state: mo_received (all MOs), mo_unprocessed, mo_parts_pending, mt_<state> for
        every MT state, dlr_unmatched."""
        return await self._read(self._op_counts)

    @staticmethod
    def _op_counts(conn: Connection) -> dict[str, int]:
        counts = {
            "mo_received": conn.execute("SELECT COUNT(*) FROM inbound").fetchone()[0],
            "mo_unprocessed": conn.execute("SELECT COUNT(*) FROM inbound WHERE processed_at IS NULL").fetchone()[0],
            "mo_parts_pending": conn.execute("SELECT COUNT(*) FROM mo_part").fetchone()[0],
        }
        counts.update({f"mt_{state}": 0 for state in MT_STATES})
        for state, n in conn.execute("SELECT state, COUNT(*) FROM outbound GROUP BY state"):
            counts[f"mt_{state}"] = n
        counts["dlr_unmatched"] = conn.execute("SELECT COUNT(*) FROM dlr WHERE outbound_id IS NULL").fetchone()[0]
        return counts

