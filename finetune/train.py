"""LoRA training of a LLaVA-family model on a chart-QA data dir, on one device or many (DDP, FSDP, DeepSpeed).

LoRA goes on the language model's linear layers only (never the vision tower); the multimodal projector is
optionally trained in full, at its own learning rate, and saved with the adapter. The loss covers the assistant's
tokens only. Defaults follow LLaVA-1.5's LoRA recipe.

The loop is transformers' Trainer, so `train` runs unchanged in one process or under `torchrun` / `accelerate launch`
(each process reads WORLD_SIZE/RANK from the launcher; on CPU the processes talk over gloo). `batch_size` is per
process; the global batch of one optimizer step is batch_size x processes x grad_accum, and the loss of a step is the
mean over all its supervised tokens, so a run on N processes follows the loss curve of one process with N times the
batch. Checkpoints (adapter, optimizer, scheduler, RNG) under OUT/checkpoints make a run resumable; the data order is
a function of the seed and epoch, so a resumed run sees the batches the interrupted one would have. Only the main
process writes the adapter, its manifest and loss.csv. The Trainer's set-up (batches, optimizer, step logs) is in
`mmrag.finetune.trainer`.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import shutil
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mmrag.core.manifest import AdapterManifest, model_revision
from mmrag.core.prompts import PROMPT_STYLE
from mmrag.finetune.dataset import card_sha256
from mmrag.finetune.samples import DatasetError, Sample, read_samples
from mmrag.finetune.trainer import (
    PROJECTOR,
    RUN_JSON,
    StepLog,
    StepLogger,
    TrainingError,
    build_trainer,
    logged_losses,
)
from mmrag.finetune.trainer import peak_memory_mb as peak_memory_mb

if TYPE_CHECKING:
    from transformers import Trainer, TrainingArguments

LANGUAGE_MODEL_LINEAR = r".*language_model.*\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)"
"""peft target: the language model's linear layers (a plain name list would also wrap the vision tower's)."""
LOSS_CSV = "loss.csv"
CHECKPOINTS = "checkpoints"
"""OUT/checkpoints/checkpoint-STEP: the Trainer's checkpoints (they stay local: `finetune push` leaves them out)."""
RESUMABLE_CHANGES = frozenset({"max_steps", "save_every", "keep_checkpoints"})


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters; the defaults are LLaVA-1.5's LoRA recipe (scripts/v1_5/finetune_lora.sh)."""

    lora_r: int = 128
    lora_alpha: int = 256
    lora_dropout: float = 0.05
    learning_rate: float = 2e-4
    projector_lr: float = 2e-5
    """Learning rate of the projector when it is trained (LLaVA's mm_projector_lr)."""
    train_projector: bool = True
    epochs: int = 1
    batch_size: int = 16
    """Samples per process and micro-batch; the global batch is batch_size x processes x grad_accum."""
    grad_accum: int = 1
    warmup_ratio: float = 0.03
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    max_steps: int | None = None
    """Stop after this many optimizer steps (default: all epochs)."""
    max_length: int = 2048
    """Longest tokenized sample, image tokens included (LLaVA's model_max_length)."""
    seed: int = 0
    save_every: int = 200
    """Checkpoint every this many optimizer steps (and at the end)."""
    keep_checkpoints: int = 2
    four_bit: bool = False
    """QLoRA: the frozen base in 4-bit NF4 (CUDA and bitsandbytes only)."""
    gradient_checkpointing: bool | None = None
    """None: on for CUDA, off on CPU."""
    val_samples: int = 64

    def __post_init__(self) -> None:
        positive = ("lora_r", "lora_alpha", "epochs", "batch_size", "grad_accum", "max_length", "save_every")
        for name in positive:
            if getattr(self, name) < 1:
                raise TrainingError(f"{name} must be at least 1")
        if self.max_steps is not None and self.max_steps < 1:
            raise TrainingError("max_steps must be at least 1")
        if not 0 <= self.lora_dropout < 1 or not 0 <= self.warmup_ratio < 1 or self.learning_rate <= 0:
            raise TrainingError("lora_dropout and warmup_ratio must be in [0, 1) and the learning rate positive")


@dataclass(frozen=True)
class TrainResult:
    adapter_dir: Path
    manifest: AdapterManifest
    steps: int
    first_loss: float
    final_loss: float
    val_loss: float | None


