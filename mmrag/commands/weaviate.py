"""`mmrag weaviate install|start|stop|status`: the local Weaviate server, or a local cluster of several nodes
(`start --nodes 3`; later commands use the cluster while it exists, see mmrag.core.cluster)."""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Annotated

import typer

from mmrag.commands.options import Json
from mmrag.core.console import err, out
from mmrag.core.settings import load_settings

if TYPE_CHECKING:
    from mmrag.core.server import ServerState


def install() -> None:
    """Build the pinned Weaviate server from the Go module proxy (or download its release); skip if present."""
    from mmrag.core import server

    started = time.perf_counter()
    path = server.install(load_settings().cache_dir, log=err.print)
    size = path.stat().st_size / 1e6
    out.print(f"Weaviate {server.WEAVIATE_VERSION}: {path} ({size:.0f} MB, {time.perf_counter() - started:.1f} s)")


Nodes = Annotated[
    int | None,
    typer.Option(
        "--nodes",
        min=1,
        max=9,
        help="1: the single server; 2 or more: a local cluster of that many nodes (kept until its directory is "
        "deleted). Default: the cluster if one exists, else the single server.",
    ),
]


def start(nodes: Nodes = None) -> None:
    """Start the local server (or every node of the local cluster) on 127.0.0.1 and wait until it is ready."""
    from mmrag.core.client import local_cluster, local_server
    from mmrag.core.errors import ServerStartError

    settings = load_settings()
    cluster = local_cluster(settings)
    started = time.perf_counter()
    if nodes == 1 and cluster.exists():
        raise ServerStartError(
            f"a local cluster exists in {cluster.root}, and commands use it: start it (no --nodes), or stop it "
            "and delete that directory (and its data) to use the single server"
        )
    if (nodes or 1) > 1 or cluster.exists():
        states = cluster.start(nodes)
        elapsed = time.perf_counter() - started
        for i, state in enumerate(states):
            out.print(f"node{i} ready at {state.url} (gRPC {state.grpc_port}, pid {state.pid})")
        out.print(f"Weaviate cluster of {len(states)} nodes ready ({elapsed:.1f} s), data in {cluster.root}")
        return
    state = local_server(settings).start()
    elapsed = time.perf_counter() - started
    out.print(f"Weaviate ready at {state.url} (gRPC {state.grpc_port}, pid {state.pid}, {elapsed:.1f} s)")


def stop() -> None:
    """Stop the local server, or every node of the local cluster."""
    from mmrag.core.client import local_cluster, local_server

    settings = load_settings()
    cluster = local_cluster(settings)
    if cluster.exists():
        stopped = cluster.stop()
        out.print(f"Weaviate cluster stopped ({stopped} nodes were running)" if stopped else "Weaviate was not running")
        return
    stopped_one = local_server(settings).stop()
    out.print("Weaviate stopped" if stopped_one else "Weaviate was not running")


def status(json_output: Json = False) -> None:
    """Whether the local server (each node of the local cluster) runs; exit 1 when it (any node) does not."""
    from mmrag.core.client import local_cluster, local_server

    settings = load_settings()
    cluster = local_cluster(settings)
    states = cluster.status() if cluster.exists() else [local_server(settings).status()]
    names = [f"node{i}" for i in range(len(states))] if cluster.exists() else ["Weaviate"]
    if json_output:
        summaries = [_summary(state) for state in states]
        out.print_json(json.dumps({"nodes": summaries} if cluster.exists() else summaries[0]))
    else:
        for name, state in zip(names, states, strict=True):
            if state.running:
                out.print(
                    f"{name} {'ready' if state.ready else 'starting'} at {state.url} (pid {state.pid}), "
                    f"data in {state.data_dir}"
                )
            else:
                out.print(f"{name} is not running" if cluster.exists() else "Weaviate is not running")
    if not all(state.running for state in states):
        raise typer.Exit(1)


def _summary(state: ServerState) -> dict[str, object]:
    return {
        "running": state.running,
        "ready": state.ready,
        "pid": state.pid,
        "url": state.url,
        "grpc_port": state.grpc_port,
        "data": str(state.data_dir),
    }


def register(app: typer.Typer) -> None:
    """Add the `weaviate` group to the `mmrag` app."""
    group = typer.Typer(help="The local Weaviate server.", no_args_is_help=True)
    for command in (install, start, stop, status):
        group.command(command.__name__)(command)
    app.add_typer(group, name="weaviate")
