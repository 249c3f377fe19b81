"""The operators' endpoints on the admin API: status, message history, pause/resume, routes,
sending a notice, reload, the audit log, Prometheus metrics and the status page.

    GET    /api/v1/status                     carriers, queues, store, version, uptime
    GET    /api/v1/messages?msisdn=&since=&limit=   history: metadata for any token; MSISDNs and
                                              bodies for admin tokens only, each such read audited
    POST   /api/v1/messages                   {carrier, msisdn, short_code, text}: queue an SMS
    POST   /api/v1/carriers/{name}/pause      stop submitting (the bind stays up; MOs still flow)
    POST   /api/v1/carriers/{name}/resume
    GET    /api/v1/routes                     effective routes (config + API changes)
    PUT    /api/v1/routes                     {keyword, aliases, handler, short_codes}: add or replace
    DELETE /api/v1/routes?keyword=&short_code=…   remove the route of exactly that scope
    POST   /api/v1/reload                     re-read the config file (as SIGHUP does)
    GET    /api/v1/audit?since=&limit=        who changed what, newest first
    GET    /metrics                           Prometheus exposition; any valid token (read-only is enough)
    GET    /                                  the HTML status page; token in ?token= or the header

Every write records an audit entry with the token's name (never the token).  The status page is
a PUBLIC route (without a token it answers with a sign-in form): the server authenticates the
Authorization header or, since a browser cannot send a bearer header on a plain page load, the
`?token=` of the URL (see `page.py` for why that is acceptable here), and logs the token's name.
"""

from __future__ import annotations

import asyncio
import math
from collections import deque
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from prometheus_client import CONTENT_TYPE_LATEST
from twisted.application.service import Service
from twisted.internet.task import LoopingCall

import smsgw
from smsgw.admin.api import (
    Access,
    AdminRoute,
    ApiCall,
    ApiError,
    JsonResponse,
    Response,
    Role,
)
from smsgw.admin.state import (
    RouteKey,
    list_audit,
    record_audit,
    route_key,
    route_to_json,
)
from smsgw.config import RouteConfig
from smsgw.log import excerpt, get_logger, mask_msisdn
from smsgw.message import Reply
from smsgw.msisdn import parse_user_msisdn

if TYPE_CHECKING:
    from smsgw.store import Connection
    from smsgw.gateway import Gateway

__all__ = ["OperatorApi", "ThroughputSampler"]

log = get_logger(__name__)

#: "Actual TPS" is submits over this many seconds.
TPS_WINDOW_S = 60.0
SAMPLE_INTERVAL_S = 1.0
MAX_TEXT = 1000  # characters of an operator's SMS: about 7 UCS-2 parts, plenty for a notice
MAX_LIMIT = 1000


class ThroughputSampler(Service):
    """Samples each sender's submit counter once a second, for the actual TPS over the last
    minute, and notes when each carrier link entered its current state (the connector keeps
    only `bound_since`)."""

    name = "operator-sampler"

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self._samples: dict[str, deque[tuple[float, int]]] = {}
        self._states: dict[str, tuple[str, float]] = {}
        self._loop: LoopingCall | None = None

    def startService(self) -> None:
        super().startService()
        self._loop = LoopingCall(self.sample)
        self._loop.clock = self.gateway.clock
        self._loop.start(SAMPLE_INTERVAL_S, now=True)

    def stopService(self) -> None:
        super().stopService()
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        self._loop = None

    def sample(self) -> None:
        gw = self.gateway
        now = gw.clock.seconds()
        if gw.queue is not None:
            for name, sender in gw.queue.senders.items():
                samples = self._samples.setdefault(name, deque())
                if samples and sender.stats.submitted < samples[-1][1]:
                    samples.clear()  # a new sender (carrier re-added by a reload): counting restarts
                samples.append((now, sender.stats.submitted))
                # Keep one sample older than the window, so the rate always spans a full minute.
                while len(samples) > 2 and samples[1][0] <= now - TPS_WINDOW_S:
                    samples.popleft()
        for name in gw.connectors:
            self.state_since(name)

    def actual_tps(self, carrier: str) -> float:
        """Submits per second over the last minute (or since start, when that is shorter)."""
        gw = self.gateway
        sender = gw.queue.senders.get(carrier) if gw.queue is not None else None
        samples = self._samples.get(carrier)
        if sender is None or not samples:
            return 0.0
        now = gw.clock.seconds()
        first_at, first_count = samples[0]
        for at, count in samples:
            if at >= now - TPS_WINDOW_S:
                break
            first_at, first_count = at, count
        elapsed = now - first_at
        if elapsed <= 0:
            return 0.0
        return max(0, sender.stats.submitted - first_count) / elapsed

    def state_since(self, carrier: str) -> tuple[str, float | None]:
        connector = self.gateway.connectors.get(carrier)
        if connector is None:
            return "removed", None
        state = connector.state
        if state == "bound" and connector.bound_since is not None:
            self._states[carrier] = (state, connector.bound_since)
            return state, connector.bound_since
        known = self._states.get(carrier)
        if known is None or known[0] != state:
            known = (state, self.gateway.clock.seconds())
            self._states[carrier] = known
        return known


