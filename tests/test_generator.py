"""The generator on the tiny checkpoints (CPU): images per model, streaming, batching, adapters per request."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import torch
from PIL import Image

from mmrag.core import tiny
from mmrag.core.adapters import AdapterError, s3_cache_dir
from mmrag.core.errors import ConfigError
from mmrag.core.models import load_vlm
from mmrag.core.prompts import ContextItem
from mmrag.rag_app import generator as generator_module
from mmrag.rag_app.generator import GenerationRequest, Generator, LocalGenerator
from tests.helpers import CACHE_DIR, make_adapter

pytestmark = [
    pytest.mark.slow,  # generation with the tiny VLMs, adapters loaded and swapped
    pytest.mark.filterwarnings("ignore:`is_gradient_checkpointing` is deprecated:FutureWarning"),  # peft
]

FAMILIES = ["llava", "llava_onevision"]
TOKENS_PER_IMAGE = {
    "llava": (tiny.IMAGE_SIZE // tiny.PATCH_SIZE) ** 2,  # CLS token dropped ("default" strategy)
    "llava_onevision": (tiny.IMAGE_SIZE // tiny.PATCH_SIZE) ** 2 + 1,  # one newline token per image of several
}


def model_dir(family: str) -> str:
    tiny.ensure_tiny_models(CACHE_DIR)
    return str(tiny.tiny_vlm_dir(CACHE_DIR, family))


def chart(seed: int) -> Image.Image:
    pixels = torch.randint(0, 256, (40, 56, 3), generator=torch.Generator().manual_seed(seed), dtype=torch.uint8)
    return Image.fromarray(pixels.numpy())


def request(n_images: int, question: str = "What is the largest bar?", n_texts: int = 1) -> GenerationRequest:
    visual = [ContextItem(n=i + 1, kind="image", label=f"chart{i + 1}.png") for i in range(n_images)]
    texts = [
        ContextItem(n=n_images + i + 1, kind="text", label=f"report.pdf p.{i + 2}", text=f"Revenue grew {i + 3}%.")
        for i in range(n_texts)
    ]
    return GenerationRequest(question, images=[chart(i) for i in range(n_images)], sources=visual + texts)


@pytest.fixture(scope="module", params=FAMILIES)
def family_generator(request: pytest.FixtureRequest) -> tuple[str, Generator]:
    return request.param, LocalGenerator(model_dir(request.param), "cpu", cache_dir=CACHE_DIR, max_new_tokens=12)


@pytest.fixture
def processor_calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[dict[str, Any], Any]]:
    """What reaches the tiny models' processors: (keyword arguments, output) per call."""
    from transformers import LlavaOnevisionProcessor, LlavaProcessor

    calls: list[tuple[dict[str, Any], Any]] = []
    for cls in (LlavaProcessor, LlavaOnevisionProcessor):
        original = cls.__call__

        def spy(self: Any, *args: Any, _original: Callable[..., Any] = original, **kwargs: Any) -> Any:
            output = _original(self, *args, **kwargs)
            calls.append((kwargs, output))
            return output

        monkeypatch.setattr(cls, "__call__", spy)
    return calls


def image_tokens(generator_dir: str, output: Any) -> int:
    from transformers import AutoConfig

    image_token_id = AutoConfig.from_pretrained(generator_dir).image_token_id
    return int((output["input_ids"] == image_token_id).sum())


def test_single_image_model_gets_only_the_best_image(processor_calls: list[tuple[dict[str, Any], Any]]) -> None:
    generator = LocalGenerator(model_dir("llava"), "cpu", cache_dir=CACHE_DIR, max_new_tokens=4)
    assert generator.max_images == 1

    generator.generate(request(n_images=3))

    (kwargs, output), *_ = processor_calls
    assert [len(images) for images in kwargs["images"]] == [1]
    assert kwargs["images"][0][0].tobytes() == chart(0).convert("RGB").tobytes()  # the first (best) one
    assert image_tokens(model_dir("llava"), output) == TOKENS_PER_IMAGE["llava"]
    prompt = kwargs["text"][0]
    assert "[1] (image) chart1.png" in prompt
    assert "chart2.png" not in prompt and "chart3.png" not in prompt  # sources not shown are not offered
    assert "[4] report.pdf p.2: Revenue grew 3%." in prompt  # numbers stay those of the retriever


