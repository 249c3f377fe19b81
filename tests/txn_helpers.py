"""Test harness for the transactions feature: a real Store, the real service, handler and router.

The only stand-in is the outbound queue: `Harness.queued` collects what the service hands to it
(after COMMIT), which is exactly the contract the gateway's queue sees.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from handlers.transactions.config import TransactionsConfig
from handlers.transactions.handler import TransactionsHandler
from handlers.transactions.records import parse_record
from handlers.transactions.schema import SCHEMA
from handlers.transactions.service import Outbox, TransactionService, UpsertResult
from smsgw.config import RouteConfig
from smsgw.message import Inbound, Reply
from smsgw.router import Router
from smsgw.store import NewMt, Outbound, Store
from tests import engines
from tests.stack import on_loop  # noqa: F401 - the transactions tests take it from here

T0 = 1_773_297_000.0  # 2026-03-12 10:30 in Muscat
CODE = "90092"
CARRIERS = {"omantel": ("90091", "90092"), "ooredoo": ("90091", "90092"), "friendi": ("90091", "90092")}

#: The routes proposed for config/gateway.toml (see the feature's README notes).
ROUTES = (
    RouteConfig(keyword="STATUS", aliases=("حالة", "استعلام"), handler="transactions", short_codes=(CODE,)),
    RouteConfig(keyword="MY", aliases=("طلباتي",), handler="transactions", short_codes=(CODE,)),
    RouteConfig(keyword="STOP", aliases=("إيقاف",), handler="transactions", short_codes=(CODE,)),
    RouteConfig(keyword="START", aliases=("تشغيل",), handler="transactions", short_codes=(CODE,)),
)




class Clock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@dataclass
class Harness:
    path: str
    config: TransactionsConfig
    clock: Clock
    in_gateway: bool
    store: Store = field(init=False)
    service: TransactionService = field(init=False)
    router: Router = field(init=False)
    queued: list[Outbound] = field(default_factory=list)
    _ids: Any = field(default_factory=lambda: itertools.count(1))

    async def open(self) -> Harness:
        self.store = await Store.open(self.path, clock=self.clock, components=[SCHEMA])
        outbox = Outbox(self._new_mt, self.queued.append, CARRIERS) if self.in_gateway else None
        self.service = TransactionService(self.store, self.config, self.clock, outbox)
        self.router = Router(ROUTES, {"transactions": TransactionsHandler(self.service)})
        return self

    async def reopen(self) -> None:
        """Close and open the same file again: what a gateway restart does to the store."""
        await self.store.close()
        await self.open()

    async def close(self) -> None:
        await self.store.close()

    def _new_mt(self, reply: Reply, kind: str) -> NewMt:
        return NewMt(reply.carrier, reply.msisdn, reply.short_code, reply.text, self.clock(),
                     self.clock() + 86400, channel=reply.channel.value, kind=kind)

    async def sms(self, msisdn: str, text: str, carrier: str = "omantel", code: str = CODE) -> list[str]:
        """A handset's MO through the real router and handler; the reply texts."""
        inbound = Inbound(next(self._ids), carrier, msisdn, code, text, self.clock())
        handler, request = self.router.route(inbound)
        replies = await handler.handle(request)
        assert all(r.msisdn == msisdn and r.carrier == carrier for r in replies)
        return [r.text for r in replies]

    async def feed(self, source: str = "test", **fields: Any) -> UpsertResult:
        record = parse_record(fields, self.config, self.clock())
        return await self.service.upsert(record, source)

    async def outbound_rows(self) -> list[tuple[Any, ...]]:
        return await self.store.read(
            lambda conn: conn.execute(
                "SELECT id, carrier, msisdn, short_code, kind, state, text FROM outbound ORDER BY id"
            ).fetchall()
        )


async def open_harness(
    tmp_path: Path, config: TransactionsConfig | None = None, *, in_gateway: bool = True, clock: Clock | None = None
) -> Harness:
    return await Harness(engines.location(tmp_path), config or TransactionsConfig(), clock or Clock(),
                         in_gateway).open()
