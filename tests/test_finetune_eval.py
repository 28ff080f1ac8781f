"""ChartQA relaxed accuracy (the metric `mmrag finetune eval` and the rag_app batch command report), the adapters
`mmrag finetune eval` refuses, and its answers: those of `mmrag ask`'s generator, asked as training taught."""

from __future__ import annotations

import json
import pickle
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import torch
from PIL import Image

from mmrag.core.adapters import AdapterError
from mmrag.core.manifest import AdapterManifest
from mmrag.core.metrics import relaxed_match
from mmrag.core.prompts import PROMPT_STYLE, ContextItem
from mmrag.core.settings import Settings
from mmrag.finetune.dataset import DataConfig, build_dataset
from mmrag.finetune.domains import load_domain
from mmrag.finetune.encoding import IGNORE_INDEX, encode
from mmrag.finetune.evaluate import chart_request, evaluate
from mmrag.finetune.samples import DatasetError, Sample, read_samples
from mmrag.rag_app.generator import GenerationRequest, LocalGenerator
from tests.helpers import CACHE_DIR, cli_env, run_cli

pytestmark = [
    pytest.mark.slow,  # evaluation runs of the tiny VLM, several through the CLI
    pytest.mark.filterwarnings("ignore:.*is_gradient_checkpointing:FutureWarning"),  # peft
]

CASES = [
    ("42", "42", True),
    ("42 [1]", "42", True),  # citations are not part of the answer
    ("43", "42", True),  # within 5%
    ("45", "42", False),  # 7% off
    ("1,234", "1234", True),  # thousands separators
    ("$1,234.5M", "$1,234.5M", True),
    ("1234.5", "$1,234.5M", True),  # currency and unit are not required
    ("12.1%", "12.0%", True),
    ("0.12", "12%", True),  # a share as a fraction
    ("12", "12%", True),  # ... or without the sign
    ("0", "0", True),
    ("0.01", "0", False),  # the gold 0 needs an exact answer
    ("-5", "5", False),
    ("Q3", "q3", True),  # other answers: case-insensitive exact match
    ("Q3.", "Q3", True),
    ("Q3 and Q4", "Q3", False),
    ("Increase", "Decrease", False),
    ("North", "", False),
]


@pytest.mark.parametrize(("prediction", "gold", "expected"), CASES)
def test_relaxed_match(prediction: str, gold: str, expected: bool) -> None:
    assert relaxed_match(prediction, gold) is expected


class _RunsCode:
    """A pickle that runs code when loaded: it creates `marker` (what a hostile adapter_model.bin could do)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path.touch, (self.marker,))


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("eval") / "data"
    build_dataset(out, load_domain("science"), DataConfig(n_charts=11, seed=4, questions_per_chart=2))
    return out


@pytest.fixture
def pickled_adapter(base: str, tmp_path: Path) -> Path:
    """An adapter for the tiny base, with peft's pickle format instead of safetensors."""
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    AdapterManifest(base_model=base, prompt_style=PROMPT_STYLE).save(adapter)
    config = {"peft_type": "LORA", "r": 4, "lora_alpha": 8, "target_modules": ["q_proj", "v_proj"]}
    (adapter / "adapter_config.json").write_text(json.dumps(config | {"base_model_name_or_path": base}))
    (adapter / "adapter_model.bin").write_bytes(pickle.dumps(_RunsCode(tmp_path / "pickle-was-loaded")))
    return adapter


def test_eval_refuses_a_pickled_adapter_in_one_line(pickled_adapter: Path, data_dir: Path, tmp_path: Path) -> None:
    env = cli_env(Settings(profile="tiny", cache_dir=CACHE_DIR, data_dir=tmp_path / "state", device="cpu"))
    args = ("finetune", "eval", "--data", str(data_dir), "--adapter", str(pickled_adapter), "--limit", "1")
    result = run_cli(env, *args)
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("error: adapter") and "adapter_model.bin is a pickle and is never loaded" in line
    assert not (tmp_path / "pickle-was-loaded").exists()


def test_evaluate_refuses_a_pickled_adapter_before_loading_a_model(pickled_adapter: Path, base: str) -> None:
    generator = LocalGenerator(base, "cpu", cache_dir=CACHE_DIR)
    with pytest.raises(AdapterError, match=r"has no adapter_model\.safetensors"):
        evaluate(pickled_adapter.parent / "no-data-needed", generator, adapter=str(pickled_adapter))


def test_the_generator_never_hands_a_pickle_to_peft(
    pickled_adapter: Path, base: str, data_dir: Path, tmp_path: Path
) -> None:
    generator = LocalGenerator(base, "cpu", cache_dir=CACHE_DIR, max_new_tokens=4)
    sample, image = _first_test_sample(data_dir)
    with pytest.raises(AdapterError, match="never loaded"):
        generator.generate(chart_request(sample, image, str(pickled_adapter)))
    with pytest.raises(AdapterError, match="never loaded"):  # the SageMaker endpoint loads adapters this way
        generator.preload(str(pickled_adapter))
    assert not (tmp_path / "pickle-was-loaded").exists()


