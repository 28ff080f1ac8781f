"""`mmrag`: the command line. Each command parses its input and calls one library function."""

from __future__ import annotations

import logging
import os
import sys
import time

import click
import typer
from rich.markup import escape

from mmrag.core import server
from mmrag.core.console import err, out, plain
from mmrag.core.errors import MmragError
from mmrag.core.settings import Settings, load_settings

app = typer.Typer(help="Multimodal RAG over charts and documents.", no_args_is_help=True, add_completion=False)
weaviate_app = typer.Typer(help="The local Weaviate server.", no_args_is_help=True)
models_app = typer.Typer(help="Model checkpoints.", no_args_is_help=True)
app.add_typer(weaviate_app, name="weaviate")
app.add_typer(models_app, name="models")


def _register_packages() -> None:
    """Each package adds its own commands (their modules import nothing heavy)."""
    from mmrag.commands import ask, finetune, index, ui

    for module in (index, ask, finetune, ui):
        module.register(app)


_register_packages()


def _settings() -> Settings:
    return load_settings()


@weaviate_app.command("install")
def weaviate_install() -> None:
    """Build the pinned Weaviate server from the Go module proxy (or download its release); skip if present."""
    settings = _settings()
    started = time.perf_counter()
    path = server.install(settings.cache_dir, log=err.print)
    size = path.stat().st_size / 1e6
    out.print(f"Weaviate {server.WEAVIATE_VERSION}: {path} ({size:.0f} MB, {time.perf_counter() - started:.1f} s)")


@weaviate_app.command("start")
def weaviate_start() -> None:
    """Start the local server on 127.0.0.1 and wait until it is ready."""
    from mmrag.core.client import local_server

    started = time.perf_counter()
    state = local_server(_settings()).start()
    elapsed = time.perf_counter() - started
    out.print(f"Weaviate ready at {state.url} (gRPC {state.grpc_port}, pid {state.pid}, {elapsed:.1f} s)")


@weaviate_app.command("stop")
def weaviate_stop() -> None:
    """Stop the local server."""
    from mmrag.core.client import local_server

    stopped = local_server(_settings()).stop()
    out.print("Weaviate stopped" if stopped else "Weaviate was not running")


@weaviate_app.command("status")
def weaviate_status(json_output: bool = typer.Option(False, "--json", help="One JSON object.")) -> None:
    """Whether the local server runs; exit 1 when it does not."""
    import json

    from mmrag.core.client import local_server

    state = local_server(_settings()).status()
    if json_output:
        out.print_json(
            json.dumps(
                {
                    "running": state.running,
                    "ready": state.ready,
                    "pid": state.pid,
                    "url": state.url,
                    "grpc_port": state.grpc_port,
                    "data": str(state.data_dir),
                }
            )
        )
    elif state.running:
        out.print(
            f"Weaviate {'ready' if state.ready else 'starting'} at {state.url} (pid {state.pid}), "
            f"data in {state.data_dir}"
        )
    else:
        out.print("Weaviate is not running")
    if not state.running:
        raise typer.Exit(1)


@models_app.command("prepare")
def models_prepare() -> None:
    """Resolve the profile's models (the tiny profile builds its checkpoints once)."""
    from mmrag.core.models import resolve_models

    ids = resolve_models(_settings())
    for field, value in vars(ids).items():
        out.print(f"{field:16} {value}")


@app.command()
def demo() -> None:
    """Set up and run the main job on the embedded default (tiny models when the hub is unreachable)."""
    from mmrag.commands.demo import run_demo
    from mmrag.core.models import hub_reachable

    overrides: dict[str, object] = {"collection": os.environ.get("MMRAG_COLLECTION", "MmragDemo")}
    if "MMRAG_PROFILE" not in os.environ and not hub_reachable():
        out.print(
            "[yellow]offline:[/] the Hugging Face hub is unreachable, so the demo uses the tiny profile "
            "(tiny random models: answers are not meaningful)"
        )
        overrides["profile"] = "tiny"
    run_demo(load_settings(**overrides), out)


def main() -> None:
    """Console entry point: every MmragError becomes one line on stderr and exit status 1."""
    logging.basicConfig(
        level=os.environ.get("MMRAG_LOG_LEVEL", "WARNING"), format="%(levelname)s %(name)s: %(message)s"
    )
    _quiet_libraries()
    try:
        code = app(standalone_mode=False)
    except MmragError as e:
        err.print(f"[bold red]error:[/] {escape(plain(str(e)))}", highlight=False, soft_wrap=True)
        sys.exit(1)
    except click.exceptions.Abort:
        err.print("aborted")
        sys.exit(130)
    except click.ClickException as e:
        e.show()
        sys.exit(e.exit_code)
    sys.exit(code if isinstance(code, int) else 0)


def _quiet_libraries() -> None:
    # weaviate-client reads this when imported and otherwise logs every retry at INFO: errors stay one line
    os.environ.setdefault("WEAVIATE_LOG_LEVEL", "ERROR")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    for name in ("httpx", "huggingface_hub", "transformers", "sentence_transformers", "weaviate"):
        logging.getLogger(name).setLevel(logging.ERROR)