#: A time filter outside 1970-01-01 .. 9999-12-31 is a typo (or NaN, or infinity).
_LATEST_TIME = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC).timestamp()


def _parse_time(raw: str, field: str) -> float:
    """Epoch seconds, or ISO 8601 (a date, or a date-time; UTC when no offset is given)."""
    value: float | None
    try:
        value = float(raw)
    except ValueError:
        value = None
    if value is None:
        try:
            parsed = datetime.fromisoformat(raw)  # 3.11 reads a trailing Z too
            if parsed.tzinfo is None:
                parsed = parsed.replace(tzinfo=UTC)
            value = parsed.timestamp()
        except (ValueError, OverflowError):
            raise ApiError(400, "invalid_field", f"{field} must be epoch seconds or ISO 8601, got {excerpt(raw)}",
                           field=field) from None
    if not math.isfinite(value) or not 0 <= value <= _LATEST_TIME:
        raise ApiError(400, "invalid_field", f"{field} must be a time from 1970-01-01 to 9999-12-31, got "
                       f"{excerpt(raw)}", field=field)
    return value


def _one(call: ApiCall, name: str) -> str | None:
    values = call.query.get(name, ())
    if len(values) > 1:
        raise ApiError(400, "invalid_field", f"give {name} once", field=name)
    return values[0] if values else None


def _limit(call: ApiCall, default: int) -> int:
    raw = _one(call, "limit")
    if raw is None:
        return default
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_LIMIT:
        raise ApiError(400, "invalid_field", f"limit must be a whole number from 1 to {MAX_LIMIT}", field="limit")
    return int(raw)


def _string_list(body: dict[str, Any], name: str) -> tuple[str, ...]:
    value = body.get(name, [])
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise ApiError(400, "invalid_field", f"{name} must be a list of non-empty strings", field=name)
    return tuple(v.strip() for v in value)


def _string(body: dict[str, Any], name: str) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value.strip():
        raise ApiError(400, "invalid_field", f"{name} is required (a non-empty string)", field=name)
    return value.strip()


def _actor(call: ApiCall) -> str:
    assert call.principal is not None  # write routes are authenticated by the server
    return f"token:{call.principal.name}"


