"""The reminder scheduler: a Twisted service that polls for due reminders on the business clock.

It holds no state of its own: what is due, and what was sent, live in the store (see
`ParkingService.send_due_reminders`), so a restart, or a second run of the same poll, neither
loses a reminder nor sends one twice.  This is the only module of the feature that knows Twisted.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from twisted.application.service import Service
from twisted.internet.defer import Deferred
from twisted.internet.task import LoopingCall

from smsgw.log import get_logger
from smsgw.store import StoreUnavailable

if TYPE_CHECKING:
    from handlers.parking.handler import ParkingHandler
    from smsgw.feature import ServiceContext

__all__ = ["ReminderScheduler"]

log = get_logger(__name__)


class ReminderScheduler(Service):
    name = "parking-reminders"

    def __init__(self, handler: ParkingHandler, ctx: ServiceContext) -> None:
        self._handler = handler
        self._ctx = ctx
        self._interval = handler.config.reminder_poll_seconds
        self._loop = LoopingCall(self._tick)
        self._loop.clock = ctx.clock  # business time: tests jump it to 10:20 on a Sunday
        self._stopped: Deferred | None = None

    def startService(self) -> None:
        super().startService()
        if self._handler.config.reminder_lead_minutes:
            self._stopped = self._loop.start(self._interval, now=True)

    def stopService(self) -> Deferred | None:
        super().stopService()
        if self._loop.running:
            self._loop.stop()
        # Fires once a poll in progress has finished, so the store is not closed under it.
        return self._stopped

    async def run_once(self) -> int:
        """One poll: queue every reminder that is due; returns how many were queued."""
        if not self._ctx.runs_jobs():
            return 0  # another node of the cluster runs the reminders
        try:
            return await self._handler.service.send_due_reminders(self._handler.reminder_reply)
        except StoreUnavailable as exc:
            log.error("parking_reminders_not_stored", error=str(exc))  # the next poll tries again
        except Exception:
            log.exception("parking_reminders_failed")  # never let one bad poll stop the loop
        return 0

    def _tick(self) -> Deferred:
        return Deferred.fromFuture(asyncio.ensure_future(self.run_once()))
