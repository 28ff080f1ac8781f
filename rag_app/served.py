"""Answers from an OpenAI-compatible inference server: vLLM, SGLang, TGI or `transformers serve`.

The request is the local backend's prompt (the same chat template input: the images first, as PNG data URLs so the
server sees the very pixels the local model would, then the text), sent greedily (temperature 0) through LangChain's
`ChatOpenAI`: token streaming, LLM callbacks with the server's token counts, timeouts, and retries with exponential
backoff on 429, 5xx and lost connections (the openai client's own). Requests run concurrently, at most
`concurrency` at once from this process, so UI sessions, API requests and batch rows share the server's batching.

Adapters are served models: vLLM's ``--lora-modules charts=/adapters/charts`` serves the LoRA ``charts`` beside its
base. `--adapter charts=SOURCE` answers with ``charts`` after checking the adapter's manifest at SOURCE (a dir or
``s3://bucket/prefix``) against the server's base model, as the server's model list gives it where it says (vLLM
lists each LoRA with its ``parent``; else the base is MMRAG_VLM_MODEL). A bare `--adapter charts` is taken as a
served name: it must be listed, and a manifest is checked when the list's ``root`` for it is a readable dir.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mmrag.core.adapters import S3_SCHEME, AdapterError, check_adapter, resolve_adapter
from mmrag.core.errors import ConfigError, MmragError, ServerUnavailableError, first_line, one_line
from mmrag.rag_app.chat_model import message_text, request_messages
from mmrag.rag_app.generation import Completion, GenerationRequest, Generator, Usage, max_images, stripped

if TYPE_CHECKING:
    from langchain_core.language_models import BaseChatModel
    from langchain_core.messages import BaseMessage
    from langchain_openai import ChatOpenAI

    from mmrag.core.settings import Settings


class GenerationError(MmragError):
    """The server refused or failed one request for a reason of its own (not a lost connection or a busy server)."""


@dataclass(frozen=True)
class ServedModel:
    """One entry of the server's model list (`GET /v1/models`)."""

    id: str
    root: str | None = None
    """The weights it serves (vLLM: the base's id or dir, or the LoRA's dir)."""
    parent: str | None = None
    """The served base of a LoRA (vLLM); None for a base model."""


