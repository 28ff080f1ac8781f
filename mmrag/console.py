"""The consoles every command prints to: results on stdout, messages and errors on stderr."""

from rich.console import Console

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)
