"""ChartQA relaxed accuracy (the metric `mmrag finetune eval` and the rag_app batch command report), and the
adapters `mmrag finetune eval` refuses."""

from __future__ import annotations

import json
import pickle
from pathlib import Path
from typing import Any

import pytest

from mmrag.core.adapters import AdapterError
from mmrag.core.manifest import AdapterManifest
from mmrag.core.metrics import relaxed_match
from mmrag.core.prompts import PROMPT_STYLE
from mmrag.core.settings import Settings
from mmrag.core.tiny import ensure_tiny_models, tiny_vlm_dir
from mmrag.finetune.answerer import load_answerer
from mmrag.finetune.dataset import DataConfig, build_dataset
from mmrag.finetune.domains import load_domain
from mmrag.finetune.evaluate import evaluate
from tests.conftest import CACHE_DIR, cli_env, run_cli

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
def base() -> str:
    ensure_tiny_models(CACHE_DIR)
    return str(tiny_vlm_dir(CACHE_DIR))


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
    with pytest.raises(AdapterError, match=r"has no adapter_model\.safetensors"):
        evaluate(pickled_adapter.parent / "no-data-needed", base, "cpu", adapter_dir=pickled_adapter)


def test_the_answerer_never_hands_a_pickle_to_peft(pickled_adapter: Path, base: str, tmp_path: Path) -> None:
    with pytest.raises(AdapterError, match="never loaded"):  # the SageMaker endpoint loads adapters this way
        load_answerer(base, "cpu", pickled_adapter)
    assert not (tmp_path / "pickle-was-loaded").exists()


def test_eval_refuses_an_s3_adapter_that_would_escape_the_cache(aws_env: str, data_dir: Path, tmp_path: Path) -> None:
    env = cli_env(Settings(profile="tiny", cache_dir=CACHE_DIR, data_dir=tmp_path / "state", device="cpu"))
    result = run_cli(env, "finetune", "eval", "--data", str(data_dir), "--adapter", "s3://models/../../escaped")
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert "invalid adapter URI 's3://models/../../escaped'" in result.stderr
    assert not (CACHE_DIR / "escaped").exists()
