"""A local Weaviate cluster: N nodes of the same server binary on 127.0.0.1, each a `LocalWeaviate` of its own.

`mmrag weaviate start --nodes 3` creates it in ``<data_dir>/weaviate-cluster``: ``cluster.json`` (each node's
name and ports, fixed when the cluster is created so that a node restarts where its peers look for it), the API key
and cluster password that every node shares, and one directory per node (``node0``, ``node1``, ...) with its data,
``server.json`` and ``server.log``. Each node takes a block of six free ports: HTTP, gRPC, gossip, data (gossip +
1), raft (gossip + 2) and raft RPC (gossip + 3), as Weaviate's own dev scripts lay out a local cluster. The metrics
and pprof listeners stay off, as on the single node. Stopping keeps all of it; the next start reuses it. While the
state file exists the cluster is the local server (`mmrag.core.client.connect` uses its first ready node); delete the
directory (its data with it) to go back to the single node.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from mmrag.core.errors import ServerStartError
from mmrag.core.server import LocalWeaviate, Membership, ServerState, free_port_block

CLUSTER_DIR = "weaviate-cluster"
MAX_NODES = 9


@dataclass(frozen=True)
class NodePorts:
    """One node's name and its HTTP, gRPC and gossip ports (data, raft and raft RPC follow gossip)."""

    name: str
    http: int
    grpc: int
    gossip: int

    @property
    def raft(self) -> int:
        return self.gossip + 2


class LocalCluster:
    """The local cluster kept in ``data_dir / 'weaviate-cluster'`` (see the module docstring)."""

    def __init__(self, binary: Path, data_dir: Path) -> None:
        self.binary = binary
        self.root = data_dir / CLUSTER_DIR

    @property
    def state_file(self) -> Path:
        return self.root / "cluster.json"

    def exists(self) -> bool:
        return self.state_file.is_file()

    def nodes(self) -> list[LocalWeaviate]:
        """Every node, in order (node0 first); none before the cluster is created."""
        layout = self._layout()
        raft_join = tuple(f"{p.name}:{p.raft}" for p in layout)
        return [
            LocalWeaviate(
                self.binary,
                self.root,
                p.http,
                p.grpc,
                root=self.root / p.name,
                secrets_dir=self.root,
                membership=Membership(
                    p.name, p.gossip, tuple(q.gossip for q in layout if q is not p), raft_join=raft_join
                ),
            )
            for p in layout
        ]

    def status(self) -> list[ServerState]:
        return [node.status() for node in self.nodes()]

    def start(self, n_nodes: int | None = None, timeout: float = 180.0) -> list[ServerState]:
        """Start every node that is down (creating the cluster of `n_nodes` first when there is none) and wait
        until all are ready. A cluster that exists keeps its size: another `n_nodes` is a ServerStartError."""
        if not self.exists():
            if n_nodes is None or not 2 <= n_nodes <= MAX_NODES:
                raise ServerStartError(f"a local cluster has 2 to {MAX_NODES} nodes, got {n_nodes}")
            self._create(n_nodes)
        nodes = self.nodes()
        if n_nodes is not None and n_nodes != len(nodes):
            raise ServerStartError(
                f"the local cluster in {self.root} has {len(nodes)} nodes, not {n_nodes}: start it with "
                f"--nodes {len(nodes)}, or stop it and delete that directory (and its data) for a new one"
            )
        pids = [node.launch() for node in nodes]  # all first: a node is ready only once the others have joined
        for node, pid in zip(nodes, pids, strict=True):
            node.wait_ready(pid, timeout)
        return self.status()

    def stop(self, timeout: float = 30.0) -> int:
        """Stop every node; how many were running (the state, data and ports are kept for the next start)."""
        return sum(node.stop(timeout) for node in self.nodes())

    def _create(self, n_nodes: int) -> None:
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        layout: list[NodePorts] = []
        for i in range(n_nodes):
            taken = {port for p in layout for port in range(p.http, p.http + 6)}
            first = free_port_block(6)
            while taken & set(range(first, first + 6)):
                first = free_port_block(6)
            layout.append(NodePorts(f"node{i}", http=first, grpc=first + 1, gossip=first + 2))
        nodes = [{"name": p.name, "http_port": p.http, "grpc_port": p.grpc, "gossip_port": p.gossip} for p in layout]
        self.state_file.write_text(json.dumps({"nodes": nodes}, indent=1) + "\n")

    def _layout(self) -> list[NodePorts]:
        if not self.exists():
            return []
        try:
            nodes = json.loads(self.state_file.read_text())["nodes"]
            return [
                NodePorts(str(n["name"]), int(n["http_port"]), int(n["grpc_port"]), int(n["gossip_port"]))
                for n in nodes
            ]
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise ServerStartError(
                f"{self.state_file} is unreadable ({e}): delete {self.root} for a new cluster"
            ) from e
