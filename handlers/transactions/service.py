"""Transaction status: the business operations, whatever the channel (SMS today, USSD menus later).

Every operation is one function run inside the store's group-committed transaction
(`Store.write`), so what it reads and what it changes are consistent, and everything one change
implies commits together or not at all:

* **Privacy.**  `lookup` answers FOUND only when the reference exists AND the caller's number is
  registered to it; the one query that decides both cannot tell the two failures apart, so
  NOT_FOUND covers both and callers cannot leak the difference (see wording.not_found).
* **Failed look-ups are rate-limited per number**, with a durable counter (txn_lookup_limit):
  up to `max_failed` per window get NOT_FOUND, the next one LIMIT_REACHED (say so once), and
  later failures SILENCED (say nothing).  A successful look-up by an owner is never limited: it
  discloses nothing to anyone else.
* **Notifications.**  A status change writes, in the change's own transaction, one txn_notice
  row per registered number that has not opted out.  Inside the gateway (an `Outbox` is given)
  the same transaction also turns each notice into an outbound MT (`Store.insert_mt`), and the
  MTs are handed to the queue after COMMIT.  Without an Outbox (the CSV importer, a separate
  process) notices stay pending and the gateway's NoticeDispatcher converts them, again one
  transaction per batch that inserts the MT and marks the notice queued.  So a change is
  notified exactly once: never lost (the notice commits with the change; a queued MT survives a
  restart in the store's backlog), never twice (a re-import of the same data changes nothing; a
  notice becomes an MT only once; a unique index forbids two notices of one change to one number).
* **Carrier of a notification**: the carrier the number last wrote to us from (every MO this
  feature handles records it, with the language), if that carrier is enabled and serves the
  notification short code; otherwise the configured default carrier.
* **Language of a notification**: that of the number's last SMS to any short code (HELP to the
  parking code included; one without letters says nothing), else the language its last MO here
  was in, else `default_lang`.
"""

from __future__ import annotations

import enum
import functools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from handlers.transactions import wording
from handlers.transactions.config import TransactionsConfig
from handlers.transactions.model import Caller, Change, Detail, Transaction
from handlers.transactions.records import KEEP, MAX_CLOCK_AHEAD_S, TransactionRecord
from smsgw.log import get_logger, mask_msisdn
from smsgw.message import Lang, Reply
from smsgw.textnorm import detect_lang

if TYPE_CHECKING:
    from smsgw.store import Connection, NewMt, Outbound, Store

__all__ = [
    "NOTICE_KIND",
    "Lookup",
    "LookupOutcome",
    "Outbox",
    "TransactionService",
    "UpsertOutcome",
    "UpsertResult",
]

log = get_logger(__name__)

#: `kind` of notification MTs in the outbound table.
NOTICE_KIND: Final = "txn_notice"
#: Most open transactions MY considers (the reply shows as many as fit in its parts).
MY_LIMIT: Final = 50
#: Most pending notices turned into MTs per transaction, so one write stays short.
DISPATCH_BATCH: Final = 500

_PENDING: Final = "pending"
_QUEUED: Final = "queued"
_SUPPRESSED: Final = "suppressed"  # the number opted out before the notice was sent
_WITHDRAWN: Final = "withdrawn"  # the number was removed from the transaction before it was sent

_TXN_COLS = "t.ref, t.service, t.status, t.note_en, t.note_ar, t.updated_at, t.created_at"


class LookupOutcome(str, enum.Enum):
    FOUND = "found"
    NOT_FOUND = "not_found"  # unknown reference, or not registered to the caller: deliberately one
    MALFORMED = "malformed"  # not a reference at all; not counted as a failed look-up
    LIMIT_REACHED = "limit_reached"  # the first failure over the limit: tell the caller once
    SILENCED = "silenced"  # later failures in the same window: no reply


@dataclass(frozen=True)
class Lookup:
    outcome: LookupOutcome
    ref: str | None = None  # canonical reference (None when MALFORMED)
    transaction: Transaction | None = None  # only when FOUND
    retry_after_s: float = 0.0  # when LIMIT_REACHED / SILENCED: until the window ends


class UpsertOutcome(str, enum.Enum):
    INSERTED = "inserted"
    UPDATED = "updated"
    UNCHANGED = "unchanged"
    STALE = "stale"  # older than what is stored: not applied
    REJECTED = "rejected"  # e.g. a new transaction without numbers: not applied


@dataclass(frozen=True)
class UpsertResult:
    outcome: UpsertOutcome
    ref: str
    status_changed: bool = False
    notifications: int = 0  # notices created for this change (queued or pending)
    reason: str = ""  # for STALE / REJECTED