@pytest.mark.parametrize(("n_images", "expected"), [(2, 2), (6, 4)])
def test_multi_image_model_gets_up_to_max_images(
    processor_calls: list[tuple[dict[str, Any], Any]], n_images: int, expected: int
) -> None:
    generator = LocalGenerator(model_dir("llava_onevision"), "cpu", cache_dir=CACHE_DIR, max_new_tokens=4)
    assert generator.max_images == 4

    generator.generate(request(n_images))

    (kwargs, output), *_ = processor_calls
    assert [len(images) for images in kwargs["images"]] == [expected]
    assert image_tokens(model_dir("llava_onevision"), output) == expected * TOKENS_PER_IMAGE["llava_onevision"]


def test_text_only_request_passes_no_images(processor_calls: list[tuple[dict[str, Any], Any]]) -> None:
    generator = LocalGenerator(model_dir("llava"), "cpu", cache_dir=CACHE_DIR, max_new_tokens=4)
    generator.generate(request(n_images=0, n_texts=2))
    (kwargs, _), *_ = processor_calls
    assert kwargs["images"] is None


def test_images_must_match_image_sources() -> None:
    with pytest.raises(ValueError, match="2 images but 1 image/page sources"):
        GenerationRequest("q", images=[chart(0), chart(1)], sources=[ContextItem(1, "image", "a.png")])


def test_stream_concatenates_to_the_generated_answer(family_generator: tuple[str, Generator]) -> None:
    _, generator = family_generator
    for n_images in (0, 1, 2):
        answer = generator.generate(request(n_images))
        pieces = list(generator.stream(request(n_images)))
        assert answer and "".join(pieces) == answer
        assert all(pieces)


def test_stream_closed_early_stops_cleanly(family_generator: tuple[str, Generator]) -> None:
    _, generator = family_generator
    stream = generator.stream(request(1))
    next(stream)
    stream.close()
    assert generator.generate(request(1)) == "".join(generator.stream(request(1)))  # the model is free again


def test_batch_equals_one_by_one(family_generator: tuple[str, Generator]) -> None:
    _, generator = family_generator
    requests = [request(1, "Which quarter?"), request(2, "What was the revenue in 2024 in dollars?"), request(0)]
    requests.append(request(1, "Largest value?", n_texts=3))
    assert generator.generate_batch(requests) == [generator.generate(r) for r in requests]
    assert generator.generate_batch([]) == []


def test_answers_are_deterministic(family_generator: tuple[str, Generator]) -> None:
    family, generator = family_generator
    fresh = LocalGenerator(model_dir(family), "cpu", cache_dir=CACHE_DIR, max_new_tokens=12)
    assert generator.generate(request(1)) == generator.generate(request(1)) == fresh.generate(request(1))


def test_max_new_tokens_is_checked() -> None:
    with pytest.raises(ConfigError, match="max_new_tokens must be at least 1"):
        LocalGenerator(model_dir("llava"), "cpu", cache_dir=CACHE_DIR, max_new_tokens=0)


# Adapters


