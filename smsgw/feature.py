"""How a service (parking, transaction status, USSD menus…) plugs into the gateway.

A feature brings handlers (by the names config routes use), optionally its own tables (a schema
component the store migrates), and optionally long-running services (a reminder scheduler).
It sees the gateway only through `ServiceContext`: the store, the time, and a way to queue an
SMS that answers no MO.  Nothing here knows SMPP.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from twisted.internet.interfaces import IReactorTime

from smsgw.message import Reply

if TYPE_CHECKING:
    from twisted.application.service import IService

    from smsgw.admin.api import AdminRoute
    from smsgw.migrations import Component
    from smsgw.store import NewMt, Outbound, Store


@dataclass(frozen=True)
class ServiceContext:
    store: "Store"
    clock: IReactorTime
    #: Queue an MT that answers no MO (notices, reminders); returns its id once stored.
    send: Callable[[Reply, str], Awaitable[int]]
    #: Build the stored form of an MT (validity from the carrier's config): `new_mt(reply, kind)`.
    #: With `store.write(op)` and `store.insert_mt(conn, mt)` a feature commits an MT together
    #: with its own change; it then passes the returned Outbound to `enqueue`.
    new_mt: Callable[[Reply, str], "NewMt"]
    enqueue: Callable[["Outbound"], None]
    #: Folder of the gateway's config file, where feature config files (parking.toml…) live.
    config_dir: Path
    #: Enabled carriers with the short codes each serves.
    short_codes: Mapping[str, tuple[str, ...]]

    def now(self) -> float:
        return self.clock.seconds()


HandlerFactory = Callable[[ServiceContext], Any]


@dataclass(frozen=True)
class Feature:
    name: str
    handlers: Mapping[str, HandlerFactory] = field(default_factory=dict)
    schema: "Component | None" = None
    services: Callable[[ServiceContext, Mapping[str, Any]], Sequence["IService"]] | None = None
    #: Endpoints the feature adds to the admin HTTP API, given the context and the built handlers
    #: (so they can share a handler's service), e.g. the transactions feed.
    admin_routes: Callable[[ServiceContext, Mapping[str, Any]], Sequence["AdminRoute"]] | None = None
    #: Read and check the feature's own config files as start-up would, without starting:
    #: `check_config(config_dir, short_codes)` returns the files it read and raises ConfigError
    #: (file, line, key) for a bad one. For `smsgw check-config`.
    check_config: Callable[[Path, Mapping[str, tuple[str, ...]]], Sequence[Path]] | None = None
