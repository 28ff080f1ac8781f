"""The pieces of the server that outlive one request: one Weaviate client, the encoders and the VLM.

Each loads on first use, once per process (a lock keeps two first requests from loading twice); a request builds a
cheap `RagChain` over them, as the UI does. Requests run in FastAPI's thread pool: the local generator serialises
generation itself (its own lock), so searches run concurrently while one answer is being generated; a server backend
(MMRAG_GENERATOR_BACKEND=openai) answers up to MMRAG_GENERATOR_CONCURRENCY requests at once.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from pydantic import ValidationError

from mmrag.core.errors import ConfigError
from mmrag.core.settings import Settings

if TYPE_CHECKING:
    from mmrag.core.client import Client
    from mmrag.indexer.embedders import ImageEncoder, TextEncoder
    from mmrag.rag_app.chain import RagChain
    from mmrag.rag_app.generator import Generator


class Resources:
    """What the server holds for its lifetime; `retrieval_only` servers never load the VLM."""

    def __init__(self, settings: Settings, *, retrieval_only: bool = False) -> None:
        self.settings = settings
        self.retrieval_only = retrieval_only
        self._lock = threading.Lock()
        self._client: Client | None = None
        self._embedders: tuple[ImageEncoder, TextEncoder] | None = None
        self._generator: Generator | None = None

    def client(self) -> Client:
        """The Weaviate client; the local server is started when it is not running (the API writes: uploads)."""
        with self._lock:
            if self._client is None:
                from mmrag.core.client import connect

                self._client = connect(self.settings, start_local=True)
            return self._client

    def embedders(self) -> tuple[ImageEncoder, TextEncoder]:
        with self._lock:
            if self._embedders is None:
                from mmrag.indexer.embedders import embedders_for

                self._embedders = embedders_for(self.settings)
            return self._embedders

    def generator(self) -> Generator | None:
        """The VLM (it loads its weights on first generation); None on a retrieval-only server."""
        if self.retrieval_only:
            return None
        with self._lock:
            if self._generator is None:
                from mmrag.rag_app.service import make_generator

                self._generator = make_generator(self.settings)
            return self._generator

    def chain(self, settings: Settings, *, retrieval_only: bool = False) -> RagChain:
        """A chain over `settings`' collection (checked to exist) on the long-lived pieces."""
        from mmrag.rag_app.service import build_chain

        clip, text = self.embedders()
        generator = None if retrieval_only else self.generator()
        return build_chain(settings, self.client(), clip, text, generator)

    def weaviate_ready(self) -> bool:
        """Whether Weaviate answers (connecting, and starting the local server, if nothing has yet)."""
        try:
            return bool(self.client().is_ready())
        except Exception:  # an MmragError, or the client's own error for a server that went away
            return False

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None


def with_overrides(settings: Settings, **values: object) -> Settings:
    """`settings` with a request's own values (None: the server's), each checked as Settings checks it."""
    given = {name: value for name, value in values.items() if value is not None}
    if not given:
        return settings
    try:
        return Settings.model_validate(settings.model_dump() | given)
    except ValidationError as e:
        problems = "; ".join(f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in e.errors())
        raise ConfigError(f"invalid value: {problems}") from e
