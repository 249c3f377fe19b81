"""Install Twisted's asyncio reactor before anything imports the global reactor.

aiosqlite is asyncio code; running Twisted on the asyncio loop lets both share one thread
and one event loop, so the store and the SMPP sessions never need cross-thread hand-offs.
"""

from __future__ import annotations

import asyncio
import sys


def install() -> None:
    if "twisted.internet.reactor" in sys.modules:
        from twisted.internet import reactor

        if type(reactor).__name__ != "AsyncioSelectorReactor":
            raise RuntimeError("a non-asyncio Twisted reactor was installed before smsgw started")
        return
    from twisted.internet import asyncioreactor

    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    asyncioreactor.install(loop)
