"""USSD sessions (smsgw/ussd/channel.py, sessions.py): a real store on disk, the real menus, and
a task.Clock, so timeouts happen exactly when a test says. No network: deliver_sm PDUs are built
as each carrier's simulator writes them and handed to the channel."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from twisted.internet.task import Clock

from handlers.ussd import UssdMenus
from handlers.ussd.config import load_menu_config
from handlers.ussd.prefs import SCHEMA as PREFS
from smsgw.config import load_config
from smsgw.feature import ServiceContext
from smsgw.message import Channel, Inbound, SessionEvent
from smsgw.smpp import constants as c
from smsgw.smpp.pdu import Pdu
from smsgw.store import Outbound, Store
from smsgw.ussd import sessions
from smsgw.ussd.channel import UssdChannel
from smsgw.ussd.sessions import SCHEMA as SESSIONS
from smsgw.ussd.sessions import SessionKey
from tests import engines
from tests.stack import SHIPPED_CONFIG, eventually, on_loop

pytestmark = pytest.mark.usefixtures("store_engine")

ROOT = Path(__file__).resolve().parent.parent
T0 = 1_795_500_000.0
TIMEOUT = 60.0
MSISDN = "96892123456"
MENUS = load_menu_config(ROOT / "config" / "ussd.toml")
CARRIERS = {
    c.name: dataclasses.replace(c, ussd_timeout_s=TIMEOUT) for c in load_config(SHIPPED_CONFIG).carriers
}
#: Each carrier's session marker, as its simulator writes it: (TLVs for the dialogue, abort TLVs).
MARKERS: dict[str, tuple[dict[int, bytes], dict[int, bytes]]] = {
    "omantel": ({c.TLV_ITS_SESSION_INFO: b"\x07\x00"}, {c.TLV_ITS_SESSION_INFO: b"\x07\x01"}),
    "ooredoo": ({c.TLV_USER_MESSAGE_REFERENCE: b"\x00\x2a"}, {c.TLV_USER_MESSAGE_REFERENCE: b"\x00\x2a"}),
    "friendi": ({}, {0x1501: b"\x01"}),
}
ABORT_OP = {"omantel": c.USSD_USSR_CONFIRM, "ooredoo": 0x20, "friendi": c.USSD_USSR_CONFIRM}


class Rig:
    """A store, the menus, a channel and what it queued; `restart` reopens all on the same file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.clock = Clock()
        self.clock.advance(T0)
        self.queued: list[Outbound] = []
        self._ids = 0

    async def open(self) -> Rig:
        self.store = await Store.open(engines.location(self.path.parent, self.path.name), clock=self.clock.seconds, components=[SESSIONS, PREFS])
        ctx = ServiceContext(
            store=self.store, clock=self.clock, send=_unused, new_mt=_unused, enqueue=_unused,
            config_dir=ROOT / "config", short_codes={name: cfg.short_codes for name, cfg in CARRIERS.items()},
        )
        self.app = UssdMenus(ctx, MENUS)
        self.channel = UssdChannel(self.store, self.clock, CARRIERS, self.queued.append, self.app)
        return self

    async def restart(self) -> None:
        await self.store.close()
        await self.open()

    def pdu(self, carrier: str, op: int, text: str = "", *, abort: bool = False, mo_id: str | None = None) -> Pdu:
        self._ids += 1
        marker, abort_marker = MARKERS[carrier]
        tlvs = {c.TLV_USSD_SERVICE_OP: bytes([ABORT_OP[carrier] if abort else op]), **marker}
        if abort:
            tlvs.update(abort_marker)
        tag = CARRIERS[carrier].mo_id_tlv
        assert tag is not None
        tlvs[tag] = (mo_id or f"mo{self._ids}").encode() + b"\x00"
        params = {"source_addr": MSISDN, "destination_addr": "*141#", "esm_class": 0, "data_coding": 0,
                  "short_message": text.encode("ascii")}
        return Pdu(c.DELIVER_SM, 1, 0, params, tlvs)

    async def send(self, carrier: str, op: int, text: str = "", **kw: Any) -> Inbound | None:
        status, inbound = await self.channel.accept(CARRIERS[carrier], self.pdu(carrier, op, text, **kw),
                                                    self.clock.seconds())
        assert status == c.ESME_ROK
        if inbound is not None:
            await self.channel.process(inbound)
        return inbound

    async def dial(self, carrier: str, dialled: str = "*141#") -> Inbound:
        inbound = await self.send(carrier, c.USSD_PSSR_INDICATION, dialled)
        assert inbound is not None
        return inbound

    async def answer(self, carrier: str, text: str) -> Inbound:
        inbound = await self.send(carrier, c.USSD_USSR_CONFIRM, text)
        assert inbound is not None
        return inbound

    async def session(self, key: SessionKey) -> sessions.Session | None:
        return await self.store.read(sessions.op_load, key)


def _unused(*_: object) -> Any:
    raise AssertionError("the USSD menus queue screens through the channel only")


