"""The operators' status page at `/`: server-rendered HTML, refreshed by a meta refresh.

Protection: any valid token (the page changes nothing, so read-only is enough), in the
`Authorization: Bearer` header or, since a browser cannot send that header on a plain page load,
in `?token=…`.  The server checks either and logs the token's name.
Without one it answers 401 with a one-field form that reloads the page with the token in the
URL.  This is acceptable because the API listens on loopback only (a TLS proxy in front for
remote use), the server logs route patterns and never query strings, and the page sends
`Referrer-Policy: no-referrer` so the URL does not leak to other sites.  Give wall screens a
read-only token of their own, so it can be revoked alone.

The page shows MSISDNs masked and no message bodies, whatever the token: it may be on a screen
in a room; support staff read bodies through GET /api/v1/messages.
"""

from __future__ import annotations

from datetime import UTC, datetime
from html import escape
from typing import Any

from smsgw.admin.api import Principal, Response

__all__ = ["REFRESH_S", "render_login", "render_status"]

REFRESH_S = 5

_HEADERS = {
    "Referrer-Policy": "no-referrer",
    # No scripts at all, styles only inline: the page needs nothing else.
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'",
    "X-Frame-Options": "DENY",
}

_STYLE = """
body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}
table{border-collapse:collapse;margin-bottom:1.5em}
th,td{border:1px solid #ccc;padding:.25em .6em;text-align:left;font-variant-numeric:tabular-nums}
th{background:#f2f2f2}
.state-bound{color:#176a17;font-weight:bold}
.state-paused{color:#a05a00;font-weight:bold}
.state-binding,.state-refused,.state-stopped{color:#b00020;font-weight:bold}
.bar{display:inline-block;height:.8em;background:#4a7bd0}
small{color:#666}
"""


def _html(status: int, title: str, body: str, refresh: bool) -> Response:
    meta = f'<meta http-equiv="refresh" content="{REFRESH_S}">' if refresh else ""
    page = (
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>{escape(title)}</title>{meta}<style>{_STYLE}</style></head><body>{body}</body></html>"
    )
    return Response(status, page.encode("utf-8"), "text/html; charset=utf-8", _HEADERS)


