"""The transactions feature's tables, as a store schema component (append-only steps)."""

from __future__ import annotations

from smsgw.migrations import Component

STEPS: tuple[tuple[str, ...], ...] = (
    # 1: transactions, registered numbers, status history, notifications, subscribers, rate limits.
    (
        # One row per transaction; `ref` is the canonical reference (refs.ReferenceFormat.parse).
        # Times are seconds since the epoch; shown in the configured time zone.
        """CREATE TABLE txn (
            ref         TEXT PRIMARY KEY,
            service     TEXT NOT NULL,
            status      TEXT NOT NULL,
            note_en     TEXT,
            note_ar     TEXT,
            updated_at  REAL NOT NULL,
            created_at  REAL NOT NULL
        ) WITHOUT ROWID""",
        # The numbers allowed to see a transaction and notified of its changes.  Keyed by number
        # first: both "is this number registered to that ref" and MY are look-ups by number.
        """CREATE TABLE txn_msisdn (
            msisdn  TEXT NOT NULL,
            ref     TEXT NOT NULL REFERENCES txn (ref),
            PRIMARY KEY (msisdn, ref)
        ) WITHOUT ROWID""",
        "CREATE INDEX txn_msisdn_ref ON txn_msisdn (ref)",
        # Every status change the feed made (old_status NULL: created), and who made it
        # ("api:<token name>", "csv:<file>").
        """CREATE TABLE txn_change (
            id          INTEGER PRIMARY KEY,
            ref         TEXT NOT NULL,
            old_status  TEXT,
            new_status  TEXT NOT NULL,
            updated_at  REAL NOT NULL,
            changed_at  REAL NOT NULL,
            source      TEXT NOT NULL
        )""",
        "CREATE INDEX txn_change_ref ON txn_change (ref, id)",
        # One row per notification owed for a change, written in the change's transaction.
        # pending -> queued (an outbound row exists: outbound_id) | suppressed (opted out meanwhile)
        # | withdrawn (the number was removed from the transaction meanwhile).
        # A process without the outbound queue (the CSV importer) leaves them pending; the gateway
        # turns each into exactly one MT, in one transaction that also marks it queued.
        """CREATE TABLE txn_notice (
            id            INTEGER PRIMARY KEY,
            change_id     INTEGER NOT NULL REFERENCES txn_change (id),
            ref           TEXT NOT NULL,
            msisdn        TEXT NOT NULL,
            text          TEXT NOT NULL,
            created_at    REAL NOT NULL,
            state         TEXT NOT NULL,
            carrier       TEXT,
            outbound_id   INTEGER,
            dispatched_at REAL
        )""",
        # Never two notifications of one change to one number, whatever the code above does.
        "CREATE UNIQUE INDEX txn_notice_once ON txn_notice (change_id, msisdn)",
        "CREATE INDEX txn_notice_pending ON txn_notice (id) WHERE state = 'pending'",
        # What we know of a number from its own messages: the carrier and language it last used
        # (for notifications) and whether it opted out of notifications.
        """CREATE TABLE txn_subscriber (
            msisdn     TEXT PRIMARY KEY,
            carrier    TEXT,
            lang       TEXT,
            seen_at    REAL,
            opted_out  INTEGER NOT NULL DEFAULT 0,
            opted_at   REAL
        ) WITHOUT ROWID""",
        # Failed look-ups per number in the current window (fixed window from the first failure).
        # warned = 1 once the "too many attempts" reply went out; after it, failures get silence.
        """CREATE TABLE txn_lookup_limit (
            msisdn        TEXT PRIMARY KEY,
            window_start  REAL NOT NULL,
            failures      INTEGER NOT NULL,
            warned        INTEGER NOT NULL DEFAULT 0
        ) WITHOUT ROWID""",
    ),
)

SCHEMA: Component = ("transactions", STEPS)
