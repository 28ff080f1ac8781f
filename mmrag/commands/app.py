"""`mmrag`: the command line. Each command parses its input and calls one library function.

Importing a commands module registers nothing: `build_app` makes a new app and lets each module add its commands
(`register(app)`), and `main`, the console entry point, builds one, configures logging and runs it.
"""

from __future__ import annotations

import logging
import os
import sys

import typer
from rich.markup import escape

from mmrag.commands import ask, demo, finetune, index, models, settings, ui, weaviate
from mmrag.core.console import err, plain
from mmrag.core.errors import ConfigError, MmragError
from mmrag.core.settings import load_settings

COMMANDS = (index, ask, ui, demo, settings, weaviate, models, finetune)
"""The modules whose `register(app)` adds their commands, in the order `mmrag --help` lists them."""


def build_app() -> typer.Typer:
    """A new `mmrag` app with every command."""
    app = typer.Typer(help="Multimodal RAG over charts and documents.", no_args_is_help=True, add_completion=False)
    for module in COMMANDS:
        module.register(app)
    return app


def main() -> None:
    """Console entry point: every MmragError becomes one line on stderr and exit status 1.

    Typer runs standalone: it reports usage errors (exit 2) and Ctrl-C (exit 130) itself."""
    try:
        try:
            level = load_settings().log_level
        except ConfigError:  # the commands that read settings report it; --help and the rest still run
            level = "WARNING"
        logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
        _quiet_libraries()
        build_app()()
    except MmragError as e:
        err.print(f"[bold red]error:[/] {escape(plain(str(e)))}", highlight=False, soft_wrap=True)
        sys.exit(1)


def _quiet_libraries() -> None:
    # weaviate-client reads this when imported and otherwise logs every retry at INFO: errors stay one line
    os.environ.setdefault("WEAVIATE_LOG_LEVEL", "ERROR")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    for name in ("httpx", "huggingface_hub", "transformers", "sentence_transformers", "weaviate"):
        logging.getLogger(name).setLevel(logging.ERROR)
