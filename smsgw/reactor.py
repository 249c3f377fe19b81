"""Install Twisted's asyncio reactor before anything imports the global reactor.

aiosqlite is asyncio code; running Twisted on the asyncio loop lets both share one thread
and one event loop, so the store and the SMPP sessions never need cross-thread hand-offs.

The loop under the reactor is uvloop's when it is installed (a dependency on the platforms it
supports): its event loop is written in C, and the gateway spends a tenth less CPU per message
on it (the commit that brought it has the figures).  Without uvloop, or with
SMSGW_EVENT_LOOP=asyncio in the environment, it is the standard library's loop; behaviour is
the same on both.
"""

from __future__ import annotations

import asyncio
import os
import sys

#: Which loop install() chose: "uvloop" or "asyncio" (None before it ran).
event_loop: str | None = None


def new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop's loop if it is installed and not declined, else the standard library's."""
    global event_loop
    if os.environ.get("SMSGW_EVENT_LOOP", "").strip().lower() != "asyncio":
        try:
            import uvloop
        except ImportError:
            pass
        else:
            event_loop = "uvloop"
            return uvloop.new_event_loop()
    event_loop = "asyncio"
    return asyncio.new_event_loop()


def install() -> None:
    if "twisted.internet.reactor" in sys.modules:
        from twisted.internet import reactor

        if type(reactor).__name__ != "AsyncioSelectorReactor":
            raise RuntimeError("a non-asyncio Twisted reactor was installed before smsgw started")
        return
    from twisted.internet import asyncioreactor

    loop = new_event_loop()
    asyncio.set_event_loop(loop)
    asyncioreactor.install(loop)
