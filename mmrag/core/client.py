"""The one way library code gets a Weaviate client.

Only writers start the local server (`connect(settings, start_local=True)`: indexing, `mmrag weaviate start`, the
demo, the UI and the REST API, which index uploads); a reader finds it down and says so, starting nothing. The
weaviate package (over a second to import) loads on the first connect, not with this module, so a command that ends
before connecting (a server that is down, `--help`) never pays for it.

A cluster: MMRAG_WEAVIATE_URL lists its nodes (comma-separated), or a local cluster (`mmrag weaviate start --nodes
3`) lists them in its state file; connect tries them in order and uses the first that answers ready.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from mmrag.core.cluster import LocalCluster
from mmrag.core.errors import ConfigError, WeaviateUnavailableError, first_line
from mmrag.core.server import LocalWeaviate, ServerState, binary_path
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


def local_cluster(settings: Settings) -> LocalCluster:
    return LocalCluster(binary_path(settings.cache_dir), settings.data_dir)


def connect(settings: Settings, *, start_local: bool = False) -> Client:
    """A connected client: MMRAG_WEAVIATE_URL when set (the first of its URLs that is ready), else the local
    cluster when one was created in the data dir (its first ready node), else the local server.

    The local server (or cluster) is started (if down) only with `start_local`; without it a server that is down is
    a WeaviateUnavailableError, and nothing is started or written (no pid file, no API key)."""
    if settings.weaviate_url:
        hint = "check MMRAG_WEAVIATE_URL, or unset it to use the local server"
        makers = [(f"Weaviate at {url}", _remote(settings, url, grpc)) for url, grpc in _remote_urls(settings)]
        return _first_ready(makers, hint)
    cluster = local_cluster(settings)
    if cluster.exists():
        states = cluster.start() if start_local else cluster.status()
        running = [(node, state) for node, state in zip(cluster.nodes(), states, strict=True) if state.running]
        if not running:
            raise WeaviateUnavailableError(
                f"the local Weaviate cluster ({len(states)} nodes, {cluster.root}) is not running: "
                "start it with `mmrag weaviate start` (or index files)"
            )
        makers = [(f"the local Weaviate on 127.0.0.1:{s.http_port}", _local(n, s)) for n, s in running]
        return _first_ready(makers, "run `mmrag weaviate start`")
    server = local_server(settings)
    state = server.start() if start_local else server.status()
    if not state.running:
        raise WeaviateUnavailableError(
            f"the local Weaviate (127.0.0.1:{state.http_port}) is not running: "
            "start it with `mmrag weaviate start` (or index files)"
        )
    return _ready(
        _local(server, state), f"the local Weaviate on 127.0.0.1:{state.http_port}", "run `mmrag weaviate start`"
    )


def _local(server: LocalWeaviate, state: ServerState) -> Callable[[], Client]:
    def make() -> Client:
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

    return make


def _first_ready(makers: list[tuple[str, Callable[[], Client]]], hint: str) -> Client:
    """The first client of `makers` (where, make) that answers ready; else one error naming every one tried."""
    if len(makers) == 1:
        return _ready(makers[0][1], makers[0][0], hint)
    failures = []
    for where, make in makers:
        try:
            return _ready(make, where, hint)
        except WeaviateUnavailableError as e:
            failures.append(str(e).removeprefix("cannot reach ").removesuffix(f"; {hint}"))
    raise WeaviateUnavailableError(f"no Weaviate node is ready ({'; '.join(failures)}); {hint}")


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


def _remote_urls(settings: Settings) -> list[tuple[str, str | None]]:
    """(HTTP URL, gRPC URL or None) of each node MMRAG_WEAVIATE_URL lists; MMRAG_WEAVIATE_GRPC_URL lists one for
    all, or one per node."""
    urls = [u.strip() for u in (settings.weaviate_url or "").split(",") if u.strip()]
    grpcs = [u.strip() for u in (settings.weaviate_grpc_url or "").split(",") if u.strip()]
    if len(grpcs) > 1 and len(grpcs) != len(urls):
        raise ConfigError(
            f"MMRAG_WEAVIATE_GRPC_URL lists {len(grpcs)} URLs for the {len(urls)} of MMRAG_WEAVIATE_URL: "
            "give one for all, or one per node"
        )
    return [(url, grpcs[i] if len(grpcs) > 1 else (grpcs[0] if grpcs else None)) for i, url in enumerate(urls)]


def _remote(settings: Settings, url: str, grpc_url: str | None) -> Callable[[], Client]:
    return lambda: _remote_client(settings, url, grpc_url)


def _remote_client(settings: Settings, http_url: str, grpc_url: str | None) -> Client:
    import weaviate
    from weaviate.classes.init import Auth

    url = urlparse(http_url)
    if url.scheme not in ("http", "https") or not url.hostname:
        raise ConfigError(f"MMRAG_WEAVIATE_URL must look like http://host:8080, got {http_url!r}")
    secure = url.scheme == "https"
    grpc = urlparse(grpc_url) if grpc_url else None
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
