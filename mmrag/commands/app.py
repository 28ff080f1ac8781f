"""`mmrag`: the command line. Each command parses its input and calls one library function.

Importing a commands module registers nothing: `build_app` makes a new app and lets each module add its commands
(`register(app)`), and `main`, the console entry point, builds one, configures logging and runs it.

Exit status: 0 ok, 1 a failure (one line on stderr), 2 a usage error (one line on stderr), 130 Ctrl-C.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Sequence

import typer
from rich.markup import escape
from typer._click import exceptions as click

from mmrag.commands import ask, collections, demo, finetune, index, models, serve, settings, ui, weaviate
from mmrag.core.console import err, plain
from mmrag.core.errors import ConfigError, MmragError

COMMANDS = (index, ask, collections, ui, serve, demo, settings, weaviate, models, finetune)
"""The modules whose `register(app)` adds their commands, in the order `mmrag --help` lists them."""

USAGE = 2
"""The exit status of a usage error (an unknown option, a missing argument, a bad value)."""


def build_app() -> typer.Typer:
    """A new `mmrag` app with every command."""
    app = typer.Typer(
        help="Multimodal RAG over charts and documents.",
        no_args_is_help=True,
        add_completion=False,
        context_settings={"help_option_names": ["-h", "--help"]},
    )
    app.callback()(_root)
    for module in COMMANDS:
        module.register(app)
    return app


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        print(f"mmrag {version('mmrag')}")
        raise typer.Exit(0)


def _root(
    quiet: bool = typer.Option(False, "-q", "--quiet", help="Print only results and errors."),
    verbose: int = typer.Option(0, "-v", "--verbose", count=True, help="Log progress (-v) or everything (-vv)."),
    version: bool = typer.Option(
        False, "--version", is_eager=True, expose_value=False, callback=_version, help="Print the version."
    ),
) -> None:
    """Multimodal RAG over charts and documents."""
    if verbose:
        _set_log_level(logging.DEBUG if verbose > 1 else logging.INFO)
    elif quiet:
        _set_log_level(logging.ERROR)
    err.quiet = quiet  # messages and progress bars go; results (stdout) and errors (`_error`) stay


def main(argv: Sequence[str] | None = None) -> int:
    """Console entry point (and in-process runner: `main(["search", "q"])`): the exit status.

    A usage error and every MmragError become one line on stderr (exit 2 and 1); Ctrl-C is 130."""
    try:
        from mmrag.core.settings import load_settings

        level = load_settings().log_level
    except ConfigError:  # the commands that read settings report it; --help and the rest still run
        level = "WARNING"
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    _set_log_level(level)
    _quiet_libraries()
    command = typer.main.get_command(build_app())
    try:
        status = command.main(args=list(argv) if argv is not None else None, prog_name="mmrag", standalone_mode=False)
        return status if isinstance(status, int) else 0
    except click.NoArgsIsHelpError as e:  # `mmrag`, `mmrag collections`: no command given; the help says which
        if e.format_message().strip():  # (Typer's Rich help is printed, on stdout, as the error is made)
            sys.stderr.write(e.format_message().rstrip() + "\n")
        return USAGE
    except click.UsageError as e:
        _error(_usage_line(e))
        return USAGE
    except click.ClickException as e:  # a bad file argument and the like
        _error(_one_line(e.format_message()))
        return e.exit_code
    except typer.Abort:  # a confirmation declined, or end of input
        _error("aborted")
        return 1
    except KeyboardInterrupt:
        return 130
    except MmragError as e:
        _error(_one_line(plain(str(e))))
        return 1
    finally:
        err.quiet = False


def _usage_line(e: click.UsageError) -> str:
    """`no such option: --bogus (try 'mmrag search --help')`."""
    line = _one_line(e.format_message()).replace(": Value error, ", ": ")
    line = line[:1].lower() + line[1:]
    return f"{line} (try '{e.ctx.command_path} --help')" if e.ctx is not None else line


def _one_line(text: str) -> str:
    return " ".join(text.split()).rstrip(".") or "failed"


def _error(text: str) -> None:
    """One line on stderr, even under --quiet."""
    quiet, err.quiet = err.quiet, False
    try:
        err.print(f"[bold red]error:[/] {escape(text)}", highlight=False, soft_wrap=True)
    finally:
        err.quiet = quiet


def _set_log_level(level: int | str) -> None:
    logging.getLogger().setLevel(level)


def _quiet_libraries() -> None:
    # weaviate-client reads this when imported and otherwise logs every retry at INFO: errors stay one line
    os.environ.setdefault("WEAVIATE_LOG_LEVEL", "ERROR")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    for name in ("httpx", "huggingface_hub", "transformers", "sentence_transformers", "weaviate"):
        logging.getLogger(name).setLevel(logging.ERROR)
