"""The whole flow as a user runs it: `mmrag finetune data -> validate -> train -> eval -> push -> pull`."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
from typer.testing import CliRunner

from mmrag.commands.app import build_app
from mmrag.core.settings import Settings
from mmrag.finetune.dataset import DataConfig
from mmrag.finetune.train import TrainConfig
from tests.helpers import CACHE_DIR, cli_env, run_cli


@pytest.mark.slow
def test_data_validate_train_eval_push_pull(tmp_path: Path, s3_endpoint: str) -> None:
    import boto3

    settings = Settings(profile="tiny", cache_dir=CACHE_DIR, data_dir=tmp_path / "state", device="cpu")
    aws = {"AWS_ENDPOINT_URL": s3_endpoint, "AWS_ACCESS_KEY_ID": "k", "AWS_SECRET_ACCESS_KEY": "s"}
    env = cli_env(settings, OMP_NUM_THREADS="1", AWS_DEFAULT_REGION="us-east-1", **aws)
    env.pop("AWS_PROFILE", None)
    data, adapter = tmp_path / "data", tmp_path / "adapter"

    made = run_cli(env, "finetune", "data", "--out", str(data), "--n", "11", "--seed", "4", "--domain", "science")
    assert made.returncode == 0, made.stderr
    assert "train" in made.stdout and (data / "train.json").is_file()

    checked = run_cli(env, "finetune", "validate", str(data / "train.jsonl"))
    assert checked.returncode == 0 and "0 problems" in checked.stdout, checked.stderr

    broken = tmp_path / "broken.jsonl"
    lines = (data / "train.jsonl").read_text().splitlines()
    lines[1] = lines[1].replace("<image>\\n", "")
    broken.write_text("\n".join(lines) + "\n")
    rejected = run_cli(env, "finetune", "validate", str(broken), "--images", str(data))
    assert rejected.returncode == 1
    assert f"{broken}:2 " in rejected.stdout and "image_token" in rejected.stdout and "Traceback" not in rejected.stderr

    trained = run_cli(
        env, "finetune", "train", "--data", str(data), "--out", str(adapter), "--max-steps", "4",
        "--batch-size", "2", "--lora-r", "4", "--lora-alpha", "8",
    )  # fmt: skip
    assert trained.returncode == 0, trained.stderr
    assert "step 4/4" in trained.stdout and (adapter / "mmrag_adapter.json").is_file()

    evaluated = run_cli(env, "finetune", "eval", "--data", str(data), "--adapter", str(adapter), "--json")
    assert evaluated.returncode == 0, evaluated.stderr
    report = json.loads(evaluated.stdout)
    assert report["models"] == ["base", "adapter"] and report["overall"]["adapter"]["n"] > 0
    assert (adapter / "eval_report.png").is_file()

    boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1", aws_access_key_id="k",
                 aws_secret_access_key="s").create_bucket(Bucket="models")  # fmt: skip
    pushed = run_cli(env, "finetune", "push", str(adapter), "s3://models/charts/v1")
    assert pushed.returncode == 0, pushed.stderr
    pulled = run_cli(env, "finetune", "pull", "s3://models/charts/v1", str(tmp_path / "pulled"))
    assert pulled.returncode == 0, pulled.stderr
    assert (tmp_path / "pulled/adapter_model.safetensors").read_bytes() == (
        adapter / "adapter_model.safetensors"
    ).read_bytes()

    missing = run_cli(env, "finetune", "train", "--data", str(tmp_path / "nowhere"), "--out", str(tmp_path / "x"))
    assert missing.returncode == 1 and "error:" in missing.stderr and "Traceback" not in missing.stderr


def test_train_defaults_are_train_config_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`mmrag finetune train` without options trains with the library's TrainConfig, not with copies of it."""
    configs: list[TrainConfig] = []

    def fake_train(data_dir: Path, base: str, out_dir: Path, config: TrainConfig, **_: object) -> SimpleNamespace:
        configs.append(config)
        return SimpleNamespace(adapter_dir=out_dir, steps=1, first_loss=1.0, final_loss=0.5, val_loss=None)

    monkeypatch.setattr("mmrag.finetune.train.train", fake_train)
    monkeypatch.setattr("mmrag.core.models.resolve_device", lambda device: device)
    args = [
        "finetune",
        "train",
        "--data",
        str(tmp_path),
        "--out",
        str(tmp_path / "a"),
        "--base",
        "b",
        "--device",
        "cpu",
    ]
    result = CliRunner().invoke(build_app(), args)
    assert result.exit_code == 0, result.output
    assert configs == [TrainConfig()]


def test_data_defaults_are_data_config_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`mmrag finetune data` uses DataConfig's defaults, and MMRAG_BEDROCK_MODEL (a setting) picks the LLM."""
    configs: list[DataConfig] = []
    enrichers: list[str] = []

    def fake_build(out_dir: Path, domain: object, config: DataConfig, **_: object) -> SimpleNamespace:
        configs.append(config)
        return SimpleNamespace(charts={"train": 1}, samples={"train": 6})

    monkeypatch.setattr("mmrag.finetune.dataset.build_dataset", fake_build)
    monkeypatch.setattr("mmrag.finetune.bedrock.BedrockEnricher", enrichers.append)
    monkeypatch.setenv("MMRAG_BEDROCK_MODEL", "my.model-v1")
    result = CliRunner().invoke(build_app(), ["finetune", "data", "--out", str(tmp_path / "d"), "--bedrock"])
    assert result.exit_code == 0, result.output
    assert configs == [DataConfig(n_charts=configs[0].n_charts)]
    assert enrichers == ["my.model-v1"]
