"""Several nodes on one PostgreSQL against the simulators over TCP: binds leased (never two
nodes on one slot), every MO answered once whichever node takes it, the carriers' TPS a budget
for the whole cluster, once-only jobs on one node, takeover when a node leaves."""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path

from tests.cluster_support import start_cluster
from tests.stack import CARRIERS, eventually, on_loop, wait

HELP = "90091"


@on_loop
async def test_two_nodes_share_the_binds_and_answer_every_mo_once(tmp_path: Path, pg_url: str) -> None:
    """Two nodes: each carrier's one bind slot is held by exactly one node, and MOs on every
    carrier are answered once, whichever node holds the bind."""
    cluster = await start_cluster(tmp_path, pg_url, nodes=2)
    try:
        for carrier in CARRIERS:
            assert len(cluster.holders(carrier)) == 1, (carrier, cluster.holders(carrier))
            assert cluster.smsc(carrier).peak_binds == 1
        for i, carrier in enumerate(CARRIERS * 3):
            msisdn = f"9689123{i:04d}"
            [reply] = await cluster.send(carrier, msisdn, HELP, "HELP")
            assert "90091" in reply.text
        await asyncio.sleep(0.5)
        for i, carrier in enumerate(CARRIERS * 3):
            assert len(cluster.handset(carrier, f"9689123{i:04d}")) == 1
        for carrier in CARRIERS:
            assert cluster.smsc(carrier).counters["binds_over_limit"] == 0
    finally:
        await cluster.stop()


@on_loop
async def test_a_node_that_leaves_hands_its_binds_over(tmp_path: Path, pg_url: str) -> None:
    """The node holding every bind stops: the other binds in its place at its next heartbeat and
    answers from then on; at no moment were two nodes bound on one slot."""
    cluster = await start_cluster(tmp_path, pg_url, nodes=1)
    try:
        second = await cluster.start_node("n2")
        await asyncio.sleep(1.0)
        assert all(cluster.holders(c) == ["n1"] for c in CARRIERS)  # n2 waits: every slot is taken
        assert not second.runs_jobs()
        started = time.monotonic()
        await cluster.stop_node("n1")
        await cluster.wait_all_bound()
        took = time.monotonic() - started
        assert took < 3.0, took  # released on the way out: no lease to wait for
        assert all(cluster.holders(c) == ["n2"] for c in CARRIERS)
        await eventually(second.runs_jobs)
        [reply] = await cluster.send("ooredoo", "96895123400", HELP, "HELP")
        assert "90091" in reply.text
        for carrier in CARRIERS:
            assert cluster.smsc(carrier).peak_binds == 1 and cluster.smsc(carrier).counters["binds_over_limit"] == 0
    finally:
        await cluster.stop()


@on_loop
async def test_tps_is_a_budget_for_the_whole_cluster(tmp_path: Path, pg_url: str) -> None:
    """Omantel allows two binds and 20 submits per second: two nodes bind one each and send 10
    per second each, so the carrier never sees more than 20 in any second and throttles nothing."""
    cluster = await start_cluster(tmp_path, pg_url, nodes=3, carriers=["omantel"], max_binds={"omantel": 2},
                                  tps={"omantel": 20.0})
    try:
        await eventually(lambda: len(cluster.bound_nodes("omantel")) == 2, timeout=10)
        smsc = cluster.smsc("omantel")
        for node in cluster.nodes:
            node.queue.senders["omantel"].sent_at = []
        msisdns = [f"96891{i:06d}" for i in range(120)]
        since = len(smsc.handset_messages)
        for msisdn in msisdns:
            smsc.inject_mo(msisdn, HELP, "HELP")
        await eventually(lambda: len(smsc.handset_messages) - since >= len(msisdns), timeout=30)
        assert sorted(m.msisdn for m in smsc.handset_messages[since:]) == msisdns  # once each
        # When each node started each submit (in one process the simulator reads them in clumps,
        # so its own clock would blur the windows): never more than 20 in any second, together.
        sent = sorted(t for node in cluster.nodes for t in node.queue.senders["omantel"].sent_at)
        assert len(sent) >= len(msisdns)
        assert max(sum(1 for t in sent[i:] if t < start + 1.0) for i, start in enumerate(sent)) <= 20
        busy = [n.node for n in cluster.nodes if n.queue.senders["omantel"].stats.submitted > 10]
        assert len(busy) == 2, busy  # both binds carried the load, not the one the MOs came in on
        assert smsc.peak_binds == 2
    finally:
        await cluster.stop()


def admin_token(cluster) -> str:  # type: ignore[no-untyped-def]
    return next(t.token for t in cluster.config.admin.tokens if t.role == "admin")


