"""Shared set-up for the parking tests: the shipped parking config, Muscat times, and a real
Store with a ServiceContext on a twisted task.Clock (business time moves only when a test says)."""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from twisted.internet.task import Clock

from handlers.parking import HANDLER, ParkingHandler
from handlers.parking.config import ParkingConfig, load_parking_config
from handlers.parking.schema import COMPONENT
from smsgw.feature import ServiceContext
from smsgw.message import Inbound, Reply
from smsgw.router import Route, Router
from smsgw.store import NewMo, NewMt, Outbound, Store
from tests import engines
from tests.stack import on_loop  # noqa: F401  (re-exported for the parking test modules)

ROOT = Path(__file__).resolve().parent.parent
MUSCAT = ZoneInfo("Asia/Muscat")
PARKING = "90091"
DRIVER = "96891234567"
SPOUSE = "96899887766"
INSPECTOR = "96890000001"

SHIPPED = load_parking_config(ROOT / "config" / "parking.toml")
CONFIG = dataclasses.replace(SHIPPED, inspectors=frozenset({INSPECTOR}))

#: The routes proposed for config/gateway.toml, built in code.
ROUTES = (
    Route("HELP", ("مساعدة", "H", "?"), "help"),
    Route("PARK", ("P", "موقف", "حجز"), HANDLER, (PARKING,)),
    Route("EXT", ("تمديد", "تجديد"), HANDLER, (PARKING,)),
    Route("CANCEL", ("STOP", "إلغاء"), HANDLER, (PARKING,)),
    Route("MY", ("مواقفي",), HANDLER, (PARKING,)),
    Route("Y", ("YES", "نعم"), HANDLER, (PARKING,)),
    Route("*", (), HANDLER, (PARKING,)),
)


def at(day: str, hhmm: str) -> float:
    """Epoch seconds of a Muscat wall-clock time, e.g. at("2026-11-22", "10:00") (a Sunday)."""
    return datetime.fromisoformat(f"{day}T{hhmm}").replace(tzinfo=MUSCAT).timestamp()


SUNDAY = "2026-11-22"
TUESDAY = "2026-11-24"
FRIDAY = "2026-11-27"
NATIONAL_DAY = "2026-11-18"  # a Wednesday, and a holiday in the shipped config


@dataclass
class Harness:
    store: Store
    clock: Clock
    ctx: ServiceContext
    handler: ParkingHandler
    router: Router
    enqueued: list[Outbound] = field(default_factory=list)
    _mo_ids: int = 0

    @property
    def service(self) -> Any:
        return self.handler.service

    async def mo(self, text: str, msisdn: str = DRIVER, carrier: str = "omantel",
                 msg_id: str | None = None) -> Inbound:
        """Store an MO the way the gateway does (a real inbound row and id)."""
        self._mo_ids += 1
        inbound, _dup = await self.store.accept_mo(
            NewMo(carrier, msg_id or f"{carrier}-{self._mo_ids}", msisdn, PARKING, text, 0, self.clock.seconds())
        )
        assert inbound is not None
        return inbound

    async def handle(self, inbound: Inbound) -> list[str]:
        handler, request = self.router.route(inbound)
        replies = handler.handle(request)
        if inspect.isawaitable(replies):
            replies = await replies
        return [r.text for r in replies]

    async def send(self, text: str, msisdn: str = DRIVER, carrier: str = "omantel") -> str:
        replies = await self.handle(await self.mo(text, msisdn, carrier))
        assert len(replies) == 1, replies
        return replies[0]

    async def reopen(self) -> None:
        """Close the store and open it again (what a restart does to durable state)."""
        path = self.store._path
        await self.store.close()
        self.store = await Store.open(path, clock=self.clock.seconds, components=[COMPONENT])
        self.ctx = dataclasses.replace(self.ctx, store=self.store)
        self.handler = ParkingHandler(self.ctx, self.handler.config)
        self.router = Router(ROUTES, {HANDLER: self.handler})

    async def close(self) -> None:
        await self.store.close()


async def open_harness(tmp_path: Path, now: float, config: ParkingConfig = CONFIG,
                       routes: Sequence[Route] = ROUTES) -> Harness:
    clock = Clock()
    clock.advance(now)
    store = await Store.open(engines.location(tmp_path), clock=clock.seconds, components=[COMPONENT])
    enqueued: list[Outbound] = []

    def new_mt(reply: Reply, kind: str) -> NewMt:
        # As the gateway drafts an MT: validity from the carrier (a day here).
        t = clock.seconds()
        return NewMt(carrier=reply.carrier, msisdn=reply.msisdn, short_code=reply.short_code, text=reply.text,
                     created_at=t, expires_at=t + 86400, channel=reply.channel.value, kind=kind)

    async def send(reply: Reply, kind: str = "notice") -> int:
        outbound = await store.enqueue_mt(new_mt(reply, kind))
        enqueued.append(outbound)
        return outbound.id

    ctx = ServiceContext(
        store=store, clock=clock, send=send, new_mt=new_mt, enqueue=enqueued.append,
        config_dir=ROOT / "config", short_codes={"omantel": (PARKING,), "ooredoo": (PARKING,)},
    )
    handler = ParkingHandler(ctx, config)
    return Harness(store, clock, ctx, handler, Router(routes, {HANDLER: handler}), enqueued)
