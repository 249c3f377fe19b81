"""How long the transactions feature keeps its rows (smsgw/retention.py).

Notification texts (with the number they went to) and failed look-up counters go with the
messages.  The transactions, their registered numbers, history and opt-outs stay: the first
three are the back office's records, changed through its feed; an opt-out must be honoured for
as long as the number may be notified.
"""

from __future__ import annotations

from typing import Final

from smsgw.retention import Rule

RULES: Final[tuple[Rule, ...]] = (
    Rule(
        "txn_notice", "txn_notice", "messages",
        "SELECT id FROM txn_notice WHERE created_at < :cutoff AND state <> 'pending' ORDER BY created_at LIMIT :limit",
        ("DELETE FROM txn_notice WHERE id IN ({keys})",),
        ("CREATE INDEX IF NOT EXISTS txn_notice_created ON txn_notice (created_at)",),
    ),
    Rule(
        "txn_lookup_limit", "txn_lookup_limit", "messages",
        "SELECT msisdn FROM txn_lookup_limit WHERE window_start < :cutoff ORDER BY window_start LIMIT :limit",
        ("DELETE FROM txn_lookup_limit WHERE msisdn IN ({keys})",),
        ("CREATE INDEX IF NOT EXISTS txn_lookup_limit_start ON txn_lookup_limit (window_start)",),
        key_columns=("msisdn",),
    ),
)
