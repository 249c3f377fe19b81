"""The operators' admin API over real loopback HTTP against a gateway bound over real SMPP:
auth, status, routes (live and persisted), pause/resume, sending, history, reload, audit, metrics."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests import engines
from tests.http_helpers import http
from tests.stack import Stack, eventually, on_loop, start_stack, write_process_config

pytestmark = pytest.mark.usefixtures("store_engine")

ADMIN = "dev-backoffice-3Qm9xT7vK2pL8wR4"  # config/gateway.toml: "backoffice", role admin
READER = "dev-monitoring-Z6hN1cV5bJ0sY3eU"  # "monitoring", read-only

INFO_ROUTE = {"keyword": "INFO", "aliases": ["معلومات"], "handler": "help", "short_codes": ["90091"]}


def port(stack: Stack) -> int:
    assert stack.gateway.admin is not None
    return stack.gateway.admin.port


async def audit(stack: Stack) -> list[dict]:
    return (await http(port(stack), "GET", "/api/v1/audit", token=READER)).json["entries"]


@on_loop
async def test_no_token_wrong_token_and_read_only_token_are_refused_and_change_nothing(tmp_path: Path) -> None:
    stack = await start_stack(tmp_path)
    try:
        p = port(stack)
        routes_before = stack.gateway.router.routes
        writes = [
            ("POST", "/api/v1/carriers/omantel/pause", None),
            ("PUT", "/api/v1/routes", INFO_ROUTE),
            ("DELETE", "/api/v1/routes?keyword=HELP", None),
            ("POST", "/api/v1/messages", {"carrier": "omantel", "msisdn": "96891234567", "short_code": "90091",
                                          "text": "hello"}),
            ("POST", "/api/v1/reload", None),
        ]
        for method, path, body in writes:
            assert (await http(p, method, path, body=body)).status == 401
            wrong = await http(p, method, path, body=body, token="not-a-token-0123456789abcdef")
            assert wrong.status == 401 and wrong.json["error"]["code"] == "unauthorized"
            refused = await http(p, method, path, body=body, token=READER)
            assert refused.status == 403 and refused.json["error"]["code"] == "forbidden", (method, path)
        for path in ("/api/v1/status", "/api/v1/messages", "/api/v1/routes", "/api/v1/audit", "/metrics"):
            assert (await http(p, "GET", path)).status == 401
            assert (await http(p, "GET", path, token="wrong-token-0123456789abcdef")).status == 401
        # Nothing changed: not paused, same routes, nothing queued, nothing audited.
        assert not any(s.paused for s in stack.gateway.queue.senders.values())
        assert stack.gateway.router.routes == routes_before
        assert (await stack.gateway.store.counts())["mt_queued"] == 0
        assert await audit(stack) == []
    finally:
        await stack.stop()


@on_loop
async def test_status_reports_every_carrier_link_queue_and_the_store(tmp_path: Path) -> None:
    stack = await start_stack(tmp_path)
    try:
        await stack.send("omantel", "96891230001", "90091", "HELP")
        status = (await http(port(stack), "GET", "/api/v1/status", token=READER)).json
        assert [c["name"] for c in status["carriers"]] == ["friendi", "omantel", "ooredoo"]
        for carrier in status["carriers"]:
            assert carrier["state"] == "bound" and carrier["since"] is not None and not carrier["paused"]
            assert carrier["window"]["size"] >= 1 and carrier["tps"]["limit"] > 0
            assert carrier["queue"] == {"depth": 0, "oldest_age_s": None}
        omantel = next(c for c in status["carriers"] if c["name"] == "omantel")
        assert omantel["tps"]["actual"] > 0  # the HELP reply was submitted within the last minute
        assert status["version"] and status["uptime_s"] >= 0
        assert status["store"]["bytes"] > 0 and status["store"]["healthy"]
        assert status["store"]["counts"]["mo_received"] == 1
    finally:
        await stack.stop()


@on_loop
async def test_route_added_via_api_answers_the_next_sms_survives_a_restart_and_can_be_removed(tmp_path: Path) -> None:
    stack = await start_stack(tmp_path)
    try:
        p = port(stack)
        binds = {name: stack.smsc(name).counters["binds"] for name in ("omantel", "ooredoo", "friendi")}
        [before] = await stack.texts("omantel", "96891230002", "90091", "info")
        created = await http(p, "PUT", "/api/v1/routes", body=INFO_ROUTE, token=ADMIN)
        assert created.status == 201, created.json
        [after] = await stack.texts("omantel", "96891230002", "90091", "info")
        assert after != before and after.startswith("Send to 90091") and "INFO" in after
        [arabic] = await stack.texts("ooredoo", "96892230002", "90091", "معلومات")
        assert "90091" in arabic
        # No bind was dropped for it.
        assert {name: stack.smsc(name).counters["binds"] for name in binds} == binds
        routes = (await http(p, "GET", "/api/v1/routes", token=READER)).json["routes"]
        assert {**INFO_ROUTE, "source": "api"} in routes

        await stack.restart_gateway()
        p = port(stack)
        [again] = await stack.texts("omantel", "96891230002", "90091", "info")
        assert again == after
        routes = (await http(p, "GET", "/api/v1/routes", token=READER)).json["routes"]
        assert {**INFO_ROUTE, "source": "api"} in routes

        removed = await http(p, "DELETE", "/api/v1/routes?keyword=info&short_code=90091", token=ADMIN)
        assert removed.status == 200, removed.json
        [gone] = await stack.texts("omantel", "96891230002", "90091", "info")
        assert gone == before
        # A config route deleted through the API stays deleted after a restart, too.
        assert (await http(p, "DELETE", "/api/v1/routes?keyword=STOP&short_code=90092", token=ADMIN)).status == 200
        await stack.restart_gateway()
        keywords = [r.keyword for r in stack.gateway.router.routes]
        assert "STOP" not in keywords and "INFO" not in keywords and "HELP" in keywords

        entries = await audit(stack)
        assert [(e["action"], e["actor"], e["outcome"]) for e in reversed(entries)] == [
            ("route_put", "token:backoffice", "ok"),
            ("route_delete", "token:backoffice", "ok"),
            ("route_delete", "token:backoffice", "ok"),
        ]
    finally:
        await stack.stop()


@on_loop
async def test_invalid_routes_are_refused_with_the_routers_reason_and_change_nothing(tmp_path: Path) -> None:
    stack = await start_stack(tmp_path)
    try:
        p = port(stack)
        before = stack.gateway.router.routes
        cases = [
            ({**INFO_ROUTE, "handler": "nonexistent"}, "invalid_route"),
            ({**INFO_ROUTE, "keyword": "STATUS", "aliases": ["H"]}, "invalid_route"),  # H is HELP's alias
            ({**INFO_ROUTE, "short_codes": ["12345"]}, "invalid_field"),
            ({**INFO_ROUTE, "aliases": "INFO"}, "invalid_field"),
            ({"keyword": "INFO"}, "invalid_field"),
        ]
        for body, code in cases:
            result = await http(p, "PUT", "/api/v1/routes", body=body, token=ADMIN)
            assert result.status == 400 and result.json["error"]["code"] == code, (body, result.json)
        assert (await http(p, "DELETE", "/api/v1/routes?keyword=NOPE", token=ADMIN)).status == 404
        assert stack.gateway.router.routes == before
        [reply] = await stack.texts("omantel", "96891230003", "90091", "HELP")
        assert reply.startswith("Send to 90091")
        refused = [e for e in await audit(stack) if e["outcome"] == "refused"]
        assert len(refused) == 2 and all(e["actor"] == "token:backoffice" for e in refused)
    finally:
        await stack.stop()


@on_loop
async def test_pause_holds_mts_with_the_bind_kept_and_resume_sends_them(tmp_path: Path) -> None:
    stack = await start_stack(tmp_path)
    try:
        p = port(stack)
        smsc = stack.smsc("omantel")
        binds = smsc.counters["binds"]
        paused = await http(p, "POST", "/api/v1/carriers/omantel/pause", token=ADMIN)
        assert paused.status == 200 and paused.json["paused"] is True
        sent = await http(p, "POST", "/api/v1/messages", token=ADMIN, body={
            "carrier": "omantel", "msisdn": "+968 9123 0004", "short_code": "90091",
            "text": "Road closure on Sultan Qaboos Street tonight. إغلاق طريق الليلة.",
        })
        assert sent.status == 202 and sent.json["msisdn"] == "96891230004"
        smsc.inject_mo("96891230005", "90091", "HELP")  # its reply is held too
        await eventually(lambda: stack.gateway.queue.senders["omantel"].depth == 2)
        await asyncio.sleep(0.5)
        assert stack.handset("omantel", "96891230004") == [] and stack.handset("omantel", "96891230005") == []
        status = (await http(p, "GET", "/api/v1/status", token=READER)).json
        omantel = next(c for c in status["carriers"] if c["name"] == "omantel")
        assert omantel["paused"] and omantel["state"] == "bound" and omantel["queue"]["depth"] == 2
        assert omantel["queue"]["oldest_age_s"] is not None
        # The other carriers keep sending.
        [reply] = await stack.texts("ooredoo", "96892230005", "90091", "HELP")
        assert reply

        resumed = await http(p, "POST", "/api/v1/carriers/omantel/resume", token=ADMIN)
        assert resumed.status == 200 and resumed.json["paused"] is False
        await eventually(lambda: stack.handset("omantel", "96891230004") and stack.handset("omantel", "96891230005"))
        assert stack.handset("omantel", "96891230004")[0].text.startswith("Road closure")
        assert smsc.counters["binds"] == binds  # the bind was never dropped
        assert (await http(p, "POST", "/api/v1/carriers/nope/pause", token=ADMIN)).status == 404
        actions = [(e["action"], e["target"]) for e in reversed(await audit(stack))]
        assert actions == [("pause", "omantel"), ("send_sms", "omantel"), ("resume", "omantel")]
    finally:
        await stack.stop()


@on_loop
async def test_send_validates_its_input(tmp_path: Path) -> None:
    stack = await start_stack(tmp_path, carriers=["omantel"])
    try:
        p = port(stack)
        good = {"carrier": "omantel", "msisdn": "96891230006", "short_code": "90091", "text": "hi"}
        for change, field in [({"carrier": "nope"}, "carrier"), ({"msisdn": "12"}, "msisdn"),
                              ({"short_code": "1"}, "short_code"), ({"text": ""}, "text"),
                              ({"text": "x" * 1001}, "text"), ({"extra": 1}, "extra")]:
            result = await http(p, "POST", "/api/v1/messages", body={**good, **change}, token=ADMIN)
            assert result.status == 400 and result.json["error"]["field"] == field, (change, result.json)
        assert (await http(p, "POST", "/api/v1/messages", body=b"{", token=ADMIN)).status == 400
        assert (await stack.gateway.store.counts())["mt_queued"] == 0
    finally:
        await stack.stop()


@on_loop
async def test_history_masks_numbers_for_read_only_tokens_and_shows_delivery(tmp_path: Path) -> None:
    stack = await start_stack(tmp_path, carriers=["omantel"])
    try:
        p = port(stack)
        await stack.send("omantel", "96891230007", "90091", "HELP")
        await stack.send("omantel", "96891230008", "90091", "HELP")
        await eventually(lambda: stack.gateway.store.outbound_state(1))
        masked = (await http(p, "GET", "/api/v1/messages?msisdn=91230007", token=READER)).json
        assert masked["masked"] and {m["msisdn"] for m in masked["messages"]} == {"9689****007"}
        assert [m["direction"] for m in masked["messages"]] == ["mt", "mo"]
        mt = masked["messages"][0]
        assert mt["state"] in ("sent", "delivered") and isinstance(mt["dlr"], list)
        full = (await http(p, "GET", "/api/v1/messages?msisdn=%2B96891230007", token=ADMIN)).json
        assert not full["masked"] and {m["msisdn"] for m in full["messages"]} == {"96891230007"}
        everyone = (await http(p, "GET", "/api/v1/messages?since=2000-01-01&limit=3", token=READER)).json
        assert len(everyone["messages"]) == 3
        future = (await http(p, "GET", "/api/v1/messages?since=4102444800", token=READER)).json
        assert future["messages"] == []
        for bad in ("msisdn=abc", "since=yesterday", "limit=0"):
            assert (await http(p, "GET", f"/api/v1/messages?{bad}", token=READER)).status == 400
    finally:
        await stack.stop()


@on_loop
async def test_reload_via_api_refuses_a_bad_file_keeps_the_config_and_audits_both(tmp_path: Path) -> None:
    config_path = write_process_config(tmp_path, {}, tmp_path / "smsgw.sqlite3", embedded=True)
    stack = await start_stack(tmp_path, carriers=["omantel", "ooredoo", "friendi"], path=str(config_path))
    try:
        p = port(stack)
        good_text = config_path.read_text()
        config_path.write_text(good_text.replace("window = 10", "window = -3", 1))
        before = stack.gateway.router.routes
        refused = await http(p, "POST", "/api/v1/reload", token=ADMIN)
        assert refused.status == 422 and any("window" in e for e in refused.json["errors"])
        assert stack.gateway.router.routes == before
        [reply] = await stack.texts("omantel", "96891230009", "90091", "HELP")
        assert reply.startswith("Send to 90091")

        config_path.write_text(good_text.replace('aliases = ["مساعدة", "H", "?"]', 'aliases = ["مساعدة", "H", "?", "AIDE"]'))
        applied = await http(p, "POST", "/api/v1/reload", token=ADMIN)
        assert applied.status == 200 and applied.json["result"] == "applied"
        await stack.wait_bound()
        [reply] = await stack.texts("omantel", "96891230009", "90091", "aide")
        assert reply.startswith("Send to 90091")
        entries = list(reversed(await audit(stack)))
        assert [(e["action"], e["actor"], e["outcome"]) for e in entries] == [
            ("reload", "token:backoffice", "refused"), ("reload", "token:backoffice", "ok"),
        ]
        assert entries[0]["detail"]["refused"]
    finally:
        await stack.stop()


@on_loop
async def test_reload_keeps_api_route_changes_and_sighup_reloads_are_audited(tmp_path: Path) -> None:
    from smsgw.app import reload_config

    config_path = write_process_config(tmp_path, {}, tmp_path / "smsgw.sqlite3", embedded=True)
    stack = await start_stack(tmp_path, path=str(config_path))
    try:
        p = port(stack)
        assert (await http(p, "PUT", "/api/v1/routes", body=INFO_ROUTE, token=ADMIN)).status == 201
        result = await reload_config(stack.gateway, str(config_path))  # what SIGHUP runs
        assert "refused" not in result
        await stack.wait_bound()
        [reply] = await stack.texts("omantel", "96891230010", "90091", "info")
        assert reply.startswith("Send to 90091")
        last = (await audit(stack))[0]
        assert (last["action"], last["actor"], last["outcome"]) == ("reload", "signal:SIGHUP", "ok")
    finally:
        await stack.stop()


@on_loop
async def test_metrics_need_a_token_and_reflect_traffic_and_pauses(tmp_path: Path) -> None:
    stack = await start_stack(tmp_path, carriers=["omantel", "ooredoo"])
    try:
        p = port(stack)
        assert (await http(p, "GET", "/metrics")).status == 401
        await stack.send("omantel", "96891230011", "90091", "HELP")
        await stack.send("omantel", "96891230012", "90091", "HELP")
        await http(p, "POST", "/api/v1/carriers/ooredoo/pause", token=ADMIN)
        scraped = await http(p, "GET", "/metrics", token=READER)
        assert scraped.status == 200 and scraped.header("content-type").startswith("text/plain")
        text = engines.without_node_label(scraped.raw.decode(), stack.gateway.node)
        assert 'smsgw_mo_total{carrier="omantel",result="accepted"} 2.0' in text
        assert 'smsgw_submit_total{carrier="omantel",outcome="submitted"} 2.0' in text
        assert 'smsgw_carrier_paused{carrier="ooredoo"} 1.0' in text
        assert 'smsgw_carrier_paused{carrier="omantel"} 0.0' in text
        assert 'smsgw_bind_state{carrier="omantel",state="bound"} 1.0' in text
        assert 'smsgw_mo_processing_seconds_count{carrier="omantel"} 2.0' in text
    finally:
        await stack.stop()


@on_loop
async def test_concurrent_route_changes_are_all_kept(tmp_path: Path) -> None:
    """Two PUTs in flight together: each builds on the other's change, in memory and in the store."""
    stack = await start_stack(tmp_path, carriers=["omantel"])
    try:
        p = port(stack)
        first = {**INFO_ROUTE}
        second = {"keyword": "ABOUT", "aliases": [], "handler": "help", "short_codes": ["90091"]}
        results = await asyncio.gather(*(http(p, "PUT", "/api/v1/routes", body=b, token=ADMIN) for b in (first, second)))
        assert [r.status for r in results] == [201, 201]
        await stack.restart_gateway()
        keywords = {r.keyword for r in stack.gateway.router.routes}
        assert {"INFO", "ABOUT"} <= keywords
    finally:
        await stack.stop()