@contextlib.asynccontextmanager
async def open_rig(tmp_path: Path) -> AsyncIterator[Rig]:
    rig = await Rig(tmp_path / "smsgw.sqlite3").open()
    try:
        yield rig
    finally:
        await rig.store.close()


def ref_of(carrier: str) -> str:
    return {"omantel": "7", "ooredoo": "42", "friendi": MSISDN}[carrier]


@pytest.mark.parametrize("carrier", ["omantel", "ooredoo", "friendi"])
@on_loop
async def test_a_dialogue_is_stored_as_it_goes(tmp_path: Path, carrier: str) -> None:
    """The dial opens a session keyed by carrier, MSISDN and the carrier's reference; each screen
    is an MT on the USSD channel that expires with the session."""
    rig = await Rig(tmp_path / "db.sqlite3").open()
    try:
        inbound = await rig.dial(carrier)
        assert (inbound.channel, inbound.session, inbound.session_id) == (Channel.USSD, SessionEvent.NEW,
                                                                          ref_of(carrier))
        [first] = rig.queued
        assert first.channel == "ussd" and not first.end_session and first.session_id == ref_of(carrier)
        assert first.short_code == "*141#" and first.expires_at == T0 + TIMEOUT
        assert first.text.startswith("Choose language")
        rig.clock.advance(5)
        await rig.answer(carrier, "1")
        assert rig.queued[-1].text.startswith("Muscat Municipality")
        stored = await rig.session(SessionKey(carrier, MSISDN, ref_of(carrier)))
        assert stored is not None and stored.open and stored.screens == 2
        assert stored.expires_at == T0 + 5 + TIMEOUT
    finally:
        await rig.store.close()


@on_loop
async def test_a_replayed_input_shows_no_second_screen(tmp_path: Path) -> None:
    """An MO processed again after a restart (acked, not yet marked processed) finds its turn taken."""
    async with open_rig(tmp_path) as rig:
        inbound = await rig.dial("ooredoo")
        await rig.channel.process(inbound)
        assert len(rig.queued) == 1


@on_loop
async def test_a_duplicate_deliver_sm_is_acknowledged_once(tmp_path: Path) -> None:
    async with open_rig(tmp_path) as rig:
        await rig.send("omantel", c.USSD_PSSR_INDICATION, "*141#", mo_id="same")
        assert await rig.send("omantel", c.USSD_PSSR_INDICATION, "*141#", mo_id="same") is None
        assert len(rig.queued) == 1


@on_loop
async def test_unreadable_and_ignored_indications(tmp_path: Path) -> None:
    """A USSD PDU without the carrier's session marker is refused with the status that says why;
    a USSN confirm is acknowledged and ignored."""
    async with open_rig(tmp_path) as rig:
        pdu = rig.pdu("omantel", c.USSD_PSSR_INDICATION, "*141#")
        del pdu.tlvs[c.TLV_ITS_SESSION_INFO]
        assert await rig.channel.accept(CARRIERS["omantel"], pdu, T0) == (c.ESME_RMISSINGOPTPARAM, None)
        ussn = rig.pdu("friendi", c.USSD_USSN_CONFIRM)
        assert await rig.channel.accept(CARRIERS["friendi"], ussn, T0) == (c.ESME_ROK, None)


@pytest.mark.parametrize("carrier", ["omantel", "ooredoo", "friendi"])
@on_loop
async def test_a_silent_dialogue_times_out_and_the_network_is_told(tmp_path: Path, carrier: str) -> None:
    """No answer for the carrier's timeout: the reaper ends the session with a final screen (PSSR
    response) in the user's language, once."""
    rig = await Rig(tmp_path / "db.sqlite3").open()
    try:
        await rig.dial(carrier)
        await rig.answer(carrier, "2")  # Arabic
        rig.clock.advance(TIMEOUT - 1)
        assert await rig.channel.reap() == 0
        rig.clock.advance(1)
        assert await rig.channel.reap() == 1
        release = rig.queued[-1]
        assert release.end_session and release.kind == "ussd_release" and release.session_id == ref_of(carrier)
        assert release.text == MENUS.text(MENUS.languages[1], "timeout", code="*141#")
        stored = await rig.session(SessionKey(carrier, MSISDN, ref_of(carrier)))
        assert stored is not None and stored.state == sessions.TIMED_OUT
        assert await rig.channel.reap() == 0
    finally:
        await rig.store.close()


