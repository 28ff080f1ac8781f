"""`mmrag finetune merge`: an adapter merged into its base answers as base + adapter, from an ordinary checkpoint."""

from __future__ import annotations

import json
import shutil
import uuid
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest
import torch
from PIL import Image

from mmrag.core import prompts, tiny
from mmrag.core.manifest import (
    MERGED_MANIFEST_NAME,
    AdapterManifest,
    ManifestError,
    MergedManifest,
    check_merged_model,
    model_revision,
)
from mmrag.core.models import load_vlm
from mmrag.core.settings import Settings
from mmrag.finetune.merge import MergeError, merge_adapter
from mmrag.rag_app.generator import GenerationRequest, LocalGenerator
from tests.helpers import CACHE_DIR, cli_env, make_adapter, run_cli

pytestmark = [
    pytest.mark.slow,  # the tiny VLM loaded, merged, saved and answering
    pytest.mark.filterwarnings("ignore:`is_gradient_checkpointing` is deprecated:FutureWarning"),  # peft
]

QUESTIONS = ["What is the largest bar?", "How much did revenue grow in 2021?", "Which year is the lowest?"]


@pytest.fixture(scope="module")
def base() -> str:
    tiny.ensure_tiny_models(CACHE_DIR)
    return str(tiny.tiny_vlm_dir(CACHE_DIR, "llava_onevision"))


