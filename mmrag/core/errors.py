"""Errors a user can cause or fix. The CLI and UI turn each into one clear line."""


class MmragError(Exception):
    """Base class: its message is what the user reads."""


class ConfigError(MmragError):
    """A setting or argument is invalid."""


class ServerInstallError(MmragError):
    """The Weaviate server binary could not be built or downloaded."""


class ServerStartError(MmragError):
    """The local Weaviate server could not start (binary missing, port taken, early exit)."""


class WeaviateUnavailableError(MmragError):
    """No Weaviate server answers at the configured address."""


class ModelUnavailableError(MmragError):
    """A model could not be loaded (missing locally and the hub unreachable, bad id)."""


class ServerUnavailableError(MmragError):
    """An inference server that cannot be reached, times out, or stays busy (429, 5xx) after the retries."""


def first_line(error: BaseException, limit: int = 200) -> str:
    """An exception as one short line for a user: its message's first line (never a gRPC call's repr), else its type."""
    text = str(error).strip().split(" Details: <_")[0]
    return text.splitlines()[0][:limit] if text else type(error).__name__


def one_line(text: str, limit: int = 200) -> str:
    """`text` with every run of whitespace (newlines too) made one space, at most `limit` characters: a reason that
    quotes a library's message stays one line."""
    return " ".join(text.split())[:limit]


def error_text(error: BaseException) -> str:
    """A library's exception as one line for a reason: `ValueError: bad value`, or just its type when it says
    nothing."""
    detail = one_line(str(error))
    return f"{type(error).__name__}{': ' + detail if detail else ''}"
