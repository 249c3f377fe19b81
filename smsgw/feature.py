"""How a service (parking, transaction status, USSD menus…) plugs into the gateway.

A feature brings handlers (by the names config routes use), optionally its own tables (a schema
component the store migrates), and optionally long-running services (a reminder scheduler).
It sees the gateway only through `ServiceContext`: the store, the time, and a way to queue an
SMS that answers no MO.  Nothing here knows SMPP.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar

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
    #: Whether this node runs the once-only jobs (reminders, notices) now: always on one node; on
    #: several sharing one database, the node holding the jobs role (smsgw/cluster.py).
    runs_jobs: Callable[[], bool] = lambda: True

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


C = TypeVar("C")


class FeatureFile(Generic[C]):
    """A feature's own config file, given as a loaded config (tests), as a path, or not at all:
    then `<the gateway's config folder>/<file_name>`."""

    def __init__(self, given: C | str | os.PathLike[str] | None, loaded_type: type[C], file_name: str,
                 load: Callable[[Path], C]) -> None:
        self.given = given
        self.loaded_type = loaded_type
        self.file_name = file_name
        self._load = load

    def path(self, config_dir: Path) -> Path | None:
        if isinstance(self.given, self.loaded_type):
            return None
        return config_dir / self.file_name if self.given is None else Path(self.given)  # type: ignore[arg-type]

    def load(self, config_dir: Path) -> C:
        """The config, read and checked (ConfigError naming file, line and key)."""
        path = self.path(config_dir)
        return self.given if path is None else self._load(path)  # type: ignore[return-value]

    def check(self, config_dir: Path, _short_codes: Mapping[str, tuple[str, ...]]) -> list[Path]:
        """For Feature.check_config: the file read, as start-up would."""
        path = self.path(config_dir)
        if path is None:
            return []
        self._load(path)
        return [path]