def train(
    data_dir: Path,
    base_model: str,
    out_dir: Path,
    config: TrainConfig,
    *,
    device: str = "cpu",
    resume: bool = True,
    on_step: Callable[[StepLog], None] | None = None,
    report_to: str = "none",
) -> TrainResult:
    """Train an adapter on data_dir/train.json and save it with its manifest in `out_dir`.

    `on_step` is called on the main process after every optimizer step; `report_to` names Trainer integrations
    (tensorboard, wandb, mlflow, ...; comma-separated) that get the same logs."""
    from transformers import set_seed

    from mmrag.core.models import load_vlm

    if (config.four_bit or config.gradient_checkpointing) and device != "cuda":
        raise TrainingError("QLoRA (4-bit) and gradient checkpointing need a CUDA device (--device cuda)")
    processes = int(os.environ.get("WORLD_SIZE", "1"))
    _check_launch(config, processes, report_to)
    samples = _samples(data_dir, "train")
    total = config.max_steps or _steps_per_epoch(len(samples), config, processes) * config.epochs
    args = _arguments(config, out_dir, device, processes, total, report_to)
    main = args.process_index == 0
    checkpoint = _checkpoint_to_resume(out_dir, config, processes) if resume else None
    if not resume and main:
        shutil.rmtree(out_dir / CHECKPOINTS, ignore_errors=True)
    set_seed(config.seed)  # the LoRA initialisation
    model, processor = load_vlm(base_model, device, four_bit=config.four_bit)
    model = _with_lora(model, config, device)
    start = _checkpoint_step(checkpoint)
    logger = StepLogger(out_dir / LOSS_CSV, on_step, logged_losses(out_dir / LOSS_CSV, start, write=main))
    trainer = build_trainer(
        model,
        processor,
        samples,
        data_dir,
        args,
        logger,
        max_length=config.max_length,
        projector_lr=config.projector_lr,
        run_config=asdict(config),
    )
    trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
    val = _samples(data_dir, "val", required=False)[: config.val_samples]
    val_loss = float(trainer.evaluate(val)["eval_loss"]) if val else None  # type: ignore[arg-type]
    losses = logger.losses
    first = losses[0] if losses else math.nan
    final = losses[-1] if losses else math.nan
    metrics = {"steps": total, "first_loss": first, "final_loss": final, "val_loss": val_loss}
    hyperparameters = asdict(config) | {"processes": processes, "global_batch": _global_batch(config, processes)}
    manifest = AdapterManifest(
        base_model=base_model,
        prompt_style=PROMPT_STYLE,
        base_revision=model_revision(base_model, model.config),
        dataset_card_sha256=card_sha256(data_dir),
        hyperparameters=hyperparameters,
        metrics=metrics,
    )
    _save_adapter(trainer, out_dir, manifest if main else None)
    return TrainResult(out_dir, manifest, total, first, final, val_loss)


def _check_launch(config: TrainConfig, processes: int, report_to: str) -> None:
    """One-line errors for what the Trainer would otherwise refuse with a traceback (or half-way through)."""
    from transformers.integrations import get_available_reporting_integrations

    deepspeed = os.environ.get("ACCELERATE_USE_DEEPSPEED", "false").lower() in ("1", "true", "yes")
    if deepspeed and importlib.util.find_spec("deepspeed") is None:
        raise TrainingError("the accelerate config asks for DeepSpeed, which is not installed: pip install deepspeed")
    if config.four_bit and processes > 1:
        raise TrainingError("QLoRA (--qlora) runs in one process: the 4-bit base is placed on GPU 0")
    wanted = [name.strip() for name in report_to.split(",") if name.strip()]
    available = get_available_reporting_integrations()
    missing = [name for name in wanted if name not in ("none", "all") and name not in available]
    if missing:
        raise TrainingError(
            f"--report-to {', '.join(missing)}: not installed here (available: {', '.join(available) or 'none'})"
        )


def _global_batch(config: TrainConfig, processes: int) -> int:
    return config.batch_size * processes * config.grad_accum


def _steps_per_epoch(n_samples: int, config: TrainConfig, processes: int) -> int:
    """As the Trainer counts them: each process gets every N-th micro-batch, grad_accum of them per step."""
    micro_batches = math.ceil(math.ceil(n_samples / config.batch_size) / processes)
    return max(1, math.ceil(micro_batches / config.grad_accum))