class ServerGenerator(Generator):
    """Answers from the model `model` served at `url` (an OpenAI-compatible ``.../v1`` base URL)."""

    concurrent = True

    def __init__(
        self,
        url: str,
        model: str,
        *,
        base_model: str,
        cache_dir: Path,
        api_key: str | None = None,
        timeout_s: float = 120,
        retries: int = 3,
        concurrency: int = 8,
        max_new_tokens: int = 128,
        max_images: int | None = None,
    ) -> None:
        """Cheap: nothing connects until the first request (or `check`). `base_model` is the base the server runs
        when its model list does not say (adapter manifests are checked against it)."""
        if max_new_tokens < 1:
            raise ConfigError(f"max_new_tokens must be at least 1, got {max_new_tokens}")
        if not url.startswith(("http://", "https://")):
            raise ConfigError(f"MMRAG_GENERATOR_URL must be an http(s) URL, got {url!r}")
        self.url = url.rstrip("/")
        self.model_id = model
        self.base_model = base_model
        self.max_new_tokens = max_new_tokens
        self.concurrency = concurrency
        self._api_key = api_key
        self._timeout_s = timeout_s
        self._retries = retries
        self._cache_dir = cache_dir
        self._max_images = max_images
        self._slots = threading.BoundedSemaphore(concurrency)
        self._lock = threading.Lock()  # the adapters' served names and the chat models
        self._list_lock = threading.Lock()
        self._chats: dict[str, ChatOpenAI] = {}
        self._served: dict[str, str] = {}  # adapter spec -> served model name
        self._listed: list[ServedModel] | None = None
        self._list_read = False

    @classmethod
    def from_settings(cls, settings: Settings, *, model_id: str | None = None) -> ServerGenerator:
        """The server and model the settings name (MMRAG_GENERATOR_URL, MMRAG_GENERATOR_MODEL); cheap."""
        from mmrag.core.models import resolve_models

        if settings.generator_url is None:
            raise ConfigError("MMRAG_GENERATOR_URL is not set: the openai generator backend needs the server's URL")
        base = resolve_models(settings).vlm_model
        key = settings.generator_api_key
        return cls(
            settings.generator_url,
            model_id or settings.generator_model or base,
            base_model=base,
            cache_dir=settings.cache_dir,
            api_key=key.get_secret_value() if key is not None else None,
            timeout_s=settings.generator_timeout_s,
            retries=settings.generator_retries,
            concurrency=settings.generator_concurrency,
            max_new_tokens=settings.max_new_tokens,
            max_images=settings.generator_max_images,
        )

    @property
    def max_images(self) -> int:
        """The setting, else what the served base model's config says (the server's model list names it, else
        MMRAG_VLM_MODEL) when it is readable here (a local dir or the Hugging Face cache), else 1: a single-image
        server (LLaVA-1.5 on vLLM) refuses more."""
        if self._max_images is None:
            served = self._served_base(None, {m.id: m for m in self._models() or []})
            self._max_images = _config_max_images(served)
        return self._max_images

    # -- generation

    def complete(self, request: GenerationRequest) -> Completion:
        request = request.limited(self.max_images)
        chat = self._chat(request.adapter)
        with self._slots, _Errors(self.url, chat.model_name):
            message = chat.invoke(request_messages(request), **self._call(request))
        usage = Usage.from_metadata(getattr(message, "usage_metadata", None))
        return Completion(message_text(message.content).strip(), usage)

    def stream(self, request: GenerationRequest, usage: Usage | None = None) -> Iterator[str]:
        request = request.limited(self.max_images)
        chat = self._chat(request.adapter)
        with self._slots, _Errors(self.url, chat.model_name):
            pieces = chat.stream(request_messages(request), **self._call(request))
            try:
                yield from stripped(self._texts(pieces, usage))
            finally:
                close = getattr(pieces, "close", None)
                if close is not None:
                    close()  # closing the HTTP stream tells the server to stop decoding

    def complete_batch(self, requests: Sequence[GenerationRequest]) -> list[Completion]:
        """Answers in order, `concurrency` requests at once."""
        if len(requests) <= 1:
            return [self.complete(r) for r in requests]
        with ThreadPoolExecutor(min(self.concurrency, len(requests)), thread_name_prefix="mmrag-served") as pool:
            return list(pool.map(self.complete, requests))

    def chat_model(self, adapter: str | None = None) -> BaseChatModel:
        """LangChain's ChatOpenAI on the served model for `adapter` (greedy, this generator's answer length)."""
        return self._chat(adapter)

    # -- the server's models

    def check(self) -> None:
        """One clear error when the server is down (ServerUnavailableError) or does not serve the base model
        (ConfigError); a server whose model list cannot be read (`transformers serve` lists only its cache) is
        trusted until the first answer."""
        models = self._models(required=True)
        if models is not None and self.model_id not in {m.id for m in models}:
            raise ConfigError(
                f"the server at {self.url} does not serve {self.model_id!r} (it serves {_names(models)}): set "
                "MMRAG_GENERATOR_MODEL to one of them"
            )

    def resolve_adapter(self, source: str) -> str:
        """The served model name that answers with adapter `source` (see the module docstring), checked once."""
        with self._lock:
            if source in self._served:
                return self._served[source]
        name = self._resolve(source)  # outside the lock: it may read the model list and S3
        with self._lock:
            return self._served.setdefault(source, name)

    def _resolve(self, spec: str) -> str:
        name, _, source = spec.partition("=")
        name, source = name.strip(), source.strip()
        if not source:  # a bare name: a served name, or a dir / S3 URI whose served name the list gives
            source = name if _is_source(name) else ""
            name = "" if source else name
        models = self._models()
        listed = {m.id: m for m in models or []}
        if not name:
            name = next((m.id for m in listed.values() if m.root and _same(m.root, source)), "")
            if not name:
                raise AdapterError(
                    f"which served model is the adapter {source}? Name it: --adapter NAME={source} (vLLM: "
                    f"--lora-modules NAME={source})"
                )
        if models is not None and name not in listed:
            raise AdapterError(
                f"the server at {self.url} does not serve the adapter {name!r} (it serves {_names(models)})"
            )
        entry = listed.get(name)
        base = self._served_base(entry, listed)
        if source:
            resolve_adapter(source, base, self._cache_dir)  # the manifest names the server's base
        elif entry is not None and entry.root and Path(entry.root).is_dir():
            check_adapter(Path(entry.root), base, name)
        return name

    def _served_base(self, entry: ServedModel | None, listed: dict[str, ServedModel]) -> str:
        """The base model the server runs the adapter on: the list's parent (its root when the parent is listed
        too), else the base this generator was configured with."""
        if entry is not None and entry.parent:
            parent = listed.get(entry.parent)
            return parent.root if parent is not None and parent.root else entry.parent
        base = listed.get(self.model_id)
        return base.root if base is not None and base.root else self.base_model

    def _models(self, *, required: bool = False) -> list[ServedModel] | None:
        """The server's model list, read once; None when the server does not give one (an error status or an
        odd body). With `required`, a server that cannot be reached is a ServerUnavailableError."""
        import httpx

        with self._list_lock:
            if self._list_read:
                return self._listed
            headers = {"Authorization": f"Bearer {self._api_key}"} if self._api_key else {}
            try:
                response = httpx.get(f"{self.url}/models", headers=headers, timeout=min(self._timeout_s, 10))
            except httpx.HTTPError as e:
                if required:
                    raise ServerUnavailableError(
                        f"cannot reach the answer server at {self.url}: {first_line(e)}"
                    ) from e
                return None
            if response.status_code in (401, 403):
                raise ConfigError(f"the answer server at {self.url} refused the key (MMRAG_GENERATOR_API_KEY)")
            self._listed, self._list_read = _model_list(response), True
            return self._listed

    # -- helpers

    def _chat(self, adapter: str | None) -> ChatOpenAI:
        name = self.model_id if adapter is None else self.resolve_adapter(adapter)
        with self._lock:
            if name not in self._chats:
                from langchain_openai import ChatOpenAI
                from pydantic import SecretStr

                self._chats[name] = ChatOpenAI(
                    model=name,
                    base_url=self.url,
                    api_key=SecretStr(self._api_key or "EMPTY"),  # most local servers want no key
                    timeout=self._timeout_s,
                    max_retries=self._retries,
                    temperature=0,  # greedy, as the local backend
                    max_tokens=self.max_new_tokens,
                    stream_usage=True,
                    use_responses_api=False,
                )
            return self._chats[name]

    def _call(self, request: GenerationRequest) -> dict[str, Any]:
        return {"max_tokens": request.max_new_tokens} if request.max_new_tokens is not None else {}

    @staticmethod
    def _texts(chunks: Iterator[BaseMessage], usage: Usage | None) -> Iterator[str]:
        for chunk in chunks:
            if usage is not None and getattr(chunk, "usage_metadata", None):
                counts = Usage.from_metadata(chunk.usage_metadata)  # type: ignore[attr-defined]
                usage.prompt_tokens, usage.completion_tokens = counts.prompt_tokens, counts.completion_tokens
            text = message_text(chunk.content)
            if text:
                yield text