async def both_listed_with_their_admin(n1, n2) -> None:  # type: ignore[no-untyped-def]
    """Each node's view of the cluster lists both alive, with the admin address each listens on."""
    await eventually(lambda: all(len([n for n in m.cluster.view.nodes if n["alive"]]) == 2 for m in (n1, n2)))
    await eventually(lambda: all(n["admin"] and not n["admin"].endswith(":0") for n in n1.cluster.view.nodes))


@on_loop
async def test_live_changes_on_one_node_apply_on_every_node_within_a_second(tmp_path: Path, pg_url: str) -> None:
    """Pause, resume, a route change and a reload made through one node's admin API apply on the
    other node within a second (LISTEN/NOTIFY), and the audit log, one for the cluster, names the
    node each change was made on."""
    from tests.http_helpers import http

    cluster = await start_cluster(tmp_path, pg_url, nodes=2)
    try:
        n1, n2 = cluster.node("n1"), cluster.node("n2")
        token = admin_token(cluster)
        await eventually(lambda: n2._listener is not None and n1._listener is not None)
        await asyncio.sleep(0.5)  # both listening

        started = time.monotonic()
        assert (await http(n1.admin.port, "POST", "/api/v1/carriers/ooredoo/pause", token=token)).status == 200
        await eventually(lambda: n2.queue.senders["ooredoo"].paused, timeout=1.0, interval=0.01)
        assert time.monotonic() - started < 1.0
        assert (await http(n2.admin.port, "POST", "/api/v1/carriers/ooredoo/resume", token=token)).status == 200
        await eventually(lambda: not n1.queue.senders["ooredoo"].paused, timeout=1.0, interval=0.01)

        route = {"keyword": "INFO", "aliases": ["معلومات"], "handler": "help", "short_codes": ["90091"]}
        assert (await http(n1.admin.port, "PUT", "/api/v1/routes", token=token, body=route)).status in (200, 201)
        await eventually(lambda: any(r.keyword == "INFO" for r in n2.router.routes), timeout=1.0, interval=0.01)
        for carrier in CARRIERS:  # whichever node holds the bind answers the new keyword
            [reply] = await cluster.send(carrier, "96891230555", HELP, "معلومات")
            assert "90091" in reply.text

        assert (await http(n1.admin.port, "POST", "/api/v1/reload", token=token)).status == 200

        async def audited() -> set[tuple[str, str, str]]:
            entries = (await http(n2.admin.port, "GET", "/api/v1/audit", token=token)).json["entries"]
            return {(e["action"], e["node"], e["actor"].split(":")[0]) for e in entries}

        # The reload is applied on n2 as well (announced by n1), and the log, one for both, says so.
        await eventually(lambda: audited(), timeout=2.0)
        await eventually(lambda: _has(audited(), ("reload", "n2", "node")), timeout=2.0)
        entries = await audited()
        assert {("pause", "n1", "token"), ("resume", "n2", "token"), ("route_put", "n1", "token"),
                ("reload", "n1", "token"), ("reload", "n2", "node")} <= entries
    finally:
        await cluster.stop()


@on_loop
async def test_the_once_only_jobs_run_on_one_node(tmp_path: Path, pg_url: str) -> None:
    """USSD timeouts run on the node holding the jobs role only: a silent dialogue is released
    once, with one final screen, whichever node showed its menu."""
    cluster = await start_cluster(tmp_path, pg_url, nodes=2, carriers=["omantel"], max_binds={"omantel": 2},
                                  carrier_settings={"omantel": {"ussd_timeout_s": 0.6}})
    try:
        await eventually(lambda: len(cluster.bound_nodes("omantel")) == 2, timeout=10)
        jobs = [n.node for n in cluster.nodes if n.runs_jobs()]
        assert len(jobs) == 1, jobs
        dialogue = cluster.smsc("omantel").dial("96892123456", "*141#")
        await wait(dialogue.wait_screen())
        await wait(dialogue.wait_end(timeout=10))
        await asyncio.sleep(2.0)  # several reaper ticks on both nodes
        assert [s.end for s in dialogue.screens] == [False, True]
        assert dialogue.screens[-1].text.startswith("Session ended")
        assert cluster.smsc("omantel").anomalies == []
    finally:
        await cluster.stop()