@dataclass(frozen=True)
class Outbox:
    """How notifications reach the outbound queue when the service runs inside the gateway."""

    new_mt: Callable[[Reply, str], NewMt]
    enqueue: Callable[[Outbound], None]
    #: Enabled carriers → the short codes each serves.
    carriers: Mapping[str, tuple[str, ...]]


def _transaction(row: Sequence[Any]) -> Transaction:
    ref, service, status, note_en, note_ar, updated_at, created_at = row
    return Transaction(ref, service, status, note_en, note_ar, _stored_time(updated_at), _stored_time(created_at))


def _stored_time(value: Any) -> float | None:
    """A time column as read, or None when it holds no usable number (rows written before
    dates were checked): reading a transaction never fails on what is already stored."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


#: How many of a number's latest SMS are read to find one that tells its language.
_LANGUAGE_LOOKBACK = 10


def _last_language(conn: Connection, msisdn: str) -> Lang | None:
    """The language of the number's last SMS to any of our short codes (HELP on the parking code
    counts as much as STATUS here), skipping those without letters ("30", a bare reference),
    which say nothing about it; None if none is left in the store."""
    rows = conn.execute(
        "SELECT text FROM inbound WHERE msisdn = ? AND channel = 'sms' ORDER BY received_at DESC, id DESC LIMIT ?",
        (msisdn, _LANGUAGE_LOOKBACK),
    )
    for (text,) in rows:
        if any(ch.isalpha() for ch in text):
            return detect_lang(text)
    return None


class TransactionService:
    """Transactions, their numbers, look-ups, opt-outs and notifications, over the store."""

    def __init__(
        self,
        store: Store,
        config: TransactionsConfig,
        clock: Callable[[], float],
        outbox: Outbox | None = None,
    ) -> None:
        self.store = store
        self.config = config
        self._clock = clock
        self._outbox = outbox
        open_statuses = config.open_statuses
        self._open_sql = ",".join("?" * len(open_statuses))
        self._open_params = open_statuses

    # ------------------------------------------------------------------ residents

    async def lookup(self, caller: Caller, ref_text: str) -> Lookup:
        """The transaction `ref_text` names, if registered to the caller; see the module notes."""
        ref = self.config.reference.parse(ref_text)
        if ref is None:
            await self.store.write(functools.partial(self._op_seen, caller=caller, now=self._clock()))
            return Lookup(LookupOutcome.MALFORMED)
        return await self.store.write(functools.partial(self._op_lookup, caller=caller, ref=ref, now=self._clock()))

    def _op_lookup(self, conn: Connection, caller: Caller, ref: str, now: float) -> Lookup:
        self._op_seen(conn, caller, now)
        row = conn.execute(
            f"SELECT {_TXN_COLS} FROM txn_msisdn AS m JOIN txn AS t ON t.ref = m.ref"
            " WHERE m.msisdn = ? AND m.ref = ?",
            (caller.msisdn, ref),
        ).fetchone()
        if row is not None:
            return Lookup(LookupOutcome.FOUND, ref, _transaction(row))
        window = self.config.lookup_window_s
        limit = conn.execute(
            "SELECT window_start, failures, warned FROM txn_lookup_limit WHERE msisdn = ?", (caller.msisdn,)
        ).fetchone()
        if limit is None or now >= limit[0] + window:
            start, failures, warned = now, 0, 0
        else:
            start, failures, warned = limit
        failures += 1
        if failures <= self.config.max_failed_lookups:
            outcome = LookupOutcome.NOT_FOUND
        elif not warned:
            outcome, warned = LookupOutcome.LIMIT_REACHED, 1
        else:
            outcome = LookupOutcome.SILENCED
        conn.execute(
            "INSERT INTO txn_lookup_limit (msisdn, window_start, failures, warned) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (msisdn) DO UPDATE SET window_start = excluded.window_start,"
            " failures = excluded.failures, warned = excluded.warned",
            (caller.msisdn, start, failures, warned),
        )
        return Lookup(outcome, ref, None, max(0.0, start + window - now))

    async def my_open(self, caller: Caller, limit: int = MY_LIMIT) -> list[Transaction]:
        """The caller's open transactions, most recently updated first."""
        return await self.store.write(
            functools.partial(self._op_my_open, caller=caller, limit=limit, now=self._clock())
        )

    def _op_my_open(self, conn: Connection, caller: Caller, limit: int, now: float) -> list[Transaction]:
        self._op_seen(conn, caller, now)
        rows = conn.execute(
            f"SELECT {_TXN_COLS} FROM txn_msisdn AS m JOIN txn AS t ON t.ref = m.ref"
            f" WHERE m.msisdn = ? AND t.status IN ({self._open_sql})"
            " ORDER BY t.updated_at DESC, t.ref DESC LIMIT ?",
            (caller.msisdn, *self._open_params, limit),
        ).fetchall()
        return [_transaction(r) for r in rows]

    async def set_notifications(self, caller: Caller, enabled: bool) -> bool:
        """STOP (False) / START (True) for the caller's number; True if that changed anything."""
        return await self.store.write(
            functools.partial(self._op_set_notifications, caller=caller, enabled=enabled, now=self._clock())
        )

    async def opt_out(self, caller: Caller) -> bool:
        return await self.set_notifications(caller, False)

    async def opt_in(self, caller: Caller) -> bool:
        return await self.set_notifications(caller, True)

    def _op_set_notifications(self, conn: Connection, caller: Caller, enabled: bool, now: float) -> bool:
        before = conn.execute("SELECT opted_out FROM txn_subscriber WHERE msisdn = ?", (caller.msisdn,)).fetchone()
        self._op_seen(conn, caller, now)
        opted_out = 0 if enabled else 1
        if (before[0] if before else 0) == opted_out:
            return False
        conn.execute(
            "UPDATE txn_subscriber SET opted_out = ?, opted_at = ? WHERE msisdn = ?",
            (opted_out, now, caller.msisdn),
        )
        return True

    def _op_seen(self, conn: Connection, caller: Caller, now: float) -> None:
        """Remember the carrier and language the number last used (for its notifications)."""
        conn.execute(
            "INSERT INTO txn_subscriber (msisdn, carrier, lang, seen_at) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (msisdn) DO UPDATE SET carrier = coalesce(excluded.carrier, txn_subscriber.carrier),"
            " lang = excluded.lang, seen_at = excluded.seen_at",
            (caller.msisdn, caller.carrier, caller.lang.value, now),
        )

    # ------------------------------------------------------------------ the back office

    async def upsert(self, record: TransactionRecord, source: str) -> UpsertResult:
        """Create or update a transaction from the feed (idempotent); notifies a status change.

        `record.updated_at` older than the stored one: STALE, nothing changes (feeds can arrive
        out of order).  None: the change is stamped now.  Fields left as KEEP are not touched.
        """
        result, outbounds = await self.store.write(
            functools.partial(self._op_upsert, record=record, source=source, now=self._clock())
        )
        self._hand_over(outbounds)
        if result.outcome in (UpsertOutcome.INSERTED, UpsertOutcome.UPDATED):
            log.info("transaction_" + result.outcome.value, ref=result.ref, source=source,
                     status_changed=result.status_changed, notifications=result.notifications)
        return result

    def _op_upsert(
        self, conn: Connection, record: TransactionRecord, source: str, now: float
    ) -> tuple[UpsertResult, list[Outbound]]:
        ref = record.ref
        row = conn.execute(
            "SELECT service, status, note_en, note_ar, updated_at, created_at FROM txn WHERE ref = ?", (ref,)
        ).fetchone()
        if row is None:
            return self._insert(conn, record, source, now)
        service, status, note_en, note_ar, updated_at, created_at = row
        stored_at = _stored_time(updated_at)
        if stored_at is not None and (stored_at > now + MAX_CLOCK_AHEAD_S or self.config.iso_time(stored_at) is None):
            stored_at = None  # a time no feed can send now (stored before dates were checked) makes nothing stale
        if record.updated_at is not None and stored_at is not None and record.updated_at < stored_at:
            when = self.config.iso_time(updated_at)
            return UpsertResult(UpsertOutcome.STALE, ref, reason=f"older than the stored update of {when}"), []
        old_numbers = {m for (m,) in conn.execute("SELECT msisdn FROM txn_msisdn WHERE ref = ?", (ref,))}
        new = {
            "service": record.service,
            "status": record.status,
            "note_en": note_en if record.note_en is KEEP else record.note_en,
            "note_ar": note_ar if record.note_ar is KEEP else record.note_ar,
            "updated_at": updated_at if record.updated_at is None else record.updated_at,
        }
        numbers = old_numbers if record.msisdns is KEEP else set(record.msisdns)  # type: ignore[arg-type]
        same = (service, status, note_en, note_ar, updated_at) == tuple(new.values()) and numbers == old_numbers
        if same:
            return UpsertResult(UpsertOutcome.UNCHANGED, ref), []
        if record.updated_at is None:
            new["updated_at"] = now  # something changed: this is its time
        conn.execute(
            "UPDATE txn SET service = ?, status = ?, note_en = ?, note_ar = ?, updated_at = ? WHERE ref = ?",
            (*new.values(), ref),
        )
        if numbers != old_numbers:
            for gone in old_numbers - numbers:
                conn.execute("DELETE FROM txn_msisdn WHERE msisdn = ? AND ref = ?", (gone, ref))
            conn.executemany(
                "INSERT INTO txn_msisdn (msisdn, ref) VALUES (?, ?)", [(m, ref) for m in numbers - old_numbers]
            )
        notices, outbounds = 0, []
        if new["status"] != status:
            txn = Transaction(ref, *new.values(), created_at)  # type: ignore[arg-type]
            notices, outbounds = self._record_change(conn, txn, status, source, now)
        return UpsertResult(UpsertOutcome.UPDATED, ref, new["status"] != status, notices), outbounds

    def _insert(
        self, conn: Connection, record: TransactionRecord, source: str, now: float
    ) -> tuple[UpsertResult, list[Outbound]]:
        if record.msisdns is KEEP or not record.msisdns:
            return UpsertResult(UpsertOutcome.REJECTED, record.ref, reason="msisdns: required for a new transaction"), []
        txn = Transaction(
            record.ref,
            record.service,
            record.status,
            None if record.note_en is KEEP else record.note_en,  # type: ignore[arg-type]
            None if record.note_ar is KEEP else record.note_ar,  # type: ignore[arg-type]
            now if record.updated_at is None else record.updated_at,
            now,
        )
        conn.execute(
            "INSERT INTO txn (ref, service, status, note_en, note_ar, updated_at, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (txn.ref, txn.service, txn.status, txn.note_en, txn.note_ar, txn.updated_at, txn.created_at),
        )
        conn.executemany(
            "INSERT INTO txn_msisdn (msisdn, ref) VALUES (?, ?)", [(m, txn.ref) for m in record.msisdns]  # type: ignore[union-attr]
        )
        notices, outbounds = self._record_change(conn, txn, None, source, now)
        return UpsertResult(UpsertOutcome.INSERTED, txn.ref, True, notices), outbounds

    def _record_change(
        self, conn: Connection, txn: Transaction, old_status: str | None, source: str, now: float
    ) -> tuple[int, list[Outbound]]:
        """History row, then the notices this change owes (and their MTs, inside the gateway)."""
        cur = conn.execute(
            "INSERT INTO txn_change (ref, old_status, new_status, updated_at, changed_at, source)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (txn.ref, old_status, txn.status, txn.updated_at, now, source),
        )
        change_id = cur.lastrowid
        settings = self.config.notifications
        status = self.config.statuses.get(txn.status)
        if not settings.enabled or status is None or not status.notify:
            return 0, []
        if old_status is None and not settings.on_create:
            return 0, []
        recipients = conn.execute(
            "SELECT m.msisdn, s.lang FROM txn_msisdn AS m"
            " LEFT JOIN txn_subscriber AS s ON s.msisdn = m.msisdn"
            " WHERE m.ref = ? AND coalesce(s.opted_out, 0) = 0 ORDER BY m.msisdn",
            (txn.ref,),
        ).fetchall()
        texts: dict[Lang, str] = {}
        ids = []
        for msisdn, lang_value in recipients:
            lang = (_last_language(conn, msisdn)
                    or (Lang(lang_value) if lang_value in ("en", "ar") else self.config.default_lang))
            if lang not in texts:
                texts[lang] = wording.notice(txn, lang, self.config)
            cur = conn.execute(
                "INSERT INTO txn_notice (change_id, ref, msisdn, text, created_at, state)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (change_id, txn.ref, msisdn, texts[lang], now, _PENDING),
            )
            ids.append(cur.lastrowid)
        outbounds = self._op_dispatch(conn, now, ids) if self._outbox is not None and ids else []
        return len(ids), outbounds

    async def get(self, ref_text: str) -> Detail | None:
        """Everything about one transaction, numbers included: for the back office only."""
        ref = self.config.reference.parse(ref_text)
        if ref is None:
            return None
        return await self.store.read(self._op_get, ref)

    @staticmethod
    def _op_get(conn: Connection, ref: str) -> Detail | None:
        row = conn.execute(f"SELECT {_TXN_COLS} FROM txn AS t WHERE t.ref = ?", (ref,)).fetchone()
        if row is None:
            return None
        numbers = conn.execute(
            "SELECT m.msisdn, coalesce(s.opted_out, 0) FROM txn_msisdn AS m"
            " LEFT JOIN txn_subscriber AS s ON s.msisdn = m.msisdn WHERE m.ref = ? ORDER BY m.msisdn",
            (ref,),
        ).fetchall()
        changes = conn.execute(
            "SELECT old_status, new_status, updated_at, changed_at, source FROM txn_change"
            " WHERE ref = ? ORDER BY id DESC LIMIT 20",
            (ref,),
        ).fetchall()
        return Detail(
            _transaction(row),
            tuple(m for m, _ in numbers),
            tuple(m for m, out in numbers if out),
            tuple(Change(*c) for c in changes),
        )

    # ------------------------------------------------------------------ notifications

    async def dispatch_pending(self) -> int:
        """Turn notices left pending (by the CSV importer) into queued MTs; returns how many.

        Needs the Outbox (inside the gateway).  One write per batch of DISPATCH_BATCH.
        """
        if self._outbox is None:
            raise RuntimeError("dispatch_pending needs the gateway's outbound queue (an Outbox)")
        total = 0
        while True:
            outbounds, more = await self.store.write(functools.partial(self._op_dispatch_batch, now=self._clock()))
            self._hand_over(outbounds)
            total += len(outbounds)
            if not more:
                break
        if total:
            log.info("transaction_notices_dispatched", count=total)
        return total

    def _op_dispatch_batch(self, conn: Connection, now: float) -> tuple[list[Outbound], bool]:
        ids = [
            i
            for (i,) in conn.execute(
                "SELECT id FROM txn_notice WHERE state = ? ORDER BY id LIMIT ?", (_PENDING, DISPATCH_BATCH + 1)
            )
        ]
        return self._op_dispatch(conn, now, ids[:DISPATCH_BATCH]), len(ids) > DISPATCH_BATCH

    def _op_dispatch(self, conn: Connection, now: float, notice_ids: Sequence[int]) -> list[Outbound]:
        """Pending notices → MTs, in this transaction; suppressed for numbers that opted out
        since, withdrawn for numbers no longer registered to the transaction."""
        outbox = self._outbox
        assert outbox is not None
        short_code = self.config.short_code
        outbounds = []
        for notice_id in notice_ids:
            # Who may receive it is decided now, in the transaction that makes the MT: a number
            # removed from the transaction (or opted out) since the notice was written gets nothing.
            row = conn.execute(
                "SELECT n.msisdn, n.text, s.carrier, coalesce(s.opted_out, 0),"
                " EXISTS (SELECT 1 FROM txn_msisdn AS m WHERE m.ref = n.ref AND m.msisdn = n.msisdn)"
                " FROM txn_notice AS n"
                " LEFT JOIN txn_subscriber AS s ON s.msisdn = n.msisdn WHERE n.id = ? AND n.state = ?",
                (notice_id, _PENDING),
            ).fetchone()
            if row is None:
                continue
            msisdn, text, last_carrier, opted_out, registered = row
            if opted_out or not registered:
                state = _SUPPRESSED if opted_out else _WITHDRAWN
                conn.execute("UPDATE txn_notice SET state = ?, dispatched_at = ? WHERE id = ?", (state, now, notice_id))
                continue
            carrier = self._carrier_for(last_carrier)
            outbound = self.store.insert_mt(conn, outbox.new_mt(Reply(carrier, msisdn, short_code, text), NOTICE_KIND))
            conn.execute(
                "UPDATE txn_notice SET state = ?, carrier = ?, outbound_id = ?, dispatched_at = ? WHERE id = ?",
                (_QUEUED, carrier, outbound.id, now, notice_id),
            )
            outbounds.append(outbound)
        return outbounds

    def _carrier_for(self, last_carrier: str | None) -> str:
        assert self._outbox is not None
        code = self.config.short_code
        if last_carrier is not None and code in self._outbox.carriers.get(last_carrier, ()):
            return last_carrier
        return self.config.notifications.default_carrier

    def _hand_over(self, outbounds: Sequence[Outbound]) -> None:
        # Only after COMMIT: an MT handed to the queue is already durable.
        if self._outbox is None:
            return
        for outbound in outbounds:
            log.info("transaction_notice_queued", outbound_id=outbound.id, carrier=outbound.carrier,
                     msisdn=mask_msisdn(outbound.msisdn))
            self._outbox.enqueue(outbound)

    # ------------------------------------------------------------------ helpers for callers

    def minutes_left(self, lookup: Lookup) -> int:
        """Whole minutes until a limited number may look up again (at least 1)."""
        return max(1, math.ceil(lookup.retry_after_s / 60))
