"""The parking tables, as a schema component the store migrates (append-only steps, like the core)."""

from __future__ import annotations

from typing import Final

from smsgw.migrations import Component

NAME: Final = "parking"

STEPS: Final[tuple[tuple[str, ...], ...]] = (
    # 1: sessions, ledger, request outcomes.
    (
        # One row per stay of one plate.  A stay is active while state = 'active' and end_at is in
        # the future; a new booking for a plate with an active stay extends that stay.
        """CREATE TABLE parking_session (
            id                   INTEGER PRIMARY KEY,
            ticket               TEXT    NOT NULL UNIQUE,
            plate                TEXT    NOT NULL,
            zone                 TEXT    NOT NULL,
            carrier              TEXT    NOT NULL,
            msisdn               TEXT    NOT NULL,
            short_code           TEXT    NOT NULL,
            lang                 TEXT    NOT NULL,
            start_at             REAL    NOT NULL,
            end_at               REAL    NOT NULL,
            tariff_baisa         INTEGER NOT NULL,
            unit_minutes         INTEGER NOT NULL,
            charged_baisa        INTEGER NOT NULL DEFAULT 0,
            credited_baisa       INTEGER NOT NULL DEFAULT 0,
            state                TEXT    NOT NULL CHECK (state IN ('active', 'cancelled')),
            reminder_at          REAL,
            reminder_sent_at     REAL,
            reminder_outbound_id INTEGER,
            created_at           REAL    NOT NULL,
            updated_at           REAL    NOT NULL
        )""",
        "CREATE INDEX parking_session_plate ON parking_session (plate, end_at) WHERE state = 'active'",
        "CREATE INDEX parking_session_msisdn ON parking_session (msisdn, end_at)",
        """CREATE INDEX parking_session_reminder ON parking_session (reminder_at)
            WHERE reminder_sent_at IS NULL AND reminder_at IS NOT NULL""",
        # Money, in baisa, per carrier and MSISDN: what each carrier bills its subscriber and
        # settles with the municipality.  A credit names the charge it gives back (charge_id).
        """CREATE TABLE parking_ledger (
            id           INTEGER PRIMARY KEY,
            session_id   INTEGER NOT NULL REFERENCES parking_session (id),
            kind         TEXT    NOT NULL CHECK (kind IN ('charge', 'credit')),
            amount_baisa INTEGER NOT NULL CHECK (amount_baisa > 0),
            minutes      INTEGER NOT NULL DEFAULT 0,
            carrier      TEXT    NOT NULL,
            msisdn       TEXT    NOT NULL,
            charge_id    INTEGER REFERENCES parking_ledger (id),
            request_id   INTEGER,
            at           REAL    NOT NULL,
            local_date   TEXT    NOT NULL,  -- YYYY-MM-DD in the parking time zone: the settlement day
            local_time   TEXT    NOT NULL   -- ISO 8601 with offset, as the settlement file shows it
        )""",
        "CREATE INDEX parking_ledger_settlement ON parking_ledger (local_date, carrier)",
        "CREATE INDEX parking_ledger_session ON parking_ledger (session_id)",
        "CREATE INDEX parking_ledger_msisdn ON parking_ledger (msisdn, session_id)",
        # The outcome of every state-changing request, keyed by the inbound message id: an MO
        # processed again after a crash gets the same outcome back and changes nothing.
        """CREATE TABLE parking_request (
            request_id INTEGER PRIMARY KEY,
            operation  TEXT    NOT NULL,
            outcome    TEXT    NOT NULL,
            at         REAL    NOT NULL
        )""",
    ),
    # 2: the reading a driver was asked to confirm (handlers/parking/confirm.py).
    (
        # At most one per number: a new question replaces the previous one.  Kept after its answer
        # (answered_by, the inbound id of the Y or of the compact form that settled it), so a Y sent
        # twice gets the first answer's outcome again instead of a second charge; rows that expired
        # more than a day ago are deleted when the next question is stored.
        """CREATE TABLE parking_pending (
            msisdn        TEXT    PRIMARY KEY,
            plate         TEXT    NOT NULL,
            minutes       INTEGER NOT NULL,
            zone          TEXT,
            extend        INTEGER NOT NULL,  -- 1: adds to an active stay, 0: a new stay
            quoted_baisa  INTEGER NOT NULL,
            lang          TEXT    NOT NULL,
            asked_by      INTEGER,           -- inbound id of the message that was not certain
            created_at    REAL    NOT NULL,
            expires_at    REAL    NOT NULL,
            answered_by   INTEGER,
            answered_at   REAL
        )""",
        "CREATE INDEX parking_pending_expires ON parking_pending (expires_at)",
    ),
    # 3: a request's sender and what it asked, so the same booking sent again within the repeat
    # window is recognised as one request (ParkingService._op_book).
    (
        "ALTER TABLE parking_request ADD COLUMN msisdn TEXT",
        "ALTER TABLE parking_request ADD COLUMN request_key TEXT",
        """CREATE INDEX parking_request_repeat ON parking_request (msisdn, request_key, at)
            WHERE request_key IS NOT NULL""",
    ),
)

COMPONENT: Final[Component] = (NAME, STEPS)
