"""The USSD channel: handset dialogues in, one screen per input out, sessions kept and timed out.

    deliver_sm (ussd_service_op) → `accept`: the carrier's variant read (smsgw/ussd/variants.py),
        the MO stored like any other (channel "ussd", session event NEW / CONTINUE / END), acked
    → `process`: the session loaded (memory, else the store), the app asked for the next screen
        (smsgw/ussd/dialogue.py), the new session state and the screen committed in ONE
        transaction, the screen handed to the outbound queue's USSD lane (smsgw/outbound.py)
    → the reaper (`reap`, a LoopingCall on the injected clock): dialogues with no answer for the
        carrier's `ussd_timeout_s` are released with a final screen, so the network is told.

A USSD MO never reaches the keyword router: in a dialogue "1" is a menu choice, not a keyword.
Inputs of one dialogue are handled one at a time (a per-session lock); different dialogues run
concurrently. A screen's MT expires when its session would, so a screen that could not go out in
time is dropped by the queue instead of reaching a handset whose dialogue is gone.
"""

from __future__ import annotations

import asyncio
import functools
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

from twisted.application.service import Service
from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall

from smsgw import text as smstext
from smsgw.log import get_logger, mask_msisdn
from smsgw.message import Channel, Inbound, SessionEvent
from smsgw.msisdn import canonical_msisdn
from smsgw.smpp import constants as c
from smsgw.smpp.pdu import Pdu
from smsgw.store import NewMo, NewMt, StoreUnavailable
from smsgw.ussd import screen as ussd_screen
from smsgw.ussd import sessions
from smsgw.ussd.dialogue import DialogueApp, Turn
from smsgw.ussd.sessions import Session, SessionKey
from smsgw.ussd.variants import UssdVariant, UssdWireError, read_indication, session_ref_of

if TYPE_CHECKING:
    from smsgw.config import CarrierConfig
    from smsgw.store import Outbound, Store

log = get_logger(__name__)

#: When the app failed, or there is no app: short, in both languages (the language is the app's
#: business), and within one UCS2 screen.
APOLOGY = "Sorry, please try again later.\nعذرا، حاول مرة أخرى لاحقا."
NOT_OFFERED = "This service is not available.\nهذه الخدمة غير متاحة."
#: A release (timeout) screen is only worth sending while the network may still hold the dialogue:
#: it must be on its way within this long of the reaper's finding (see UssdChannel.reap).
RELEASE_SEND_S = 2.0
#: Most expired sessions released per reaper tick; the next tick takes the rest.
REAP_BATCH = 500
#: For a carrier no longer configured (removed by a reload while a dialogue was open).
DEFAULT_TIMEOUT_S = 180.0
MT_KIND_SCREEN = "ussd"
MT_KIND_RELEASE = "ussd_release"


class _KeyedLocks:
    """One asyncio.Lock per session key, dropped when nobody holds or awaits it."""

    def __init__(self) -> None:
        self._locks: dict[SessionKey, tuple[asyncio.Lock, int]] = {}

    def __call__(self, key: SessionKey) -> _Held:
        return _Held(self, key)

    def _acquire(self, key: SessionKey) -> asyncio.Lock:
        lock, users = self._locks.get(key, (None, 0))
        if lock is None:
            lock = asyncio.Lock()
        self._locks[key] = (lock, users + 1)
        return lock

    def _release(self, key: SessionKey) -> None:
        lock, users = self._locks[key]
        if users <= 1:
            del self._locks[key]
        else:
            self._locks[key] = (lock, users - 1)

    def __len__(self) -> int:
        return len(self._locks)


class _Held:
    def __init__(self, locks: _KeyedLocks, key: SessionKey) -> None:
        self._locks, self._key = locks, key
        self._lock: asyncio.Lock | None = None

    async def __aenter__(self) -> None:
        self._lock = self._locks._acquire(self._key)
        try:
            await self._lock.acquire()
        except BaseException:
            self._locks._release(self._key)
            raise

    async def __aexit__(self, *exc: object) -> None:
        assert self._lock is not None
        self._lock.release()
        self._locks._release(self._key)


