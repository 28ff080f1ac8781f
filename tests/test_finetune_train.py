"""A short LoRA run on the tiny VLM: the loss goes down, the adapter reloads and changes answers, resume is exact,
the evaluation compares base and adapter, and the SageMaker handler serves the adapter."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import torch
from PIL import Image

from mmrag.core.adapters import AdapterError
from mmrag.core.manifest import AdapterManifest
from mmrag.core.models import load_vlm
from mmrag.core.prompts import PROMPT_STYLE
from mmrag.core.tiny import tiny_vlm_dir
from mmrag.finetune.dataset import DataConfig, build_dataset, card_sha256
from mmrag.finetune.domains import load_domain
from mmrag.finetune.encoding import collate, encode
from mmrag.finetune.evaluate import evaluate, save_report
from mmrag.finetune.samples import Sample, Turn, read_samples
from mmrag.finetune.train import LOSS_CSV, TrainConfig, TrainingError, train
from mmrag.rag_app.generator import GenerationRequest, LocalGenerator
from tests.helpers import CACHE_DIR

pytestmark = [
    pytest.mark.slow,  # LoRA training
    pytest.mark.filterwarnings("ignore:.*is_gradient_checkpointing:FutureWarning"),
]

CONFIG = TrainConfig(lora_r=8, lora_alpha=16, learning_rate=1e-2, batch_size=4, max_steps=25, warmup_ratio=0.0)


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Iterator[None]:
    """Tiny models on a shared CPU: one thread is many times faster than several fighting for cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("train") / "ds"
    build_dataset(out, load_domain("business"), DataConfig(n_charts=11, seed=3, questions_per_chart=3))
    return out