def _time(at: float | None) -> str:
    if at is None:
        return "–"
    return datetime.fromtimestamp(at, tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def render_login(tried: bool) -> Response:
    message = "<p><strong>That token is not valid.</strong></p>" if tried else ""
    body = (
        "<h1>smsgw</h1>"
        f"{message}<p>Enter an admin API token (a read-only one is enough).</p>"
        '<form method="get" action="/"><input type="password" name="token" autocomplete="off" '
        'aria-label="token"> <button type="submit">Show status</button></form>'
    )
    return _html(401, "smsgw: sign in", body, refresh=False)


def _cluster_section(status: dict[str, Any]) -> str:
    """Every node sharing the database, its binds and its leases (nothing on a single node)."""
    cluster = status.get("cluster")
    if not cluster:
        return ""
    rows = []
    for n in cluster["nodes"]:
        binds = ", ".join(f'{b["carrier"]}#{b["slot"]}' for b in cluster["binds"] if b["node"] == n["name"] and b["held"])
        roles = ", ".join(r["role"] for r in cluster["roles"] if r["node"] == n["name"] and r["held"])
        state = "alive" if n["alive"] else ("left" if n["left_at"] else "lease passed")
        this = " (this node)" if n["name"] == cluster["node"] else ""
        rows.append(
            f'<tr class="node" data-node="{escape(n["name"])}" data-alive="{str(n["alive"]).lower()}">'
            f'<td>{escape(n["name"])}{this}</td><td>{escape(n["host"])}</td>'
            f'<td class="state state-{"bound" if n["alive"] else "stopped"}">{state}</td>'
            f'<td>{_time(n["heartbeat_at"])}</td><td>{_time(n["expires_at"])}</td>'
            f"<td>{escape(binds or '–')}</td><td>{escape(roles or '–')}</td></tr>"
        )
    state = "<strong>FENCED</strong>: cannot renew its lease, binds cut" if cluster["fenced"] else "member"
    return (
        f"<h2>Cluster</h2><p>This node, {escape(cluster['node'])}: {state}; lease valid"
        f" {cluster['lease_valid_s']:.1f} s.</p>"
        "<table id=\"cluster\"><tr><th>Node</th><th>Host</th><th>State</th><th>Heartbeat</th>"
        f"<th>Lease until</th><th>Binds held</th><th>Roles</th></tr>{''.join(rows)}</table>"
    )


def render_status(status: dict[str, Any], recent: list[dict[str, Any]], throughput: list[dict[str, Any]],
                  principal: Principal) -> Response:
    carriers = []
    for c in status["carriers"]:
        shown = "paused" if c["paused"] else c["state"]
        since = c["since"]
        link = f'{escape(c["state"])} since {_time(since)}' if since is not None else escape(c["state"])
        carriers.append(
            f'<tr class="carrier" data-carrier="{escape(c["name"])}" data-state="{escape(shown)}">'
            f'<td>{escape(c["name"])}</td>'
            f'<td class="state state-{escape(shown)}">{escape(shown)}</td>'
            f"<td>{link}</td>"
            f'<td>{c["queue"]["depth"]}</td><td>{_age(c["queue"]["oldest_age_s"])}</td>'
            f'<td>{c["tps"]["actual"]:.2f} / {c["tps"]["limit"]:g}</td>'
            f'<td>{c["window"]["in_use"]} / {c["window"]["size"]}</td>'
            f'<td>{escape(c["last_error"] or "")}</td></tr>'
        )
    peak = max([1] + [max(row["mo"], row["mt"]) for row in throughput])
    minutes = "".join(
        f"<tr><td>{datetime.fromtimestamp(row['minute'], tz=UTC).strftime('%H:%M')}</td>"
        f"<td>{row['mo']} <span class=\"bar\" style=\"width:{100 * row['mo'] // peak}px\"></span></td>"
        f"<td>{row['mt']} <span class=\"bar\" style=\"width:{100 * row['mt'] // peak}px\"></span></td></tr>"
        for row in throughput
    )
    messages = "".join(
        f'<tr class="message"><td>{_time(m["at"])}</td><td>{"in" if m["direction"] == "mo" else "out"}</td>'
        f'<td>{escape(m["carrier"])}</td><td>{escape(m["msisdn"])}</td><td>{escape(m["short_code"])}</td>'
        f'<td>{escape(m["channel"])}</td><td>{escape(str(m["state"]))}</td></tr>'
        for m in recent
    )
    store = status["store"]
    size = f'{store["bytes"] / 1e6:.1f} MB' if store["bytes"] is not None else "–"
    body = (
        f"<h1>smsgw {escape(status['version'])}</h1>"
        f"<p>Up {_age(status['uptime_s'])} · store {size}, "
        f"{'healthy' if store['healthy'] else '<strong>NOT WRITING</strong>'} · "
        f"{status['routes']} routes · <small>refreshes every {REFRESH_S} s · "
        f"signed in as {escape(principal.name)} ({escape(principal.role.value)}) · {_time(status['now'])}</small></p>"
        "<h2>Carriers</h2><table id=\"carriers\"><tr><th>Carrier</th><th>State</th><th>Link</th>"
        "<th>Queued</th><th>Oldest queued</th><th>TPS (last min / limit)</th><th>Window</th><th>Last error</th></tr>"
        f"{''.join(carriers)}</table>"
        "<h2>Throughput per minute</h2><table id=\"throughput\"><tr><th>Minute (UTC)</th><th>Received</th>"
        f"<th>Queued to send</th></tr>{minutes}</table>"
        f"{_cluster_section(status)}"
        f"<h2>Last {len(recent)} messages</h2><table id=\"messages\"><tr><th>Time</th><th>Dir.</th>"
        f"<th>Carrier</th><th>MSISDN</th><th>Short code</th><th>Channel</th><th>State</th></tr>{messages}</table>"
    )
    return _html(200, "smsgw status", body, refresh=True)
