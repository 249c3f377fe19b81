"""Several gateway nodes on one PostgreSQL database against the simulators, in one process.

    cluster = await start_cluster(tmp_path, pg_url, nodes=2)
    await cluster.wait_all_bound()
    replies = await cluster.send("omantel", "96891234567", "90091", "HELP")
    await cluster.stop()

Every node is a real Gateway with its own store connection and cluster membership; they share the
simulators (real SMPP over loopback TCP) and the database.  Leases are short here (a 3 s lease,
0.5 s heartbeats) so takeovers happen within a test's patience.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from twisted.internet import reactor

from carriers.faults import FaultPlan
from carriers.main import SimulatorSet, SimulatorSpec, start_simulators
from carriers.records import HandsetMessage
from smsgw.config import ClusterConfig, GatewayConfig
from smsgw.gateway import Gateway
from tests.stack import CARRIERS, eventually, make_config, wait, write_process_config

FAST = ClusterConfig(lease_s=3.0, heartbeat_s=0.5, fence_margin_s=1.0)


@dataclasses.dataclass
class Cluster:
    config: GatewayConfig
    sims: SimulatorSet
    nodes: list[Gateway]
    features: Sequence[Any]

    def smsc(self, carrier: str) -> Any:
        return self.sims.smsc(carrier)

    def node(self, name: str) -> Gateway:
        return next(n for n in self.nodes if n.node == name)

    def holders(self, carrier: str) -> list[str]:
        """Nodes holding a bind slot of the carrier, by their own account."""
        return [n.node for n in self.nodes if n.cluster is not None and carrier in n.cluster.slots]

    def bound_nodes(self, carrier: str) -> list[str]:
        """Nodes whose connector to the carrier is bound."""
        return [n.node for n in self.nodes if carrier in n.connectors and n.connectors[carrier].state == "bound"]

    async def wait_all_bound(self, carriers: Iterable[str] | None = None, timeout: float = 15.0) -> None:
        names = list(carriers) if carriers is not None else [c.name for c in self.config.carriers if c.enabled]
        await eventually(lambda: all(self.bound_nodes(c) for c in names), timeout)

    async def start_node(self, name: str, url: str | None = None) -> Gateway:
        """A node on the cluster's database (or on `url`: the same database through a relay)."""
        config = node_config(self.config, name)
        if url is not None:
            config = dataclasses.replace(config, store_url=url)
        node = Gateway(config, self.features, reactor=reactor, ports=self.sims.ports)
        await node.start()
        self.nodes.append(node)
        return node

    async def stop_node(self, name: str) -> None:
        node = self.node(name)
        self.nodes.remove(node)
        await node.stop()

    async def send(self, carrier: str, msisdn: str, short_code: str, text: str, *, replies: int = 1,
                   timeout: float = 10.0) -> list[HandsetMessage]:
        smsc = self.smsc(carrier)
        since = len(smsc.handset_messages)
        smsc.inject_mo(msisdn, short_code, text)
        return await wait(smsc.wait_handset(msisdn, replies, since_index=since, timeout=timeout))

    def handset(self, carrier: str, msisdn: str) -> list[HandsetMessage]:
        return [m for m in self.smsc(carrier).handset_messages if m.msisdn == msisdn]

    async def stop(self) -> None:
        try:
            for node in list(self.nodes):
                await node.stop()
        finally:
            await wait(self.sims.stop())


def cluster_config_file(tmp_path: Path, ports: Mapping[str, int], url: str, cluster: ClusterConfig,
                        settings: Mapping[str, Mapping[str, Any]], carriers: Sequence[str],
                        gateway_settings: Mapping[str, Any]) -> Path:
    """The shipped config on the simulators' ports and the database, with the given settings."""
    # A carrier left out is disabled, but its section must still be valid: any port will do.
    path = write_process_config(tmp_path, {**{name: 9 for name in CARRIERS}, **ports}, tmp_path / "unused.sqlite3")
    text = path.read_text(encoding="utf-8")
    text = re.sub(r"(?m)^store_(path|url) = .*$", f'store_url = "{url}"', text)
    for key, value in gateway_settings.items():
        text = re.sub(rf"(?m)^{key} = .*$", f"{key} = {value}", text)
    for name in CARRIERS:
        wanted = {"enabled": "true" if name in carriers else "false",
                  **{k: str(v) for k, v in settings.get(name, {}).items()}}
        for key, value in wanted.items():
            text = _set_in_section(text, f"carriers.{name}", key, value)
    text += (f"\n[cluster]\nlease_s = {cluster.lease_s}\nheartbeat_s = {cluster.heartbeat_s}\n"
             f"fence_margin_s = {cluster.fence_margin_s}\n")
    path.write_text(text, encoding="utf-8")
    return path


def _set_in_section(text: str, section: str, key: str, value: str) -> str:
    """`key = value` inside `[section]`: replaced where the section has it, else added under it."""
    pattern = rf"(?m)^(\[{re.escape(section)}\](?:\n(?!\[).*)*?\n){re.escape(key)} = .*$"
    if re.search(pattern, text):
        return re.sub(pattern, lambda m: f"{m.group(1)}{key} = {value}", text, count=1)
    return text.replace(f"[{section}]", f"[{section}]\n{key} = {value}", 1)


def node_config(config: GatewayConfig, name: str) -> GatewayConfig:
    """The shared config as one node runs it: its own name and admin port."""
    return dataclasses.replace(config, node=name, admin=dataclasses.replace(config.admin, port=0))


async def start_cluster(
    tmp_path: Path,
    url: str,
    *,
    nodes: int = 2,
    carriers: Iterable[str] = CARRIERS,
    max_binds: Mapping[str, int] | None = None,
    sim_max_binds: int | None = 1,
    tps: Mapping[str, float] | None = None,
    faults: Mapping[str, FaultPlan] | None = None,
    cluster: ClusterConfig = FAST,
    carrier_settings: Mapping[str, Mapping[str, Any]] | None = None,
    **gateway_overrides: Any,
) -> Cluster:
    """The simulators (each account allowing `sim_max_binds` binds per direction) and `nodes`
    gateways on the database at `url`; waits until every carrier is bound by some node."""
    from smsgw.app import features as all_features, load_checked_config

    carriers = list(carriers)
    shipped = make_config(tmp_path, carriers=carriers)
    specs = []
    for s in shipped.simulators:
        limit = sim_max_binds
        if limit is not None and max_binds and s.name in max_binds:
            limit = max_binds[s.name]
        specs.append(SimulatorSpec(name=s.name, profile=s.profile, host=s.host, port=0, system_id=s.system_id,
                                   password=s.password, tps=(tps or {}).get(s.name, s.tps), max_binds=limit))
    sims = await wait(start_simulators(specs, "127.0.0.1", 0, reactor=reactor, faults=faults))
    # One config file for every node, as in production: a reload on any node reads it.
    settings: dict[str, dict[str, Any]] = {name: dict((carrier_settings or {}).get(name, {})) for name in carriers}
    for name in carriers:
        if max_binds and name in max_binds:
            settings[name]["max_binds"] = max_binds[name]
        if tps and name in tps:
            settings[name]["tps"] = tps[name]
    path = cluster_config_file(tmp_path, sims.ports, url, cluster, settings, carriers, gateway_overrides)
    try:
        config = load_checked_config(str(path))
    except BaseException:
        await wait(sims.stop())
        raise
    result = Cluster(config, sims, [], all_features())
    try:
        for i in range(nodes):
            await result.start_node(f"n{i + 1}")
        await result.wait_all_bound(carriers)
    except BaseException:
        await result.stop()
        raise
    return result
