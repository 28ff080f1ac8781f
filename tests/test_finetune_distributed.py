"""`mmrag finetune train` under torchrun: 2 CPU processes (gloo) with batch 1 each follow the loss curve of one
process with batch 2, write one adapter and loss.csv, and resume from a checkpoint to the uninterrupted result."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from mmrag.core.manifest import AdapterManifest
from mmrag.core.server import free_port
from mmrag.core.settings import Settings
from mmrag.finetune.dataset import DataConfig, build_dataset
from mmrag.finetune.domains import load_domain
from mmrag.finetune.train import LOSS_CSV, TrainConfig, train
from tests.helpers import CACHE_DIR, MMRAG_SCRIPT, cli_env, run_cli

pytestmark = [
    pytest.mark.slow,  # three training runs, two of them with two processes
    pytest.mark.filterwarnings("ignore:.*is_gradient_checkpointing:FutureWarning"),
]

STEPS = 4
OPTIONS = {"--max-steps": STEPS, "--lora-r": 4, "--lora-alpha": 8, "--lora-dropout": 0, "--lr": 1e-2, "--save-every": 2}
"""Dropout 0: the processes draw no random numbers, so the two runs can agree to float rounding."""
SINGLE = TrainConfig(lora_r=4, lora_alpha=8, lora_dropout=0.0, learning_rate=1e-2, batch_size=2, max_steps=STEPS)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist") / "ds"
    build_dataset(out, load_domain("business"), DataConfig(n_charts=8, seed=5, questions_per_chart=2))
    return out


@pytest.fixture(scope="module")
def single(data_dir: Path, base: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One process, batch 2: the reference run."""
    out = tmp_path_factory.mktemp("single")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        train(data_dir, base, out, SINGLE)
    finally:
        torch.set_num_threads(threads)
    yield out


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    settings = Settings(profile="tiny", cache_dir=CACHE_DIR, data_dir=tmp_path_factory.mktemp("state"), device="cpu")
    return cli_env(settings, OMP_NUM_THREADS="1", GLOO_SOCKET_IFNAME="lo")


def _torchrun(env: dict[str, str], data_dir: Path, out: Path) -> subprocess.CompletedProcess[str]:
    """`mmrag finetune train` as is, on 2 processes with batch 1 each: the global batch of SINGLE."""
    launcher = Path(sys.executable).with_name("torchrun")
    options = [str(x) for kv in OPTIONS.items() for x in kv]
    command = [
        str(launcher), "--nproc_per_node", "2", "--master_addr", "127.0.0.1", "--master_port", str(free_port()),
        MMRAG_SCRIPT, "finetune", "train", "--data", str(data_dir), "--out", str(out), "--batch-size", "1", *options,
    ]  # fmt: skip
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)


def _losses(adapter_dir: Path) -> list[float]:
    rows = (adapter_dir / LOSS_CSV).read_text().splitlines()
    assert rows[0].split(",")[:4] == ["step", "total_steps", "epoch", "loss"]
    return [float(r.split(",")[3]) for r in rows[1:]]


def _adapter(adapter_dir: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(adapter_dir / "adapter_model.safetensors"))


@pytest.fixture(scope="module")
def two(data_dir: Path, env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("two") / "adapter"
    run = _torchrun(env, data_dir, out)
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.count("adapter in ") == 1 and run.stdout.count(f"step {STEPS}/{STEPS}") == 1, run.stdout
    return out


def test_two_processes_follow_the_loss_curve_of_one_with_the_same_global_batch(single: Path, two: Path) -> None:
    assert len(_losses(two)) == STEPS
    assert _losses(two) == pytest.approx(_losses(single), rel=1e-3)
    assert _losses(two)[-1] < _losses(two)[0]
    reference, trained = _adapter(single), _adapter(two)
    assert reference.keys() == trained.keys()
    assert all(torch.allclose(reference[k], trained[k], atol=1e-4) for k in reference)
    manifest = AdapterManifest.load(two)
    assert manifest.hyperparameters["processes"] == 2 and manifest.hyperparameters["global_batch"] == 2
    assert manifest.hyperparameters["batch_size"] == 1
    assert manifest.metrics["final_loss"] == pytest.approx(_losses(two)[-1])


def test_two_processes_resume_from_a_checkpoint_to_the_uninterrupted_result(
    two: Path, data_dir: Path, env: dict[str, str], tmp_path: Path
) -> None:
    crashed = tmp_path / "adapter"
    shutil.copytree(two, crashed)  # as a run killed after step 3: the checkpoint of step 2 and 3 rows of loss.csv
    shutil.rmtree(crashed / "checkpoints" / f"checkpoint-{STEPS}")
    for name in ("adapter_model.safetensors", "adapter_config.json", "mmrag_adapter.json"):
        (crashed / name).unlink()
    lines = (crashed / LOSS_CSV).read_text().splitlines()
    (crashed / LOSS_CSV).write_text("\n".join(lines[:4]) + "\n")

    run = _torchrun(env, data_dir, crashed)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "step 3/4" in run.stdout and "step 1/4" not in run.stdout, run.stdout
    assert _losses(crashed) == pytest.approx(_losses(two), abs=1e-6)
    uninterrupted, resumed = _adapter(two), _adapter(crashed)
    assert all(torch.allclose(uninterrupted[k], resumed[k], atol=1e-6) for k in uninterrupted)

    one_process = run_cli(env, "finetune", "train", "--data", str(data_dir), "--out", str(crashed), "--batch-size", "1",
                          *[str(x) for kv in OPTIONS.items() for x in kv])  # fmt: skip
    assert one_process.returncode == 1 and "made by 2 processes" in one_process.stderr
    assert "Traceback" not in one_process.stderr
