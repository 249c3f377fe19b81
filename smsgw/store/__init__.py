"""The gateway's durable state: the only owner of it, behind one interface, on one of two engines.

* SQLite (the default, `store_path`): one file in WAL mode, for one node (smsgw/store/sqlite.py).
* PostgreSQL (`store_url = "postgresql://user@host:port/db"`): for several nodes on one
  database (smsgw/store/postgres.py).

Both run the same migrations and the same SQL.  Each area has a module of its own:
inbound.py (MOs, reassembly), outbound.py (MTs, submits, retries), receipts.py (DLRs),
reports.py (history, counts); plumbing.py has group commit and the `write`/`read` API through
which features (parking, transaction status, USSD, operators) keep their own tables.

SQL written here or in a feature runs on both engines, so it keeps to what both understand:
qmark parameters; INTEGER flags compared as `= 1`, never used as booleans; COALESCE(SUM(...), 0)
rather than SQLite's TOTAL; CASE rather than IIF; `floor()` (given to SQLite builds that lack it);
INSERT ... ON CONFLICT ... DO UPDATE/NOTHING; no PRAGMA or rowid outside the SQLite engine.
Column types in migrations are SQLite's, mapped for PostgreSQL by dialect.py.

Retention is not handled yet: inbound, outbound, mt_part and dlr rows (and unmatched receipts)
are kept for ever; mo_part_done rows are pruned after `part_dedupe_window`, mo_seen rows (the
redelivery fingerprints) after `mo_dedupe_window`.
"""

from __future__ import annotations

from smsgw.store.inbound import InboundArea
from smsgw.store.plumbing import is_postgres
from smsgw.store.receipts import ReceiptArea
from smsgw.store.reports import ReportArea
from smsgw.store.types import (
    DELIVERED,
    DLR_DELIVERED,
    EXPIRED,
    FAILED,
    MT_STATES,
    QUEUED,
    SENT,
    UNDELIVERED,
    Connection,
    NewMo,
    NewMoPart,
    NewMt,
    Outbound,
    PartKey,
    SchemaTooNew,
    StoreClosed,
    StoreUnavailable,
)

__all__ = [
    "DELIVERED", "DLR_DELIVERED", "EXPIRED", "FAILED", "MT_STATES", "QUEUED", "SENT", "UNDELIVERED",
    "Connection", "NewMo", "NewMoPart", "NewMt", "Outbound", "PartKey", "SchemaTooNew", "Store",
    "StoreClosed", "StoreUnavailable", "is_postgres",
]


class Store(InboundArea, ReceiptArea, ReportArea):
    """The only owner of durable state.  Create with `await Store.open(path_or_url)`."""
