"""`smsgw status|routes|pause|resume|reload|audit|cluster`: the admin API from a terminal.

The CLI only talks HTTP to a running gateway (it never opens the store), so what it shows and
changes is exactly what the API does, audit records included.  The address comes from the
config file's [admin] section (or --url); the token from --token or the SMSGW_TOKEN environment
variable (preferred: a --token argument is visible to other users in `ps`).  Output is a
readable table by default, the API's JSON with --json.

Exit status: 0 done, 1 the gateway refused or could not be reached, 2 a usage or config problem.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, TextIO

__all__ = ["COMMANDS", "add_commands", "run"]

COMMANDS = ("status", "routes", "pause", "resume", "reload", "audit", "cluster")
TIMEOUT_S = 30.0


class CliError(Exception):
    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


def add_commands(sub: Any, add_config: Any) -> None:
    """Add the operator subcommands to `smsgw`'s argument parser."""

    def common(parser: argparse.ArgumentParser, under: bool = False) -> None:
        if under:
            # An action of `routes`: options given before the action (`routes --json list`) stand,
            # so these leave the namespace alone unless given here.
            parser.argument_default = argparse.SUPPRESS
            parser.add_argument("--config", help="gateway TOML file (default: as for `routes`)")
        else:
            add_config(parser)
        parser.add_argument("--url", help="admin API base URL (default: from the config's [admin] section)")
        parser.add_argument("--token", help="admin API token (default: $SMSGW_TOKEN)")
        parser.add_argument("--json", action="store_true", help="print the API's JSON answer")

    common(sub.add_parser("status", help="carrier links, queues and the store of a running gateway"))
    routes = sub.add_parser("routes", help="list (the default), add or remove keyword routes on a running gateway")
    common(routes)
    routes_sub = routes.add_subparsers(dest="routes_action", metavar="{list,add,remove}")
    common(routes_sub.add_parser("list", help="the routes in effect (config and API changes)"), under=True)
    add = routes_sub.add_parser("add", help="add a route, or replace the one with the same keyword and short codes")
    common(add, under=True)
    add.add_argument("keyword", help='the English keyword, or "*" for messages without a known keyword')
    add.add_argument("handler", help="the service that answers, e.g. help, transactions")
    add.add_argument("--alias", action="append", default=[], help="another spelling (Arabic too); repeatable")
    add.add_argument("--short-code", action="append", default=[], dest="short_codes",
                     help="a short code the route applies to; repeatable (none: every short code)")
    remove = routes_sub.add_parser("remove", help="remove the route with exactly this keyword and short codes")
    common(remove, under=True)
    remove.add_argument("keyword")
    remove.add_argument("--short-code", action="append", default=[], dest="short_codes")
    for verb in ("pause", "resume"):
        parser = sub.add_parser(verb, help=f"{verb} sending to a carrier (the bind stays up)")
        common(parser)
        parser.add_argument("carrier")
    common(sub.add_parser("reload", help="make a running gateway re-read its config file (as SIGHUP does)"))
    audit = sub.add_parser("audit", help="who changed what through the API or a reload")
    common(audit)
    audit.add_argument("--limit", type=int, default=50)
    common(sub.add_parser("cluster", help="the nodes sharing the database, their binds and leases"))


def run(args: argparse.Namespace, stdout: TextIO | None = None, stderr: TextIO | None = None) -> int:
    """Run one operator command; output to `stdout`/`stderr` (default: the process's)."""
    out = stdout or sys.stdout
    try:
        base = _base_url(args)
        token = args.token or os.environ.get("SMSGW_TOKEN")
        if not token:
            raise CliError("no token: pass --token or set SMSGW_TOKEN", 2)
        api = _Api(base, token, others=lambda: [] if args.url else live_nodes(args.config),
                   notes=stderr or sys.stderr)
        if args.command == "status":
            data = api.call("GET", "/api/v1/status")
            _out(args, data, _status_table, out)
        elif args.command == "routes":
            _routes(args, api, out)
        elif args.command in ("pause", "resume"):
            data = api.call("POST", f"/api/v1/carriers/{urllib.parse.quote(args.carrier, safe='')}/{args.command}")
            _out(args, data, lambda d: f"{d['carrier']}: {'paused' if d['paused'] else 'sending'}"
                                       f" ({d['queue_depth']} queued)", out)
        elif args.command == "reload":
            data = api.call("POST", "/api/v1/reload", accept=(422,))
            _out(args, data, _reload_text, out)
            return 1 if data.get("result") == "refused" else 0
        elif args.command == "audit":
            data = api.call("GET", f"/api/v1/audit?limit={args.limit}")
            _out(args, data, _audit_table, out)
        elif args.command == "cluster":
            data = api.call("GET", "/api/v1/cluster")
            _out(args, data, _cluster_text, out)
        return 0
    except CliError as exc:
        print(f"smsgw {args.command}: {exc}", file=stderr or sys.stderr)
        return exc.code


