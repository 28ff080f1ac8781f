"""The local VLM as a LangChain chat model: token streaming through runnables and LLM events (with token counts) to
callbacks, as the server backend's ChatOpenAI gives them.

It takes what ChatOpenAI takes: one user turn whose content is image parts (``data:image/...;base64,`` URLs; nothing
is fetched) and text parts; the text is the whole prompt (`request_messages` builds it from a `GenerationRequest`,
so both backends read the same messages).
"""

from __future__ import annotations

import base64
import binascii
import io
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, HumanMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from pydantic import ConfigDict

from mmrag.rag_app.generation import GenerationRequest, Generator, Usage

if TYPE_CHECKING:
    from PIL import Image

DATA_URL_PREFIX = "data:image/"
MAX_IMAGE_BYTES = 32 * 1024 * 1024


class LocalChatModel(BaseChatModel):
    """A generator (`LocalGenerator`; and one of its adapters) behind LangChain's chat model interface; greedy."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    generator: Generator
    adapter: str | None = None
    """The LoRA adapter answers use (a dir or ``s3://bucket/prefix``); None: the base model."""
    max_tokens: int | None = None
    """At most this many new tokens; None: the generator's own limit."""

    @property
    def _llm_type(self) -> str:
        return "mmrag-local-vlm"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"model_name": self.generator.model_id, "adapter": self.adapter, "max_tokens": self.max_tokens}

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        completion = self.generator.complete(self._request(messages, stop, **kwargs))
        usage = completion.usage.as_metadata()
        message = AIMessage(
            content=completion.text, usage_metadata=usage, response_metadata={"model_name": self.generator.model_id}
        )
        llm_output = {"token_usage": _openai_usage(completion.usage), "model_name": self.generator.model_id}
        return ChatResult(generations=[ChatGeneration(message=message)], llm_output=llm_output)

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        usage = Usage()
        pieces = self.generator.stream(self._request(messages, stop, **kwargs), usage)
        try:
            for piece in pieces:
                chunk = ChatGenerationChunk(message=AIMessageChunk(content=piece))
                if run_manager is not None:
                    run_manager.on_llm_new_token(piece, chunk=chunk)
                yield chunk
        finally:
            close = getattr(pieces, "close", None)
            if close is not None:
                close()  # a consumer that stops early stops the decoding
        yield ChatGenerationChunk(
            message=AIMessageChunk(
                content="",
                usage_metadata=usage.as_metadata(),
                response_metadata={"model_name": self.generator.model_id},
            )
        )

    def _request(self, messages: list[BaseMessage], stop: list[str] | None, **kwargs: Any) -> GenerationRequest:
        if stop:
            raise ValueError("stop sequences are not supported by the local VLM")
        max_tokens = kwargs.pop("max_tokens", None) or self.max_tokens
        adapter = kwargs.pop("adapter", self.adapter)
        if kwargs:
            raise ValueError(f"unsupported arguments: {', '.join(sorted(kwargs))}")
        return request_from_messages(messages, adapter=adapter, max_new_tokens=max_tokens)


def request_from_messages(
    messages: list[BaseMessage], *, adapter: str | None = None, max_new_tokens: int | None = None
) -> GenerationRequest:
    """The generation request for one user turn of image and text parts (the images are shown first, as the
    prompt style has them). ValueError for anything else: several turns, remote image URLs, bad data URLs."""
    if len(messages) != 1 or not isinstance(messages[0], HumanMessage):
        raise ValueError("the local VLM answers one user message (the whole prompt, images and text)")
    content = messages[0].content
    parts: list[Any] = [{"type": "text", "text": content}] if isinstance(content, str) else list(content)
    images, texts = [], []
    for part in parts:
        if isinstance(part, str):
            texts.append(part)
        elif part.get("type") == "text":
            texts.append(str(part.get("text", "")))
        elif part.get("type") == "image_url":
            url = part["image_url"]["url"] if isinstance(part.get("image_url"), dict) else part.get("image_url")
            images.append(decode_image(str(url)))
        else:
            raise ValueError(f"unsupported message part {part.get('type')!r}: only text and image_url parts")
    text = "\n".join(texts)
    if not text.strip():
        raise ValueError("the message has no text")
    return GenerationRequest("", tuple(images), instruction=text, adapter=adapter, max_new_tokens=max_new_tokens)


def decode_image(url: str) -> Any:
    """The picture in a ``data:image/...;base64,`` URL (anything else is refused: the local model fetches nothing)."""
    from PIL import Image, UnidentifiedImageError

    if not url.startswith(DATA_URL_PREFIX) or ";base64," not in url:
        raise ValueError("images must be data:image/...;base64, URLs (the local VLM fetches nothing)")
    encoded = url.split(";base64,", 1)[1]
    if len(encoded) * 3 // 4 > MAX_IMAGE_BYTES:
        raise ValueError(f"an image is larger than {MAX_IMAGE_BYTES // 2**20} MB")
    try:
        image = Image.open(io.BytesIO(base64.b64decode(encoded, validate=True)))
        image.load()
    except (binascii.Error, UnidentifiedImageError, OSError, Image.DecompressionBombError) as e:
        raise ValueError(f"an image part is not a readable picture: {e}") from e
    return image.convert("RGB")


def request_messages(request: GenerationRequest) -> list[dict[str, Any]]:
    """The request as OpenAI chat messages: one user turn, the images first (PNG data URLs), then the text, the
    shape of `mmrag.core.prompts.messages` that the local backend gives its chat template."""
    content: list[dict[str, Any]] = [{"type": "image_url", "image_url": {"url": image_url(i)}} for i in request.images]
    content.append({"type": "text", "text": request.prompt_text})
    return [{"role": "user", "content": content}]


def image_url(image: Image.Image) -> str:
    """The image as a lossless PNG data URL (RGB, as the local backend feeds its processor)."""
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def message_text(content: str | list[Any]) -> str:
    """A message's text: its content, or the text parts of a content list."""
    if isinstance(content, str):
        return content
    return "".join(part.get("text", "") for part in content if isinstance(part, dict))


def _openai_usage(usage: Usage) -> dict[str, int]:
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.prompt_tokens + usage.completion_tokens,
    }