class OperatorApi:
    """The gateway-level admin routes, bound to one running gateway."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.sampler = ThroughputSampler(gateway)
        # One route change at a time: each builds on the overrides the previous one left.
        self._routes_lock = asyncio.Lock()

    def routes(self) -> list[AdminRoute]:
        return [
            AdminRoute("GET", "/api/v1/status", self.get_status),
            AdminRoute("GET", "/api/v1/messages", self.get_messages),
            AdminRoute("POST", "/api/v1/messages", self.post_message),
            AdminRoute("POST", "/api/v1/carriers/{name}/pause", self.pause),
            AdminRoute("POST", "/api/v1/carriers/{name}/resume", self.resume),
            AdminRoute("GET", "/api/v1/routes", self.get_routes),
            AdminRoute("PUT", "/api/v1/routes", self.put_route),
            AdminRoute("DELETE", "/api/v1/routes", self.delete_route),
            AdminRoute("POST", "/api/v1/reload", self.reload),
            AdminRoute("GET", "/api/v1/audit", self.get_audit),
            AdminRoute("GET", "/api/v1/cluster", self.get_cluster),
            AdminRoute("GET", "/metrics", self.get_metrics),
            # PUBLIC so that without a token it can answer with its sign-in form, not a JSON 401;
            # the server still authenticates the header or ?token= and logs the token's name.
            AdminRoute("GET", "/", self.get_page, access=Access.PUBLIC, token_in_query=True),
        ]

    # -- status -----------------------------------------------------------------------------

    async def status(self) -> dict[str, Any]:
        gw = self.gateway
        now = gw.clock.seconds()
        carriers = []
        for name, config in sorted(gw.carriers.items()):
            connector = gw.connectors.get(name)
            sender = gw.queue.senders.get(name) if gw.queue is not None else None
            state, since = self.sampler.state_since(name)
            session = connector.transmitter() if connector is not None else None
            oldest = sender.oldest_created_at() if sender is not None else None
            carriers.append({
                "name": name,
                "state": state,
                "since": since,
                "paused": bool(sender is not None and sender.paused),
                "short_codes": list(config.short_codes),
                "window": {"in_use": session.outstanding if session is not None else 0, "size": config.window},
                "tps": {
                    "limit": sender.rate.current if sender is not None else config.tps,
                    "configured": config.tps,
                    "actual": round(self.sampler.actual_tps(name), 3),
                },
                "queue": {
                    "depth": sender.depth if sender is not None else 0,
                    "oldest_age_s": round(max(0.0, now - oldest), 3) if oldest is not None else None,
                },
                "last_error": connector.last_error if connector is not None else None,
                "submits": _stats(sender),
            })
        store = gw.store
        counts = await store.counts() if store is not None else {}
        return {
            "version": smsgw.__version__,
            "now": now,
            "started_at": gw.started_at,
            "uptime_s": round(now - gw.started_at, 3) if gw.started_at is not None else None,
            "carriers": carriers,
            "store": {
                "engine": store.engine.name if store is not None else None,
                "path": store.location if store is not None else gw.config.store_path,
                "bytes": await store.size_bytes() if store is not None else None,
                "healthy": bool(store is not None and store.healthy),
                "last_error": store.last_error if store is not None else None,
                "counts": counts,
            },
            "routes": len(gw.router.routes) if gw.router is not None else 0,
            "route_overrides": len(gw.route_overrides),
            "node": gw.node,
            "cluster": self.cluster(),
        }

    def cluster(self) -> dict[str, Any] | None:
        """This node's membership and every node, bind and role as its last heartbeat saw them
        (None: a single node on SQLite)."""
        member = self.gateway.cluster
        if member is None:
            return None
        view = member.view
        return {
            "node": member.node,
            "fenced": member.fenced,
            "jobs": member.jobs,
            "slots": dict(sorted(member.slots.items())),
            "lease_valid_s": round(max(0.0, member.valid_until - member.monotonic() + member.settings.fence_margin_s), 3),
            "heartbeats": member.heartbeats,
            "failed_heartbeats": member.failed_heartbeats,
            "fences": member.fences,
            "resets": member.resets,
            "seen_at": view.at or None,
            "nodes": view.nodes,
            "binds": view.binds,
            "roles": view.roles,
        }

    async def get_cluster(self, call: ApiCall) -> Response:
        return JsonResponse(200, {"node": self.gateway.node, "cluster": self.cluster()})

    async def get_status(self, call: ApiCall) -> Response:
        return JsonResponse(200, await self.status())

    # -- messages ---------------------------------------------------------------------------

    async def history(self, msisdn: str | None, since: float | None, limit: int,
                      reveal: bool) -> list[dict[str, Any]]:
        store = self._store()
        items = await store.history(msisdn, since, limit)
        mt_ids = [item["id"] for item in items if item["direction"] == "mt"]
        receipts = await store.read(_receipts, mt_ids) if mt_ids else {}
        for item in items:
            if not reveal:
                # Metadata only: what a read-only token (a wall screen, Prometheus) may see.
                item["msisdn"] = mask_msisdn(item["msisdn"])
                del item["text"]
            if item["direction"] == "mt":
                item["dlr"] = receipts.get(item["id"], [])
        return items

    async def get_messages(self, call: ApiCall) -> Response:
        raw_msisdn = _one(call, "msisdn")
        msisdn = None
        if raw_msisdn is not None:
            msisdn = parse_user_msisdn(raw_msisdn)
            if msisdn is None:
                raise ApiError(400, "invalid_field", "msisdn is not a valid phone number", field="msisdn")
        raw_since = _one(call, "since")
        since = _parse_time(raw_since, "since") if raw_since is not None else None
        reveal = call.principal is not None and call.principal.role is Role.ADMIN
        limit = _limit(call, 100)
        items = await self.history(msisdn, since, limit, reveal)
        if reveal:
            # Citizens' messages: every read of bodies is audited before anything is shown, and
            # shown only if the audit record is stored (StoreUnavailable: 503, nothing disclosed).
            masked = mask_msisdn(msisdn) if msisdn is not None else None
            await self._audit(call, "read_messages", masked or "*",
                              {"msisdn": masked, "since": since, "limit": limit, "messages": len(items)},
                              required=True)
            log.info("operator_messages_read", msisdn=masked, messages=len(items),
                     token=call.principal.name if call.principal else None)
        return JsonResponse(200, {"messages": items, "masked": not reveal, "bodies": reveal})

    async def post_message(self, call: ApiCall) -> Response:
        body = call.json_object()
        unknown = sorted(set(body) - {"carrier", "msisdn", "short_code", "text"})
        if unknown:
            raise ApiError(400, "invalid_field", f"unknown field {excerpt(unknown[0])}", field=unknown[0])
        carrier = _string(body, "carrier")
        config = self.gateway.carriers.get(carrier)
        if config is None:
            raise ApiError(400, "invalid_field", f"no enabled carrier {excerpt(carrier)} (have: "
                           f"{', '.join(sorted(self.gateway.carriers))})", field="carrier")
        msisdn = parse_user_msisdn(_string(body, "msisdn"))
        if msisdn is None:
            raise ApiError(400, "invalid_field", "msisdn is not a valid phone number", field="msisdn")
        short_code = _string(body, "short_code")
        if short_code not in config.short_codes:
            raise ApiError(400, "invalid_field", f"{carrier} does not serve short code {excerpt(short_code)} "
                           f"(it serves {', '.join(config.short_codes)})", field="short_code")
        text = body.get("text")
        if not isinstance(text, str) or not text.strip():
            raise ApiError(400, "invalid_field", "text is required (a non-empty string)", field="text")
        if len(text) > MAX_TEXT:
            raise ApiError(400, "invalid_field", f"text is longer than {MAX_TEXT} characters", field="text")
        outbound_id = await self.gateway.send(Reply(carrier, msisdn, short_code, text), "operator")
        await self._audit(call, "send_sms", carrier, {"outbound_id": outbound_id, "msisdn": mask_msisdn(msisdn),
                                                      "short_code": short_code, "chars": len(text)})
        log.info("operator_sms_queued", carrier=carrier, msisdn=mask_msisdn(msisdn), outbound_id=outbound_id,
                 token=call.principal.name if call.principal else None)
        return JsonResponse(202, {"id": outbound_id, "state": "queued", "carrier": carrier,
                                  "msisdn": msisdn, "short_code": short_code})

    # -- carriers ---------------------------------------------------------------------------

    def _sender(self, call: ApiCall) -> Any:
        name = call.params["name"]
        queue = self.gateway.queue
        sender = queue.senders.get(name) if queue is not None else None
        if sender is None:
            raise ApiError(404, "not_found", f"no carrier {excerpt(name)}")
        return sender

    async def pause(self, call: ApiCall) -> Response:
        sender = self._sender(call)
        was = sender.paused
        await self.gateway.set_paused(sender.carrier, True, _actor(call))
        await self._audit(call, "pause", sender.carrier, {"was_paused": was})
        log.info("carrier_paused", carrier=sender.carrier, token=call.principal.name if call.principal else None)
        return JsonResponse(200, {"carrier": sender.carrier, "paused": True, "queue_depth": sender.depth})

    async def resume(self, call: ApiCall) -> Response:
        sender = self._sender(call)
        was = sender.paused
        await self.gateway.set_paused(sender.carrier, False, _actor(call))
        await self._audit(call, "resume", sender.carrier, {"was_paused": was})
        log.info("carrier_resumed", carrier=sender.carrier, token=call.principal.name if call.principal else None)
        return JsonResponse(200, {"carrier": sender.carrier, "paused": False, "queue_depth": sender.depth})

    # -- routes -----------------------------------------------------------------------------

    def _route_json(self, route: Any) -> dict[str, Any]:
        data = route_to_json(route)
        key = route_key(route.keyword, route.short_codes)
        override = self.gateway.route_overrides.override_for(key)
        data["source"] = "api" if override is not None else "config"
        return data

    async def get_routes(self, call: ApiCall) -> Response:
        router = self.gateway.router
        assert router is not None
        return JsonResponse(200, {"routes": [self._route_json(r) for r in router.routes]})

    async def put_route(self, call: ApiCall) -> Response:
        body = call.json_object()
        unknown = sorted(set(body) - {"keyword", "aliases", "handler", "short_codes"})
        if unknown:
            raise ApiError(400, "invalid_field", f"unknown field {excerpt(unknown[0])}", field=unknown[0])
        route = RouteConfig(
            keyword=_string(body, "keyword"), aliases=_string_list(body, "aliases"),
            handler=_string(body, "handler"), short_codes=_string_list(body, "short_codes"),
        )
        served = {code for codes in self.gateway.context.short_codes.values() for code in codes} \
            if self.gateway.context is not None else set()
        for code in route.short_codes:
            if code not in served:
                raise ApiError(400, "invalid_field", f"short code {excerpt(code)} is not served by any carrier "
                               f"(served: {', '.join(sorted(served))})", field="short_codes")
        key = route_key(route.keyword, route.short_codes)
        existed = any(route_key(r.keyword, r.short_codes) == key for r in self.gateway.router.routes)  # type: ignore[union-attr]
        await self._change_routes(call, key, route, "route_put",
                                  {"route": route_to_json(route), "replaced": existed})
        return JsonResponse(200 if existed else 201, {"route": self._route_json(route),
                                                      "result": "replaced" if existed else "created"})

    async def delete_route(self, call: ApiCall) -> Response:
        keyword = _one(call, "keyword")
        if not keyword or not keyword.strip():
            raise ApiError(400, "invalid_field", "give the route's keyword: ?keyword=…&short_code=…", field="keyword")
        codes = [c for c in call.query.get("short_code", ()) if c.strip()]
        key = route_key(keyword, codes)
        router = self.gateway.router
        assert router is not None
        current = [r for r in router.routes if route_key(r.keyword, r.short_codes) == key]
        if not current:
            raise ApiError(404, "not_found", f"no route {excerpt(keyword)} on "
                           f"{', '.join(sorted(codes)) if codes else 'every short code'} (scope must match exactly)")
        await self._change_routes(call, key, None, "route_delete",
                                  {"route": route_to_json(current[0])})
        return JsonResponse(200, {"deleted": route_to_json(current[0])})

    async def _change_routes(self, call: ApiCall, key: RouteKey, route: RouteConfig | None, action: str,
                             detail: dict[str, Any]) -> None:
        """Validate with the router (which swaps the table in only if valid), persist, then keep.
        A failed write puts the old table back, so memory and store never disagree."""
        gw = self.gateway
        router = gw.router
        assert router is not None
        async with self._routes_lock:
            # Rebuilt from the overrides in force now: a change that waited for the lock builds on
            # the one before it.
            overrides = gw.route_overrides.with_put(route) if route is not None else gw.route_overrides.with_delete(key)
            before_routes, before_overrides = router.routes, gw.route_overrides
            try:
                router.replace_routes(overrides.apply(gw.config.routes))
            except ValueError as exc:
                await self._audit(call, action, f"{key[0]}@{key[1] or '*'}", {**detail, "error": str(exc)},
                                  outcome="refused")
                raise ApiError(400, "invalid_route", str(exc)) from None
            # Set before the write, so a reload arriving meanwhile lays the new overlay on its file.
            gw.route_overrides = overrides
            try:
                await overrides.persist(self._store(), key, _actor(call), gw.clock.seconds())
            except BaseException:
                gw.route_overrides = before_overrides
                router.replace_routes(before_routes)
                raise
        await self._audit(call, action, f"{key[0]}@{key[1] or '*'}", detail)
        await gw.announce("routes")
        log.info("routes_changed", action=action, keyword=key[0], short_codes=key[1],
                 token=call.principal.name if call.principal else None, routes=len(router.routes))

    # -- reload and audit -------------------------------------------------------------------

    async def reload(self, call: ApiCall) -> Response:
        from smsgw.app import reload_config

        path = self.gateway.config.path
        if not path:
            raise ApiError(409, "no_config_file", "this gateway was not started from a config file")
        result = await reload_config(self.gateway, path, actor=_actor(call))
        if "refused" in result:
            return JsonResponse(422, {"result": "refused", "errors": result["refused"],
                                      "message": "the file was refused; the running config is kept"})
        return JsonResponse(200, {"result": "applied", **result})

    async def get_audit(self, call: ApiCall) -> Response:
        raw_since = _one(call, "since")
        since = _parse_time(raw_since, "since") if raw_since is not None else None
        entries = await list_audit(self._store(), since, _limit(call, 100))
        return JsonResponse(200, {"entries": [e.to_json() for e in entries]})

    async def _audit(self, call: ApiCall, action: str, target: str | None, detail: dict[str, Any],
                     outcome: str = "ok", *, required: bool = False) -> None:
        await record_audit(self._store(), self.gateway.clock.seconds(), _actor(call), action, target, outcome, detail,
                           required=required)

    # -- metrics and the page ---------------------------------------------------------------

    async def get_metrics(self, call: ApiCall) -> Response:
        return Response(200, self.gateway.metrics.render(), CONTENT_TYPE_LATEST)

    async def get_page(self, call: ApiCall) -> Response:
        from smsgw.admin.page import render_login, render_status

        principal = call.principal
        if principal is None:
            return render_login(bool(call.query.get("token")))
        status = await self.status()
        recent = await self.history(None, None, 50, reveal=False)
        throughput = await self._store().read(_per_minute, self.gateway.clock.seconds(), 10)
        return render_status(status, recent, throughput, principal)

    def _store(self) -> Any:
        if self.gateway.store is None:
            raise ApiError(503, "unavailable", "the gateway is not started")
        return self.gateway.store


def _stats(sender: Any) -> dict[str, int]:
    if sender is None:
        return {}
    s = sender.stats
    return {"submitted": s.submitted, "accepted": s.accepted, "throttled": s.throttled, "retried": s.retried,
            "failed": s.failed, "expired": s.expired}


def _receipts(conn: Connection, ids: list[int]) -> dict[int, list[dict[str, Any]]]:
    marks = ",".join("?" * len(ids))
    result: dict[int, list[dict[str, Any]]] = {}
    for row in conn.execute(
        f"SELECT outbound_id, part_no, smsc_id, sent_at, dlr_state, dlr_error, dlr_final, dlr_at FROM mt_part"
        f" WHERE outbound_id IN ({marks}) ORDER BY outbound_id, part_no", ids,
    ):
        result.setdefault(row[0], []).append({
            "part_no": row[1], "smsc_id": row[2], "sent_at": row[3], "state": row[4], "error": row[5],
            "final": bool(row[6]), "at": row[7],
        })
    return result


def _per_minute(conn: Connection, now: float, minutes: int) -> list[dict[str, Any]]:
    """MOs received and MTs created per minute, the last `minutes` whole minutes and this one."""
    first = int(now // 60) - minutes
    rows: dict[int, dict[str, Any]] = {
        m: {"minute": m * 60, "mo": 0, "mt": 0} for m in range(first, int(now // 60) + 1)
    }
    for minute, n in conn.execute(
        "SELECT CAST(received_at / 60 AS INTEGER), COUNT(*) FROM inbound WHERE received_at >= ? GROUP BY 1",
        (first * 60,),
    ):
        if minute in rows:
            rows[minute]["mo"] = n
    for minute, n in conn.execute(
        "SELECT CAST(created_at / 60 AS INTEGER), COUNT(*) FROM outbound WHERE created_at >= ? GROUP BY 1",
        (first * 60,),
    ):
        if minute in rows:
            rows[minute]["mt"] = n
    return [rows[m] for m in sorted(rows)]