def _routes(args: argparse.Namespace, api: _Api, out: TextIO) -> None:
    action = args.routes_action or "list"  # `smsgw routes` alone shows them, as `status` shows the links
    if action == "list":
        data = api.call("GET", "/api/v1/routes")
        _out(args, data, lambda d: _table(
            ["keyword", "aliases", "handler", "short codes", "source"],
            [[r["keyword"], ", ".join(r["aliases"]), r["handler"], ", ".join(r["short_codes"]) or "(all)",
              r["source"]] for r in d["routes"]],
        ), out)
    elif action == "add":
        body = {"keyword": args.keyword, "aliases": args.alias, "handler": args.handler,
                "short_codes": args.short_codes}
        data = api.call("PUT", "/api/v1/routes", body)
        _out(args, data, lambda d: f"route {d['route']['keyword']} → {d['route']['handler']}: {d['result']}", out)
    else:
        query = urllib.parse.urlencode([("keyword", args.keyword), *(("short_code", c) for c in args.short_codes)])
        data = api.call("DELETE", f"/api/v1/routes?{query}")
        _out(args, data, lambda d: f"route {d['deleted']['keyword']} removed", out)


def _base_url(args: argparse.Namespace) -> str:
    if args.url:
        return args.url.rstrip("/")
    from smsgw.config import ConfigError, load_config

    try:
        config = load_config(args.config)
    except ConfigError as exc:
        raise CliError(f"{exc}\n(or give the gateway's address with --url)", 2) from None
    if not config.admin.enabled:
        raise CliError(f"{args.config}: the admin API is not enabled ([admin] enabled = true)", 2)
    host = config.admin.host
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{config.admin.port}"


def live_nodes(config_path: str) -> list[str]:
    """Several nodes: the admin addresses of the nodes alive now, newest heartbeat first, read
    from the database the configuration names; [] with one node, or when it cannot be read."""
    from smsgw.config import ConfigError, load_config

    try:
        config = load_config(config_path)
    except ConfigError:
        return []
    if not config.store_url:
        return []
    try:
        import psycopg

        with psycopg.connect(config.store_url, connect_timeout=int(TIMEOUT_S)) as conn:
            rows = conn.execute(
                "SELECT admin FROM cluster_node WHERE left_at IS NULL AND admin IS NOT NULL"
                " AND expires_at > EXTRACT(EPOCH FROM clock_timestamp()) ORDER BY heartbeat_at DESC"
            ).fetchall()
    except Exception:  # noqa: BLE001 - no database, no table yet: only the configured node is asked
        return []
    return [str(admin).rstrip("/") for (admin,) in rows]


class _Api:
    """The admin API of one node.  With several nodes, when the node the configuration names is
    down, any other live node answers (every node serves the whole cluster's view and changes)."""

    def __init__(self, base: str, token: str, others: Callable[[], list[str]] = list,
                 notes: TextIO | None = None) -> None:
        self.base = base
        self._token = token
        self._others = others
        self._notes = notes

    def call(self, method: str, path: str, body: Any = None, accept: Sequence[int] = ()) -> Any:
        try:
            return self._call(method, path, body, accept)
        except _Unreachable as first:
            for other in self._others():
                if other == self.base:
                    continue
                tried, self.base = self.base, other
                try:
                    answer = self._call(method, path, body, accept)
                except _Unreachable:
                    continue
                print(f"(the node at {tried} is not answering: asked the node at {other})", file=self._notes)
                return answer
            self.base = first.base
            raise CliError(f"cannot reach the admin API at {first.base}: {first.reason}; is the gateway running?") from None

    def _call(self, method: str, path: str, body: Any, accept: Sequence[int]) -> Any:
        data = None if body is None else json.dumps(body, ensure_ascii=False).encode("utf-8")
        request = urllib.request.Request(self.base + path, data=data, method=method)
        request.add_header("Authorization", f"Bearer {self._token}")
        request.add_header("Accept", "application/json")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
                return json.loads(response.read().decode("utf-8"))
        except urllib.error.HTTPError as exc:
            raw = exc.read().decode("utf-8", "replace")
            try:
                answer = json.loads(raw)
            except ValueError:
                raise CliError(f"HTTP {exc.code} from {self.base}") from None
            if exc.code in accept:
                return answer
            error = answer.get("error", {}) if isinstance(answer, dict) else {}
            raise CliError(f"{error.get('message', raw)} (HTTP {exc.code})") from None
        except (urllib.error.URLError, OSError) as exc:
            raise _Unreachable(self.base, getattr(exc, "reason", exc)) from None