class _Errors:
    """Turns the openai client's errors (after its retries) into mmrag's one-line errors."""

    def __init__(self, url: str, model: str) -> None:
        self.url, self.model = url, model

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: object) -> None:
        import openai

        if error is None or not isinstance(error, openai.OpenAIError):
            return
        detail = one_line(_message(error), 300)
        if isinstance(error, openai.APITimeoutError):
            raise ServerUnavailableError(f"the answer server at {self.url} did not answer in time") from error
        if isinstance(error, openai.APIConnectionError):
            raise ServerUnavailableError(f"cannot reach the answer server at {self.url}: {detail}") from error
        if isinstance(error, (openai.RateLimitError, openai.InternalServerError)):
            status = error.status_code
            raise ServerUnavailableError(
                f"the answer server at {self.url} is busy or failing ({status}): {detail}"
            ) from error
        if isinstance(error, (openai.AuthenticationError, openai.PermissionDeniedError)):
            raise ConfigError(f"the answer server at {self.url} refused the key (MMRAG_GENERATOR_API_KEY)") from error
        if isinstance(error, openai.NotFoundError) or (
            isinstance(error, openai.BadRequestError) and self.model in detail  # transformers serve: "pinned to"
        ):
            raise ConfigError(f"the answer server at {self.url} does not serve {self.model!r}: {detail}") from error
        raise GenerationError(f"the answer server at {self.url} refused the request: {detail}") from error


def _message(error: BaseException) -> str:
    body = getattr(error, "body", None)
    if isinstance(body, dict):
        inner = body.get("error", body)
        message = inner.get("message") if isinstance(inner, dict) else inner
        detail = body.get("detail")
        return str(message or detail or error)
    return str(error)


def _model_list(response: Any) -> list[ServedModel] | None:
    """The served models, when the list says what is served: vLLM and SGLang give each entry the weights it serves
    (`root`). `transformers serve` lists its hub cache instead (not the model it was started with), and TGI its one
    model without a root: such a list says nothing here (None)."""
    if response.status_code != 200:
        return None
    try:
        data = response.json()["data"]
        if not any("root" in m for m in data):
            return None
        return [ServedModel(str(m["id"]), m.get("root"), m.get("parent")) for m in data]
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


def _names(models: list[ServedModel]) -> str:
    return ", ".join(repr(m.id) for m in models[:10]) or "nothing"


def _is_source(spec: str) -> bool:
    return spec.startswith(S3_SCHEME) or Path(spec).expanduser().is_dir()


def _same(root: str, source: str) -> bool:
    if root == source:
        return True
    a, b = Path(root).expanduser(), Path(source).expanduser()
    return a.exists() and b.exists() and a.resolve() == b.resolve()


def _config_max_images(model_id: str) -> int:
    """Images per prompt by the model's `config.model_type`, when its config can be read without the network."""
    try:
        from transformers import AutoConfig

        config = AutoConfig.from_pretrained(model_id, local_files_only=True)
    except (OSError, ValueError):
        return 1
    return max_images(config.model_type)
