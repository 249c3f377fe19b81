"""How long parking keeps its rows (smsgw/retention.py).

A request's outcome (kept so that an MO processed again after a crash changes nothing) and a
question the driver was asked (a pending confirmation, with the plate) go with the messages.  Sessions and their ledger entries are what the carriers' settlements are made of:
they are kept for the accounting period, and only a session that ended, and saw no money move,
before it.
"""

from __future__ import annotations

from typing import Final

from smsgw.store.retention import Rule

RULES: Final[tuple[Rule, ...]] = (
    Rule(
        "parking_request", "parking_request", "messages",
        "SELECT request_id FROM parking_request WHERE at < ? ORDER BY at LIMIT ?",
        ("DELETE FROM parking_request WHERE request_id IN ({keys})",),
        ("CREATE INDEX IF NOT EXISTS parking_request_at ON parking_request (at)",),
        key_columns=("request_id",),
    ),
    Rule(
        "parking_pending", "parking_pending", "messages",
        "SELECT msisdn FROM parking_pending WHERE expires_at < ? ORDER BY expires_at LIMIT ?",
        ("DELETE FROM parking_pending WHERE msisdn IN ({keys})",),
        key_columns=("msisdn",),
    ),
    Rule(
        "parking_session", "parking_session", "accounting",
        "SELECT s.id FROM parking_session AS s WHERE s.updated_at < ? AND s.end_at < ?"
        " AND NOT EXISTS (SELECT 1 FROM parking_ledger AS l WHERE l.session_id = s.id AND l.at >= ?)"
        " ORDER BY s.updated_at LIMIT ?",
        (
            # A credit names the charge it gives back: both go, in one statement.
            "DELETE FROM parking_ledger WHERE session_id IN ({keys})",
            "DELETE FROM parking_session WHERE id IN ({keys})",
        ),
        (
            "CREATE INDEX IF NOT EXISTS parking_session_updated ON parking_session (updated_at)",
            "CREATE INDEX IF NOT EXISTS parking_ledger_charge ON parking_ledger (charge_id) WHERE charge_id IS NOT NULL",
        ),
        select_params=("cutoff", "cutoff", "cutoff", "limit"),
    ),
)
