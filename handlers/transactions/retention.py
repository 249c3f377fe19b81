"""How long the transactions feature keeps its rows (smsgw/retention.py).

Notification texts (with the number they went to) and failed look-up counters go with the
messages; so does what a number's own messages taught us (the carrier and language it last used)
once it is registered to no transaction.  The transactions, their registered numbers, history
and opt-outs stay: the first three are the back office's records, changed through its feed; an
opt-out must be honoured for as long as the number may be notified.
"""

from __future__ import annotations

from typing import Final

from smsgw.store.retention import Rule

RULES: Final[tuple[Rule, ...]] = (
    Rule(
        "txn_notice", "txn_notice", "messages",
        "SELECT id FROM txn_notice WHERE created_at < ? AND state <> 'pending' ORDER BY created_at LIMIT ?",
        ("DELETE FROM txn_notice WHERE id IN ({keys})",),
        ("CREATE INDEX IF NOT EXISTS txn_notice_created ON txn_notice (created_at)",),
    ),
    Rule(
        "txn_lookup_limit", "txn_lookup_limit", "messages",
        "SELECT msisdn FROM txn_lookup_limit WHERE window_start < ? ORDER BY window_start LIMIT ?",
        ("DELETE FROM txn_lookup_limit WHERE msisdn IN ({keys})",),
        ("CREATE INDEX IF NOT EXISTS txn_lookup_limit_start ON txn_lookup_limit (window_start)",),
        key_columns=("msisdn",),
    ),
    Rule(
        "txn_subscriber", "txn_subscriber", "messages",
        "SELECT s.msisdn FROM txn_subscriber AS s WHERE s.seen_at < ? AND s.opted_out = 0"
        " AND NOT EXISTS (SELECT 1 FROM txn_msisdn AS m WHERE m.msisdn = s.msisdn) ORDER BY s.seen_at LIMIT ?",
        ("DELETE FROM txn_subscriber WHERE msisdn IN ({keys})",),
        ("CREATE INDEX IF NOT EXISTS txn_subscriber_seen ON txn_subscriber (seen_at)",),
        key_columns=("msisdn",),
    ),
)
