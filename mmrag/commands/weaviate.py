"""`mmrag weaviate install|start|stop|status`: the local Weaviate server."""

from __future__ import annotations

import json
import time

import typer

from mmrag.commands.options import Json
from mmrag.core.console import err, out
from mmrag.core.settings import load_settings


def install() -> None:
    """Build the pinned Weaviate server from the Go module proxy (or download its release); skip if present."""
    from mmrag.core import server

    started = time.perf_counter()
    path = server.install(load_settings().cache_dir, log=err.print)
    size = path.stat().st_size / 1e6
    out.print(f"Weaviate {server.WEAVIATE_VERSION}: {path} ({size:.0f} MB, {time.perf_counter() - started:.1f} s)")


def start() -> None:
    """Start the local server on 127.0.0.1 and wait until it is ready."""
    from mmrag.core.client import local_server

    started = time.perf_counter()
    state = local_server(load_settings()).start()
    elapsed = time.perf_counter() - started
    out.print(f"Weaviate ready at {state.url} (gRPC {state.grpc_port}, pid {state.pid}, {elapsed:.1f} s)")


def stop() -> None:
    """Stop the local server."""
    from mmrag.core.client import local_server

    stopped = local_server(load_settings()).stop()
    out.print("Weaviate stopped" if stopped else "Weaviate was not running")


def status(json_output: Json = False) -> None:
    """Whether the local server runs; exit 1 when it does not."""
    from mmrag.core.client import local_server

    state = local_server(load_settings()).status()
    if json_output:
        summary = {
            "running": state.running,
            "ready": state.ready,
            "pid": state.pid,
            "url": state.url,
            "grpc_port": state.grpc_port,
            "data": str(state.data_dir),
        }
        out.print_json(json.dumps(summary))
    elif state.running:
        out.print(
            f"Weaviate {'ready' if state.ready else 'starting'} at {state.url} (pid {state.pid}), "
            f"data in {state.data_dir}"
        )
    else:
        out.print("Weaviate is not running")
    if not state.running:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add the `weaviate` group to the `mmrag` app."""
    group = typer.Typer(help="The local Weaviate server.", no_args_is_help=True)
    for command in (install, start, stop, status):
        group.command(command.__name__)(command)
    app.add_typer(group, name="weaviate")