@pytest.fixture(scope="module")
def adapter(base: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    return make_adapter(tmp_path_factory.mktemp("merge") / "adapter", base, seed=3)


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    settings = Settings(profile="tiny", cache_dir=CACHE_DIR, data_dir=tmp_path_factory.mktemp("state"), device="cpu")
    return cli_env(settings, OMP_NUM_THREADS="1")


@pytest.fixture(scope="module")
def merged(adapter: str, env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The adapter merged by the command, as a user runs it."""
    out = tmp_path_factory.mktemp("merged") / "charts-merged"
    done = run_cli(env, "finetune", "merge", adapter, "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert f"merged model in {out}" in done.stdout and "float32" in done.stdout
    return out


def chart(seed: int) -> Image.Image:
    pixels = torch.randint(0, 256, (40, 56, 3), generator=torch.Generator().manual_seed(seed), dtype=torch.uint8)
    return Image.fromarray(pixels.numpy())


def test_merged_model_answers_as_the_base_with_the_adapter(base: str, adapter: str, merged: Path) -> None:
    """The local backend on MMRAG_VLM_MODEL=DIR answers exactly as the base with the adapter (greedy)."""
    with_adapter = LocalGenerator(base, "cpu", cache_dir=CACHE_DIR, max_new_tokens=12)
    from_merged = LocalGenerator(str(merged), "cpu", cache_dir=CACHE_DIR, max_new_tokens=12)
    changed = 0
    for i, question in enumerate(QUESTIONS):
        expected = with_adapter.generate(GenerationRequest.chart(question, chart(i), adapter=adapter))
        assert from_merged.generate(GenerationRequest.chart(question, chart(i))) == expected
        changed += with_adapter.generate(GenerationRequest.chart(question, chart(i))) != expected
    assert changed  # the adapter changes answers: the merged model is not simply the base


def test_merged_logits_are_the_adapters(base: str, adapter: str, merged: Path) -> None:
    from peft import PeftModel

    model, processor = load_vlm(base, "cpu")
    merged_model, _ = load_vlm(str(merged), "cpu")
    inputs = _inputs(processor, GenerationRequest.chart(QUESTIONS[0], chart(0)))
    with torch.inference_mode():
        base_logits = model(**inputs).logits
        adapted_logits = PeftModel.from_pretrained(model, adapter)(**inputs).logits
        merged_logits = merged_model(**inputs).logits
    torch.testing.assert_close(merged_logits, adapted_logits, rtol=1e-4, atol=1e-4)
    assert (merged_logits - base_logits).abs().max() > 1e-2  # the adapter did change the model


def _inputs(processor: Any, request: GenerationRequest) -> Any:
    text = processor.apply_chat_template(
        prompts.messages(len(request.images), request.prompt_text), add_generation_prompt=True, tokenize=False
    )
    return processor(text=[text], images=[list(request.images)], return_tensors="pt")


def test_merged_dir_is_an_ordinary_checkpoint_with_its_manifest(base: str, adapter: str, merged: Path) -> None:
    from safetensors import safe_open
    from transformers import AutoConfig, AutoProcessor

    weights = sorted(p.name for p in merged.iterdir() if p.suffix in (".safetensors", ".bin", ".pt", ".pth", ".pkl"))
    assert weights == ["model.safetensors"]
    assert not (merged / "adapter_config.json").exists()
    with (
        safe_open(merged / "model.safetensors", "pt") as merged_file,
        safe_open(Path(base) / "model.safetensors", "pt") as base_file,
    ):
        assert set(merged_file.keys()) == set(base_file.keys())  # the base's names: no LoRA or peft wrappers left
    config = AutoConfig.from_pretrained(merged)
    assert config.model_type == "llava_onevision" and config.dtype == torch.float32  # the tiny base's dtype
    processor = AutoProcessor.from_pretrained(merged)
    assert processor.chat_template and processor.chat_template == AutoProcessor.from_pretrained(base).chat_template

    manifest = MergedManifest.load(merged)
    assert (manifest.base_model, manifest.adapter, manifest.prompt_style) == (base, adapter, prompts.PROMPT_STYLE)
    assert manifest.adapter_manifest == asdict(AdapterManifest.load(Path(adapter)))
    assert manifest.base_revision == model_revision(base) and manifest.mmrag_version
    assert check_merged_model(str(merged)) == manifest
    assert check_merged_model(base) is None and check_merged_model("llava-hf/llava-onevision-qwen2-0.5b-ov-hf") is None


def test_merged_weights_keep_the_base_dtype(tmp_path: Path, base: str) -> None:
    """A bfloat16 base gives a bfloat16 merged model, though the merge itself runs in float32 on the CPU."""
    from safetensors import safe_open

    model, processor = load_vlm(base, "cpu")
    half = tmp_path / "bf16-base"
    model.to(torch.bfloat16).save_pretrained(half)
    processor.save_pretrained(half)
    adapter = make_adapter(tmp_path / "adapter", str(half), seed=5)

    result = merge_adapter(adapter, tmp_path / "merged", cache_dir=CACHE_DIR)
    assert result.manifest.dtype == "bfloat16" and result.weight_files == ("model.safetensors",)
    with safe_open(result.out / "model.safetensors", "pt") as f:
        assert {f.get_slice(k).get_dtype() for k in f.keys()} == {"BF16"}  # noqa: SIM118 (safe_open has no iter)
    saved = json.loads((result.out / "config.json").read_text())
    assert saved["dtype"] == saved["text_config"]["dtype"] == saved["vision_config"]["dtype"] == "bfloat16"


def test_an_adapter_from_s3_merges_onto_the_base_its_manifest_names(
    aws_env: str, tmp_path: Path, base: str, adapter: str
) -> None:
    import boto3

    from mmrag.core.s3 import push

    bucket = f"models-{uuid.uuid4().hex[:12]}"
    boto3.client("s3").create_bucket(Bucket=bucket)
    push(Path(adapter), f"s3://{bucket}/charts/v1")
    result = merge_adapter(f"s3://{bucket}/charts/v1", tmp_path / "merged", cache_dir=tmp_path / "cache")
    assert (result.manifest.base_model, result.manifest.adapter) == (base, f"s3://{bucket}/charts/v1")


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("another base", "was trained on"),
        ("another prompt style", "prompt style 'mmrag-grounded-v0'"),
        ("missing adapter", "not found"),
        ("out taken", "pass --force to replace it"),
        ("out not a merged model", "holds no merged model"),
        ("out is the base", "would replace the base model"),
    ],
)
def test_refusals_are_one_line_and_write_nothing(
    case: str, expected: str, tmp_path: Path, base: str, adapter: str, merged: Path, env: dict[str, str]
) -> None:
    out = tmp_path / "out"
    args = [adapter, "--out", str(out)]
    if case == "another base":
        args += ["--base", str(tiny.tiny_vlm_dir(CACHE_DIR, "llava"))]
    elif case == "another prompt style":
        args[0] = make_adapter(tmp_path / "old-adapter", base, seed=3, style="mmrag-grounded-v0")
    elif case == "missing adapter":
        args[0] = str(tmp_path / "nowhere")
    elif case == "out taken":
        shutil.copytree(merged, out)
    elif case == "out not a merged model":
        out.mkdir()
        (out / "notes.txt").write_text("mine")
        args.append("--force")
    elif case == "out is the base":  # a merged model, as the base of another adapter
        shutil.copytree(merged, out)
        args = [make_adapter(tmp_path / "next-adapter", str(out), seed=4), "--out", str(out), "--force"]
    before, adapter_before = _snapshot(tmp_path), _snapshot(Path(adapter))

    refused = run_cli(env, "finetune", "merge", *args)
    assert refused.returncode == 1
    assert refused.stderr.startswith("error: ") and refused.stderr.count("\n") == 1, refused.stderr
    assert expected in refused.stderr and "Traceback" not in refused.stderr
    assert _snapshot(tmp_path) == before and _snapshot(Path(adapter)) == adapter_before


def test_force_replaces_an_earlier_merge_only_once_the_new_one_is_complete(
    tmp_path: Path, base: str, adapter: str, merged: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from transformers import ProcessorMixin

    other = make_adapter(tmp_path / "other-adapter", base, seed=4)
    out = tmp_path / "models" / "charts"
    shutil.copytree(merged, out)
    before = _snapshot(out.parent)

    def disk_full(self: Any, *args: Any, **kwargs: Any) -> None:
        raise OSError(28, "No space left on device")

    with monkeypatch.context() as patched:
        patched.setattr(ProcessorMixin, "save_pretrained", disk_full)
        with pytest.raises(MergeError, match="No space left on device"):
            merge_adapter(other, out, cache_dir=CACHE_DIR, force=True)
    assert _snapshot(out.parent) == before  # the earlier merge intact, nothing half-written beside it

    result = merge_adapter(other, out, cache_dir=CACHE_DIR, force=True)
    assert MergedManifest.load(out).adapter == other == result.manifest.adapter
    assert sorted(p.name for p in out.parent.iterdir()) == ["charts"]


def test_check_merged_model_refuses_another_prompt_style(tmp_path: Path, merged: Path) -> None:
    """The generator refuses a merged model whose adapter learnt another prompt than the one it asks in."""
    stale = tmp_path / "stale"
    stale.mkdir()
    data = json.loads((merged / MERGED_MANIFEST_NAME).read_text()) | {"prompt_style": "mmrag-grounded-v0"}
    (stale / MERGED_MANIFEST_NAME).write_text(json.dumps(data))
    with pytest.raises(ManifestError, match="prompt style 'mmrag-grounded-v0'"):
        check_merged_model(str(stale))
    (stale / MERGED_MANIFEST_NAME).write_text("{not json")
    with pytest.raises(ManifestError, match="not a valid merged-model manifest"):
        check_merged_model(str(stale))


def _snapshot(root: Path) -> dict[str, bytes]:
    """Every file and dir under `root` (hidden ones too) with its bytes."""
    return {p.relative_to(root).as_posix(): p.read_bytes() if p.is_file() else b"" for p in sorted(root.rglob("*"))}
