"""Who sees citizens' messages through the admin API, and what is recorded: a gateway bound over
real SMPP to the simulators, its admin API over real loopback HTTP."""

from __future__ import annotations

import json
from pathlib import Path

import structlog

from tests.http_helpers import http
from tests.stack import Stack, eventually, on_loop, start_stack

ADMIN = "dev-backoffice-3Qm9xT7vK2pL8wR4"  # config/gateway.toml: "backoffice", role admin
READER = "dev-monitoring-Z6hN1cV5bJ0sY3eU"  # "monitoring", read-only
OWNER = "96891230007"


def port(stack: Stack) -> int:
    assert stack.gateway.admin is not None
    return stack.gateway.admin.port


async def audit(stack: Stack) -> list[dict]:
    return (await http(port(stack), "GET", "/api/v1/audit", token=READER)).json["entries"]


@on_loop
async def test_a_read_only_token_gets_message_metadata_and_no_bodies(tmp_path: Path) -> None:
    stack = await start_stack(tmp_path, carriers=["omantel"])
    try:
        [reply] = await stack.texts("omantel", OWNER, "90091", "HELP")
        await eventually(lambda: stack.gateway.store.outbound_state(1))
        result = await http(port(stack), "GET", f"/api/v1/messages?msisdn={OWNER}", token=READER)
        assert result.status == 200
        messages = result.json["messages"]
        assert [m["direction"] for m in messages] == ["mt", "mo"]
        for message in messages:
            assert "text" not in message
            assert message["msisdn"] == "9689****007"
            assert {"at", "state", "parts", "carrier", "short_code"} <= message.keys()
        assert isinstance(messages[0]["dlr"], list)
        assert result.json["masked"] and not result.json["bodies"]
        raw = result.raw.decode()
        assert "HELP" not in raw and reply[:30] not in raw and OWNER not in raw
        # Reading metadata is not a read of anyone's messages: nothing to audit.
        assert await audit(stack) == []
    finally:
        await stack.stop()


@on_loop
async def test_an_admin_read_of_bodies_is_audited_with_the_number_masked(tmp_path: Path) -> None:
    stack = await start_stack(tmp_path, carriers=["omantel"])
    try:
        [reply] = await stack.texts("omantel", OWNER, "90091", "HELP")
        result = await http(port(stack), "GET", f"/api/v1/messages?msisdn=%2B{OWNER}", token=ADMIN)
        assert result.status == 200 and result.json["bodies"]
        assert [m["text"] for m in result.json["messages"]] == [reply, "HELP"]
        everyone = await http(port(stack), "GET", "/api/v1/messages?limit=5", token=ADMIN)
        assert everyone.status == 200
        entries = await audit(stack)
        assert [(e["actor"], e["action"], e["target"]) for e in reversed(entries)] == [
            ("token:backoffice", "read_messages", "9689****007"),
            ("token:backoffice", "read_messages", "*"),
        ]
        assert entries[-1]["detail"]["msisdn"] == "9689****007" and entries[-1]["detail"]["messages"] == 2
        assert OWNER not in json.dumps(entries)
    finally:
        await stack.stop()


@on_loop
async def test_the_status_page_takes_the_authorization_header_and_logs_the_tokens_name(tmp_path: Path) -> None:
    stack = await start_stack(tmp_path, carriers=["omantel"])
    try:
        with structlog.testing.capture_logs() as logs:
            by_header = await http(port(stack), "GET", "/", token=READER)
            by_query = await http(port(stack), "GET", f"/?token={ADMIN}")
            anonymous = await http(port(stack), "GET", "/")
            wrong = await http(port(stack), "GET", "/", token="not-a-valid-token-0123456789")
        assert by_header.status == 200 and b"signed in as monitoring" in by_header.raw
        assert by_query.status == 200 and b"signed in as backoffice" in by_query.raw
        assert anonymous.status == 401 and wrong.status == 401
        pages = [(e["status"], e["token"]) for e in logs if e["event"] == "admin_request" and e["route"] == "/"]
        assert pages == [(200, "monitoring"), (200, "backoffice"), (401, None), (401, None)]
        assert ADMIN not in repr(logs) and READER not in repr(logs)
    finally:
        await stack.stop()


@on_loop
async def test_refused_requests_are_counted_in_metrics(tmp_path: Path) -> None:
    stack = await start_stack(tmp_path, carriers=["omantel"])
    try:
        assert (await http(port(stack), "GET", "/api/v1/status")).status == 401
        assert (await http(port(stack), "POST", "/api/v1/reload", token=READER)).status == 403
        metrics = (await http(port(stack), "GET", "/metrics", token=READER)).raw.decode()
        assert 'smsgw_admin_refused_total{reason="unauthorized"} 1.0' in metrics
        assert 'smsgw_admin_refused_total{reason="forbidden"} 1.0' in metrics
    finally:
        await stack.stop()
