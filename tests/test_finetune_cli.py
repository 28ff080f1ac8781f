"""The whole flow as a user runs it: `mmrag finetune data -> validate -> train -> eval -> push -> pull`."""

from __future__ import annotations

import json
from pathlib import Path

from mmrag.core.settings import Settings
from tests.conftest import CACHE_DIR, cli_env, run_cli


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
