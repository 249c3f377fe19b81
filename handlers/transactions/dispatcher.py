"""The gateway-side service that sends notifications other processes left pending.

`smsgw transactions import` runs outside the gateway, so the notices its changes owe are written
pending (see service.py).  This service turns them into queued MTs: at start-up (changes made
while the gateway was down) and every `notifications.poll_s` seconds.  Changes made through the
admin API never wait for it: they are queued in their own transaction.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from twisted.application.service import Service
from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall

from handlers.transactions.service import TransactionService
from smsgw.log import get_logger
from smsgw.store import StoreUnavailable

log = get_logger(__name__)


class NoticeDispatcher(Service):
    name = "transactions-notices"

    def __init__(self, service: TransactionService, clock: IReactorTime, interval_s: float,
                 runs_jobs: Callable[[], bool] = lambda: True) -> None:
        self.service = service
        self.runs_jobs = runs_jobs  # several nodes: only the one holding the jobs role dispatches
        self.clock = clock
        self.interval_s = interval_s
        self._loop: LoopingCall | None = None
        self._tick_running = False
        self._idle_waiters: list[Deferred[None]] = []

    def startService(self) -> None:
        super().startService()
        self._loop = LoopingCall(self._tick)
        self._loop.clock = self.clock
        self._loop.start(self.interval_s, now=True)

    def stopService(self) -> Deferred[None]:
        super().stopService()
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        # Let a dispatch in progress finish: what it committed is then handed to the queue.
        if not self._tick_running:
            return succeed(None)
        waiter: Deferred[None] = Deferred()
        self._idle_waiters.append(waiter)
        return waiter

    def _tick(self) -> Deferred[None]:
        self._tick_running = True
        return Deferred.fromFuture(asyncio.ensure_future(self._dispatch()))

    async def _dispatch(self) -> None:
        try:
            if self.runs_jobs():
                await self.service.dispatch_pending()
        except StoreUnavailable as exc:
            # The notices stay pending; the next tick tries again.
            log.warning("transaction_notices_not_dispatched", error=str(exc))
        except Exception:
            # A bug must not stop the loop (LoopingCall stops on an error) and so every later notice.
            log.exception("transaction_notices_dispatch_failed")
        finally:
            self._tick_running = False
            waiters, self._idle_waiters = self._idle_waiters, []
            for waiter in waiters:
                waiter.callback(None)