def test_eval_refuses_an_s3_adapter_that_would_escape_the_cache(aws_env: str, data_dir: Path, tmp_path: Path) -> None:
    env = cli_env(Settings(profile="tiny", cache_dir=CACHE_DIR, data_dir=tmp_path / "state", device="cpu"))
    result = run_cli(env, "finetune", "eval", "--data", str(data_dir), "--adapter", "s3://models/../../escaped")
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert "invalid adapter URI 's3://models/../../escaped'" in result.stderr
    assert not (CACHE_DIR / "escaped").exists()


# One generator: `finetune eval` answers as `mmrag ask` does


def _first_test_sample(data_dir: Path) -> tuple[Sample, Image.Image]:
    sample = read_samples(data_dir / "test.json")[0]
    with Image.open(data_dir / sample.image) as image:
        return sample, image.convert("RGB")


@pytest.fixture(scope="module")
def random_adapter(base: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A random (non-zero) LoRA on the tiny base's language model, saved with its manifest as training would."""
    from peft import LoraConfig, get_peft_model

    from mmrag.core.models import load_vlm
    from mmrag.finetune.train import LANGUAGE_MODEL_LINEAR

    out = tmp_path_factory.mktemp("random-adapter")
    model, _ = load_vlm(base, "cpu")
    torch.manual_seed(0)
    config = LoraConfig(r=4, lora_alpha=8, target_modules=LANGUAGE_MODEL_LINEAR, init_lora_weights=False)
    get_peft_model(model, config).save_pretrained(str(out))
    AdapterManifest(base_model=base, prompt_style=PROMPT_STYLE).save(out)
    return str(out)


def test_eval_asks_exactly_as_training_taught(data_dir: Path, base: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The generator's tokens for a test sample are the training sequence's prompt, token for token."""
    from mmrag.core.models import load_vlm

    processor = load_vlm(base, "cpu")[1]
    prompts: list[list[int]] = []
    original = type(processor).__call__

    def spy(self: Any, *args: Any, **kwargs: Any) -> Any:
        output = original(self, *args, **kwargs)
        prompts.extend(output["input_ids"].tolist())
        return output

    sample, image = _first_test_sample(data_dir)
    with monkeypatch.context() as patched:
        patched.setattr(type(processor), "__call__", spy)
        LocalGenerator(base, "cpu", cache_dir=CACHE_DIR, max_new_tokens=2).generate(chart_request(sample, image))
    (asked,) = prompts

    encoded = encode(processor, sample, image)
    answer_start = int((encoded.labels != IGNORE_INDEX).nonzero()[0])
    assert asked == encoded.input_ids[:answer_start].tolist()


def test_a_sample_written_with_another_prompt_is_refused(data_dir: Path) -> None:
    sample, image = _first_test_sample(data_dir)
    human, answer = sample.conversations
    other = Sample(sample.id, sample.image, (type(human)(human.role, human.value + " Be brief."), answer))
    with pytest.raises(DatasetError, match=f"sample {sample.id} was written with another prompt"):
        chart_request(other, image)


def test_eval_answers_are_those_of_the_ask_generator(data_dir: Path, random_adapter: str, tmp_path: Path) -> None:
    """`mmrag finetune eval` (the command, base and adapter) answers each chart exactly as the generator `mmrag ask`
    builds answers the same chart shown as source [1] with the same question."""
    from mmrag.rag_app.service import make_generator

    settings = Settings(profile="tiny", cache_dir=CACHE_DIR, data_dir=tmp_path / "state", device="cpu")
    args = ("finetune", "eval", "--data", str(data_dir), "--adapter", random_adapter, "--limit", "3", "--json")
    result = run_cli(cli_env(settings), *args, "--report-dir", str(tmp_path / "report"))
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    samples = {s.id: s for s in read_samples(data_dir / "test.json")}

    ask_generator = make_generator(settings)  # what `mmrag ask` answers with
    for prediction in report["predictions"]:
        sample = samples[prediction["id"]]
        with Image.open(data_dir / sample.image) as image:
            chart = image.convert("RGB")
        source = ContextItem(n=1, kind="image", label=Path(sample.image).name)  # the chart, retrieved as [1]
        asked = GenerationRequest(prediction["question"], (chart,), (source,))
        assert prediction["answers"] == {
            "base": ask_generator.generate(asked),
            "adapter": ask_generator.generate(replace(asked, adapter=random_adapter)),
        }
    assert any(p["answers"]["base"] != p["answers"]["adapter"] for p in report["predictions"])
