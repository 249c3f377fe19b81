"""What operators change, kept in the store: route overrides and the audit log.

Routes: the config file's `[[routes]]` stay the base; changes made through the admin API are
stored as overrides (a route put, or a config route deleted) and laid over whatever config is
loaded, at start-up and at every reload.  So an API change survives a restart AND a reload of
an unchanged file, and editing the file later does not silently undo it.

A route is identified by its scope: the keyword as the router folds it (so `help`, `HELP` and
` Help ` are one route) plus its set of short codes (empty: every short code).  Moving a route to
other short codes is a delete of the old scope and a put of the new one.

Nothing here imports Twisted: the gateway loads the overrides before its admin API exists.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from smsgw.config import RouteConfig
from smsgw.log import get_logger
from smsgw.migrations import Component
from smsgw.router import DEFAULT_KEYWORD
from smsgw.store import Connection, Store, StoreUnavailable
from smsgw.textnorm import tokens

__all__ = [
    "OPERATOR_SCHEMA",
    "AuditEntry",
    "RouteKey",
    "RouteOverrides",
    "list_audit",
    "record_audit",
    "route_key",
    "route_to_json",
]

log = get_logger(__name__)

OPERATOR_SCHEMA: Component = (
    "operator",
    (
        (
            # One row per route scope an operator changed; `action` 'put' carries the route,
            # 'delete' hides a route of the config file.  `seq` orders puts of new routes.
            """CREATE TABLE route_override (
                keyword_key  TEXT    NOT NULL,
                codes_key    TEXT    NOT NULL,
                action       TEXT    NOT NULL CHECK (action IN ('put', 'delete')),
                route        TEXT,
                seq          INTEGER NOT NULL,
                changed_at   REAL    NOT NULL,
                changed_by   TEXT    NOT NULL,
                PRIMARY KEY (keyword_key, codes_key)
            )""",
            # Who changed what, when: API writes (by token name) and reloads (API or SIGHUP).
            """CREATE TABLE audit_log (
                id       INTEGER PRIMARY KEY,
                at       REAL    NOT NULL,
                actor    TEXT    NOT NULL,
                action   TEXT    NOT NULL,
                target   TEXT,
                outcome  TEXT    NOT NULL,
                detail   TEXT    NOT NULL
            )""",
            "CREATE INDEX audit_log_at ON audit_log (at)",
        ),
        # 2: several nodes keep one audit log (smsgw/cluster.py): which node did it.
        (
            "ALTER TABLE audit_log ADD COLUMN node TEXT",
        ),
    ),
)

RouteKey = tuple[str, str]


def route_key(keyword: str, short_codes: Iterable[str]) -> RouteKey:
    """The scope identifying a route: folded keyword and sorted, de-duplicated short codes."""
    stripped = keyword.strip()
    if stripped == DEFAULT_KEYWORD:
        folded = DEFAULT_KEYWORD
    else:
        toks = tokens(stripped)
        folded = toks[0] if len(toks) == 1 else stripped.upper()
    codes = ",".join(sorted({c.strip() for c in short_codes}))
    return folded, codes


def route_to_json(route: RouteConfig) -> dict[str, Any]:
    return {
        "keyword": route.keyword,
        "aliases": list(route.aliases),
        "handler": route.handler,
        "short_codes": list(route.short_codes),
    }


def _route_from_json(text: str) -> RouteConfig:
    data = json.loads(text)
    return RouteConfig(
        keyword=data["keyword"], aliases=tuple(data["aliases"]), handler=data["handler"],
        short_codes=tuple(data["short_codes"]),
    )


@dataclass(frozen=True)
class _Override:
    key: RouteKey
    route: RouteConfig | None  # None: the config route of this scope is deleted
    seq: int


class RouteOverrides:
    """The stored route changes, in memory; `apply` lays them over a config's routes."""

    def __init__(self, overrides: Sequence[_Override] = ()) -> None:
        self._by_key: dict[RouteKey, _Override] = {o.key: o for o in overrides}

    @classmethod
    async def load(cls, store: Store) -> RouteOverrides:
        rows = await store.read(
            lambda conn: conn.execute(
                "SELECT keyword_key, codes_key, action, route, seq FROM route_override ORDER BY seq"
            ).fetchall()
        )
        return cls([
            _Override((kw, codes), _route_from_json(route) if action == "put" else None, seq)
            for kw, codes, action, route, seq in rows
        ])

    def __len__(self) -> int:
        return len(self._by_key)

    def apply(self, base: Iterable[RouteConfig]) -> tuple[RouteConfig, ...]:
        """Config routes with puts replacing in place, deletes removed, new puts appended."""
        result: list[RouteConfig] = []
        used: set[RouteKey] = set()
        for route in base:
            key = route_key(route.keyword, route.short_codes)
            override = self._by_key.get(key)
            if override is None:
                result.append(route)
                continue
            used.add(key)
            if override.route is not None:
                result.append(override.route)
        for override in sorted(self._by_key.values(), key=lambda o: o.seq):
            if override.key not in used and override.route is not None:
                result.append(override.route)
        return tuple(result)

    def with_put(self, route: RouteConfig) -> RouteOverrides:
        key = route_key(route.keyword, route.short_codes)
        return self._with(_Override(key, route, self._next_seq()))

    def with_delete(self, key: RouteKey) -> RouteOverrides:
        return self._with(_Override(key, None, self._next_seq()))

    def _with(self, override: _Override) -> RouteOverrides:
        changed = dict(self._by_key)
        changed[override.key] = override
        return RouteOverrides(list(changed.values()))

    def _next_seq(self) -> int:
        return max((o.seq for o in self._by_key.values()), default=0) + 1

    def override_for(self, key: RouteKey) -> _Override | None:
        return self._by_key.get(key)

    async def persist(self, store: Store, key: RouteKey, actor: str, at: float) -> None:
        """Store this object's override for `key` (as made by with_put/with_delete)."""
        override = self._by_key[key]
        route = json.dumps(route_to_json(override.route), ensure_ascii=False) if override.route else None

        def op(conn: Connection) -> None:
            conn.execute(
                "INSERT INTO route_override (keyword_key, codes_key, action, route, seq, changed_at, changed_by)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (keyword_key, codes_key) DO UPDATE SET action = excluded.action,"
                " route = excluded.route, seq = excluded.seq, changed_at = excluded.changed_at,"
                " changed_by = excluded.changed_by",
                (key[0], key[1], "put" if override.route else "delete", route, override.seq, at, actor),
            )

        await store.write(op)