@pytest.fixture(scope="module")
def adapter(data_dir: Path, base: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("adapter")
    train(data_dir, base, out, CONFIG)
    return out


def _losses(adapter_dir: Path) -> list[float]:
    rows = (adapter_dir / LOSS_CSV).read_text().splitlines()[1:]
    return [float(r.split(",")[3]) for r in rows]


def test_training_lowers_the_loss_and_writes_adapter_and_manifest(adapter: Path, data_dir: Path, base: str) -> None:
    losses = _losses(adapter)
    assert len(losses) == CONFIG.max_steps
    assert sum(losses[-5:]) / 5 < sum(losses[:5]) / 5 - 0.3, losses
    assert (adapter / "adapter_model.safetensors").stat().st_size > 0
    manifest = AdapterManifest.load(adapter)
    assert manifest.base_model == base and manifest.prompt_style == PROMPT_STYLE
    assert manifest.base_revision and manifest.base_revision.startswith("sha256:")
    assert manifest.dataset_card_sha256 == card_sha256(data_dir)
    assert manifest.hyperparameters["lora_r"] == 8 and manifest.hyperparameters["learning_rate"] == 1e-2
    assert manifest.metrics["final_loss"] == pytest.approx(losses[-1]) and manifest.metrics["val_loss"] > 0
    adapter_config = json.loads((adapter / "adapter_config.json").read_text())
    assert "language_model" in str(adapter_config["target_modules"])
    assert adapter_config["modules_to_save"] == ["multi_modal_projector"]


def test_lora_wraps_the_language_model_only() -> None:
    from peft import LoraConfig, get_peft_model

    from mmrag.finetune.train import LANGUAGE_MODEL_LINEAR

    model, _ = load_vlm(str(tiny_vlm_dir(CACHE_DIR)), "cpu")
    peft_model = get_peft_model(model, LoraConfig(r=4, target_modules=LANGUAGE_MODEL_LINEAR))
    wrapped = [n for n, _ in peft_model.named_modules() if n.endswith("lora_A")]
    assert wrapped and all("language_model" in n and "vision" not in n for n in wrapped)


def _logits(model: Any, processor: Any, data_dir: Path) -> torch.Tensor:
    sample = read_samples(data_dir / "test.json")[0]
    with Image.open(data_dir / sample.image) as image:
        batch = collate([encode(processor, sample, image.convert("RGB"))], processor.tokenizer.pad_token_id)
    batch.pop("labels")
    with torch.no_grad():
        return model(**batch).logits


def _with_adapter(base: str, adapter: Path) -> tuple[Any, Any]:
    from peft import PeftModel

    model, processor = load_vlm(base, "cpu")
    return PeftModel.from_pretrained(model, str(adapter)).eval(), processor


def test_the_adapter_reloads_exactly_and_changes_the_outputs(adapter: Path, data_dir: Path, base: str) -> None:
    before = _logits(*load_vlm(base, "cpu"), data_dir)
    after = _logits(*_with_adapter(base, adapter), data_dir)
    assert not torch.allclose(before, after, atol=1e-3)
    assert torch.equal(after, _logits(*_with_adapter(base, adapter), data_dir))


def test_an_adapter_is_refused_on_another_base(adapter: Path) -> None:
    other = LocalGenerator(str(tiny_vlm_dir(CACHE_DIR, "llava")), "cpu", cache_dir=CACHE_DIR)
    with pytest.raises(AdapterError, match="trained on"):
        other.resolve_adapter(str(adapter))


def test_an_interrupted_run_resumes_to_the_same_adapter(data_dir: Path, base: str, tmp_path: Path) -> None:
    from safetensors.torch import load_file

    config = replace(CONFIG, max_steps=6, save_every=2)
    train(data_dir, base, tmp_path / "straight", config)

    def interrupt(log: Any) -> None:
        if log.step == 5:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(data_dir, base, tmp_path / "resumed", config, on_step=interrupt)
    result = train(data_dir, base, tmp_path / "resumed", config)
    assert result.steps == 6 and len(_losses(tmp_path / "resumed")) == 6
    straight = load_file(str(tmp_path / "straight/adapter_model.safetensors"))
    resumed = load_file(str(tmp_path / "resumed/adapter_model.safetensors"))
    assert straight.keys() == resumed.keys()
    assert all(torch.allclose(straight[k], resumed[k], atol=1e-6) for k in straight)
    assert _losses(tmp_path / "resumed") == pytest.approx(_losses(tmp_path / "straight"), abs=1e-5)


def test_a_batch_without_supervised_tokens_fails_fast(tmp_path: Path, base: str, data_dir: Path) -> None:
    from mmrag.finetune.samples import write_samples

    (tmp_path / "images").symlink_to(data_dir / "images")
    sample = read_samples(data_dir / "train.json")[0]
    unanswered = Sample(sample.id, sample.image, (Turn("human", sample.conversations[0].value),))
    write_samples([unanswered], tmp_path / "train.json")
    with pytest.raises(TrainingError, match=f"{sample.id} has no supervised token"):
        train(tmp_path, base, tmp_path / "out", replace(CONFIG, max_steps=1))


def test_eval_reports_base_and_adapter_side_by_side(adapter: Path, data_dir: Path, base: str, tmp_path: Path) -> None:
    report = evaluate(data_dir, LocalGenerator(base, "cpu", cache_dir=CACHE_DIR), adapter=str(adapter))
    assert report.models == ("base", "adapter")
    n = report.overall["base"].n
    assert n == len(report.predictions) > 0
    assert sum(s["base"].n for s in report.by_question_type.values()) == n
    assert sum(s["adapter"].n for s in report.by_chart_type.values()) == n
    assert "describe" not in report.by_question_type
    json_path, png_path = save_report(report, tmp_path)
    saved = json.loads(json_path.read_text())
    assert saved["overall"]["adapter"]["n"] == n and saved["predictions"][0]["answers"].keys() == {"base", "adapter"}
    with Image.open(png_path) as image:
        assert image.width > 500


def test_the_sagemaker_handler_answers_with_the_adapter(
    adapter: Path, data_dir: Path, base: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mmrag.finetune import inference

    monkeypatch.setenv("MMRAG_PROFILE", "tiny")
    monkeypatch.setenv("MMRAG_CACHE_DIR", str(CACHE_DIR))
    monkeypatch.setenv("MMRAG_DEVICE", "cpu")
    model = inference.model_fn(str(adapter))
    assert model.adapter == str(adapter) and model.generator.model_id == base
    image_path = next((data_dir / "images").glob("*.png"))
    body = json.dumps({"image": base64.b64encode(image_path.read_bytes()).decode(), "question": "Highest value?"})
    reply = json.loads(inference.output_fn(inference.predict_fn(inference.input_fn(body, "application/json"), model)))
    assert reply["question"] == "Highest value?"
    with Image.open(image_path) as image:  # what `mmrag ask`'s generator answers for the chart as source [1]
        request = GenerationRequest.chart("Highest value?", image.convert("RGB"), adapter=str(adapter))
    assert reply["answer"] == LocalGenerator(base, "cpu", cache_dir=CACHE_DIR).generate(request)
    with pytest.raises(inference.RequestError, match="content type"):
        inference.input_fn(body, "text/csv")
    with pytest.raises(inference.RequestError, match="base64"):
        inference.input_fn(json.dumps({"image": "not-an-image", "question": "q"}), "application/json")