class UssdChannel(Service):
    """USSD dialogues for every carrier of one gateway (see the module docstring)."""

    name = "ussd"

    def __init__(
        self,
        store: Store,
        clock: IReactorTime,
        carriers: Mapping[str, CarrierConfig] | Callable[[], Mapping[str, CarrierConfig]],
        enqueue: Callable[[Outbound], None],
        app: DialogueApp | None,
        bound_since: Callable[[str], float | None] | None = None,
        *,
        shared: bool = False,
        runs_jobs: Callable[[], bool] = lambda: True,
    ) -> None:
        """`carriers`: the enabled carriers' configs, or a function returning them (the gateway's
        current ones, so a hot reload of a carrier's USSD settings applies to the next PDU).
        `bound_since(carrier)`: since when that carrier's bind has been up, None while it is down
        (default: always up).
        `shared`: several nodes on one database (smsgw/cluster.py): the next input of a dialogue
        may reach another node, so the store is the only copy (no session kept here) and each turn
        is saved only if the dialogue is still as it was read.  `runs_jobs`: whether this node
        runs the timeouts now (one node of several does)."""
        self._shared = shared
        self._runs_jobs = runs_jobs
        self._read_as: dict[SessionKey, float | None] = {}  # shared: updated_at of the row read
        self._store = store
        self._clock = clock
        self._carriers = carriers if callable(carriers) else (lambda: carriers)
        self._variants: dict[str, tuple[CarrierConfig, UssdVariant]] = {}
        self._enqueue = enqueue
        self._app = app
        self._bound_since = bound_since or (lambda _carrier: float("-inf"))
        #: Open sessions: the store's rows, kept here so a screen costs no read on the hot path.
        self._open: dict[SessionKey, Session] = {}
        self._locks = _KeyedLocks()
        self._reaper: LoopingCall | None = None
        self._reaping: asyncio.Future[Any] | None = None
        self.counters: Counter[str] = Counter()

    @property
    def reap_interval_s(self) -> float:
        """A quarter of the shortest timeout, between 50 ms and 5 s: timeouts land that late at most."""
        shortest = min((cfg.ussd_timeout_s for cfg in self._carriers().values()), default=DEFAULT_TIMEOUT_S)
        return min(5.0, max(0.05, shortest / 4))

    # -- life cycle -------------------------------------------------------------------------

    def startService(self) -> None:
        super().startService()
        self._reaper = LoopingCall(self._reap_tick)
        self._reaper.clock = self._clock
        self._reaper.start(self.reap_interval_s, now=False)

    def stopService(self) -> Deferred[None]:  # type: ignore[override]
        super().stopService()
        if self._reaper is not None and self._reaper.running:
            self._reaper.stop()
        if self._reaping is not None and not self._reaping.done():
            return Deferred.fromFuture(asyncio.ensure_future(self._wait_reaping()))
        return succeed(None)

    async def _wait_reaping(self) -> None:
        if self._reaping is not None:
            await asyncio.gather(self._reaping, return_exceptions=True)

    def _reap_tick(self) -> Deferred[None] | None:
        if self._reaping is not None and not self._reaping.done():
            return None  # the previous tick is still at it (a slow store)
        if not self._runs_jobs():
            return None  # another node runs the timeouts
        self._reaping = asyncio.ensure_future(self.reap())
        return Deferred.fromFuture(self._reaping).addErrback(
            lambda f: log.error("ussd_reap_failed", error=f.getErrorMessage())
        )

    # -- in -----------------------------------------------------------------------------------

    async def accept(self, carrier: CarrierConfig, pdu: Pdu, now: float) -> tuple[int, Inbound | None]:
        """Store one USSD deliver_sm; returns (deliver_sm_resp status, the Inbound to process or None).

        Raises StoreUnavailable when the store cannot commit (the caller answers ESME_RX_T_APPN).
        """
        params = pdu.params
        msisdn = canonical_msisdn(params.get("source_addr", ""))
        service_code = params.get("destination_addr", "").strip()
        if not msisdn:
            return c.ESME_RINVSRCADR, None
        if not service_code:
            return c.ESME_RINVDSTADR, None
        try:
            indication = read_indication(self._variant(carrier), msisdn, pdu.tlvs, params.get("service_type", ""))
        except UssdWireError as exc:
            self.counters["unreadable"] += 1
            log.warning("ussd_unreadable", carrier=carrier.name, msisdn=mask_msisdn(msisdn), reason=str(exc))
            return exc.status, None
        if indication is None:
            return c.ESME_ROK, None
        payload = params.get("short_message", b"") or pdu.tlvs.get(c.TLV_MESSAGE_PAYLOAD, b"")
        text = smstext.decode_short_message(payload, params.get("data_coding", 0), carrier.default_alphabet)
        carrier_msg_id = pdu.tlv_cstr(carrier.mo_id_tlv) if carrier.mo_id_tlv is not None else None
        inbound, duplicate = await self._store.accept_mo(
            NewMo(carrier.name, carrier_msg_id, msisdn, service_code, text, params.get("data_coding", 0), now,
                  channel=Channel.USSD.value, session_id=indication.session_id,
                  session_event=indication.event.value)
        )
        if duplicate:
            log.info("ussd_duplicate", carrier=carrier.name, msisdn=mask_msisdn(msisdn))
            return c.ESME_ROK, None
        self.counters[f"mo_{indication.event.value}"] += 1
        return c.ESME_ROK, inbound

    async def process(self, inbound: Inbound) -> None:
        """Take one handset input: the next screen and the session step, committed together."""
        # The stored session_id is the dialogue's mark: its reference keys the session; the whole
        # mark (what the network wants echoed) goes on the screen that answers this input.
        key = SessionKey(inbound.carrier, inbound.msisdn, session_ref_of(inbound.session_id) or inbound.msisdn)
        mark = inbound.session_id or key.session_ref
        try:
            await self._process(key, inbound, mark)
        except sessions.SessionChanged:
            # Another node took this dialogue's turn (or timed it out) meanwhile: its screen stands.
            self.counters["superseded"] += 1
            log.info("ussd_turn_superseded", carrier=key.carrier, msisdn=mask_msisdn(key.msisdn))
        finally:
            self._read_as.pop(key, None)

    async def _process(self, key: SessionKey, inbound: Inbound, mark: str) -> None:
        async with self._locks(key):
            session = await self._session(key)
            if session is not None and session.answered(inbound.id):
                return  # processed before a restart; its screen is already in the store
            now = self._clock.seconds()
            if inbound.session is SessionEvent.END:
                await self._aborted(key, session, inbound, now)
                return
            if inbound.session is SessionEvent.NEW:
                if session is not None and session.open:
                    self.counters["replaced"] += 1
                base = Session(key, inbound.short_code, sessions.OPEN, None, now, now, now, None, None, 0)
                self.counters["opened"] += 1
                turn = await self._ask(lambda app: app.begin(inbound))
            elif session is None or not session.open or session.expired(now):
                await self._release_stale(key, session, inbound, now, mark)
                return
            else:
                base = session
                turn = await self._ask(lambda app: app.answer(inbound, base.app_state))
            await self._show(base, turn, now, inbound.id, mark)

    async def _ask(self, call: Callable[[DialogueApp], Awaitable[Turn]]) -> Turn:
        if self._app is None:
            return Turn(NOT_OFFERED, True)
        try:
            turn = await call(self._app)
        except StoreUnavailable:
            raise
        except Exception:
            log.exception("ussd_app_failed")
            self.counters["app_failures"] += 1
            return Turn(APOLOGY, True)
        if not ussd_screen.fits(turn.text):
            log.error("ussd_screen_too_long", chars=len(turn.text))
            self.counters["app_failures"] += 1
            return Turn(APOLOGY, True)
        return turn

    async def _show(self, base: Session, turn: Turn, now: float, inbound_id: int, mark: str) -> None:
        key = base.key
        timeout = self._timeout(key.carrier)
        state = sessions.ENDED if turn.end else sessions.OPEN
        after = Session(
            key, base.service_code, state, turn.state, base.opened_at, now, now + timeout,
            now if turn.end else None, inbound_id, base.screens + 1,
        )
        await self._save(after, self._screen(after, turn.text, turn.end, now, now + timeout, inbound_id, mark))
        self.counters["screens"] += 1
        if turn.end:
            self.counters["ended"] += 1

    async def _aborted(self, key: SessionKey, session: Session | None, inbound: Inbound, now: float) -> None:
        self.counters["aborted"] += 1
        log.info("ussd_aborted", carrier=key.carrier, msisdn=mask_msisdn(key.msisdn),
                 known=session is not None and session.open)
        if session is not None and session.open:
            await self._save(sessions.closed(session, sessions.ABORTED, now, inbound.id), None)

    async def _release_stale(
        self, key: SessionKey, session: Session | None, inbound: Inbound, now: float, mark: str
    ) -> None:
        """An answer for a dialogue that is over here (timed out, or unknown after a lost store):
        end it on the handset too, with the release screen."""
        timed_out = session is not None and session.expired(now)
        state = sessions.TIMED_OUT if timed_out else sessions.RELEASED
        self.counters[state] += 1
        log.info("ussd_stale_answer", carrier=key.carrier, msisdn=mask_msisdn(key.msisdn), state=state)
        text = await self._release_text(key.msisdn, session.app_state if session is not None else None)
        base = session or Session(key, inbound.short_code, sessions.OPEN, None, now, now, now, None, None, 0)
        after = sessions.closed(base, state, now, inbound.id, shown=True)
        timeout = self._timeout(key.carrier)
        await self._save(after, self._screen(after, text, True, now, now + timeout, inbound.id, mark))

    # -- timeouts -----------------------------------------------------------------------------

    async def reap(self) -> int:
        """Release every dialogue past its timeout, telling the network while it may still hold the
        dialogue; returns how many were closed."""
        now = self._clock.seconds()
        try:
            due = await self._store.read(sessions.op_expired, now, REAP_BATCH)
        except StoreUnavailable as exc:
            log.error("ussd_reap_failed", error=str(exc))
            return 0
        released = 0
        grace = self.release_grace_s
        for stale in due:
            async with self._locks(stale.key):
                current = await self._session(stale.key)
                if current is None or not current.expired(now):
                    continue  # answered (or ended) since the query
                key = current.key
                # The release screen is worth sending only while the network may still hold the
                # dialogue: up to `grace` past our timeout, on a bind that was already up when the
                # dialogue timed out. Otherwise (the gateway was down then, or the bind) the network
                # ends it on its own: a release sent on a new bind would come late, to a handset
                # that may be doing something else by then.
                deadline = current.expires_at + grace
                since = self._bound_since(key.carrier)
                shown = now < deadline and since is not None and since <= current.expires_at
                try:
                    screen = None
                    if shown:
                        text = await self._release_text(key.msisdn, current.app_state)
                        mark = await self._mark_of(current)
                        screen = self._screen(current, text, True, now, deadline, None, mark, MT_KIND_RELEASE)
                    await self._save(sessions.closed(current, sessions.TIMED_OUT, now, shown=shown), screen)
                except sessions.SessionChanged:
                    continue  # answered on another node since the query
                except StoreUnavailable as exc:
                    log.error("ussd_release_not_stored", error=str(exc))
                    return released
                finally:
                    self._read_as.pop(key, None)
                released += 1
                self.counters[sessions.TIMED_OUT] += 1
                if not shown:
                    self.counters["released_silently"] += 1
                log.info("ussd_timed_out", carrier=key.carrier, msisdn=mask_msisdn(key.msisdn),
                         idle_s=round(now - current.updated_at, 1), screens=current.screens, network_told=shown)
        return released

    @property
    def release_grace_s(self) -> float:
        """How long past a dialogue's timeout its release screen may still go out: the reaper's
        interval (it may find the dialogue that late) and RELEASE_SEND_S to send the screen."""
        return self.reap_interval_s + RELEASE_SEND_S

    async def _mark_of(self, session: Session) -> str:
        """What the release must echo: the mark of the dialogue's last input (its reference alone
        when that input is gone)."""
        if session.last_inbound_id is not None:
            mark = await self._store.read(sessions.op_input_mark, session.last_inbound_id)
            if mark and session_ref_of(mark) == session.key.session_ref:
                return mark
        return session.key.session_ref

    # -- plumbing -----------------------------------------------------------------------------

    def _variant(self, carrier: CarrierConfig) -> UssdVariant:
        cached = self._variants.get(carrier.name)
        if cached is None or cached[0] is not carrier:
            cached = self._variants[carrier.name] = (carrier, UssdVariant.of(carrier))
        return cached[1]

    def _timeout(self, carrier: str) -> float:
        config = self._carriers().get(carrier)
        return config.ussd_timeout_s if config is not None else DEFAULT_TIMEOUT_S

    async def _release_text(self, msisdn: str, app_state: str | None) -> str:
        if self._app is None:
            return NOT_OFFERED
        try:
            text = await self._app.release_text(msisdn, app_state)
        except StoreUnavailable:
            raise
        except Exception:
            log.exception("ussd_app_failed")
            return APOLOGY
        return text if ussd_screen.fits(text) else APOLOGY

    def _screen(self, session: Session, text: str, end: bool, now: float, expires_at: float,
                inbound_id: int | None, mark: str, kind: str = MT_KIND_SCREEN) -> NewMt:
        key = session.key
        return NewMt(
            carrier=key.carrier, msisdn=key.msisdn, short_code=session.service_code, text=text, created_at=now,
            expires_at=expires_at, channel=Channel.USSD.value, session_id=mark, end_session=end,
            inbound_id=inbound_id, kind=kind,
        )

    async def _session(self, key: SessionKey) -> Session | None:
        if self._shared:
            found = await self._store.read(sessions.op_load, key)
            self._read_as[key] = found.updated_at if found is not None else None
            return found
        cached = self._open.get(key)
        if cached is not None:
            return cached
        found = await self._store.read(sessions.op_load, key)
        if found is not None and found.open:
            self._open[key] = found
        return found

    async def _save(self, session: Session, screen: NewMt | None) -> None:
        expected = self._read_as.get(session.key, sessions.UNCHECKED) if self._shared else sessions.UNCHECKED
        outbound = await self._store.write(
            functools.partial(sessions.op_save_turn, store=self._store, session=session, screen=screen,
                              expected=expected)
        )
        if self._shared:
            self._read_as[session.key] = session.updated_at
        elif session.open:
            self._open[session.key] = session
        else:
            self._open.pop(session.key, None)
        if outbound is not None:
            self._enqueue(outbound)

    @property
    def open_sessions(self) -> int:
        """Dialogues open in memory (those seen since start; the store has all of them)."""
        return len(self._open)