@on_loop
async def test_a_ussd_dialogue_goes_on_on_the_node_that_takes_the_bind_over(tmp_path: Path, pg_url: str) -> None:
    """A dialogue's menu is shown by n1; n1 leaves mid-dialogue and n2 takes the bind: the next
    input reaches n2, which takes the dialogue's state from the store and shows the next screen."""
    cluster = await start_cluster(tmp_path, pg_url, nodes=1, carriers=["omantel"])
    try:
        n2 = await cluster.start_node("n2")
        smsc = cluster.smsc("omantel")
        dialogue = smsc.dial("96892120001", "*141#")
        menu = await wait(dialogue.wait_screen())
        assert not menu.end
        await cluster.stop_node("n1")
        await cluster.wait_all_bound()
        assert cluster.bound_nodes("omantel") == ["n2"]
        dialogue.answer("1")
        screen = await wait(dialogue.wait_screen(timeout=10))
        assert not screen.end and screen.text != menu.text, screen.text
        assert n2.ussd.counters["screens"] == 1 and n2.ussd.counters["opened"] == 0
        assert smsc.anomalies == []
    finally:
        await cluster.stop()

async def _has(entries_coro, wanted):  # type: ignore[no-untyped-def]
    return wanted in await entries_coro


@on_loop
async def test_operators_see_every_node_its_binds_and_leases(tmp_path: Path, pg_url: str) -> None:
    """`smsgw cluster` and `smsgw status` (over either node's admin API), the status page and
    /metrics show every node, which binds and roles it holds, and label each sample by node."""
    from tests.http_helpers import http
    from tests.test_operator_cli_page import smsgw

    cluster = await start_cluster(tmp_path, pg_url, nodes=2)
    try:
        n1, n2 = cluster.node("n1"), cluster.node("n2")
        token = admin_token(cluster)
        await both_listed_with_their_admin(n1, n2)
        data = (await http(n2.admin.port, "GET", "/api/v1/cluster", token=token)).json
        assert data["node"] == "n2"
        assert {n["name"] for n in data["cluster"]["nodes"] if n["alive"]} == {"n1", "n2"}
        held = {(b["carrier"], b["node"]) for b in data["cluster"]["binds"] if b["held"]}
        assert held == {(c, cluster.holders(c)[0]) for c in CARRIERS}
        code, out, _ = await smsgw("cluster", "--url", f"http://127.0.0.1:{n1.admin.port}", "--token", token)
        assert code == 0 and "n1" in out and "n2" in out and "omantel" in out and "jobs" in out, out
        code, out, _ = await smsgw("status", "--url", f"http://127.0.0.1:{n1.admin.port}", "--token", token)
        assert code == 0 and "node n1: member" in out, out
        page = await http(n1.admin.port, "GET", f"/?token={token}")
        assert page.status == 200 and 'id="cluster"' in page.raw.decode() and 'data-node="n2"' in page.raw.decode()
        metrics = (await http(n1.admin.port, "GET", "/metrics", token=token)).raw.decode()
        assert 'smsgw_cluster_fenced{node="n1"} 0.0' in metrics
        assert all('node="n1"' in line for line in metrics.splitlines() if line and not line.startswith("#"))
    finally:
        await cluster.stop()


@on_loop
async def test_the_cli_asks_another_node_when_the_configured_one_is_down(tmp_path: Path, pg_url: str) -> None:
    """With several nodes, an operator's command whose configured node does not answer goes to a
    live node found in the shared database (and says so); with none alive it fails as before."""
    from tests.stack import SHIPPED_CONFIG
    from tests.test_operator_cli_page import smsgw

    cluster = await start_cluster(tmp_path, pg_url, nodes=2)
    try:
        n1, n2 = cluster.node("n1"), cluster.node("n2")
        token = admin_token(cluster)
        await both_listed_with_their_admin(n1, n2)
        config = tmp_path / "operator.toml"
        text = SHIPPED_CONFIG.read_text(encoding="utf-8")
        text = text.replace('store_path = "var/smsgw.sqlite3"', f'store_url = "{pg_url}"', 1)
        text = re.sub(r"(?m)^(\[admin\](?:\n(?!\[).*)*?\nport = )\d+", r"\g<1>9", text)  # nothing listens on 9
        config.write_text(text, encoding="utf-8")
        code, out, err = await smsgw("cluster", "--config", str(config), "--token", token)
        assert code == 0 and "\nn1 " in out and "\nn2 " in out, out
        assert "http://127.0.0.1:9 is not answering: asked the node at http://127.0.0.1:" in err
        code, out, err = await smsgw("pause", "omantel", "--config", str(config), "--token", token)
        assert code == 0 and "omantel: paused" in out
        await eventually(lambda: all(n.queue.senders["omantel"].paused for n in (n1, n2)))
    finally:
        await cluster.stop()
    code, _out, err = await smsgw("cluster", "--config", str(config), "--token", token)
    assert code != 0 and "cannot reach the admin API at http://127.0.0.1:9" in err