@pytest.mark.parametrize("why", ["the reaper finds it too late", "no bind is up", "the bind came up after"])
@on_loop
async def test_a_release_that_would_miss_its_session_is_not_sent(tmp_path: Path, why: str) -> None:
    """The dialogue timed out while the gateway was down (the reaper finds it long after), while
    the carrier's bind is down, or before the bind now up came up (a restart): its session is
    closed as timed out, without a screen that could only reach the handset late. Within the
    grace, on a bind up since before the timeout, the release goes, and it may wait in the queue
    only until the grace ends."""
    async with open_rig(tmp_path) as rig:
        await rig.dial("omantel")
        if why == "no bind is up":
            rig.channel._bound_since = lambda carrier: None if carrier == "omantel" else T0
            rig.clock.advance(TIMEOUT)
        elif why == "the bind came up after":
            rig.channel._bound_since = lambda carrier: T0 + TIMEOUT + 0.5 if carrier == "omantel" else T0
            rig.clock.advance(TIMEOUT + 1)
        else:
            rig.clock.advance(TIMEOUT + rig.channel.release_grace_s)
        assert await rig.channel.reap() == 1
        assert len(rig.queued) == 1  # the first menu only
        stored = await rig.session(SessionKey("omantel", MSISDN, "7"))
        assert stored is not None and stored.state == sessions.TIMED_OUT and stored.screens == 1
        assert rig.channel.counters["released_silently"] == 1

        dialled = rig.clock.seconds()
        await rig.dial("ooredoo")
        rig.clock.advance(TIMEOUT + rig.channel.reap_interval_s)
        assert await rig.channel.reap() == 1
        release = rig.queued[-1]
        assert release.kind == "ussd_release"
        assert release.expires_at == dialled + TIMEOUT + rig.channel.release_grace_s


@on_loop
async def test_the_reaper_runs_on_the_injected_clock(tmp_path: Path) -> None:
    async with open_rig(tmp_path) as rig:
        await rig.dial("friendi")
        rig.channel.startService()
        try:
            rig.clock.advance(TIMEOUT / 2)
            await asyncio.sleep(0.05)  # a tick's reap, had one been due, would have run by now
            assert len(rig.queued) == 1
            rig.clock.advance(TIMEOUT / 2 + rig.channel.reap_interval_s)  # the first tick past the timeout
            await eventually(lambda: len(rig.queued) == 2)
            assert rig.queued[-1].end_session
        finally:
            await rig.channel.stopService().asFuture(asyncio.get_running_loop())


@on_loop
async def test_an_answer_after_the_timeout_gets_the_release_screen(tmp_path: Path) -> None:
    """Late, but before the reaper ran: the handset is told the session ended, nothing is chosen."""
    async with open_rig(tmp_path) as rig:
        await rig.dial("ooredoo")
        rig.clock.advance(TIMEOUT + 1)
        await rig.answer("ooredoo", "1")
        assert rig.queued[-1].end_session and rig.queued[-1].text.startswith("Session ended")
        stored = await rig.session(SessionKey("ooredoo", MSISDN, "42"))
        assert stored is not None and stored.state == sessions.TIMED_OUT
        assert await rig.channel.reap() == 0


@on_loop
async def test_an_answer_to_an_unknown_dialogue_is_released(tmp_path: Path) -> None:
    async with open_rig(tmp_path) as rig:
        await rig.answer("omantel", "1")
        [release] = rig.queued
        assert release.end_session and release.session_id == "7"


@pytest.mark.parametrize("carrier", ["omantel", "ooredoo", "friendi"])
@on_loop
async def test_a_hang_up_closes_the_session_without_a_screen(tmp_path: Path, carrier: str) -> None:
    rig = await Rig(tmp_path / "db.sqlite3").open()
    try:
        await rig.dial(carrier)
        inbound = await rig.send(carrier, c.USSD_USSR_CONFIRM, abort=True)
        assert inbound is not None and inbound.session is SessionEvent.END
        assert len(rig.queued) == 1
        stored = await rig.session(SessionKey(carrier, MSISDN, ref_of(carrier)))
        assert stored is not None and stored.state == sessions.ABORTED
        rig.clock.advance(TIMEOUT * 2)
        assert await rig.channel.reap() == 0  # nothing left to time out
    finally:
        await rig.store.close()


@on_loop
async def test_a_restart_resumes_the_dialogue_where_it_was(tmp_path: Path) -> None:
    """The session and the menu state are in the store: a new channel carries on."""
    async with open_rig(tmp_path) as rig:
        await rig.dial("omantel")
        await rig.answer("omantel", "1")
        await rig.answer("omantel", "1")  # Parking menu
        before = rig.queued[-1].text
        await rig.restart()
        await rig.answer("omantel", "0")  # back, from the stored state
        assert rig.queued[-1].text.startswith("Muscat Municipality")
        assert before.startswith("Parking")


@on_loop
async def test_dialling_again_starts_over(tmp_path: Path) -> None:
    """A new dial on the same key (MSISDN-keyed carrier) replaces the open session."""
    async with open_rig(tmp_path) as rig:
        await rig.dial("friendi")
        await rig.answer("friendi", "1")
        await rig.answer("friendi", "1")
        await rig.dial("friendi")
        assert rig.queued[-1].text.startswith("Muscat Municipality")  # the language is remembered
        assert rig.channel.counters["replaced"] == 1


@on_loop
async def test_a_shortcut_dial_goes_straight_to_its_screen(tmp_path: Path) -> None:
    async with open_rig(tmp_path) as rig:
        await rig.dial("ooredoo", "*141*4#")
        assert rig.queued[-1].text.startswith("Choose language\n1 English")  # the language flow, in English
