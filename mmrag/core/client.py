"""The one way library code gets a Weaviate client."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlparse

import weaviate
from weaviate.classes.init import AdditionalConfig, Auth, Timeout
from weaviate.exceptions import (
    WeaviateBaseError,
    WeaviateClosedClientError,
    WeaviateConnectionError,
    WeaviateGRPCUnavailableError,
    WeaviateTimeoutError,
)

from mmrag.core.errors import ConfigError, WeaviateUnavailableError, first_line
from mmrag.core.server import LocalWeaviate, binary_path
from mmrag.core.settings import Settings

_TIMEOUT = AdditionalConfig(timeout=Timeout(init=5, query=60, insert=120))

Client = weaviate.WeaviateClient
"""A connected client, as `connect` returns it: callers hand it to `indexer.store.Store`, which alone queries."""


def local_server(settings: Settings) -> LocalWeaviate:
    return LocalWeaviate(
        binary=binary_path(settings.cache_dir),
        data_dir=settings.data_dir,
        http_port=settings.weaviate_http_port,
        grpc_port=settings.weaviate_grpc_port,
    )


def connect(settings: Settings, *, start_local: bool = True) -> Client:
    """A connected client: MMRAG_WEAVIATE_URL when set, else the local server (started on demand)."""
    if settings.weaviate_url:
        where = f"Weaviate at {settings.weaviate_url}"
        hint = "check MMRAG_WEAVIATE_URL, or unset it to use the local server"
    else:
        server = local_server(settings)
        state = server.start() if start_local else server.status()
        where = f"the local Weaviate on 127.0.0.1:{state.http_port}"
        hint = "run `mmrag weaviate start`"
    try:
        if settings.weaviate_url:
            client = _remote_client(settings)
        else:
            client = weaviate.connect_to_local(
                host="127.0.0.1",
                port=state.http_port,
                grpc_port=state.grpc_port,
                auth_credentials=Auth.api_key(server.api_key()),
                additional_config=_TIMEOUT,
                skip_init_checks=True,  # no PyPI version look-up (2 s offline); readiness is checked below
            )
        ready = client.is_ready()
    except WeaviateBaseError as e:
        raise WeaviateUnavailableError(f"cannot reach {where}: {first_line(e)}; {hint}") from e
    if not ready:
        client.close()
        raise WeaviateUnavailableError(f"cannot reach {where}; {hint}")
    return client


def _remote_client(settings: Settings) -> weaviate.WeaviateClient:
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
        additional_config=_TIMEOUT,
        skip_init_checks=True,
    )


CONNECTION_ERRORS: tuple[type[Exception], ...] = (
    WeaviateConnectionError,
    WeaviateTimeoutError,
    WeaviateGRPCUnavailableError,
    WeaviateClosedClientError,
)
"""Weaviate's own errors for a server that cannot be reached (the store turns them into WeaviateUnavailableError;
these are for code that holds a client outside it)."""


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
