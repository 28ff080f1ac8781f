"""The one way library code gets a Weaviate client.

Only writers start the local server (`connect(settings, start_local=True)`: indexing, `mmrag weaviate start`, the
demo, the UI and the REST API, which index uploads); a reader finds it down and says so, starting nothing. The
weaviate package (over a second to import) loads on the first connect, not with this module, so a command that ends
before connecting (a server that is down, `--help`) never pays for it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from mmrag.core.errors import ConfigError, WeaviateUnavailableError, first_line
from mmrag.core.server import LocalWeaviate, binary_path
from mmrag.core.settings import Settings

if TYPE_CHECKING:
    from weaviate import WeaviateClient as Client
    from weaviate.classes.init import AdditionalConfig

    CONNECTION_ERRORS: tuple[type[Exception], ...]


def __getattr__(name: str) -> Any:
    """`Client` (a connected client, as `connect` returns it: callers hand it to `indexer.store.Store`, which alone
    queries) and `CONNECTION_ERRORS`, resolved on first use so that importing this module does not import weaviate."""
    if name == "Client":
        import weaviate

        return weaviate.WeaviateClient
    if name == "CONNECTION_ERRORS":
        return connection_errors()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def local_server(settings: Settings) -> LocalWeaviate:
    return LocalWeaviate(
        binary=binary_path(settings.cache_dir),
        data_dir=settings.data_dir,
        http_port=settings.weaviate_http_port,
        grpc_port=settings.weaviate_grpc_port,
    )


def connect(settings: Settings, *, start_local: bool = False) -> Client:
    """A connected client: MMRAG_WEAVIATE_URL when set, else the local server.

    The local server is started (if down) only with `start_local`; without it a server that is down is a
    WeaviateUnavailableError, and nothing is started or written (no pid file, no API key)."""
    if settings.weaviate_url:
        where = f"Weaviate at {settings.weaviate_url}"
        hint = "check MMRAG_WEAVIATE_URL, or unset it to use the local server"
        return _ready(lambda: _remote_client(settings), where, hint)
    server = local_server(settings)
    state = server.start() if start_local else server.status()
    if not state.running:
        raise WeaviateUnavailableError(
            f"the local Weaviate (127.0.0.1:{state.http_port}) is not running: "
            "start it with `mmrag weaviate start` (or index files)"
        )

    def local() -> Client:
        import weaviate
        from weaviate.classes.init import Auth

        return weaviate.connect_to_local(
            host="127.0.0.1",
            port=state.http_port,
            grpc_port=state.grpc_port,
            auth_credentials=Auth.api_key(server.api_key()),
            additional_config=_timeouts(),
            skip_init_checks=True,  # no PyPI version look-up (2 s offline); readiness is checked below
        )

    return _ready(local, f"the local Weaviate on 127.0.0.1:{state.http_port}", "run `mmrag weaviate start`")


def _ready(make: Callable[[], Client], where: str, hint: str) -> Client:
    """The client `make` builds, once it answers ready; else one WeaviateUnavailableError naming `where`."""
    from weaviate.exceptions import WeaviateBaseError

    try:
        client = make()
        ready = client.is_ready()
    except WeaviateBaseError as e:
        raise WeaviateUnavailableError(f"cannot reach {where}: {first_line(e)}; {hint}") from e
    if not ready:
        client.close()
        raise WeaviateUnavailableError(f"cannot reach {where}; {hint}")
    return client


def _timeouts() -> AdditionalConfig:
    from weaviate.classes.init import AdditionalConfig, Timeout

    return AdditionalConfig(timeout=Timeout(init=5, query=60, insert=120))


def _remote_client(settings: Settings) -> Client:
    import weaviate
    from weaviate.classes.init import Auth

    url = urlparse(settings.weaviate_url or "")
    if url.scheme not in ("http", "https") or not url.hostname:
        raise ConfigError(f"MMRAG_WEAVIATE_URL must look like http://host:8080, got {settings.weaviate_url!r}")
    secure = url.scheme == "https"
    grpc = urlparse(settings.weaviate_grpc_url) if settings.weaviate_grpc_url else None
    auth = Auth.api_key(settings.weaviate_api_key.get_secret_value()) if settings.weaviate_api_key else None
    return weaviate.connect_to_custom(
        http_host=url.hostname,
        http_port=url.port or (443 if secure else 80),
        http_secure=secure,
        grpc_host=(grpc.hostname if grpc and grpc.hostname else url.hostname),
        grpc_port=(grpc.port if grpc and grpc.port else 50051),
        grpc_secure=(grpc.scheme == "https" if grpc else secure),
        auth_credentials=auth,
        additional_config=_timeouts(),
        skip_init_checks=True,
    )


def connection_errors() -> tuple[type[Exception], ...]:
    """Weaviate's own errors for a server that cannot be reached (the store turns them into
    WeaviateUnavailableError; these are for code that holds a client outside it). Also `CONNECTION_ERRORS`."""
    from weaviate.exceptions import (
        WeaviateClosedClientError,
        WeaviateConnectionError,
        WeaviateGRPCUnavailableError,
        WeaviateTimeoutError,
    )

    return (WeaviateConnectionError, WeaviateTimeoutError, WeaviateGRPCUnavailableError, WeaviateClosedClientError)


@contextmanager
def quick_grpc_retries() -> Iterator[None]:
    """weaviate-client retries every gRPC query that a stopped server refuses (UNAVAILABLE) with a backoff of
    1 + 2 + 4 + 8 + 16 + 32 s and has no setting for it (weaviate/retry.py), so a batch on a dead server would wait
    a minute per row. Inside this block, a query is tried twice (3 s in all)."""
    from weaviate import retry
    from weaviate.connect import v4

    original = getattr(v4, "_Retry", None)
    if original is None:  # another client version: its own retries apply (slower to stop, nothing lost)
        yield
        return

    class QuickRetry(retry._Retry):
        def __init__(self, n: float = 4) -> None:
            super().__init__(0)  # whatever the caller asked for

    v4._Retry = QuickRetry  # type: ignore[misc]
    try:
        yield
    finally:
        v4._Retry = original  # type: ignore[misc]