class _Unreachable(Exception):
    def __init__(self, base: str, reason: object) -> None:
        super().__init__(base)
        self.base = base
        self.reason = reason


def _out(args: argparse.Namespace, data: Any, render: Any, out: TextIO) -> None:
    if args.json:
        print(json.dumps(data, ensure_ascii=False, indent=2), file=out)
    else:
        print(render(data), file=out)


def _table(headers: list[str], rows: list[list[Any]]) -> str:
    cells = [[str(c) for c in row] for row in [headers, *rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = ["  ".join(value.ljust(widths[i]) for i, value in enumerate(row)).rstrip() for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _when(at: float | None) -> str:
    if at is None:
        return "-"
    return datetime.fromtimestamp(at, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")


def _status_table(data: dict[str, Any]) -> str:
    rows = []
    for c in data["carriers"]:
        age = c["queue"]["oldest_age_s"]
        rows.append([
            c["name"], "paused" if c["paused"] else c["state"], _when(c["since"]),
            f"{c['window']['in_use']}/{c['window']['size']}", f"{c['tps']['actual']:.2f}/{c['tps']['limit']:g}",
            c["queue"]["depth"], "-" if age is None else f"{age:.0f} s", c["last_error"] or "",
        ])
    store = data["store"]
    size = "-" if store["bytes"] is None else f"{store['bytes'] / 1e6:.1f} MB"
    head = (f"smsgw {data['version']}, up {data['uptime_s']:.0f} s; store {size}"
            f" ({'healthy' if store['healthy'] else 'NOT WRITING'}); {data['routes']} routes")
    table = _table(["carrier", "state", "since (UTC)", "window", "tps now/limit", "queued", "oldest", "last error"],
                   rows)
    text = f"{head}\n\n{table}"
    if data.get("cluster"):
        text += "\n\n" + _cluster_text({"node": data.get("node"), "cluster": data["cluster"]})
    return text


def _cluster_text(data: dict[str, Any]) -> str:
    cluster = data.get("cluster")
    if not cluster:
        return f"node {data.get('node')}: a single node (SQLite store), no cluster"
    state = "FENCED (cannot renew its lease: binds cut)" if cluster["fenced"] else "member"
    head = (f"node {cluster['node']}: {state}; lease valid {cluster['lease_valid_s']:.1f} s;"
            f" jobs role {'here' if cluster['jobs'] else 'elsewhere'}")
    nodes = _table(["node", "host", "pid", "alive", "heartbeat (UTC)", "lease until (UTC)", "admin"],
                   [[n["name"], n["host"], n["pid"], "yes" if n["alive"] else ("left" if n["left_at"] else "NO"),
                     _when(n["heartbeat_at"]), _when(n["expires_at"]), n["admin"] or "-"] for n in cluster["nodes"]])
    binds = _table(["carrier", "slot", "node", "since (UTC)", "lease"],
                   [[b["carrier"], b["slot"], b["node"], _when(b["acquired_at"]), "held" if b["held"] else "free"]
                    for b in cluster["binds"]])
    roles = ", ".join(f"{r['role']}: {r['node']}{'' if r['held'] else ' (free)'}" for r in cluster["roles"]) or "-"
    return f"{head}\n\n{nodes}\n\n{binds}\n\nroles: {roles}"


def _reload_text(data: dict[str, Any]) -> str:
    if data.get("result") == "refused":
        return "reload refused; the running config is kept:\n" + "\n".join(f"  {e}" for e in data["errors"])
    parts = [f"{key}: {', '.join(data[key]) or '-'}" for key in ("changed", "added", "removed")]
    return f"reloaded ({data.get('routes', 0)} routes); carriers " + "; ".join(parts)


def _audit_table(data: dict[str, Any]) -> str:
    return _table(["when (UTC)", "node", "who", "action", "target", "outcome"],
                  [[_when(e["at"]), e.get("node") or "-", e["actor"], e["action"], e["target"] or "", e["outcome"]]
                   for e in data["entries"]])
