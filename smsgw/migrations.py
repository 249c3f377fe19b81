"""Schema of the gateway's durable store, as an ordered list of migration steps.

Each step is a tuple of single SQL statements (not a script): Python's `executescript` commits
before it runs, and the whole upgrade must happen inside ONE transaction so that a crash halfway
leaves the previous schema intact.  A statement may also be a Python function of the connection,
run in the same transaction: that is how data is carried over into a new shape when the new shape
needs a value SQL cannot compute the same way on both engines (the MO content hash).  Steps are
append-only: never edit a released step, add a new one that alters what the old one made.

The same steps build the schema on both engines.  They are written in SQLite's words; on
PostgreSQL the store's dialect layer maps the column types (INTEGER PRIMARY KEY becomes an
identity column, INTEGER bigint, REAL double precision, BLOB bytea; WITHOUT ROWID is dropped),
see smsgw/store/dialect.py.  Write steps that both accept: no SQLite-only functions, booleans as
INTEGER 0/1.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Final, Union

from smsgw.redelivery import content_hash

#: One statement of a step: SQL, or a function run on the connection inside the migration.
Statement = Union[str, Callable[[Any], None]]


def _fingerprint_stored_mos(conn: Any) -> None:
    """Step 2's carry-over: every stored MO with a carrier id gets its redelivery fingerprint
    (smsgw/redelivery.py computes it; the same in Python for either engine)."""
    rows = conn.execute(
        "SELECT carrier, carrier_msg_id, msisdn, short_code, text, channel, session_id, session_event, id,"
        " received_at FROM inbound WHERE carrier_msg_id IS NOT NULL ORDER BY id"
    ).fetchall()
    conn.executemany(
        "INSERT INTO mo_seen (carrier, carrier_msg_id, content_hash, inbound_id, received_at) VALUES (?, ?, ?, ?, ?)",
        [(r[0], r[1], content_hash(r[2], r[3], r[4], r[5], r[6], r[7]), r[8], r[9]) for r in rows],
    )


# Version N is reached by applying MIGRATIONS[0..N-1] in order.
MIGRATIONS: Final[tuple[tuple[Statement, ...], ...]] = (
    # 1: initial schema.
    (
        # Inbound (MO) messages; processed_at stays NULL until complete_mo, which is how a
        # restart finds the messages it acknowledged but never answered.
        """CREATE TABLE inbound (
            id             INTEGER PRIMARY KEY,
            carrier        TEXT    NOT NULL,
            carrier_msg_id TEXT,
            msisdn         TEXT    NOT NULL,
            short_code     TEXT    NOT NULL,
            text           TEXT    NOT NULL,
            data_coding    INTEGER NOT NULL,
            channel        TEXT    NOT NULL,
            session_id     TEXT,
            session_event  TEXT    NOT NULL,
            received_at    REAL    NOT NULL,
            parts          INTEGER NOT NULL DEFAULT 1,
            partial        INTEGER NOT NULL DEFAULT 0,
            processed_at   REAL
        )""",
        # A carrier redelivers a deliver_sm whose response it never saw; its id identifies it.
        """CREATE UNIQUE INDEX inbound_dedupe ON inbound (carrier, carrier_msg_id)
            WHERE carrier_msg_id IS NOT NULL""",
        "CREATE INDEX inbound_unprocessed ON inbound (id) WHERE processed_at IS NULL",
        "CREATE INDEX inbound_msisdn ON inbound (msisdn, received_at)",
        "CREATE INDEX inbound_received ON inbound (received_at)",
        # Parts of long MOs waiting for their siblings.  Stored before the part is acknowledged,
        # so a restart never loses one.
        """CREATE TABLE mo_part (
            id             INTEGER PRIMARY KEY,
            carrier        TEXT    NOT NULL,
            msisdn         TEXT    NOT NULL,
            short_code     TEXT    NOT NULL,
            ref            INTEGER NOT NULL,
            total          INTEGER NOT NULL,
            seq            INTEGER NOT NULL,
            body           BLOB    NOT NULL,
            data_coding    INTEGER NOT NULL,
            carrier_msg_id TEXT,
            received_at    REAL    NOT NULL
        )""",
        "CREATE UNIQUE INDEX mo_part_key ON mo_part (carrier, msisdn, short_code, ref, total, seq)",
        "CREATE INDEX mo_part_received ON mo_part (received_at)",
        # Parts of groups already turned into an Inbound.  A part redelivered after its group was
        # assembled would otherwise start a new group and, at the timeout, a second (partial) MO.
        """CREATE TABLE mo_part_done (
            carrier     TEXT    NOT NULL,
            msisdn      TEXT    NOT NULL,
            short_code  TEXT    NOT NULL,
            ref         INTEGER NOT NULL,
            total       INTEGER NOT NULL,
            seq         INTEGER NOT NULL,
            body        BLOB    NOT NULL,
            inbound_id  INTEGER NOT NULL REFERENCES inbound (id),
            done_at     REAL    NOT NULL
        )""",
        "CREATE INDEX mo_part_done_key ON mo_part_done (carrier, msisdn, short_code, ref, total, seq)",
        "CREATE INDEX mo_part_done_at ON mo_part_done (done_at)",
        # Outbound (MT) messages.  State: queued -> sent -> delivered | undelivered, or
        # queued/sent -> failed | expired.
        """CREATE TABLE outbound (
            id           INTEGER PRIMARY KEY,
            carrier      TEXT    NOT NULL,
            msisdn       TEXT    NOT NULL,
            short_code   TEXT    NOT NULL,
            text         TEXT    NOT NULL,
            channel      TEXT    NOT NULL,
            session_id   TEXT,
            end_session  INTEGER NOT NULL,
            kind         TEXT    NOT NULL,
            inbound_id   INTEGER REFERENCES inbound (id),
            created_at   REAL    NOT NULL,
            expires_at   REAL    NOT NULL,
            state        TEXT    NOT NULL,
            attempts     INTEGER NOT NULL DEFAULT 0,
            last_error   TEXT,
            reason       TEXT,
            concat_ref   INTEGER NOT NULL,
            total_parts  INTEGER,
            updated_at   REAL
        )""",
        "CREATE INDEX outbound_queue ON outbound (state, carrier, id)",
        "CREATE INDEX outbound_queued ON outbound (id) WHERE state = 'queued'",
        "CREATE INDEX outbound_msisdn ON outbound (msisdn, created_at)",
        "CREATE INDEX outbound_created ON outbound (created_at)",
        # One row per submitted part; the receipt of each part lands here.
        """CREATE TABLE mt_part (
            id           INTEGER PRIMARY KEY,
            outbound_id  INTEGER NOT NULL REFERENCES outbound (id),
            part_no      INTEGER NOT NULL,
            total_parts  INTEGER NOT NULL,
            carrier      TEXT    NOT NULL,
            smsc_id      TEXT    NOT NULL,
            smsc_id_raw  TEXT    NOT NULL,
            sent_at      REAL    NOT NULL,
            dlr_state    TEXT,
            dlr_error    TEXT,
            dlr_final    INTEGER NOT NULL DEFAULT 0,
            dlr_at       REAL
        )""",
        "CREATE UNIQUE INDEX mt_part_no ON mt_part (outbound_id, part_no)",
        "CREATE INDEX mt_part_smsc ON mt_part (carrier, smsc_id)",
        # Every receipt as received.  outbound_id NULL = not matched yet (the receipt overtook the
        # submit_sm_resp); record_part_sent picks those up.
        """CREATE TABLE dlr (
            id           INTEGER PRIMARY KEY,
            carrier      TEXT    NOT NULL,
            smsc_id      TEXT    NOT NULL,
            outbound_id  INTEGER REFERENCES outbound (id),
            part_no      INTEGER,
            state        TEXT    NOT NULL,
            error        TEXT,
            final        INTEGER NOT NULL,
            raw          TEXT    NOT NULL,
            received_at  REAL    NOT NULL
        )""",
        "CREATE INDEX dlr_unmatched ON dlr (carrier, smsc_id) WHERE outbound_id IS NULL",
        "CREATE INDEX dlr_outbound ON dlr (outbound_id) WHERE outbound_id IS NOT NULL",
    ),
    # 2: a redelivery is the same carrier MO id with the same content within a window
    # (smsgw/redelivery.py), no longer any id seen before: carriers reuse ids.
    (
        # One row per (carrier, id, content) accepted within the window, pointing at its MO.  The
        # primary key is what makes the decision safe when several gateways share the database:
        # accept_mo claims the row with an upsert, so two copies cannot both be taken for new.
        """CREATE TABLE mo_seen (
            carrier        TEXT    NOT NULL,
            carrier_msg_id TEXT    NOT NULL,
            content_hash   TEXT    NOT NULL,
            inbound_id     INTEGER NOT NULL,
            received_at    REAL    NOT NULL,
            PRIMARY KEY (carrier, carrier_msg_id, content_hash)
        )""",
        "CREATE INDEX mo_seen_received ON mo_seen (received_at)",
        # MOs already stored stay recognised after the upgrade (ones older than the window are
        # pruned by the store later); the old unique index made (carrier, id) unique, so each
        # becomes one row.
        _fingerprint_stored_mos,
        "DROP INDEX inbound_dedupe",
    ),
    # 3: what became of an MO the abuse guard kept from its normal answer (muted, limited,
    # ignored); NULL for an MO answered normally.  The status page shows it instead of "processed".
    ("ALTER TABLE inbound ADD COLUMN disposition TEXT",),
    # 4: several nodes on one database (smsgw/cluster.py).  Which incarnation of which node accepted
    # an MO (its MOs left unprocessed are taken over when its lease passes), and which one claimed a
    # queued MT to send it (void once that lease passed).  Both stay NULL on a single node.
    (
        "ALTER TABLE inbound ADD COLUMN node TEXT",
        "ALTER TABLE outbound ADD COLUMN claimed_by TEXT",
        "CREATE INDEX outbound_claims ON outbound (carrier, id) WHERE state = 'queued'",
        "CREATE INDEX inbound_unprocessed_node ON inbound (node) WHERE processed_at IS NULL",
    ),
    # 5: how many queued MTs a node holds claimed, counted when it claims more (its memory bound
    # includes MTs claimed by its own writes that the queue has not taken in yet).
    ("CREATE INDEX outbound_claimed ON outbound (claimed_by, carrier) WHERE state = 'queued'",),
)

LATEST: Final[int] = len(MIGRATIONS)


class SchemaTooNew(RuntimeError):
    """The database was written by a newer gateway; running old code on it could corrupt it."""


def current_version(conn: Any) -> int:
    conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_version ("
        " id INTEGER PRIMARY KEY CHECK (id = 1), version INTEGER NOT NULL)"
    )
    row = conn.execute("SELECT version FROM schema_version WHERE id = 1").fetchone()
    return int(row[0]) if row else 0


#: Opens the migration's transaction with the database's write lock, so that two processes
#: opening the same fresh database cannot both create the tables.  SQLite's; PostgreSQL's engine
#: passes its own (a transaction-scoped advisory lock).
BEGIN_EXCLUSIVE: Final[tuple[str, ...]] = ("BEGIN IMMEDIATE",)


def _run(conn: Any, statement: Statement) -> None:
    if callable(statement):
        statement(conn)
    else:
        conn.execute(statement)


def _begin(conn: Any, begin: Sequence[str]) -> None:
    for statement in begin:
        conn.execute(statement)


def migrate(conn: Any, path: str = "", begin: Sequence[str] = BEGIN_EXCLUSIVE) -> tuple[int, int]:
    """Bring the schema to LATEST in one transaction; returns (version before, version after).

    `conn` must be in autocommit mode (isolation_level=None) so that BEGIN/COMMIT here are the
    only transaction control; `begin` opens the transaction holding the write lock.
    """
    _begin(conn, begin)
    try:
        before = current_version(conn)
        if before > LATEST:
            raise SchemaTooNew(
                f"database {path or '(unnamed)'} has schema version {before}, newer than the "
                f"{LATEST} this gateway knows; run the matching (newer) gateway version or "
                f"restore a backup made for this one"
            )
        for version in range(before + 1, LATEST + 1):
            for statement in MIGRATIONS[version - 1]:
                _run(conn, statement)
        if before == 0:
            conn.execute("INSERT INTO schema_version (id, version) VALUES (1, ?)", (LATEST,))
        elif before != LATEST:
            conn.execute("UPDATE schema_version SET version = ? WHERE id = 1", (LATEST,))
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return before, LATEST


#: A feature's own schema: (component name, its append-only steps). Features such as parking or
#: transaction status bring their tables this way, so the core schema above never learns of them.
Component = tuple[str, tuple[tuple[Statement, ...], ...]]


def migrate_component(
    conn: Any, name: str, steps: tuple[tuple[Statement, ...], ...], path: str = "", begin: Sequence[str] = BEGIN_EXCLUSIVE
) -> tuple[int, int]:
    """Bring one feature component to its latest step, in one transaction, like `migrate`."""
    latest = len(steps)
    _begin(conn, begin)
    try:
        conn.execute(
            "CREATE TABLE IF NOT EXISTS component_version (name TEXT PRIMARY KEY, version INTEGER NOT NULL)"
        )
        row = conn.execute("SELECT version FROM component_version WHERE name = ?", (name,)).fetchone()
        before = int(row[0]) if row else 0
        if before > latest:
            raise SchemaTooNew(
                f"database {path or '(unnamed)'} has {name} schema version {before}, newer than the "
                f"{latest} this gateway knows"
            )
        for version in range(before + 1, latest + 1):
            for statement in steps[version - 1]:
                _run(conn, statement)
        conn.execute(
            "INSERT INTO component_version (name, version) VALUES (?, ?)"
            " ON CONFLICT (name) DO UPDATE SET version = excluded.version",
            (name, latest),
        )
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return before, latest
