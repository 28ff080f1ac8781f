"""`mmrag ui`: the chat UI, served by Streamlit (settings reach the page through the MMRAG_* environment)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import typer

from mmrag.commands.options import Collection, overrides

APP = Path(__file__).parents[1] / "ui" / "app.py"


def streamlit_argv(host: str, port: int, max_upload_mb: int) -> list[str]:
    """The command that serves the page with this interpreter's Streamlit (so a virtualenv's one is used)."""
    return [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(APP),
        "--server.address",
        host,
        "--server.port",
        str(port),
        "--server.headless",
        "true",
        "--server.maxUploadSize",
        str(max_upload_mb),
        "--server.fileWatcherType",
        "none",
        "--browser.gatherUsageStats",
        "false",
        "--client.toolbarMode",
        "minimal",
        "--runner.magicEnabled",
        "false",
    ]


def ui(
    host: str = typer.Option("127.0.0.1", help="Address to listen on (0.0.0.0: every interface)."),
    port: int = typer.Option(8501, min=1, max=65535, help="Port to listen on."),
    collection: Collection = None,
) -> None:
    """Open the chat UI: ask questions, check the cited charts and passages, add documents."""
    from mmrag.core.console import err
    from mmrag.core.settings import env_name, load_settings

    settings = load_settings(**overrides(collection=collection))  # a bad MMRAG_* variable fails here, in one line
    if collection is not None:  # the page reads its settings from the environment
        os.environ[env_name("collection")] = collection
    err.print(f"mmrag UI on http://{host}:{port} (collection {settings.collection})", highlight=False)
    argv = streamlit_argv(host, port, settings.max_upload_mb)
    os.execv(argv[0], argv)  # Streamlit takes over this process: signals and the exit status are its own


def register(app: typer.Typer) -> None:
    """Add this package's commands to the `mmrag` app."""
    app.command("ui")(ui)