@pytest.fixture(scope="module")
def adapters(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("adapters")
    base = model_dir("llava_onevision")
    return {
        "a": make_adapter(root / "a", base, seed=1),
        "b": make_adapter(root / "b", base, seed=2),
        "other_base": make_adapter(root / "other", base, seed=3, base_model=model_dir("llava")),
        "other_style": make_adapter(root / "style", base, seed=4, style="some-other-style"),
    }


@pytest.fixture
def load_count(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The model ids the generator loads (through the real loader)."""
    loads: list[str] = []

    def counting_load_vlm(model_id: str, device: str, *, four_bit: bool = False) -> tuple[Any, Any]:
        loads.append(model_id)
        return load_vlm(model_id, device, four_bit=four_bit)

    monkeypatch.setattr(generator_module, "load_vlm", counting_load_vlm)
    return loads


def asking(adapter: str | None, base: GenerationRequest | None = None) -> GenerationRequest:
    """`base` (default: a one-chart request) answered with `adapter` (None: the base model alone)."""
    return replace(base if base is not None else request(1), adapter=adapter)


def test_adapters_change_answers_and_swap_without_reloading(adapters: dict[str, str], load_count: list[str]) -> None:
    generator = LocalGenerator(model_dir("llava_onevision"), "cpu", cache_dir=CACHE_DIR, max_new_tokens=12)
    questions = [request(1), request(0, "How much did revenue grow?")]
    base = generator.generate_batch(questions)

    with_a = generator.generate_batch([asking(adapters["a"], q) for q in questions])
    with_b = generator.generate_batch([asking(adapters["b"], q) for q in questions])
    again_base = generator.generate_batch(questions)

    assert with_a != base and with_b != base and with_a != with_b
    assert again_base == base  # exactly the base model again
    assert generator.generate_batch([asking(adapters["a"], q) for q in questions]) == with_a  # and back to a
    assert "".join(generator.stream(asking(adapters["a"], questions[0]))) == with_a[0]
    assert load_count == [model_dir("llava_onevision")]  # the base loaded once, on first use


def test_one_batch_mixes_adapters_and_each_request_gets_its_own(adapters: dict[str, str]) -> None:
    generator = LocalGenerator(model_dir("llava_onevision"), "cpu", cache_dir=CACHE_DIR, max_new_tokens=12)
    mixed = [asking(adapters["a"]), asking(None), asking(adapters["b"]), asking(adapters["a"], request(0))]
    assert generator.generate_batch(mixed) == [generator.generate(r) for r in mixed]
    assert len(set(generator.generate_batch(mixed[:3]))) == 3


def test_concurrent_requests_answer_with_their_own_adapters(adapters: dict[str, str], load_count: list[str]) -> None:
    """UI sessions share one base; each request names its session's adapter, so a session never answers with
    another's, whatever the others ask for meanwhile."""
    generator = LocalGenerator(model_dir("llava_onevision"), "cpu", cache_dir=CACHE_DIR, max_new_tokens=12)
    sessions = {"a": adapters["a"], "b": adapters["b"], "base": None}
    expected = {key: generator.generate(asking(adapter)) for key, adapter in sessions.items()}
    assert len(set(expected.values())) == 3
    results: dict[str, list[str]] = {key: [] for key in sessions}

    def session(key: str) -> None:
        for round_ in range(3):
            question = asking(sessions[key])
            answer = "".join(generator.stream(question)) if round_ % 2 else generator.generate(question)
            results[key].append(answer)

    threads = [threading.Thread(target=session, args=(key,)) for key in sessions]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == {key: [expected[key]] * 3 for key in sessions}
    assert load_count == [model_dir("llava_onevision")]


def test_an_adapter_is_checked_without_loading_the_model(adapters: dict[str, str], load_count: list[str]) -> None:
    generator = LocalGenerator(model_dir("llava_onevision"), "cpu", cache_dir=CACHE_DIR, max_new_tokens=12)
    assert generator.resolve_adapter(adapters["a"]) == Path(adapters["a"])
    with pytest.raises(AdapterError, match="trained on"):
        generator.resolve_adapter(adapters["other_base"])
    assert load_count == []  # cheap: manifests only


@pytest.mark.parametrize(
    ("key", "message"),
    [
        ("other_base", r"the adapter was trained on '.*llava' but the model in use is '.*llava_onevision'"),
        ("other_style", r"trained with prompt style 'some-other-style' but this version answers with"),
    ],
)
def test_mismatched_adapter_is_refused(adapters: dict[str, str], key: str, message: str) -> None:
    generator = LocalGenerator(model_dir("llava_onevision"), "cpu", cache_dir=CACHE_DIR, max_new_tokens=12)
    before = generator.generate(request(1))
    with pytest.raises(AdapterError, match=message):
        generator.generate(asking(adapters[key]))
    with pytest.raises(AdapterError, match=message):
        generator.resolve_adapter(adapters[key])
    assert generator.generate(request(1)) == before


def test_dir_without_manifest_is_refused(adapters: dict[str, str], tmp_path: Path, load_count: list[str]) -> None:
    bare = tmp_path / "bare"
    bare.mkdir()
    for name in ("adapter_config.json", "adapter_model.safetensors"):
        (bare / name).write_bytes((Path(adapters["a"]) / name).read_bytes())
    generator = LocalGenerator(model_dir("llava_onevision"), "cpu", cache_dir=CACHE_DIR)
    with pytest.raises(AdapterError, match=r"is not an mmrag adapter: mmrag_adapter.json is missing"):
        generator.resolve_adapter(str(bare))
    with pytest.raises(AdapterError, match="not found"):
        generator.resolve_adapter(str(tmp_path / "missing"))
    assert load_count == []  # refused before any model loads
    with pytest.raises(AdapterError, match=r"is not an mmrag adapter"):
        generator.generate(asking(str(bare)))


def test_s3_adapter_uris_map_into_the_cache(tmp_path: Path) -> None:
    assert s3_cache_dir("s3://bucket/runs/7/", tmp_path) == tmp_path / "adapters" / "bucket" / "runs" / "7"
    for bad in ("s3://bucket", "s3:///prefix", "s3://bucket/../x"):
        with pytest.raises(AdapterError, match="expected s3://bucket/prefix"):
            s3_cache_dir(bad, tmp_path)


def test_unreadable_adapter_weights_are_refused_and_the_base_answers_on(
    adapters: dict[str, str], tmp_path: Path
) -> None:
    broken = tmp_path / "broken"
    broken.mkdir()
    for name in ("adapter_config.json", "mmrag_adapter.json"):
        (broken / name).write_bytes((Path(adapters["a"]) / name).read_bytes())
    (broken / "adapter_model.safetensors").write_bytes(b"not safetensors")
    generator = LocalGenerator(model_dir("llava_onevision"), "cpu", cache_dir=CACHE_DIR, max_new_tokens=12)
    before = generator.generate(request(1))
    with pytest.raises(AdapterError, match=r"cannot load the adapter at .*broken"):
        generator.generate(asking(str(broken)))
    assert generator.generate(request(1)) == before
    assert generator.generate(asking(adapters["a"])) != before  # and other adapters still load


def test_s3_adapter_is_pulled_once_into_the_cache(adapters: dict[str, str], aws_env: str, tmp_path: Path) -> None:
    import boto3

    from mmrag.core import s3

    client = boto3.client("s3")
    client.create_bucket(Bucket="adapters")
    s3.push(Path(adapters["a"]), "s3://adapters/runs/a")
    uri = "s3://adapters/runs/a"
    local = LocalGenerator(model_dir("llava_onevision"), "cpu", cache_dir=tmp_path, max_new_tokens=12)
    remote = LocalGenerator(model_dir("llava_onevision"), "cpu", cache_dir=tmp_path, max_new_tokens=12)

    expected = local.generate(asking(adapters["a"]))
    assert remote.generate(asking(uri)) == expected
    assert (tmp_path / "adapters" / "adapters" / "runs" / "a" / "mmrag_adapter.json").is_file()
    for key in client.list_objects_v2(Bucket="adapters")["Contents"]:
        client.delete_object(Bucket="adapters", Key=key["Key"])
    remote.generate(request(1))
    assert remote.generate(asking(uri)) == expected  # loaded already: neither fetched nor read again
    with pytest.raises(AdapterError, match=r"cannot fetch adapter s3://adapters/runs/b: .*NoSuchKey"):
        remote.resolve_adapter("s3://adapters/runs/b")