def _arguments(
    config: TrainConfig, out_dir: Path, device: str, processes: int, total: int, report_to: str
) -> TrainingArguments:
    import torch
    from transformers import TrainingArguments

    args = TrainingArguments(
        output_dir=str(out_dir / CHECKPOINTS),
        per_device_train_batch_size=config.batch_size,
        per_device_eval_batch_size=config.batch_size,
        gradient_accumulation_steps=config.grad_accum,
        max_steps=total,
        learning_rate=config.learning_rate,
        weight_decay=config.weight_decay,
        max_grad_norm=config.max_grad_norm,
        lr_scheduler_type="cosine",
        warmup_steps=math.ceil(config.warmup_ratio * total),
        seed=config.seed,
        data_seed=config.seed,
        logging_strategy="steps",
        logging_steps=1,
        save_strategy="steps",
        save_steps=config.save_every,
        save_total_limit=config.keep_checkpoints,
        report_to=report_to,
        use_cpu=device == "cpu",
        ddp_backend="gloo" if device == "cpu" and processes > 1 else None,
        ddp_find_unused_parameters=False,
        remove_unused_columns=False,
        include_num_input_tokens_seen="non_padding",
        disable_tqdm=True,
    )
    if device == "cuda":
        torch.cuda.set_device(args.device)  # "cuda" below is this process's GPU (LOCAL_RANK under a launcher)
    return args


def _samples(data_dir: Path, split: str, *, required: bool = True) -> list[Sample]:
    path = data_dir / f"{split}.json"
    if not path.is_file():
        if not required:
            return []
        raise DatasetError(f"{path} is missing: make a dataset with `mmrag finetune data --out {data_dir}`")
    samples = read_samples(path)
    if required and not samples:
        raise DatasetError(f"{path} has no samples")
    return samples


def _with_lora(model: Any, config: TrainConfig, device: str) -> Any:
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training

    use_checkpointing = config.gradient_checkpointing if config.gradient_checkpointing is not None else device == "cuda"
    if config.four_bit:
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=use_checkpointing)
    elif use_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.enable_input_require_grads()
    lora = LoraConfig(
        r=config.lora_r,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules=LANGUAGE_MODEL_LINEAR,
        modules_to_save=[PROJECTOR] if config.train_projector else None,
        task_type="CAUSAL_LM",
    )
    return get_peft_model(model, lora)


def _checkpoint_to_resume(out_dir: Path, config: TrainConfig, processes: int) -> Path | None:
    """The latest checkpoint in `out_dir`, if any, after checking it was made with these settings."""
    from transformers.trainer_utils import get_last_checkpoint

    folder = out_dir / CHECKPOINTS
    last = get_last_checkpoint(str(folder)) if folder.is_dir() else None
    if last is None:
        return None
    path = Path(last)
    run = json.loads((path / RUN_JSON).read_text()) if (path / RUN_JSON).is_file() else {}
    saved = run.get("config", {})
    changed = [f.name for f in fields(TrainConfig) if saved.get(f.name) != getattr(config, f.name)]
    if not run or set(changed) - RESUMABLE_CHANGES:
        raise TrainingError(
            f"{out_dir} holds a checkpoint made with other settings ({', '.join(changed) or 'unknown'}): "
            "use the same options to resume, --no-resume to start over, or another --out"
        )
    if run["processes"] != processes:
        raise TrainingError(
            f"{path} was made by {run['processes']} processes, this run has {processes}: the global batch would "
            "change; resume with as many processes, or --no-resume"
        )
    return path


def _checkpoint_step(checkpoint: Path | None) -> int:
    if checkpoint is None:
        return 0
    return int(json.loads((checkpoint / "trainer_state.json").read_text())["global_step"])


def _save_adapter(trainer: Trainer, out_dir: Path, manifest: AdapterManifest | None) -> None:
    """The adapter (gathered from every process under FSDP/ZeRO-3) and its manifest, written by the main process."""
    state = trainer.accelerator.get_state_dict(trainer.model)  # a collective: every process takes part
    if manifest is not None:
        model = trainer.accelerator.unwrap_model(trainer.model)
        model.save_pretrained(out_dir, state_dict=state, safe_serialization=True)
        manifest.save(out_dir)
    trainer.accelerator.wait_for_everyone()
