"""USSD sessions in the store: one row per dialogue, keyed by carrier, MSISDN and session reference.

A row is written in the same transaction as the screen it leads to (`op_save_turn` inserts the
MT with `Store.insert_mt`), so after a crash the store holds either the old step and no screen, or
the new step and its screen, which the outbound queue resumes: a crash loses at most the screen
in flight. `last_inbound_id` makes replays harmless: an MO the gateway processes a second time
(acknowledged, then a crash before it was marked processed) finds its turn already taken.

The functions named op_* run on the store's thread inside `Store.write` / `Store.read`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from smsgw.migrations import Component
    from smsgw.store import Connection, NewMt, Outbound, Store

OPEN: Final = "open"
ENDED: Final = "ended"  # the app showed its final screen
TIMED_OUT: Final = "timed_out"  # no answer in time: released by the gateway, the network told
ABORTED: Final = "aborted"  # the handset hung up
RELEASED: Final = "released"  # an answer came for a dialogue the gateway no longer had open
STATES: Final = (OPEN, ENDED, TIMED_OUT, ABORTED, RELEASED)

SCHEMA: Component = (
    "ussd_sessions",
    (
        # 1: one row per dialogue. A new dialogue on the same key (the carrier reuses a reference,
        # or a handset keyed by MSISDN dials again) replaces the old row.
        (
            """CREATE TABLE ussd_session (
                carrier         TEXT    NOT NULL,
                msisdn          TEXT    NOT NULL,
                session_ref     TEXT    NOT NULL,
                service_code    TEXT    NOT NULL,
                state           TEXT    NOT NULL,
                app_state       TEXT,
                opened_at       REAL    NOT NULL,
                updated_at      REAL    NOT NULL,
                expires_at      REAL    NOT NULL,
                closed_at       REAL,
                last_inbound_id INTEGER,
                screens         INTEGER NOT NULL DEFAULT 0,
                PRIMARY KEY (carrier, msisdn, session_ref)
            )""",
            "CREATE INDEX ussd_session_open ON ussd_session (expires_at) WHERE state = 'open'",
        ),
    ),
)


@dataclass(frozen=True, slots=True)
class SessionKey:
    carrier: str
    msisdn: str
    session_ref: str


@dataclass(frozen=True, slots=True)
class Session:
    """One dialogue as stored."""

    key: SessionKey
    service_code: str
    state: str
    app_state: str | None
    opened_at: float
    updated_at: float
    expires_at: float
    closed_at: float | None
    last_inbound_id: int | None
    screens: int

    @property
    def open(self) -> bool:
        return self.state == OPEN

    def expired(self, now: float) -> bool:
        return self.open and now >= self.expires_at

    def answered(self, inbound_id: int) -> bool:
        """Whether this MO's turn was already taken (a replay after a restart)."""
        return self.last_inbound_id is not None and inbound_id <= self.last_inbound_id


_COLS = (
    "carrier, msisdn, session_ref, service_code, state, app_state, opened_at, updated_at, expires_at,"
    " closed_at, last_inbound_id, screens"
)


def _session(row: Sequence[Any]) -> Session:
    return Session(SessionKey(row[0], row[1], row[2]), *row[3:])


def op_load(conn: Connection, key: SessionKey) -> Session | None:
    row = conn.execute(
        f"SELECT {_COLS} FROM ussd_session WHERE carrier = ? AND msisdn = ? AND session_ref = ?",
        (key.carrier, key.msisdn, key.session_ref),
    ).fetchone()
    return None if row is None else _session(row)


def op_expired(conn: Connection, now: float, limit: int) -> list[Session]:
    rows = conn.execute(
        f"SELECT {_COLS} FROM ussd_session WHERE state = 'open' AND expires_at <= ? ORDER BY expires_at LIMIT ?",
        (now, limit),
    ).fetchall()
    return [_session(r) for r in rows]


def op_input_mark(conn: Connection, inbound_id: int) -> str | None:
    """The stored session_id (DialogueMark) of one handset input, or None if it is gone."""
    row = conn.execute("SELECT session_id FROM inbound WHERE id = ?", (inbound_id,)).fetchone()
    return row[0] if row else None


def op_count_open(conn: Connection) -> int:
    return conn.execute("SELECT COUNT(*) FROM ussd_session WHERE state = 'open'").fetchone()[0]


def _upsert(conn: Connection, session: Session) -> None:
    key = session.key
    conn.execute(
        f"INSERT INTO ussd_session ({_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (carrier, msisdn, session_ref) DO UPDATE SET service_code = excluded.service_code,"
        " state = excluded.state, app_state = excluded.app_state, opened_at = excluded.opened_at,"
        " updated_at = excluded.updated_at, expires_at = excluded.expires_at, closed_at = excluded.closed_at,"
        " last_inbound_id = excluded.last_inbound_id, screens = excluded.screens",
        (
            key.carrier, key.msisdn, key.session_ref, session.service_code, session.state, session.app_state,
            session.opened_at, session.updated_at, session.expires_at, session.closed_at,
            session.last_inbound_id, session.screens,
        ),
    )


class SessionChanged(Exception):
    """The stored dialogue is not the one this turn started from: another node (several share
    one database) took a turn or timed it out meanwhile.  Nothing of this turn was stored."""


#: `expected` when the caller does not check (a single node: its per-dialogue lock suffices).
UNCHECKED: Final = object()


def op_save_turn(
    conn: Connection, store: Store, session: Session, screen: NewMt | None, expected: Any = UNCHECKED
) -> Outbound | None:
    """Store the session as it is after a turn, and the screen that turn shows, together.

    `expected`: the `updated_at` of the stored row the turn started from (None: there was none);
    if the row is not that one any more, SessionChanged and nothing is written (compare-and-set,
    so two nodes cannot both take the same turn of one dialogue)."""
    if expected is not UNCHECKED:
        key = session.key
        row = conn.execute(
            "SELECT updated_at FROM ussd_session WHERE carrier = ? AND msisdn = ? AND session_ref = ?",
            (key.carrier, key.msisdn, key.session_ref),
        ).fetchone()
        if (row[0] if row is not None else None) != expected:
            raise SessionChanged(f"dialogue {key.session_ref} changed since it was read")
    _upsert(conn, session)
    return store.insert_mt(conn, screen) if screen is not None else None


def closed(session: Session, state: str, now: float, inbound_id: int | None = None, *, shown: bool = False) -> Session:
    """The session ended `state` at `now`; `shown`: a final screen goes with it."""
    return replace(
        session, state=state, closed_at=now, updated_at=now,
        last_inbound_id=inbound_id if inbound_id is not None else session.last_inbound_id,
        screens=session.screens + (1 if shown else 0),
    )