@dataclass(frozen=True)
class AuditEntry:
    id: int
    at: float
    actor: str  # "token:<name>" for API calls, "signal:SIGHUP" for a reload by signal
    action: str
    target: str | None
    outcome: str  # "ok" | "refused"
    detail: dict[str, Any]
    node: str | None = None  # the gateway node that did it (several share one log)

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "at": self.at, "actor": self.actor, "action": self.action,
                "target": self.target, "outcome": self.outcome, "detail": self.detail, "node": self.node}


async def record_audit(
    store: Store, at: float, actor: str, action: str, target: str | None, outcome: str, detail: dict[str, Any],
    *, required: bool = False,
) -> None:
    """Append one audit record; a store failure is logged, never raised: the change itself
    already happened (or was refused), and the operator must still get its answer.  With
    `required` the failure is raised (StoreUnavailable): for a read that may only be answered
    once it is on record."""

    def op(conn: Connection) -> None:
        conn.execute(
            "INSERT INTO audit_log (at, actor, action, target, outcome, detail, node) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (at, actor, action, target, outcome, json.dumps(detail, ensure_ascii=False, default=str), store.node),
        )

    try:
        await store.write(op)
    except StoreUnavailable as exc:
        log.error("audit_not_stored", actor=actor, action=action, target=target, error=str(exc))
        if required:
            raise


async def list_audit(store: Store, since: float | None = None, limit: int = 100) -> list[AuditEntry]:
    """Newest first."""

    def fn(conn: Connection) -> list[Any]:
        if since is None:
            return conn.execute(
                "SELECT id, at, actor, action, target, outcome, detail, node FROM audit_log ORDER BY id DESC LIMIT ?",
                (limit,),
            ).fetchall()
        return conn.execute(
            "SELECT id, at, actor, action, target, outcome, detail, node FROM audit_log WHERE at >= ?"
            " ORDER BY id DESC LIMIT ?",
            (since, limit),
        ).fetchall()

    rows = await store.read(fn)
    return [AuditEntry(r[0], r[1], r[2], r[3], r[4], r[5], json.loads(r[6]), r[7]) for r in rows]
